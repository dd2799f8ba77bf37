"""What every adapter method provides, so the fit workflow, the CLI and the tests treat all alike.

A method receives its inputs as a mapping modality name → tensor, in the order the user chose
(for a two-modality method the first is its "modality 1", the second its "modality 2"). It
declares how many modalities it accepts (``modality_count``) and which input kinds
(``input_kinds``: "pooled" rows (N, D), "sequence" rows (N, T, D) with lengths); a request that
does not fit is refused with one line before any work (`check_inputs`). Components are named by
`adapters/components.py`.

A method that embeds two modalities in one space declares which of its components can be compared
row against row (`retrieval_pairs`: cross-modal retrieval, `evaluate/retrieval.py`). A pair is
declared only where the method's own objective makes the two components interchangeable
coordinates of one space (a cross-modal InfoNCE between exactly these vectors, or two encoders
regressing one shared latent) — not where two components merely have the same width, nor where
an alignment is made through a further head the components do not include. A configuration that
switches that objective off declares none.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from mmpipe.adapters import components
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.store.errors import UserError

ProgressFn = Callable[[str], None]
Dims = Mapping[str, int]  # modality name -> feature width D, in the method's modality order


class InputScaler(nn.Module):
    """Per-modality standardisation with train statistics: x_k ← (x_k − mean_k) / scale_k.

    Buffers ``mean_<k>`` and ``scale_<k>`` (D_k,), saved with the checkpoint; the identity until
    `fit` is called.
    """

    def __init__(self, dims: Dims) -> None:
        super().__init__()
        self.modalities = tuple(dims)
        for modality, d in dims.items():
            self.register_buffer(f"mean_{modality}", torch.zeros(d))
            self.register_buffer(f"scale_{modality}", torch.ones(d))

    @torch.no_grad()
    def fit(self, train: Mapping[str, torch.Tensor]) -> None:
        """Statistics of the train rows, per modality: train[k] is (n_train, D_k)."""
        for modality in self.modalities:
            getattr(self, f"mean_{modality}").copy_(train[modality].mean(0))
            getattr(self, f"scale_{modality}").copy_(train[modality].std(0).clamp_min(1e-6))

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: (inputs[m] - getattr(self, f"mean_{m}")) / getattr(self, f"scale_{m}") for m in self.modalities}


@dataclasses.dataclass(frozen=True)
class RetrievalPair:
    """Two components of one fit that live in one space, row i of each being the same sample seen
    through one modality: ``components[j]`` embeds ``modalities[j]``."""

    modalities: tuple[str, str]
    components: tuple[str, str]


class AdapterMethod(nn.Module):
    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type]  # frozen dataclass, every field defaulted
    modality_count: ClassVar[tuple[int, int | None]] = (2, 2)  # (fewest, most); None: no upper bound
    input_kinds: ClassVar[frozenset[str]] = frozenset({"pooled"})
    ablation_fields: ClassVar[frozenset[str]] = frozenset()  # config switches that ``ablation`` names

    @classmethod
    def accepts(cls) -> str:
        """How many modalities the method takes, in words ("exactly 2", "2 or more")."""
        low, high = cls.modality_count
        if high == low:
            return f"exactly {low}"
        return f"{low} or more" if high is None else f"{low} to {high}"

    @classmethod
    def check_inputs(cls, kinds: Mapping[str, str]) -> None:
        """Refuse (UserError, one line) inputs of the wrong number or kind; ``kinds`` maps each
        modality to "pooled" or "sequence"."""
        low, high = cls.modality_count
        if len(kinds) < low or (high is not None and len(kinds) > high):
            raise UserError(f"{cls.name} takes {cls.accepts()} modalities, got {len(kinds)} "
                            f"({', '.join(kinds) or 'none'})")
        wrong = {m: k for m, k in kinds.items() if k not in cls.input_kinds}
        if wrong:
            modality, kind = next(iter(wrong.items()))
            raise UserError(f"{cls.name} takes {' or '.join(sorted(cls.input_kinds))} inputs, but {modality} is "
                            f"a {kind} feature")

    @classmethod
    @abstractmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        """The components a fit on these modalities produces, in order."""

    @classmethod
    @abstractmethod
    def fit(cls, data: MultimodalFeatures, config: Any, seed: int,
            progress: ProgressFn | None = None) -> tuple[AdapterMethod, dict[str, Any]]:
        """Train on ``data``'s train split (selecting on val); return the model and a history
        dict merged into the run record (ranks, rank_history, stage_history, timings, ...)."""

    @classmethod
    def retrieval_pairs(cls, modalities: tuple[str, ...], config: Any) -> tuple[RetrievalPair, ...]:
        """The component pairs a fit with this ``config`` on ``modalities`` embeds in one space
        (see the module docstring); none by default."""
        return ()

    @classmethod
    def stored_config(cls, fields: Mapping[str, Any]) -> Any:
        """The config a run record stores (JSON: tuples as lists) as the method's Config."""
        return cls.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    @classmethod
    def ablation(cls, config: Any) -> str | None:
        """A short name for the ablation ``config`` represents (e.g. "no pruning"), None for the
        full method; reports keep ablations apart from the full model."""
        return None

    @classmethod
    def settings(cls, config: Any) -> dict[str, Any]:
        """Config fields that differ from the method's defaults (data-dependent defaults included),
        other than the ablation switches and the device. Runs with different settings are
        different variants in every table, so results of different hyperparameters are never
        averaged together."""
        defaults = cls.Config()
        skip = cls.ablation_fields | {"device"}
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name not in skip and getattr(config, f.name) != getattr(defaults, f.name)}

    @abstractmethod
    def transform(self, inputs: Mapping[str, torch.Tensor],
                  lengths: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Named components for rows of ``inputs`` (modality → (N, D_k), or (N, T, D_k) for a
        method that takes sequences), in ``component_names`` order. ``lengths`` (modality → (N,)
        valid steps) come with sequence inputs; a method that takes pooled rows only never gets
        them."""

    @classmethod
    @abstractmethod
    def from_state(cls, config: Any, dims: Dims, state: dict[str, torch.Tensor]) -> AdapterMethod:
        """Rebuild a trained model from its checkpoint (shapes may differ from a fresh one)."""


class TwoModalityMethod(AdapterMethod):
    """A method defined for exactly two modalities, written in terms of h1 and h2: the first and
    second modality of its inputs. ``transform`` feeds ``components(h1, h2)``, whose names use 1
    and 2, and renames them for the modalities (``names``)."""

    modality_count = (2, 2)

    def __init__(self, dims: Dims) -> None:
        super().__init__()
        if len(dims) != 2:
            raise UserError(f"{self.name} takes exactly 2 modalities, got {len(dims)} ({', '.join(dims)})")
        self.modalities: tuple[str, str] = tuple(dims)  # type: ignore[assignment]
        self.dims: tuple[int, int] = tuple(dims.values())  # type: ignore[assignment]
        self.scaler = InputScaler(dims)

    def pair(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(h1, h2) of ``inputs`` in the method's modality order."""
        first, second = self.modalities
        return inputs[first], inputs[second]

    def standardized(self, h1: torch.Tensor, h2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scaled = self.scaler(dict(zip(self.modalities, (h1, h2), strict=True)))
        return self.pair(scaled)

    def fit_scaler(self, train1: torch.Tensor, train2: torch.Tensor) -> None:
        self.scaler.fit(dict(zip(self.modalities, (train1, train2), strict=True)))

    @classmethod
    @abstractmethod
    def positional_names(cls) -> tuple[str, ...]:
        """Component names with modalities written 1 and 2 (z_s1, z_m1, phi1, ...), in order."""

    @classmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(positional_name(name, modalities) for name in cls.positional_names())

    @abstractmethod
    def components(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Positionally named components for raw (unstandardised) rows h1 (N, d1), h2 (N, d2)."""

    @torch.no_grad()
    def transform(self, inputs: Mapping[str, torch.Tensor],
                  lengths: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        self.eval()
        out = self.components(*self.pair(inputs))
        return {positional_name(name, self.modalities): out[name] for name in self.positional_names()}


def with_shared_and_fused(parts: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A decoupling method's positional parts z_s1, z_s2 (N, r_s), z_m1 (N, r_m1), z_m2 (N, r_m2),
    plus the two components built from them::

        z_s = (z_s1 + z_s2) / 2,   fused = [z_s, z_m1, z_m2]      (N, r_s + r_m1 + r_m2)
    """
    z_s = (parts["z_s1"] + parts["z_s2"]) / 2  # (N, r_s)
    return {**parts, "z_s": z_s, "fused": torch.cat([z_s, parts["z_m1"], parts["z_m2"]], dim=1)}


def positional_pair(first: str, second: str, modalities: tuple[str, ...]) -> RetrievalPair:
    """The retrieval pair of a two-modality method's positional components (z_s1, z_s2 → z_s_<first>,
    z_s_<second>)."""
    return RetrievalPair((modalities[0], modalities[1]),
                         (positional_name(first, modalities), positional_name(second, modalities)))


def positional_name(name: str, modalities: tuple[str, ...]) -> str:
    """z_s1 → z_s_<first>, z_m2 → z_<second>, phi1 → phi_<first>, z_s / fused unchanged."""
    if name[-1:] not in ("1", "2"):
        return name
    modality = modalities[int(name[-1]) - 1]
    stem = name[:-1]
    if stem == "z_s":
        return components.shared_part(modality)
    if stem == "z_m":
        return components.specific(modality)
    return components.per_modality(stem, modality)
