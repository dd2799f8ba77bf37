"""Shared machinery of the torchvision Kinetics-400 video encoders (r3d18, mvit).

The preprocessing is the weights' own ``transforms()`` preset (``VideoClassification``), read
from the enum without loading anything. Real and test weights take one path: a checkpoint file
(the torch hub cache entry of the enum, or ``--weights FILE``) is read into the architecture
built with ``weights=None``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from mmpipe.pipeline.encoders.base import Encoder, EncoderSpec, VideoPreprocessing
from mmpipe.pipeline.encoders.weights import load_state_dict, local_identity, torchvision_checkpoint
from mmpipe.pipeline.inputs import VideoInput
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import Checked


@dataclass(frozen=True)
class VideoOptions(Checked):
    """Nothing to choose: frames, resolution and normalisation are fixed by the weights."""


class TorchvisionVideoEncoder(Encoder):
    Options = VideoOptions
    weights_name: ClassVar[str]  # "<enum class>.<member>" in torchvision.models.video
    architecture: ClassVar[str]  # the torchvision builder, e.g. "torchvision.models.video.r3d_18"
    frames: ClassVar[int] = 16
    dim: ClassVar[int]
    layer_dims: ClassVar[tuple[int, ...]]
    pooling: ClassVar[str]

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.model: Any = None

    @property
    def weights_enum(self) -> Any:
        """The torchvision weights enum member. torchvision.models is imported here, not at module
        import, so commands that run another encoder do not pay its import time."""
        from torchvision.models import video

        enum_class, member = self.weights_name.split(".")
        return getattr(getattr(video, enum_class), member)

    @classmethod
    def build(cls) -> torch.nn.Module:
        """The architecture with random weights (torchvision ``weights=None``)."""
        raise NotImplementedError

    def spec(self, weights: Path | None = None) -> EncoderSpec:
        preset = self.weights_enum.transforms()
        pre = VideoPreprocessing(self.frames, tuple(preset.resize_size), tuple(preset.crop_size), tuple(preset.mean),
                                 tuple(preset.std), preset.interpolation.value)
        file_name = self.weights_enum.url.rsplit("/", 1)[-1]
        return EncoderSpec(self.name, "video", str(self.weights_enum), file_name, self.architecture,
                           self.dim, self.layer_dims, self.pooling, pre, asdict(self.options))

    def weights_identity(self, weights: Path | None) -> dict[str, Any]:
        if weights is not None:
            return local_identity(Path(weights))
        return {"source": "torchvision", "weights": str(self.weights_enum),
                "file": self.weights_enum.url.rsplit("/", 1)[-1]}

    def load(self, device: torch.device | str, weights: Path | None = None) -> None:
        path = Path(weights) if weights is not None else torchvision_checkpoint(self.weights_enum)
        model = self.build()
        try:
            model.load_state_dict(load_state_dict(path))
        except RuntimeError as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(f"{path} is not a {self.name} checkpoint: {first}") from None
        self.remove_head(model)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def remove_head(self, model: torch.nn.Module) -> None:
        raise NotImplementedError

    def preparer(self) -> VideoInput:
        return VideoInput(self.spec().preprocessing)

    @classmethod
    def write_random_weights(cls, path: Path, *, tiny: bool = True, seed: int = 0) -> Path:
        """The full architecture (torchvision offers no smaller one) with random weights, as a state dict file."""
        torch.manual_seed(seed)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        target = path / f"{cls.name}-random-{seed}.pth"
        torch.save(cls.build().state_dict(), target)
        return target
