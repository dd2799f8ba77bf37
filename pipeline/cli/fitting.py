"""`mmpipe fit` and `mmpipe demo`: train adapters on cached features."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mmpipe.pipeline.cli.app import (
    app,
    check_device_of,
    check_jobs,
    err,
    out,
    output_dir,
    parse_seeds,
    store_of,
    user_errors,
)
from mmpipe.pipeline.cli.catalog import completer
from mmpipe.store.config import apply_overrides, load_config_file, option_label
from mmpipe.store.errors import UserError

if TYPE_CHECKING:  # torch and the adapters: imported inside the commands that use them
    from mmpipe.pipeline.fit import FitOutcome
    from mmpipe.store.root import Store


def _report_fit(outcome: FitOutcome) -> None:
    run = outcome.run
    seed = run.record.seed
    if outcome.reused:
        err.print(f"{run.run_id}: seed {seed} already fitted, nothing to do", markup=False, highlight=False)
        return
    ranks = run.record.ranks or {}
    rank_text = " ".join(f"{k} {v['initial']}→{v['final']}" for k, v in ranks.items())
    err.print(f"{run.run_id}: seed {seed} fitted in {run.record.seconds:.1f} s, {run.record.epochs} epochs"
              f"{', ranks ' + rank_text if rank_text else ''}", markup=False, highlight=False)


def _fit_with_progress(store: Store, method: str, dataset: str, inputs: dict[str, str | None], config: Any,
                       seeds: list[int], data_version: str | None, jobs: int,
                       pooling: str | None = None) -> list[FitOutcome]:
    from mmpipe.pipeline.cli.fit_progress import FitProgress
    from mmpipe.pipeline.fit import fit_runs

    chosen = " + ".join(f"{m}={f}" if f else m for m, f in inputs.items())
    if err.is_terminal:  # above the bars; a log gets each stage's end and each run (`_report_fit`)
        err.print(f"fitting {method} on {dataset} ({chosen}), seeds {','.join(map(str, seeds))}"
                  + (f" in {jobs} processes" if jobs > 1 else ""), markup=False, highlight=False)
    with FitProgress(err) as shown:
        return fit_runs(store, method, dataset, inputs, config, seeds, data_version, jobs=jobs, on_done=_report_fit,
                        progress=shown.message, pooling=pooling, on_epoch=shown.epoch)


def fit_inputs(store: Store, dataset: str, given: list[str], m1: str | None, m2: str | None,
               data_version: str | None) -> dict[str, str | None]:
    """modality -> feature (None: the only one stored), in the order the method sees them.

    ``--input MODALITY=FEATURE`` (or ``--input MODALITY``), in order; else ``--m1``/``--m2``, the
    features of the dataset's first and second modality; else every modality of the dataset.
    """
    if given and (m1 or m2):
        raise UserError("give --input or --m1/--m2, not both")
    if given:
        inputs: dict[str, str | None] = {}
        for item in given:
            modality, sep, feature = item.partition("=")
            modality, feature = modality.strip(), feature.strip()
            if not modality or (sep and not feature):
                raise UserError(f"--input {item!r} must be MODALITY=FEATURE or MODALITY")
            if modality in inputs:
                raise UserError(f"--input names {modality} twice")
            inputs[modality] = feature or None
        return inputs
    from mmpipe.adapters.data import resolve_version

    modalities = resolve_version(store, dataset, data_version).modality_names
    if m1 or m2:
        if len(modalities) < 2:
            raise UserError(f"{dataset} has {len(modalities)} modality; --m1/--m2 need two")
        return {modalities[0]: m1, modalities[1]: m2}
    return dict.fromkeys(modalities)


@app.command(epilog="Example: mmpipe fit multiloreft --dataset sim1 --seeds 0,1 --jobs 2 --set lr=0.005")
@user_errors
def fit(
    ctx: typer.Context,
    method: Annotated[str, typer.Argument(help="Adapter method, e.g. multiloreft (see `mmpipe list methods`).",
                                          autocompletion=completer("methods"))],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset whose cached features to train on.",
                                         autocompletion=completer("datasets"))],
    inputs: Annotated[list[str] | None, typer.Option(
        "--input", help="MODALITY=FEATURE (or MODALITY: its only feature), repeatable; the order is the order "
        "the method sees.", show_default="every modality of the dataset")] = None,
    m1: Annotated[str | None, typer.Option("--m1", help="Short form: the feature of the dataset's first modality.")] = None,
    m2: Annotated[str | None, typer.Option("--m2", help="Short form: the feature of the dataset's second modality.")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, one run each.")] = "0,1,2,3",
    config_file: Annotated[Path | None, typer.Option("--config", help="JSON or YAML (.yaml, .yml) file of config "
                                                     "fields (see `mmpipe config METHOD`).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Config field, key=value (repeatable).")] = None,
    data_version: Annotated[str | None, typer.Option(help="Manifest version, when the store holds several.")] = None,
    jobs: Annotated[int, typer.Option(help="Seeds fitted in parallel worker processes.")] = 1,
    pooling: Annotated[str | None, typer.Option(
        "--pool", help="Pool sequence features for a pooled-input method: mean (over valid steps) or last.",
        show_default="mean")] = None,
    tensorboard: Annotated[Path | None, typer.Option(
        "--tensorboard", help="Also write each run's training curves as a TensorBoard log under DIR/<run id> "
        "(needs the tensorboard package).")] = None,
) -> None:
    """Train an adapter on cached features, one run per seed. Same config and seed again = no work.

    The method's defaults for the dataset (pipeline/defaults.py) apply unless --config or --set give the field."""
    from mmpipe.adapters import METHODS
    from mmpipe.pipeline.defaults import default_config

    if tensorboard is not None:
        from mmpipe.pipeline.tensorboard import check_tensorboard

        check_tensorboard(tensorboard)
    cls = METHODS.get(method)
    config = default_config(cls.Config, method, dataset)
    if config_file is not None:
        config = load_config_file(config, str(config_file))
    config = apply_overrides(config, list(overrides or []))
    seed_list = parse_seeds(seeds)
    check_jobs(jobs)
    check_device_of(config)
    store = store_of(ctx)
    chosen = fit_inputs(store, dataset, list(inputs or []), m1, m2, data_version)
    for outcome in _fit_with_progress(store, method, dataset, chosen, config, seed_list, data_version, jobs, pooling):
        out.print(outcome.run.run_id, markup=False, highlight=False)
        if tensorboard is not None:
            from mmpipe.pipeline.tensorboard import write_curves

            log = write_curves(outcome.run, tensorboard)
            err.print(f"{outcome.run.run_id}: " + (f"TensorBoard log {log}" if log else
                      f"no TensorBoard log written ({tensorboard / outcome.run.run_id} exists, or the run "
                      "records no training curves)"), markup=False, highlight=False, soft_wrap=True)


