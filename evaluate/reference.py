"""The papers' reference numbers, to print beside our own: the one source (`mmpipe reproduce`,
`mmpipe demo` and the report's paper comparison all read it), and the one rule for "within the
paper's ± std" (:func:`within`).

Transcribed from the MultiLoReFT paper ("MultiLoReFT: decoupling shared and modality-specific
subspaces via low-rank representation fine-tuning"): Tables 1,
3a, 4, 5, 6 and 7, Simulation I and II only (the real-data columns need the CREMA-D / Flickr30K
features). Keys use our dataset, label and component names: Simulation I and II have the
modalities m1 and m2, so the paper's z_s, z_m1, z_m2, z_s1, z_s2 are our ``SHARED``,
``specific("m1")``, ``specific("m2")``, ``shared_part("m1")``, ``shared_part("m2")``
(`adapters/components.py`); sim1: y_s shared accuracy, y_m1 / y_m2 MSE; sim2: z1 shared accuracy,
z3 modality-1 accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmpipe.adapters.components import FUSED, SHARED, shared_part, specific

# Table 7: dataset -> component -> (initial rank, converged mean, std) over 4 seeds
PAPER_RANKS: dict[str, dict[str, tuple[int, float, float]]] = {
    "sim1": {SHARED: (10, 5.2, 0.38), specific("m1"): (10, 4.6, 0.48), specific("m2"): (10, 4.6, 0.48)},
    "sim2": {SHARED: (40, 4.0, 0.70), specific("m1"): (40, 2.0, 0.00), specific("m2"): (40, 2.2, 0.42)},
}

# Numbers are printed to three decimals: a std printed as 0.000 means < 0.0005.
PRINTED_PRECISION = 0.0005


def within(ours: float, paper_mean: float, paper_std: float) -> bool:
    """The one rule: our mean lies within the paper's mean ± std, where a std below the printed
    precision counts as ± 0.0005 (|ours − paper| ≤ max(std, 0.0005))."""
    return abs(ours - paper_mean) <= max(paper_std, PRINTED_PRECISION)


# -- every number `mmpipe reproduce` compares with, as (table, dataset, row, component, label, metric) ----------
# Typed from the paper (Tables 1, 3a, 4, 5, 6, 7; Simulation I and II only: the real-data columns
# need the CREMA-D / Flickr30K features). Rows use our paper-row names: the method, plus its
# ablation in brackets (`evaluate/results.paper_row_of`). Component "delta" is the paper's Δ row;
# Table 7's rows are the converged rank, metric "rank".
DELTA = "delta"  # the component name of the paper's Δ rows
RANK = "rank"  # Table 7's metric and label


def paper_row(method: str, ablation: str | None) -> str:
    """``method`` or ``method (ablation)``: the row a run belongs to in one of the paper's tables."""
    return f"{method} ({ablation})" if ablation else method


@dataclass(frozen=True)
class PaperValue:
    table: str
    dataset: str
    row: str
    component: str
    label: str
    metric: str
    mean: float
    std: float


# the five columns shared by Tables 1, 5 and 6
_DECOUPLING_COLUMNS = (("sim1", "y_s", "accuracy"), ("sim1", "y_m1", "mse"), ("sim1", "y_m2", "mse"),
                       ("sim2", "z1", "accuracy"), ("sim2", "z3", "accuracy"))
_TABLE4_COLUMNS = (("sim1", "y_s", "accuracy"), ("sim1", "y_s", "silhouette"), ("sim1", "y_m1", "mse"),
                   ("sim1", "y_m2", "mse"), ("sim2", "z1", "accuracy"), ("sim2", "z3", "accuracy"))

