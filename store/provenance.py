"""Which code made a run: mmpipe's own version, stamped on every run record (``code_version``).

``0.1.0`` for an installed copy; ``0.1.0+g1a2b3c4d5e6f`` (``.dirty`` appended when tracked files
are modified) when mmpipe runs from its own git checkout, e.g. an editable install of a clone.
A copy installed into a virtualenv that happens to sit inside some other git repository is
stamped with the version alone: the commit of a repository that is not mmpipe's says nothing
about mmpipe's code.
"""

from __future__ import annotations

import functools
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PROJECT = "mmpipe"
SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the folder holding store/, pipeline/, adapters/, evaluate/


@functools.cache
def code_version() -> str:
    try:
        installed = version(PROJECT)
    except PackageNotFoundError:
        installed = "unknown"
    commit = own_commit(SOURCE_ROOT)
    return f"{installed}+g{commit}" if commit else installed


def own_commit(root: Path) -> str | None:
    """The commit (12 hex digits, ``.dirty`` if tracked files differ) of the git checkout whose
    top level is ``root`` and whose pyproject.toml names mmpipe; None for anything else."""
    try:
        top = _git(root, "rev-parse", "--show-toplevel")
        if Path(top).resolve() != root.resolve() or not _names_mmpipe(root / "pyproject.toml"):
            return None
        commit = _git(root, "rev-parse", "--short=12", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + (".dirty" if dirty else "")


def _names_mmpipe(pyproject: Path) -> bool:
    try:
        return tomllib.loads(pyproject.read_text()).get("project", {}).get("name") == PROJECT
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5,
                          check=True).stdout.strip()
