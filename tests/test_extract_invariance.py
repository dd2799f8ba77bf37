"""Batch invariance through the extraction engine itself (#13 point 1): a sample's stored rows do not
depend on the batch size or on where the chunk boundaries fall.

One speech encoder (wavlm, whose group-norm feature extractor is padding-sensitive unless the
engine runs it per clip) and one text encoder (bert, right-padded with an attention mask), on a
`folder` dataset of 8 samples of very different lengths (audio 0.3-3 s, texts of 3 to ~200
tokens), with rows ordered so the shortest and longest samples are neighbours.

Configurations, each in its own store (batch size is not in the fingerprint, so one store would
reuse the first entry): batch size 1 (the reference), the default (16: all 8 rows in one batch),
pairs (batch 2 in chunks of 2 rows: the shortest clip is batched with the longest alone), and
batches of 3 and 5 in chunks of 3 and 5 rows (boundaries elsewhere). float32 storage: every row
(pooled and every stored layer) within 1e-4 x the mean |feature| of the batch-1 row.

float16 storage: each stored float16 array equals its float32 twin rounded to float16 (on CPU the
engine computes in float32 and only casts on write); batch 1 and the default batch then differ by
at most one float16 ulp, and only where the two float32 values straddle a float16 rounding
boundary. Measured with the tiny checkpoints (8 rows x 32 dims, every layer): worst float32 gap vs
batch 1 3.6e-7 (wavlm) and 1.1e-7 (bert) of the mean |feature|; float16 rows of batch 1 and the
default batch identical (0 of 256 elements 1 ulp apart, per array). Before the per-clip feature
encoder (13fed10), wavlm's default batch differed from batch 1 by up to 2.0x the mean |feature|.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmpipe.pipeline.datasets.folder import FolderConfig
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.extract import ExtractOptions, extract
from mmpipe.store.root import Store
from tests.media import write_wav
from tests.tiny_models import tiny_weights  # noqa: F401

# transformers' WavLM attention trips this torch deprecation warning on masked batches
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")

SECONDS = (0.3, 3.0, 0.45, 2.2, 0.7, 1.8, 0.9, 1.3)  # shortest next to longest
LONG_TEXT = " ".join(["the red dog sat on the woman's ball", "un chien sur le ball", "xylophone quartz"] * 6)
TEXTS = ("a", LONG_TEXT, "the man", LONG_TEXT[:150], "un chien sur le ball rouge", "a dog in the ball on the man " * 6,
         "the woman", "xylophone quartz " * 12)
TOLERANCE = 1e-4
DEFAULT_BATCH = ExtractOptions().batch_size
CONFIGS = {  # name -> (batch_size, chunk_rows)
    "alone": (1, None),
    "default": (DEFAULT_BATCH, None),
    "pairs": (2, 2),
    "threes": (3, 3),
    "fives": (5, 5),
}
MODALITIES = {"wavlm": "audio", "bert": "text"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rows = []
    for i, (seconds, text) in enumerate(zip(SECONDS, TEXTS, strict=True)):
        write_wav(root / "audio" / f"s{i}.wav", seconds, seed=i)
        rows.append({"sample_id": f"s{i}", "audio": f"audio/s{i}.wav", "text": text, "group": f"g{i % 4}"})
    pd.DataFrame(rows).to_parquet(root / "table.parquet")
    return FolderConfig(data_dir=str(root), table="table.parquet", modalities=("audio:audio", "text:text"))


def run(tmp_path, config, name, weights, *, batch_size, chunk_rows=None, dtype="float32"):
    encoder = ENCODERS.get(name)()
    layers = tuple(range(len(encoder.spec(weights).layer_dims)))
    store = Store.open(tmp_path / f"store-{name}-{dtype}-{batch_size}-{chunk_rows}", create=True)
    options = ExtractOptions(dtype=dtype, layers=layers, batch_size=batch_size, chunk_rows=chunk_rows,
                             num_workers=0, device="cpu")
    entry = extract(store, "folder", config, encoder, weights=weights, options=options, show_progress=False).entry
    assert entry.valid().all() and entry.meta["batch_size"] == batch_size
    return {array: entry.load(array).numpy() for array in ("data", *(f"layer{k}" for k in layers))}


def row_gaps(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per row: max |difference| / mean |reference feature|."""
    return np.abs(rows - reference).max(axis=1) / np.abs(reference).mean(axis=1)


@pytest.mark.parametrize("name", list(MODALITIES))
def test_stored_rows_do_not_depend_on_batch_size_or_chunk_boundaries(name, data, tiny_weights, tmp_path):  # noqa: F811
    weights = tiny_weights(name)
    if name == "bert":  # the texts really are short and long
        encoder = ENCODERS.get(name)()
        encoder.load("cpu", weights)
        lengths = [len(encoder.preparer()(text)["input_ids"]) for text in TEXTS]
        assert min(lengths) <= 3 and max(lengths) >= 150, lengths
    results = {label: run(tmp_path, data, name, weights, batch_size=b, chunk_rows=c)
               for label, (b, c) in CONFIGS.items()}
    reference = results.pop("alone")
    worst = {}
    for label, arrays in results.items():
        for array, rows in arrays.items():
            assert rows.dtype == np.float32
            gaps = row_gaps(rows, reference[array])
            worst[f"{label}/{array}"] = float(gaps.max())
            assert gaps.max() <= TOLERANCE, (label, array, gaps)
    print(f"{name} float32 worst relative gap vs batch 1:", max(worst.values()), worst)
    data_rows = reference["data"]
    assert not np.allclose(data_rows[0], data_rows[1])  # rows are the samples, not copies


def float16_ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in float16 ulps between same-shaped float16 arrays (ordered integer view)."""
    def ordered(x):
        bits = x.view(np.int16).astype(np.int32)
        return np.where(bits < 0, -32768 - bits, bits)
    return np.abs(ordered(a) - ordered(b))


@pytest.mark.parametrize("name", list(MODALITIES))
def test_float16_rows_are_equal_after_rounding(name, data, tiny_weights, tmp_path):  # noqa: F811
    weights = tiny_weights(name)
    half = {b: run(tmp_path, data, name, weights, batch_size=b, dtype="float16") for b in (1, DEFAULT_BATCH)}
    full = {b: run(tmp_path, data, name, weights, batch_size=b) for b in (1, DEFAULT_BATCH)}
    report = {}
    for array in half[1]:
        for b in half:  # storage is a cast of the float32 computation
            assert half[b][array].dtype == np.float16
            assert np.array_equal(half[b][array], full[b][array].astype(np.float16)), (b, array)
        ulps = float16_ulps(half[1][array], half[DEFAULT_BATCH][array])
        straddle = full[1][array].astype(np.float16) != full[DEFAULT_BATCH][array].astype(np.float16)
        assert ulps.max() <= 1, (array, ulps.max())
        assert np.array_equal(ulps > 0, straddle)  # only where float32 values straddle a boundary
        report[array] = (int((ulps > 0).sum()), ulps.size)
    print(f"{name} float16 elements 1 ulp apart (batch 1 vs {DEFAULT_BATCH}):", report)
