"""`mmpipe reproduce`: one of the MultiLoReFT paper's tables, ours beside the paper's."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import typer

from mmpipe.evaluate.report import ReportFilters, build_report, load_report_data
from mmpipe.pipeline.cli.app import (
    REPORT_FORMATS,
    app,
    check_jobs,
    emit_tables,
    err,
    store_of,
    user_errors,
)
from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.simulate import simulate as run_simulation
from mmpipe.store.errors import UserError


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
    if seeds < 1 or n < 20:
        raise UserError("--seeds must be at least 1 and --n at least 20")
    check_jobs(jobs)
    store = store_of(ctx, create=True)
    started = time.perf_counter()
    versions = {}
    for dataset in spec.datasets:
        config = DATASETS.get(dataset).Config(n=n)
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


