"""Every registered encoder's stored rows equal the embedding a user of the upstream library would
compute for each sample alone, from the same small random checkpoint files (issue 13, point 2).

The mmpipe side is a real extraction (`mmpipe.pipeline.extract.extract`, the engine behind
``mmpipe extract``) of a `folder` dataset into a temporary store: float32, the default batch size
(16, so all of a kind's samples, of different lengths or sizes, share one batch; rows are planned
longest first), and every hidden layer of the hub encoders stored too. Each stored row is compared
with the reference computed for its sample alone, using only the upstream libraries:

- bert: ``AutoTokenizer`` (truncation at 512, bert-base-uncased's ``model_max_length``) +
  ``BertModel`` + the configured pooling: the final hidden state of [CLS] (``pooling="cls"``, not
  the NSP pooler) or the mean over the attention mask; layers: ``hidden_states`` pooled the same way.
- labse: ``SentenceTransformer(directory).encode(text)``, i.e. the checkpoint's own module chain
  (Transformer at max_seq_length 256 → CLS pooling → 2_Dense with tanh → Normalize); the random
  checkpoint has sentence-transformers/LaBSE's file layout. Its root ``BertModel`` keeps a pooler
  (random, unlike 2_Dense), and a test shows ``pooler_output`` (what mmpipe stored before) differs.
  Layers (mmpipe's own choice; sentence-transformers has no per-layer output): the L2-normalised
  [CLS] of the Transformer module's ``hidden_states``.
- wav2vec2, wavlm: the WAV read with soundfile, ``AutoFeatureExtractor`` (built from the real
  checkpoint's preprocessor config, which the random checkpoint directory lacks) + ``Wav2Vec2Model``
  / ``WavLMModel`` on the clip alone + the mean over its frames (all valid, the clip being alone).
  The tiny checkpoints use group norm in the feature extractor, as the real ones do, so this is the
  one-clip computation they are documented for (zero padding would shift the normalisation).
  Layers: each of ``hidden_states`` averaged the same way. (test_batch_invariance also checks
  layer-norm checkpoints against transformers, through the encoder object.)
- dino: ``AutoImageProcessor`` with the PIL backend (built from facebook/dino-vitb16's
  preprocessor config, whose ``ViTFeatureExtractor`` is that implementation) + ``ViTModel`` + the
  [CLS] token of ``last_hidden_state``; layers: [CLS] of ``hidden_states``.
- r3d18, mvit: torchvision's architecture with the checkpoint loaded, the head replaced by
  ``Identity``, and the weights enum's own ``transforms()``; pooled output only (torchvision has no
  hidden-state API; mmpipe's layer taps are its own). Two clips for r3d18, one for mvit (one
  MViT-V2-S forward takes ~10 s on 2 CPU cores).

Deliberate differences, pinned here:

- A video is not given to the model whole. mmpipe decodes every frame and samples 16 uniformly,
  indices round(linspace(0, n - 1, 16)) (frames repeat when the clip is shorter); the reference
  decodes the clip with PyAV itself and takes those same frames.
- dino's pixels equal transformers' PIL backend exactly. transformers 5's *default* image
  processor backend (torchvision) resizes with other rounding: at most one grey level, in 0.1-1.3 %
  of the values of these images, which moves the tiny random ViT's [CLS] by up to 6e-4 of its mean
  |feature| (measured), beyond the tolerance; so the reference names the PIL backend, and the
  pixel difference to the default one is pinned.

Tolerance: per row, max |difference| ≤ 1e-4 of the reference's mean |feature| (float32, CPU).
Measured worst gaps over each encoder's rows and stored layers (tiny checkpoints, transformers 5.24,
sentence-transformers 6.2, torch 2.11, CPU): bert 2.9e-7 (cls) and 3.4e-7 (mean), labse 3.9e-7,
wav2vec2 1.1e-6, wavlm 3.6e-7, dino 0, r3d18 8.0e-7, mvit 0 (one clip, a batch of one).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
import torch.nn.functional as F
import transformers
from PIL import Image

from mmpipe.pipeline.datasets.folder import FolderConfig
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.extract import ExtractOptions, extract
from mmpipe.store.root import Store
from tests.media import write_image, write_video, write_wav
from tests.tiny_models import tiny_weights  # noqa: F401

# transformers' WavLM attention trips this torch deprecation warning on masked batches
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")

TOLERANCE = 1e-4
DEFAULT_BATCH = ExtractOptions().batch_size
VIDEO_FRAMES = 16
BERT_MAX_TOKENS = 512  # bert-base-uncased's tokenizer model_max_length

# the real checkpoints' preprocessor_config.json (the random checkpoint directories have none)
DINO_PREPROCESSOR = {"do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
                     "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 2,
                     "size": 224}  # facebook/dino-vitb16 (resample 2 = bilinear)
SPEECH_PREPROCESSOR = {  # facebook/wav2vec2-base-960h, microsoft/wavlm-base-plus
    "wav2vec2": {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                 "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False,
                 "sampling_rate": 16000},
    "wavlm": {"do_normalize": False, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
              "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True, "sampling_rate": 16000},
}

# samples: lengths and sizes differ within each kind, shortest next to longest
LONG_TEXT = " ".join(["the red dog sat on the woman's ball", "un chien sur le ball", "xylophone quartz"] * 25)
TEXTS = ("a", LONG_TEXT, "the man", LONG_TEXT[:300], "un chien sur le ball rouge", LONG_TEXT[:900])
SECONDS = (0.3, 3.0, 0.45, 2.2, 0.9)
IMAGE_SIZES = ((8, 6), (640, 480), (30, 200), (97, 53))  # (W, H): tiny, large, tall, odd
VIDEOS = ((11, (64, 48), "flv"), (23, (96, 72), "mp4"))  # (frames, (W, H), container): fewer and more than 16
KINDS = {"text": TEXTS, "audio": SECONDS, "image": IMAGE_SIZES, "video": VIDEOS}


def relative_gaps(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per row: max |difference| / mean |reference feature|."""
    return np.abs(rows - reference).max(axis=1) / np.abs(reference).mean(axis=1)


