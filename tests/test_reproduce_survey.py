"""`mmpipe reproduce survey` through the CLI on a tiny Simulation I and simseq (two seeds, one
epoch, MultiLoReFT and early fusion): the three tables, rate 0 = the clean probe, a rerun that
fits and stresses nothing, the missing-dataset line, and the refusals."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mmpipe.evaluate.reproduce_papers import DLF_INPUTS
from mmpipe.evaluate.reproduce_survey import RATES, survey_spec
from mmpipe.pipeline.cli import app
from mmpipe.store.results import fetch, reading
from mmpipe.store.root import Store

runner = CliRunner()
QUICK = ["--seeds", "2", "--n", "150", "--max-epochs", "1", "--jobs", "1", "--format", "markdown",
         "--method", "early-fusion", "--set", "minibatch_size=32"]
COLUMNS = ["Dataset", "Method", "Component", "Removed", *(f"{100 * r:g} %" for r in RATES)]


def _survey(store, *args):
    return runner.invoke(app, ["--store", str(store), "reproduce", "survey", *QUICK, *args])


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    store = tmp_path_factory.mktemp("survey") / "s"
    result = _survey(store)
    assert result.exit_code == 0, result.output
    return store, result


def _table(output: str, title: str) -> list[list[str]]:
    """Header and data rows of the markdown table titled ``title`` (cells stripped, \\_ unescaped)."""
    table = output[output.index(f"### {title}"):]
    table = table[: table.index("\n- ")]
    return [[c.strip().replace("\\_", "_") for c in line.strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| ")]


def test_the_three_tables(first):
    _, result = first
    missing = _table(result.stdout, "Survey Experiment 1")
    assert missing[0] == COLUMNS
    assert [r[:4] for r in missing[1:]] == [
        [d, method, c, m] for d, ms in (("sim1", ("m1", "m2")), ("simseq", ("text", "audio")))
        for method, cs in (("multiloreft", ("fused", "z_s")), ("early-fusion", ("fused",))) for c in cs for m in ms]
    assert all(" ± " in cell for row in missing[1:] for cell in row[4:]), missing
    retrieval = _table(result.stdout, "Survey Experiment 2")
    assert retrieval[0] == ["Dataset", "Method", "Query", "Target", "N", "R@1", "R@5", "R@10", "MedR"]
    assert [r[:4] for r in retrieval[1:]] == [
        ["sim1", "multiloreft", "z_s_m1", "z_s_m2"], ["sim1", "multiloreft", "z_s_m2", "z_s_m1"],
        ["simseq", "multiloreft", "z_s_text", "z_s_audio"], ["simseq", "multiloreft", "z_s_audio", "z_s_text"]]
    assert all(r[4] == "23" for r in retrieval[1:])  # the valid test rows of --n 150
    fusion = _table(result.stdout, "Survey Experiment 3")
    assert fusion[0] == ["Dataset", "Method", "Fusion", "Label", "Fused", "Params"]
    assert [r[:4] for r in fusion[1:]] == [
        ["sim1", "multiloreft", "factorised", "y_cond (MSE)"], ["sim1", "early-fusion", "early", "y_cond (MSE)"],
        ["simseq", "multiloreft", "factorised", "sentiment (MSE)"],
        ["simseq", "early-fusion", "early", "sentiment (MSE)"]]
    # the fused rate-0 column is the clean probe of Experiment 3, row for row
    clean = {(r[0], r[1]): r[4] for r in fusion[1:]}
    assert all(row[4] == clean[(row[0], row[1])] for row in missing[1:] if row[2] == "fused")
    assert any(row[5] != row[4] for row in missing[1:]), "removing 20 % changed no score"
    assert "reports no numbers" in result.stdout and "zeros (absent input)" in result.stdout


def test_rate_zero_is_the_clean_probe_and_the_rows_are_stored(first):
    store, _ = first
    with reading(Store.open(store).results_db) as conn:
        stress = fetch(conn, "SELECT s.run_id, s.modality, s.rate, s.component, s.label, s.metric, s.value, "
                             "p.value AS clean FROM stress s LEFT JOIN probes p USING (run_id, component, label, metric)")
    assert {r["rate"] for r in stress} == set(RATES)
    at_zero = [r for r in stress if r["rate"] == 0]
    # the same probe: equal up to the rounding of the ridge solved for one label instead of all (module docstring)
    assert at_zero and all(r["value"] == pytest.approx(r["clean"], rel=1e-9, abs=1e-12) for r in at_zero)
    runs = Store.open(store).runs()
    assert len(runs) == 2 * 2 * 2  # methods × datasets × seeds
    assert {(r["run_id"], r["modality"]) for r in stress} == {(r.run_id, m) for r in runs for m in r.record.inputs}


def test_a_rerun_fits_and_stresses_nothing_new(first):
    store, result = first
    assert "survey: not in the store, left out: mosi, mosei, urfunny, mustard" in result.stderr
    with reading(Store.open(store).results_db) as conn:
        before = fetch(conn, "SELECT count(*) AS n FROM stress")[0]["n"]
    again = _survey(store)
    assert again.exit_code == 0, again.output
    assert "8 runs (0 newly probed, 0 modality stresses newly scored)" in again.stderr
    assert again.stdout == result.stdout
    assert len(Store.open(store).runs()) == 8
    with reading(Store.open(store).results_db) as conn:
        assert fetch(conn, "SELECT count(*) AS n FROM stress")[0]["n"] == before


def test_a_narrower_stress_is_completed_and_kept(first):
    """`mmpipe stress` of z_s alone replaced the survey's rows of that corruption: the next survey
    scores that one stress again, with every component the store or the survey has."""
    store, result = first
    run = next(r for r in Store.open(store).runs("multiloreft") if r.record.dataset == "sim1")
    narrower = runner.invoke(app, ["--store", str(store), "stress", run.run_id, "--modality", "m1",
                                   "--component", "z_s", "--label", "y_s"])
    assert narrower.exit_code == 0, narrower.output
    again = _survey(store)
    assert again.exit_code == 0, again.output
    assert "8 runs (0 newly probed, 1 modality stresses newly scored)" in again.stderr
    assert again.stdout == result.stdout
    with reading(Store.open(store).results_db) as conn:
        found = fetch(conn, "SELECT DISTINCT rate, component, label FROM stress WHERE run_id = ? AND modality = 'm1'",
                      [run.run_id])
    assert {(r["rate"], r["component"], r["label"]) for r in found} == {
        (rate, c, label) for rate in RATES for c in ("fused", "z_s") for label in ("y_cond", "y_s")}


def test_s3_and_dlf_only_when_asked_and_where_they_apply(first):
    store, _ = first
    assert "s3" not in survey_spec().methods and "dlf" not in survey_spec().methods
    spec = survey_spec(["s3", "dlf"])
    assert spec.methods == ("multiloreft", "s3", "dlf")  # multiloreft always: it sizes the baselines
    tables, left_out = spec.for_dataset(Store.open(store).manifest("sim1"))
    assert [(t.inputs, t.fits) for t in tables] == [(("m1", "m2"), (("multiloreft", ()), ("s3", ())))]
    assert left_out == ["survey: dlf does not apply to sim1 (it takes text, audio, vision and a continuous task label; "
                        "sim1 has m1, m2 and a continuous task label)"]
    tables, left_out = spec.for_dataset(Store.open(store).manifest("simseq"))
    assert [(t.inputs, t.fits) for t in tables] == [
        (("text", "audio"), (("multiloreft", ()), ("s3", (("target", "sentiment"),)))),
        (DLF_INPUTS, (("dlf", ()),))] and not left_out  # dlf picks simseq's sentiment label itself


@pytest.mark.parametrize(("args", "message"), [
    (["survey", "--method", "inputs"], "--method 'inputs' is not a method of reproduce survey"),
    (["survey", "--mode", "drop"], "unknown --mode 'drop'"),
    (["table1", "--method", "drimu"], "apply to `mmpipe reproduce survey` only"),
    (["survey", "--dataset", "sim2"], "--dataset 'sim2' is not a dataset of survey"),
])
def test_refusals_before_any_work(tmp_path, args, message):
    result = runner.invoke(app, ["--store", str(tmp_path / "s"), "reproduce", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s").exists()
