"""Writing store files: a disk that refuses (full, read-only, quota, permission) is one line
naming what could not be written, where, why and how much space is free there — never a
traceback from deep inside zarr, pyarrow or safetensors.

Every writer of a store file wraps its writes in `writing`; it cleans up its own temporary
files and directories first (nothing half-published), so the error is the only trace left.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmpipe.store.errors import DISK_ERRNOS, UserError, disk_error_message


@contextmanager
def writing(what: str, where: Path, *, after: str = "") -> Iterator[None]:
    """Turn a disk OSError raised inside into a UserError: "could not write <what> at <where>:
    <reason> (<free space>)<after>"; any other OSError passes unchanged."""
    try:
        yield
    except OSError as error:
        reason = DISK_ERRNOS.get(error.errno or -1)
        if reason is None:
            raise
        raise UserError(disk_error_message(where, f"could not write {what}", reason) + after) from None


@functools.cache
def plain_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under this process's umask (0o644 under the
    usual 022): what a lab sharing one store by group expects of every file in it."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def as_plain_file(path: str | Path) -> None:
    """Give a temporary file from `tempfile.mkstemp` (created 0o600, private to its owner) the
    mode of a plain new file before it is published."""
    os.chmod(path, plain_file_mode())
