"""Checks every registered encoder gets: a spec declared without loading, tiny random checkpoints
loaded through the real loading path, output shapes, determinism, hidden layers, offline errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.encoders.base import MODALITIES, EncoderSpec
from mmpipe.store.errors import UserError
from mmpipe.store.fingerprint import fingerprint
from tests.tiny_models import sample_sources, tiny_weights  # noqa: F401

# The widths of the real checkpoints (paper §4.1, Appendix A.5).
REAL_DIMS = {"dino": 768, "bert": 768, "labse": 768, "wav2vec2": 768, "wavlm": 768, "r3d18": 512, "mvit": 768}
PREPROCESSING = {"audio": "AudioPreprocessing", "video": "VideoPreprocessing", "image": "ImagePreprocessing",
                 "text": "TextPreprocessing"}


def test_every_expected_encoder_is_registered():
    assert set(ENCODERS.names()) == set(REAL_DIMS)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_spec_is_declared_without_loading(name):
    cls = ENCODERS.get(name)
    assert cls.name == name and cls.description
    assert dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen
    encoder = cls()
    spec = encoder.spec()
    assert isinstance(spec, EncoderSpec) and getattr(encoder, "model", None) is None
    assert spec.modality in MODALITIES and type(spec.preprocessing).__name__ == PREPROCESSING[spec.modality]
    assert spec.dim == REAL_DIMS[name] and spec.layer_dims[-1] == spec.dim and spec.model_id and spec.revision
    assert spec.pooling
    assert len(fingerprint(dataclasses.asdict(spec))) == 64  # JSON-able key material
    if spec.modality == "audio":
        assert spec.preprocessing.sample_rate == 16_000
    if spec.modality == "video":
        assert spec.preprocessing.frames == 16


def test_video_specs_are_the_weights_own_transforms():
    r3d, mvit = ENCODERS.get("r3d18")().spec().preprocessing, ENCODERS.get("mvit")().spec().preprocessing
    assert (r3d.resize, r3d.crop) == ((128, 171), (112, 112))
    assert (mvit.resize, mvit.crop, mvit.mean) == ((256,), (224, 224), (0.45, 0.45, 0.45))


def test_audio_mask_conventions_follow_the_checkpoints():
    wav2vec2, wavlm = ENCODERS.get("wav2vec2")().spec(), ENCODERS.get("wavlm")().spec()
    assert not wav2vec2.preprocessing.attention_mask and wav2vec2.preprocessing.normalize
    assert wavlm.preprocessing.attention_mask and not wavlm.preprocessing.normalize


@pytest.fixture(scope="module")
def loaded(tiny_weights, tmp_path_factory):  # noqa: F811
    cache = {}

    def get(name):
        if name not in cache:
            encoder = ENCODERS.get(name)()
            weights = tiny_weights(name)
            encoder.load("cpu", weights)
            spec = encoder.spec(weights)
            folder = tmp_path_factory.mktemp(name)
            n = 1 if spec.modality == "video" else 3  # full-size video architectures: one clip keeps it quick
            preparer = encoder.preparer()
            batch = preparer.collate([preparer(s) for s in sample_sources(spec.modality, folder, n)])
            cache[name] = (encoder, spec, batch, n)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ENCODERS.names())
def test_tiny_model_shapes_layers_and_determinism(name, loaded):
    encoder, spec, batch, n = loaded(name)
    layers = (0, len(spec.layer_dims) - 1)
    first = encoder.encode(batch, layers)
    assert first.pooled.shape == (n, spec.dim) and first.pooled.dtype == torch.float32
    assert torch.isfinite(first.pooled).all() and first.pooled.abs().sum() > 0
    assert set(first.layers) == set(layers)
    for k in layers:
        assert first.layers[k].shape == (n, spec.layer_dims[k])
    again = encoder.encode(batch)
    assert torch.equal(again.pooled, first.pooled) and again.layers == {}
    if n > 1:
        assert not torch.allclose(first.pooled[0], first.pooled[1])  # rows are the samples, not copies


@pytest.mark.parametrize("name", ENCODERS.names())
def test_missing_weights_offline_say_where_to_put_them(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    encoder = ENCODERS.get(name)()
    with pytest.raises(UserError) as error:
        encoder.load("cpu")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path) in message and "--weights" in message


def test_a_checkpoint_of_another_architecture_is_refused(tiny_weights):  # noqa: F811
    with pytest.raises(UserError, match="needs 'vit'"):
        ENCODERS.get("dino")().load("cpu", tiny_weights("bert"))
    with pytest.raises(UserError, match="not a r3d18 checkpoint"):
        ENCODERS.get("r3d18")().load("cpu", tiny_weights("mvit"))


def test_labse_features_are_unit_length_and_bert_pooling_is_configurable(loaded, tiny_weights):  # noqa: F811
    labse, _, batch, _ = loaded("labse")
    assert torch.allclose(labse.encode(batch).pooled.norm(dim=1), torch.ones(3), atol=1e-5)
    bert, _, batch, _ = loaded("bert")
    mean = ENCODERS.get("bert")(ENCODERS.get("bert").Options(pooling="mean"))
    mean.load("cpu", tiny_weights("bert"))
    assert mean.spec().pooling != bert.spec().pooling
    assert not torch.allclose(mean.encode(batch).pooled, bert.encode(batch).pooled)
