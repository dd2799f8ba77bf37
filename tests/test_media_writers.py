import av
import numpy as np
import soundfile
from PIL import Image

from tests.media import write_image, write_video, write_wav


def test_wav_has_requested_duration_and_format(tmp_path):
    path = write_wav(tmp_path / "a.wav", 1.25)
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16_000, 1, "PCM_16", 20_000)
    assert path.stat().st_size == 44 + 2 * 20_000  # CREMA-D's size ↔ duration rule holds


def test_flv_and_mp4_decode_with_pyav(tmp_path):
    for name in ("clip.flv", "clip.mp4"):
        path = write_video(tmp_path / name, frames=12)
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 12 and frames[0].shape == (48, 64, 3)
        assert not np.array_equal(frames[0], frames[-1])


def test_image(tmp_path):
    assert Image.open(write_image(tmp_path / "x.jpg")).size == (64, 48)
