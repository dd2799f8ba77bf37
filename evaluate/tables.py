"""A format-neutral table: what the LaTeX, Markdown and terminal renderers all draw.

Text is plain Unicode (↑ ↓ ± → Δ …); each renderer escapes or translates it for its format.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False
    underline: bool = False


@dataclass(frozen=True)
class HeaderGroup:
    """A header spanning ``span`` columns above the column names (e.g. a dataset)."""

    text: str
    span: int


@dataclass(frozen=True)
class Table:
    key: str  # decoupling / fusion / ranks / ablation-<method>: a stable id, also the LaTeX label
    title: str
    caption: str
    columns: list[str]
    rows: list[list[Cell]]
    groups: list[HeaderGroup] = field(default_factory=list)  # spans sum to len(columns) when given
    rule_before: frozenset[int] = frozenset()  # row indices preceded by a rule (method blocks)
    notes: list[str] = field(default_factory=list)  # protocol and seed notes, printed under the table


def format_mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"
