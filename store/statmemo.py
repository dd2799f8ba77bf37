"""A memo of values computed from files, valid while the files' (path, size, mtime_ns) stay the same.

Hashing a local checkpoint for the feature fingerprint reads every byte (~380 MB for WavLM-base+)
on every `mmpipe extract`, even when the answer is "already stored". The memo keeps the result
under a signature of the files — resolved path, and per file its relative name, size and
``st_mtime_ns`` — the same heuristic make and rsync use: rewriting a file changes its mtime, so a
changed checkpoint is hashed again. (Content rewritten in place with the same size *and* the
mtime forced back would fool it; `rm <store>/cache/stat-memo.json` forgets everything.)

One small JSON file, ``<store>/cache/stat-memo.json``, written atomically; two processes racing
may each compute and the last write wins, which loses nothing but time. On a read-only store or a
full disk the memo is simply not written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmpipe.store.writes import as_plain_file

MAX_ENTRIES = 256  # oldest dropped first: a memo, not a record


def stat_signature(path: Path) -> str:
    """sha256 of the resolved path and (relative name, size, mtime_ns) of every non-hidden file under it."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    listing = [str(path)]
    for file in files:
        stat = file.stat()
        listing.append(f"{file.relative_to(path) if path.is_dir() else file.name}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(listing).encode()).hexdigest()


class StatMemo:
    def __init__(self, file: Path) -> None:
        self.file = Path(file)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.file.read_text())
        except (OSError, ValueError):  # absent or damaged: a memo can always start empty
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, kind: str, path: Path, compute: Callable[[], Any]) -> Any:
        """``compute()`` for ``path``, or its memoised value while the files under ``path`` are unchanged.

        ``kind`` separates values of different meaning for the same files. ``compute`` must return
        JSON data. A path that does not exist is never memoised (``compute`` reports it).
        """
        if not Path(path).exists():
            return compute()
        key = f"{kind}:{stat_signature(Path(path))}"
        memo = self._read()
        if key in memo:
            return memo[key]
        value = compute()
        memo = self._read()  # another process may have added entries meanwhile
        memo.pop(key, None)
        memo[key] = value
        while len(memo) > MAX_ENTRIES:
            memo.pop(next(iter(memo)))
        self._write(memo)
        return value

    def _write(self, memo: dict[str, Any]) -> None:
        """Best effort: a memo that cannot be written (read-only store, full disk) costs only the
        time to compute its value again, so the command that asked goes on."""
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=f".{self.file.name}.", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(memo, handle)
            as_plain_file(tmp)
            os.replace(tmp, self.file)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
