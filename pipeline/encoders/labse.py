"""labse: sentence-transformers/LaBSE (Feng et al., 2022), multilingual, 768-d.

LaBSE's own pooling: the BERT pooler output (dense + tanh over the final [CLS] state), then L2
normalisation, e = pooler(h_CLS) / ||pooler(h_CLS)||_2 (the model card's recipe for plain
transformers). The pooler is trained for the last layer only, so ``--layers`` stores each chosen
layer's [CLS] state, L2-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmpipe.pipeline.encoders.base import ENCODERS, EncoderOutput
from mmpipe.pipeline.encoders.hub_text import TextEncoder
from mmpipe.store.ranges import Checked


@dataclass(frozen=True)
class LabseOptions(Checked):
    revision: str = "main"


@ENCODERS.register("labse")
class Labse(TextEncoder):
    name = "labse"
    description = "sentence-transformers/LaBSE, multilingual text, pooler output + L2 norm, 768-d"
    Options = LabseOptions
    model_id = "sentence-transformers/LaBSE"
    hidden_size = 768
    num_hidden_layers = 12
    lowercase = False
    pooling_name = "pooler output, L2-normalised"

    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        with torch.inference_mode():
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             output_hidden_states=bool(layers))
            pooled = F.normalize(out.pooler_output.float(), dim=-1)  # (B, D)
            hidden = {k: F.normalize(out.hidden_states[k][:, 0].float(), dim=-1) for k in layers}
        return EncoderOutput(pooled, hidden)
