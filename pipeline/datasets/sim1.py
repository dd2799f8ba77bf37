"""Simulation I (MultiLoReFT paper, Appendix A.1.1): independent non-Gaussian latent factors.

Generative process, per sample::

    b ~ Binomial(1, 0.5)^2,          z_s  = b + N(0, σ² I),   σ² = ``shared_noise_var`` (0.01)
    z_m1 ~ Weibull(k=1.5, λ=1)^2 · 0.3,  z_m2 ~ Beta(3, 2)^2
    h1 = [z_m1, z_s] W1,  h2 = [z_m2, z_s] W2,  W_i ~ U(0, 1)^{4 × 10}

Labels (owner in brackets): ``y_s`` = 2·b_0 + b_1 ∈ {0..3} [shared, categorical], ``y_m1`` = Σ z_m1
[m1, continuous], ``y_m2`` = Σ z_m2 [m2, continuous], ``y_cond`` [joint, continuous].

Choices where the paper is open (each a config field):

- ``N(0, 0.01 I)`` is read as a *covariance* (standard deviation 0.1), the usual meaning of
  N(μ, Σ). ``y_s`` is computed from the noise-free bits.
- ``Weibull(1.5)`` is shape 1.5 with unit scale (numpy's and scipy's one-argument convention).
- ``W ~ U(0, 1)``: the paper says "a uniform distribution"; the unit interval is the default.
- ``y_cond`` is defined only for y_s ∈ {0, 1} (Σ z_m1 if y_s = 1, Σ z_m2 if y_s = 0). The
  default ``cond_rule="parity"`` selects by y_s mod 2 = b_1, which agrees with the paper on both
  defined cases and uses each modality for half the samples. ``"equals_one"`` uses Σ z_m1 only when
  y_s = 1 (a literal ``where(y_s == 1, ...)``); ``"undefined_nan"`` leaves y_s ∈ {2, 3} as NaN.
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
class Sim1Config(Checked):
    n: Annotated[int, between(1, MAX_ROWS)] = 10_000  # and every split at least MIN_SPLIT_ROWS rows
    seed: Annotated[int, SEED] = 0
    dim_m1: Annotated[int, WIDTH] = 10
    dim_m2: Annotated[int, WIDTH] = 10
    shared_noise_var: Annotated[float, NON_NEGATIVE] = 0.01
    weibull_shape: Annotated[float, POSITIVE] = 1.5
    weibull_scale: Annotated[float, POSITIVE] = 1.0
    weibull_multiplier: Annotated[float, FINITE] = 0.3
    beta_a: Annotated[float, POSITIVE] = 3.0
    beta_b: Annotated[float, POSITIVE] = 2.0
    w_low: Annotated[float, FINITE] = 0.0  # at most w_high
    w_high: Annotated[float, FINITE] = 1.0
    cond_rule: Literal["parity", "equals_one", "undefined_nan"] = "parity"
    train_frac: Annotated[float, FRACTION] = 0.70  # train_frac + val_frac < 1
    val_frac: Annotated[float, SHARE] = 0.15

    def check(self) -> None:
        check_simulation("sim1", self.n, self.train_frac, self.val_frac, self.w_low, self.w_high)


# the two simulated views; their features are generated, so no media column
MODALITIES = (Modality("m1", "features"), Modality("m2", "features"))

LABELS = (
    LabelSpec("y_s", "categorical", "shared", "2·b0 + b1 of the two shared binary bits"),
    LabelSpec("y_m1", "continuous", "m1", "sum of the modality-1 Weibull factors"),
    LabelSpec("y_m2", "continuous", "m2", "sum of the modality-2 Beta factors"),
    LabelSpec("y_cond", "continuous", "joint", "y_m1 or y_m2, selected by the shared label"),
)


@DATASETS.register("sim1")
class Sim1(Simulation):
    name = "sim1"
    description = "Simulation I: 2 shared binary + 2 Weibull (m1) + 2 Beta (m2) latents, 10-d views"
    Config = Sim1Config
    modalities = MODALITIES

    def generate(self, config: Sim1Config) -> tuple[Manifest, dict[str, np.ndarray]]:
        rng = np.random.default_rng(config.seed)
        n = config.n
        bits = rng.binomial(1, 0.5, size=(n, 2))
        z_s = bits + rng.normal(0.0, np.sqrt(config.shared_noise_var), size=(n, 2))
        z_m1 = config.weibull_scale * rng.weibull(config.weibull_shape, size=(n, 2)) * config.weibull_multiplier
        z_m2 = rng.beta(config.beta_a, config.beta_b, size=(n, 2))
        h1 = uniform_projection(np.hstack([z_m1, z_s]), config.dim_m1, config.w_low, config.w_high, rng)
        h2 = uniform_projection(np.hstack([z_m2, z_s]), config.dim_m2, config.w_low, config.w_high, rng)

        y_s = 2 * bits[:, 0] + bits[:, 1]
        y_m1, y_m2 = z_m1.sum(axis=1), z_m2.sum(axis=1)
        if config.cond_rule == "parity":
            y_cond = np.where(y_s % 2 == 1, y_m1, y_m2)
        elif config.cond_rule == "equals_one":
            y_cond = np.where(y_s == 1, y_m1, y_m2)
        else:
            y_cond = np.where(y_s == 1, y_m1, np.where(y_s == 0, y_m2, np.nan))

        table = simulation_table("sim1", {"y_s": y_s.astype(np.int64), "y_m1": y_m1, "y_m2": y_m2, "y_cond": y_cond},
                                 config.train_frac, config.val_frac, config.seed)
        protocol = f"random {config.train_frac:.0%}/{config.val_frac:.0%}/rest split, seed {config.seed} (no groups)"
        manifest = Manifest("sim1", table, LABELS, MODALITIES, protocol)
        return manifest, {"m1": h1, "m2": h2}
