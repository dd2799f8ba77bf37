"""Shared machinery of the Hugging Face encoders (dino, bert, labse, wav2vec2, wavlm).

Real weights and test weights take one path: the hub id is resolved to a local snapshot
directory (`mmpipe.pipeline.encoders.weights.hub_snapshot`), a ``--weights`` directory is used as
is, and either directory is read by ``<ModelClass>.from_pretrained(directory)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from mmpipe.pipeline.encoders.base import Encoder
from mmpipe.pipeline.encoders.weights import hub_identity, hub_snapshot, local_identity
from mmpipe.store.errors import UserError


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_t m_t h_t / Σ_t m_t over valid positions: (B, T, D), (B, T) -> (B, D), in float32."""
    weights = mask.to(torch.float32).unsqueeze(-1)  # (B, T, 1)
    return (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class HubEncoder(Encoder):
    model_id: ClassVar[str]
    model_class: ClassVar[str]  # a transformers class name, e.g. "ViTModel"
    model_type: ClassVar[str]  # config.json "model_type" the checkpoint must have
    hidden_size: ClassVar[int]  # of the real checkpoint; a --weights directory's config.json overrides
    num_hidden_layers: ClassVar[int]
    model_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.model: Any = None

    # -- declared without loading ---------------------------------------------------------------
    def architecture(self, weights: Path | None) -> tuple[int, int]:
        """(hidden size, number of layers): the real checkpoint's, or those in ``weights/config.json``."""
        if weights is None:
            return self.hidden_size, self.num_hidden_layers
        config = self._read_config(Path(weights))
        return int(config["hidden_size"]), int(config["num_hidden_layers"])

    def _read_config(self, directory: Path) -> dict[str, Any]:
        path = directory / "config.json"
        if not path.is_file():
            raise UserError(f"--weights {directory} must be a directory holding config.json and the "
                            f"{self.model_class} weights (as written by save_pretrained)")
        config = json.loads(path.read_text())
        if config.get("model_type") != self.model_type:
            raise UserError(f"--weights {directory} holds a {config.get('model_type')!r} checkpoint; "
                            f"encoder {self.name} needs {self.model_type!r}")
        return config

    def weights_identity(self, weights: Path | None) -> dict[str, Any]:
        if weights is not None:
            return local_identity(Path(weights))
        return hub_identity(self.model_id, self.options.revision)

    # -- loading --------------------------------------------------------------------------------
    def model_dir(self, weights: Path | None) -> Path:
        directory = Path(weights) if weights is not None else hub_snapshot(self.model_id, self.options.revision)
        self._read_config(directory)
        return directory

    def load(self, device: torch.device | str, weights: Path | None = None) -> None:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        directory = self.model_dir(weights)
        model_class = getattr(transformers, self.model_class)
        self.device = torch.device(device)
        self.model = model_class.from_pretrained(directory, **self.model_kwargs).to(self.device).eval()
        self.load_processor(directory)

    def load_processor(self, directory: Path) -> None:
        """Load what the preparer needs besides the spec (the tokenizer for text encoders)."""

    @classmethod
    def save_random(cls, config: Any, path: Path, seed: int) -> Path:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        torch.manual_seed(seed)
        model = getattr(transformers, cls.model_class)(config, **cls.model_kwargs)
        model.save_pretrained(path)
        return Path(path)
