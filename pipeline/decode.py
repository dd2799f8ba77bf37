"""Media decoding: files to raw arrays, in DataLoader workers.

Audio goes through soundfile and `torchaudio.functional.resample` (``torchaudio.load`` would need
torchcodec and a system FFmpeg); video through PyAV, which bundles FFmpeg (FLV and MP4 alike);
images through PIL.

Contract: a decoder returns the whole content of the file or raises `DecodeError` with one line
naming the file and what was wrong — never a partial array. A missing, empty or unreadable file
fails, and so does a truncated or partially decodable one, detected while decoding once (header
fields are read from the open file; nothing is decoded twice):

- audio: the header's data size against the bytes the file holds (libsndfile's own header check,
  which WAV, AIFF and the other PCM containers report in the open file's log), the header's frame
  count against the frames decoded (FLAC, MP3 with a Xing/LAME header), an Ogg file's last page
  (whole, its CRC right, flagged end-of-stream), and any libsndfile error;
- video: any FFmpeg error raised while demuxing or decoding, any packet the demuxer marks corrupt,
  any message FFmpeg logs at error level, the frames decoded against the video stream's frame
  count or duration (one frame of slack), the end of the last packet of any stream against the
  container's duration (0.2 s of slack), and, for MP4/MOV, the top-level boxes against the size
  of the file;
- images: PIL's full load, which raises on a truncated file (``ImageFile.LOAD_TRUNCATED_IMAGES``
  stays False).

What none of this can see is damage that leaves a well-formed stream: bytes overwritten inside
uncompressed PCM audio, MP3 frames or a JPEG's entropy-coded data decode as (wrong) samples and
pixels, since these formats carry no checksum; and an MP3 without a Xing/Info header states no
length, so a cut between whole frames leaves no trace. (An Ogg file states no length either, but
its last page must be whole, pass its CRC and close the stream.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.logging
import numpy as np
import soundfile
import torch
import torchaudio.functional
from PIL import Image

# A data chunk whose size field is one of these has an unknown length (written to a pipe): only
# a real size can promise more bytes than the file holds.
_UNKNOWN_SIZES = (0xFFFFFFFF, 0x7FFFFFFF)
# libsndfile's log line for a data chunk whose header size exceeds what the file holds, e.g.
# "data : 32000 (should be 15978)" (WAV, W64, CAF) or " SSND : 32008 (should be 15981)" (AIFF).
_SHORT_DATA_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
# An MP3 without a Xing/Info/VBRI header has no frame count: libsndfile estimates one from the
# file size and the bitrate, which misses the decoded length by up to an MPEG frame (1152 samples).
_MP3_SLACK_FRAMES = 2 * 1152
_MP3_COUNT_TAGS = (b"Xing", b"Info", b"VBRI")
# How far the streams of an intact file may end before the container's stated duration: muxers
# round timestamps to their own units and pad audio to whole codec frames (intact FLV and MP4
# files with and without audio, 12-30 fps, were measured within 0.14 s).
_DURATION_SLACK_S = 0.2


class DecodeError(RuntimeError):
    """A media file that exists but yields no usable content, or only part of it."""


def audio_length(path: Path) -> int:
    """Frames in the file according to its header (no decoding); 0 when it cannot be read.

    Used only to bucket clips of similar length into one batch, so a bad header costs nothing
    here: the decoder reports the failure later.
    """
    if not path.is_file():  # a pipe's header cannot be read without consuming what the decoder needs
        return 0
    try:
        info = soundfile.info(str(path))
    except (OSError, RuntimeError, soundfile.LibsndfileError):
        return 0
    return int(info.frames * 16_000 / max(1, info.samplerate))


def decode_audio(path: Path, sample_rate: int, max_seconds: float | None = None) -> torch.Tensor:
    """Mono float32 waveform at ``sample_rate``: (T,). Channels are averaged.

    ``max_seconds`` keeps the start of the clip; the whole file is still read, so a truncated tail
    fails even when it would have been cut off.
    """
    try:
        with soundfile.SoundFile(str(path)) as sound:
            if sound.seekable():  # as soundfile.read does: an MP3 decodes a bit differently without it
                sound.seek(0)
            data = sound.read(dtype="float32", always_2d=True)  # (T, C)
            rate, promised, container, log = sound.samplerate, sound.frames, sound.format, sound.extra_info
    except soundfile.LibsndfileError as error:  # its message names the file already, in quotes
        raise DecodeError(f"{path}: {error.error_string.rstrip('.')}") from None
    except (OSError, RuntimeError) as error:
        raise DecodeError(f"{path}: {error}") from None
    if data.shape[0] == 0:
        raise DecodeError(f"{path}: no audio samples")
    _check_audio_complete(path, data.shape[0], promised, container, log)
    return mono_waveform(data, rate, sample_rate, max_seconds)


def mono_waveform(data: np.ndarray, rate: int, sample_rate: int, max_seconds: float | None) -> torch.Tensor:
    """Decoded frames (T, C) at ``rate`` → the mono waveform (T',) at ``sample_rate``: channels
    averaged, the first ``max_seconds`` kept, then resampled."""
    if max_seconds is not None:
        data = data[: int(round(max_seconds * rate))]
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if rate != sample_rate:
        wave = torchaudio.functional.resample(wave, orig_freq=rate, new_freq=sample_rate)
    return wave


def _check_audio_complete(path: Path, decoded: int, promised: int, container: str, log: str) -> None:
    """Raise if the file holds less audio than its header promises.

    libsndfile shortens a data chunk that runs past the end of the file to what is there (and says
    so in its log), so its frame count alone cannot reveal a truncated WAV.
    """
    for declared, present in _SHORT_DATA_CHUNK.findall(log):
        if int(declared) not in _UNKNOWN_SIZES and int(present) < int(declared):
            raise DecodeError(f"{path}: header promises {declared} bytes of audio data, the file holds {present} "
                              f"(file truncated?)")
    if container == "OGG":
        _check_ogg_ends(path)
    slack = _MP3_SLACK_FRAMES if container == "MP3" and not _mp3_states_frame_count(path) else 0
    if decoded < promised - slack:
        raise DecodeError(f"{path}: header promises {promised} frames, decoded {decoded} (file truncated?)")


def _crc_table() -> list[int]:
    table = []
    for index in range(256):
        crc = index << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return table


_OGG_CRC_TABLE = _crc_table()


def _ogg_crc(data: bytes) -> int:
    """CRC-32 of an Ogg page (polynomial 0x04C11DB7, not reflected, initial value 0)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[(crc >> 24) ^ byte]
    return crc


_OGG_TAIL_BYTES = 65_307 + 27  # the largest Ogg page (27 + 255 + 255 * 255 bytes) and one more header


def _check_ogg_ends(path: Path) -> None:
    """Raise unless the file ends with a whole Ogg page that closes its stream.

    Ogg states no total length, but every page carries its size and a CRC, and the last page of a
    stream is flagged end-of-stream (header type bit 2). A file cut inside a page leaves a last
    page that runs past the end; a file cut between pages leaves one without the flag. The last
    page is found by its capture pattern and confirmed by its CRC (the pattern may occur in data).
    """
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - _OGG_TAIL_BYTES))
        tail = handle.read()
    start = tail.rfind(b"OggS")
    while start >= 0:
        header = tail[start:start + 27]
        if len(header) == 27:
            segments = tail[start + 27:start + 27 + header[26]]
            end = start + 27 + header[26] + sum(segments)
            if len(segments) == header[26] and end <= len(tail):
                page = bytearray(tail[start:end])
                stated = int.from_bytes(page[22:26], "little")
                page[22:26] = b"\0\0\0\0"
                if _ogg_crc(bytes(page)) == stated:
                    if end != len(tail) or not header[5] & 0x04:
                        raise DecodeError(f"{path}: the Ogg stream does not end with its last page "
                                          "(file truncated?)")
                    return
            elif end > len(tail) and start + 27 + header[26] <= len(tail):
                raise DecodeError(f"{path}: the last Ogg page runs {end - len(tail)} bytes past the end of the "
                                  "file (file truncated?)")
        start = tail.rfind(b"OggS", 0, start)
    raise DecodeError(f"{path}: no whole Ogg page at the end of the file (file truncated?)")


