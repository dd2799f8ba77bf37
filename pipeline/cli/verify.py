"""`mmpipe verify [--repair]`: check every entry of the store (store/verify.py), like fsck.

Prints one line per problem (path: what is wrong), one per unfinished write, and a summary.
Exit 0 when nothing is damaged, 1 when damage was found (repaired or not), 2 for bad usage.
With ``--repair`` each damaged entry is moved to ``<store>/damaged/<UTC time>/`` (never deleted)
and the line says which command rebuilds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mmpipe.pipeline.cli.app import app, out, user_errors
from mmpipe.store.damage import Damaged

if TYPE_CHECKING:  # torch: imported when the command runs
    from mmpipe.store.verify import Moved


def rebuild_command(damaged: Damaged) -> str:
    """The command that recreates a damaged entry once it is moved aside."""
    from mmpipe.pipeline.datasets import DATASETS, Simulation

    if damaged.kind == "store marker":
        return "rewritten in place"
    if damaged.kind == "results DB":
        return "`mmpipe probe --all` rebuilds it"
    if damaged.kind == "run":
        return f"`mmpipe fit {damaged.path.parent.name}` with the same config and seed refits it"
    # feature entries live in features/<dataset>.<modality>.<feature>/, manifests in manifests/<dataset>/
    name = damaged.path.parent.name
    dataset, _, rest = name.partition(".")
    if dataset in DATASETS.names() and issubclass(DATASETS.get(dataset), Simulation):
        return f"`mmpipe simulate {dataset}` with the same options rebuilds it"
    modality, _, feature = rest.partition(".")
    if damaged.kind == "feature entry" and feature:
        return (f"`mmpipe extract {dataset} --encoder {feature} --set modality={modality}` with the same options "
                "rebuilds it")
    return f"the command that created {dataset}'s data (`mmpipe extract {dataset} ...`) rebuilds it"


def _moved_line(moved: Moved) -> str:
    if moved.damaged is None:
        return f"moved leftover {moved.source} to {moved.target}"
    return f"moved damaged {moved.damaged.kind} {moved.source} to {moved.target}: {rebuild_command(moved.damaged)}"


@app.command("verify", epilog="Example: mmpipe verify --repair")
@user_errors
def verify_command(
    ctx: typer.Context,
    fix: Annotated[bool, typer.Option("--repair", help="Move damaged entries aside to <store>/damaged/ (never "
                                      "deleted) so the commands that create them rebuild them.")] = False,
) -> None:
    """Check every entry of the store: JSON, Parquet, Zarr chunks, checkpoints, key material, the results DB.

    Exit 0 when clean, 1 when damage was found, 2 for bad usage."""
    from mmpipe.store.root import default_root
    from mmpipe.store.verify import repair, verify

    root = Path(ctx.obj.store_path) if ctx.obj.store_path is not None else default_root()
    report = verify(root)
    for damaged in report.damaged:
        out.print(damaged.line(), markup=False, highlight=False, soft_wrap=True)
    for unfinished in report.unfinished:
        out.print(unfinished.line(), markup=False, highlight=False, soft_wrap=True)
    checked = (f"{report.manifests} manifest(s), {report.feature_entries} feature entr"
               f"{'y' if report.feature_entries == 1 else 'ies'}, {report.runs} run(s)"
               f"{', the results DB' if report.results_db else ''}")
    unfinished = f", {len(report.unfinished)} unfinished write(s)" if report.unfinished else ""
    if report.clean:
        out.print(f"{root}: checked {checked}: no damage{unfinished}", markup=False, highlight=False, soft_wrap=True)
    else:
        advice = "" if fix else "; `mmpipe verify --repair` moves the damaged entries aside"
        out.print(f"{root}: checked {checked}: {len(report.damaged)} damaged{unfinished}{advice}",
                  markup=False, highlight=False, soft_wrap=True)
    if fix:
        missing = [d for d in report.damaged if not d.path.exists()]  # nothing to move: only to rebuild
        for moved in repair(report):
            out.print(_moved_line(moved), markup=False, highlight=False, soft_wrap=True)
        for damaged in missing:
                out.print(f"{damaged.path} is missing: {rebuild_command(damaged)}", markup=False, highlight=False,
                          soft_wrap=True)
    if not report.clean:
        raise typer.Exit(1)
