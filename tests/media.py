"""Writers of small synthetic media files for tests: WAV (soundfile), FLV/MP4 (PyAV), images (PIL).

Shared by the dataset and extraction tests so every fixture is laid out like real data.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile
from PIL import Image


def write_wav(path: Path, seconds: float, sample_rate: int = 16_000, seed: int = 0) -> Path:
    """16-bit mono PCM: a tone plus noise, so every clip has distinct, non-silent content."""
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    signal = 0.3 * np.sin(2 * np.pi * (200 + 40 * (seed % 10)) * t) + 0.05 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal.astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def write_video(path: Path, frames: int = 20, size: tuple[int, int] = (64, 48), fps: int = 30, seed: int = 0) -> Path:
    """A short colour video; FLV (flv1 codec, like CREMA-D's VideoFlash) or MP4 (h264/mpeg4) by suffix."""
    rng = np.random.default_rng(seed)
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "flv" if path.suffix == ".flv" else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        base = rng.integers(0, 255, size=3)
        for index in range(frames):
            image = np.empty((height, width, 3), dtype=np.uint8)
            image[...] = (base + 8 * index) % 255
            image[:, (index * 3) % width] = 255  # a moving bar: frames differ
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path
