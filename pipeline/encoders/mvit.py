"""mvit: torchvision MViT-V2-S on Kinetics-400 (Li et al., 2022), 768-d.

Exactly 16 frames (the positional encoding is fixed to 16 × 224²), the weights' own transforms
(resize shorter side 256, centre crop 224², mean 0.45, std 0.225). The head is removed: the
feature is the class token after the final norm, as in ``MViT.forward`` before ``head``.
Hidden layers for ``--layers``: 0 = patch embedding + positional encoding, k = output of block
k (1..16); each is its class token (widths 96 → 768).
"""

from __future__ import annotations

import torch

from mmpipe.pipeline.encoders.base import ENCODERS, EncoderOutput
from mmpipe.pipeline.encoders.torchvision_video import TorchvisionVideoEncoder

# torchvision's mvit_v2_s block_setting output_channels, preceded by the embedding width
_BLOCK_DIMS = (96, 192, 192, 384, 384, 384, 384, 384, 384, 384, 384, 384, 384, 384, 768, 768)


@ENCODERS.register("mvit")
class MViT(TorchvisionVideoEncoder):
    name = "mvit"
    description = "torchvision MViT-V2-S Kinetics-400, exactly 16 frames at 224², head removed, 768-d"
    architecture = "torchvision.models.video.mvit_v2_s"  # part of the feature key: an explicit name, never a docstring
    weights_name = "MViT_V2_S_Weights.KINETICS400_V1"
    dim = 768
    layer_dims = (96, *_BLOCK_DIMS)
    pooling = "class token after final norm"
    sequence_output = "patch tokens after final norm, averaged over space, every temporal position"

    @classmethod
    def build(cls) -> torch.nn.Module:
        """torchvision.models.video.mvit_v2_s"""
        from torchvision.models.video import mvit_v2_s

        return mvit_v2_s(weights=None)

    def remove_head(self, model: torch.nn.Module) -> None:
        model.head = torch.nn.Identity()

    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        model = self.model
        with torch.inference_mode():
            x = model.conv_proj(batch["video"]).flatten(2).transpose(1, 2)  # (B, T'H'W', 96)
            x = model.pos_encoding(x)  # (B, 1 + T'H'W', 96): class token first
            tokens = [x[:, 0]]
            thw = (model.pos_encoding.temporal_size, *model.pos_encoding.spatial_size)
            for block in model.blocks:
                x, thw = block(x, thw)
                tokens.append(x[:, 0])
            normed = model.norm(x)  # (B, 1 + T'H'W', 768)
            pooled = normed[:, 0].float()  # (B, 768)
            hidden = {k: tokens[k].float() for k in layers}
            t, h, w = thw
            frames = normed[:, 1:].float().reshape(len(x), t, h * w, -1).mean(dim=2)  # (B, T', 768)
            steps = torch.full((len(frames),), t, device=frames.device)
        return EncoderOutput(pooled, hidden, frames, steps)

    def max_steps(self, length: int) -> int:
        return self.model.pos_encoding.temporal_size
