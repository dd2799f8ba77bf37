"""Render report tables as LaTeX (booktabs): a standalone document that compiles with plain
pdflatex in Latin Modern (``lmodern``: Type 1 fonts, no bitmap Type 3), or with ``fragment`` the
tables alone, for ``\\input{}`` into a paper whose preamble loads booktabs and graphicx.

Text is escaped (``_ & % $ # { } ~ ^ \\ < > |``); every symbol the tables use has its LaTeX form
(``_SYMBOLS``: ≈ ± ↑ ↓ − → Δ …), Greek letters become their math commands, and a character with
no LaTeX form prints as its code point (``[U+2603]``) — never as a silent "?". Method, component
and label names print through `evaluate/display_names.py`. A table wider than the text is scaled
down to the text width.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from string import ascii_lowercase

from mmpipe.evaluate.display_names import LONG_NAME, DisplayNames
from mmpipe.evaluate.tables import Cell, Table

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_SYMBOLS = {"↑": r"$\uparrow$", "↓": r"$\downarrow$", "±": r"$\pm$", "→": r"$\rightarrow$", "←": r"$\leftarrow$",
            "↔": r"$\leftrightarrow$", "∈": r"$\in$", "×": r"$\times$", "·": r"$\cdot$", "≤": r"$\leq$",
            "≥": r"$\geq$", "≈": r"$\approx$", "≠": r"$\neq$", "−": r"$-$", "∞": r"$\infty$", "√": r"$\surd$",
            "∑": r"$\sum$", "⊥": r"$\perp$", "∼": r"$\sim$", "∅": r"$\emptyset$", "′": r"$'$", "°": r"$^\circ$",
            "–": "--", "—": "---", "…": r"\ldots{}", "“": "``", "”": "''", "‘": "`", "’": "'",
            "²": r"$^2$", "³": r"$^3$", "¹": r"$^1$", "µ": r"$\mu$", "\u00a0": "~"}
# Greek capitals with a glyph of their own in LaTeX; the others look like Latin capitals
_GREEK_CAPITALS = {"Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"}


def _greek(char: str) -> str | None:
    name = unicodedata.name(char, "")
    for prefix, capital in (("GREEK SMALL LETTER ", False), ("GREEK CAPITAL LETTER ", True)):
        if name.startswith(prefix) and " " not in name[len(prefix):]:
            letter = name[len(prefix):].capitalize()
            if not capital:
                letter = {"Lamda": "lambda", "Omicron": "o"}.get(letter, letter.lower())
                return "o" if letter == "o" else rf"$\{letter}$"
            letter = {"Lamda": "Lambda"}.get(letter, letter)
            return rf"$\{letter}$" if letter in _GREEK_CAPITALS else unicodedata.normalize("NFKD", letter)[0]
    return None


def escape(text: str) -> str:
    out = []
    for char in text:
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif char in _SYMBOLS:
            out.append(_SYMBOLS[char])
        elif ord(char) < 0x180 and unicodedata.category(char) != "Cc":
            out.append(char)  # Latin-1 and Latin Extended-A: T1 + utf8 inputenc print them
        else:
            out.append(_greek(char) or f"[U+{ord(char):04X}]")
    return "".join(out)


class _Footnotes:
    """Long variant names of one table, each behind a key a, b, …"""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def key(self, name: str) -> str:
        if name not in self.keys:
            index = len(self.keys)
            self.keys[name] = ascii_lowercase[index % 26] * (1 + index // 26)
        return self.keys[name]

    def notes(self) -> list[str]:
        return [rf"\textsuperscript{{{key}}}\,{escape(name)}" for name, key in self.keys.items()]


def _text(text: str, names: DisplayNames, footnotes: _Footnotes) -> str:
    shown = names.latex_of(text)
    if shown is not None:
        return shown
    split = names.split_variant(text)
    if split is None:
        return escape(text)
    method, rest = split
    if len(text) > LONG_NAME and rest[:1] in "[(":
        return rf"{method}\textsuperscript{{{footnotes.key(text)}}}"
    return f"{method} {escape(rest)}"


def _cell(cell: Cell, names: DisplayNames, footnotes: _Footnotes) -> str:
    text = _text(cell.text, names, footnotes)
    if cell.underline and text:
        text = rf"\underline{{{text}}}"
    if cell.bold and text:
        text = rf"\textbf{{{text}}}"
    return text


def render_table(table: Table, names: DisplayNames | None = None) -> str:
    names = names or DisplayNames()
    footnotes = _Footnotes()
    n = len(table.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small",
             rf"\caption{{{escape(table.title)}. {escape(table.caption)}}}", rf"\label{{tab:{table.key}}}",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             rf"\begin{{tabular}}{{{'l' * min(2, n)}{'c' * max(0, n - 2)}}}", r"\toprule"]
    if any(g.text for g in table.groups):
        spans, rules, start = [], [], 1
        for group in table.groups:
            spans.append(rf"\multicolumn{{{group.span}}}{{c}}{{{_text(group.text, names, footnotes)}}}"
                         if group.text else " & ".join([""] * group.span))
            if group.text:
                rules.append(rf"\cmidrule(lr){{{start}-{start + group.span - 1}}}")
            start += group.span
        lines.append(" & ".join(spans) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(_text(c, names, footnotes) for c in table.columns) + r" \\")
    lines.append(r"\midrule")
    for index, row in enumerate(table.rows):
        if index in table.rule_before and index > 0:
            lines.append(r"\midrule")
        lines.append(" & ".join(_cell(c, names, footnotes) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}"]
    notes = footnotes.notes() + [escape(note) for note in table.notes]
    if notes:
        lines.append(r"\par\smallskip\parbox{\linewidth}{\footnotesize")
        lines += [note + r"\\" for note in notes]
        lines.append("}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def render_fragment(tables: Sequence[Table], names: DisplayNames | None = None) -> str:
    """The tables alone, for ``\\input{}``: the including document loads booktabs and graphicx."""
    body = "\n\n".join(render_table(t, names) for t in tables) or "% No results match the filters."
    return "% mmpipe report: needs \\usepackage{booktabs,graphicx} in the including document\n" + body + "\n"


def render_document(tables: Sequence[Table], names: DisplayNames | None = None) -> str:
    body = "\n\n".join(render_table(t, names) for t in tables) or "No results match the filters."
    return "\n".join([r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
                      r"\usepackage{lmodern}", r"\usepackage{booktabs}",
                      r"\usepackage{graphicx}", r"\begin{document}", "", body, "", r"\end{document}", ""])