@app.command(epilog="Example: mmpipe demo --seeds 0,1 --n 2000 --out demo")
@user_errors
def demo(
    ctx: typer.Context,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, one MultiLoReFT run each.")] = "0,1,2,3",
    n: Annotated[int, typer.Option(help="Simulation I samples.")] = 10_000,
    jobs: Annotated[int, typer.Option(help="Seeds fitted in parallel worker processes.")] = 2,
    out_dir: Annotated[Path, typer.Option("--out", help="Where report.tex and the plots go.")] = Path("mmpipe-demo"),
    overrides: Annotated[list[str] | None, typer.Option("--set", help="MultiLoReFT config field, key=value.")] = None,
) -> None:
    """The main job on the embedded default: Simulation I → MultiLoReFT (4 seeds) → probes → tables and plots."""
    from mmpipe.adapters import METHODS
    from mmpipe.adapters.training import check_minibatch
    from mmpipe.evaluate import latex, terminal
    from mmpipe.evaluate.paper_comparison import paper_comparison_table
    from mmpipe.evaluate.plots import plot_run  # scikit-learn and matplotlib: imported only when used
    from mmpipe.evaluate.probes import probe_runs
    from mmpipe.evaluate.report import ReportFilters, build_report, load_report_data
    from mmpipe.evaluate.results import save_probes, variant_of
    from mmpipe.pipeline.datasets import DATASETS
    from mmpipe.pipeline.datasets.splits import split_counts
    from mmpipe.pipeline.defaults import default_config
    from mmpipe.pipeline.simulate import simulate as run_simulation

    seed_list = parse_seeds(seeds)
    check_jobs(jobs)
    output_dir(out_dir)
    config = apply_overrides(default_config(METHODS.get("multiloreft").Config, "multiloreft", "sim1"),
                             list(overrides or []))
    check_device_of(config)
    sim_config = apply_overrides(DATASETS.get("sim1").Config(), {"n": n}, label=option_label)
    check_minibatch("multiloreft", config.minibatch_size,
                    split_counts(n, sim_config.train_frac, sim_config.val_frac)["train"], f"sim1 with --n {n}")
    store = store_of(ctx, create=True)
    started = time.perf_counter()
    err.print(f"[1/4] simulating sim1 (n={n}) into {store.root}", markup=False, highlight=False)
    run_simulation(store, "sim1", sim_config)
    err.print(f"[2/4] fitting multiloreft, seeds {seeds}", markup=False, highlight=False)
    outcomes = _fit_with_progress(store, "multiloreft", "sim1", {"m1": None, "m2": None}, config, seed_list, None,
                                  jobs)
    runs = [o.run for o in outcomes]
    err.print("[3/4] probing every component of every run (fit on train, select on val, score on test)",
              markup=False, highlight=False)
    with err.status("probing") as status:
        probe_runs(store, runs, on_done=lambda run, outcome: (save_probes(store, run, outcome),
                                                               status.update(f"probed {run.run_id}")))
    err.print("[4/4] writing the report and plots", markup=False, highlight=False)
    variant = variant_of(runs[0].record)
    data = load_report_data(store.results_db, ReportFilters(datasets=("sim1",), variants=(variant,),
                                                            data_versions=(runs[0].record.manifest_version,)))
    tables = build_report(data, ("decoupling", "ranks"))
    comparison = paper_comparison_table(data, "sim1", variant)
    for group in terminal.render_document(tables + ([comparison] if comparison else [])):
        out.print(group)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.tex").write_text(latex.render_document(tables + ([comparison] if comparison else [])))
    plots = plot_run(runs[0], store.manifest("sim1", runs[0].record.manifest_version), out_dir / "plots", "png")
    out.print(f"report: {out_dir / 'report.tex'}", markup=False, highlight=False)
    out.print(f"plots ({runs[0].run_id}): " + ", ".join(str(p) for p in plots), markup=False, highlight=False)
    out.print(f"results DB: {store.results_db} (try `mmpipe query \"SELECT * FROM delta_summary\"`)",
              markup=False, highlight=False)
    err.print(f"demo finished in {time.perf_counter() - started:.0f} s", markup=False, highlight=False)


