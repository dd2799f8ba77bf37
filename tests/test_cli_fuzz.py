"""Every command × generated bad values for every option and config field (`tests/cli_cases.py`):
each must exit 2 with one line on stderr naming what is wrong, no traceback, and leave the store
(and the scratch folder the case names) exactly as it was.

The cases run in-process (a subprocess per case would spend seconds importing torch); they are
split into one test per command so a failure names it, and the whole set stays well under two
minutes."""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from pathlib import Path

import pytest
import typer.testing
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from tests.cli_cases import Case, cases

COMMANDS = ("simulate", "fit", "extract", "ingest", "probe", "query", "report", "plot", "reproduce", "demo", "info",
            "list", "verify", "store", "stress", "export", "config")


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: (size, mtime in ns). Enough to see any write, cheap per case."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            stat = os.stat(os.path.join(folder, name))
            found[os.path.relpath(os.path.join(folder, name), root)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    """A small store: sim1 (400 rows), one short MultiLoReFT run, probed."""
    root = tmp_path_factory.mktemp("fuzz")
    store, scratch = root / "store", root / "scratch"
    scratch.mkdir()
    (scratch / "a_file").write_text("not a directory")
    runner = CliRunner()
    steps = [["simulate", "sim1", "--n", "400"],
             ["fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", "--set", "max_epochs_shared=1",
              "--set", "max_epochs_private=1", "--set", "max_epochs_joint=1"],
             ["probe", "--all", "--label", "y_s", "--component", "z_s"]]
    for step in steps:
        result = runner.invoke(app, ["--store", str(store), *step])
        assert result.exit_code == 0, (step, result.output)
    run_id = next(p.name for p in (store / "runs" / "multiloreft").iterdir() if not p.name.startswith("."))
    generated = defaultdict(list)
    for case in cases(store, scratch, f"multiloreft-{run_id[:12]}"):
        generated[case.command].append(case)
    return store, scratch, generated


def _check(runner: CliRunner, store: Path, scratch: Path, case: Case) -> str | None:
    """Why ``case`` was not refused properly, or None."""
    before = _listing(store), _listing(scratch)
    result = runner.invoke(app, ["--store", str(store), *case.argv])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"{case.what}: raised {type(result.exception).__name__}: {result.exception}"
    if "Traceback" in result.output:
        return f"{case.what}: traceback printed"
    if result.exit_code != 2:
        return f"{case.what}: exit {result.exit_code} (stderr: {' | '.join(lines)[:300]})"
    if len(lines) != 1 or not lines[0].startswith("mmpipe: error: "):
        return f"{case.what}: stderr is not one error line: {lines[:4]}"
    if case.expect.lower() not in lines[0].lower():
        return f"{case.what}: the error does not name {case.expect!r}: {lines[0]}"
    if (_listing(store), _listing(scratch)) != before:
        return f"{case.what}: the store or the scratch folder changed"
    return None


def test_every_command_is_fuzzed():
    registered = {command.name or command.callback.__name__ for command in app.registered_commands}
    groups = {group.name for group in app.registered_groups}
    assert registered | groups <= set(COMMANDS), sorted((registered | groups) - set(COMMANDS))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_bad_value_is_refused_in_one_line_and_changes_nothing(fuzz_store, command, monkeypatch):
    store, scratch, generated = fuzz_store
    # Typer rebuilds the Click command from the app on every invoke (~0.1 s, most of a case's time)
    monkeypatch.setattr(typer.testing, "_get_command", functools.cache(typer.testing._get_command))
    assert generated[command], f"no cases generated for {command}"
    runner = CliRunner()
    problems = [p for p in (_check(runner, store, scratch, case) for case in generated[command]) if p]
    assert not problems, f"{len(problems)} of {len(generated[command])} cases broke:\n" + "\n".join(problems)
