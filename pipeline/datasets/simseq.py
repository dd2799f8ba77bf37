"""simseq: a synthetic sequence benchmark with known structure, for the sequence methods (S3, DLF)
and the pooled ones (on mean- or last-pooled views) alike, on any machine.

Three modalities, ``text``, ``audio`` and ``vision`` (named as in the affect benchmarks, so a method
configured for MOSI runs unchanged; their kind is ``features``), each a variable-length sequence of
feature vectors. Seven latent factors, named by who carries them::

    all                    text, audio, vision      f_all   = 2·b_all − 1,   b_all ~ Ber(0.5)
    ta / tv / av           the pair of modalities   f_pair  ~ N(0, 1)
    text / vision          that modality only       f       ~ N(0, 1)
    audio                  audio only               f_audio = 2·b_audio − 1, b_audio ~ Ber(0.5)

Generative process, per row i (all draws from one generator seeded with ``seed``)::

    L_k ~ U{min_steps_k .. max_steps_k}                 valid steps of modality k (independent)
    a_jk ~ N(0, I_{D_k}) / ‖·‖                          a unit loading of factor j in modality k,
                                                        one per (j, k), shared by every row
    carrier_j(t) = 1                                    a persistent factor: every valid step
    carrier_j(t) = burst_gain · 1[s_jk <= t < s_jk + w]  a transient factor (``transient``): w =
                                                        ``burst_steps`` steps only, from
                                                        s_jk = ⌊u_j · (L_k − w + 1)⌋, u_j ~ U(0, 1)
                                                        per row: the same relative position in
                                                        every modality that carries it
    x_k[t] = Σ_{j carried by k} f_j · carrier_j(t) · a_jk + noise_std · ε_t,   ε_t ~ N(0, I)
                                                        for t < L_k; steps t >= L_k are zero

Mean pooling keeps a persistent factor whole (f_j · a_jk, noise shrunk by √L_k) but dilutes a
transient one to burst_gain · w / L_k of its amplitude, with a row-dependent scale; for the defaults
at L = 16 that is 1.5·2/16 ≈ 0.19, no more than the pooled noise σ/√L = 0.75/4 ≈ 0.19, while each of
its w steps shows it at burst_gain/σ = 2 times the noise: a sequence model can find it. (With the
defaults, a ridge on the mean-pooled modalities concatenated recovers the persistent factors with
test R² ≈ 0.95–0.98 but the transient ones with R² ≈ 0.45–0.6.)

Labels (owner; ``scale`` where declared)::

    y_all     b_all       categorical   shared            binary
    y_ta      f_ta        continuous    joint             (shared by text and audio only)
    y_tv      f_tv        continuous    joint             (shared by text and vision only)
    y_av      f_av        continuous    joint             (shared by audio and vision only)
    y_text    f_text      continuous    text
    y_audio   b_audio     categorical   audio             binary
    y_vision  f_vision    continuous    vision
    sentiment             continuous    joint             sentiment

    sentiment = clip(round_half_even(A · g · (f_all + f_ta + f_tv) / √3) / A, −3, 3)

with g = ``sentiment_gain`` and A = ``annotators``: a score on the MSA scale [−3, 3] in steps of
1/A, as the mean of A integer ratings would be, exactly 0 for |g · (f_all + f_ta + f_tv) / √3| <=
1/(2A) (about 8 % of rows with the defaults), so the has0 and non0 binarisations differ. It needs
all three modalities (f_tv is transient by default), hence ``joint``.

Choices (each a config field): the manifest's label owners are ``shared``, ``joint`` or one
modality, so a factor shared by exactly two modalities is labelled ``joint`` (no component owns
it; its description names the pair); the default transient factors are one pair factor (``tv``)
and one specific factor (``vision``); the loadings are random unit vectors, nearly orthogonal for
the default widths, so every factor is linearly recoverable from a modality that carries it.
Splits: random train/val/test like Sim I/II (no groups).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from mmpipe.pipeline.datasets.base import DATASETS, Simulation
from mmpipe.pipeline.datasets.splits import check_fractions, split_counts
from mmpipe.pipeline.datasets.synthetic import simulation_table
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import LabelSpec, Manifest, Modality
from mmpipe.store.ranges import (
    FRACTION,
    MAX_ROWS,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    SHARE,
    WIDTH,
    Checked,
    between,
    check_split_rows,
)


@dataclass(frozen=True)
class Sequences:
    """One modality's generated sequences, row-aligned with the manifest like a pooled (N, D) array:
    ``len`` is the number of rows. `mmpipe.pipeline.simulate` writes it as a sequence entry."""

    values: np.ndarray  # (N, T, D) float32, zero at and beyond each row's length
    lengths: np.ndarray  # (N,) int32 valid steps per row

    def __len__(self) -> int:
        return len(self.values)


MODALITIES = (Modality("text", "features"), Modality("audio", "features"), Modality("vision", "features"))
NAMES = tuple(m.name for m in MODALITIES)
# factor -> the modalities that carry it
FACTORS = {"all": NAMES, "ta": ("text", "audio"), "tv": ("text", "vision"), "av": ("audio", "vision"),
           "text": ("text",), "audio": ("audio",), "vision": ("vision",)}
BINARY_FACTORS = ("all", "audio")  # ±1 from a fair coin; the others are N(0, 1)
SENTIMENT_FACTORS = ("all", "ta", "tv")
MAX_STEPS = 100_000
Factor = Literal["all", "ta", "tv", "av", "text", "audio", "vision"]


@dataclass(frozen=True)
class SimseqConfig(Checked):
    n: Annotated[int, between(1, MAX_ROWS)] = 2_000  # and every split at least MIN_SPLIT_ROWS rows
    seed: Annotated[int, SEED] = 0
    dims: Annotated[tuple[int, int, int], WIDTH] = (16, 12, 8)  # feature width of text, audio, vision
    max_steps: Annotated[tuple[int, int, int], between(1, MAX_STEPS)] = (20, 32, 24)  # T of each modality
    min_steps: Annotated[tuple[int, int, int], between(1, MAX_STEPS)] = (8, 12, 10)  # each <= its max_steps
    noise_std: Annotated[float, NON_NEGATIVE] = 0.75
    transient: tuple[Factor, ...] = ("tv", "vision")  # factors carried by burst_steps steps only
    burst_steps: Annotated[int, between(1, MAX_STEPS)] = 2  # at most every min_steps
    burst_gain: Annotated[float, POSITIVE] = 1.5
    sentiment_gain: Annotated[float, POSITIVE] = 1.5
    annotators: Annotated[int, between(1, 1000)] = 3  # sentiment is a multiple of 1/annotators
    train_frac: Annotated[float, FRACTION] = 0.70  # train_frac + val_frac < 1
    val_frac: Annotated[float, SHARE] = 0.15

    def check(self) -> None:
        check_fractions(self.train_frac, self.val_frac)
        check_split_rows(split_counts(self.n, self.train_frac, self.val_frac), "simseq",
                         "raise n (or the fraction of the smallest split)")
        for name, low, high in zip(NAMES, self.min_steps, self.max_steps, strict=True):
            if low > high:
                raise UserError(f"simseq: min_steps must be <= max_steps for each modality; {name}: {low} > {high}")
        if self.burst_steps > min(self.min_steps):
            raise UserError(f"simseq: burst_steps must be <= every min_steps (a burst fits in each sequence), "
                            f"not {self.burst_steps} > {min(self.min_steps)}")
        if len(set(self.transient)) != len(self.transient):
            raise UserError(f"simseq: transient must name each factor once, not {list(self.transient)}")


def _pair(factor: str) -> str:
    return " and ".join(FACTORS[factor])


LABELS = (
    LabelSpec("y_all", "categorical", "shared", "the coin behind the factor all three modalities carry", "binary"),
    *(LabelSpec(f"y_{p}", "continuous", "joint", f"the factor shared by {_pair(p)} only") for p in ("ta", "tv", "av")),
    LabelSpec("y_text", "continuous", "text", "the factor specific to text"),
    LabelSpec("y_audio", "categorical", "audio", "the coin behind the factor specific to audio", "binary"),
    LabelSpec("y_vision", "continuous", "vision", "the factor specific to vision"),
    LabelSpec("sentiment", "continuous", "joint", "MSA-scale score of f_all + f_ta + f_tv, in steps of "
              "1/annotators", "sentiment"),
)


@DATASETS.register("simseq")
class Simseq(Simulation):
    name = "simseq"
    description = ("Synthetic sequences: text/audio/vision with factors shared by all, by pairs and specific, "
                   "some carried by a few steps only")
    Config = SimseqConfig
    modalities = MODALITIES

    def generate(self, config: SimseqConfig) -> tuple[Manifest, dict[str, Sequences]]:
        rng = np.random.default_rng(config.seed)
        n = config.n
        bits = {j: rng.binomial(1, 0.5, size=n) for j in BINARY_FACTORS}
        factors = {j: (2.0 * bits[j] - 1.0) if j in bits else rng.standard_normal(n) for j in FACTORS}
        onsets = {j: rng.uniform(0.0, 1.0, size=n) for j in config.transient}
        arrays = {}
        for name, dim, low, high in zip(NAMES, config.dims, config.min_steps, config.max_steps, strict=True):
            lengths = rng.integers(low, high + 1, size=n)
            steps = np.arange(high)[None, :]  # (1, T)
            valid = steps < lengths[:, None]  # (n, T)
            x = config.noise_std * rng.standard_normal((n, high, dim)) * valid[:, :, None]  # (n, T, D)
            for j, carriers in FACTORS.items():
                if name not in carriers:
                    continue
                loading = rng.standard_normal(dim)
                loading /= np.linalg.norm(loading)  # (D,)
                if j in onsets:
                    start = np.minimum(np.floor(onsets[j] * (lengths - config.burst_steps + 1)),
                                       lengths - config.burst_steps)[:, None]
                    carrier = config.burst_gain * ((steps >= start) & (steps < start + config.burst_steps))
                else:
                    carrier = valid.astype(np.float64)
                x += (factors[j][:, None] * carrier)[:, :, None] * loading[None, None, :]
            arrays[name] = Sequences(x.astype(np.float32), lengths.astype(np.int32))

        raw = config.sentiment_gain * sum(factors[j] for j in SENTIMENT_FACTORS) / math.sqrt(len(SENTIMENT_FACTORS))
        sentiment = np.clip(np.round(config.annotators * raw) / config.annotators, -3.0, 3.0) + 0.0  # no −0
        labels = {"y_all": bits["all"].astype(np.int64), **{f"y_{p}": factors[p] for p in ("ta", "tv", "av")},
                  "y_text": factors["text"], "y_audio": bits["audio"].astype(np.int64),
                  "y_vision": factors["vision"], "sentiment": sentiment}
        table = simulation_table("simseq", labels, config.train_frac, config.val_frac, config.seed)
        protocol = f"random {config.train_frac:.0%}/{config.val_frac:.0%}/rest split, seed {config.seed} (no groups)"
        return Manifest("simseq", table, LABELS, MODALITIES, protocol), arrays
