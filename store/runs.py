"""Adapter runs: one directory per (method, fingerprint), published atomically.

::

    <store>/runs/<method>/<fingerprint>/
        run.json                 the run record (`RunRecord`)
        key.json                 key material of the fingerprint (config + seed + input entries)
        checkpoint.safetensors   the trained state dict
        components/              Zarr v3 group: one float32 [N, r] array per component the
                                 method produced, rows in manifest order, plus valid [N] bool

``run_id`` is ``<method>-<fingerprint[:12]>``; the same config and seed again finds the published
run and does no work.

Reading a damaged run is an error naming the file, never a value (store/damage.py): a
``run.json`` that is missing, not JSON or not a `RunRecord` (field types included), a
``key.json`` that does not hash to the run's fingerprint, a checkpoint that safetensors cannot
read, a component array whose metadata or chunk files are damaged. Listings (`scan_runs`,
`list_runs`) skip a damaged run and `scan_runs` names it; asking for that run by id or by key
(`get_run`, `find_run`) raises its `DamagedError`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from mmpipe.store.damage import Damaged, DamagedError, Listing, entry_chunks, read_json, unreadable
from mmpipe.store.errors import UserError
from mmpipe.store.features import _write_json, open_array, read_mask, read_whole
from mmpipe.store.fingerprint import canonical_json, key_material
from mmpipe.store.fingerprint import fingerprint as fingerprint_of
from mmpipe.store.writes import writing


def run_id_of(method: str, fingerprint: str) -> str:
    return f"{method}-{fingerprint[:12]}"


@dataclass(frozen=True)
class RunRecord:
    """What a fit did, as ``run.json`` holds it; every layer reads these fields, never a dict.

    ``inputs`` maps each modality, in the order the method saw them, to its feature entry name
    (``<dataset>.<modality>.<feature>``); ``input_fingerprints`` to that entry's fingerprint.
    ``ablation`` names the paper ablation the config applies (None for the full method);
    ``settings`` the other config fields that differ from the method's defaults for this data.
    ``history`` holds what the method reports beyond the common fields (stage and rank
    histories, sizes, the supervised target, ...).
    """

    method: str
    dataset: str
    manifest_version: str
    inputs: dict[str, str]
    input_fingerprints: dict[str, str]
    seed: int
    config: dict[str, Any]
    ablation: str | None
    settings: dict[str, Any]
    dims: dict[str, int]
    components: list[str]
    started_at: str
    seconds: float
    code_version: str
    n_params: int
    split_protocol: str = ""
    epochs: int | None = None
    ranks: dict[str, dict[str, int]] | None = None  # component -> {"initial", "final"}
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    history: dict[str, Any] = dataclasses.field(default_factory=dict)
    pooling: dict[str, str] = dataclasses.field(default_factory=dict)  # modality -> how a sequence was pooled
    fingerprint: str = ""  # filled when the run is published
    run_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, damaged: Callable[[str], DamagedError]) -> RunRecord:
        """The record ``run.json`` holds; anything else (another format, a field of the wrong
        type) raises ``damaged(reason)``. Unknown extra fields are ignored."""
        if not isinstance(data, dict):
            raise damaged(f"run.json holds a JSON {type(data).__name__}, not a run record")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING and f.name not in data]
        if missing:
            raise damaged(f"run.json is not a run record of this mmpipe (missing {', '.join(missing)})")
        hints = _record_types()
        for f in fields:
            if f.name in data and not _is_json_of(data[f.name], hints[f.name]):
                raise damaged(f"run.json: {f.name!r} is a {type(data[f.name]).__name__}, not {hints[f.name]}")
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)


@functools.cache
def _record_types() -> dict[str, Any]:
    return typing.get_type_hints(RunRecord)


def _is_json_of(value: Any, hint: Any) -> bool:
    """Whether parsed JSON ``value`` has the type ``hint`` (str, int, float, bool, None, Any, and
    dict / list / unions of them), checked all the way down."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_json_of(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is dict:
        return isinstance(value, dict) and all(_is_json_of(k, args[0]) and _is_json_of(v, args[1])
                                               for k, v in value.items())
    if origin is list:
        return isinstance(value, list) and all(_is_json_of(v, args[0]) for v in value)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _damaged_run(path: Path) -> Callable[[str], DamagedError]:
    return lambda reason: DamagedError(Damaged(path, "run", reason))


