"""Simulation II (MultiLoReFT paper, Appendix A.1.2): dependent shared and specific factors.

Generative process, per sample (Γ(k, θ) with shape k and scale θ by default)::

    z1 ~ Ber(0.5),  z2 = z1 + √0.0045 · Γ(5, 1)                 shared
    z3 ~ Ber(0.5),  z4 = 2·z2 + z3 + √0.00125 · Γ(2, 2)          modality 1
    z5 = z2 + √0.0075 · Γ(3, 2)                                  modality 2
    h1 = [z3, z4, z1, z2] W1 (→ 40),  h2 = [z5, z1, z2] W2 (→ 80),  W_i ~ U(0, 1)

Labels (owner): ``z1`` categorical (shared), ``z2`` continuous (shared), ``z3`` categorical (m1),
``z4`` continuous (m1), ``z5`` continuous (m2).

Choices where the paper is open: ``Γ(a, b)`` is read as shape a, scale b (numpy's convention;
``gamma_convention="shape_rate"`` reads b as a rate instead); the √c factors and the Gamma
parameters are config fields; W ~ U(0, 1) as in Simulation I.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from mmpipe.pipeline.datasets.base import DATASETS, Simulation
from mmpipe.pipeline.datasets.synthetic import check_simulation, simulation_table, uniform_projection
from mmpipe.store.manifest import LabelSpec, Manifest, Modality
from mmpipe.store.ranges import (
    FINITE,
    FRACTION,
    MAX_ROWS,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    SHARE,
    WIDTH,
    Checked,
    between,
)


@dataclass(frozen=True)
class Sim2Config(Checked):
    n: Annotated[int, between(1, MAX_ROWS)] = 10_000  # and every split at least MIN_SPLIT_ROWS rows
    seed: Annotated[int, SEED] = 0
    dim_m1: Annotated[int, WIDTH] = 40
    dim_m2: Annotated[int, WIDTH] = 80
    z2_noise_var: Annotated[float, NON_NEGATIVE] = 0.0045
    z2_gamma: Annotated[tuple[float, float], POSITIVE] = (5.0, 1.0)  # (shape, scale or rate)
    z4_noise_var: Annotated[float, NON_NEGATIVE] = 0.00125
    z4_gamma: Annotated[tuple[float, float], POSITIVE] = (2.0, 2.0)
    z5_noise_var: Annotated[float, NON_NEGATIVE] = 0.0075
    z5_gamma: Annotated[tuple[float, float], POSITIVE] = (3.0, 2.0)
    gamma_convention: Literal["shape_scale", "shape_rate"] = "shape_scale"
    w_low: Annotated[float, FINITE] = 0.0  # at most w_high
    w_high: Annotated[float, FINITE] = 1.0
    train_frac: Annotated[float, FRACTION] = 0.70  # train_frac + val_frac < 1
    val_frac: Annotated[float, SHARE] = 0.15

    def check(self) -> None:
        check_simulation("sim2", self.n, self.train_frac, self.val_frac, self.w_low, self.w_high)


# the two simulated views; their features are generated, so no media column
MODALITIES = (Modality("m1", "features"), Modality("m2", "features"))

LABELS = (
    LabelSpec("z1", "categorical", "shared", "shared Bernoulli factor"),
    LabelSpec("z2", "continuous", "shared", "z1 plus a Gamma perturbation"),
    LabelSpec("z3", "categorical", "m1", "modality-1 Bernoulli factor"),
    LabelSpec("z4", "continuous", "m1", "2·z2 + z3 plus a Gamma perturbation"),
    LabelSpec("z5", "continuous", "m2", "z2 plus a Gamma perturbation"),
)


@DATASETS.register("sim2")
class Sim2(Simulation):
    name = "sim2"
    description = "Simulation II: dependent shared/specific factors (z1..z5), 40-d and 80-d views"
    Config = Sim2Config
    modalities = MODALITIES

    def generate(self, config: Sim2Config) -> tuple[Manifest, dict[str, np.ndarray]]:
        rng = np.random.default_rng(config.seed)
        n = config.n

        def gamma(params: tuple[float, float]) -> np.ndarray:
            shape, second = params
            scale = second if config.gamma_convention == "shape_scale" else 1.0 / second
            return rng.gamma(shape, scale, size=n)

        z1 = rng.binomial(1, 0.5, size=n).astype(np.float64)
        z2 = z1 + np.sqrt(config.z2_noise_var) * gamma(config.z2_gamma)
        z3 = rng.binomial(1, 0.5, size=n).astype(np.float64)
        z4 = 2 * z2 + z3 + np.sqrt(config.z4_noise_var) * gamma(config.z4_gamma)
        z5 = z2 + np.sqrt(config.z5_noise_var) * gamma(config.z5_gamma)
        shared = np.column_stack([z1, z2])
        h1 = uniform_projection(np.column_stack([z3, z4, shared]), config.dim_m1, config.w_low, config.w_high, rng)
        h2 = uniform_projection(np.column_stack([z5, shared]), config.dim_m2, config.w_low, config.w_high, rng)

        labels = {"z1": z1.astype(np.int64), "z2": z2, "z3": z3.astype(np.int64), "z4": z4, "z5": z5}
        table = simulation_table("sim2", labels, config.train_frac, config.val_frac, config.seed)
        protocol = f"random {config.train_frac:.0%}/{config.val_frac:.0%}/rest split, seed {config.seed} (no groups)"
        manifest = Manifest("sim2", table, LABELS, MODALITIES, protocol)
        return manifest, {"m1": h1, "m2": h2}
