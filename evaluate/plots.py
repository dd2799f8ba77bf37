"""Figures of a run (matplotlib, Agg backend; PNG or PDF).

- :func:`pca_scatter`: 2-D PCA of each component, coloured by each label (paper Figures 2–3): one
  row per label, one column per component. PCA is fitted on the valid train rows of the component
  and the test rows are drawn (at most ``max_points``), so the picture shows held-out samples.
- :func:`rank_trajectory`: the rank of each subspace over epochs (``RunRecord.history["rank_history"]``),
  with the stage boundaries of ``history["stage_history"]`` as dashed lines.
- S3's pruning curve and routing picture (``history["s3"]``): `evaluate/plots_s3.py`.
- The training curves (``history["curves"]``): `evaluate/plots_curves.py`.

:func:`plot_run` draws the PCA scatter of every run, then each figure of ``RECORD_FIGURES`` whose
history key the run's record holds: what a run gets drawn follows from what it recorded, never
from its method's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from mmpipe.adapters.curves import HISTORY_KEY as CURVES
from mmpipe.evaluate import plots_s3
from mmpipe.evaluate.plots_curves import curves_figure
from mmpipe.evaluate.plots_output import check_format, save
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import Manifest
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry


def pca_2d(x_fit: np.ndarray, x_show: np.ndarray) -> np.ndarray:
    """Project ``x_show`` (n, r) on the top-2 principal axes of ``x_fit``; (n, 2), zero-padded if r = 1."""
    mean = x_fit.mean(axis=0)
    _, _, vt = np.linalg.svd(x_fit - mean, full_matrices=False)  # (k, r)
    projected = (x_show - mean) @ vt[:2].T
    return np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))


def pca_scatter(run: RunEntry, manifest: Manifest, out: Path, *, components: Sequence[str] | None = None,
                labels: Sequence[str] | None = None, max_points: int = 1500, seed: int = 0) -> Path:
    """One figure: rows = labels, columns = components; categorical labels get a legend, continuous
    labels a colour bar."""
    specs = [manifest.label(n) for n in labels] if labels else list(manifest.labels)
    arrays = {k: v.numpy() for k, v in run.components(list(components) if components else None).items()}
    valid = run.valid()
    split = manifest.table["split"].to_numpy()
    shown = np.flatnonzero(valid & (split == "test"))
    if len(shown) == 0:
        shown = np.flatnonzero(valid)
    if len(shown) > max_points:
        shown = np.sort(np.random.default_rng(seed).choice(shown, max_points, replace=False))
    fit_rows = valid & (split == "train")
    fit_rows = fit_rows if fit_rows.any() else valid
    points = {name: pca_2d(x[fit_rows].astype(np.float64), x[shown].astype(np.float64)) for name, x in arrays.items()}

    n_rows, n_cols = len(specs), len(arrays)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols + 1.2, 2.4 * n_rows), squeeze=False)
    for i, spec in enumerate(specs):
        values = manifest.table[spec.name].to_numpy()[shown]
        for j, (name, xy) in enumerate(points.items()):
            ax = axes[i, j]
            if spec.kind == "categorical":
                classes = [c for c in np.unique(values[~_isna(values)])]
                for k, cls in enumerate(classes):
                    pick = values == cls
                    ax.scatter(xy[pick, 0], xy[pick, 1], s=4, alpha=0.7, color=plt.cm.tab10(k % 10), label=str(cls))
                if j == n_cols - 1 and len(classes) <= 12:
                    ax.legend(title=spec.name, fontsize=6, title_fontsize=7, markerscale=2,
                              loc="center left", bbox_to_anchor=(1.02, 0.5))
            else:
                numeric = values.astype(np.float64)
                drawn = ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.8, c=numeric, cmap="viridis")
                if j == n_cols - 1:
                    fig.colorbar(drawn, ax=ax, fraction=0.05, pad=0.03).set_label(spec.name, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{spec.name} ({spec.owner})", fontsize=9)
    fig.suptitle(f"{run.run_id}: PCA of each component (test split), coloured by label", fontsize=11)
    fig.tight_layout()
    return save(fig, out)


def _isna(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.isna(values)


def rank_components(history: list[dict]) -> list[str]:
    """The subspaces in a rank history: its integer-valued keys (it also carries validation losses)."""
    return [k for k, v in history[0].items() if k not in ("epoch", "stage") and isinstance(v, int)]


def rank_trajectory(run: RunEntry, out: Path) -> Path:
    history = run.record.history.get("rank_history") or []
    if not history:
        raise UserError(f"run {run.run_id} records no rank history (method {run.method} does not prune ranks)")
    components = rank_components(history)
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for index, component in enumerate(components):
        # distinct dash patterns keep equal ranks (overlapping lines) visible
        ax.step(epochs, [h[component] for h in history], where="post", label=component, linewidth=1.8,
                linestyle=("-", "--", ":", "-.")[index % 4])
    top = max(max(h[c] for c in components) for h in history)
    for stage in run.record.history.get("stage_history") or []:
        ax.axvline(stage["start_epoch"], color="grey", linestyle="--", linewidth=0.9)
        ax.text(stage["start_epoch"], top * 1.02, f" {stage['stage']}", fontsize=8, va="bottom", color="dimgrey")
    ax.set_xlabel("epoch")
    ax.set_ylabel("rank")
    ax.set_ylim(0, top * 1.12 + 0.5)
    ax.legend(fontsize=8)
    ax.set_title(f"{run.run_id}: subspace ranks over training", fontsize=10, pad=14)
    fig.tight_layout()
    return save(fig, out)


@dataclass(frozen=True)
class RecordFigure:
    """A figure drawn for every run whose record's history holds ``key``, into ``<run>-<name>.<fmt>``.
    ``draw(run, out, store, say)``: ``store`` (None: only the run itself is known) for figures that
    read other runs or the results DB; ``say`` takes one-line notes for the user."""

    key: str
    name: str
    draw: Callable[[RunEntry, Path, Store | None, Callable[[str], None]], Path]


RECORD_FIGURES = (
    RecordFigure("rank_history", "ranks", lambda run, out, store, say: rank_trajectory(run, out)),
    RecordFigure("s3", "pruning", plots_s3.pruning_figure),
    RecordFigure("s3", "routing", plots_s3.routing_figure),
    RecordFigure(CURVES, "curves", lambda run, out, store, say: curves_figure(run, out)),
)


def plot_run(run: RunEntry, manifest: Manifest, out_dir: Path, fmt: str = "png", *,
             components: Sequence[str] | None = None, labels: Sequence[str] | None = None,
             store: Store | None = None, say: Callable[[str], None] = lambda line: None,
             curves_only: bool = False) -> list[Path]:
    """All figures of a run into ``out_dir``: the PCA scatter, then each of ``RECORD_FIGURES`` the
    run's record holds the data for. ``store``: where the run's other seeds and probe rows are read
    (S3's pruning curve); ``say``: receives one-line notes (e.g. that a run is not probed yet);
    ``curves_only``: the training curves alone (a run without them is refused)."""
    check_format(fmt)
    out_dir = Path(out_dir)
    if curves_only:
        return [curves_figure(run, out_dir / f"{run.run_id}-curves.{fmt}")]
    written = [pca_scatter(run, manifest, out_dir / f"{run.run_id}-pca.{fmt}", components=components, labels=labels)]
    for figure in RECORD_FIGURES:
        if run.record.history.get(figure.key):
            written.append(figure.draw(run, out_dir / f"{run.run_id}-{figure.name}.{fmt}", store, say))
    return written