_MLR = {
    SHARED: "1.000 0.000 | 0.048 0.014 | 0.059 0.010 | 1.000 0.000 | 0.537 0.075",
    specific("m1"): "0.798 0.144 | 0.009 0.003 | 0.081 0.006 | 0.500 0.000 | 1.000 0.000",
    specific("m2"): "0.756 0.115 | 0.075 0.007 | 0.005 0.002 | 0.598 0.196 | 0.500 0.000",
    DELTA: "0.223 0.130 | 0.038 0.014 | 0.054 0.010 | 0.451 0.098 | 0.463 0.075",
}
_TABLE1 = {
    "multiloreft": _MLR,
    "drimu": {
        SHARED: "1.000 0.000 | 0.063 0.008 | 0.061 0.007 | 1.000 0.000 | 0.757 0.008",
        specific("m1"): "0.997 0.004 | 0.001 0.000 | 0.083 0.003 | 1.000 0.000 | 1.000 0.000",
        specific("m2"): "1.000 0.000 | 0.081 0.009 | 0.007 0.001 | 0.967 0.006 | 0.500 0.000",
        DELTA: "0.001 0.002 | 0.062 0.008 | 0.054 0.007 | 0.033 0.006 | 0.243 0.008",
    },
    "apollo": {
        SHARED: "1.000 0.000 | 0.027 0.004 | 0.076 0.009 | 1.000 0.000 | 1.000 0.000",
        specific("m1"): "0.998 0.003 | 0.043 0.005 | 0.086 0.007 | 1.000 0.000 | 1.000 0.000",
        specific("m2"): "1.000 0.000 | 0.087 0.018 | 0.019 0.002 | 1.000 0.000 | 0.500 0.000",
        DELTA: "0.001 0.001 | 0.016 0.006 | 0.057 0.009 | 0.000 0.000 | 0.000 0.000",
    },
}
_TABLE4 = {
    "apollo (input size)": {
        shared_part("m1"): "1.000 0.000 | 0.838 0.006 | 0.006 0.001 | 0.083 0.012 | 1.000 0.000 | 1.000 0.000",
        shared_part("m2"): "1.000 0.000 | 0.801 0.007 | 0.080 0.005 | 0.001 0.000 | 1.000 0.000 | 0.500 0.000",
        specific("m1"): "1.000 0.000 | 0.446 0.021 | 0.005 0.002 | 0.089 0.004 | 1.000 0.000 | 1.000 0.000",
        specific("m2"): "1.000 0.000 | 0.487 0.049 | 0.081 0.012 | 0.001 0.000 | 1.000 0.000 | 0.500 0.000",
    },
    "drimu (input size)": {
        shared_part("m1"): "1.000 0.000 | 0.753 0.005 | 0.037 0.004 | 0.089 0.012 | 0.686 0.021 | 0.500 0.000",
        shared_part("m2"): "1.000 0.000 | 0.760 0.006 | 0.080 0.013 | 0.032 0.006 | 0.706 0.018 | 0.500 0.000",
        specific("m1"): "1.000 0.000 | 0.293 0.015 | 0.000 0.000 | 0.084 0.006 | 1.000 0.000 | 1.000 0.000",
        specific("m2"): "1.000 0.000 | 0.381 0.007 | 0.082 0.010 | 0.002 0.000 | 1.000 0.000 | 0.500 0.000",
    },
}
_TABLE5 = {
    "multiloreft": {k: v for k, v in _MLR.items() if k != DELTA},
    "multiloreft (no pruning)": {
        SHARED: "1.000 0.000 | 0.002 0.001 | 0.018 0.007 | 1.000 0.000 | 0.500 0.000",
        specific("m1"): "0.994 0.006 | 0.000 0.000 | 0.083 0.007 | 0.500 0.000 | 1.000 0.000",
        specific("m2"): "0.961 0.034 | 0.078 0.008 | 0.004 0.000 | 0.664 0.099 | 0.500 0.000",
    },
    "multiloreft (no staging)": {
        SHARED: "1.000 0.000 | 0.066 0.013 | 0.075 0.008 | 1.000 0.000 | 0.705 0.165",
        specific("m1"): "0.817 0.138 | 0.008 0.003 | 0.082 0.007 | 0.500 0.000 | 1.000 0.000",
        specific("m2"): "0.642 0.269 | 0.076 0.005 | 0.016 0.016 | 0.774 0.229 | 0.500 0.000",
    },
}
_TABLE6 = {
    "multiloreft": _MLR,
    "multiloreft (- orthogonality)": {
        SHARED: "1.000 0.000 | 0.029 0.034 | 0.021 0.009 | 1.000 0.000 | 0.500 0.000",
        specific("m1"): "1.000 0.000 | 0.003 0.000 | 0.081 0.006 | 0.748 0.204 | 1.000 0.000",
        specific("m2"): "0.998 0.004 | 0.072 0.007 | 0.005 0.002 | 1.000 0.000 | 0.500 0.000",
        DELTA: "0.001 0.002 | 0.026 0.034 | 0.016 0.009 | 0.126 0.102 | 0.500 0.000",
    },
    "multiloreft (- independence)": {
        SHARED: "1.000 0.000 | 0.064 0.006 | 0.069 0.012 | 1.000 0.000 | 0.599 0.140",
        specific("m1"): "0.999 0.002 | 0.006 0.001 | 0.080 0.006 | 0.735 0.051 | 1.000 0.000",
        specific("m2"): "0.993 0.007 | 0.073 0.007 | 0.005 0.003 | 1.000 0.001 | 0.500 0.000",
        DELTA: "0.004 0.005 | 0.058 0.006 | 0.064 0.012 | 0.133 0.026 | 0.401 0.140",
    },
    "multiloreft (- MI)": {
        SHARED: "0.931 0.098 | 0.062 0.018 | 0.063 0.013 | 0.987 0.019 | 0.629 0.095",
        specific("m1"): "0.835 0.066 | 0.006 0.001 | 0.081 0.007 | 0.599 0.071 | 0.746 0.180",
        specific("m2"): "0.850 0.139 | 0.073 0.008 | 0.008 0.004 | 0.570 0.100 | 0.500 0.000",
        DELTA: "0.089 0.103 | 0.056 0.018 | 0.055 0.013 | 0.403 0.064 | 0.117 0.204",
    },
    "multiloreft (- GradNorm)": {
        SHARED: "1.000 0.000 | 0.067 0.013 | 0.063 0.021 | 1.000 0.000 | 0.597 0.069",
        specific("m1"): "1.000 0.000 | 0.005 0.001 | 0.079 0.005 | 0.997 0.004 | 1.000 0.000",
        specific("m2"): "0.983 0.025 | 0.079 0.009 | 0.020 0.011 | 1.000 0.000 | 0.500 0.000",
        DELTA: "0.009 0.013 | 0.062 0.013 | 0.043 0.021 | 0.002 0.002 | 0.403 0.069",
    },
}
# Table 3a, Simulation I joint label (MSE of the fused representation)
_TABLE3A = {"multiloreft": (0.009, 0.002), "apollo": (0.009, 0.001), "drimu": (0.012, 0.001),
            "late-fusion": (0.054, 0.005), "cross-attention": (0.009, 0.003), "contrastive": (0.056, 0.006),
            "mult-interactions": (0.016, 0.002)}


