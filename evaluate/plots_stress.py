"""Stress-test figures (matplotlib, Agg backend; PNG or PDF): score against corruption rate.

One figure per (dataset, corrupted modality, corruption, label), for the label's headline metric
(`metrics.headline`): x = the rate (fraction of the test rows whose modality was corrupted),
y = the score, one line per (setup, component) — mean over the run seeds with a ±std band, from
the ``stress_summary`` view. A flat line is a representation that does not use the modality (or
does not lose what the label needs when it goes); a steep one depends on it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mmpipe.evaluate import metrics  # noqa: E402
from mmpipe.evaluate.corruption import corruption_name  # noqa: E402
from mmpipe.store.errors import UserError  # noqa: E402

FORMATS = ("png", "pdf")


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def plot_stress(summary: Sequence[Mapping[str, Any]], kinds: Mapping[tuple[str, str], str], out_dir: Path,
                fmt: str = "png") -> list[Path]:
    """Figures of ``summary`` (stress_summary rows, each with ``name``: its setup's display name);
    ``kinds`` maps (dataset, label) to the label's kind, which picks the metric drawn."""
    if fmt not in FORMATS:
        raise UserError(f"unknown plot format {fmt!r}; valid: {', '.join(FORMATS)}")
    figures: dict[tuple, dict[tuple[str, str], list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in summary:
        kind = kinds.get((row["dataset"], row["label"]))
        if kind is None or row["metric"] != metrics.headline(kind):
            continue
        key = (row["dataset"], row["modality"], corruption_name(row), row["label"], row["metric"])
        figures[key][(row["name"], row["component"])].append(row)
    paths = []
    for (dataset, modality, corruption, label, metric), lines in sorted(figures.items()):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (name, component), rows in sorted(lines.items()):
            rows = sorted(rows, key=lambda r: r["rate"])
            rate = np.array([r["rate"] for r in rows])
            mean = np.array([r["mean"] for r in rows])
            std = np.array([r["std"] if r["std"] is not None else 0.0 for r in rows])
            (line,) = ax.plot(rate, mean, marker="o", label=f"{name}: {component}")
            ax.fill_between(rate, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        shown = metrics.metric(metric)
        ax.set_xlabel(f"fraction of test rows with {modality} corrupted")
        ax.set_ylabel(f"{label} ({shown.display}) {shown.arrow}")
        ax.set_title(f"{dataset}: {modality} {corruption}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        out = Path(out_dir) / f"stress-{_file_part(dataset)}-{_file_part(modality)}-{_file_part(corruption)}-" \
                              f"{_file_part(label)}.{fmt}"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=130)
        plt.close(fig)
        paths.append(out)
    return paths
