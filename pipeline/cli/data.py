"""`mmpipe simulate`, `list`, `info` and `extract`: what goes into the store and what it holds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mmpipe.pipeline.cli.app import (
    app,
    check_device_of,
    err,
    out,
    store_of,
    user_errors,
)
from mmpipe.pipeline.cli.catalog import PACKAGES, completer, plugins
from mmpipe.store.config import apply_overrides, option_label
from mmpipe.store.errors import UserError, human_size

if TYPE_CHECKING:  # torch and the plug-ins: imported inside the commands that use them
    from mmpipe.pipeline.extract import ExtractResult
    from mmpipe.store.damage import Damaged

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of tables.")]


@app.command(epilog="Example: mmpipe simulate sim1 --n 2000 --seed 1")
@user_errors
def simulate(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Simulation to generate: sim1, sim2 or simseq.")],
    n: Annotated[int | None, typer.Option(help="Number of samples.",
                                          show_default="the simulation's, 10000 for sim1/sim2")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for latents, projections and splits.",
                                             show_default="0")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Any config field, key=value (repeatable).")] = None,
    dtype: Annotated[str, typer.Option(help="Stored dtype: float32 or float16.")] = "float32",
) -> None:
    """Generate a simulation into the store: Simulation I or II (MultiLoReFT paper, Appendix A.1), or simseq
    (three modalities of sequences with known shared, pairwise and specific factors). Same config again = no work."""
    from mmpipe.pipeline.datasets import DATASETS, Simulation
    from mmpipe.pipeline.simulate import simulate as run_simulation

    dataset_cls = DATASETS.get(dataset)
    if not issubclass(dataset_cls, Simulation):
        simulations = ", ".join(n for n in DATASETS.names() if issubclass(DATASETS.get(n), Simulation))
        raise UserError(f"{dataset} is not a simulation; simulations: {simulations}")
    if dtype not in ("float32", "float16"):
        raise UserError(f"--dtype must be float32 or float16, not {dtype!r}")
    config = apply_overrides(dataset_cls.Config(), list(overrides or []))
    config = apply_overrides(config, {k: v for k, v in {"n": n, "seed": seed}.items() if v is not None},
                             label=option_label)
    store = store_of(ctx, create=True)
    with err.status(f"simulating {dataset} (n={config.n}, seed={config.seed})"):
        result = run_simulation(store, dataset, config, dtype=dtype)
    for entry in result.entries.values():
        state = "written" if entry.name in result.created else "already stored, nothing to do"
        err.print(f"{entry.name}: {' × '.join(map(str, entry.shape))} {entry.meta['dtype']} "
                  f"[{entry.fingerprint[:12]}] {state}", markup=False, highlight=False)
    out.print(f"{dataset} manifest {result.manifest_version} in {store.root}", markup=False, highlight=False)


@app.command("list", epilog="Example: mmpipe list methods --json")
@user_errors
def list_(
    what: Annotated[str | None, typer.Argument(help="datasets, encoders or methods.", show_default="all three",
                                               autocompletion=lambda incomplete: [k for k in PACKAGES
                                                                                  if k.startswith(incomplete)])] = None,
    as_json: JsonOption = False,
) -> None:
    """List the registered datasets, encoders and adapter methods.

    JSON: {"datasets": [{"name", "description"}, ...], "encoders": [...], "methods": [...]}."""
    if what is not None and what not in PACKAGES:
        raise UserError(f"cannot list {what!r}; valid: {', '.join(PACKAGES)}")
    kinds = [what] if what else list(PACKAGES)
    listed = {kind: plugins(kind) for kind in kinds}
    if as_json:
        typer.echo(json.dumps({kind: [{"name": p.name, "description": p.description} for p in found]
                               for kind, found in listed.items()}, indent=1, ensure_ascii=False))
        return
    for kind, found in listed.items():
        table = Table(title=kind, title_justify="left", show_header=False, box=None)
        for plugin in found:
            table.add_row(Text(plugin.name), Text(plugin.description))
        if not found:
            table.add_row("(none registered yet)")
        out.print(table)


@app.command(epilog="Example: mmpipe info sim1 --json")
@user_errors
def info(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset's manifests and features.")] = None,
    as_json: JsonOption = False,
) -> None:
    """What the store holds: manifests, feature entries, shapes, dtypes, fingerprints, sizes.

    A damaged entry is skipped and named on stderr (exit 0 all the same: `mmpipe verify` checks
    the store and exits 1 on damage). JSON: {"store", "manifests", "features", "runs"}, one object
    per row of the tables (a feature's "ingest": its provenance record, null unless ingested)."""
    from mmpipe.pipeline.cli.ingest import ingested_table
    from mmpipe.store.damage import DamagedError
    from mmpipe.store.verify import missing_manifests

    store = store_of(ctx)
    datasets = store.datasets()
    if dataset is not None and dataset not in datasets:
        raise UserError(f"the store holds nothing for {dataset!r}; datasets in store: {', '.join(datasets) or 'none'}")
    skipped: list[Damaged] = []
    manifests = []
    for name in [dataset] if dataset else datasets:
        for version in store.manifest_versions(name):
            try:
                manifest = store.manifest(name, version)
            except DamagedError as error:
                skipped.append(error.damaged)
                continue
            counts = manifest.table["split"].value_counts()
            manifests.append({"dataset": name, "version": version, "rows": len(manifest),
                              "splits": {s: int(counts.get(s, 0)) for s in ("train", "val", "test")},
                              "labels": [{"name": s.name, "owner": s.owner} for s in manifest.labels],
                              "split_protocol": manifest.split_protocol})
    listing = store.scan_features()
    skipped += [d for d in listing.damaged if dataset is None or d.path.parent.name.startswith(f"{dataset}.")]
    entries = [e for e in listing.entries if dataset is None or e.meta.get("dataset") == dataset]
    features = [{"name": e.name, "fingerprint": e.fingerprint, "shape": list(e.shape), "dtype": e.meta["dtype"],
                 "missing": int(e.meta.get("n_missing", 0)), "bytes": e.disk_bytes(),
                 "created": e.meta.get("created_at", ""), "ingest": e.meta.get("ingest")} for e in entries]
    run_listing = store.scan_runs()
    skipped += run_listing.damaged  # a damaged run may not say its dataset: always named
    runs = [{"run": r.run_id, "dataset": r.record.dataset, "inputs": dict(r.record.inputs), "seed": r.record.seed,
             "ablation": r.record.ablation or "", "ranks": {k: v["final"] for k, v in (r.record.ranks or {}).items()},
             "seconds": r.record.seconds}
            for r in run_listing.entries if dataset is None or r.record.dataset == dataset]
    skipped += missing_manifests(store, listing.entries, run_listing.entries)
    if as_json:
        typer.echo(json.dumps({"store": str(store.root), "manifests": manifests, "features": features, "runs": runs},
                              indent=1, ensure_ascii=False, default=str))
    else:
        _info_tables(store.root, manifests, features, runs)
        # ingested entries (`mmpipe ingest`): source file, sha256 check, padding rule, non-finite handling
        ingested = ingested_table(entries)
        if ingested is not None:
            out.print(ingested)
    for damaged in skipped:
        err.print(damaged.skipped(), markup=False, highlight=False, soft_wrap=True)


def _cells(*values: Any) -> list[Text]:
    """Table cells shown verbatim (a name or value in brackets is not rich markup)."""
    return [Text(str(v)) for v in values]


def _info_tables(root: Path, manifests: list[dict], features: list[dict], runs: list[dict]) -> None:
    out.print(Text(f"manifests in {root}", style="italic"), soft_wrap=True)  # the path whole, whatever its length
    table = Table()
    for column in ("dataset", "version", "rows", "train/val/test", "labels", "split protocol"):
        table.add_column(column)
    for m in manifests:
        table.add_row(*_cells(m["dataset"], m["version"], m["rows"], "/".join(str(n) for n in m["splits"].values()),
                              " ".join(f"{s['name']}:{s['owner']}" for s in m["labels"]), m["split_protocol"]))
    out.print(table)
    table = Table(title="feature entries", title_justify="left")
    for column in ("name", "fingerprint", "shape", "dtype", "missing", "on disk", "created"):
        table.add_column(column)
    for f in features:
        table.add_row(*_cells(f["name"], f["fingerprint"][:12], " × ".join(map(str, f["shape"])), f["dtype"],
                              f["missing"], human_size(f["bytes"]), f["created"]))
    out.print(table)
    if runs:
        table = Table(title="adapter runs", title_justify="left")
        table.add_column("run", no_wrap=True, min_width=24)
        for column in ("dataset", "inputs", "seed", "ablation", "ranks", "seconds"):
            table.add_column(column)
        for r in runs:
            table.add_row(*_cells(r["run"], r["dataset"], " + ".join(r["inputs"].values()), r["seed"], r["ablation"],
                                  " ".join(f"{k}:{v}" for k, v in r["ranks"].items()), f"{r['seconds']:.1f}"))
        out.print(table)


ENGINE_KEYS = ("modality", "max_steps")  # --set keys of the extraction itself


def _split_overrides(dataset_config: Any, encoder_options: Any, overrides: list[str]) -> tuple[list, list, list]:
    """Route each --set key=value to the dataset config, the encoder options or the extraction
    (``modality``, ``max_steps``); ``dataset.key`` / ``encoder.key`` disambiguate a key both have."""

    dataset_keys = {f.name for f in dataclasses.fields(dataset_config)}
    encoder_keys = {f.name for f in dataclasses.fields(encoder_options)}
    to_dataset, to_encoder, to_engine = [], [], []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"override {item!r} is not of the form key=value")
        key = key.strip()
        scope, dot, bare = key.partition(".")
        if dot and scope in ("dataset", "encoder"):
            (to_dataset if scope == "dataset" else to_encoder).append(f"{bare}={value}")
        elif key in ENGINE_KEYS:
            to_engine.append((key, value.strip()))
        elif key in dataset_keys and key in encoder_keys:
            raise UserError(f"--set {key} is ambiguous; write dataset.{key}=... or encoder.{key}=...")
        elif key in encoder_keys:
            to_encoder.append(item)
        elif key in dataset_keys:
            to_dataset.append(item)
        else:
            valid = sorted(dataset_keys | encoder_keys | set(ENGINE_KEYS))
            raise UserError(f"unknown --set key {key!r}; valid: {', '.join(valid)}")
    return to_dataset, to_encoder, to_engine


