"""The one exception family the CLI turns into a one-line message and exit code 2, and the
mapping of disk errors (full, read-only, denied) onto it."""

import errno
import os
import shutil
from pathlib import Path


class UserError(Exception):
    """Bad input from the user: an unknown name, a missing path, a mismatched key.

    The message must be a single self-explanatory line; the CLI prints it without a traceback.
    """


class UnknownNameError(UserError, KeyError):
    """A name that no registry (or store listing) knows; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class KeyMismatchError(UserError):
    """A request whose fingerprint key material disagrees with what the store holds."""


# errno values that mean "the disk or its permissions refused", not "mmpipe is wrong"
DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the filesystem is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted", errno.EIO: "an input/output error (failing disk?)"}


def human_size(n_bytes: float) -> str:
    """``512 B``, ``1.5 KiB``, ... ``2.0 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError


def free_space(path: str | os.PathLike[str]) -> str:
    """``"12.3 GiB free"`` on the filesystem holding ``path`` (its nearest existing parent)."""
    place = Path(path).absolute()
    while not place.exists() and place.parent != place:
        place = place.parent
    try:
        return f"{human_size(shutil.disk_usage(place).free)} free"
    except OSError:
        return "free space unknown"


def disk_error_message(path: str | os.PathLike[str], what: str, reason: str) -> str:
    """One line: what could not be done, where, why, and how much space is left there."""
    return f"{what} at {path}: {reason} ({free_space(path)})"


def disk_error(error: OSError) -> UserError | None:
    """A UserError for an OSError the disk caused (full, read-only, denied); None for any other."""
    reason = DISK_ERRNOS.get(error.errno or -1)
    if reason is None:
        return None
    where = error.filename if error.filename is not None else "the store"
    return UserError(disk_error_message(where, "could not write" if error.errno != errno.EACCES else "could not access",
                                        reason))
