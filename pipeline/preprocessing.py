"""What an encoder's preprocessing is, declared: part of its spec (hence of the feature key) and
all a preparer (`mmpipe.pipeline.inputs`) needs to turn one media file or text into model input.

A module of its own so that preparers, which decoding workers and Ray tasks unpickle, import it
without importing (and registering) every encoder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioPreprocessing:
    """Mono waveform at ``sample_rate``; ``normalize`` = per-clip zero mean / unit variance over the
    clip's true length (Wav2Vec2FeatureExtractor ``do_normalize``), applied before zero padding."""

    sample_rate: int
    normalize: bool
    attention_mask: bool  # the checkpoint preprocessor's return_attention_mask (group-norm ones: false)
    max_seconds: float | None = None  # longer clips are cut from the start; None keeps all


@dataclass(frozen=True)
class VideoPreprocessing:
    """``frames`` indices spread uniformly over the clip (round(linspace(0, n-1, frames)), so short
    clips repeat frames), each resized (``resize``: one int = shorter side, two = (H, W); no
    antialias, as torchvision's video presets), centre-cropped, scaled to [0, 1], normalised."""

    frames: int
    resize: tuple[int, ...]
    crop: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class ImagePreprocessing:
    """RGB image resized to ``resize`` = (H, W) with PIL ``interpolation``, scaled to [0, 1], normalised."""

    resize: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class TextPreprocessing:
    """The checkpoint's own tokenizer; sequences truncated to ``max_tokens`` (special tokens included)."""

    max_tokens: int
    lowercase: bool


Preprocessing = AudioPreprocessing | VideoPreprocessing | ImagePreprocessing | TextPreprocessing