def _engine_label(key: str, value: str) -> str:
    """Where an extraction option was given, for messages."""
    if key in ENGINE_KEYS:
        return f"--set {key}={value}"
    if key == "sequence":
        return "--sequence"
    return option_label("workers" if key == "num_workers" else key, value)


@app.command(epilog="Example: mmpipe extract cremad --encoder wavlm --data-dir data/CREMA-D --set modality=audio")
@user_errors
def extract(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset to read (see `mmpipe list datasets`).",
                                           autocompletion=completer("datasets"))],
    encoder: Annotated[str, typer.Option("--encoder", help="Encoder to run (see `mmpipe list encoders`).",
                                         autocompletion=completer("encoders"))],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the dataset's files are.")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="Local checkpoint directory or file.",
                                                 show_default="the hub id / torchvision weights")] = None,
    layers: Annotated[str | None, typer.Option("--layers", help="Hidden layers to store as extra arrays, e.g. 4,8.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Clips per forward pass.")] = 16,
    workers: Annotated[int, typer.Option("--workers", help="Decoding worker processes (0: decode in-process).")] = 2,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="Stored dtype: float16 or float32.")] = "float16",
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Dataset config or encoder option, key=value "
                                                        "(repeatable; modality=NAME picks the modality).")] = None,
    sequence: Annotated[bool, typer.Option("--sequence", help="Also store the last layer's frame/token outputs "
                                           "(T, D) + lengths as <dataset>.<modality>.<encoder>-seq; bound T with "
                                           "--set max_steps=N.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="local, or ray (pip install \"mmpipe\\[ray]\").")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Join this Ray cluster (with --engine "
                                                    "ray).", show_default="start a local one")] = None,
    allow_failures: Annotated[bool, typer.Option("--allow-failures", help="Exit 0 even if some media failed.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="The dataset's name in the store, for a custom dataset "
                                             "(hf, folder).", show_default="its registry name")] = None,
    chunk_rows: Annotated[int | None, typer.Option("--chunk-rows", hidden=True,
                                                   help="Rows per stored chunk (resume granularity).")] = None,
) -> None:
    """Run a frozen encoder over a dataset into the store: batched, resumable, failures recorded."""
    from mmpipe.pipeline.datasets import DATASETS, Simulation
    from mmpipe.pipeline.encoders import ENCODERS
    from mmpipe.pipeline.extract import ExtractOptions
    from mmpipe.pipeline.extract import extract as run_extraction

    dataset_cls = DATASETS.get(dataset)
    encoder_cls = ENCODERS.get(encoder)
    if issubclass(dataset_cls, Simulation):
        raise UserError(f"{dataset} is a simulation with no media; use `mmpipe simulate {dataset}`")
    config, options = dataset_cls.Config(), encoder_cls.Options()
    to_dataset, to_encoder, to_engine = _split_overrides(config, options, list(overrides or []))
    config, options = apply_overrides(config, to_dataset), apply_overrides(options, to_encoder)
    if name is not None:
        if not hasattr(config, "name"):
            raise UserError(f"dataset {dataset} has a fixed name; --name names a custom dataset (hf, folder)")
        config = apply_overrides(config, {"name": name}, label=option_label)
    if data_dir is not None:
        if not hasattr(config, "data_dir"):
            raise UserError(f"dataset {dataset} takes no --data-dir")
        config = apply_overrides(config, {"data_dir": str(data_dir)}, label=option_label)
    try:
        chosen_layers = tuple(int(k) for k in layers.split(",") if k.strip()) if layers else ()
    except ValueError:
        raise UserError(f"--layers must be comma-separated integers, not {layers!r}") from None
    extraction = apply_overrides(ExtractOptions(), {
        "dtype": dtype, "layers": chosen_layers, "batch_size": batch_size, "num_workers": workers, "device": device,
        "chunk_rows": chunk_rows, "sequence": sequence, "engine": engine, "ray_address": ray_address},
        label=_engine_label)
    extraction = apply_overrides(extraction, [f"{key}={value}" for key, value in to_engine], label=_engine_label)
    check_device_of(extraction)
    encoder_cls(options).spec(weights).check_layers(extraction.layers)
    store = store_of(ctx, create=True)
    result = run_extraction(store, dataset, config, encoder_cls(options), weights=weights, options=extraction,
                            console=err)
    for outcome in (result, result.sequence):
        if outcome is not None:
            _say_written(outcome)
    failed = _say_failures(result)
    if failed and not allow_failures:
        raise typer.Exit(1)
    out.print(f"{result.entry.name} {result.entry.fingerprint} in {store.root}", markup=False, highlight=False)
    if result.sequence is not None:
        out.print(f"{result.sequence.entry.name} {result.sequence.entry.fingerprint} in {store.root}", markup=False,
                  highlight=False)


