"""`mmpipe reproduce`: one of the MultiLoReFT paper's tables, ours beside the paper's."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from mmpipe.adapters.registry import METHODS
from mmpipe.evaluate.report import ReportFilters, build_report, load_report_data
from mmpipe.pipeline.cli.app import (
    REPORT_FORMATS,
    app,
    check_jobs,
    check_option,
    check_seed_count,
    emit_tables,
    err,
    output_file,
    store_of,
    user_errors,
)
from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.datasets.splits import split_counts
from mmpipe.pipeline.defaults import default_config
from mmpipe.pipeline.simulate import simulate as run_simulation
from mmpipe.store.config import apply_overrides, option_label
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import EPOCHS, MAX_ROWS


@app.command()
@user_errors
def reproduce(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="table1, table3a, table4, table5, table6 or table7.")],
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (0..N-1), one run each.")] = 4,
    n: Annotated[int, typer.Option("--n", help="Samples per simulation.")] = 10_000,
    fmt: Annotated[str, typer.Option("--format", help="terminal, markdown or latex.")] = "terminal",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the table to this file.")] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", help="Cap every epoch limit (a quick look; "
                                                   "the paper's tables use the defaults).")] = None,
    jobs: Annotated[int, typer.Option(help="Seeds fitted in parallel worker processes.")] = 2,
) -> None:
    """Reproduce one of the paper's tables on Simulation I/II: simulate, fit every method × seed it
    needs (reusing stored runs), probe, and print ours beside the paper's numbers."""
    from mmpipe.evaluate import reproduce as reproduction  # scikit-learn: imported only when used
    from mmpipe.pipeline.reproduce import fit_table

    spec = reproduction.spec_of(table)
    if fmt not in REPORT_FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(REPORT_FORMATS)}")
    check_seed_count(seeds)
    check_jobs(jobs)
    output_file(out_file)
    if max_epochs is not None:
        check_option("--max-epochs", max_epochs, EPOCHS)
    simulations = {dataset: _simulation(spec, dataset, n) for dataset in spec.datasets}
    store = store_of(ctx, create=True)
    started = time.perf_counter()
    versions = {}
    for dataset, config in simulations.items():
        versions[dataset] = run_simulation(store, dataset, config).manifest_version
    with err.status(f"reproducing {table}") as status:
        runs = fit_table(store, spec, list(range(seeds)), versions, max_epochs, progress=status.update, jobs=jobs)
        probed = reproduction.probe_missing(store, runs, progress=status.update)
    ours = reproduction.our_values(store, runs)
    result = reproduction.comparison_table(spec, ours)
    lines = reproduction.pattern_lines(spec, ours)
    result = dataclasses.replace(result, notes=result.notes + lines)
    err.print(f"{len(runs)} runs ({probed} newly probed) in {time.perf_counter() - started:.0f} s",
              markup=False, highlight=False)
    tables = [result]
    if spec.companions:
        methods = tuple(sorted({method for method, _ in spec.fits}))
        data = load_report_data(store.results_db, ReportFilters(
            datasets=spec.datasets, methods=methods, data_versions=tuple(versions[d] for d in spec.datasets)))
        tables += build_report(data, spec.companions)
    emit_tables(tables, fmt, out_file, table, file_width=240)


def _simulation(spec: Any, dataset: str, n: int) -> Any:
    """The simulation config of ``--n``, refused (one line, before any work) when its train split
    is smaller than the minibatch of a method the table fits."""
    config = apply_overrides(DATASETS.get(dataset).Config(), {"n": n}, label=option_label)
    n_train = split_counts(n, config.train_frac, config.val_frac)["train"]
    for method, changes in spec.fits:
        fit_config = dataclasses.replace(default_config(METHODS.get(method).Config, method, dataset), **dict(changes))
        minibatch = getattr(fit_config, "minibatch_size", None)
        if minibatch is not None and minibatch > n_train:
            enough = next(m for m in range(n, MAX_ROWS + 1)
                          if split_counts(m, config.train_frac, config.val_frac)["train"] >= minibatch)
            raise UserError(f"--n {n} leaves {n_train} train rows of {dataset}, fewer than one minibatch of "
                            f"{method} ({minibatch}); give --n {enough} or more")
    return config


