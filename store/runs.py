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
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from safetensors.torch import load_file, save_file

from mmpipe.store.errors import UserError
from mmpipe.store.features import _write_json, read_whole
from mmpipe.store.fingerprint import fingerprint as fingerprint_of
from mmpipe.store.fingerprint import key_material


@functools.cache
def code_version() -> str:
    """The git commit of the source tree (``+dirty`` if modified), or the package version."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mmpipe")
        except PackageNotFoundError:
            return "unknown"


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
    def from_json(cls, data: dict[str, Any], source: Path) -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in data]
        if missing or not isinstance(data, dict):
            raise UserError(f"{source} is not a run record of this mmpipe (missing {', '.join(missing)}); "
                            "refit the run in a new store")
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)


@dataclass(frozen=True)
class RunEntry:
    path: Path
    method: str
    fingerprint: str
    record: RunRecord
    key: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> RunEntry:
        record = RunRecord.from_json(json.loads((path / "run.json").read_text()), path / "run.json")
        key = json.loads((path / "key.json").read_text())
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
        group = zarr.open_group(self.path / "components", mode="r")
        return {n: torch.from_numpy(read_whole(group[n], self.path / "components" / n)) for n in names}

    def valid(self) -> np.ndarray:
        group = zarr.open_group(self.path / "components", mode="r")
        return np.asarray(group["valid"][...], dtype=bool)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return load_file(self.path / "checkpoint.safetensors")


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
        save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, tmp / "checkpoint.safetensors")
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
    return RunEntry.open(final)


def find_run(runs_dir: Path, method: str, config: Any) -> RunEntry | None:
    fingerprint = fingerprint_of(key_material({"method": method, **dict(config)}))
    final = Path(runs_dir) / method / fingerprint
    return RunEntry.open(final) if (final / "run.json").exists() else None


def list_runs(runs_dir: Path, method: str | None = None) -> list[RunEntry]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = [runs_dir / method] if method else sorted(p for p in runs_dir.iterdir() if p.is_dir())
    return [RunEntry.open(p) for folder in folders if folder.is_dir() for p in sorted(folder.iterdir())
            if not p.name.startswith(".") and (p / "run.json").exists()]


def get_run(runs_dir: Path, run_id: str) -> RunEntry:
    """A run by id (``<method>-<fingerprint prefix>``); unknown ids list the valid ones."""
    runs = list_runs(runs_dir)
    matches = [r for r in runs if r.run_id == run_id or (run_id.startswith(f"{r.method}-")
                                                          and r.fingerprint.startswith(run_id[len(r.method) + 1:]))]
    if len(matches) == 1:
        return matches[0]
    valid = ", ".join(r.run_id for r in runs) or "none (fit one with `mmpipe fit`)"
    problem = "is ambiguous" if matches else "is unknown"
    raise UserError(f"run {run_id!r} {problem}; valid: {valid}")
