"""`mmpipe reproduce s3-table1 / s3-table2 / dlf-table1 / dlf-table2` through the CLI on tiny
ingested fixtures (MOSI and MUStARD in MultiBench's layout) and a small simseq, with tiny widths
(`--set`) and one epoch; and the shape of the typed paper numbers."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from mmpipe.adapters.methods.dlf import DLF, DLFConfig
from mmpipe.adapters.methods.s3 import RHOS, STAGE_COMPONENTS, S3Summary
from mmpipe.evaluate import reference_dlf, reference_s3
from mmpipe.evaluate.reproduce import SPECS
from mmpipe.evaluate.reproduce_papers import PAPER_SPECS
from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.affect_files import write

runner = CliRunner()
QUICK = ["--seeds", "2", "--max-epochs", "1", "--jobs", "1", "--n", "120", "--format", "markdown"]
S3_TINY = [f"--set={item}" for item in ("widths=8,8", "heads=2", "layers=1", "expansion=2", "minibatch_size=16",
                                        "sparsify_batch_size=40", "probe_c_grid=1")]
DLF_TINY = [f"--set={item}" for item in ("d_model=10", "heads=2", "ortho_chunk=10", "layers=1", "memory_layers_self=1",
                                         "memory_layers_cross=1", "accumulate=2")]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """MOSI and MUStARD ingested from MultiBench-layout files with 8 steps per row."""
    root = tmp_path_factory.mktemp("papers")
    for dataset in ("mosi", "mustard"):
        write("multibench", root / "data", dataset, steps=8)
        result = runner.invoke(app, ["--store", str(root / "s"), "ingest", dataset, "--data-dir", str(root / "data")])
        assert result.exit_code == 0, result.output
    return root / "s"


def _reproduce(store, *args):
    result = runner.invoke(app, ["--store", str(store), "reproduce", *args])
    assert result.exit_code == 0, result.output
    return result


def _rows(output: str, first: str) -> list[list[str]]:
    """The header and data rows of the markdown table whose title starts with ``first`` (cells stripped)."""
    table = output[output.index(f"### {first}"):]
    table = table[: table.index("\n- ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]


def _printed(mean: float, std: float | None = None, digits: int = 2) -> str:
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def test_s3_table1_layout_and_the_typed_paper_rows(store):
    result = _reproduce(store, "s3-table1", "--dataset", "mosi", *QUICK, *S3_TINY)
    rows = _rows(result.stdout, "S3 Table 1")
    header, body = rows[0], rows[1:]
    assert header == ["Dataset", "G", "", "Spec", "Sel", *(f"ρ={r:g}" for r in RHOS[1:]), "ρ chosen on val"]
    assert [(r[0], r[1], r[2]) for r in body] == [("mosi", "2", "ours"), ("", "", "paper"), ("mosi", "4", "ours"),
                                                  ("", "", "paper"), ("mosi", "8", "ours"), ("", "", "paper")]
    runs = Store.open(store).runs("s3")
    assert sorted((r.record.dataset, r.record.config["granularity"], r.record.seed) for r in runs) == [
        ("mosi", g, s) for g in (2, 4, 8) for s in (0, 1)]
    for ours, paper, g in zip(body[0::2], body[1::2], (2, 4, 8), strict=True):
        typed = reference_s3.stage_row("mosi", g).cells()
        assert paper[3:14] == [_printed(typed[c].mean, typed[c].std) for c in STAGE_COMPONENTS]
        assert all(re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d \[[=+−]\]", cell) for cell in ours[3:14]), ours
        chosen = sorted(S3Summary.from_history(r.record.history).rho_val for r in runs
                        if r.record.config["granularity"] == g)
        assert sorted(float(v) for v in ours[14].split(", ")) == chosen
    assert "mosi sentiment (accuracy_ge0)" in result.stdout.replace("\\_", "_")
    routers = _rows(result.stdout, "S3 Table 4")
    assert routers[1][0] == "mosi" and routers[1][2::2] == [f"{v:.4f}" for v in reference_s3.TABLE4["mosi"]]
    share = {r.record.config["granularity"]: S3Summary.from_history(r.record.history).router_share for r in runs}
    assert routers[1][1::2] == [f"{100 * share[g]:.4f}" for g in (2, 4, 8)]
    active = _rows(result.stdout, "S3 Table 5")
    assert [r[:3] for r in active[1:]] == [r[:3] for r in body]
    for g, paper in zip((2, 4, 8), active[2::2], strict=True):
        assert paper[3:] == [f"{v:.2f}" for v in reference_s3.TABLE5[("mosi", g)]]


def test_s3_table2_val_chosen_and_test_picked_rows_then_reuses_everything(store):
    result = _reproduce(store, "s3-table2", *QUICK, *S3_TINY)
    assert "s3-table2: not in the store, left out: mosei, urfunny" in " ".join(result.output.split())
    rows = {r[0]: r[1:] for r in _rows(result.stdout, "S3 Table 2")[1:]}
    header = _rows(result.stdout, "S3 Table 2")[0]
    assert [h.replace("\\_", "_") for h in header] == ["Model", *(f"{group}: {who}" for group in (
        "mosi sentiment (accuracy_ge0)", "mustard sarcasm (accuracy)", "simseq sentiment (accuracy_ge0)")
        for who in ("ours", "paper"))]
    for baseline in reference_s3.TABLE2_BASELINES:
        cells = rows[f"{baseline.name} (paper only)"]
        assert cells[0::2] == ["", "", ""] and cells[1::2] == [
            *(_printed(baseline.of(d).mean, baseline.of(d).std) for d in ("mosi", "mustard")), "—"]
    val_row, test_row = rows["S3 +Sparsification, ρ chosen on val"], rows[
        "S3 +Sparsification, best ρ on TEST (test-picked)"]
    assert val_row[1::2] == ["—", "—", "—"]  # the paper prints no val-chosen number
    typed = reference_s3.TABLE2_SPARSIFICATION
    assert test_row[1::2] == [_printed(typed.of("mosi").mean, typed.of("mosi").std),
                              _printed(typed.of("mustard").mean, typed.of("mustard").std), "—"]
    assert rows["ρ best on test (test-picked)"][1::2] == ["0.7", "0.8", "—"]  # the paper's, inferred
    runs = [r for r in Store.open(store).runs("s3") if r.record.config["granularity"] == 8]
    for column, dataset in enumerate(("mosi", "mustard", "simseq")):
        chosen = [S3Summary.from_history(r.record.history).rho_val for r in sorted(runs, key=lambda r: r.record.seed)
                  if r.record.dataset == dataset]
        assert rows["ρ chosen on val (per seed)"][2 * column] == ", ".join(f"{v:g}" for v in chosen)
        assert float(rows["ρ best on test (test-picked)"][2 * column]) in RHOS[1:]
    assert len(Store.open(store).runs("s3")) == 6 + 4  # Table 1's G = 8 mosi runs reused; mustard, simseq new
    again = _reproduce(store, "s3-table2", *QUICK, *S3_TINY)
    assert "6 runs (0 newly probed)" in again.output
    assert len(Store.open(store).runs("s3")) == 10


def test_dlf_tables_beside_the_papers(store):
    result = _reproduce(store, "dlf-table1", *QUICK, *DLF_TINY)
    assert "dlf-table1: not in the store, left out: mosei" in " ".join(result.output.split())
    rows = _rows(result.stdout, "DLF Table 1")
    assert rows[0] == ["Dataset", "", "Acc-7 ↑", "Acc-5 ↑", "Acc-2 non0 ↑", "F1 non0 ↑", "Corr ↑", "MAE ↓"]
    assert [r[:2] for r in rows[1:]] == [["mosi", "ours"], ["", "paper"], ["simseq", "ours"]]
    typed = reference_dlf.TABLE1["mosi"]
    assert rows[2][2:] == [_printed(typed.get(m), digits=2 if m in reference_dlf.PERCENT else 3)
                           for m in reference_dlf.TABLE1_METRICS]
    assert all(re.fullmatch(r"-?\d+\.\d+ ± \d+\.\d+( \[[=+−]\])?", c) for r in (rows[1], rows[3]) for c in r[2:])
    assert "paper fine-tunes BERT" in result.stdout and "one seed" in result.stdout

    ablations = _reproduce(store, "dlf-table2", "--dataset", "mosi", *QUICK, "--seeds", "1", *DLF_TINY)  # 13 fits
    rows = _rows(ablations.stdout, "DLF Table 2")
    assert rows[0] == ["Model", "", "mosi: Acc-7", "mosi: Acc-2 non0", "mosi: F1 non0", "mosi: MAE"]
    assert [r[0] for r in rows[1::2]] == [a.name for a in reference_dlf.TABLE2]
    for ablation, paper in zip(reference_dlf.TABLE2, rows[2::2], strict=True):
        assert paper[2:] == [_printed(ablation.scores.get(m), digits=2 if m in reference_dlf.PERCENT else 3)
                             for m in reference_dlf.TABLE2_METRICS]
    runs = Store.open(store).runs("dlf")
    mosi = {(r.record.ablation, r.record.seed) for r in runs if r.record.dataset == "mosi"}
    assert mosi == {(DLF.ablation(DLFConfig(**dict(a.changes))), 0) for a in reference_dlf.TABLE2} | {(None, 1)}
    assert "13 runs (12 newly probed)" in ablations.output  # the full model's seed-0 run is dlf-table1's


def test_no_dataset_of_the_table_is_refused_in_one_line(tmp_path, store):
    empty = tmp_path / "empty"
    Store.open(empty, create=True)
    result = runner.invoke(app, ["--store", str(empty), "reproduce", "dlf-table2", "--dataset", "mosi"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        "mmpipe: error: dlf-table2: none of its datasets is in the store (mosi); add one with "
        "`mmpipe ingest mosi --data-dir DIR`"]
    for args, message in ((["s3-table1", "--dataset", "cremad"], "--dataset 'cremad' is not a dataset of s3-table1"),
                          (["s3-table2", "--set", "nope=1"], "unknown config key 'nope'"),
                          (["table9"], "valid: table1, table3a, table4, table5, table6, table7, s3-table1, s3-table2, "
                                       "dlf-table1, dlf-table2")):
        refused = runner.invoke(app, ["--store", str(store), "reproduce", *args])
        assert refused.exit_code == 2 and message in refused.output, refused.output


# -- the typed paper numbers ---------------------------------------------------------------------
def test_s3_reference_has_the_papers_shape():
    assert not set(PAPER_SPECS) & set(SPECS)
    assert [(r.dataset, r.granularity) for r in reference_s3.TABLE1] == [
        (d, g) for d in reference_s3.DATASETS for g in reference_s3.GRANULARITIES]
    for row in reference_s3.TABLE1:
        assert len(row.cells()) == 11 and list(row.cells()) == list(STAGE_COMPONENTS)
        assert all(30 < p.mean < 100 and 0 <= p.std < 10 for p in row.cells().values())
    for row in (*reference_s3.TABLE2_BASELINES, reference_s3.TABLE2_SPECIALIZATION, reference_s3.TABLE2_SELECTION,
                reference_s3.TABLE2_SPARSIFICATION):
        assert len(row.scores) == len(reference_s3.DATASETS)
    assert list(reference_s3.TABLE5) == [(r.dataset, r.granularity) for r in reference_s3.TABLE1]
    for fractions in reference_s3.TABLE5.values():  # ρ = 0.9 … 0.1: one value each, falling with ρ
        assert len(fractions) == len(RHOS) - 1 and list(fractions) == sorted(fractions, reverse=True)
    assert set(reference_s3.TABLE4) == set(reference_s3.DATASETS)
    assert all(len(v) == 3 and v[0] < v[1] < v[2] for v in reference_s3.TABLE4.values())


def test_s3_table2_rows_are_table1s_g8_rows_and_its_best_rho():
    """A typo check, and the inference that Table 2's +Sparsification is the test-best ρ."""
    for dataset in reference_s3.DATASETS:
        row = reference_s3.stage_row(dataset, 8)
        assert reference_s3.TABLE2_SPECIALIZATION.of(dataset) == row.spec
        assert reference_s3.TABLE2_SELECTION.of(dataset) == row.sel
        best = row.cells()[row.best_pruned()]
        sparse = reference_s3.TABLE2_SPARSIFICATION.of(dataset)
        assert sparse.mean == best.mean
        assert sparse.std == best.std or (dataset, sparse.std, best.std) == ("mosei", 0.95, 0.59)  # as printed
    assert {d: reference_s3.test_picked_rho(d) for d in reference_s3.DATASETS} == {
        "mosei": 0.5, "mosi": 0.7, "urfunny": 0.2, "mustard": 0.8}


