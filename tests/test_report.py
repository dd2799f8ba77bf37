"""Report tables from a hand-built results DB (fixed numbers, so the output is exact)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from mmpipe.evaluate import latex, markdown, terminal
from mmpipe.evaluate.paper_comparison import paper_comparison_table
from mmpipe.evaluate.reference import within
from mmpipe.evaluate.report import ReportFilters, build_report, load_report_data
from mmpipe.evaluate.results import variant_of
from mmpipe.store.errors import UserError
from mmpipe.store.results import LabelRow, ProbeRow, RunRow, query, write_probes
from mmpipe.store.runs import RunRecord

GOLDEN = Path(__file__).parent / "golden" / "report.tex"
PROTOCOL = {"accuracy": "random 70%/15%/rest split; logistic, C∈{0.1, 1}", "mse": "random 70%/15%/rest split; ridge"}
LABELS = [LabelRow("sim1", "y_s", "categorical", "shared"), LabelRow("sim1", "y_m1", "continuous", "m1"),
          LabelRow("sim1", "y_cond", "continuous", "joint"), LabelRow("crema_d", "sentence", "categorical", "m2")]
# paper Table 1/2 MultiLoReFT rows, two seeds each side of the mean; keys (method, ablation)
SCORES = {
    ("multiloreft", None): {("sim1", "y_s"): {"z_s": 1.0, "z_m1": 0.798, "z_m2": 0.756},
                            ("sim1", "y_m1"): {"z_s": 0.048, "z_m1": 0.009, "z_m2": 0.081},
                            ("crema_d", "sentence"): {"z_s": 0.303, "z_m1": 0.244, "z_m2": 0.975}},
    ("drim_u", None): {("sim1", "y_s"): {"z_s": 1.0, "z_m1": 0.997, "z_m2": 1.0},
                       ("sim1", "y_m1"): {"z_s": 0.063, "z_m1": 0.001, "z_m2": 0.083}},
    ("multiloreft", "no pruning"): {("sim1", "y_s"): {"z_s": 1.0, "z_m1": 0.994, "z_m2": 0.961}},
}
FUSED = {("multiloreft", None): 0.009, ("drim_u", None): 0.012, ("late_fusion", None): 0.054}


def record(run_id, method, dataset, seed, *, ablation=None, settings=None, inputs=None, ranks=None,
           version="v1") -> RunRecord:
    """A run record as a fit writes it (only the fields the results DB keeps matter here)."""
    inputs = inputs or {m: f"{dataset}.{m}.f" for m in ("m1", "m2")}
    return RunRecord(method=method, dataset=dataset, manifest_version=version, inputs=inputs,
                     input_fingerprints={}, seed=seed, config={"seed": seed}, ablation=ablation,
                     settings=settings or {}, dims={m: 2 for m in inputs}, components=[],
                     started_at="2025-01-01T00:00:00", seconds=1.0, code_version="abc", n_params=100, ranks=ranks,
                     fingerprint="f" * 64, run_id=run_id)


def write(db, rec: RunRecord, labels, rows) -> None:
    write_probes(db, RunRow.from_record(rec, variant_of(rec)), labels,
                 [ProbeRow(rec.run_id, c, label, metric, value, PROTOCOL[metric], 700, 150)
                  for c, label, metric, value in rows])


def _build(db):
    for setup in {**SCORES, **{m: {} for m in FUSED if m not in SCORES}}:
        method, ablation = setup
        by_label = SCORES.get(setup, {})
        for dataset in ("sim1", "crema_d"):
            for seed, wiggle in ((0, -0.01), (1, 0.01)):
                rows = [(c, label, metric, min(1.0, v + wiggle * (c != "z_s") * (metric == "accuracy" or 0.1)))
                        for (ds, label), scores in by_label.items() if ds == dataset for c, v in scores.items()
                        for metric in ["accuracy" if label in ("y_s", "sentence") else "mse"]]
                if dataset == "sim1" and setup in FUSED:
                    rows.append(("fused", "y_cond", "mse", FUSED[setup] + wiggle / 10))
                if not rows:
                    continue
                ranks = {"z_s": {"initial": 10, "final": 5 + seed}, "z_m1": {"initial": 10, "final": 4}} \
                    if method == "multiloreft" and dataset == "sim1" else None
                rec = record(f"{method}-{dataset}-{seed}-{ablation or 'full'}", method, dataset, seed,
                             ablation=ablation, ranks=ranks)
                write(db, rec, [lab for lab in LABELS if lab.dataset == dataset], rows)


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
    assert latex.escape("日本") == "[U+65E5][U+672C]"


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


def test_settings_and_data_versions_are_never_averaged_together(store):
    """Two hyperparameter settings are two variants; two versions of a dataset need a choice."""
    from mmpipe.evaluate.probes import probe_run
    from mmpipe.evaluate.results import save_probes
    from tests.evalruns import publish_synthetic, simulate_sim1

    small = simulate_sim1(store, n=200).manifest_version
    other = simulate_sim1(store, n=240).manifest_version
    runs = [publish_synthetic(store, small), publish_synthetic(store, small, settings={"temperature": 0.2}),
            publish_synthetic(store, other)]
    for run in runs:
        save_probes(store, run, probe_run(store, run, labels=["y_s"], components=["z_s", "z_m1", "z_m2"]))
    rows = query(store.results_db, "SELECT DISTINCT variant, settings, data_version FROM probe_summary ORDER BY ALL").rows
    assert len(rows) == 3 and [r[0] for r in rows].count("multiloreft [temperature=0.2]") == 1
    assert ("multiloreft [temperature=0.2]", '{"temperature": 0.2}', small) in rows
    with pytest.raises(UserError, match="multiloreft on sim1 has results on 2 data versions .*--data-version"):
        load_report_data(store.results_db)
    chosen = build_report(load_report_data(store.results_db, ReportFilters(data_versions=(small[:8],))),
                          ["decoupling"])
    assert {r[0].text for r in chosen[0].rows} - {""} == {"multiloreft", "multiloreft [temperature=0.2]"}
    exact = load_report_data(store.results_db, ReportFilters(variants=("multiloreft [temperature=0.2]",)))
    assert {r["name"] for r in exact.summary} == {"multiloreft [temperature=0.2]"}
    with pytest.raises(UserError, match="unknown variant 'x'; valid: multiloreft, multiloreft \\[temperature=0.2\\]"):
        load_report_data(store.results_db, ReportFilters(variants=("x",)))


def test_modalities_table_compares_each_modality_with_its_frozen_input(tmp_path):
    db = tmp_path / "results.duckdb"
    values = {"inputs": {"h_m1": 0.040, "h_m2": 0.050}, "contrastive": {"c_m1": 0.045, "c_m2": 0.030},
              "multiloreft": {"phi_m1": 0.020, "phi_m2": 0.060, "z_s": 0.5}}
    for method, components in values.items():
        for seed, wiggle in ((0, -0.001), (1, 0.001)):
            rows = [(c, "y_cond", "mse", v + wiggle) for c, v in components.items()]
            write(db, record(f"{method}-{seed}", method, "sim1", seed), [lab for lab in LABELS if lab.dataset == "sim1"],
                  rows)
    [table] = build_report(load_report_data(db), ["modalities"])
    assert table.columns == ["Modality", "Representation", "y_cond (MSE) ↓"]
    assert [(r[0].text, r[1].text, r[2].text, r[2].bold) for r in table.rows] == [
        ("m1", "h_m1 (inputs)", "0.040 ± 0.001", False), ("", "phi_m1 (multiloreft)", "0.020 ± 0.001", True),
        ("", "c_m1 (contrastive)", "0.045 ± 0.001", False),
        ("m2", "h_m2 (inputs)", "0.050 ± 0.001", False), ("", "phi_m2 (multiloreft)", "0.060 ± 0.001", False),
        ("", "c_m2 (contrastive)", "0.030 ± 0.001", True)]
    assert table.rule_before == frozenset({0, 3})


TRI_LABELS = [LabelRow("tri", "y_s", "categorical", "shared"), LabelRow("tri", "y_text", "continuous", "text"),
              LabelRow("tri", "y_audio", "categorical", "audio"), LabelRow("tri", "y_vision", "continuous", "vision"),
              LabelRow("tri", "y_joint", "continuous", "joint")]
TRI_INPUTS = {"text": "tri.text.bert", "audio": "tri.audio.wavlm", "vision": "tri.vision.r3d18"}


def test_three_modality_decoupling_table(tmp_path):
    """Rows z_s and one z_k per modality of the runs; owners from the labels table; Δ over all three."""
    db = tmp_path / "results.duckdb"
    scores = {"y_s": {"z_s": 0.9, "z_text": 0.3, "z_audio": 0.6, "z_vision": 0.3},
              "y_text": {"z_s": 0.5, "z_text": 0.1, "z_audio": 0.5, "z_vision": 0.5},
              "y_audio": {"z_s": 0.4, "z_text": 0.4, "z_audio": 0.8, "z_vision": 0.4},
              "y_vision": {"z_s": 2.0, "z_text": 2.0, "z_audio": 2.0, "z_vision": 0.5}}
    for seed in (0, 1):
        rows = [(c, label, "accuracy" if label in ("y_s", "y_audio") else "mse", v)
                for label, by in scores.items() for c, v in by.items()] + [("fused", "y_joint", "mse", 0.2)]
        write(db, record(f"lf-{seed}", "late-fusion", "tri", seed, inputs=TRI_INPUTS), TRI_LABELS, rows)
    tables = {t.key: t for t in build_report(load_report_data(db))}
    table = tables["decoupling"]
    assert table.columns == ["Model", "Rep.", "y_s (Acc) ↑", "y_text (MSE) ↓", "y_audio (Acc) ↑", "y_vision (MSE) ↓"]
    assert [r[1].text for r in table.rows] == ["z_s", "z_text", "z_audio", "z_vision", "Δ"]
    underlined = [(r[1].text, j) for r in table.rows for j, c in enumerate(r[2:]) if c.underline]
    assert underlined == [("z_s", 0), ("z_text", 1), ("z_audio", 2), ("z_vision", 3)]
    # shared: 0.9 − (0.3 + 0.6 + 0.3)/3 = 0.5; text MSE: 0.5 − 0.1; audio: 0.8 − 0.4; vision MSE: 2.0 − 0.5
    assert [c.text for c in table.rows[-1][2:]] == ["0.500 ± 0.000", "0.400 ± 0.000", "0.400 ± 0.000",
                                                    "1.500 ± 0.000"]
    assert [r[0].text for r in tables["fusion"].rows] == ["late-fusion"]


def test_one_variant_on_two_input_sets_is_two_rows_named_by_their_features(tmp_path):
    db = tmp_path / "results.duckdb"
    other = {**TRI_INPUTS, "audio": "tri.audio.hubert"}
    for seed, inputs, value in ((0, TRI_INPUTS, 0.8), (1, TRI_INPUTS, 0.8), (0, other, 0.6)):
        rows = [("z_s", "y_audio", "accuracy", 0.4), ("z_text", "y_audio", "accuracy", 0.4),
                ("z_audio", "y_audio", "accuracy", value), ("z_vision", "y_audio", "accuracy", 0.4)]
        write(db, record(f"lf-{seed}-{value}", "late-fusion", "tri", seed, inputs=inputs), TRI_LABELS, rows)
    [table] = build_report(load_report_data(db), ["decoupling"])
    names = [r[0].text for r in table.rows if r[0].text]
    assert names == ["late-fusion <text=bert, audio=hubert, vision=r3d18>",
                     "late-fusion <text=bert, audio=wavlm, vision=r3d18>"]
    deltas = [r[2].text for r in table.rows if r[1].text == "Δ"]
    assert deltas == ["0.200", "0.400 ± 0.000"]  # never averaged across the two encoders


def test_paper_comparison_uses_the_one_within_rule(db):
    data = load_report_data(db)
    table = paper_comparison_table(data, "sim1", "multiloreft")
    by = {(r[0].text, r[1].text): r for r in table.rows}
    # ours 1.000 ± 0 vs paper 1.000 ± 0.000: within; z_m1 0.798 vs 0.798 ± 0.144: within
    assert by[("y_s (accuracy)", "z_s")][4].text == "≈" and by[("y_s (accuracy)", "z_m1")][4].text == "≈"
    # y_m1 (MSE) z_m2: ours 0.081 vs the paper's 0.075 ± 0.007: within; ours Δ 0.039 vs 0.038 ± 0.014: within
    assert by[("y_m1 (mse)", "z_m2")][4].text == "≈" and by[("y_m1 (mse)", "Δ")][4].text == "≈"
    assert by[("rank", "z_s")][2].text == "10 → 5.50 ± 0.71" and by[("rank", "z_s")][4].text == "≈"  # 5.2 ± 0.38
    assert by[("rank", "z_m1")][2].text == "10 → 4.00 ± 0.00" and by[("rank", "z_m1")][4].text == ""  # 4.6 ± 0.48
    # one rule, shared with `mmpipe reproduce`: a std printed as 0.000 allows ± 0.0005, not more
    assert within(1.0004, 1.0, 0.0) and not within(0.995, 1.0, 0.0) and within(0.9, 1.0, 0.1)
    assert paper_comparison_table(data, "crema_d", "multiloreft") is None  # no paper numbers transcribed
