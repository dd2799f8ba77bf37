"""Extraction: run one frozen encoder over one modality of a dataset, into the store.

Flow: build the manifest → declare the encoder spec and identify its weights → choose the
dataset's modality the encoder reads (the only one of the encoder's kind, or ``modality``) → the
keys of the entries to write: ``<dataset>.<modality>.<encoder>`` (pooled rows, plus any
``--layers``; key = dataset, manifest version, modality, media column, spec, weights, layers,
dtype) and, with ``sequence``, ``<dataset>.<modality>.<encoder>-seq`` (the last layer's frame or
token outputs ``(T, D)`` with their lengths; key = the pooled key + what the sequence is +
``max_steps``). Published entries mean there is nothing to do, without loading the model.
Otherwise the model is loaded, the size on disk of what is left to write is printed (refused
above the free space), and an engine (`mmpipe.pipeline.engines`: local, or ray) encodes every
row of the pending chunks in length-sorted batches that never depend on other chunks; a chunk is
written as soon as its last row is encoded, its progress marker last, so a process killed at any
moment loses at most the chunks in flight, and a resumed run forms exactly the same batches.

A sequence entry's T is the longest sequence any row can give, bounded by ``max_steps`` (a longer
sequence is averaged over equal windows, `mmpipe.pipeline.windows`); it is planned from the file
headers and token counts before anything is written.

Rows whose media fail to decode, and rows the dataset declares absent or known broken
(``Dataset.unusable_media``), are recorded (sample_id, error) and masked (valid=False).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from rich.console import Console

from mmpipe.adapters.data import feature_name
from mmpipe.adapters.training import resolve_device
from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.encoders.base import Encoder
from mmpipe.pipeline.engines import local
from mmpipe.pipeline.engines.assemble import Assembler, Output, Request
from mmpipe.pipeline.engines.job import Job
from mmpipe.store.errors import UserError, human_size
from mmpipe.store.features import FeatureEntry, entry_bytes
from mmpipe.store.manifest import Manifest, Modality
from mmpipe.store.ranges import DEVICE, MAX_ROWS, Checked, at_least, between
from mmpipe.store.root import Store

SEQUENCE_SUFFIX = "-seq"  # <dataset>.<modality>.<encoder>-seq holds the encoder's sequences
MAX_SEQUENCE_STEPS = 2**20


@dataclass(frozen=True)
class ExtractOptions(Checked):
    dtype: Literal["float16", "float32"] = "float16"  # the store's DTYPES
    layers: Annotated[tuple[int, ...], at_least(0)] = ()  # below the encoder's layer count
    batch_size: Annotated[int, between(1, 2**16)] = 16
    num_workers: Annotated[int, between(0, 256)] = 2
    device: Annotated[str, DEVICE] = "auto"
    chunk_rows: Annotated[int | None, between(1, MAX_ROWS)] = None  # None: the store's default (~1.5 MiB of rows)
    modality: str | None = None  # a modality name of the dataset; None: the only one of the encoder's kind
    sequence: bool = False  # also store the last layer's sequence, <dataset>.<modality>.<encoder>-seq
    max_steps: Annotated[int | None, between(1, MAX_SEQUENCE_STEPS)] = None  # longer sequences: mean over equal windows
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # the ray engine joins this cluster; None: a local single-node Ray

    def check(self) -> None:
        if self.max_steps is not None and not self.sequence:
            raise UserError("max_steps bounds the sequence outputs: use it with --sequence")
        if self.ray_address is not None and self.engine != "ray":
            raise UserError("ray_address is for the ray engine: use it with --engine ray")


@dataclass
class ExtractResult:
    entry: FeatureEntry
    created: bool  # False: the entry was already stored and nothing ran
    chunks_resumed: int = 0  # finished chunks found from an interrupted run, not recomputed
    chunks_computed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    sequence: ExtractResult | None = None  # the sequence entry's, with ``sequence``


def choose_modality(manifest: Manifest, kind: str, requested: str | None) -> Modality:
    """The dataset's modality whose media the encoder's kind (audio, video, ...) reads: ``requested``
    if given (it must have media of that kind), else the only one of that kind."""
    with_media = [m for m in manifest.modalities if m.column is not None]
    of_kind = [m for m in with_media if m.kind == kind]
    if requested is not None:
        chosen = manifest.modality(requested)  # an unknown name lists the valid ones
        if chosen.column is None:
            raise UserError(f"{manifest.dataset} {requested} has no media to extract (its features are given)")
        if chosen.kind != kind:
            choices = ", ".join(m.name for m in of_kind) or "none"
            raise UserError(f"{manifest.dataset} {requested} is {chosen.kind}, but the encoder reads {kind}; "
                            f"{manifest.dataset} modalities of kind {kind}: {choices}")
        return chosen
    if not of_kind:
        described = ", ".join(f"{m.name} ({m.kind})" for m in with_media) or "no media"
        raise UserError(f"the encoder reads {kind}, but {manifest.dataset} has {described}")
    if len(of_kind) > 1:
        names = [m.name for m in of_kind]
        raise UserError(f"{manifest.dataset} has {kind} in {len(names)} modalities ({', '.join(names)}); choose "
                        f"one with --set modality=NAME")
    return of_kind[0]


def media_sources(values: list[Any], kind: str, root: Path | None) -> list[Any]:
    """Texts as they are; media paths relative to ``root`` (the dataset's media root) made absolute.

    Manifests hold relative paths, so the fingerprint does not depend on where the tree lies;
    only here, at read time, does the location enter.
    """
    if kind == "text":
        return values
    base = root if root is not None else Path(".")
    return [str(base / v) if isinstance(v, str) and v and not Path(v).is_absolute() else v for v in values]


def feature_key(dataset: str, version: str, modality: str, column: str, spec: Any, weights: dict[str, Any],
                options: ExtractOptions) -> dict[str, Any]:
    """Key material; device, batch size and workers change speed, not results, and stay out."""
    return {"dataset": dataset, "manifest_version": version, "modality": modality, "media_column": column,
            "encoder": asdict(spec), "weights": weights, "layers": list(options.layers), "dtype": options.dtype}


def sequence_feature(encoder: str) -> str:
    """The feature name of an encoder's sequence entry (``--input text=bert-seq``)."""
    return f"{encoder}{SEQUENCE_SUFFIX}"


def sequence_key(pooled_key: dict[str, Any], encoder: Encoder, options: ExtractOptions) -> dict[str, Any]:
    return {**pooled_key, "output": encoder.sequence_output, "max_steps": options.max_steps}


def planned_steps(encoder: Encoder, preparer: Any, sources: list[Any], known: dict[int, str],
                  max_steps: int | None) -> int:
    """T of a sequence entry: the most steps any usable row can give (from headers and token
    counts, without decoding), at most ``max_steps``; at least 1."""
    longest = max((encoder.max_steps(preparer.length(source)) for row, source in enumerate(sources)
                   if row not in known), default=1)
    return max(1, min(longest, max_steps or longest))


@dataclass(frozen=True)
class Planned:
    """An entry this extraction will write: how to open its writer, and its size on disk."""

    name: str
    key: dict[str, Any]
    kind: Literal["pooled", "sequence"]
    dim: int
    steps: int | None
    extras: dict[str, tuple[int, ...]]
    remaining_bytes: int  # what is left to write (an interrupted run's chunks are already there)

    def describe(self, n_rows: int, dtype: str) -> str:
        shape = " × ".join(map(str, (n_rows, *((self.steps,) if self.steps else ()), self.dim)))
        return f"{self.name} {shape} {dtype} ({human_size(self.remaining_bytes)})"


def check_free_space(store: Store, planned: list[Planned], n_rows: int, dtype: str, console: Console) -> None:
    """Print what will be written and refuse when it exceeds the store's free space."""
    needed = sum(p.remaining_bytes for p in planned)
    free = shutil.disk_usage(store.features_dir if store.features_dir.is_dir() else store.root).free
    listing = "; ".join(p.describe(n_rows, dtype) for p in planned)
    if needed > free:
        hint = " (bound the sequences with --set max_steps=N)" if any(p.kind == "sequence" for p in planned) else ""
        raise UserError(f"extraction needs about {human_size(needed)} on disk ({listing}), but only "
                        f"{human_size(free)} is free at {store.root}{hint}")
    console.print(f"writing about {human_size(needed)}: {listing}; {human_size(free)} free at {store.root}",
                  markup=False, highlight=False)


def extract(store: Store, dataset_name: str, dataset_config: Any, encoder: Encoder, *, weights: Path | None = None,
            options: ExtractOptions = ExtractOptions(), console: Console | None = None,
            show_progress: bool = True) -> ExtractResult:
    """Extract ``encoder`` features of one dataset modality into ``store``; resumable and idempotent."""
    console = console or Console(stderr=True)
    device = resolve_device(options.device)
    dataset = DATASETS.get(dataset_name)()
    manifest = dataset.manifest(dataset_config)
    dataset_name = manifest.dataset  # a custom dataset's own name (hf, folder: --name), else the registry's
    spec = encoder.spec(weights)
    spec.check_layers(options.layers)
    chosen = choose_modality(manifest, spec.modality, options.modality)
    modality, column = chosen.name, chosen.column
    version = store.save_manifest(manifest)
    if weights is None:
        identity = encoder.weights_identity(weights)
    else:  # hashing a local checkpoint reads all of it: memoised while its files' size and mtime hold
        identity = store.stat_memo.get(f"weights-identity/{encoder.name}", Path(weights),
                                       lambda: encoder.weights_identity(weights))
    key = feature_key(dataset_name, version, modality, column, spec, identity, options)
    name = feature_name(dataset_name, modality, encoder.name)
    wanted = {name: key}
    if options.sequence:
        wanted[feature_name(dataset_name, modality, sequence_feature(encoder.name))] = sequence_key(key, encoder, options)
    found = {entry_name: store.published(entry_name, entry_key) for entry_name, entry_key in wanted.items()}
    if all(entry is not None for entry in found.values()):
        return _result_of(found, {})

    engine = _engine(options)  # a missing optional engine is said before the model loads
    started = time.perf_counter()
    encoder.load(device, weights)
    load_s = time.perf_counter() - started
    preparer = encoder.preparer()
    sources = dataset.media_sources(dataset_config, manifest, modality)
    if sources is None:
        sources = media_sources(manifest.table[column].tolist(), spec.modality,
                                dataset.media_root(dataset_config, modality))
    known = dataset.unusable_media(manifest, modality)
    n_rows = len(manifest)
    planned = []
    for entry_name, entry_key in wanted.items():
        if found[entry_name] is not None:
            continue
        unfinished = store.unfinished(entry_name, entry_key)
        if entry_name == name:
            extras = {f"layer{k}": (spec.layer_dims[k],) for k in options.layers}
            row_shape, steps, kind = (spec.dim,), None, "pooled"
        else:
            extras, kind = {}, "sequence"
            if unfinished is not None and len(unfinished[0]) == 3:
                steps = unfinished[0][1]  # resumed with the T it began with (a longer row is then a failure)
            else:
                steps = planned_steps(encoder, preparer, sources, known, options.max_steps)
            row_shape = (steps, spec.dim)
        total = entry_bytes(n_rows, row_shape, options.dtype, extras)
        remaining = max(0, total - (unfinished[1] if unfinished is not None else 0))
        planned.append(Planned(entry_name, entry_key, kind, spec.dim, steps, extras, remaining))
    check_free_space(store, planned, n_rows, options.dtype, console)

    with contextlib.ExitStack() as stack:
        outputs = []
        for plan in planned:
            writer = stack.enter_context(store.writer(plan.name, plan.key, n_rows=n_rows, dim=plan.dim, steps=plan.steps,
                                                      dtype=options.dtype, extras=plan.extras,
                                                      chunk_rows=options.chunk_rows))
            if writer.existing is not None:  # another process published it while we loaded the model
                found[plan.name] = writer.existing
            else:
                outputs.append(Output(writer, plan.kind))
        assembler = Assembler(outputs, manifest.table["sample_id"].tolist())
        request = Request(options.layers, options.sequence and any(o.kind == "sequence" for o in outputs),
                          options.max_steps, options.dtype)
        label = " + ".join(f"{o.writer.name} [{o.writer.fingerprint[:12]}]" for o in outputs)
        job = Job(encoder, weights, device, preparer, sources, known, assembler.planning_chunks(), options.batch_size,
                  options.num_workers, request, assembler, label, console, show_progress)
        run_started = time.perf_counter()
        timings = {"load_s": load_s, **engine.run(job), "write_s": assembler.write_s}
        wall = time.perf_counter() - run_started
        timings.update(wall_s=wall, rows=job.total_rows, clips_per_s=job.total_rows / wall if wall > 0 else 0.0)
        if assembler.unfinished():
            raise RuntimeError(f"the {options.engine} engine stopped before writing every chunk of "
                               f"{', '.join(assembler.unfinished())}")
        _, precision = local.autocast(device)
        created = {}
        for output in outputs:
            found[output.writer.name] = output.writer.publish({
                "dataset": dataset_name, "manifest_version": version, "modality": modality, "encoder": encoder.name,
                "model_id": spec.model_id, "output": "sequence" if output.kind == "sequence" else "pooled",
                "device": str(device), "precision": precision, "engine": options.engine,
                "batch_size": options.batch_size, "num_workers": options.num_workers,
                "chunks_resumed": output.resumed, "chunks_computed": output.writer.n_chunks - output.resumed,
                "timings": timings,
            })
            created[output.writer.name] = output
    return _result_of(found, created)


def _engine(options: ExtractOptions) -> Any:
    if options.engine == "ray":
        from mmpipe.pipeline.engines import ray as ray_engine  # an optional extra: imported only when asked

        return ray_engine.engine(options.ray_address)
    return local


def _result_of(found: dict[str, FeatureEntry], created: dict[str, Output]) -> ExtractResult:
    """The pooled entry's result, with the sequence entry's in ``sequence``."""
    results = []
    for entry in found.values():
        output = created.get(entry.name)
        results.append(ExtractResult(entry, created=output is not None,
                                     chunks_resumed=output.resumed if output else 0,
                                     chunks_computed=output.writer.n_chunks - output.resumed if output else 0,
                                     failures=entry.failures()))
    primary, *rest = results
    primary.sequence = rest[0] if rest else None
    return primary
