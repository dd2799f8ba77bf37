"""dino: facebook/dino-vitb16 (Caron et al., 2021), ViT-B/16, 768-d.

The checkpoint has no pooler: the feature is the [CLS] token of the last hidden state (after the
final layer norm). Preprocessing follows its preprocessor config: resize to 224 × 224
(bilinear), scale to [0, 1], ImageNet mean/std. ``--layers`` stores the [CLS] token of each chosen
hidden layer (before the final layer norm, as ``hidden_states`` returns it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mmpipe.pipeline.encoders.base import ENCODERS, EncoderOutput, EncoderSpec, ImagePreprocessing
from mmpipe.pipeline.encoders.hub import HubEncoder
from mmpipe.pipeline.inputs import ImageInput
from mmpipe.store.ranges import Checked

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DinoOptions(Checked):
    revision: str = "main"


@ENCODERS.register("dino")
class Dino(HubEncoder):
    name = "dino"
    description = "facebook/dino-vitb16, images 224², CLS of the last hidden state, 768-d"
    Options = DinoOptions
    model_id = "facebook/dino-vitb16"
    model_class = "ViTModel"
    model_type = "vit"
    hidden_size = 768
    num_hidden_layers = 12
    model_kwargs = {"add_pooling_layer": False}
    sequence_output = "last hidden state, every token ([CLS] then the patches)"

    def spec(self, weights: Path | None = None) -> EncoderSpec:
        hidden, n_layers = self.architecture(weights)
        pre = ImagePreprocessing((224, 224), IMAGENET_MEAN, IMAGENET_STD, "bilinear")
        return EncoderSpec(self.name, "image", self.model_id, self.options.revision, self.model_class, hidden,
                           (hidden,) * (n_layers + 1), "CLS of last hidden state", pre, asdict(self.options))

    def preparer(self) -> ImageInput:
        return ImageInput(self.spec().preprocessing)

    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        with torch.inference_mode():
            out = self.model(pixel_values=batch["pixel_values"], output_hidden_states=bool(layers))
            pooled = out.last_hidden_state[:, 0].float()  # (B, D)
            hidden = {k: out.hidden_states[k][:, 0].float() for k in layers}
            tokens = out.last_hidden_state  # (B, 1 + patches, D)
            steps = torch.full((len(tokens),), tokens.shape[1], device=tokens.device)
        return EncoderOutput(pooled, hidden, tokens, steps)

    def max_steps(self, length: int) -> int:
        config = self.model.config
        return 1 + (config.image_size // config.patch_size) ** 2

    @classmethod
    def write_random_weights(cls, path: Path, *, tiny: bool = True, seed: int = 0) -> Path:
        from transformers import ViTConfig

        small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        config = ViTConfig(image_size=224, patch_size=16, **(small if tiny else {}))
        return cls.save_random(config, path, seed)
