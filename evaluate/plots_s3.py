"""S3's figures (issue #15 point 5), drawn for a run whose record holds ``history["s3"]``
(`S3Summary`, adapters/methods/s3.py).

- **The pruning curve** (:func:`pruning_curve` computes it, :func:`draw_pruning_curve` draws it;
  file ``<run>-pruning``). Left panel, *test*: the evaluator's probe score of S3's task label
  (``S3Summary.target``; results DB rows written by ``mmpipe probe``) on the components ``sel``
  (ρ = 1.0), ``rho90`` … ``rho10``, against ρ, one thin line per seed of the run's setup and
  their mean as a thick line; Specialization (``spec``) and Selection (``sel``) as horizontal
  reference lines (means over seeds); each seed's validation-chosen ρ (``S3Summary.rho_val``)
  marked on its line. Right panel, *validation*: the same layout for the val accuracy of S3's own
  ρ-choice probe (``S3Summary.val_accuracy``), the numbers ρ was chosen by. The test panel says
  the protocol: probe score of a test metric, ρ chosen on val; it picks nothing on test.
- **The routing picture** (:func:`routing_series`, :func:`draw_routing`; file ``<run>-routing``):
  for each stage the record holds routing for (Specialization and Selection today;
  a sparsified stage is drawn too once the record holds one) and each modality, a heatmap of the
  expert usage (layer × expert: the share of the selected (token, expert) pairs each expert took
  over the valid tokens of every row), and per modality the local routing entropy (mean over
  tokens of H(p(x))) and the global one (H of the mean p) per layer and stage, in nats, against
  ln N_E (uniform routing over the N_E experts).

The seeds of a run's *setup* are the runs in the store with the same method, ablation, other
settings, inputs (in order), dataset and data version: the grouping of the results DB's
``probe_summary`` view (evaluate/views.py), so the thick line is that view's mean.

Metric of the test curve (:func:`task_metric`): a categorical task label: ``accuracy`` (S3
selects on accuracy); a continuous one binarised at 0 (``binarize_at`` 0, y ≥ 0 positive):
``accuracy_ge0``, the logistic probe of that binarisation, where the label has it (a label declared
``sentiment``); otherwise the label's headline metric (``mse``). Choice where the issue is silent: **a run without probe rows** still
gets its figure: the validation panel alone, titled to say the test curve needs ``mmpipe probe``
(the note is also passed to the caller, which prints it): the val curve is what ρ was chosen by,
so it is worth seeing before probing; it never stands in for a test score.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from mmpipe.adapters.methods.s3 import RHOS, S3Summary, rho_component
from mmpipe.evaluate.metrics import ACCURACY, ACCURACY_GE0, headline
from mmpipe.evaluate.metrics import display as metric_display
from mmpipe.evaluate.plots_output import save
from mmpipe.store.results import fetch, reading
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

SPEC, SEL = "spec", "sel"
CURVE_COMPONENTS = tuple(rho_component(r) for r in RHOS)  # sel, rho90 … rho10, in the order of RHOS


@dataclass(frozen=True)
class SeedCurve:
    """One run (seed) of the setup: its scores by component (``spec``, ``sel``, ``rho90`` …)."""

    run_id: str
    seed: int
    test: dict[str, float]  # component → probe score of the task label (empty: not probed)
    val: dict[str, float]  # component → val accuracy of S3's ρ-choice probe (from the record)
    rho_val: float  # ρ chosen on val


@dataclass(frozen=True)
class PruningCurve:
    """Every series of the pruning-curve figure."""

    setup: str  # the run's variant, for the title
    label: str
    metric: str | None  # the test metric (None: no probe rows)
    rhos: tuple[float, ...]
    seeds: tuple[SeedCurve, ...]

    @property
    def probed(self) -> tuple[SeedCurve, ...]:
        return tuple(s for s in self.seeds if s.test)

    @property
    def unprobed(self) -> tuple[SeedCurve, ...]:
        return tuple(s for s in self.seeds if not s.test)

    @staticmethod
    def series(scores: Mapping[str, float]) -> list[float]:
        """Scores at ``rhos`` (NaN where a component has no score)."""
        return [scores.get(c, math.nan) for c in CURVE_COMPONENTS]

    def mean(self, split: str) -> list[float]:
        """Mean over the seeds that have a score at each ρ (``split``: test or val)."""
        return [_mean(getattr(s, split).get(c) for s in self.seeds) for c in CURVE_COMPONENTS]

    def reference(self, split: str, component: str) -> float:
        """Mean over seeds of ``component`` (``spec`` or ``sel``)."""
        return _mean(getattr(s, split).get(component) for s in self.seeds)


def _mean(values) -> float:
    found = [v for v in values if v is not None]
    return float(np.mean(found)) if found else math.nan


def setup_key(run: RunEntry) -> tuple:
    """What the results DB's summaries group seeds by (evaluate/views.py ``SETUP``)."""
    r = run.record
    return (r.method, r.ablation, sorted(r.settings.items()), list(r.inputs.items()), r.dataset, r.manifest_version)


