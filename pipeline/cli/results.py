"""`mmpipe probe`, `query`, `report` and `plot`: the evaluator's commands over the results DB."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mmpipe.pipeline.cli.app import (
    REPORT_FORMATS,
    FragmentOption,
    NamesOption,
    app,
    emit_tables,
    err,
    latex_options,
    out,
    output_dir,
    output_file,
    store_of,
    user_errors,
)
from mmpipe.store.config import apply_overrides, option_label
from mmpipe.store.damage import DamagedError, Listing
from mmpipe.store.errors import UserError


@app.command(epilog="Example: mmpipe probe --all --k-shot 5")
@user_errors
def probe(
    ctx: typer.Context,
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (or unique prefixes) to probe.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Probe every run in the store.")] = False,
    label: Annotated[list[str] | None, typer.Option(help="Only these labels (repeatable).")] = None,
    component: Annotated[list[str] | None, typer.Option(help="Only these components (repeatable).")] = None,
    k_shot: Annotated[list[int] | None, typer.Option("--k-shot", help="Also k-shot probes, k per class (repeatable).")] = None,
) -> None:
    """Probe every component × label of runs (fit on train, select on val, score on test) into the results DB,
    and score zero-shot cross-modal retrieval (R@1/5/10, median rank, both directions, test rows) for
    each component pair the run's method embeds in one space.

    Re-probing a run replaces its rows."""
    from mmpipe.evaluate.probes import (  # scikit-learn: imported only when probing
        ProbeConfig,
        check_probe_data,
        probe_run,
    )
    from mmpipe.evaluate.results import save_probes

    config = apply_overrides(ProbeConfig(), {"k_shot": tuple(k_shot or ())}, label=option_label)
    store = store_of(ctx)
    if all_runs == bool(runs):
        raise UserError("give run ids or --all (not both)")
    # --all probes every run it can open: a damaged run (or one whose components or manifest turn
    # out damaged while probing) is skipped and named, and the command exits 1 after the rest,
    # as `extract` does when clips failed. A run named by id is probed or fails (exit 2).
    listing = store.scan_runs() if all_runs else Listing(tuple(store.run(r) for r in runs or []), ())
    entries, skipped = listing.entries, len(listing.damaged)
    for damaged in listing.damaged:
        err.print(damaged.skipped(), markup=False, highlight=False, soft_wrap=True)
    if not entries and not skipped:
        raise UserError("the store holds no runs; fit one with `mmpipe fit`")
    for run in entries:  # every run's splits and classes, before any probe row is written
        try:
            manifest = store.manifest(run.record.dataset, run.record.manifest_version)
        except DamagedError:
            continue  # skipped and named (--all) or refused (a run named by id) below
        check_probe_data(manifest, config, label, run.run_id)
    total = probed = retrieved = 0
    for index, run in enumerate(entries, 1):
        try:
            with err.status(f"[{index}/{len(entries)}] probing {run.run_id}"):
                outcome = probe_run(store, run, config, labels=label, components=component)
                total += save_probes(store, run, outcome)
                retrieved += len(outcome.retrieval)
        except DamagedError as error:
            if not all_runs:
                raise
            skipped += 1
            err.print(f"skipped {run.run_id}: {error}", markup=False, highlight=False, soft_wrap=True)
            continue
        probed += 1
        for line in outcome.skipped:
            err.print(f"{run.run_id}: {line}", markup=False, highlight=False)
        err.print(f"[{index}/{len(entries)}] {run.run_id}: {len(outcome.rows)} scores", markup=False, highlight=False)
    out.print(f"{total} probe rows for {probed} run(s) in {store.results_db}", markup=False, highlight=False)
    if retrieved:
        out.print(f"{retrieved} retrieval rows (zero-shot, test) in {store.results_db}", markup=False, highlight=False)
    if skipped:
        err.print(f"{skipped} damaged run(s) skipped, named above; `mmpipe verify --repair` moves damaged entries "
                  "aside so the commands that create them rebuild them", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


QUERY_FORMATS = ("table", "csv", "json")


@app.command(epilog="Example: mmpipe query \"SELECT method, variant, label, component, mean FROM probe_summary\" --format csv")
@user_errors
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help=(
        "Read-only SQL over runs, probes, labels, stress, retrieval and the views probe_summary, delta_summary, "
        "stress_summary, retrieval_summary, metrics."))],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run read-only SQL on the results DB (write statements are refused)."""
    import csv
    import json
    import sys

    from mmpipe.evaluate.results import query as run_query

    if fmt not in QUERY_FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(QUERY_FORMATS)}")
    result = run_query(store_of(ctx).results_db, sql)
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif fmt == "json":
        typer.echo(json.dumps([dict(zip(result.columns, row, strict=True)) for row in result.rows], default=str, indent=1))
    else:
        table = Table()
        for column in result.columns:
            table.add_column(Text(column))
        for row in result.rows:
            # Text cells: a value is shown verbatim, never read as rich markup ("multiloreft [prune=False]")
            table.add_row(*[Text("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row])
        out.print(table)


@app.command(epilog="Example: mmpipe report --format latex --fragment --out tables.tex")
@user_errors
def report(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="latex, markdown or terminal.")] = "terminal",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="Only these datasets (repeatable).")] = None,
    method: Annotated[list[str] | None, typer.Option(help="Only these methods (repeatable).")] = None,
    label: Annotated[list[str] | None, typer.Option(help="Only these labels (repeatable).")] = None,
    table: Annotated[list[str] | None, typer.Option(
        help="Only these tables (repeatable): decoupling, fusion, ranks, ... (an unknown name is refused with the "
        "valid ones).", show_default="all")] = None,
    data_version: Annotated[list[str] | None, typer.Option(
        help="Only runs on these manifest versions (prefixes), when a dataset has several.")] = None,
    fragment: FragmentOption = False,
    names: NamesOption = None,
) -> None:
    """Paper-style tables (decoupling, fusion, learned ranks, ablations) from the results DB."""
    from mmpipe.evaluate.report import TABLE_KINDS, ReportFilters, build_report, load_report_data

    if fmt not in REPORT_FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(REPORT_FORMATS)}")
    display = latex_options(fmt, fragment, names)
    output_file(out_file)
    filters = ReportFilters(tuple(dataset or ()), tuple(method or ()), tuple(label or ()), tuple(data_version or ()))
    tables = build_report(load_report_data(store_of(ctx).results_db, filters), table or TABLE_KINDS)
    if fmt == "terminal" and out_file is None and not tables:
        out.print("No results match the filters.")
        return
    emit_tables(tables, fmt, out_file, f"{len(tables)} table(s)", file_width=200, fragment=fragment, names=display)


