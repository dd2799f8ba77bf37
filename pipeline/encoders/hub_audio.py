"""Speech encoders from the hub (wav2vec2, wavlm): 16 kHz waveforms, mean over valid frames."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import torch

from mmpipe.pipeline.encoders.base import AudioPreprocessing, EncoderOutput, EncoderSpec
from mmpipe.pipeline.encoders.hub import HubEncoder, masked_mean
from mmpipe.pipeline.inputs import AudioInput
from mmpipe.store.ranges import POSITIVE, Checked


@dataclass(frozen=True)
class SpeechOptions(Checked):
    revision: str = "main"
    max_seconds: Annotated[float | None, POSITIVE] = None  # cut longer clips (None: whole clip)


class SpeechEncoder(HubEncoder):
    """pooled = Σ_t h_t / n_frames over the frames produced by the true (unpadded) samples, where
    n_frames = the conv feature extractor's output length (``_get_feat_extract_output_lengths``)."""

    Options = SpeechOptions
    sample_rate: ClassVar[int] = 16_000
    normalize: ClassVar[bool]
    attention_mask: ClassVar[bool]

    def spec(self, weights: Path | None = None) -> EncoderSpec:
        hidden, n_layers = self.architecture(weights)
        pre = AudioPreprocessing(self.sample_rate, self.normalize, self.attention_mask, self.options.max_seconds)
        return EncoderSpec(self.name, "audio", self.model_id, self.options.revision, self.model_class, hidden,
                           (hidden,) * (n_layers + 1), "mean over valid frames", pre, asdict(self.options))

    def preparer(self) -> AudioInput:
        return AudioInput(self.spec().preprocessing)

    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        kwargs: dict[str, Any] = {"attention_mask": batch["attention_mask"]} if self.attention_mask else {}
        with torch.inference_mode(), warnings.catch_warnings():
            # WavLM hands torch MHA a float position bias with a padding mask; torch warns but handles it
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            out = self.model(batch["input_values"], output_hidden_states=bool(layers), **kwargs)
            frames = self.model._get_feat_extract_output_lengths(batch["lengths"])  # (B,)
            steps = out.last_hidden_state.shape[1]
            mask = torch.arange(steps, device=frames.device)[None, :] < frames[:, None]  # (B, T')
            pooled = masked_mean(out.last_hidden_state, mask)  # (B, D)
            hidden = {k: masked_mean(out.hidden_states[k], mask) for k in layers}
        return EncoderOutput(pooled, hidden)
