"""Truncated, overwritten and empty media are `DecodeError`s naming the file, never partial arrays;
intact files of every length and rate decode exactly as before (no false positives).

Not covered, because nothing in the file can tell: bytes overwritten inside uncompressed PCM audio
(WAV, AIFF), MP3 frames (no CRC) or a JPEG's entropy-coded data decode as wrong samples and
pixels; a CBR MP3 without a Xing/Info header states no length to compare with, so a cut that
leaves whole frames goes unseen.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
import torchaudio.functional
from PIL import ImageFile
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.pipeline.decode import DecodeError, decode_audio, decode_image, decode_video, frame_indices
from mmpipe.store.root import Store
from tests.media import damage, write_audio, write_image, write_video, write_wav
from tests.tiny_models import tiny_weights  # noqa: F401

DAMAGES = ("truncate50", "truncate90", "truncate99", "empty", "garbage")
# nothing in the file can tell (see the module docstring)
UNDETECTABLE = {("wav", "garbage"), ("aiff", "garbage"), ("mp3", "garbage"), ("jpg", "garbage")}
HARMLESS = {("mp4+audio", "garbage")}  # the bytes overwritten are audio, which a video decode does not read


def _write(kind, path):
    if kind == "wav":
        return write_wav(path, 2.0, seed=1)
    if kind in ("flac", "ogg", "mp3", "aiff"):
        return write_audio(path, 2.0, kind.upper(), seed=1)
    if kind in ("flv", "mp4"):
        return write_video(path, frames=40, seed=1)
    if kind in ("flv+audio", "mp4+audio"):
        return write_video(path, frames=40, seed=1, audio_seconds=40 / 30)
    return write_image(path, size=(64, 48), seed=1)


def _decoder(kind):
    if kind in ("wav", "flac", "ogg", "mp3", "aiff"):
        return lambda path: decode_audio(path, 16_000)
    if kind.startswith(("flv", "mp4")):
        return lambda path: decode_video(path, 16)
    return decode_image


KINDS = ("wav", "flac", "ogg", "mp3", "aiff", "flv", "mp4", "flv+audio", "mp4+audio", "png", "jpg")


@pytest.mark.parametrize("damage_kind", DAMAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_media_raise_one_line_naming_the_file(tmp_path, kind, damage_kind):
    if (kind, damage_kind) in UNDETECTABLE:
        pytest.skip("the format states nothing to check this against")
    suffix = kind.split("+")[0]
    intact = _write(kind, tmp_path / f"intact.{suffix}")
    broken = damage(intact, damage_kind, tmp_path / f"broken.{suffix}")
    if (kind, damage_kind) in HARMLESS:
        assert torch.equal(_decoder(kind)(broken), _decoder(kind)(intact))
        return
    with pytest.raises(DecodeError) as caught:
        _decoder(kind)(broken)
    message = str(caught.value)
    assert message.startswith(f"{broken}: ") and "\n" not in message


@pytest.mark.parametrize("fraction, expected", [(50, "header promises 64000 bytes of audio data, the file holds"),
                                                (99, "header promises 64000 bytes of audio data, the file holds")])
def test_a_truncated_wav_says_what_its_header_promised(tmp_path, fraction, expected):
    broken = damage(write_wav(tmp_path / "a.wav", 2.0), f"truncate{fraction}", tmp_path / "b.wav")
    with pytest.raises(DecodeError, match=expected + r" \d+ \(file truncated\?\)"):
        decode_audio(broken, 16_000)


def test_a_truncated_mp4_with_its_index_first_says_how_many_frames_were_promised(tmp_path):
    path = tmp_path / "fast.mp4"
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(50):
            image = np.full((48, 64, 3), 5 * index % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    decode_video(path, 16)
    with pytest.raises(DecodeError, match=r"header promises 50 frames, decoded \d+ \(file truncated\?\)"):
        decode_video(damage(path, "truncate50", tmp_path / "cut.mp4"), 16)


def test_consecutive_files_with_the_same_decoder_error_all_fail(tmp_path):
    """PyAV drops a log message equal to the previous one; each file must still see its own."""
    intact = write_video(tmp_path / "v.flv", frames=40, seed=2)
    for copy in range(3):
        with pytest.raises(DecodeError):
            decode_video(damage(intact, "truncate99", tmp_path / f"cut{copy}.flv"), 16)


def test_truncated_images_fail_even_after_every_encoder_is_imported():
    import mmpipe.pipeline.encoders  # noqa: F401 - any library that flips the flag is imported by now

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# -- no false positives: intact files decode to exactly what the plain library calls give ---------
def _reference_audio(path, rate, max_seconds=None):
    data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if max_seconds is not None:
        data = data[: int(round(max_seconds * file_rate))]
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    return wave if file_rate == rate else torchaudio.functional.resample(wave, orig_freq=file_rate, new_freq=rate)


@pytest.mark.parametrize("seconds", [1 / 16_000, 0.05, 0.3333, 1.0, 2.7])
@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100])
def test_intact_wav_of_any_length_and_rate_decodes_unchanged(tmp_path, seconds, rate):
    path = write_wav(tmp_path / "a.wav", seconds, sample_rate=rate, seed=3)
    for max_seconds in (None, 0.2):
        assert torch.equal(decode_audio(path, 16_000, max_seconds), _reference_audio(path, 16_000, max_seconds))


@pytest.mark.parametrize("container", ["FLAC", "OGG", "MP3", "AIFF"])
def test_intact_audio_containers_decode_unchanged(tmp_path, container):
    path = write_audio(tmp_path / f"a.{container.lower()}", 0.777, container, sample_rate=22_050, seed=4)
    assert torch.equal(decode_audio(path, 16_000), _reference_audio(path, 16_000))


def test_wavs_of_unknown_length_and_mp3s_without_a_frame_count_are_not_failures(tmp_path):
    """A WAV written to a pipe has 0xFFFFFFFF as its data size; an MP3 without a Xing header has
    only an estimated length (longer than what decodes)."""
    path = write_wav(tmp_path / "a.wav", 0.5)
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "piped.wav").write_bytes(bytes(data))
    assert torch.equal(decode_audio(tmp_path / "piped.wav", 16_000), decode_audio(path, 16_000))
    mp3 = tmp_path / "plain.mp3"
    with av.open(str(mp3), mode="w", options={"write_xing": "0"}) as container:
        container.mux(_mp3_packets(container))
    with soundfile.SoundFile(str(mp3)) as sound:
        assert sound.frames > sound.read().shape[0]  # the estimate overshoots
    assert torch.equal(decode_audio(mp3, 16_000), _reference_audio(mp3, 16_000))


def _mp3_packets(container):
    stream = container.add_stream("mp3", rate=16_000)
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray((0.3 * np.sin(np.arange(16_000) / 10)).astype(np.float32)[None],
                                       format="fltp", layout="mono")
    frame.sample_rate, frame.pts = 16_000, 0
    return [*stream.encode(frame), *stream.encode()]


def _reference_video(path, wanted):
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return torch.from_numpy(np.stack([frames[i] for i in frame_indices(len(frames), wanted)]))


@pytest.mark.parametrize("suffix", ["flv", "mp4"])
@pytest.mark.parametrize("frames, fps, audio", [(1, 30, None), (7, 25, None), (40, Fraction(30000, 1001), None),
                                                (33, 12, None), (40, 30, 40 / 30), (40, 30, 2.0), (10, 25, 0.2),
                                                (33, 12, 0.05)])
def test_intact_video_of_any_length_rate_and_audio_decodes_unchanged(tmp_path, suffix, frames, fps, audio):
    path = write_video(tmp_path / f"v.{suffix}", frames=frames, fps=fps, seed=frames, audio_seconds=audio)
    assert torch.equal(decode_video(path, 16), _reference_video(path, 16))


# -- through `mmpipe extract`: a damaged file is a failure record and a masked row -----------------
def _folder(root, kind, damaged):
    """Six rows of one kind (three groups: one per split); ``damaged``: row -> damage kind."""
    rows = []
    for i in range(6):
        suffix = "wav" if kind == "audio" else "flv"
        path = root / "media" / f"s{i}.{suffix}"
        if kind == "audio":
            write_wav(path, 0.4 + 0.1 * i, seed=i)
        else:
            write_video(path, frames=8 + i, seed=i)
        if i in damaged:
            damage(path, damaged[i], path)
        rows.append({"sample_id": f"s{i}", kind: f"media/s{i}.{suffix}", "group": f"g{i % 3}"})
    pd.DataFrame(rows).to_csv(root / "samples.csv", index=False)
    return root


@pytest.mark.parametrize("kind, encoder", [("audio", "wavlm"), ("video", "r3d18")])
def test_extract_records_damaged_media_as_failures_and_exits_1(tmp_path, tiny_weights, kind, encoder):  # noqa: F811
    damaged = {1: "truncate50", 2: "truncate90", 3: "truncate99", 4: "empty"}
    data = _folder(tmp_path / "data", kind, damaged)
    args = ["--store", str(tmp_path / "store"), "extract", "folder", "--encoder", encoder, "--data-dir", str(data),
            "--weights", str(tiny_weights(encoder)), "--set", f"modalities={kind}:{kind}", "--workers", "1",
            "--batch-size", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert f"{len(damaged)} of 6 clips failed and are masked" in result.output
    entry = Store.open(tmp_path / "store").features(f"folder.{kind}.{encoder}")
    assert entry.valid().tolist() == [i not in damaged for i in range(6)]
    failures = {f["sample_id"]: f["error"] for f in entry.failures()}
    assert sorted(failures) == [f"s{i}" for i in sorted(damaged)]
    assert all(error.startswith("DecodeError: ") for error in failures.values())
    assert torch.all(entry.load().float()[sorted(damaged)] == 0)
    again = CliRunner().invoke(app, [*args, "--allow-failures"])
    assert again.exit_code == 0 and "nothing to do" in again.output


@pytest.mark.parametrize("seconds", [0.3, 1.0, 5.0])
@pytest.mark.parametrize("rate", [8_000, 44_100])
def test_an_ogg_cut_anywhere_fails_and_an_intact_one_decodes(tmp_path, seconds, rate):
    intact = write_audio(tmp_path / "intact.ogg", seconds, "OGG", sample_rate=rate, seed=1)
    decode_audio(intact, 16_000)
    size = intact.stat().st_size
    for keep in sorted({size // 2, size * 9 // 10, size - 1, size - 30}):
        broken = tmp_path / f"cut-{keep}.ogg"
        broken.write_bytes(intact.read_bytes()[:keep])
        with pytest.raises(DecodeError, match=f"^{broken}: "):
            decode_audio(broken, 16_000)