def test_dlf_reference_has_the_papers_shape_and_real_ablations():
    assert set(reference_dlf.TABLE1) == {"mosi", "mosei"}
    for scores in reference_dlf.TABLE1.values():
        assert [m for m, _ in scores.values] == list(reference_dlf.TABLE1_METRICS)
    assert reference_dlf.TABLE2[0].scores.values == tuple(
        (m, reference_dlf.TABLE1["mosi"].get(m)) for m in reference_dlf.TABLE2_METRICS)  # the full model's row
    names = [DLF.ablation(DLFConfig(**dict(a.changes))) for a in reference_dlf.TABLE2]
    assert names[0] is None and len(set(names)) == len(names) == 13
    for ablation, name in zip(reference_dlf.TABLE2[1:], names[1:], strict=True):  # DLF names the row as the paper
        assert name.replace(" ", "") == ablation.name.replace(" ", "")


def test_dlf_on_mosei_takes_the_codes_mosei_config():
    """dlf-table1 fits MOSEI with the DLF code's MOSEI values (pipeline/defaults.py), MOSI with the defaults."""
    from mmpipe.adapters.methods.dlf import MOSEI
    from mmpipe.pipeline.defaults import default_config

    mosei = default_config(DLFConfig, "dlf", "mosei")
    assert {key: getattr(mosei, key) for key in MOSEI} == MOSEI and mosei.conv_kernel == 3
    assert default_config(DLFConfig, "dlf", "mosi") == DLFConfig()