# -- data and extraction ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(kind, n) -> (folder dataset config, the first n samples' sources in row order)."""
    root = tmp_path_factory.mktemp("reference-data")
    sources: dict[str, list] = {
        "text": list(TEXTS),
        "audio": [write_wav(root / f"clip{i}.wav", s, seed=i) for i, s in enumerate(SECONDS)],
        "image": [write_image(root / f"image{i}.png", size=size, seed=i) for i, size in enumerate(IMAGE_SIZES)],
        "video": [write_video(root / f"video{i}.{ext}", frames=n, size=size, seed=i)
                  for i, (n, size, ext) in enumerate(VIDEOS)],
    }

    def get(kind: str, n: int):
        values = sources[kind][:n]
        table = f"{kind}-{n}.parquet"
        column = [v if kind == "text" else Path(v).name for v in values]
        pd.DataFrame({"sample_id": [f"{kind}{i}" for i in range(n)], kind: column}).to_parquet(root / table)
        return FolderConfig(data_dir=str(root), table=table, modalities=(f"{kind}:{kind}",)), values

    return get


def stored_rows(tmp_path, name, options, weights, config, n_samples):
    """Extract with mmpipe's engine at the default batch size; -> {"data": (N, D), "layerK": ...}."""
    cls = ENCODERS.get(name)
    encoder = cls(cls.Options(**options))
    spec = encoder.spec(weights)
    layers = () if spec.modality == "video" else tuple(range(len(spec.layer_dims)))
    assert n_samples <= DEFAULT_BATCH  # one batch holds every sample: lengths and sizes mix
    extract_options = ExtractOptions(dtype="float32", layers=layers, num_workers=0, device="cpu")
    entry = extract(Store.open(tmp_path / "store", create=True), "folder", config, encoder, weights=weights,
                    options=extract_options, show_progress=False).entry
    assert entry.valid().all() and entry.meta["batch_size"] == DEFAULT_BATCH
    return {array: entry.load(array).numpy() for array in ("data", *(f"layer{k}" for k in layers))}


