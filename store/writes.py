"""Writing store files: a disk that refuses (full, read-only, quota, permission) is one line
naming what could not be written, where, why and how much space is free there — never a
traceback from deep inside zarr, pyarrow or safetensors.

Every writer of a store file wraps its writes in `writing`; it cleans up its own temporary
files and directories first (nothing half-published), so the error is the only trace left.
"""

from __future__ import annotations

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
