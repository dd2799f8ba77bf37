"""The encoder contract and its registry.

An encoder declares its :class:`EncoderSpec` from its options alone, without touching weights:
the spec (modality, model id, revision, output dim per layer, pooling, exact preprocessing) goes
into the extraction fingerprint. ``load(device, weights=None)`` then loads the model lazily, from
the hub id / torchvision weights enum by default or from a local directory or file.
``preparer()`` returns the picklable object that turns one media path or text into model input
in a DataLoader worker; ``encode(batch, layers)`` runs the model under ``torch.inference_mode()``
and returns pooled ``(B, D)`` features, on request pooled hidden layers ``{k: (B, D_k)}``, and the
last layer's sequence ``(B, T, D)`` with each row's valid steps (what ``sequence_output`` names;
``max_steps(length)`` bounds its T from the preparer's cheap length, without decoding).
Encoders do no store I/O: `mmpipe.pipeline.extract` owns that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from mmpipe.pipeline.preprocessing import (  # noqa: F401  (re-exported: the spec's parts)
    AudioPreprocessing,
    ImagePreprocessing,
    Preprocessing,
    TextPreprocessing,
    VideoPreprocessing,
)
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import Checked
from mmpipe.store.registry import Registry

Modality = Literal["audio", "video", "image", "text"]
MODALITIES = ("audio", "video", "image", "text")




@dataclass(frozen=True)
class EncoderSpec:
    """Everything that determines an encoder's output, declared without loading it.

    ``layer_dims[k]`` is the width of hidden layer ``k`` (0 = the embedding/stem output), the
    layers ``--layers`` may select; ``dim`` is the width of the pooled final output.
    """

    name: str
    modality: Modality
    model_id: str  # hub repo id or torchvision weights enum name
    revision: str  # hub revision, or the checkpoint file name (which carries its hash) for torchvision
    architecture: str
    dim: int
    layer_dims: tuple[int, ...]
    pooling: str
    preprocessing: Preprocessing
    options: dict[str, Any] = field(default_factory=dict)

    def check_layers(self, layers: tuple[int, ...]) -> None:
        bad = [k for k in layers if not 0 <= k < len(self.layer_dims)]
        if bad:
            raise UserError(f"{self.name} has hidden layers 0..{len(self.layer_dims) - 1}; "
                            f"cannot store layer(s) {', '.join(map(str, bad))}")


@dataclass(frozen=True)
class EncoderOutput:
    pooled: torch.Tensor  # (B, D)
    layers: dict[int, torch.Tensor]  # k -> (B, D_k), pooled the same way as the final output
    sequence: torch.Tensor  # (B, T, D): the last layer's frame / token outputs
    steps: torch.Tensor  # (B,) valid steps of each row; steps >= steps[i] are padding


@dataclass(frozen=True)
class NoOptions(Checked):
    """Encoders without options still have a (frozen, empty) options dataclass for `--set`."""


class Encoder(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    sequence_output: ClassVar[str]  # what ``EncoderOutput.sequence`` holds (part of the sequence entry's key)
    Options: ClassVar[type] = NoOptions  # frozen dataclass, every field defaulted

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()
        self.device = torch.device("cpu")

    @abstractmethod
    def spec(self, weights: Path | None = None) -> EncoderSpec:
        """The full spec; never loads weights. With a local ``weights`` checkpoint the widths are
        read from its config file (tiny test models are narrower than the real ones)."""

    @abstractmethod
    def weights_identity(self, weights: Path | None) -> dict[str, Any]:
        """What identifies the weights that ``load`` would use (hashed into the fingerprint).

        A hub checkpoint is named by the commit its revision resolves to (fetching the snapshot
        ``load`` would fetch anyway, unless offline); a local path by the sha256 of its files.
        """

    @abstractmethod
    def load(self, device: torch.device | str, weights: Path | None = None) -> None:
        """Load model (and tokenizer) onto ``device``, in eval mode. Missing weights offline → UserError."""

    @abstractmethod
    def preparer(self) -> Any:
        """A picklable `mmpipe.pipeline.inputs` preparer (valid after ``load``)."""

    @abstractmethod
    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        """Pooled features of a collated batch already on ``self.device``."""

    @abstractmethod
    def max_steps(self, length: int) -> int:
        """The most sequence steps an input of preparer ``length`` can give (valid after ``load``)."""

    @classmethod
    @abstractmethod
    def write_random_weights(cls, path: Path, *, tiny: bool = True, seed: int = 0) -> Path:
        """Write randomly initialised weights in the exact format ``load(weights=path)`` reads
        (for tests and benchmarks without network); ``tiny`` shrinks the architecture where the
        family allows it. Returns the path to pass as ``weights``."""


ENCODERS: Registry[type[Encoder]] = Registry("encoder")
