"""Speech embeddings do not depend on the batch: a clip pooled in a batch that mixes short and long
clips equals the same clip encoded alone, which equals the plain transformers computation
(``Wav2Vec2FeatureExtractor`` + the model on the unpadded clip + mean over its frames).

Checked for tiny random wav2vec2 and WavLM checkpoints with group-norm feature extractors (the
real checkpoints', where zero padding shifts the normalisation) and layer-norm ones (stable layer
norm), over every stored layer. Tolerance: 1e-4 of the mean |feature| in float32 on CPU.

Text, image and video encoders already are batch-invariant, and the tests below show it: texts are
right-padded with an attention mask that BERT applies to every layer (padded keys get no weight,
padded queries only produce rows no pooling reads: CLS, the pooler over CLS, or the masked mean);
images and videos are each resized and cropped to the one input size before they are stacked, so
no padding exists and every layer (LayerNorm, eval-mode BatchNorm) is per sample.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from mmpipe.pipeline.decode import decode_audio
from mmpipe.pipeline.encoders import ENCODERS
from tests.media import write_image, write_video, write_wav
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


# -- text, image, video: already batch-invariant ---------------------------------------------------
SPEECH = ("wav2vec2", "wavlm")  # covered above
LONG_TEXT = " ".join(["the red dog sat on the woman's ball", "un chien sur le ball", "xylophone quartz"] * 12)
TEXTS = ("a", LONG_TEXT, "the man", "un chien sur le ball rouge")  # 3 to ~300 tokens with the tiny vocabulary
IMAGE_SIZES = ((8, 6), (640, 480), (30, 200), (97, 53))  # (W, H): tiny, large, tall, odd
VIDEOS = ((4, (32, 24)), (40, (96, 72)))  # (frames, (W, H)): short and small, long and larger


def sources(modality: str, folder) -> list:
    """The shortest and longest inputs of a kind (video: two clips; the architectures are full size)."""
    if modality == "text":
        return list(TEXTS)
    if modality == "image":
        return [write_image(folder / f"image{i}.png", size=size, seed=i) for i, size in enumerate(IMAGE_SIZES)]
    return [write_video(folder / f"clip{i}.mp4", frames=n, size=size, seed=i) for i, (n, size) in enumerate(VIDEOS)]


BATCH_CASES = {"bert": [{"pooling": "cls"}, {"pooling": "mean"}], "labse": [{}], "dino": [{}], "r3d18": [{}],
               "mvit": [{}]}
CASES = [pytest.param(n, o, id="-".join([n, *map(str, o.values())])) for n, cases in BATCH_CASES.items() for o in cases]


def test_every_encoder_has_a_batch_invariance_test():
    assert set(ENCODERS.names()) == {*SPEECH, *BATCH_CASES}


@pytest.mark.parametrize(("name", "options"), CASES)
def test_a_sample_is_encoded_the_same_alone_and_in_a_mixed_batch(name, options, tiny_weights, tmp_path):  # noqa: F811
    cls = ENCODERS.get(name)
    encoder = cls(cls.Options(**options))
    encoder.load("cpu", tiny_weights(name))
    spec = encoder.spec(tiny_weights(name))
    layers = tuple(range(len(spec.layer_dims)))
    preparer = encoder.preparer()
    items = [preparer(source) for source in sources(spec.modality, tmp_path)]
    if spec.modality == "text":
        lengths = [len(item["input_ids"]) for item in items]
        assert min(lengths) <= 3 and max(lengths) >= 100  # the batch really mixes short and long
    mixed = encoder.encode(preparer.collate(items), layers)
    for row, item in enumerate(items):
        alone = encoder.encode(preparer.collate([item]), layers)
        assert relative_gap(mixed.pooled[row], alone.pooled[0]) <= TOLERANCE
        for k in layers:
            assert relative_gap(mixed.layers[k][row], alone.layers[k][0]) <= TOLERANCE
    assert not torch.allclose(mixed.pooled[0], mixed.pooled[1])  # rows are the samples, not copies
