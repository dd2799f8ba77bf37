"""Render report tables as rich terminal tables (bold and underline as text styles)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table as RichTable
from rich.text import Text

from mmpipe.evaluate.tables import Cell, Table


def _cell(cell: Cell) -> Text:
    style = " ".join(s for s, on in (("bold", cell.bold), ("underline", cell.underline)) if on)
    return Text(cell.text, style=style)  # Text, not markup: names may contain [brackets]


def _headers(table: Table) -> list[str]:
    if not any(g.text for g in table.groups):
        return list(table.columns)
    headers, index = [], 0
    for group in table.groups:
        for offset, column in enumerate(table.columns[index:index + group.span]):
            headers.append(f"{group.text if offset == 0 else ''}\n{column}" if group.text else column)
        index += group.span
    return headers


def render_table(table: Table) -> Group:
    rich_table = RichTable(title=Text(table.title, style="bold"), caption=Text(table.caption), title_justify="left",
                           caption_justify="left")
    for index, header in enumerate(_headers(table)):
        rich_table.add_column(Text(header), justify="left" if index < 2 else "center")
    for index, row in enumerate(table.rows):
        rich_table.add_row(*[_cell(c) for c in row], end_section=index + 1 in table.rule_before)
    return Group(rich_table, *[Text(f"  {note}", style="dim") for note in table.notes], Text(""))


def render_document(tables: Sequence[Table]) -> list[Group]:
    return [render_table(t) for t in tables]