# -- references: each loads the upstream model once, then computes one sample alone --------------------
# reference(weights, options, tmp) -> (source -> (pooled (D,), [layer k (D_k,), ...]))
def bert_reference(weights, options, _tmp):
    tokenizer = transformers.AutoTokenizer.from_pretrained(weights)
    model = transformers.BertModel.from_pretrained(weights).eval()

    def embed(text):
        inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=BERT_MAX_TOKENS)
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
        mask = inputs["attention_mask"][0].float()[:, None]

        def pool(hidden):  # (1, T, D) -> (D,)
            return hidden[0, 0] if options.get("pooling", "cls") == "cls" else (hidden[0] * mask).sum(0) / mask.sum()

        return pool(out.last_hidden_state), [pool(h) for h in out.hidden_states]

    return embed


def labse_reference(weights, _options, _tmp):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(weights), device="cpu")
    bert, tokenizer = model[0].auto_model, model[0].tokenizer  # the Transformer module's, for the layers

    def embed(text):
        inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=model.max_seq_length)
        with torch.no_grad():
            hidden = bert(**inputs, output_hidden_states=True).hidden_states
        return model.encode(text, convert_to_tensor=True), [F.normalize(h[0, 0], dim=-1) for h in hidden]

    return embed


def labse_pooler_output(weights):
    """BertModel's own pooler over [CLS], L2-normalised: what mmpipe stored before it read 2_Dense."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(weights)
    model = transformers.BertModel.from_pretrained(weights).eval()

    def embed(text):
        with torch.no_grad():
            out = model(**tokenizer(text, return_tensors="pt", truncation=True, max_length=256))
        return F.normalize(out.pooler_output[0], dim=-1)

    return embed


def speech_reference(weights, _options, tmp):
    name = json.loads((Path(weights) / "config.json").read_text())["model_type"]
    folder = tmp / f"{name}-preprocessor"
    folder.mkdir(exist_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(SPEECH_PREPROCESSOR[name]))
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(weights).eval()

    def embed(clip):
        wave, rate = soundfile.read(str(clip), dtype="float32")
        inputs = extractor(wave, sampling_rate=rate, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
        return out.last_hidden_state[0].mean(0), [h[0].mean(0) for h in out.hidden_states]

    return embed


def dino_reference(weights, _options, tmp):
    (tmp / "preprocessor_config.json").write_text(json.dumps(DINO_PREPROCESSOR))
    processor = transformers.AutoImageProcessor.from_pretrained(tmp, backend="pil")
    model = transformers.ViTModel.from_pretrained(weights).eval()

    def embed(image_path):
        inputs = processor(images=Image.open(image_path).convert("RGB"), return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
        return out.last_hidden_state[0, 0], [h[0, 0] for h in out.hidden_states]

    return embed


def video_reference(name):
    def load(weights, _options, _tmp):
        from torchvision.models import video

        builder, enum = {"r3d18": (video.r3d_18, video.R3D_18_Weights.DEFAULT),
                         "mvit": (video.mvit_v2_s, video.MViT_V2_S_Weights.DEFAULT)}[name]
        # built on the meta device, then every tensor taken from the checkpoint (assign): the module
        # builder(weights=None) + load_state_dict gives, without its random initialisation (~3 s for MViT)
        with torch.device("meta"):
            model = builder(weights=None)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), assign=True)
        assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
        if name == "r3d18":
            model.fc = torch.nn.Identity()
        else:
            model.head = torch.nn.Identity()
        model.eval()

        def embed(video_path):
            with av.open(str(video_path)) as container:
                frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
            chosen = np.rint(np.linspace(0, len(frames) - 1, VIDEO_FRAMES)).astype(int)  # mmpipe's frame sampling
            clip = torch.from_numpy(np.stack([frames[i] for i in chosen])).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
            with torch.no_grad():
                return model(enum.transforms()(clip)[None])[0], []  # transforms -> (3, T, h, w)

        return embed

    return load


REFERENCES = {
    "bert": bert_reference,
    "labse": labse_reference,
    "wav2vec2": speech_reference,
    "wavlm": speech_reference,
    "dino": dino_reference,
    "r3d18": video_reference("r3d18"),
    "mvit": video_reference("mvit"),
}
# (encoder, options): every encoder with its tiny checkpoint, and bert with both poolings
CASES = [("bert", {"pooling": "cls"}), ("bert", {"pooling": "mean"}), ("labse", {}), ("wav2vec2", {}), ("wavlm", {}),
         ("dino", {}), ("r3d18", {}), ("mvit", {})]
# one MViT-V2-S forward takes ~10 s on 2 CPU cores: one clip (video batches hold one input shape, so
# no padding exists to mix; r3d18's two clips and test_batch_invariance cover the batching)
SAMPLES = {"mvit": 1}


def test_every_registered_encoder_has_a_reference():
    assert set(ENCODERS.names()) == set(REFERENCES) == {name for name, _ in CASES}


@pytest.mark.parametrize(("name", "options"),
                         [pytest.param(*case, id="-".join([case[0], *case[1].values()])) for case in CASES])
def test_stored_rows_equal_the_upstream_computation(name, options, dataset, tiny_weights, tmp_path):  # noqa: F811
    weights = tiny_weights(name)
    kind = ENCODERS.get(name)().spec().modality
    config, sources = dataset(kind, SAMPLES.get(name, len(KINDS[kind])))
    rows = stored_rows(tmp_path, name, options, weights, config, len(sources))
    reference = REFERENCES[name](weights, options, tmp_path)
    gaps = []
    for row, source in enumerate(sources):
        expected, expected_layers = reference(source)
        assert rows["data"].shape[1] == expected.shape[0]
        gaps.append(relative_gaps(rows["data"][row : row + 1], expected.numpy()[None])[0])
        for k, layer in enumerate(expected_layers):
            gaps.append(relative_gaps(rows[f"layer{k}"][row : row + 1], layer.numpy()[None])[0])
        assert len(rows) == 1 + len(expected_layers)  # every stored array is compared
    if len(sources) > 1:
        assert not np.allclose(rows["data"][0], rows["data"][1])  # rows are the samples, not copies
    print(f"\n{name} {options}: worst relative gap {max(gaps):.1e} ({len(gaps)} rows, {len(sources)} samples)")
    assert max(gaps) <= TOLERANCE, gaps


def test_labse_is_not_the_bert_pooler(tiny_weights):  # noqa: F811
    """The random root checkpoint keeps a BertModel pooler, but LaBSE's projection is 2_Dense:
    ``pooler_output`` (mmpipe's computation before) fails the reference."""
    weights = tiny_weights("labse")
    reference, pooler = labse_reference(weights, {}, None), labse_pooler_output(weights)
    for text in TEXTS:
        expected = reference(text)[0].numpy()[None]
        assert abs(float(np.linalg.norm(expected)) - 1.0) < 1e-5
        assert relative_gaps(pooler(text).numpy()[None], expected)[0] > 100 * TOLERANCE


def test_the_texts_mix_lengths_past_the_token_limits(tiny_weights):  # noqa: F811
    """The texts span 3 tokens to past both truncation limits (bert 512, LaBSE 256), so the one
    batch mixes lengths and truncation is part of what the references check."""
    for name, limit in (("bert", BERT_MAX_TOKENS), ("labse", 256)):
        tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_weights(name))
        lengths = [len(tokenizer(text)["input_ids"]) for text in TEXTS]
        assert min(lengths) <= 3 and max(lengths) > limit and any(3 < n < limit for n in lengths), (name, lengths)
    assert ENCODERS.get("labse")().spec().preprocessing.max_tokens == 256


def test_dino_pixels_equal_the_pil_processor_and_the_torchvision_one_within_a_grey_level(dataset, tmp_path):
    """mmpipe resizes with PIL as the checkpoint's declared ``ViTFeatureExtractor`` (transformers'
    PIL backend) does: identical pixels. transformers 5's default torchvision backend rounds the
    resize differently: measured at most one grey level, in 0.1-1.3 % of the values (these images)."""
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(DINO_PREPROCESSOR))
    pil = transformers.AutoImageProcessor.from_pretrained(tmp_path, backend="pil")
    default = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    preparer = ENCODERS.get("dino")().preparer()
    std = torch.tensor(DINO_PREPROCESSOR["image_std"])[:, None, None]
    for image_path in dataset("image", len(IMAGE_SIZES))[1]:
        ours = preparer(image_path)["pixel_values"]
        image = Image.open(image_path).convert("RGB")
        assert torch.equal(ours, pil(images=image, return_tensors="pt")["pixel_values"][0])
        grey_levels = (ours - default(images=image, return_tensors="pt")["pixel_values"][0]).abs() * std * 255
        assert float(grey_levels.max()) <= 1.001 and float((grey_levels > 0.5).float().mean()) < 0.02, image_path
