"""TensorBoard logs of a run's training curves (``mmpipe fit --tensorboard DIR``), written with
torch's own ``torch.utils.tensorboard.SummaryWriter`` (which needs the ``tensorboard`` package).

Each run gets its own log directory ``DIR/<run_id>`` (so ``tensorboard --logdir DIR`` shows the
seeds side by side), with one scalar per curve point (adapters/curves.py): tag
``<stage>/<split>/<term>`` (e.g. ``joint/val/mi``, ``train/train/loss``, ``joint/weight/orth`` for
GradNorm's weights), step = the epoch within the stage. The log is written when the run's fit has
ended, from its record, so it is the same numbers ``mmpipe plot --curves`` draws. A run whose log
directory already exists is left as it is (a log is never appended to twice).
"""

from __future__ import annotations

from pathlib import Path

from mmpipe.adapters.curves import read_curves
from mmpipe.store.errors import UserError
from mmpipe.store.runs import RunEntry


def check_tensorboard(directory: Path) -> None:
    """Refuse (one line, before any fit) a log directory that is a file or lies under one, or a
    missing ``tensorboard`` package (SummaryWriter writes through it)."""
    blocking = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"--tensorboard {directory}: {blocking} is a file, not a directory")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package (torch's SummaryWriter writes through it): "
                        "pip install tensorboard") from None


def write_curves(run: RunEntry, directory: Path) -> Path | None:
    """Write ``run``'s curves under ``directory/<run_id>``; None when that log already exists or the
    run recorded no curves."""
    from torch.utils.tensorboard import SummaryWriter

    log_dir = Path(directory) / run.run_id
    points = read_curves(run.record.history)
    if log_dir.exists() or not points:
        return None
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for point in points:
            writer.add_scalar(f"{point.stage}/{point.split}/{point.term}", point.value, global_step=point.epoch)
    return log_dir
