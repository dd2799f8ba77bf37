"""Randomly initialised checkpoints of every registered encoder, written once per test session.

Each is written by the encoder's own ``write_random_weights`` in the format ``load(weights=...)``
reads (transformers ``save_pretrained`` directories; torchvision state-dict files), so tests load
them through exactly the path real weights take.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmpipe.pipeline.encoders import ENCODERS
from tests.media import write_image, write_video, write_wav


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("weights")

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = ENCODERS.get(name).write_random_weights(root / name, tiny=True, seed=0)
        return cache[name]

    return get


TEXTS = ["a man on the red ball", "un chien sur le ball", "the woman", "a dog in the ball on the man"]


def sample_sources(kind: str, folder: Path, n: int) -> list:
    """``n`` media files (or texts) of one kind, of different lengths where the kind has one."""
    if kind == "text":
        return [TEXTS[i % len(TEXTS)] for i in range(n)]
    paths = []
    for i in range(n):
        if kind == "audio":
            paths.append(write_wav(folder / f"clip{i}.wav", 0.4 + 0.25 * i, seed=i))
        elif kind == "video":
            paths.append(write_video(folder / f"clip{i}.{'flv' if i % 2 == 0 else 'mp4'}", frames=10 + 3 * i, seed=i))
        else:
            paths.append(write_image(folder / f"image{i}.png", size=(40 + 8 * i, 30 + 4 * i), seed=i))
    return paths


def random_rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, size=n)
