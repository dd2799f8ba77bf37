"""Where every figure goes: the formats ``mmpipe plot`` writes (PNG or PDF, by the file's suffix)
and the one way a figure is saved (parent folders created, 130 dpi, the figure closed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mmpipe.store.errors import UserError  # noqa: E402

FORMATS = ("png", "pdf")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(f"unknown plot format {fmt!r}; valid: {', '.join(FORMATS)}")


def save(fig, out: Path) -> Path:
    """Write ``fig`` to ``out`` (its suffix is the format) and close it."""
    out = Path(out)
    check_format(out.suffix.lstrip("."))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out
