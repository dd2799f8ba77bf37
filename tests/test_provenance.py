"""A run is stamped with mmpipe's own version (and its commit only from mmpipe's own checkout), and
the files a store is made of are readable by the group, so a lab can share one store."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mmpipe.store.provenance import code_version, own_commit
from mmpipe.store.root import Store
from mmpipe.store.statmemo import StatMemo
from tests.evalruns import simulate_sim1

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _repository(folder: Path, project: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{project}"\nversion = "0.1.0"\n')
    (folder / "store").mkdir()
    (folder / "store" / "runs.py").write_text("x = 1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    subprocess.run(["git", "add", "."], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=folder, check=True)
    return folder


@needs_git
def test_the_commit_of_mmpipes_own_checkout_only(tmp_path):
    checkout = _repository(tmp_path / "mmpipe", "mmpipe")
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=checkout, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert own_commit(checkout) == head
    (checkout / "store" / "runs.py").write_text("x = 2\n")
    assert own_commit(checkout) == head + ".dirty"
    # a copy installed into a virtualenv inside someone else's repository
    other = _repository(tmp_path / "thesis", "thesis")
    installed = other / "venv" / "lib" / "site-packages" / "mmpipe"
    (installed / "store").mkdir(parents=True)
    assert own_commit(installed) is None
    # another project's checkout, even at its top level
    assert own_commit(other) is None
    assert own_commit(tmp_path / "no-repository") is None


def test_the_version_leads_the_stamp():
    from importlib.metadata import version

    assert code_version().split("+")[0] == version("mmpipe")


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_store_files_are_readable_by_the_group(tmp_path, umask_022):
    store = Store.open(tmp_path / "store", create=True)
    simulate_sim1(store, n=200)
    StatMemo(tmp_path / "store" / "memo.json").get("size", tmp_path / "store" / "STORE.json", lambda: 1)
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.name == "memo.json" for p in files)
    private = [p for p in files if not stat.S_IMODE(p.stat().st_mode) & stat.S_IRGRP]
    assert not private
