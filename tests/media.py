"""Writers of small synthetic media files for tests: WAV and other audio containers (soundfile),
FLV/MP4 with or without an audio track (PyAV), images (PIL); and `damage`, which writes a truncated
or overwritten copy of one.

Shared by the dataset, decoding and extraction tests so every fixture is laid out like real data.
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


def write_audio(path: Path, seconds: float, container: str, sample_rate: int = 16_000, seed: int = 0) -> Path:
    """Stereo noise in one of libsndfile's containers (FLAC, OGG, MP3, AIFF, ...)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (0.2 * rng.standard_normal((max(1, round(seconds * sample_rate)), 2))).astype(np.float32)
    soundfile.write(path, samples, sample_rate, format=container)
    return path


def write_video(path: Path, frames: int = 20, size: tuple[int, int] = (64, 48), fps: int | Fraction = 30,
                seed: int = 0, audio_seconds: float | None = None) -> Path:
    """A short colour video; FLV (flv1 codec, like CREMA-D's VideoFlash) or MP4 (mpeg4) by suffix.

    ``audio_seconds`` adds a mono tone track of that length (MP3 in FLV, as CREMA-D has; AAC in
    MP4), its packets interleaved with the video's by time.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    flv = path.suffix == ".flv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("flv" if flv else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = 1 / Fraction(fps)
        packets = []
        if audio_seconds is not None:
            packets += _audio_packets(container.add_stream("mp3" if flv else "aac", rate=22_050), audio_seconds)
        base = rng.integers(0, 255, size=3)
        for index in range(frames):
            image = np.empty((height, width, 3), dtype=np.uint8)
            image[...] = (base + 8 * index) % 255
            image[:, (index * 3) % width] = 255  # a moving bar: frames differ
            packets += stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))
        packets += stream.encode()
        for packet in sorted(packets, key=lambda p: float(p.dts * p.time_base)):  # stable: each stream keeps its order
            container.mux(packet)
    return path


def _audio_packets(stream: av.AudioStream, seconds: float) -> list[av.Packet]:
    stream.layout = "mono"
    tone = (0.2 * np.sin(np.arange(round(seconds * stream.rate)) / 7)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
    frame.sample_rate, frame.pts = stream.rate, 0
    return [*stream.encode(frame), *stream.encode()]


def write_image(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def damage(path: Path, kind: str, out: Path) -> Path:
    """A damaged copy of ``path`` at ``out``: ``truncate50``/``truncate90``/``truncate99`` keep that
    share of the bytes; ``garbage`` overwrites 64 bytes in the middle with random ones; ``empty``
    is a zero-length file."""
    data = path.read_bytes()
    if kind.startswith("truncate"):
        data = data[: len(data) * int(kind.removeprefix("truncate")) // 100]
    elif kind == "garbage":
        middle = len(data) // 2
        noise = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
        data = data[:middle] + noise + data[middle + 64:]
    elif kind == "empty":
        data = b""
    else:
        raise ValueError(f"unknown damage {kind!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out
