"""labse: sentence-transformers/LaBSE (Feng et al., 2022), multilingual, 768-d.

The checkpoint is a sentence-transformers model, and LaBSE's own pooling and normalisation is the
module chain its ``modules.json`` declares, which mmpipe computes exactly:

0. Transformer: the ``BertModel`` in the repository root, inputs truncated to
   ``sentence_bert_config.json``'s ``max_seq_length`` = 256 tokens (special tokens included);
1. Pooling (``1_Pooling/config.json``: ``pooling_mode_cls_token``): h = final hidden state of [CLS];
2. Dense (``2_Dense/``: 768 → 768 with bias, ``torch.nn.modules.activation.Tanh``, its own weights
   in ``2_Dense/model.safetensors``): d = tanh(W h + b);
3. Normalize: e = d / ||d||_2.

A ``BertModel`` pooler (also a dense + tanh over [CLS]), whatever weights the root checkpoint may
hold for it, is no module of that chain and is not built: 2_Dense is LaBSE's projection. mmpipe releases
before this one stored ``pooler_output`` normalised, truncated at 512 tokens; both the pooling name
and the token limit are in the spec, so those entries have another fingerprint.

The Dense layer is trained for the last layer only, so ``--layers`` stores each chosen hidden
layer's [CLS] state, L2-normalised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mmpipe.pipeline.encoders.base import ENCODERS, EncoderOutput
from mmpipe.pipeline.encoders.hub_text import TextEncoder
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import Checked

# modules.json of sentence-transformers/LaBSE: (folder, module class) in order
MODULES = (("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Dense", "Dense"), ("3_Normalize", "Normalize"))
TANH = "torch.nn.modules.activation.Tanh"
_POOLING_FLAGS = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                  "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


@dataclass(frozen=True)
class LabseOptions(Checked):
    revision: str = "main"


def _read_json(path: Path, directory: Path) -> Any:
    if not path.is_file():
        raise UserError(f"--weights {directory} lacks {path.relative_to(directory)}: labse reads the "
                        f"sentence-transformers layout of sentence-transformers/LaBSE (modules.json, "
                        f"sentence_bert_config.json, 1_Pooling/, 2_Dense/)")
    return json.loads(path.read_text())


def _is_cls_pooling(config: dict[str, Any]) -> bool:
    """Pooling configs name their mode as flags (the LaBSE repository's) or as ``pooling_mode``."""
    if "pooling_mode" in config:
        return config["pooling_mode"] in ("cls", ["cls"])
    return bool(config.get("pooling_mode_cls_token")) and not any(config.get(f) for f in _POOLING_FLAGS[1:])


@ENCODERS.register("labse")
class Labse(TextEncoder):
    name = "labse"
    description = "sentence-transformers/LaBSE, multilingual text, CLS -> Dense+tanh -> L2 norm, 768-d"
    Options = LabseOptions
    model_id = "sentence-transformers/LaBSE"
    hidden_size = 768
    num_hidden_layers = 12
    max_tokens = 256  # sentence_bert_config.json max_seq_length
    lowercase = False
    pooling_name = "sentence-transformers: CLS, 2_Dense (tanh), L2-normalised"
    model_kwargs = {"add_pooling_layer": False}  # BertModel's own pooler is not LaBSE's projection

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.dense: torch.nn.Linear | None = None

    def load_processor(self, directory: Path) -> None:
        """The tokenizer, then the modules after the Transformer, read from the same directory."""
        super().load_processor(directory)
        self.check_modules(directory)
        self.dense = self.read_dense(directory).to(self.device).eval()

    def check_modules(self, directory: Path) -> None:
        """Refuse a directory whose sentence-transformers modules would compute anything else."""
        modules = _read_json(directory / "modules.json", directory)
        found = tuple((m.get("path", ""), str(m.get("type", "")).rsplit(".", 1)[-1]) for m in modules)
        if found != MODULES:
            raise UserError(f"--weights {directory}: modules.json lists {found}; labse needs {MODULES}")
        config = _read_json(directory / "sentence_bert_config.json", directory)
        if config.get("max_seq_length") != self.max_tokens or config.get("do_lower_case", False) != self.lowercase:
            raise UserError(f"--weights {directory}: sentence_bert_config.json says {config}; labse is declared "
                            f"with max_seq_length {self.max_tokens}, do_lower_case {self.lowercase}")
        if not _is_cls_pooling(_read_json(directory / "1_Pooling" / "config.json", directory)):
            raise UserError(f"--weights {directory}: 1_Pooling/config.json is not CLS-token pooling")

    def read_dense(self, directory: Path) -> torch.nn.Linear:
        """2_Dense as a ``Linear`` (config.json: square, with bias, tanh; weights: ``linear.weight``
        and ``linear.bias`` in model.safetensors, or pytorch_model.bin in older saves)."""
        hidden = int(self.model.config.hidden_size)
        config = _read_json(directory / "2_Dense" / "config.json", directory)
        wanted = {"in_features": hidden, "out_features": hidden, "bias": True, "activation_function": TANH}
        if any(config.get(key) != value for key, value in wanted.items()):
            raise UserError(f"--weights {directory}: 2_Dense/config.json is {config}; labse needs {wanted}")
        folder = directory / "2_Dense"
        if (folder / "model.safetensors").is_file():
            from safetensors.torch import load_file

            state = load_file(str(folder / "model.safetensors"))
        elif (folder / "pytorch_model.bin").is_file():
            state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        else:
            raise UserError(f"--weights {directory}: 2_Dense holds neither model.safetensors nor pytorch_model.bin")
        dense = torch.nn.Linear(hidden, hidden)
        try:
            dense.load_state_dict({"weight": state["linear.weight"], "bias": state["linear.bias"]})
        except (KeyError, RuntimeError) as error:
            raise UserError(f"--weights {directory}: 2_Dense weights are not a {hidden}x{hidden} linear layer "
                            f"({type(error).__name__}: {str(error).splitlines()[0]})") from None
        return dense

    def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> EncoderOutput:
        with torch.inference_mode():
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             output_hidden_states=bool(layers))
            cls = out.last_hidden_state[:, 0]  # (B, D): 1_Pooling
            projected = torch.tanh(self.dense(cls))  # (B, D): 2_Dense, in the model's dtype (autocast on GPU)
            pooled = F.normalize(projected.float(), dim=-1)  # (B, D): 3_Normalize
            hidden = {k: F.normalize(out.hidden_states[k][:, 0].float(), dim=-1) for k in layers}
        # the token sequence, as bert's: (B, T, D) with each row's valid tokens
        return EncoderOutput(pooled, hidden, out.last_hidden_state, batch["attention_mask"].sum(dim=1))

    @classmethod
    def save_random(cls, config: Any, path: Path, seed: int) -> Path:
        """A BertModel saved whole, pooler included (random, unlike 2_Dense), so a test that passes
        cannot be reading the pooler."""
        from transformers import BertModel

        torch.manual_seed(seed)
        BertModel(config).save_pretrained(path)
        return Path(path)

    @classmethod
    def write_random_weights(cls, path: Path, *, tiny: bool = True, seed: int = 0) -> Path:
        """The sentence-transformers layout of sentence-transformers/LaBSE, randomly initialised:
        the root BertModel and tokenizer, modules.json, sentence_bert_config.json,
        1_Pooling/config.json, 2_Dense/{config.json, model.safetensors} and 3_Normalize/."""
        from safetensors.torch import save_file

        path = super().write_random_weights(path, tiny=tiny, seed=seed)
        hidden = json.loads((path / "config.json").read_text())["hidden_size"]
        modules = [{"idx": i, "name": str(i), "path": folder, "type": f"sentence_transformers.models.{kind}"}
                   for i, (folder, kind) in enumerate(MODULES)]
        (path / "modules.json").write_text(json.dumps(modules, indent=2))
        (path / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": cls.max_tokens, "do_lower_case": cls.lowercase}))
        (path / "1_Pooling").mkdir(exist_ok=True)
        flags = {flag: flag == "pooling_mode_cls_token" for flag in _POOLING_FLAGS[:4]}
        (path / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": hidden, **flags}))
        (path / "2_Dense").mkdir(exist_ok=True)
        (path / "2_Dense" / "config.json").write_text(json.dumps(
            {"in_features": hidden, "out_features": hidden, "bias": True, "activation_function": TANH}))
        generator = torch.Generator().manual_seed(seed + 1)
        scale = hidden ** -0.5  # keeps tanh off saturation, so the test sees the projection
        save_file({"linear.weight": torch.randn(hidden, hidden, generator=generator) * scale,
                   "linear.bias": torch.randn(hidden, generator=generator) * 0.1},
                  str(path / "2_Dense" / "model.safetensors"))
        (path / "3_Normalize").mkdir(exist_ok=True)  # Normalize has no files; the hub repository has no folder
        return path
