"""wavlm: microsoft/wavlm-base-plus (Chen et al., 2022), 768-d.

Its preprocessor feeds an attention mask (``return_attention_mask: true``, ``do_normalize:
false``), yet its conv feature extractor also uses group norm, which padding would shift: mmpipe
runs that extractor on each clip alone and masks the padded frames of the batch (`hub_audio`), so
every clip gets its one-clip output; pooled as the mean over valid frames.
"""

from __future__ import annotations

from pathlib import Path

from mmpipe.pipeline.encoders.base import ENCODERS
from mmpipe.pipeline.encoders.hub_audio import SpeechEncoder


@ENCODERS.register("wavlm")
class WavLM(SpeechEncoder):
    name = "wavlm"
    description = "microsoft/wavlm-base-plus, 16 kHz speech, attention mask, mean over valid frames, 768-d"
    model_id = "microsoft/wavlm-base-plus"
    model_class = "WavLMModel"
    model_type = "wavlm"
    hidden_size = 768
    num_hidden_layers = 12
    normalize = False
    attention_mask = True

    @classmethod
    def write_random_weights(cls, path: Path, *, tiny: bool = True, seed: int = 0) -> Path:
        from transformers import WavLMConfig

        small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                     num_buckets=32, max_bucket_distance=100)
        return cls.save_random(WavLMConfig(**(small if tiny else {})), path, seed)