def _say_written(result: ExtractResult) -> None:
    entry = result.entry
    shape = " × ".join(map(str, entry.shape))
    if not result.created:
        err.print(f"{entry.name} [{entry.fingerprint[:12]}] {shape} already stored, nothing to do",
                  markup=False, highlight=False)
        return
    timings = entry.meta["timings"]
    resumed = f", resumed {result.chunks_resumed} finished chunk(s)" if result.chunks_resumed else ""
    err.print(f"{entry.name} [{entry.fingerprint[:12]}] {shape} {entry.meta['dtype']} written: "
              f"{timings['rows']} clips in {timings['wall_s']:.1f} s ({timings['clips_per_s']:.1f} clips/s; "
              f"decode {timings['decode_s']:.1f} s in workers, forward {timings['forward_s']:.1f} s, "
              f"write {timings['write_s']:.1f} s){resumed}", markup=False, highlight=False)


def _say_failures(result: ExtractResult) -> bool:
    """List the failed clips of the pooled and sequence entries; True if any."""
    entry = result.entry
    failures = {f["sample_id"]: f for f in result.failures}
    for failure in result.sequence.failures if result.sequence is not None else []:
        failures.setdefault(failure["sample_id"], failure)  # e.g. a sequence longer than its header promised
    if not failures:
        return False
    listed = list(failures.values())
    err.print(f"{len(listed)} of {entry.shape[0]} clips failed and are masked (valid=False):",
              markup=False, highlight=False)
    for failure in listed[:20]:
        err.print(f"  {failure['sample_id']}: {failure['error']}", markup=False, highlight=False)
    if len(listed) > 20:
        err.print(f"  ... and {len(listed) - 20} more (all listed in {entry.path / 'meta.json'})",
                  markup=False, highlight=False)
    return True


