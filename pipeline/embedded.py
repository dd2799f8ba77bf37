"""Media held inside another file: one ``Image`` or ``Audio`` cell of a saved Hugging Face dataset.

A saved dataset (``Dataset.save_to_disk``) embeds every image and audio file as bytes in its
Arrow files. An `EmbeddedMedia` names one cell (dataset directory, split, column, row); the
worker that decodes it memory-maps the Arrow files (once per process) and reads that cell's
bytes, so no copy of the media is ever written. It is small and picklable, like a path.

Decoding, with the contract of `mmpipe.pipeline.decode` (the whole content or a one-line
`DecodeError` naming the cell):

- images through ``datasets`` itself (``datasets.Image().decode_example``, which is PIL), fully
  loaded and converted to RGB as `decode.decode_image` does;
- audio through soundfile, as `decode.decode_audio` does for files: ``datasets`` (4.x and later)
  decodes ``Audio`` only through torchcodec, which needs a system FFmpeg that mmpipe does not
  require. The checks are libsndfile's own and the header's frame count against the frames
  decoded; the Ogg last-page and MP3 frame-count checks of a file are not made on a cell.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Any

import soundfile
import torch
from PIL import Image

from mmpipe.pipeline.decode import DecodeError, mono_waveform


@functools.lru_cache(maxsize=8)
def _arrow_rows(location: str, split: str | None) -> Any:
    """The saved dataset (one split of a DatasetDict) in Arrow format: rows as Arrow tables."""
    import datasets  # only the workers that read embedded media pay for it

    loaded = datasets.load_from_disk(location)
    return (loaded[split] if split is not None else loaded).with_format("arrow")


@dataclass(frozen=True)
class EmbeddedMedia:
    location: str  # the saved dataset's directory
    split: str | None  # the DatasetDict split; None for a saved Dataset
    column: str
    row: int

    def __str__(self) -> str:
        split = f"[{self.split}]" if self.split is not None else ""
        return f"{self.location}{split} row {self.row} column {self.column}"

    def read(self) -> bytes:
        try:
            cell = _arrow_rows(self.location, self.split)[self.row].column(self.column)[0].as_py()
        except Exception as error:  # datasets/pyarrow raise many types for a moved or damaged dataset
            raise DecodeError(f"{self}: cannot read the cell ({type(error).__name__}: {error})".splitlines()[0]) from None
        if not cell or not cell.get("bytes"):
            raise DecodeError(f"{self}: the cell holds no bytes")
        return cell["bytes"]

    def image(self) -> Image.Image:
        """An RGB PIL image, decoded by ``datasets`` and fully loaded."""
        from datasets import Image as ImageFeature

        try:
            image = ImageFeature().decode_example({"path": None, "bytes": self.read()})
            image.load()
            return image.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:  # PIL's errors for bad data
            raise DecodeError(f"{self}: {error}") from None

    def audio_length(self) -> int:
        """Frames at 16 kHz according to the header (no decoding); 0 when it cannot be read."""
        try:
            info = soundfile.info(io.BytesIO(self.read()))
        except (DecodeError, OSError, RuntimeError, soundfile.LibsndfileError):
            return 0
        return int(info.frames * 16_000 / max(1, info.samplerate))

    def audio(self, sample_rate: int, max_seconds: float | None = None) -> torch.Tensor:
        """Mono float32 waveform at ``sample_rate``: (T,); channels averaged, the start kept up to
        ``max_seconds``."""
        try:
            with soundfile.SoundFile(io.BytesIO(self.read())) as sound:
                data = sound.read(dtype="float32", always_2d=True)  # (T, C)
                rate, promised = sound.samplerate, sound.frames
        except soundfile.LibsndfileError as error:
            raise DecodeError(f"{self}: {error.error_string.rstrip('.')}") from None
        except (OSError, RuntimeError) as error:
            raise DecodeError(f"{self}: {error}") from None
        if data.shape[0] == 0:
            raise DecodeError(f"{self}: no audio samples")
        if data.shape[0] < promised:
            raise DecodeError(f"{self}: header promises {promised} frames, decoded {data.shape[0]} (truncated?)")
        return mono_waveform(data, rate, sample_rate, max_seconds)
