"""bert: bert-base-uncased (Devlin et al., 2019), 768-d, CLS or mean pooling.

``pooling="cls"`` (default) takes the final hidden state of [CLS], not the NSP pooler (a
dense + tanh trained for next-sentence prediction); ``pooling="mean"`` averages the final hidden
states over real tokens (attention mask), [CLS] and [SEP] included. ``--layers`` pools each chosen
hidden layer the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mmpipe.pipeline.encoders.base import ENCODERS, EncoderOutput
from mmpipe.pipeline.encoders.hub import masked_mean
from mmpipe.pipeline.encoders.hub_text import TextEncoder
from mmpipe.store.ranges import Checked


@dataclass(frozen=True)
class BertOptions(Checked):
    revision: str = "main"
    pooling: Literal["cls", "mean"] = "cls"


@ENCODERS.register("bert")
class Bert(TextEncoder):
    name = "bert"
    description = "bert-base-uncased, English text, CLS or mean pooling (--set pooling=mean), 768-d"
    Options = BertOptions
    model_id = "bert-base-uncased"
    hidden_size = 768
    num_hidden_layers = 12
    lowercase = True
    model_kwargs = {"add_pooling_layer": False}

    @property
    def pooling_name(self) -> str:  # type: ignore[override]
        return "CLS of final hidden state" if self.options.pooling == "cls" else "mean over tokens"

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0].float() if self.options.pooling == "cls" else masked_mean(hidden, mask)

    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        with torch.inference_mode():
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             output_hidden_states=bool(layers))
            pooled = self._pool(out.last_hidden_state, batch["attention_mask"])  # (B, D)
            hidden = {k: self._pool(out.hidden_states[k], batch["attention_mask"]) for k in layers}
        return EncoderOutput(pooled, hidden, out.last_hidden_state, batch["attention_mask"].sum(dim=1))
