"""`mmpipe export`: a run's components or a feature entry, with its manifest columns, as a Hugging
Face DatasetDict or Parquet files (`mmpipe.pipeline.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmpipe.pipeline.cli.app import app, err, out, store_of, user_errors
from mmpipe.store.errors import UserError


@app.command(epilog="Example: mmpipe export multiloreft-1a2b3c --format parquet --out z_sim1")
@user_errors
def export(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A run id (or unique prefix), or a feature entry "
                                          "<dataset>.<modality>.<feature> (see `mmpipe info`).")],
    out_dir: Annotated[Path, typer.Option("--out", help="A new or empty directory to write.")],
    fmt: Annotated[str, typer.Option("--format", help="hf: a DatasetDict (datasets.load_from_disk reads it); "
                                     "parquet: one <split>.parquet per split.")] = "hf",
    fingerprint: Annotated[str | None, typer.Option("--fingerprint", help="Which entry of a feature name that "
                                                    "several entries share (a fingerprint prefix).")] = None,
) -> None:
    """Write a run's components or a feature entry, with sample_id, split, group, labels and valid, per split
    (train/validation/test). Never writes into a non-empty --out."""
    from mmpipe.pipeline.export import FORMATS, check_out, collect, write

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    check_out(out_dir)
    exported = collect(store_of(ctx), source, fingerprint)
    files = write(exported, fmt, out_dir)
    rows = ", ".join(f"{split} {table.num_rows}" for split, table in exported.tables.items())
    err.print(f"{exported.source}: rows {rows}; {len(files)} file(s) written", markup=False, highlight=False)
    out.print(str(out_dir), markup=False, highlight=False)
