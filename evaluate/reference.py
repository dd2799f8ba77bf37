"""Reference numbers from the MultiLoReFT paper, to print beside our own (e.g. by `mmpipe demo`).

Transcribed from ``../shared/papers/000_fbe9f34d18adab07.txt``: Table 1 (Simulation I and II,
MultiLoReFT rows; mean ± std over seeds) and Table 7 (learned ranks). Keys use our dataset and
label names (sim1: y_s shared accuracy, y_m1 / y_m2 MSE; sim2: z1 shared accuracy, z3 modality-1
accuracy).
"""

from __future__ import annotations

# (dataset, label, metric) -> component -> (mean, std); "delta" is the paper's Δ row
PAPER_MULTILOREFT: dict[tuple[str, str, str], dict[str, tuple[float, float]]] = {
    ("sim1", "y_s", "accuracy"): {"z_s": (1.000, 0.000), "z_m1": (0.798, 0.144), "z_m2": (0.756, 0.115),
                                  "delta": (0.223, 0.130)},
    ("sim1", "y_m1", "mse"): {"z_s": (0.048, 0.014), "z_m1": (0.009, 0.003), "z_m2": (0.075, 0.007),
                              "delta": (0.038, 0.014)},
    ("sim1", "y_m2", "mse"): {"z_s": (0.059, 0.010), "z_m1": (0.081, 0.006), "z_m2": (0.005, 0.002),
                              "delta": (0.054, 0.010)},
    ("sim2", "z1", "accuracy"): {"z_s": (1.000, 0.000), "z_m1": (0.500, 0.000), "z_m2": (0.598, 0.196),
                                 "delta": (0.451, 0.098)},
    ("sim2", "z3", "accuracy"): {"z_s": (0.537, 0.075), "z_m1": (1.000, 0.000), "z_m2": (0.500, 0.000),
                                 "delta": (0.463, 0.075)},
}

# Table 7: dataset -> component -> (initial rank, converged mean, std) over 4 seeds
PAPER_RANKS: dict[str, dict[str, tuple[int, float, float]]] = {
    "sim1": {"z_s": (10, 5.2, 0.38), "z_m1": (10, 4.6, 0.48), "z_m2": (10, 4.6, 0.48)},
    "sim2": {"z_s": (40, 4.0, 0.70), "z_m1": (40, 2.0, 0.00), "z_m2": (40, 2.2, 0.42)},
}

# Table 3a: fused representation, Simulation I joint label (MSE)
PAPER_FUSION_SIM1_JOINT_MSE: dict[str, tuple[float, float]] = {
    "multiloreft": (0.009, 0.002), "apollo": (0.009, 0.001), "drim_u": (0.012, 0.001),
    "late_fusion": (0.054, 0.005), "cross_attention": (0.009, 0.003), "contrastive": (0.056, 0.006),
    "mi": (0.016, 0.002),
}