def _grid(table: str, rows: dict[str, dict[str, str]], columns: tuple) -> list[PaperValue]:
    values = []
    for row, by_component in rows.items():
        for component, text in by_component.items():
            cells = [c.split() for c in text.split("|")]
            if len(cells) != len(columns):
                raise AssertionError(f"{table} {row} {component}: {len(cells)} cells for {len(columns)} columns")
            for (dataset, label, metric), (mean, std) in zip(columns, cells, strict=True):
                values.append(PaperValue(table, dataset, row, component, label, metric, float(mean), float(std)))
    return values


PAPER_VALUES: tuple[PaperValue, ...] = tuple(
    _grid("table1", _TABLE1, _DECOUPLING_COLUMNS)
    + [PaperValue("table3a", "sim1", method, FUSED, "y_cond", "mse", m, s) for method, (m, s) in _TABLE3A.items()]
    + _grid("table4", _TABLE4, _TABLE4_COLUMNS)
    + _grid("table5", _TABLE5, _DECOUPLING_COLUMNS)
    + _grid("table6", _TABLE6, _DECOUPLING_COLUMNS)
    + [PaperValue("table7", dataset, "multiloreft", component, RANK, RANK, mean, std)
       for dataset, by_component in PAPER_RANKS.items() for component, (_, mean, std) in by_component.items()]
)


def paper_values(table: str) -> list[PaperValue]:
    return [v for v in PAPER_VALUES if v.table == table]
