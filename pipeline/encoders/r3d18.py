"""r3d18: torchvision R3D-18 on Kinetics-400 (Tran et al., 2018; Kay et al., 2017), 512-d.

16 frames, the weights' own transforms (resize 128 × 171, centre crop 112², Kinetics mean/std).
The classifier ``fc`` is removed: the feature is the global average pool of ``layer4``. Hidden
layers for ``--layers``: 0 = stem, 1..4 = residual stages, each global-average-pooled over
(T, H, W).
"""

from __future__ import annotations

import torch

from mmpipe.pipeline.encoders.base import ENCODERS, EncoderOutput
from mmpipe.pipeline.encoders.torchvision_video import TorchvisionVideoEncoder


@ENCODERS.register("r3d18")
class R3D18(TorchvisionVideoEncoder):
    name = "r3d18"
    description = "torchvision R3D-18 Kinetics-400, 16 frames at 112², classifier removed, 512-d"
    architecture = "torchvision.models.video.r3d_18"  # part of the feature key: an explicit name, never a docstring
    weights_name = "R3D_18_Weights.KINETICS400_V1"
    dim = 512
    layer_dims = (64, 64, 128, 256, 512)
    pooling = "global average pool over (T, H, W)"
    sequence_output = "layer4 averaged over (H, W), every temporal position"

    @classmethod
    def build(cls) -> torch.nn.Module:
        """torchvision.models.video.r3d_18"""
        from torchvision.models.video import r3d_18

        return r3d_18(weights=None)

    def remove_head(self, model: torch.nn.Module) -> None:
        model.fc = torch.nn.Identity()

    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        model = self.model
        with torch.inference_mode():
            x = model.stem(batch["video"])  # (B, 64, T, H', W')
            stages = [x]
            for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
                x = stage(x)
                stages.append(x)
            pooled = x.float().mean(dim=(2, 3, 4))  # (B, 512) = avgpool + flatten
            hidden = {k: stages[k].float().mean(dim=(2, 3, 4)) for k in layers}
            frames = x.float().mean(dim=(3, 4)).transpose(1, 2)  # (B, T', 512)
            steps = torch.full((len(frames),), frames.shape[1], device=frames.device)
        return EncoderOutput(pooled, hidden, frames, steps)

    def max_steps(self, length: int) -> int:
        return self.frames // 8  # layer2..layer4 each halve time (kernel 3, stride 2, padding 1)