@dataclass(frozen=True)
class RunEntry:
    path: Path
    method: str
    fingerprint: str
    record: RunRecord
    key: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> RunEntry:
        """Read ``run.json`` and ``key.json``; damage raises `DamagedError`. Components and the
        checkpoint are checked when they are read."""
        damaged = _damaged_run(path)
        record = RunRecord.from_json(read_json(path / "run.json", damaged), damaged)
        if record.method != path.parent.name or record.fingerprint != path.name:
            raise damaged(f"run.json describes run {record.method}/{record.fingerprint[:12]}, not this one")
        key = read_json(path / "key.json", damaged)
        try:
            digest = hashlib.sha256(canonical_json(key).encode()).hexdigest() if isinstance(key, dict) else None
        except (TypeError, ValueError):  # NaN has no canonical JSON
            digest = None
        if digest != path.name:
            raise damaged("key.json does not hash to the run's fingerprint (its directory name)")
        return cls(path=path, method=record.method, fingerprint=path.name, record=record, key=key)

    @property
    def run_id(self) -> str:
        return run_id_of(self.method, self.fingerprint)

    def component_names(self) -> list[str]:
        return list(self.record.components)

    def components(self, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Component arrays, float32 (N, r), rows in manifest order. Unknown names raise a UserError."""
        available = self.component_names()
        names = available if names is None else names
        unknown = [n for n in names if n not in available]
        if unknown:
            raise UserError(f"run {self.run_id} has no component {unknown[0]!r}; valid: {', '.join(available)}")
        valid = self.valid()
        arrays = {name: self.array(name) for name in names}
        with entry_chunks(self.path, "run"):
            out = {}
            for name, array in arrays.items():
                if array.ndim != 2 or array.shape[0] != len(valid):
                    raise _damaged_run(self.path)(f"components/{name}/zarr.json describes {tuple(array.shape)}, "
                                                  f"not ({len(valid)}, r) rows of the run's valid mask")
                values = read_whole(array, self.path / "components" / name)
                # a run is published only with finite components: NaN/Inf in a valid row means the
                # chunk's bytes were overwritten (uncompressed chunks carry no checksum)
                if not np.isfinite(values[valid]).all():
                    raise _damaged_run(self.path)(f"components/{name} holds NaN or Inf in valid rows, which no "
                                                  "published run does")
                out[name] = torch.from_numpy(values)
            return out

    def valid(self) -> np.ndarray:
        """Rows whose inputs were all valid; a row outside it holds no component values."""
        with entry_chunks(self.path, "run"):
            return read_mask(self.array("valid"), self.path / "components" / "valid")

    def array(self, name: str) -> zarr.Array:
        return open_array(self.path / "components", name, _damaged_run(self.path), where="components/",
                          dtype="bool" if name == "valid" else "float32")

    def state_dict(self) -> dict[str, torch.Tensor]:
        path = self.path / "checkpoint.safetensors"
        try:
            return load_file(path)
        except FileNotFoundError:
            raise _damaged_run(self.path)("checkpoint.safetensors is missing") from None
        except PermissionError as error:
            raise unreadable(path, error) from None
        except (SafetensorError, OSError, ValueError) as error:
            raise _damaged_run(self.path)(f"checkpoint.safetensors is unreadable ({error})") from None


def publish_run(runs_dir: Path, method: str, config: Any, record: RunRecord,
                components: dict[str, np.ndarray | torch.Tensor], valid: np.ndarray,
                state_dict: dict[str, torch.Tensor]) -> RunEntry:
    """Write a run to a temporary directory and rename it into place (atomic).

    ``config`` is the run's key (everything that determines its result). If the same run was
    published meanwhile (same fingerprint), the existing one is kept.
    """
    key = key_material({"method": method, **dict(config)})
    fingerprint = fingerprint_of(key)
    folder = Path(runs_dir) / method
    final = folder / fingerprint
    if final.exists():
        return RunEntry.open(final)
    with writing(f"run {run_id_of(method, fingerprint)}", final):
        _write_run(folder, final, fingerprint, method, key, record, components, valid, state_dict)
    return RunEntry.open(final)


def _write_run(folder: Path, final: Path, fingerprint: str, method: str, key: dict[str, Any], record: RunRecord,
               components: dict[str, np.ndarray | torch.Tensor], valid: np.ndarray,
               state_dict: dict[str, torch.Tensor]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{fingerprint}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        group = zarr.open_group(tmp / "components", mode="w")
        for name, values in components.items():
            array = values.detach().cpu().float().numpy() if isinstance(values, torch.Tensor) else \
                np.asarray(values, dtype=np.float32)
            group.create_array(name, data=np.ascontiguousarray(array), chunks=array.shape, compressors=None)
        group.create_array("valid", data=np.asarray(valid, dtype=bool), compressors=None)
        # serialised in memory, written by Python: safetensors' own file writer reports a full disk
        # as a SafetensorError without its errno (adapter state dicts are small)
        (tmp / "checkpoint.safetensors").write_bytes(save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}))
        _write_json(tmp / "key.json", key)
        published = dataclasses.replace(record, method=method, fingerprint=fingerprint,
                                        run_id=run_id_of(method, fingerprint), components=list(components))
        # insertion order kept: the order of ``inputs`` and ``dims`` is the order the method saw
        (tmp / "run.json").write_text(json.dumps(published.to_json(), indent=1))
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def find_run(runs_dir: Path, method: str, config: Any) -> RunEntry | None:
    """The published run of this key, or None; a damaged one raises (refitting over it would hide it)."""
    fingerprint = fingerprint_of(key_material({"method": method, **dict(config)}))
    final = Path(runs_dir) / method / fingerprint
    return RunEntry.open(final) if final.exists() else None


def run_dirs(runs_dir: Path, method: str | None = None) -> list[Path]:
    """Every published run directory (``<method>/<fingerprint>``), intact or not; ``.tmp-*`` excluded."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = [runs_dir / method] if method else sorted(p for p in runs_dir.iterdir() if p.is_dir())
    return [p for folder in folders if folder.is_dir() for p in sorted(folder.iterdir())
            if p.is_dir() and not p.name.startswith(".")]


def scan_runs(runs_dir: Path, method: str | None = None) -> Listing[RunEntry]:
    """The runs that open, and a `Damaged` record for each that does not."""
    entries, damaged = [], []
    for path in run_dirs(runs_dir, method):
        try:
            entries.append(RunEntry.open(path))
        except DamagedError as error:
            damaged.append(error.damaged)
    return Listing(tuple(entries), tuple(damaged))


def list_runs(runs_dir: Path, method: str | None = None) -> list[RunEntry]:
    """The runs that open; damaged ones are skipped (`scan_runs` names them)."""
    return list(scan_runs(runs_dir, method).entries)


def get_run(runs_dir: Path, run_id: str) -> RunEntry:
    """A run by id (``<method>-<fingerprint prefix>``); unknown ids list the valid ones, and a
    damaged run asked for by id raises its `DamagedError`."""
    listing = scan_runs(runs_dir)
    known = [(r.method, r.fingerprint, r) for r in listing.entries]
    known += [(d.path.parent.name, d.path.name, d) for d in listing.damaged]
    matches = [item for method, fingerprint, item in known
               if run_id_of(method, fingerprint) == run_id
               or (run_id.startswith(f"{method}-") and fingerprint.startswith(run_id[len(method) + 1:]))]
    if len(matches) == 1:
        if isinstance(matches[0], Damaged):
            raise DamagedError(matches[0])
        return matches[0]
    valid = ", ".join(r.run_id for r in listing.entries) or "none (fit one with `mmpipe fit`)"
    problem = "is ambiguous" if matches else "is unknown"
    raise UserError(f"run {run_id!r} {problem}; valid: {valid}")
