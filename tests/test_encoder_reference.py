"""Every text, image and video encoder gives a sample the embedding a user of the upstream library
would compute for it alone, from the same small random checkpoint files (speech: see
test_batch_invariance.py).

The references use only the upstream libraries:

- bert: ``AutoTokenizer`` + ``BertModel`` + the configured pooling: the final hidden state of
  [CLS] (``pooling="cls"``, not the NSP pooler) or the mean over the attention mask.
- labse: ``AutoTokenizer`` + ``BertModel`` + ``pooler_output`` + L2 normalisation (the LaBSE model
  card's recipe for plain transformers).
- dino: ``AutoImageProcessor`` (built from facebook/dino-vitb16's preprocessor config, which the
  random checkpoint directory lacks) + ``ViTModel`` + the [CLS] token of ``last_hidden_state``.
- r3d18, mvit: torchvision's architecture with the checkpoint loaded, the head replaced by
  ``Identity``, and the weights enum's own ``transforms()``.

Deliberate difference, pinned here: a video is not given to the model whole. mmpipe decodes every
frame and samples 16 uniformly, indices round(linspace(0, n - 1, 16)) (frames repeat when the clip
is shorter); the reference decodes the clip with PyAV itself and takes those same frames.

Measured, not designed: dino's input pixels differ from ``ViTImageProcessor``'s (transformers
5.24) by one grey level in ~0.1 % of values (resize rounding); the embedding still agrees within the
tolerance (~6.5e-5 here). The test pins both: at most one grey level, in under 0.5 % of values.

Tolerance: max |difference| ≤ 1e-4 of the reference's mean |feature| (float32, CPU).
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from PIL import Image

from mmpipe.pipeline.encoders import ENCODERS
from tests.media import write_image, write_video
from tests.tiny_models import tiny_weights  # noqa: F401

TOLERANCE = 1e-4
TEXT = "un chien sur le ball, the red dog"
# facebook/dino-vitb16's preprocessor_config.json (resample 2 = bilinear)
DINO_PREPROCESSOR = {"do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
                     "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 2,
                     "size": 224}
VIDEO_FRAMES = 16


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().mean())


def mmpipe_embedding(name: str, weights, source, **options) -> torch.Tensor:
    """One sample through mmpipe's encoder, alone in its batch."""
    cls = ENCODERS.get(name)
    encoder = cls(cls.Options(**options))
    encoder.load("cpu", weights)
    preparer = encoder.preparer()
    return encoder.encode(preparer.collate([preparer(source)])).pooled[0]


# -- references -------------------------------------------------------------------------------------
def text_reference(name: str, weights, text: str, pooling: str = "cls") -> torch.Tensor:
    tokenizer = transformers.AutoTokenizer.from_pretrained(weights)
    model = transformers.BertModel.from_pretrained(weights).eval()
    inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=512)
    with torch.no_grad():
        out = model(**inputs)
    if name == "labse":
        return F.normalize(out.pooler_output, p=2, dim=-1)[0]
    if pooling == "cls":
        return out.last_hidden_state[0, 0]
    mask = inputs["attention_mask"][0].float()[:, None]
    return (out.last_hidden_state[0] * mask).sum(0) / mask.sum()


def dino_reference(weights, image_path, tmp_path) -> torch.Tensor:
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(DINO_PREPROCESSOR))
    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    model = transformers.ViTModel.from_pretrained(weights).eval()
    inputs = processor(images=Image.open(image_path).convert("RGB"), return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).last_hidden_state[0, 0], inputs["pixel_values"][0]


def video_reference(name: str, weights, video_path) -> torch.Tensor:
    from torchvision.models import video

    builder, enum = {"r3d18": (video.r3d_18, video.R3D_18_Weights.DEFAULT),
                     "mvit": (video.mvit_v2_s, video.MViT_V2_S_Weights.DEFAULT)}[name]
    model = builder(weights=None)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    if name == "r3d18":
        model.fc = torch.nn.Identity()
    else:
        model.head = torch.nn.Identity()
    model.eval()
    with av.open(str(video_path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    chosen = np.rint(np.linspace(0, len(frames) - 1, VIDEO_FRAMES)).astype(int)  # mmpipe's frame sampling
    clip = torch.from_numpy(np.stack([frames[i] for i in chosen])).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
    with torch.no_grad():
        return model(enum.transforms()(clip)[None])[0]  # transforms -> (3, T, h, w)


# -- tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "pooling"), [("bert", "cls"), ("bert", "mean"), ("labse", None)])
def test_text_embedding_equals_transformers(name, pooling, tiny_weights):  # noqa: F811
    weights = tiny_weights(name)
    options = {"pooling": pooling} if pooling else {}
    got = mmpipe_embedding(name, weights, TEXT, **options)
    expected = text_reference(name, weights, TEXT, pooling or "cls")
    assert got.shape == expected.shape
    assert relative_gap(got, expected) <= TOLERANCE
    if name == "labse":
        assert abs(float(got.norm()) - 1.0) < 1e-5


def test_image_embedding_equals_transformers(tiny_weights, tmp_path):  # noqa: F811
    image = write_image(tmp_path / "image.png", size=(97, 53), seed=3)
    weights = tiny_weights("dino")
    got = mmpipe_embedding("dino", weights, image)
    expected, pixels = dino_reference(weights, image, tmp_path)
    ours = ENCODERS.get("dino")().preparer()(image)["pixel_values"]
    grey_levels = (ours - pixels).abs() * torch.tensor(DINO_PREPROCESSOR["image_std"])[:, None, None] * 255
    assert float(grey_levels.max()) <= 1.001
    assert float((grey_levels > 0.01).float().mean()) < 0.005
    assert got.shape == expected.shape
    assert relative_gap(got, expected) <= TOLERANCE


@pytest.mark.parametrize(("name", "frames"), [("r3d18", 23), ("mvit", 11)])
def test_video_embedding_equals_torchvision(name, frames, tiny_weights, tmp_path):  # noqa: F811
    """More frames than 16 (every frame not taken) and fewer (some taken twice)."""
    clip = write_video(tmp_path / "clip.mp4", frames=frames, size=(96, 72), seed=1)
    weights = tiny_weights(name)
    got = mmpipe_embedding(name, weights, clip)
    expected = video_reference(name, weights, clip)
    assert got.shape == expected.shape
    assert relative_gap(got, expected) <= TOLERANCE


def test_the_references_cover_every_non_speech_encoder():
    assert set(ENCODERS.names()) - {"wav2vec2", "wavlm"} == {"bert", "labse", "dino", "r3d18", "mvit"}
