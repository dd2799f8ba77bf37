"""The LaTeX report: every symbol the terminal shows has its LaTeX form, names print as a paper
writes them, long variant names go to a footnote key, and both the fragment (for ``\\input{}``) and
the standalone document compile with pdflatex into Type 1 fonts only."""

import re
import shutil
import subprocess
import zlib

import pytest

from mmpipe.evaluate import latex
from mmpipe.evaluate.display_names import DisplayNames
from mmpipe.evaluate.report import build_report, load_report_data
from mmpipe.evaluate.tables import Cell, HeaderGroup, Table
from mmpipe.store.errors import UserError
from tests.test_report import db  # noqa: F401  (the report's fixture DB)

TERMINAL_SYMBOLS = "≈±↑↓−→Δρ×·≤≥…"
LONG = "multiloreft [projection_weight_decay=0.01, lr=0.0003]"


def _table() -> Table:
    return Table(key="demo", title="Symbols: ≈ ± ↑ ↓ − → Δ ρ", caption="Mean ± std over 3 seeds; ≈ within.",
                 columns=["Model", "Rep.", "y_s (Acc) ↑", "y_m1 (MSE) ↓"],
                 rows=[[Cell("multiloreft"), Cell("z_s"), Cell("0.998 ± 0.002", bold=True), Cell("−0.010 ≈")],
                       [Cell(LONG), Cell("z_s_m1"), Cell("0.5 ± 0.1"), Cell("ρ=0.9 → 0.7")],
                       [Cell("multiloreft (no pruning)"), Cell("fused"), Cell("—"), Cell("☃")]],
                 groups=[HeaderGroup("", 2), HeaderGroup("sim1", 2)], notes=["Δ: larger is better"])


def test_every_terminal_symbol_has_a_latex_form():
    for char in TERMINAL_SYMBOLS:
        text = latex.escape(char)
        assert text != char and "?" not in text, char
    assert latex.escape("ρ=0.5, Ω, Α") == r"$\rho$=0.5, $\Omega$, A"
    assert latex.escape("日本") == "[U+65E5][U+672C]"  # no LaTeX form: its code point, never "?"


def test_display_names_and_the_footnote_key():
    text = latex.render_table(_table())
    assert r"MultiLoReFT & $z_{s}$ & \textbf{0.998 $\pm$ 0.002}" in text
    assert r"MultiLoReFT\textsuperscript{a} & $z_{s,m1}$" in text  # the long variant: a key ...
    assert r"\textsuperscript{a}\,multiloreft [projection\_weight\_decay=0.01, lr=0.0003]\\" in text  # ... spelled out
    assert "MultiLoReFT (no pruning)" in text and r"$y_{s}$ (Acc) $\uparrow$" in text
    assert "?" not in text.replace("[U+2603]", "")
    custom = latex.render_table(_table(), DisplayNames({"z_s": r"$\mathbf{z}_s$", "multiloreft": "MLR"}))
    assert r"MLR & $\mathbf{z}_s$" in custom


def test_a_names_file_is_checked(tmp_path):
    good = tmp_path / "names.json"
    good.write_text('{"y_s": "sentiment"}')
    assert DisplayNames.from_file(good).latex_of("y_s") == "sentiment"
    for text in ("[1, 2]", '{"a": 1}', "{"):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(UserError, match="--names"):
            DisplayNames.from_file(tmp_path / "bad.json")


def test_the_fragment_is_tables_only(db):  # noqa: F811
    tables = build_report(load_report_data(db))
    fragment = latex.render_fragment(tables)
    assert r"\documentclass" not in fragment and r"\begin{document}" not in fragment
    assert fragment.count(r"\begin{table}") == len(tables)
    assert r"\usepackage{lmodern}" in latex.render_document(tables)


def _pdf_fonts(pdf: bytes) -> set[str]:
    """The /Subtype of every font in a PDF, reading inside compressed object streams too."""
    texts = [pdf]
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            texts.append(zlib.decompress(match.group(1)))
        except zlib.error:
            continue
    return {m.decode() for text in texts
            for m in re.findall(rb"/Type\s*/Font\s*/Subtype\s*/(\w+)|/Subtype\s*/(\w+)\s*/Type\s*/Font", text)
            for m in m if m}


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
@pytest.mark.parametrize("form", ["document", "fragment"])
def test_both_forms_compile_with_type1_fonts_only(db, tmp_path, form):  # noqa: F811
    tables = [*build_report(load_report_data(db)), _table()]
    if form == "document":
        source = latex.render_document(tables)
    else:
        (tmp_path / "tables.tex").write_text(latex.render_fragment(tables))
        source = "\n".join([r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage{lmodern}",
                            r"\usepackage{booktabs,graphicx}", r"\begin{document}", r"\input{tables}",
                            r"\end{document}"])
    (tmp_path / "paper.tex").write_text(source)
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    fonts = _pdf_fonts((tmp_path / "paper.pdf").read_bytes())
    assert fonts and fonts <= {"Type1", "Type1C"}, fonts
