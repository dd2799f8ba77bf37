"""`mmpipe reproduce`: one of the papers' tables (MultiLoReFT, S3, DLF), ours beside the paper's; or
the fusion survey's proposed experiments (`survey`, ours only)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from mmpipe.pipeline.cli.app import (
    REPORT_FORMATS,
    FragmentOption,
    NamesOption,
    app,
    check_jobs,
    check_option,
    check_seed_count,
    emit_tables,
    err,
    latex_options,
    output_file,
    store_of,
    user_errors,
)
from mmpipe.store.config import apply_overrides, option_label
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import EPOCHS, MAX_ROWS


@app.command(epilog="Example: mmpipe reproduce table1 --seeds 2 --n 2000 --max-epochs 5")
@user_errors
def reproduce(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="table1, table3a, table4, table5, table6, table7 (MultiLoReFT), "
                                              "s3-table1, s3-table2 (S3), dlf-table1, dlf-table2 (DLF), or survey (the fusion "
                                              "survey's Experiments 1–3).")],
    seeds: Annotated[int | None, typer.Option("--seeds", help="Number of seeds (0..N-1), one run each.",
                                              show_default="the paper's: 4 MultiLoReFT, 3 S3 and DLF; 3 survey")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Samples per simulation.",
                                          show_default="10,000 for Sim I/II, simseq's own for simseq")] = None,
    fmt: Annotated[str, typer.Option("--format", help="terminal, markdown or latex.")] = "terminal",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the table to this file.")] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", help="Cap every epoch limit (a quick look; "
                                                   "the paper's tables use the defaults).")] = None,
    jobs: Annotated[int, typer.Option(help="Seeds fitted in parallel worker processes.")] = 2,
    datasets: Annotated[list[str] | None, typer.Option(
        "--dataset", help="Only these of the table's datasets (repeatable).", show_default="all it has")] = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Config field, key=value, for every fitted method that has it (a quick look; "
                      "repeatable).")] = None,
    data_versions: Annotated[list[str] | None, typer.Option(
        "--data-version", help="DATASET=VERSION (a prefix of the manifest version) for a dataset the store holds "
                               "several versions of, e.g. MOSI ingested from MultiBench's and MMSA's files "
                               "(repeatable).")] = None,
    fragment: FragmentOption = False,
    names: NamesOption = None,
    methods: Annotated[list[str] | None, typer.Option(
        "--method", help="survey only: these methods (repeatable); multiloreft is always fitted, it sizes the "
                         "others.", show_default="all its methods but s3 and dlf")] = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="survey only: how removed inputs are fed, zero or mean (the train mean).",
        show_default="zero")] = None,
) -> None:
    """Reproduce one of the papers' tables: simulate what it simulates, take the datasets it needs
    that the store holds (ingested), fit every method × seed it needs (reusing stored runs), probe,
    and print ours beside the paper's numbers (survey: ours only, it reports none)."""
    from mmpipe.evaluate import reproduce as reproduction  # scikit-learn: imported only when used
    from mmpipe.evaluate import reproduce_papers as papers
    from mmpipe.evaluate import reproduce_survey as survey
    from mmpipe.evaluate.report import ReportFilters, build_report, load_report_data
    from mmpipe.pipeline.datasets import DATASETS, Simulation
    from mmpipe.pipeline.reproduce import fit_table, split_overrides
    from mmpipe.pipeline.simulate import simulate as run_simulation

    survey_spec = survey.survey_spec(methods, mode) if table == survey.KEY else None
    if survey_spec is None and (methods or mode is not None):
        raise UserError("--method and --mode apply to `mmpipe reproduce survey` only")
    spec = survey_spec.table if survey_spec is not None else papers.table_spec(table)
    if fmt not in REPORT_FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(REPORT_FORMATS)}")
    display = latex_options(fmt, fragment, names)
    seeds = spec.seeds if seeds is None else seeds
    check_seed_count(seeds)
    check_jobs(jobs)
    output_file(out_file)
    if max_epochs is not None:
        check_option("--max-epochs", max_epochs, EPOCHS)
    chosen = _chosen(spec, datasets)
    prefixes = _version_prefixes(chosen, list(data_versions or []))
    split_overrides(spec, list(overrides or []))
    simulations = {d: _simulation(spec, d, n, list(overrides or [])) for d in chosen
                   if issubclass(DATASETS.get(d), Simulation)}
    store = store_of(ctx, create=bool(simulations))
    held = set(store.datasets())
    missing = [d for d in chosen if d not in simulations and d not in held]
    for dataset in [d for d in chosen if d in held and d not in simulations and d not in prefixes]:
        stored = store.manifest_versions(dataset)
        if len(stored) > 1:
            raise UserError(f"{table}: the store holds {len(stored)} versions of {dataset} "
                            f"({', '.join(v[:12] for v in stored)}); choose one with --data-version {dataset}=VERSION")
    versions = {d: store.manifest(d, prefixes.get(d)).version() for d in chosen if d not in simulations and d in held}
    if not versions and not simulations:
        raise UserError(f"{table}: none of its datasets is in the store ({', '.join(missing)}); add one with "
                        f"`mmpipe ingest {missing[0]} --data-dir DIR`")
    if missing:
        err.print(f"{table}: not in the store, left out: {', '.join(missing)} (`mmpipe ingest DATASET --data-dir DIR` "
                  "adds one)", markup=False, highlight=False)
    started = time.perf_counter()
    for dataset, config in simulations.items():
        versions[dataset] = run_simulation(store, dataset, config).manifest_version
    if survey_spec is not None:
        settings = _survey(store, survey_spec, seeds, versions, max_epochs, jobs, list(overrides or []), started)
        emit_tables(survey.survey_tables(store, survey_spec, settings), fmt, out_file, table,
                    file_width=240, fragment=fragment, names=display)
        return
    with err.status(f"reproducing {table}") as status:
        runs = fit_table(store, spec, list(range(seeds)), versions, max_epochs, progress=status.update, jobs=jobs,
                         overrides=list(overrides or []))
        scope = papers.probe_scope if spec.key in papers.PAPER_SPECS else None
        probed = reproduction.probe_missing(store, runs, progress=status.update, scope=scope)
    err.print(f"{len(runs)} runs ({probed} newly probed) in {time.perf_counter() - started:.0f} s",
              markup=False, highlight=False)
    if spec.key in papers.PAPER_SPECS:
        emit_tables(papers.comparison_tables(store, spec, runs), fmt, out_file, table, file_width=240,
                    fragment=fragment, names=display)
        return
    ours = reproduction.our_values(store, runs)
    result = reproduction.comparison_table(spec, ours)
    lines = reproduction.pattern_lines(spec, ours)
    result = dataclasses.replace(result, notes=result.notes + lines)
    tables = [result]
    if spec.companions:
        methods = tuple(sorted({method for method, _ in spec.fits}))
        shown = tuple(d for d in spec.datasets if d in versions)
        data = load_report_data(store.results_db, ReportFilters(
            datasets=shown, methods=methods, data_versions=tuple(versions[d] for d in shown)))
        tables += build_report(data, spec.companions)
    emit_tables(tables, fmt, out_file, table, file_width=240, fragment=fragment, names=display)