def setup_runs(store: Store | None, run: RunEntry) -> list[RunEntry]:
    """The run and the store's other runs of its setup (other seeds), by seed."""
    others = store.runs(run.record.method) if store is not None else []
    found = {o.run_id: o for o in others if setup_key(o) == setup_key(run)}
    found.setdefault(run.run_id, run)
    return sorted(found.values(), key=lambda o: (o.record.seed, o.run_id))


def task_metric(target: Mapping[str, Any], found: set[str]) -> str:
    """The metric the test curve shows for S3's task label (module docstring)."""
    if target["kind"] == "categorical":
        return ACCURACY
    if target["binarize_at"] == 0 and ACCURACY_GE0 in found:
        return ACCURACY_GE0
    return headline(target["kind"])


def probe_scores(db: Path, run_ids: list[str], label: str) -> dict[str, dict[str, dict[str, float]]]:
    """metric → run → component → value of ``label`` for these runs (empty without a results DB)."""
    if not Path(db).exists():
        return {}
    marks = ", ".join("?" for _ in run_ids)
    with reading(db) as conn:
        rows = fetch(conn, f"SELECT run_id, component, metric, value FROM probes WHERE label = ? AND run_id IN ({marks})",
                     [label, *run_ids])
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        scores.setdefault(row["metric"], {}).setdefault(row["run_id"], {})[row["component"]] = row["value"]
    return scores


def pruning_curve(run: RunEntry, store: Store | None) -> PruningCurve:
    """The series of the pruning-curve figure of ``run``'s setup (module docstring)."""
    from mmpipe.evaluate.results import variant_of

    summary = S3Summary.from_history(run.record.history)
    label = summary.target["name"]
    runs = setup_runs(store, run)
    scores = probe_scores(store.results_db, [r.run_id for r in runs], label) if store is not None else {}
    metric = task_metric(summary.target, set(scores)) if scores else None
    chosen = scores.get(metric, {}) if metric else {}
    seeds = []
    for entry in runs:
        own = S3Summary.from_history(entry.record.history)
        test = {c: v for c, v in chosen.get(entry.run_id, {}).items() if c in (SPEC, *CURVE_COMPONENTS)}
        seeds.append(SeedCurve(entry.run_id, entry.record.seed, test, dict(own.val_accuracy), own.rho_val))
    return PruningCurve(variant_of(run.record), label, metric if any(s.test for s in seeds) else None,
                        tuple(RHOS), tuple(seeds))


def _curve_panel(ax, curve: PruningCurve, split: str, ylabel: str) -> None:
    seeds = curve.probed if split == "test" else curve.seeds
    for seed in seeds:
        colour = plt.cm.tab10(curve.seeds.index(seed) % 10)  # a seed's colour is the same in both panels
        values = curve.series(getattr(seed, split))
        ax.plot(curve.rhos, values, color=colour, linewidth=0.9, alpha=0.75, label=f"seed {seed.seed}")
        at = curve.rhos.index(seed.rho_val)
        ax.plot([seed.rho_val], [values[at]], marker="*", markersize=11, color=colour, markeredgecolor="black",
                markeredgewidth=0.6, linestyle="none")
    ax.plot(curve.rhos, curve.mean(split), color="black", linewidth=2.6, label=f"mean of {len(seeds)} seed(s)")
    for component, name, style in ((SPEC, "Specialization", "--"), (SEL, "Selection", ":")):
        level = curve.reference(split, component)
        if not math.isnan(level):
            ax.axhline(level, color="dimgrey", linestyle=style, linewidth=1.3, label=f"{name} (mean)")
    ax.plot([], [], marker="*", markersize=10, color="grey", markeredgecolor="black", linestyle="none",
            label="ρ chosen on val (per seed)")
    ax.set_xlim(max(curve.rhos) + 0.05, min(curve.rhos) - 0.05)  # pruning more to the right
    ax.set_xticks(curve.rhos)
    ax.set_xlabel("ρ (share of routing pairs kept)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def draw_pruning_curve(curve: PruningCurve, out: Path) -> Path:
    panels = (["test"] if curve.metric else []) + ["val"]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False, layout="constrained")
    for ax, split in zip(axes[0], panels, strict=True):
        if split == "test":
            _curve_panel(ax, curve, "test", f"test {metric_display(curve.metric)} ({curve.label})")
            ax.set_title(f"test: linear probe on [z_1, z_2] ({curve.metric}), ρ chosen on val", fontsize=9)
        else:
            _curve_panel(ax, curve, "val", f"val accuracy ({curve.label})")
            ax.set_title("validation: S3's ρ-choice probe (from the run records)", fontsize=9)
        ax.legend(fontsize=7)
    title = textwrap.fill(f"S3 pruning curve: {curve.setup}, label {curve.label}", 60 * len(panels) + 20)
    if not curve.metric:
        title += "\nno test probe rows yet: run `mmpipe probe` for the test curve"
    fig.suptitle(title, fontsize=9)
    return save(fig, out)


