"""Report tables from a hand-built results DB (fixed numbers, so the output is exact)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from mmpipe.evaluate import latex, markdown, terminal
from mmpipe.evaluate.report import ReportFilters, build_report, load_report_data
from mmpipe.store.errors import UserError
from mmpipe.store.results import LabelRow, ProbeRow, RunRow, write_probes
from mmpipe.store.root import Store

GOLDEN = Path(__file__).parent / "golden" / "report.tex"
PROTOCOL = {"accuracy": "random 70%/15%/rest split; logistic, C∈{0.1, 1}", "mse": "random 70%/15%/rest split; ridge"}
LABELS = [LabelRow("sim1", "y_s", "categorical", "shared"), LabelRow("sim1", "y_m1", "continuous", "m1"),
          LabelRow("sim1", "y_cond", "continuous", "joint"), LabelRow("crema_d", "sentence", "categorical", "m2")]
# paper Table 1/2 MultiLoReFT rows, two seeds each side of the mean
SCORES = {
    "multiloreft": {("sim1", "y_s"): {"z_s": 1.0, "z_m1": 0.798, "z_m2": 0.756},
                    ("sim1", "y_m1"): {"z_s": 0.048, "z_m1": 0.009, "z_m2": 0.081},
                    ("crema_d", "sentence"): {"z_s": 0.303, "z_m1": 0.244, "z_m2": 0.975}},
    "drim_u": {("sim1", "y_s"): {"z_s": 1.0, "z_m1": 0.997, "z_m2": 1.0},
               ("sim1", "y_m1"): {"z_s": 0.063, "z_m1": 0.001, "z_m2": 0.083}},
    "multiloreft (no pruning)": {("sim1", "y_s"): {"z_s": 1.0, "z_m1": 0.994, "z_m2": 0.961}},
}
FUSED = {"multiloreft": 0.009, "drim_u": 0.012, "late_fusion": 0.054}


def _build(db):
    for variant, by_label in {**SCORES, **{m: {} for m in FUSED if m not in SCORES}}.items():
        for dataset in ("sim1", "crema_d"):
            for seed, wiggle in ((0, -0.01), (1, 0.01)):
                rows = [ProbeRow("", c, label, metric, min(1.0, v + wiggle * (c != "z_s") * (metric == "accuracy"
                                                                                        or 0.1)), "", 700, 150)
                        for (ds, label), scores in by_label.items() if ds == dataset for c, v in scores.items()
                        for metric in ["accuracy" if label in ("y_s", "sentence") else "mse"]]
                if dataset == "sim1" and variant in FUSED:
                    rows.append(ProbeRow("", "fused", "y_cond", "mse", FUSED[variant] + wiggle / 10, "", 700, 150))
                if not rows:
                    continue
                method = variant.split(" (")[0]
                run_id = f"{method}-{dataset}-{seed}-{len(variant)}"
                ablation = variant[len(method) + 2:-1] if variant != method else None
                config = {"seed": seed, **({"ablation": ablation} if ablation else {})}
                ranks = {"z_s": {"initial": 10, "final": 5 + seed}, "z_m1": {"initial": 10, "final": 4}} \
                    if method == "multiloreft" and dataset == "sim1" else None
                run = RunRow(run_id, method, dataset, f"{dataset}.m1", f"{dataset}.m2", seed, "f" * 64,
                             json.dumps(config), "2025-01-01T00:00:00", 1.0, 100,
                             json.dumps(ranks) if ranks else None, "abc", variant)
                rows = [ProbeRow(run_id, r.component, r.label, r.metric, r.value, PROTOCOL[r.metric], 700, 150)
                        for r in rows]
                write_probes(db, run, [lab for lab in LABELS if lab.dataset == dataset], rows)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "results.duckdb"
    _build(path)
    return path


def test_latex_matches_golden_file(db):
    text = latex.render_document(build_report(load_report_data(db)))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_decoupling_marks_owner_and_best_delta_and_paper_values(db):
    tables = {t.key: t for t in build_report(load_report_data(db))}
    table = tables["decoupling"]
    assert [g.text for g in table.groups] == ["", "crema_d", "sim1"]
    assert table.columns == ["Model", "Rep.", "sentence (Acc) ↑", "y_s (Acc) ↑", "y_m1 (MSE) ↓"]
    by_method = {}
    method = None
    for row in table.rows:
        method = row[0].text or method
        by_method[(method, row[1].text)] = row
    delta = by_method[("multiloreft", "Δ")]
    # Δ per seed then mean: sentence owned by m2: 0.975 − 0.303 = 0.672 (seeds ±0.01 → std 0.014)
    assert delta[2].text == "0.672 ± 0.014" and delta[2].bold
    assert delta[3].text == "0.223 ± 0.014" and delta[3].bold  # shared: 1 − (0.798 + 0.756) / 2
    assert by_method[("drim_u", "Δ")][4].bold and not delta[4].bold  # MSE Δ: 0.062 (drim_u) > 0.039
    assert not by_method[("drim_u", "z_m2")][2].underline  # a missing cell is not marked
    assert by_method[("drim_u", "Δ")][2].text == "—"  # no CREMA-D run for drim_u
    assert by_method[("multiloreft", "z_m2")][2].underline and by_method[("multiloreft", "z_s")][3].underline
    assert not by_method[("multiloreft", "z_s")][2].underline
    assert "multiloreft (no pruning)" not in {r[0].text for r in table.rows}  # ablations have their own table
    assert any("logistic, C∈{0.1, 1}" in n for n in table.notes) and any("ridge" in n for n in table.notes)


def test_fusion_ranks_and_ablation_tables(db):
    tables = {t.key: t for t in build_report(load_report_data(db))}
    fusion = tables["fusion"]
    assert [r[0].text for r in fusion.rows] == ["multiloreft", "drim_u", "late_fusion"]
    assert fusion.rows[0][1].bold and fusion.rows[0][1].text == "0.009 ± 0.001"
    assert not fusion.rows[2][1].bold
    ranks = tables["ranks"]
    assert ranks.columns == ["Method", "Component", "sim1"]
    assert [c.text for c in ranks.rows[0]] == ["multiloreft", "z_s", "10 → 5.50 ± 0.71"]
    assert [c.text for c in ranks.rows[1]] == ["", "z_m1", "10 → 4.00 ± 0.00"]
    ablation = tables["ablation-multiloreft"]
    assert {r[0].text for r in ablation.rows} - {""} == {"multiloreft", "multiloreft (no pruning)"}


def test_filters_and_unknown_values(db):
    data = load_report_data(db, ReportFilters(datasets=("sim1",), methods=("drim_u",), labels=("y_s",)))
    tables = build_report(data, ["decoupling"])
    assert len(tables) == 1 and tables[0].columns == ["Model", "Rep.", "y_s (Acc) ↑"]
    assert {r[0].text for r in tables[0].rows} == {"drim_u", ""}
    ablated = build_report(load_report_data(db, ReportFilters(methods=("multiloreft",))), ["ablations"])
    assert ablated and ablated[0].key == "ablation-multiloreft"  # a method filter keeps its ablations
    for filters, message in ((ReportFilters(labels=("nope",)), "unknown label 'nope'; valid: sentence, y_cond"),
                             (ReportFilters(datasets=("x",)), "unknown dataset 'x'; valid: crema_d, sim1"),
                             (ReportFilters(methods=("x",)), "unknown method 'x'; valid: drim_u")):
        with pytest.raises(UserError, match=message):
            load_report_data(db, filters)
    with pytest.raises(UserError, match="unknown table 'x'"):
        build_report(load_report_data(db), ["x"])


def test_latex_escapes_names():
    assert latex.escape("drim_u & 50% #1 {a} ~ ^ \\ Δ±→") == \
        r"drim\_u \& 50\% \#1 \{a\} \textasciitilde{} \textasciicircum{} \textbackslash{} $\Delta$$\pm$$\rightarrow$"
    assert latex.escape("日本") == "??"


def test_markdown_and_terminal_render_the_same_cells(db):
    tables = build_report(load_report_data(db))
    text = markdown.render_document(tables)
    assert "| multiloreft | z\\_s | <u>0.303 ± 0.000</u>" not in text  # sentence belongs to z_m2
    assert "<u>0.975 ± 0.014</u>" in text and "**0.672 ± 0.014**" in text
    console = Console(record=True, width=220)
    for group in terminal.render_document(tables):
        console.print(group)
    plain = console.export_text()
    assert "0.672 ± 0.014" in plain and "multiloreft (no pruning)" in plain and "10 → 5.50 ± 0.71" in plain


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles_with_pdflatex(db, tmp_path):
    (tmp_path / "report.tex").write_text(latex.render_document(build_report(load_report_data(db))))
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "report.pdf").stat().st_size > 1000


def test_settings_and_data_versions_are_never_averaged_together(tmp_path):
    """Two hyperparameter settings are two variants; two versions of a dataset need a choice."""
    from typer.testing import CliRunner

    from mmpipe.pipeline.cli import app

    runner = CliRunner()
    root = str(tmp_path / "s")
    fast = ["--set", "max_epochs_shared=1", "--set", "max_epochs_private=1", "--set", "max_epochs_joint=1",
            "--set", "minibatch_size=32", "--set", "hidden=4"]
    for n in ("200", "240"):
        assert runner.invoke(app, ["--store", root, "simulate", "sim1", "--n", n]).exit_code == 0
    versions = Store.open(tmp_path / "s").manifest_versions("sim1")
    small = next(v for v in versions if len(Store.open(tmp_path / "s").manifest("sim1", v)) == 200)
    for extra in ([], ["--set", "temperature=0.2"]):
        result = runner.invoke(app, ["--store", root, "fit", "multiloreft", "--dataset", "sim1", "--seeds", "0",
                                     "--data-version", small, *fast, *extra])
        assert result.exit_code == 0, result.output
    other = [v for v in versions if v != small][0]
    assert runner.invoke(app, ["--store", root, "fit", "multiloreft", "--dataset", "sim1", "--seeds", "0",
                               "--data-version", other, *fast]).exit_code == 0
    assert runner.invoke(app, ["--store", root, "probe", "--all"]).exit_code == 0
    summary = runner.invoke(app, ["--store", root, "query", "--format", "csv",
                                  "SELECT DISTINCT method, data_version FROM probe_summary ORDER BY ALL"])
    rows = summary.output.strip().splitlines()[1:]
    assert len(rows) == 3 and sum("temperature=0.2" in r for r in rows) == 1
    mixed = runner.invoke(app, ["--store", root, "report"])
    assert mixed.exit_code == 2 and "2 data versions" in mixed.output and "--data-version" in mixed.output
    chosen = runner.invoke(app, ["--store", root, "report", "--data-version", small[:8]])
    assert chosen.exit_code == 0 and "temperature=0.2" in chosen.output


def test_modalities_table_compares_each_modality_with_its_frozen_input(tmp_path):
    db = tmp_path / "results.duckdb"
    values = {"inputs": {"h1": 0.040, "h2": 0.050}, "contrastive": {"c1": 0.045, "c2": 0.030},
              "multiloreft": {"phi1": 0.020, "phi2": 0.060, "z_s": 0.5}}
    for method, components in values.items():
        for seed, wiggle in ((0, -0.001), (1, 0.001)):
            run_id = f"{method}-{seed}"
            run = RunRow(run_id, method, "sim1", "sim1.m1", "sim1.m2", seed, "f" * 64, json.dumps({"seed": seed}),
                         "2025-01-01T00:00:00", 1.0, 100, None, "abc", method)
            rows = [ProbeRow(run_id, c, "y_cond", "mse", v + wiggle, PROTOCOL["mse"], 700, 150)
                    for c, v in components.items()]
            write_probes(db, run, [lab for lab in LABELS if lab.dataset == "sim1"], rows)
    [table] = build_report(load_report_data(db), ["modalities"])
    assert table.columns == ["Modality", "Representation", "y_cond (MSE) ↓"]
    assert [(r[0].text, r[1].text, r[2].text, r[2].bold) for r in table.rows] == [
        ("m1", "h1 (inputs)", "0.040 ± 0.001", False), ("", "phi1 (multiloreft)", "0.020 ± 0.001", True),
        ("", "c1 (contrastive)", "0.045 ± 0.001", False),
        ("m2", "h2 (inputs)", "0.050 ± 0.001", False), ("", "phi2 (multiloreft)", "0.060 ± 0.001", False),
        ("", "c2 (contrastive)", "0.030 ± 0.001", True)]
    assert table.rule_before == frozenset({0, 3})
