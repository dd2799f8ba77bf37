"""Fingerprints: sha256 of the canonical JSON of everything that affects a result.

Key material = the fully resolved config (defaults included) minus the fields that change how
fast a result is computed but not what it is (device, batch size, worker count), plus
``CACHE_VERSION``. Callers add the encoder weights revision and the dataset manifest hash as
ordinary fields of the material. Non-JSON values (NaN, objects, bytes) raise rather than being
stringified, so two different configs can never share a key by accident.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

# Bump when the meaning of stored bytes changes (layout, dtype conventions, preprocessing code).
CACHE_VERSION = 1

EXCLUDED_FIELDS = frozenset({"device", "batch_size", "num_workers"})


class FingerprintError(TypeError):
    """A value in the key material that has no canonical JSON form."""


def _canonical(value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise FingerprintError(f"{path or '<root>'}: key {key!r} is not a string")
            if key in EXCLUDED_FIELDS:
                continue
            out[key] = _canonical(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FingerprintError(f"{path}: {value} has no canonical JSON form")
        return float(value)
    raise FingerprintError(f"{path or '<root>'}: {type(value).__name__} is not JSON data")


def key_material(config: Any) -> dict[str, Any]:
    """The exact data that is hashed: the canonicalised config plus ``cache_version``."""
    material = _canonical(config, "")
    if not isinstance(material, dict):
        raise FingerprintError("key material must be a mapping of field -> value")
    return {**material, "cache_version": CACHE_VERSION}


def canonical_json(material: dict[str, Any]) -> str:
    return json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def fingerprint(config: Any) -> str:
    """Hex sha256 of the canonical JSON of ``key_material(config)``."""
    return hashlib.sha256(canonical_json(key_material(config)).encode()).hexdigest()


def differing_fields(stored: dict[str, Any], requested: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields where two key materials disagree (added, removed or changed)."""
    fields = []
    for key in sorted(set(stored) | set(requested)):
        name = f"{prefix}.{key}" if prefix else key
        if key not in stored or key not in requested:
            fields.append(name)
        elif isinstance(stored[key], dict) and isinstance(requested[key], dict):
            fields.extend(differing_fields(stored[key], requested[key], name))
        elif stored[key] != requested[key]:
            fields.append(name)
    return fields
