"""The MSA table (DLF paper, Table 1 layout) from a hand-built results DB."""

from mmpipe.evaluate import latex, markdown
from mmpipe.evaluate.report import build_report, load_report_data
from mmpipe.evaluate.results import variant_of
from mmpipe.store.results import LabelRow, ProbeRow, RunRow, write_probes
from tests.test_report import record

PROTOCOL = "standard folds; ridge regression, α by val MSE, scored on test"
LABELS = {"mosi": [LabelRow("mosi", "sentiment", "continuous", "joint")],
          "mosei": [LabelRow("mosei", "sentiment", "continuous", "joint")]}
# method -> dataset -> metric -> value (seed 0; seed 1 adds 0.01)
SCORES = {
    "late_fusion": {"mosi": {"acc7": 0.40, "acc5": 0.45, "acc2_has0": 0.80, "acc2_non0": 0.82, "f1_has0": 0.79,
                             "f1_non0": 0.81, "corr": 0.70, "mae": 0.90},
                    "mosei": {"acc7": 0.50, "acc5": 0.52, "acc2_has0": 0.81, "acc2_non0": 0.84, "f1_has0": 0.80,
                              "f1_non0": 0.83, "corr": 0.72, "mae": 0.60}},
    "multiloreft": {"mosi": {"acc7": 0.42, "acc5": 0.44, "acc2_has0": 0.81, "acc2_non0": 0.83, "f1_has0": 0.80,
                             "f1_non0": 0.82, "corr": 0.69, "mae": 0.85}},
}


def _db(path):
    for method, by_dataset in SCORES.items():
        for dataset, scores in by_dataset.items():
            for seed in (0, 1):
                rec = record(f"{method}-{dataset}-{seed}", method, dataset, seed,
                             inputs={m: f"{dataset}.{m}.f" for m in ("text", "audio", "vision")})
                rows = [ProbeRow(rec.run_id, "fused", "sentiment", m, v + 0.01 * seed, PROTOCOL, 1284, 686)
                        for m, v in scores.items()]
                rows += [ProbeRow(rec.run_id, "e_text", "sentiment", "acc7", 0.99, PROTOCOL, 1284, 686),  # not fused
                         ProbeRow(rec.run_id, "fused", "sentiment", "mse", 1.0, PROTOCOL, 1284, 686)]
                write_probes(path, RunRow.from_record(rec, variant_of(rec)), LABELS[dataset], rows)
    return path


def test_msa_table_has_the_dlf_columns_per_dataset_and_bolds_the_best(tmp_path):
    data = load_report_data(_db(tmp_path / "r.duckdb"))
    (table,) = build_report(data, ["msa"])
    assert [(g.text, g.span) for g in table.groups] == [("", 1), ("mosei", 8), ("mosi", 8)]
    assert table.columns == ["Method"] + 2 * ["Acc-7 ↑", "Acc-5 ↑", "Acc-2 has0 ↑", "Acc-2 non0 ↑", "F1 has0 ↑",
                                              "F1 non0 ↑", "Corr ↑", "MAE ↓"]
    assert [row[0].text for row in table.rows] == ["multiloreft", "late_fusion"]  # the paper's method first
    multiloreft, late = table.rows
    assert [c.text for c in multiloreft[1:9]] == ["—"] * 8  # no MOSEI runs
    mosi = dict(zip(table.columns[9:], zip(multiloreft[9:], late[9:], strict=True), strict=True))
    assert mosi["Acc-7 ↑"][0].text == "0.425 ± 0.007" and mosi["Acc-7 ↑"][0].bold and not mosi["Acc-7 ↑"][1].bold
    assert mosi["Corr ↑"][1].bold and mosi["MAE ↓"][0].bold  # MAE: lower is better
    assert late[1].text == "0.505 ± 0.007" and late[1].bold  # alone in its column: best
    assert "mosi sentiment: the fused component (owner joint)" in table.notes
    assert any(n.startswith("Protocol, mosi Acc-7, Acc-5, Acc-2 has0, Acc-2 non0, F1 has0, F1 non0, Corr, MAE: "
                            "standard folds") for n in table.notes)
    assert "non0: rows whose label is 0 are left out (the DLF paper's Acc-2 and F1)" in table.caption


def test_msa_table_renders_and_is_absent_without_msa_scores(tmp_path):
    data = load_report_data(_db(tmp_path / "r.duckdb"))
    tables = build_report(data)
    assert [t.key for t in tables] == ["fusion", "msa"]  # fusion: the joint label's headline metric (MSE)
    text = markdown.render_document(tables)
    assert "| Method | mosei: Acc-7 ↑ |" in text and "**0.425 ± 0.007**" in text
    tex = latex.render_document(tables)
    assert r"\multicolumn{8}{c}{mosi}" in tex and r"Acc-2 has0 $\uparrow$" in tex
    empty = tmp_path / "e.duckdb"
    rec = record("r", "late_fusion", "mosi", 0)
    write_probes(empty, RunRow.from_record(rec, variant_of(rec)), LABELS["mosi"],
                 [ProbeRow("r", "fused", "sentiment", "mse", 0.5, PROTOCOL, 10, 10)])
    assert build_report(load_report_data(empty), ["msa"]) == []
