"""Media decoding: files to raw arrays, in DataLoader workers.

Audio goes through soundfile and `torchaudio.functional.resample` (``torchaudio.load`` would need
torchcodec and a system FFmpeg); video through PyAV, which bundles FFmpeg (FLV and MP4 alike);
images through PIL. Every decoder raises on an unreadable, empty or missing file, so the caller
can record the failure instead of silently producing zeros.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile
import torch
import torchaudio.functional
from PIL import Image


class DecodeError(RuntimeError):
    """A media file that exists but yields no usable content."""


def audio_length(path: Path) -> int:
    """Frames in the file according to its header (no decoding); 0 when it cannot be read.

    Used only to bucket clips of similar length into one batch, so a bad header costs nothing
    here: the decoder reports the failure later.
    """
    try:
        info = soundfile.info(str(path))
    except (OSError, RuntimeError, soundfile.LibsndfileError):
        return 0
    return int(info.frames * 16_000 / max(1, info.samplerate))


def decode_audio(path: Path, sample_rate: int, max_seconds: float | None = None) -> torch.Tensor:
    """Mono float32 waveform at ``sample_rate``: (T,). Channels are averaged."""
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    if data.shape[0] == 0:
        raise DecodeError(f"{path}: no audio samples")
    if max_seconds is not None:
        data = data[: int(round(max_seconds * rate))]
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if rate != sample_rate:
        wave = torchaudio.functional.resample(wave, orig_freq=rate, new_freq=sample_rate)
    return wave


def frame_indices(n_frames: int, wanted: int) -> np.ndarray:
    """``wanted`` indices spread uniformly over ``n_frames``: round(linspace(0, n - 1, wanted))."""
    return np.rint(np.linspace(0, n_frames - 1, wanted)).astype(np.int64)


def decode_video(path: Path, frames: int) -> torch.Tensor:
    """``frames`` RGB frames sampled uniformly over the whole clip: uint8 (T, H, W, 3).

    The frame count in a container header is unreliable (FLV often has none), so every frame is
    decoded and only the chosen ones are converted to RGB arrays.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DecodeError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = list(container.decode(stream))
    if not decoded:
        raise DecodeError(f"{path}: no decodable video frames")
    chosen = frame_indices(len(decoded), frames)
    arrays = {int(i): decoded[int(i)].to_ndarray(format="rgb24") for i in np.unique(chosen)}
    return torch.from_numpy(np.stack([arrays[int(i)] for i in chosen]))


def decode_image(path: Path) -> Image.Image:
    """An RGB PIL image, fully loaded (so a truncated file fails here, not later)."""
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")
