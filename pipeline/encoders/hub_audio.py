"""Speech encoders from the hub (wav2vec2, wavlm): 16 kHz waveforms, mean over valid frames.

Batch invariance: a clip's features equal those of the same clip encoded alone, whatever else
shares its batch. The convolutional feature encoder is length-sensitive (with
``feat_extract_norm="group"`` its first layer normalises each channel over the whole time axis,
so zero padding would shift every shorter clip's statistics), so it runs on each clip at its true
length. Its frame features, zero-padded to the longest clip, then go through the rest of the
checkpoint's own forward with the sample-level padding mask, from which transformers derives the
frame mask (``_get_feature_vector_attention_mask``): it zeroes the padded frames before the
positional convolution (so they add exactly the zeros a lone clip's edge padding adds) and masks
them out of every attention. The per-frame projection and layer norms never mix frames.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import torch

from mmpipe.pipeline.encoders.base import AudioPreprocessing, EncoderOutput, EncoderSpec
from mmpipe.pipeline.encoders.hub import HubEncoder, masked_mean
from mmpipe.pipeline.inputs import AudioInput
from mmpipe.store.ranges import POSITIVE, Checked

# in the fingerprint: names the per-clip computation (earlier stores' batched rows depended on the batch)
POOLING = "mean over valid frames, each clip encoded as if alone"


@dataclass(frozen=True)
class SpeechOptions(Checked):
    revision: str = "main"
    max_seconds: Annotated[float | None, POSITIVE] = None  # cut longer clips (None: whole clip)


class SpeechEncoder(HubEncoder):
    """pooled = Σ_t h_t / n_frames over the frames produced by the true (unpadded) samples, where
    n_frames = the conv feature extractor's output length (``_get_feat_extract_output_lengths``)
    and h = the model's output for the clip alone."""

    Options = SpeechOptions
    sequence_output = "last hidden state, every frame"
    sample_rate: ClassVar[int] = 16_000
    normalize: ClassVar[bool]
    attention_mask: ClassVar[bool]  # the checkpoint's own preprocessor convention, recorded in the spec

    def __init__(self, options: object = None) -> None:
        super().__init__(options)
        self.conv: torch.nn.Module | None = None

    def spec(self, weights: Path | None = None) -> EncoderSpec:
        hidden, n_layers = self.architecture(weights)
        pre = AudioPreprocessing(self.sample_rate, self.normalize, self.attention_mask, self.options.max_seconds)
        return EncoderSpec(self.name, "audio", self.model_id, self.options.revision, self.model_class, hidden,
                           (hidden,) * (n_layers + 1), POOLING, pre, asdict(self.options))

    def load(self, device: torch.device | str, weights: Path | None = None) -> None:
        super().load(device, weights)
        # the model's forward then starts from conv features, which `encode` computes clip by clip
        self.conv, self.model.feature_extractor = self.model.feature_extractor, torch.nn.Identity()

    def preparer(self) -> AudioInput:
        return AudioInput(self.spec().preprocessing)

    def conv_features(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) zero-padded waveforms -> (B, C, T') conv features, each clip's computed from its
        true length alone and zero-padded to the longest. A clip too short for one frame has none
        (it pools to zeros); T' >= 1 because transformers cannot build a mask over zero frames."""
        frames = self.model._get_feat_extract_output_lengths(lengths)  # (B,)
        out = waves.new_zeros(len(waves), self.model.config.conv_dim[-1], max(1, int(frames.max())))
        for row, (n, t) in enumerate(zip(lengths.tolist(), frames.tolist(), strict=True)):
            if t > 0:
                out[row, :, :t] = self.conv(waves[row : row + 1, :n])[0]
        return out

    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        with torch.inference_mode(), warnings.catch_warnings():
            # WavLM hands torch MHA a float position bias with a padding mask; torch warns but handles it
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            features = self.conv_features(batch["input_values"], batch["lengths"])  # (B, C, T')
            out = self.model(features, attention_mask=batch["attention_mask"], output_hidden_states=bool(layers))
            frames = self.model._get_feat_extract_output_lengths(batch["lengths"])  # (B,)
            steps = out.last_hidden_state.shape[1]
            mask = torch.arange(steps, device=frames.device)[None, :] < frames[:, None]  # (B, T')
            pooled = masked_mean(out.last_hidden_state, mask)  # (B, D)
            hidden = {k: masked_mean(out.hidden_states[k], mask) for k in layers}
        return EncoderOutput(pooled, hidden, out.last_hidden_state, frames)  # sequence (B, T', D)

    def max_steps(self, length: int) -> int:
        """Frames of a clip of ``length`` samples at 16 kHz (+1: the header's length is rounded down)."""
        samples = length + 1
        if self.options.max_seconds is not None:
            samples = min(samples, int(self.options.max_seconds * self.sample_rate) + 2)  # resampling rounds up
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(samples)))
