"""Render report tables as Markdown (GitHub pipe tables; bold ``**``, underline ``<u>``)."""

from __future__ import annotations

from collections.abc import Sequence

from mmpipe.evaluate.tables import Cell, Table


def _escape(text: str) -> str:
    return text.replace("|", r"\|").replace("*", r"\*").replace("_", r"\_")


def _cell(cell: Cell) -> str:
    text = _escape(cell.text)
    if cell.underline and text:
        text = f"<u>{text}</u>"
    if cell.bold and text:
        text = f"**{text}**"
    return text


def _column_names(table: Table) -> list[str]:
    """Header groups (datasets) are folded into the column names: ``sim1: y_s (Acc) ↑``."""
    if not any(g.text for g in table.groups):
        return list(table.columns)
    names, index = [], 0
    for group in table.groups:
        for column in table.columns[index:index + group.span]:
            names.append(f"{group.text}: {column}" if group.text else column)
        index += group.span
    return names


def render_table(table: Table) -> str:
    names = _column_names(table)
    lines = [f"### {table.title}", "", f"*{table.caption}*", "",
             "| " + " | ".join(_escape(n) for n in names) + " |",
             "|" + "|".join([":---"] * min(2, len(names)) + [":---:"] * max(0, len(names) - 2)) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"- {_escape(note)}" for note in table.notes]
    return "\n".join(lines)


def render_document(tables: Sequence[Table]) -> str:
    return "\n\n".join(render_table(t) for t in tables) + "\n" if tables else "No results match the filters.\n"
