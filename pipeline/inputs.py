"""Preparers: one media path or text (or an `EmbeddedMedia` cell) -> model-ready tensors, and a batch
collate with padding.

A preparer is what a DataLoader worker holds: small and picklable (no model), built by an
encoder from its spec. ``length`` is a cheap size (file header, token count) used to bucket
similar items into one batch and to bound sequence lengths; ``__call__`` decodes and preprocesses one item; ``collate`` stacks or pads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmpipe.pipeline.decode import DecodeError, audio_length, decode_audio, decode_image, decode_video
from mmpipe.pipeline.embedded import EmbeddedMedia
from mmpipe.pipeline.preprocessing import (
    AudioPreprocessing,
    ImagePreprocessing,
    TextPreprocessing,
    VideoPreprocessing,
)

_PIL_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class AudioInput:
    pre: AudioPreprocessing

    def length(self, source: Any) -> int:
        return source.audio_length() if isinstance(source, EmbeddedMedia) else audio_length(Path(source))

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        if isinstance(source, EmbeddedMedia):
            wave = source.audio(self.pre.sample_rate, self.pre.max_seconds)  # (T,)
        else:
            wave = decode_audio(Path(source), self.pre.sample_rate, self.pre.max_seconds)  # (T,)
        if self.pre.normalize:  # Wav2Vec2FeatureExtractor: (x - mean) / sqrt(var + 1e-7), true length only
            wave = (wave - wave.mean()) / torch.sqrt(wave.var(correction=0) + 1e-7)
        return {"input_values": wave}

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([len(item["input_values"]) for item in items], dtype=torch.long)  # (B,)
        values = torch.zeros(len(items), int(lengths.max()))  # (B, T): zero padding
        for row, item in enumerate(items):
            values[row, : lengths[row]] = item["input_values"]
        mask = (torch.arange(values.shape[1])[None, :] < lengths[:, None]).long()  # (B, T)
        return {"input_values": values, "attention_mask": mask, "lengths": lengths}


@dataclass(frozen=True)
class VideoInput:
    """Applies torchvision's ``VideoClassification`` preset, the transform the weights ship with."""

    pre: VideoPreprocessing

    def length(self, source: Any) -> int:
        return 0  # every clip becomes the same (C, T, H, W): nothing to bucket

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        # imported here: torchvision.transforms pulls in torchvision.models, slow for non-video runs
        from torchvision.transforms._presets import VideoClassification
        from torchvision.transforms.functional import InterpolationMode

        frames = decode_video(Path(source), self.pre.frames)  # (T, H, W, 3) uint8
        transform = VideoClassification(crop_size=self.pre.crop, resize_size=self.pre.resize, mean=self.pre.mean,
                                        std=self.pre.std, interpolation=InterpolationMode(self.pre.interpolation))
        return {"video": transform(frames.permute(0, 3, 1, 2).contiguous())}  # (3, T, crop_h, crop_w)

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {"video": torch.stack([item["video"] for item in items])}  # (B, 3, T, H, W)


@dataclass(frozen=True)
class ImageInput:
    pre: ImagePreprocessing

    def length(self, source: Any) -> int:
        return 0

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        image = source.image() if isinstance(source, EmbeddedMedia) else decode_image(Path(source))
        height, width = self.pre.resize
        image = image.resize((width, height), resample=_PIL_RESAMPLE[self.pre.interpolation])
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, H, W)
        mean = torch.tensor(self.pre.mean)[:, None, None]
        std = torch.tensor(self.pre.std)[:, None, None]
        return {"pixel_values": (pixels - mean) / std}

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack([item["pixel_values"] for item in items])}  # (B, 3, H, W)


@dataclass(frozen=True)
class TextInput:
    """Tokenises with the checkpoint's own tokenizer (loaded with the model)."""

    pre: TextPreprocessing
    tokenizer: Any
    pad_id: int

    def length(self, source: Any) -> int:
        """Tokens, special ones included, after truncation (0 for what is not a text)."""
        return len(self._ids(source)) if isinstance(source, str) and source.strip() else 0

    def _ids(self, source: str) -> list[int]:
        return self.tokenizer(source, truncation=True, max_length=self.pre.max_tokens)["input_ids"]

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        if not isinstance(source, str) or not source.strip():
            raise DecodeError(f"no text (got {source!r})")
        return {"input_ids": torch.tensor(self._ids(source), dtype=torch.long)}  # (L,)

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([len(item["input_ids"]) for item in items], dtype=torch.long)
        ids = torch.full((len(items), int(lengths.max())), self.pad_id, dtype=torch.long)  # (B, L)
        for row, item in enumerate(items):
            ids[row, : lengths[row]] = item["input_ids"]
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()  # (B, L)
        return {"input_ids": ids, "attention_mask": mask}
