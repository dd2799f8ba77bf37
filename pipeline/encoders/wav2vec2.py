"""wav2vec2: facebook/wav2vec2-base-960h (Baevski et al., 2020), 768-d.

This checkpoint uses group norm in its feature extractor and was trained without an attention
mask (its preprocessor says ``return_attention_mask: false``, because padded waveforms would
shift the group norm). mmpipe runs the conv feature extractor on each clip alone and masks only
the padded *frames* of the batch (`hub_audio`), so every clip gets exactly its one-clip, unpadded
output; pooling averages its frames. Waveforms are normalised per clip (``do_normalize: true``).
"""

from __future__ import annotations

from pathlib import Path

from mmpipe.pipeline.encoders.base import ENCODERS
from mmpipe.pipeline.encoders.hub_audio import SpeechEncoder


@ENCODERS.register("wav2vec2")
class Wav2Vec2(SpeechEncoder):
    name = "wav2vec2"
    description = "facebook/wav2vec2-base-960h, 16 kHz speech, mean over true-length frames, 768-d"
    model_id = "facebook/wav2vec2-base-960h"
    model_class = "Wav2Vec2Model"
    model_type = "wav2vec2"
    hidden_size = 768
    num_hidden_layers = 12
    normalize = True
    attention_mask = False

    @classmethod
    def write_random_weights(cls, path: Path, *, tiny: bool = True, seed: int = 0) -> Path:
        from transformers import Wav2Vec2Config

        small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
        return cls.save_random(Wav2Vec2Config(**(small if tiny else {})), path, seed)