def test_a_dataset_ingested_twice_is_chosen_by_data_version(tmp_path):
    """MOSI from MultiBench's file (S3's features) and from MMSA's (DLF's): two manifest versions."""
    root = tmp_path / "s"
    for kind in ("multibench", "mmsa-aligned"):
        write(kind, tmp_path / kind, "mosi", **({"steps": 8} if kind == "multibench" else {}))
        result = runner.invoke(app, ["--store", str(root), "ingest", "mosi", "--data-dir", str(tmp_path / kind)])
        assert result.exit_code == 0, result.output
    versions = Store.open(root).manifest_versions("mosi")
    assert len(versions) == 2
    args = ["--store", str(root), "reproduce", "s3-table2", "--dataset", "mosi", "--seeds", "1", "--max-epochs", "1",
            "--jobs", "1", *S3_TINY]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "choose one with --data-version mosi=VERSION" in refused.output
    for bad, message in (("mosi", "is not of the form DATASET=VERSION"), ("simseq=ab", "valid: mosi"),
                         ("mosi=zzz", "matches none")):
        result = runner.invoke(app, [*args, "--data-version", bad])
        assert result.exit_code == 2 and message in result.output, result.output
    multibench = Store.open(root).manifest("mosi", versions[0])
    chosen = versions[0] if multibench.split_protocol.count("MultiBench") else versions[1]
    result = runner.invoke(app, [*args, "--data-version", f"mosi={chosen[:8]}"])
    assert result.exit_code == 0, result.output
    [run] = Store.open(root).runs("s3")
    assert run.record.manifest_version == chosen
