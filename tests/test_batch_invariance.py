"""Speech embeddings do not depend on the batch: a clip pooled in a batch that mixes short and long
clips equals the same clip encoded alone, which equals the plain transformers computation
(``Wav2Vec2FeatureExtractor`` + the model on the unpadded clip + mean over its frames).

Checked for tiny random wav2vec2 and WavLM checkpoints with group-norm feature extractors (the
real checkpoints', where zero padding shifts the normalisation) and layer-norm ones (stable layer
norm), over every stored layer. Tolerance: 1e-4 of the mean |feature| in float32 on CPU.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from mmpipe.pipeline.decode import decode_audio
from mmpipe.pipeline.encoders import ENCODERS
from tests.media import write_wav
from tests.tiny_models import tiny_weights  # noqa: F401

SECONDS = (0.3, 3.0, 0.7, 2.2, 0.45, 1.3)  # shortest and longest share the batch
TOLERANCE = 1e-4
# transformers' own WavLM forward (the reference) trips this torch deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
EXTRA = {"wav2vec2": {}, "wavlm": dict(num_buckets=32, max_bucket_distance=100)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return [write_wav(folder / f"clip{i}.wav", s, seed=i) for i, s in enumerate(SECONDS)]


def checkpoint(name: str, norm: str, path):
    """A tiny random checkpoint whose conv feature extractor uses ``norm`` ("group" or "layer")."""
    cls = ENCODERS.get(name)
    config = getattr(transformers, cls.model_class.replace("Model", "Config"))(
        **SMALL, **EXTRA[name], feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    torch.manual_seed(0)
    getattr(transformers, cls.model_class)(config).save_pretrained(path)
    return path


def reference(name: str, path, clip) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The mean over frames of the last hidden state and of each hidden layer (0..L) of the model run
    on the clip alone, as transformers documents it."""
    cls = ENCODERS.get(name)
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=cls.normalize,
                                                      return_attention_mask=cls.attention_mask)
    model = getattr(transformers, cls.model_class).from_pretrained(path).eval()
    inputs = extractor(decode_audio(clip, 16_000).numpy(), sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    return out.last_hidden_state.mean(dim=1)[0], [h.mean(dim=1)[0] for h in out.hidden_states]


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().mean())


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize("name", ["wav2vec2", "wavlm"])
def test_a_clip_is_pooled_the_same_in_any_batch_and_equals_transformers(name, norm, clips, tmp_path):
    path = checkpoint(name, norm, tmp_path / "model")
    encoder = ENCODERS.get(name)()
    encoder.load("cpu", path)
    layers = tuple(range(SMALL["num_hidden_layers"] + 1))
    preparer = encoder.preparer()
    items = [preparer(clip) for clip in clips]
    mixed = encoder.encode(preparer.collate(items), layers)
    for row, (item, clip) in enumerate(zip(items, clips, strict=True)):
        alone = encoder.encode(preparer.collate([item]), layers)
        assert relative_gap(mixed.pooled[row], alone.pooled[0]) <= TOLERANCE
        expected, expected_layers = reference(name, path, clip)
        assert relative_gap(alone.pooled[0], expected) <= TOLERANCE
        for k in layers:
            assert relative_gap(mixed.layers[k][row], alone.layers[k][0]) <= TOLERANCE
            assert relative_gap(alone.layers[k][0], expected_layers[k]) <= TOLERANCE


@pytest.mark.parametrize("name", ["wav2vec2", "wavlm"])
def test_a_clip_too_short_for_one_frame_pools_to_zeros_alone_or_batched(name, tiny_weights):  # noqa: F811
    encoder = ENCODERS.get(name)()
    encoder.load("cpu", tiny_weights(name))
    short, long = {"input_values": torch.randn(160)}, {"input_values": torch.randn(8_000)}
    batched = encoder.encode(encoder.preparer().collate([short, long])).pooled
    alone = encoder.encode(encoder.preparer().collate([short])).pooled
    assert torch.equal(batched[0], torch.zeros_like(batched[0])) and torch.equal(alone, torch.zeros_like(alone))
    assert batched[1].abs().sum() > 0
