"""Decoders: soundfile + resample for audio, PyAV for FLV/MP4, PIL for images; failures raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmpipe.pipeline.decode import decode_audio, decode_image, decode_video, frame_indices
from mmpipe.pipeline.encoders.base import AudioPreprocessing
from mmpipe.pipeline.inputs import AudioInput
from tests.media import write_image, write_video, write_wav


def test_frame_indices_cover_the_clip_uniformly():
    assert frame_indices(31, 16).tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]
    assert frame_indices(5, 16)[0] == 0 and frame_indices(5, 16)[-1] == 4 and len(frame_indices(5, 16)) == 16


@pytest.mark.parametrize("suffix", ["flv", "mp4"])
def test_video_decodes_sampled_rgb_frames(tmp_path, suffix):
    path = write_video(tmp_path / f"clip.{suffix}", frames=20, size=(64, 48), seed=3)
    frames = decode_video(path, 16)
    assert frames.shape == (16, 48, 64, 3) and frames.dtype == torch.uint8
    assert not torch.equal(frames[0], frames[-1])  # the moving bar: distinct frames were picked


def test_audio_is_resampled_to_the_encoder_rate(tmp_path):
    path = write_wav(tmp_path / "a.wav", 0.5, sample_rate=8_000)
    wave = decode_audio(path, 16_000)
    assert wave.shape == (8_000,) and wave.dtype == torch.float32 and wave.abs().max() > 0.1


def test_audio_normalisation_uses_the_true_length_and_collate_pads_with_zeros(tmp_path):
    prep = AudioInput(AudioPreprocessing(16_000, normalize=True, attention_mask=False))
    items = [prep(write_wav(tmp_path / f"{i}.wav", s, seed=i)) for i, s in enumerate((0.25, 0.5))]
    assert abs(float(items[0]["input_values"].mean())) < 1e-4 and abs(float(items[0]["input_values"].std()) - 1) < 1e-2
    batch = prep.collate(items)
    assert batch["input_values"].shape == (2, 8_000) and batch["lengths"].tolist() == [4_000, 8_000]
    assert torch.all(batch["input_values"][0, 4_000:] == 0) and batch["attention_mask"][0].sum() == 4_000


def test_image_decodes_to_rgb(tmp_path):
    image = decode_image(write_image(tmp_path / "i.png", size=(30, 20)))
    assert image.mode == "RGB" and image.size == (30, 20)


@pytest.mark.parametrize("decoder", [lambda p: decode_audio(p, 16_000), lambda p: decode_video(p, 16), decode_image])
def test_corrupt_and_missing_files_raise(tmp_path, decoder):
    corrupt = tmp_path / "bad.bin"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    for path in (corrupt, tmp_path / "missing.wav"):
        with pytest.raises(Exception):  # noqa: B017 - each library has its own error type; any is a failure
            decoder(path)
