"""The generated bad command lines for `mmpipe ingest` (tests/cli_cases.py, group "ingest"), checked
as test_cli_fuzz.py checks every other command's: exit 2, one line naming what is wrong, no
traceback, the store and the scratch folder unchanged. (The group runs here because the fuzz
test's COMMANDS tuple lists the commands it runs.)"""

from __future__ import annotations

import functools

import typer.testing
from typer.testing import CliRunner

from mmpipe.store.root import Store
from tests.cli_cases import cases
from tests.test_cli_fuzz import _check


def test_every_bad_ingest_value_is_refused_in_one_line_and_changes_nothing(tmp_path, monkeypatch):
    store, scratch = tmp_path / "store", tmp_path / "scratch"
    Store.open(store, create=True)
    scratch.mkdir()
    (scratch / "a_file").write_text("not a directory")
    monkeypatch.setattr(typer.testing, "_get_command", functools.cache(typer.testing._get_command))
    generated = [case for case in cases(store, scratch, "multiloreft-none") if case.command == "ingest"]
    assert len(generated) > 40
    runner = CliRunner()
    problems = [p for p in (_check(runner, store, scratch, case) for case in generated) if p]
    assert not problems, f"{len(problems)} of {len(generated)} cases broke:\n" + "\n".join(problems)