def _mp3_states_frame_count(path: Path) -> bool:
    """Whether the first MPEG frame (after any ID3v2 tag) is a Xing/Info/VBRI header, which states
    the exact frame count; such a header sits within the frame's first 40 bytes."""
    with open(path, "rb") as handle:
        head = handle.read(10)
        start = 0
        if head[:3] == b"ID3" and len(head) == 10:  # size: four 7-bit bytes, plus a footer if flagged
            start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
            start += 10 if head[5] & 0x10 else 0
        handle.seek(start)
        frame = handle.read(4096)
    sync = next((i for i in range(len(frame) - 1) if frame[i] == 0xFF and frame[i + 1] & 0xE0 == 0xE0), None)
    return sync is not None and any(tag in frame[sync:sync + 64] for tag in _MP3_COUNT_TAGS)


def frame_indices(n_frames: int, wanted: int) -> np.ndarray:
    """``wanted`` indices spread uniformly over ``n_frames``: round(linspace(0, n - 1, wanted))."""
    return np.rint(np.linspace(0, n_frames - 1, wanted)).astype(np.int64)


def decode_video(path: Path, frames: int) -> torch.Tensor:
    """``frames`` RGB frames sampled uniformly over the whole clip: uint8 (T, H, W, 3).

    The frame count in a container header is unreliable (FLV often has none), so every frame is
    decoded and only the chosen ones are converted to RGB arrays.
    """
    decoded = _decode_all_frames(path)
    chosen = frame_indices(len(decoded), frames)
    arrays = {int(i): decoded[int(i)].to_ndarray(format="rgb24") for i in np.unique(chosen)}
    return torch.from_numpy(np.stack([arrays[int(i)] for i in chosen]))


