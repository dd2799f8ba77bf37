"""The CLI's finish (issue 18 point 5): defaults in the help, one valid example per command,
--version, shell completion, a light start-up, piped output neither cut nor wrapped, --json for
info and list, query cells verbatim, `mmpipe config`, YAML config files, fit's progress events."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import click
import pytest
import typer
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.pipeline.cli.catalog import PACKAGES, plugins
from mmpipe.store.config import SHARED_MEANINGS, field_meanings, load_config_file
from mmpipe.store.errors import UserError
from mmpipe.store.provenance import code_version
from mmpipe.store.ranges import POSITIVE, Checked

LIGHT = ("torch", "sklearn", "duckdb", "zarr", "pandas", "transformers", "matplotlib", "pyarrow")


def _group() -> click.Group:
    return typer.main.get_command(app)


def _help(*argv: str) -> str:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_shows_every_default_once_and_no_hand_written_default():
    group = _group()
    for name, command in group.commands.items():
        for param in command.params:
            assert "[default" not in (getattr(param, "help", None) or ""), (name, param.name)
    fit = _help("fit")
    assert "[default: 0,1,2,3]" in fit and "(mean)]" in fit and fit.count("[default: 1]") == 1  # --jobs
    simulate = _help("simulate")
    assert "10000 for sim1/sim2" in simulate and "[default: float32]" in simulate


def test_no_help_text_is_eaten_as_markup():
    for name, command in _group().commands.items():
        shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", _help(name)).split())
        texts = [p.help for p in command.params if getattr(p, "help", None) and not getattr(p, "hidden", False)]
        texts += [paragraph.replace("\\[", "[") for paragraph in (command.help or "").split("\n\n")]
        for text in texts:
            assert " ".join(text.replace("\\[", "[").split()) in shown, (name, text)


def test_every_command_has_one_example_that_is_a_valid_invocation():
    group = _group()
    root_options = {opt for p in group.params for opt in getattr(p, "opts", [])}
    for name, command in group.commands.items():
        examples = [line.strip() for line in _help(name).splitlines() if line.strip().startswith("Example: ")]
        assert len(examples) == 1, (name, examples)
        argv = shlex.split(examples[0].removeprefix("Example: "))
        assert argv[0] == "mmpipe", examples[0]
        argv = argv[1:]
        while argv[0].startswith("--"):  # the main options, before the command
            assert argv[0] in root_options, examples[0]
            argv = argv[2:]
        assert argv[0] == name, examples[0]
        options = {opt for p in command.params for opt in getattr(p, "opts", []) if opt.startswith("-")}
        used = [word for word in argv[1:] if word.startswith("--")]
        assert used and set(used) <= options, (name, set(used) - options)


def test_version_is_mmpipes_own():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"mmpipe {code_version()}"


def test_shell_completion_prints_a_script():
    command = [shutil.which("mmpipe")] if shutil.which("mmpipe") else [sys.executable, "-m", "mmpipe.pipeline"]
    # Typer detects the shell from the parent processes; its test switch makes the option take the shell's name
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = subprocess.run([*command, "--show-completion", "bash"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F" in result.stdout and "_COMPLETE=complete_bash" in result.stdout


def test_completion_offers_the_registered_names():
    mmpipe = shutil.which("mmpipe")
    if mmpipe is None:
        pytest.skip("the mmpipe script is not installed on PATH")
    for words, expected in (("mmpipe fit mult", ["mult-interactions", "multiloreft"]),
                            ("mmpipe extract cremad --encoder wav", ["wav2vec2", "wavlm"]),
                            ("mmpipe list me", ["methods"]), ("mmpipe config dr", ["drimu"])):
        env = {**os.environ, "_MMPIPE_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        result = subprocess.run([mmpipe], capture_output=True, text=True, env=env)
        assert result.stdout.split() == expected, (words, result.stdout, result.stderr)


def test_importing_the_cli_loads_no_heavy_library():
    code = ("import sys, mmpipe.pipeline.cli; "
            f"print(' '.join(m for m in {LIGHT!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_the_catalog_is_what_the_registries_hold():
    from mmpipe.adapters import METHODS
    from mmpipe.pipeline.datasets import DATASETS
    from mmpipe.pipeline.encoders import ENCODERS

    registries = {"datasets": DATASETS, "encoders": ENCODERS, "methods": METHODS}
    assert set(registries) == set(PACKAGES)
    for kind, registry in registries.items():
        assert [(p.name, p.description) for p in plugins(kind)] == [
            (name, getattr(registry.get(name), "description", "")) for name in registry.names()]


def test_list_piped_is_neither_cut_nor_wrapped_and_has_json():
    text = subprocess.run([sys.executable, "-m", "mmpipe.pipeline", "list"], capture_output=True, text=True,
                          check=True, env={"PATH": "", "COLUMNS": "80"}).stdout
    longest = max((p for kind in PACKAGES for p in plugins(kind)), key=lambda p: len(p.description))
    assert len(longest.description) > 80
    assert any(longest.description in line for line in text.splitlines())
    listed = json.loads(CliRunner().invoke(app, ["list", "--json"]).output)
    assert sorted(listed) == sorted(PACKAGES)
    assert {"name": longest.name, "description": longest.description} in [i for v in listed.values() for i in v]


@pytest.fixture(scope="module")
def probed_store(tmp_path_factory):
    """A store under a long path: sim1 (400 rows), the `inputs` method (nothing trained), probed."""
    store = tmp_path_factory.mktemp("polish") / ("a-long-folder-name-" * 8) / "store"
    runner = CliRunner()
    for step in (["simulate", "sim1", "--n", "400"], ["fit", "inputs", "--dataset", "sim1", "--seeds", "0"],
                 ["probe", "--all", "--label", "y_s"]):
        result = runner.invoke(app, ["--store", str(store), *step])
        assert result.exit_code == 0, (step, result.output)
    return store


def test_info_piped_keeps_long_values_on_one_line_and_has_json(probed_store):
    result = CliRunner().invoke(app, ["--store", str(probed_store), "info"])
    assert result.exit_code == 0
    assert len(str(probed_store)) > 160
    assert any(f"manifests in {probed_store}" in line for line in result.output.splitlines())
    info = json.loads(CliRunner().invoke(app, ["--store", str(probed_store), "info", "--json"]).output)
    assert sorted(info) == ["features", "manifests", "runs", "store"]
    assert info["manifests"][0]["dataset"] == "sim1" and sum(info["manifests"][0]["splits"].values()) == 400
    assert {f["name"] for f in info["features"]} == {"sim1.m1.simulated", "sim1.m2.simulated"}
    assert info["runs"][0]["run"].startswith("inputs-") or info["runs"][0]["dataset"] == "sim1"


def test_query_prints_cells_verbatim(probed_store):
    sql = ("SELECT 'multiloreft [prune=False]' AS a, 'multiloreft [bold]x[/bold]' AS b, repeat('z', 300) AS c")
    result = CliRunner().invoke(app, ["--store", str(probed_store), "query", sql])
    assert result.exit_code == 0, result.output
    assert "multiloreft [prune=False]" in result.output and "multiloreft [bold]x[/bold]" in result.output
    assert any("z" * 300 in line for line in result.output.splitlines())


def test_report_tables_piped_are_neither_cut_nor_wrapped(capsys):
    """`report` and `reproduce` print through `emit_tables`: a long cell, title and note stay whole."""
    from mmpipe.evaluate.tables import Cell, Table
    from mmpipe.pipeline.cli.app import emit_tables

    variant = "multiloreft [prune=False, lr=0.005, " + "x" * 150 + "]"
    note = "every number: test split, probes fitted on train, C chosen on val; " + "n" * 120
    table = Table("ablations", "a title " + "t" * 120, "", ["variant", "Δ"], [[Cell(variant), Cell("0.123 ± 0.004")]],
                  notes=[note])
    emit_tables([table], "terminal", None, "1 table", file_width=240)
    lines = capsys.readouterr().out.splitlines()
    for text in (variant, note, table.title):
        assert any(text in line for line in lines), text


@pytest.mark.parametrize("method", [p.name for p in plugins("methods")])
def test_config_lists_every_field_with_type_default_and_meaning(method):
    from mmpipe.adapters import METHODS

    cls = METHODS.get(method).Config
    result = CliRunner().invoke(app, ["config", method, "--json"])
    assert result.exit_code == 0, result.output
    fields = json.loads(result.output)
    assert [f["field"] for f in fields] == [f.name for f in dataclasses.fields(cls)]
    defaults = cls()
    for field in fields:
        assert field["type"] and field["meaning"], field  # a new field needs a comment beside it
        assert json.dumps(field["default"]) == json.dumps(getattr(defaults, field["field"]))
        if field["field"] in SHARED_MEANINGS:
            assert field["meaning"].startswith(SHARED_MEANINGS[field["field"]])
    table = CliRunner().invoke(app, ["config", method])
    assert table.exit_code == 0 and all(f["field"] in table.output for f in fields)


@dataclass(frozen=True)
class Toy(Checked):
    # the step size of the
    # optimiser
    step: Annotated[float, POSITIVE] = 0.1
    width: int = 3  # hidden units
    plain: bool = True
    device: str = "cpu"  # for the toy


def test_field_meanings_read_the_comments_above_and_beside_a_field():
    assert field_meanings(Toy) == {"step": "the step size of the optimiser", "width": "hidden units", "plain": "",
                                   "device": f"{SHARED_MEANINGS['device']} (for the toy)"}


def test_yaml_config_files_are_read_as_strictly_as_json(tmp_path):
    good = tmp_path / "fit.yaml"
    good.write_text("step: 1e-3\nwidth: 5\nplain: false\n")
    assert load_config_file(Toy(), str(good)) == Toy(step=1e-3, width=5, plain=False)
    (tmp_path / "fit.yml").write_text("step: 0.5\n")
    assert load_config_file(Toy(), str(tmp_path / "fit.yml")).step == 0.5
    for text, word in (("step: '0.1'\n", "step"), ("width: 1.5\n", "width"), ("plain: 1\n", "plain"),
                       ("nope: 1\n", "nope"), ("- 1\n- 2\n", "YAML mapping"), ("step: [1\n", "not valid YAML"),
                       ("step: -1\n", "step"), ("step: .nan\n", "step"), ("!!python/object:os.system {}\n", "YAML")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(UserError, match=word):
            load_config_file(Toy(), str(bad))


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    from mmpipe.pipeline.datasets import DATASETS
    from mmpipe.pipeline.simulate import simulate
    from mmpipe.store.root import Store

    store = Store.open(tmp_path_factory.mktemp("progress") / "store", create=True)
    simulate(store, "sim1", DATASETS.get("sim1").Config(n=400))
    return store


@pytest.mark.parametrize("jobs", [1, 2])
def test_fit_reports_each_epoch_of_each_stage_of_each_seed(sim_store, jobs):
    from mmpipe.adapters import METHODS
    from mmpipe.pipeline.fit import fit_runs

    caps = {"shared": 3, "private": 2, "joint": 2}
    config = METHODS.get("multiloreft").Config(**{f"max_epochs_{k}": v for k, v in caps.items()})
    events = []
    seeds = [2 * jobs, 2 * jobs + 1]  # runs of their own: the store keeps the other test's
    outcomes = fit_runs(sim_store, "multiloreft", "sim1", {"m1": None, "m2": None}, config, seeds, jobs=jobs,
                        on_epoch=lambda seed, event: events.append((seed, event)))
    for outcome in outcomes:
        mine = [e for seed, e in events if seed == outcome.run.record.seed]
        assert list(dict.fromkeys(e.stage for e in mine)) == list(caps)
        for stage, cap in caps.items():
            run = [e for e in mine if e.stage == stage]
            assert [(e.epoch, e.cap, e.last) for e in run] == [(n, cap, n == cap) for n in range(1, cap + 1)]
        assert not outcome.reused and len(mine) == outcome.run.record.epochs


def test_fit_progress_in_a_log_is_plain_lines(sim_store):
    result = CliRunner().invoke(app, ["--store", str(sim_store.root), "fit", "contrastive", "--dataset", "sim1",
                                      "--seeds", "0", "--set", "max_epochs=2", "--set", "size=input"])
    assert result.exit_code == 0, result.output
    assert "seed 0: train stage ended after 2 of 2 epochs" in result.stderr
    assert "━" not in result.stderr and "\r" not in result.stderr
