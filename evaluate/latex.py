"""Render report tables as a standalone LaTeX document (booktabs; compiles with plain pdflatex).

Names are escaped (``_ & % $ # { } ~ ^ \\``); the Unicode symbols the tables use (↑ ↓ ± → Δ ∈ α ×)
become math; any other character outside Latin-1 becomes ``?`` so the document always compiles.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmpipe.evaluate.tables import Cell, Table

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_SYMBOLS = {"↑": r"$\uparrow$", "↓": r"$\downarrow$", "±": r"$\pm$", "→": r"$\rightarrow$", "Δ": r"$\Delta$",
            "∈": r"$\in$", "α": r"$\alpha$", "×": r"$\times$", "·": r"$\cdot$", "≤": r"$\leq$", "≥": r"$\geq$",
            "–": "--", "—": "---", "…": r"\ldots{}"}


def escape(text: str) -> str:
    out = []
    for char in text:
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif char in _SYMBOLS:
            out.append(_SYMBOLS[char])
        elif ord(char) < 0x180:
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


def _cell(cell: Cell) -> str:
    text = escape(cell.text)
    if cell.underline and text:
        text = rf"\underline{{{text}}}"
    if cell.bold and text:
        text = rf"\textbf{{{text}}}"
    return text


def render_table(table: Table) -> str:
    n = len(table.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small",
             rf"\caption{{{escape(table.title)}. {escape(table.caption)}}}", rf"\label{{tab:{table.key}}}",
             rf"\begin{{tabular}}{{{'l' * min(2, n)}{'c' * max(0, n - 2)}}}", r"\toprule"]
    if any(g.text for g in table.groups):
        spans, rules, start = [], [], 1
        for group in table.groups:
            spans.append(rf"\multicolumn{{{group.span}}}{{c}}{{{escape(group.text)}}}" if group.text else
                         " & ".join([""] * group.span))
            if group.text:
                rules.append(rf"\cmidrule(lr){{{start}-{start + group.span - 1}}}")
            start += group.span
        lines.append(" & ".join(spans) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(escape(c) for c in table.columns) + r" \\")
    lines.append(r"\midrule")
    for index, row in enumerate(table.rows):
        if index in table.rule_before and index > 0:
            lines.append(r"\midrule")
        lines.append(" & ".join(_cell(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\smallskip\parbox{\linewidth}{\footnotesize")
        lines += [escape(note) + r"\\" for note in table.notes]
        lines.append("}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def render_document(tables: Sequence[Table]) -> str:
    body = "\n\n".join(render_table(t) for t in tables) or "No results match the filters."
    return "\n".join([r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
                      r"\usepackage{booktabs}", r"\begin{document}", "", body, "", r"\end{document}", ""])
