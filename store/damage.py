"""Damaged store files: what could not be opened, as a typed record and as a one-line error.

Reading a store file never turns damage into a value. A file that is missing, truncated, not
the JSON/Parquet/Zarr/safetensors it should be, or JSON of the wrong shape raises `DamagedError`
(a `UserError`: one line, exit 2) naming the damaged entry, the file and what to do:
`mmpipe verify --repair` moves the entry aside, then the command that created it rebuilds it.

Listings (`Store.scan_features`, `Store.scan_runs`) never fail for the whole store because of
one entry: they return a `Listing` — the entries that opened, and a `Damaged` record for each
one that did not — so a caller can skip and name each damaged entry.

A file that exists but may not be read (permission denied) is not damage: that is a plain
`UserError` saying so, and nothing is moved aside for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from mmpipe.store.errors import UserError

Kind = Literal["store marker", "manifest", "feature entry", "run", "results DB"]

# What to do about a damaged entry of each kind: `mmpipe verify --repair` moves it aside (the
# store marker it rewrites), then the command that created it rebuilds it.
REMEDY: dict[str, str] = {
    "store marker": "run `mmpipe verify --repair` to rewrite it",
    "manifest": "run `mmpipe verify --repair` to move it aside, then re-run the command that created it "
                "(`mmpipe simulate` / `mmpipe extract`)",
    "feature entry": "run `mmpipe verify --repair` to move it aside, then re-run the command that created it "
                     "(`mmpipe simulate` / `mmpipe extract`)",
    "run": "run `mmpipe verify --repair` to move it aside, then re-run `mmpipe fit` (same config and seed) to "
           "refit it",
    "results DB": "run `mmpipe verify --repair` to move it aside, then re-run `mmpipe probe` to rebuild it",
}

T = TypeVar("T")


@dataclass(frozen=True)
class Damaged:
    """One damaged entry: ``path`` is what `mmpipe verify --repair` moves aside as a whole (an
    entry directory, a manifest file, the DB file); ``reason`` names the file inside it and what
    is wrong with it, e.g. ``meta.json is not valid JSON``."""

    path: Path
    kind: Kind
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}"

    def skipped(self) -> str:
        """The line a listing command prints for an entry it skipped."""
        return f"skipped damaged {self.kind} {self.path}: {self.reason}; run `mmpipe verify`"


@dataclass(frozen=True)
class Listing(Generic[T]):
    """The entries of a store listing that opened, and the damaged ones beside them."""

    entries: tuple[T, ...]
    damaged: tuple[Damaged, ...]


class DamagedError(UserError):
    """Reading a damaged entry: one line naming it, the file, and how to rebuild it."""

    def __init__(self, damaged: Damaged) -> None:
        self.damaged = damaged
        super().__init__(f"damaged {damaged.kind} {damaged.path}: {damaged.reason}; {REMEDY[damaged.kind]}")


class ChunkDamage(UserError):
    """A chunk file that is missing or of the wrong size; `FeatureEntry` and `RunEntry` turn it into
    a `DamagedError` naming their entry. ``reason`` names the file."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"chunk file {path} {reason}; the entry holding it is damaged: run `mmpipe verify --repair`, "
                         "then re-run the command that created it")


@contextmanager
def entry_chunks(entry: Path, kind: Kind) -> Iterator[None]:
    """Reading chunks of ``entry``: a `ChunkDamage` becomes the entry's `DamagedError`."""
    try:
        yield
    except ChunkDamage as error:
        relative = error.path.relative_to(entry) if error.path.is_relative_to(entry) else error.path
        raise DamagedError(Damaged(entry, kind, f"{relative} {error.reason}")) from None


def unreadable(path: Path, error: OSError) -> UserError:
    """The error for a store file that exists but cannot be read: permission is not damage."""
    if isinstance(error, PermissionError):
        return UserError(f"cannot read {path}: permission denied; check the store's file permissions")
    return UserError(f"cannot read {path}: {error.strerror or error}")


def read_json(path: Path, damaged: Callable[[str], DamagedError]) -> Any:
    """Parse a JSON file of an entry; a missing or unparsable file raises ``damaged(reason)``."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise damaged(f"{path.name} is missing") from None
    except IsADirectoryError:
        raise damaged(f"{path.name} is a directory, not a file") from None
    except OSError as error:
        if isinstance(error, PermissionError):
            raise unreadable(path, error) from None
        raise damaged(f"{path.name} cannot be read ({error.strerror or error})") from None
    try:
        return json.loads(text)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise damaged(f"{path.name} is not valid JSON" if text else f"{path.name} is empty") from None


def json_object(value: Any, name: str, damaged: Callable[[str], DamagedError], required: dict[str, type | tuple]
                ) -> dict[str, Any]:
    """``value`` as a JSON object holding ``required`` fields of the given types, else ``damaged``."""
    if not isinstance(value, dict):
        raise damaged(f"{name} holds a JSON {type(value).__name__}, not an object")
    for field, kind in required.items():
        if field not in value:
            raise damaged(f"{name} has no {field!r} field")
        if not isinstance(value[field], kind) or (kind is not bool and isinstance(value[field], bool)):
            raise damaged(f"{name}: {field!r} is a {type(value[field]).__name__}")
    return value