@app.command(epilog="Example: mmpipe plot multiloreft-1a2b3c --curves --format pdf")
@user_errors
def plot(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Run id (or unique prefix).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the figures.")] = Path("plots"),
    fmt: Annotated[str, typer.Option("--format", help="png or pdf.")] = "png",
    label: Annotated[list[str] | None, typer.Option(help="Only these labels (repeatable).")] = None,
    component: Annotated[list[str] | None, typer.Option(help="Only these components (repeatable).")] = None,
    curves: Annotated[bool, typer.Option("--curves", help=(
        "Only the training curves: per stage, train and validation loss per term (and GradNorm's weights)."))] = False,
) -> None:
    """PCA scatter of each component coloured by each label, plus what the run's record holds: the
    rank trajectory (MultiLoReFT), S3's pruning curve (test probes of every seed of the setup, from the
    results DB) and routing picture, the training curves."""
    from mmpipe.evaluate.plots import plot_run  # matplotlib: imported only when plotting

    output_dir(out_dir)
    store = store_of(ctx)
    entry = store.run(run)
    manifest = store.manifest(entry.record.dataset, entry.record.manifest_version)
    notes: list[str] = []
    with err.status(f"plotting {entry.run_id}"):
        paths = plot_run(entry, manifest, out_dir, fmt, components=component, labels=label, store=store,
                         say=notes.append, curves_only=curves)
    for note in notes:
        err.print(note, markup=False, highlight=False, soft_wrap=True)
    for path in paths:
        out.print(str(path), markup=False, highlight=False)


