"""`mmpipe ingest`: a public feature pickle (MultiBench, MulT, MMSA) into the store, and the table
`mmpipe info` shows for ingested entries (provenance, padding rule, non-finite counts)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mmpipe.pipeline.cli.app import app, err, out, user_errors
from mmpipe.store.config import apply_overrides, option_label
from mmpipe.store.errors import UserError

if TYPE_CHECKING:  # torch, numpy and the datasets: imported when a command runs
    from mmpipe.pipeline.datasets.affect import AffectSource
    from mmpipe.pipeline.ingest import IngestResult
    from mmpipe.store.features import FeatureEntry
    from mmpipe.store.root import Store

SPLIT_ORDER = ("train", "val", "test")


def _split_overrides(config: Any, options: Any, overrides: list[str]) -> tuple[list[str], list[str]]:
    """Route each --set key=value to the dataset config (data_dir, file, format) or the ingest
    options (nonfinite, dtype, chunk_rows); the two share no key."""
    config_keys = {f.name for f in dataclasses.fields(config)}
    option_keys = {f.name for f in dataclasses.fields(options)}
    to_config, to_options = [], []
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep:
            raise UserError(f"override {item!r} is not of the form key=value")
        if key.strip() in config_keys:
            to_config.append(item)
        elif key.strip() in option_keys:
            to_options.append(item)
        else:
            raise UserError(f"unknown --set key {key.strip()!r}; valid: {', '.join(sorted(config_keys | option_keys))}")
    return to_config, to_options


def _existing_store(path: Path | None) -> Store | None:
    """The store at ``path`` if there is one; None where one would be created (nothing there yet,
    or an empty folder), so a refused file creates no store. Anything else is refused by
    `Store.open` (a file, a folder of other things)."""
    from mmpipe.store.root import MARKER, Store, default_root, looks_like_store

    root = Path(path) if path is not None else default_root()
    if not root.exists() or (root.is_dir() and not (root / MARKER).exists() and not looks_like_store(root)
                             and not any(root.iterdir())):
        return None
    return Store.open(root)


@app.command("ingest", epilog="Example: mmpipe ingest mosi --data-dir data/MultiBench --set nonfinite=zero")
@user_errors
def ingest_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="mosi, mosei, urfunny or mustard (see `mmpipe list datasets`).")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the feature file lies under its public "
                                                  "name (mosi_raw.pkl, MOSI/Processed/aligned_50.pkl, ...).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="file=PATH (the file itself), format=auto|"
                                                        "multibench|mult|mmsa, nonfinite=zero|error "
                                                        "(repeatable).")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Stored dtype: float32 or float16.")] = "float32",
    chunk_rows: Annotated[int | None, typer.Option("--chunk-rows", hidden=True,
                                                   help="Rows per stored chunk (resume granularity).")] = None,
) -> None:
    """Ingest a dataset's public feature pickle: one sequence entry per modality (true lengths,
    official splits, labels, provenance). Same file and options again = no work."""
    from mmpipe.pipeline.datasets import DATASETS, Simulation
    from mmpipe.pipeline.datasets.affect import AffectDataset
    from mmpipe.pipeline.ingest import IngestOptions, ingest, ingestible, plan_ingest
    from mmpipe.store.root import Store, default_root

    dataset_cls = DATASETS.get(dataset)
    if not issubclass(dataset_cls, AffectDataset):
        command = "simulate" if issubclass(dataset_cls, Simulation) else "extract"
        raise UserError(f"{dataset} is not ingested from a feature file; use `mmpipe {command} {dataset}` (ingested "
                        f"datasets: {', '.join(ingestible())})")
    config, options = dataset_cls.Config(), IngestOptions()
    to_config, to_options = _split_overrides(config, options, list(overrides or []))
    config = apply_overrides(config, to_config)
    if data_dir is not None:
        config = apply_overrides(config, {"data_dir": str(data_dir)}, label=option_label)
    options = apply_overrides(options, {"dtype": dtype, "chunk_rows": chunk_rows}, label=option_label)
    options = apply_overrides(options, to_options)
    store = _existing_store(ctx.obj.store_path)
    with err.status(f"reading {dataset}") as status:
        plan = plan_ingest(dataset, config, options, store=store, progress=status.update)
    _say_source(plan.source)
    if store is None:
        store = Store.open(ctx.obj.store_path if ctx.obj.store_path is not None else default_root(), create=True)
    with err.status(f"ingesting {dataset}") as status:
        result = ingest(store, plan, progress=status.update)
    _say_entries(result)
    out.print(f"{dataset} manifest {result.manifest_version} in {store.root}", markup=False, highlight=False)


def _say(message: str) -> None:
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def _say_source(source: AffectSource) -> None:
    sizes = source.split_sizes
    label = source.labels[0]
    _say(f"source: {source.file.describe()}")
    _say(f"splits train/val/test {'/'.join(f'{sizes[s]:,}' for s in SPLIT_ORDER)} (the file's own); label "
         f"{label.name} ({label.kind}, {label.owner}); {'aligned' if source.aligned else 'unaligned'}: steps "
         + ", ".join(f"{m.modality} {m.steps}" for m in source.modalities))
    if source.file.upstream == "mismatch":
        _say(f"warning: {source.file.path} is not the file {source.file.title} publishes under that name (sha256 "
             f"{source.file.sha256[:12]}…, published {source.file.upstream_sha256[:12]}…): a damaged or different "
             "copy; its manifest is its own version")
    if source.renamed_ids:
        _say(f"warning: {source.renamed_ids:,} ids repeat in the file; the repeats are stored as ID#2, ID#3, ...")


def _say_entries(result: IngestResult) -> None:
    for item in result.entries:
        entry, record = item.entry, item.record
        shape = " × ".join(f"{n}" for n in entry.shape)
        state = "written" if item.created else "already stored, nothing to do"
        _say(f"{entry.name}: {shape} {entry.meta['dtype']} [{entry.fingerprint[:12]}] {state}; "
             f"{record.get('padding', '')}; non-finite: {nonfinite_summary(record, entry.meta['dtype'])}")
        empty = record.get("rows_without_steps", 0)
        if empty:
            _say(f"  {empty:,} rows have no {item.modality} steps: masked (valid=False), never fed to a fit")
        other = record.get("rows_padded_on_the_other_side", 0)
        if other:
            _say(f"  {other:,} rows also have an all-zero step on the side this rule does not pad; kept as data")


def nonfinite_summary(record: dict[str, Any], dtype: str) -> str:
    """``none (policy zero)``, or ``150 values stored as 0 (--set nonfinite=zero): train 149
    non-finite values (-inf 149) in 2 rows; test 1 non-finite value (NaN 1) in 1 row``."""
    from mmpipe.pipeline.ingest import ValueCounts

    section = record.get("nonfinite", {})
    if not section.get("total"):
        return f"none (policy {section.get('policy', '?')})"
    parts = []
    for split in SPLIT_ORDER:
        counts = ValueCounts(**section.get("counts", {}).get(split, {}))
        if counts.total:
            parts.append(f"{split} {counts.describe(dtype)}")
    return f"{section['total']:,} values stored as 0 (--set nonfinite={section.get('policy')}): {'; '.join(parts)}"


def ingested_table(entries: Iterable[FeatureEntry]) -> Table | None:
    """For `mmpipe info`: each ingested entry's source, checksum status, padding rule and
    non-finite handling; None when no entry was ingested."""
    rows = [e for e in entries if isinstance(e.meta.get("ingest"), dict)]
    if not rows:
        return None
    table = Table(title="ingested entries: provenance, padding, non-finite values", title_justify="left")
    for column in ("name", "source", "sha256 (upstream)", "padding", "non-finite"):
        table.add_column(column)
    for entry in rows:
        record = entry.meta["ingest"]
        source = record.get("source", {})
        sha = f"{str(source.get('sha256', ''))[:12]} ({source.get('upstream_checksum', 'unknown')})"
        table.add_row(entry.name, f"{source.get('format', '?')} {source.get('file', '?')}", sha,
                      record.get("length_rule", "?"), nonfinite_summary(record, entry.meta["dtype"]))
    return table
