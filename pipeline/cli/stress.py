"""`mmpipe stress`: the missing/corrupted-modality stress test of fitted runs (`pipeline/stress.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mmpipe.pipeline.cli.app import app, err, out, store_of, user_errors
from mmpipe.store.config import apply_overrides, option_label
from mmpipe.store.errors import UserError

if TYPE_CHECKING:  # the workflow imports torch and scikit-learn: only when the command runs
    from mmpipe.pipeline.stress import StressConfig
    from mmpipe.store.root import Store


def parse_rates(text: str) -> tuple[float, ...]:
    """``0,0.2,0.4`` → (0.0, 0.2, 0.4); checked by `corruption.check_rates`."""
    from mmpipe.evaluate.corruption import check_rates

    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--rates must be comma-separated numbers, e.g. 0,0.2,0.4,0.6, not {text!r}") from None
    return check_rates(rates)


@app.command(epilog="Example: mmpipe stress multiloreft --dataset sim1 --modality m1 --mode noise --noise-std 0.5")
@user_errors
def stress(
    ctx: typer.Context,
    run_or_method: Annotated[str, typer.Argument(
        help="A run id (or unique prefix), or a method name: every run of it on --dataset that took --modality.")],
    modality: Annotated[str, typer.Option(help="The modality to corrupt.")],
    dataset: Annotated[str | None, typer.Option(help="The dataset (needed with a method name).")] = None,
    rates: Annotated[str, typer.Option(help="Fractions of the test rows to corrupt, increasing, in [0, 1).")]
    = "0,0.2,0.4,0.6",
    mode: Annotated[str, typer.Option(
        help="zero, mean (the train mean), noise (added, needs --noise-std) or drop (the method's own rule).")]
    = "zero",
    noise_std: Annotated[float | None, typer.Option(help="Standard deviation of the added noise (--mode noise).")]
    = None,
    seed: Annotated[int, typer.Option(help="Seed of the corrupted rows' choice (and of the noise).")] = 0,
    label: Annotated[list[str] | None, typer.Option(help="Only these labels (repeatable).")] = None,
    component: Annotated[list[str] | None, typer.Option(help="Only these components (repeatable).")] = None,
    k_shot: Annotated[list[int] | None, typer.Option("--k-shot", help="Also k-shot probes, k per class (repeatable).")]
    = None,
    plot: Annotated[Path | None, typer.Option(help="Also draw score against rate into this directory.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Figure format: png or pdf.")] = "png",
) -> None:
    """Score each run's clean-fitted probes on test rows with one modality corrupted in a growing
    fraction of them, into the results DB (table stress, view stress_summary).

    The test rows and labels are the same at every rate; rate 0 gives `mmpipe probe`'s scores.
    Re-running the same stress replaces its rows."""
    from mmpipe.evaluate.plots_stress import FORMATS
    from mmpipe.evaluate.probes import ProbeConfig
    from mmpipe.evaluate.results import save_stress
    from mmpipe.pipeline.stress import StressConfig, check_run, resolve_runs, stress_run

    config = StressConfig(modality, parse_rates(rates), mode, noise_std, seed)
    probe_config = apply_overrides(ProbeConfig(), {"k_shot": tuple(k_shot or ())}, label=option_label)
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    blocking = next((p for p in (plot, *plot.parents) if p.exists() and not p.is_dir()), None) if plot else None
    if blocking is not None:
        raise UserError(f"--plot {plot}: {blocking} is a file, not a directory")
    store = store_of(ctx)
    runs = resolve_runs(store, run_or_method, dataset, config.modality)
    for run in runs:  # every refusal before any work
        check_run(store, run, config, probe_config, label, component)
    total = 0
    for index, run in enumerate(runs, 1):
        with err.status(f"[{index}/{len(runs)}] stressing {run.run_id}: {config.modality} {config.mode}"):
            outcome = stress_run(store, run, config, probe_config, label, component)
            total += save_stress(store, run, config.key(run.run_id), outcome.rows)
        for line in outcome.skipped:
            err.print(f"{run.run_id}: {line}", markup=False, highlight=False)
        counts = ", ".join(f"{rate:g}: {count}" for rate, count in outcome.corrupted.items())
        err.print(f"[{index}/{len(runs)}] {run.run_id}: {len(outcome.rows)} scores; rows corrupted of "
                  f"{outcome.n_candidates} test rows: {counts}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"{total} stress rows for {len(runs)} run(s) in {store.results_db}", markup=False, highlight=False,
              soft_wrap=True)
    if plot is not None:
        for path in _plot(store, runs[0].record.dataset, config, plot, fmt):
            out.print(str(path), markup=False, highlight=False, soft_wrap=True)


def _plot(store: Store, dataset: str, config: StressConfig, out_dir: Path, fmt: str) -> list[Path]:
    """Score against rate for every setup stressed this way on ``dataset`` (this command's runs and
    any stressed before), from the stress_summary view."""
    from mmpipe.evaluate.plots_stress import plot_stress
    from mmpipe.evaluate.report import ReportFilters, load_report_data

    data = load_report_data(store.results_db, ReportFilters(datasets=(dataset,)))
    rows = [r for r in data.stress if r["modality"] == config.modality and r["mode"] == config.mode
            and r["noise_std"] == config.noise_std and r["corruption_seed"] == config.seed]
    kinds = {(r["dataset"], r["label"]): r["kind"] for r in data.labels}
    return plot_stress(rows, kinds, out_dir, fmt)