@dataclass
class _Demuxed:
    frames: list[av.VideoFrame] = field(default_factory=list)  # every decoded frame of the video stream
    promised_frames: int | None = None  # the video stream's frame count or duration × rate, if stated
    promised_s: float | None = None  # the container's duration, if stated
    reached_s: float = 0.0  # where the last packet of any stream ends, from the stream's start
    frame_s: float = 0.0  # one frame interval of the video stream (0 if unknown)
    corrupt: int = 0  # packets of any stream the demuxer marked corrupt
    boxes: bool = False  # an MP4/MOV file, made of boxes


def _decode_all_frames(path: Path) -> list[av.VideoFrame]:
    """Every frame of the first video stream; raises `DecodeError` unless the whole file decoded."""
    previous = av.logging.get_level(), av.logging.get_skip_repeated()
    # PyAV drops FFmpeg's log unless a level is set; errors are then captured, never printed.
    # Repeats are kept: PyAV would drop a message equal to the last one, even one from the
    # previous file. Capture all threads: with frame threading, the decoder logs from its own.
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)
    try:
        with av.logging.Capture(local=False) as logs:
            got = _demux_and_decode(path)
    finally:
        av.logging.set_level(previous[0])
        av.logging.set_skip_repeated(previous[1])
    if not got.frames:
        raise DecodeError(f"{path}: no decodable video frames")
    if got.promised_frames is not None and len(got.frames) < got.promised_frames - 1:  # slack: rounding
        raise DecodeError(f"{path}: header promises {got.promised_frames} frames, decoded {len(got.frames)} "
                          f"(file truncated?)")
    if got.promised_s is not None and got.reached_s < got.promised_s - max(_DURATION_SLACK_S, 2 * got.frame_s):
        raise DecodeError(f"{path}: header promises {got.promised_s:.3f} s, the streams end at {got.reached_s:.3f} s "
                          f"(file truncated?)")
    if got.corrupt:
        raise DecodeError(f"{path}: {got.corrupt} packet(s) marked corrupt by the demuxer (file truncated?)")
    errors = [message.strip() for level, _, message in logs if level <= av.logging.ERROR]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DecodeError(f"{path}: FFmpeg reported a decoding error: {errors[0]}{more}")
    if got.boxes:
        _check_boxes_complete(path)
    return got.frames


def _demux_and_decode(path: Path) -> _Demuxed:
    """Demux every stream (so a cut-off audio tail counts too) and decode the first video stream."""
    got, opened = _Demuxed(), False
    try:
        with av.open(str(path)) as container:
            opened = True
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            got.promised_frames = _promised_frames(stream)
            rate = stream.average_rate or stream.guessed_rate
            got.frame_s = float(1 / rate) if rate else 0.0
            if container.duration is not None:
                got.promised_s = container.duration / av.time_base
            got.boxes = "mp4" in container.format.name.split(",")
            for packet in container.demux():
                got.corrupt += packet.is_corrupt
                if packet.pts is not None and packet.duration is not None and packet.time_base is not None:
                    start = packet.stream.start_time or 0
                    got.reached_s = max(got.reached_s, float((packet.pts - start + packet.duration) * packet.time_base))
                if packet.stream is not stream:
                    continue
                got.frames.extend(packet.decode())
                if packet.size == 0 and packet.dts is None:
                    # The video stream's flush packet, its last. Stop here: when a stream appeared
                    # mid-file (FLV), PyAV's demux goes on to flush streams it does not have (IndexError).
                    break
    except av.error.FFmpegError as error:
        where = f"after {len(got.frames)} frames" if opened else "opening the file"
        detail = f" ({error.log[2].strip()})" if error.log and len(error.log) > 2 else ""
        raise DecodeError(f"{path}: FFmpeg failed {where}: {error.strerror}{detail}") from None
    return got


def _check_boxes_complete(path: Path) -> None:
    """Raise if a top-level box of an MP4/MOV file runs past the end of the file.

    FFmpeg reads a file whose tail (e.g. the end of a ``moov`` box) is cut off without a word when
    what remains suffices to decode; the file is still truncated. Walking the top-level box
    headers costs a few small reads.
    """
    size = path.stat().st_size
    offset = 0
    with open(path, "rb") as handle:
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(16)
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if length == 1 and len(header) == 16:  # a 64-bit size follows the type
                length = int.from_bytes(header[8:16], "big")
            if length == 0 or length < 8 or not kind.isascii() or not kind.decode().isprintable():
                return  # a box that runs to the end of the file, or bytes that are no box: FFmpeg judges
            if offset + length > size:
                raise DecodeError(f"{path}: the {kind.decode()!r} box runs to byte {offset + length}, the file "
                                  f"ends at byte {size} (file truncated?)")
            offset += length


def _promised_frames(stream: av.VideoStream) -> int | None:
    """Frames the video stream's header promises: its frame count (MP4), else its duration × frame
    rate; None when it states neither (FLV: the container's duration is checked instead)."""
    if stream.frames:
        return stream.frames
    rate = stream.average_rate or stream.guessed_rate
    if rate and stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base * rate))
    return None


def decode_image(path: Path) -> Image.Image:
    """An RGB PIL image, fully loaded (so a truncated file fails here, not later)."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:  # PIL's errors for bad data
        raise DecodeError(f"{path}: {error}") from None