@dataclass(frozen=True)
class RoutingSeries:
    """The routing picture's data: stage → modality → per-layer arrays."""

    stages: tuple[str, ...]
    modalities: tuple[str, ...]
    usage: dict[str, dict[str, np.ndarray]]  # (L, N_E): each row sums to 1
    local_entropy: dict[str, dict[str, np.ndarray]]  # (L,) nats
    global_entropy: dict[str, dict[str, np.ndarray]]  # (L,) nats
    n_experts: int


def routing_series(summary: S3Summary) -> RoutingSeries:
    stages = tuple(summary.routing)
    modalities = tuple(summary.routing[stages[0]])

    def per(pick: Callable) -> dict[str, dict[str, np.ndarray]]:
        return {s: {m: np.array([pick(layer) for layer in summary.routing[s][m]], dtype=np.float64)
                    for m in modalities} for s in stages}

    usage = per(lambda layer: layer.usage)
    return RoutingSeries(stages, modalities, usage, per(lambda layer: layer.local_entropy),
                         per(lambda layer: layer.global_entropy), usage[stages[0]][modalities[0]].shape[1])


def draw_routing(series: RoutingSeries, title: str, out: Path) -> Path:
    n_rows, n_cols = len(series.modalities), len(series.stages) + 1
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.8 * n_cols + 0.8, 2.8 * n_rows + 0.6), squeeze=False,
                             layout="constrained")
    top = max(float(u.max()) for per in series.usage.values() for u in per.values())
    for i, modality in enumerate(series.modalities):
        for j, stage in enumerate(series.stages):
            ax = axes[i, j]
            usage = series.usage[stage][modality]
            image = ax.imshow(usage, aspect="auto", cmap="viridis", vmin=0.0, vmax=top, interpolation="nearest",
                              extent=(-0.5, usage.shape[1] - 0.5, usage.shape[0] + 0.5, 0.5))
            ax.set_yticks(range(1, usage.shape[0] + 1))
            ax.set_xlabel("expert")
            ax.set_ylabel(f"{modality}\nlayer" if j == 0 else "layer")
            if i == 0:
                ax.set_title(f"{stage}: expert usage", fontsize=9)
        fig.colorbar(image, ax=list(axes[i, :-1]), fraction=0.03, pad=0.02).set_label("share of pairs", fontsize=7)
        ax = axes[i, -1]
        for k, stage in enumerate(series.stages):
            layers = np.arange(1, len(series.local_entropy[stage][modality]) + 1)
            colour = plt.cm.tab10(k % 10)
            ax.plot(layers, series.local_entropy[stage][modality], color=colour, marker="o", label=f"{stage} local")
            ax.plot(layers, series.global_entropy[stage][modality], color=colour, marker="s", linestyle="--",
                    label=f"{stage} global")
        ax.axhline(math.log(series.n_experts), color="grey", linestyle=":", label=f"ln N_E (N_E = {series.n_experts})")
        ax.set_xticks(layers)
        ax.set_xlabel("layer")
        ax.set_ylabel("entropy (nats)")
        if i == 0:
            ax.set_title("routing entropy per layer", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    return save(fig, out)


def pruning_figure(run: RunEntry, out: Path, store: Store | None, say: Callable[[str], None]) -> Path:
    """The pruning-curve figure of ``run`` (its setup's seeds); notes what is missing through ``say``."""
    curve = pruning_curve(run, store)
    if not curve.metric:
        say(f"{run.run_id}: no probe rows for label {curve.label} yet: the pruning curve shows validation only; "
            f"run `mmpipe probe {run.run_id}` (and its other seeds) for the test curve")
    elif curve.unprobed:
        say(f"{run.run_id}: seeds {', '.join(str(s.seed) for s in curve.unprobed)} of this setup are not probed: "
            "the test curve leaves them out")
    return draw_pruning_curve(curve, out)


def routing_figure(run: RunEntry, out: Path, store: Store | None, say: Callable[[str], None]) -> Path:
    """The routing picture of ``run`` itself (one seed: expert identities are not comparable across seeds)."""
    summary = S3Summary.from_history(run.record.history)
    title = (f"S3 routing: {run.run_id} (seed {run.record.seed}); usage and entropies over the valid tokens "
             "of every row")
    return draw_routing(routing_series(summary), title, out)
