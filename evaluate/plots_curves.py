"""Training curves of a run (``mmpipe plot RUN --curves``; file ``<run>-curves``): the
`CurvePoint` values its training loops recorded (``history["curves"]``, adapters/curves.py).

One column per stage, in the order the fit ran them; the top row holds every loss term against the
epoch within the stage, train as solid lines (the mean over the epoch's minibatches, as trained)
and validation as dashed lines with markers (after the epoch), one colour per term (one legend
entry each), the same colour for a term in every stage. A term named ``loss`` is the loop's loss (the one trained on, or
on validation the one early stopping reads). When a stage learned its loss weights (GradNorm), a
second row draws them per term. :func:`curve_series` returns exactly what is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from mmpipe.adapters.curves import CurvePoint, read_curves
from mmpipe.evaluate.plots_output import save
from mmpipe.store.errors import UserError
from mmpipe.store.runs import RunEntry


@dataclass(frozen=True)
class Series:
    stage: str
    split: str
    term: str
    epochs: tuple[int, ...]
    values: tuple[float, ...]


def curve_series(points: Sequence[CurvePoint]) -> list[Series]:
    """One series per (stage, split, term), in the order first recorded, epochs ascending."""
    grouped: dict[tuple[str, str, str], list[CurvePoint]] = {}
    for point in points:
        grouped.setdefault((point.stage, point.split, point.term), []).append(point)
    return [Series(stage, split, term, tuple(p.epoch for p in found), tuple(p.value for p in found))
            for (stage, split, term), found in ((k, sorted(v, key=lambda p: p.epoch)) for k, v in grouped.items())]


def run_curves(run: RunEntry) -> list[CurvePoint]:
    """The run's curve points; a run without any is refused in one line."""
    points = read_curves(run.record.history)
    if not points:
        raise UserError(f"run {run.run_id} records no training curves: its method trains nothing, or it was "
                        "fitted before mmpipe recorded them (a fit into a new store records them)")
    return points


def draw_curves(run_id: str, series: list[Series], out: Path) -> Path:
    stages = list(dict.fromkeys(s.stage for s in series))
    terms = list(dict.fromkeys(s.term for s in series))
    palette = plt.cm.tab10 if len(terms) <= 10 else plt.cm.tab20
    colours = {term: palette(i % palette.N) for i, term in enumerate(terms)}
    weighted = any(s.split == "weight" for s in series)
    n_rows = 2 if weighted else 1
    fig, axes = plt.subplots(n_rows, len(stages), figsize=(5.4 * len(stages) + 0.5, 3.4 * n_rows), squeeze=False,
                             layout="constrained")
    for j, stage in enumerate(stages):
        losses, weights = axes[0, j], axes[1, j] if weighted else None
        named: set[str] = set()  # one legend entry per term: its colour (the line style is the split)
        for s in (s for s in series if s.stage == stage):
            if s.split == "weight":
                weights.plot(s.epochs, s.values, color=colours[s.term], label=s.term)
                continue
            val = s.split == "val"
            losses.plot(s.epochs, s.values, color=colours[s.term], linestyle="--" if val else "-",
                        marker="o" if val else None, markersize=3, label=None if s.term in named else s.term)
            named.add(s.term)
        losses.set_title(f"stage {stage}", fontsize=9)
        losses.set_ylabel("loss" if j == 0 else "")
        for ax in (losses, weights) if weights is not None else (losses,):
            ax.set_xlabel("epoch (within the stage)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            else:
                ax.set_axis_off()
        if weights is not None:
            weights.set_ylabel("learned loss weight (GradNorm)" if j == 0 else "")
    fig.suptitle(f"{run_id}: training curves (solid: train, mean over the epoch's minibatches; dashed: validation)",
                 fontsize=9)
    return save(fig, out)


def curves_figure(run: RunEntry, out: Path) -> Path:
    return draw_curves(run.run_id, curve_series(run_curves(run)), out)