def _survey(store: Any, spec: Any, seeds: int, versions: dict[str, str], max_epochs: int | None, jobs: int,
            overrides: list[str], started: float) -> Any:
    """`reproduce survey`'s runs fitted, probed and stressed (`pipeline/reproduce_survey.py`); their settings."""
    from mmpipe.pipeline.reproduce_survey import run_survey

    with err.status("reproducing survey") as status:
        outcome = run_survey(store, spec, list(range(seeds)), versions, max_epochs, progress=status.update, jobs=jobs,
                             overrides=overrides)
    for line in outcome.left_out:
        err.print(line, markup=False, highlight=False)
    err.print(f"{sum(len(s.runs) for s in outcome.settings)} runs ({outcome.probed} newly probed, {outcome.stressed} "
              f"modality stresses newly scored) in {time.perf_counter() - started:.0f} s", markup=False, highlight=False)
    return outcome.settings


def _chosen(spec: Any, datasets: list[str] | None) -> list[str]:
    """The table's datasets, or those of ``--dataset`` (each one of the table's), in the table's order."""
    if not datasets:
        return list(spec.datasets)
    unknown = [d for d in datasets if d not in spec.datasets]
    if unknown:
        raise UserError(f"--dataset {unknown[0]!r} is not a dataset of {spec.key}; valid: {', '.join(spec.datasets)}")
    return [d for d in spec.datasets if d in datasets]


def _version_prefixes(chosen: list[str], items: list[str]) -> dict[str, str]:
    """``--data-version DATASET=VERSION`` items as dataset → version prefix, each for an ingested
    dataset of the table (a simulation's version is the one its config makes)."""
    from mmpipe.pipeline.datasets import DATASETS, Simulation

    prefixes = {}
    for item in items:
        dataset, sep, prefix = (part.strip() for part in item.partition("="))
        if not sep or not dataset or not prefix:
            raise UserError(f"--data-version {item!r} is not of the form DATASET=VERSION")
        if dataset not in chosen or issubclass(DATASETS.get(dataset), Simulation):
            ingested = [d for d in chosen if not issubclass(DATASETS.get(d), Simulation)]
            raise UserError(f"--data-version {item!r}: {dataset!r} is not an ingested dataset of this table; valid: "
                            f"{', '.join(ingested)}")
        prefixes[dataset] = prefix
    return prefixes


def _simulation(spec: Any, dataset: str, n: int | None, overrides: list[str]) -> Any:
    """The simulation config of ``--n`` (default: the table's, else the simulation's own), refused
    (one line, before any work) when its train split is smaller than the minibatch of a method the
    table fits."""
    from mmpipe.adapters.registry import METHODS
    from mmpipe.pipeline.datasets import DATASETS
    from mmpipe.pipeline.datasets.splits import split_counts
    from mmpipe.pipeline.defaults import default_config
    from mmpipe.pipeline.reproduce import split_overrides

    config = DATASETS.get(dataset).Config()
    n = n if n is not None else spec.simulation_n
    if n is not None:
        config = apply_overrides(config, {"n": n}, label=option_label)
    n_train = split_counts(config.n, config.train_frac, config.val_frac)["train"]
    per_method = split_overrides(spec, overrides)
    for method, changes in spec.fits:
        fit_config = dataclasses.replace(default_config(METHODS.get(method).Config, method, dataset),
                                         **{**dict(spec.changes_for(dataset)), **dict(changes)})
        fit_config = apply_overrides(fit_config, per_method[method])
        minibatch = getattr(fit_config, "minibatch_size", None)
        if minibatch is not None and minibatch > n_train:
            enough = next(m for m in range(config.n, MAX_ROWS + 1)
                          if split_counts(m, config.train_frac, config.val_frac)["train"] >= minibatch)
            raise UserError(f"--n {config.n} leaves {n_train} train rows of {dataset}, fewer than one minibatch of "
                            f"{method} ({minibatch}); give --n {enough} or more")
    return config
