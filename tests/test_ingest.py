"""`mmpipe ingest` on synthetic pickles in each public layout (tests/affect_files.py, written with
`pickle.dump`): what is stored (rows moved to the front, true lengths, splits, ids, labels, raw
text, provenance), idempotence, resume, non-finite values under both policies, every bad-file
case (one line naming the file, the split and the key; exit 2; nothing stored), and that loading
one modality reads no other modality's files."""

from __future__ import annotations

import fractions
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.pipeline.cli.ingest import ingested_table
from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.datasets.affect import PUBLISHED, AffectDataset
from mmpipe.pipeline.datasets.pickles import LAZY_BYTES, FileArray, open_pickle
from mmpipe.pipeline.ingest import IngestOptions, ingest_file, plan_ingest
from mmpipe.store.config import apply_overrides
from mmpipe.store.errors import UserError
from mmpipe.store.features import FeatureWriter
from mmpipe.store.manifest import SPLITS, read_manifest
from mmpipe.store.ranges import field_specs
from mmpipe.store.root import Store
from tests.affect_files import dump, mmsa, multibench, write

runner = CliRunner()
LAYOUTS = [("mosi", "multibench"), ("mosei", "multibench"), ("urfunny", "multibench"), ("mustard", "multibench"),
           ("mosi", "mult"), ("mosi", "mmsa-aligned"), ("mosi", "mmsa-unaligned"), ("mosei", "mmsa-aligned")]
NAMES = {"multibench": {"text": "glove", "audio": "covarep"}, "mult": {"text": "glove", "audio": "covarep"},
         "mmsa-aligned": {"text": "bert", "audio": "covarep"}, "mmsa-unaligned": {"text": "bert", "audio": "covarep"}}


def _cli(store: Path, *args: str):
    return runner.invoke(app, ["--store", str(store), "ingest", *args])


def _listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} \
        if root.exists() else {}


@pytest.mark.parametrize("dataset, kind", LAYOUTS)
def test_each_public_layout_is_stored_as_end_padded_sequences_with_true_lengths(tmp_path, dataset, kind):
    path, expected = write(kind, tmp_path / "data", dataset)
    store = Store.open(tmp_path / "store", create=True)
    result = ingest_file(store, dataset, DATASETS.get(dataset).Config(data_dir=str(tmp_path / "data")))
    manifest = store.manifest(dataset, result.manifest_version)
    assert manifest.version() == result.manifest_version  # the stored manifest reads back as the same version
    table = manifest.table
    assert list(table["sample_id"]) == expected.ids
    assert list(table["group"]) == expected.groups  # the video each clip comes from
    assert list(table["split"]) == [s for s, n in zip(SPLITS, (40, 12, 12), strict=True) for _ in range(n)]
    label = DATASETS.get(dataset).label_spec
    assert label.owner == "joint" and (label.name, label.kind) == (
        {"mosi": ("sentiment", "continuous"), "mosei": ("sentiment", "continuous"), "urfunny": ("humor", "categorical"),
         "mustard": ("sarcasm", "categorical")}[dataset])
    np.testing.assert_allclose(table[label.name].to_numpy(dtype=float), expected.labels)
    if expected.raw_text is not None:
        assert list(table["raw_text"]) == expected.raw_text
    assert [m.name for m in manifest.modalities] == ["text", "audio", "vision"]
    assert "official" in manifest.split_protocol and result.source.sha256[:12] in manifest.split_protocol
    for item in result.entries:
        entry = item.entry
        feature = entry.name.split(".")[-1]
        assert entry.name == f"{dataset}.{item.modality}.{feature}" and entry.is_sequence
        assert feature == NAMES[kind].get(item.modality, feature)
        lengths = entry.lengths().numpy()
        np.testing.assert_array_equal(lengths, expected.lengths[item.modality])
        np.testing.assert_array_equal(entry.load().numpy(), expected.stored[item.modality])
        np.testing.assert_array_equal(entry.valid(), lengths > 0)
        record = entry.meta["ingest"]
        assert record["source"]["sha256"] == result.source.sha256 and record["source"]["size"] == path.stat().st_size
        assert record["source"]["upstream_checksum"] == ("mismatch" if kind.startswith("mmsa") else "unknown")
        assert record["length_rule"] == {"multibench": "front-zeros", "mult": "front-zeros"}.get(
            kind, {"text": "end-mask"}.get(item.modality, "end-zeros" if kind == "mmsa-aligned" else "end-lengths"))
        assert record["nonfinite"]["total"] == 0 and entry.meta["n_missing"] == int((lengths == 0).sum())


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_every_pickle_protocol_stores_the_same_values(tmp_path, protocol):
    tree, _ = multibench("mosi")
    reference = ingest_file(Store.open(tmp_path / "s4", create=True), "mosi",
                            DATASETS.get("mosi").Config(file=str(dump(tree, tmp_path / "p4" / "mosi_raw.pkl"))))
    other = ingest_file(Store.open(tmp_path / f"s{protocol}", create=True), "mosi", DATASETS.get("mosi").Config(
        file=str(dump(tree, tmp_path / f"p{protocol}" / "mosi_raw.pkl", protocol))))
    for a, b in zip(reference.entries, other.entries, strict=True):
        np.testing.assert_array_equal(a.entry.load().numpy(), b.entry.load().numpy())
        np.testing.assert_array_equal(a.entry.lengths().numpy(), b.entry.lengths().numpy())


def test_large_arrays_stay_in_the_file(tmp_path):
    """The lazy reader leaves arrays of at least LAZY_BYTES in the file and reads exact rows."""
    tree, _ = multibench("mosi")
    path = dump(tree, tmp_path / "mosi_raw.pkl")
    loaded = open_pickle(path)
    text = loaded["train"]["text"]
    assert isinstance(text, FileArray) and text.nbytes >= LAZY_BYTES
    np.testing.assert_array_equal(text.read(5, 9), tree["train"]["text"][5:9])
    assert isinstance(loaded["train"]["labels"], np.ndarray)  # small: read


def test_the_same_file_again_is_nothing_to_do_and_other_options_are_other_entries(tmp_path):
    write("multibench", tmp_path / "data", "mosi")
    store = tmp_path / "store"
    first = _cli(store, "mosi", "--data-dir", str(tmp_path / "data"))
    assert first.exit_code == 0, first.output
    before = _listing(store / "features")
    again = _cli(store, "mosi", "--data-dir", str(tmp_path / "data"))
    assert again.exit_code == 0, again.output
    assert again.stderr.count("already stored, nothing to do") == 3
    assert _listing(store / "features") == before
    assert again.stdout == first.stdout  # the same manifest version
    float16 = _cli(store, "mosi", "--data-dir", str(tmp_path / "data"), "--dtype", "float16")
    assert float16.exit_code == 0 and float16.stderr.count(" written;") == 3
    assert {e.meta["dtype"] for e in Store.open(store).feature_entries("mosi.text.glove")} == {"float32", "float16"}


def test_the_second_ingest_takes_the_sha256_from_the_memo(tmp_path, monkeypatch):
    from mmpipe.pipeline import ingest as workflow

    write("multibench", tmp_path / "data", "mosi")
    assert _cli(tmp_path / "store", "mosi", "--data-dir", str(tmp_path / "data")).exit_code == 0  # a new store

    def no_hashing(path):
        raise AssertionError("hashed again")

    monkeypatch.setattr(workflow, "file_sha256", no_hashing)
    again = _cli(tmp_path / "store", "mosi", "--data-dir", str(tmp_path / "data"))
    assert again.exit_code == 0 and again.stderr.count("nothing to do") == 3, again.output


def test_an_interrupted_ingest_resumes_and_records_the_same_counts(tmp_path, monkeypatch):
    tree, _ = multibench("mosi")
    tree["train"]["audio"][:, -1, 0] = -np.inf  # one -inf per train row, in every chunk
    path = dump(tree, tmp_path / "mosi_raw.pkl")
    config = DATASETS.get("mosi").Config(file=str(path))
    options = IngestOptions(chunk_rows=8)
    whole = ingest_file(Store.open(tmp_path / "whole", create=True), "mosi", config, options)
    original, calls = FeatureWriter.write_chunk, []

    def interrupted(self, index, *args, **kwargs):
        calls.append(index)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(FeatureWriter, "write_chunk", interrupted)
    store = Store.open(tmp_path / "resumed", create=True)
    with pytest.raises(KeyboardInterrupt):
        ingest_file(store, "mosi", config, options)
    monkeypatch.setattr(FeatureWriter, "write_chunk", original)
    resumed = ingest_file(store, "mosi", config, options)
    assert [e.created for e in resumed.entries] == [True, True, True]
    assert resumed.entries[0].entry.meta["timings"]["chunks_resumed"] == 3
    for a, b in zip(whole.entries, resumed.entries, strict=True):
        assert a.entry.fingerprint == b.entry.fingerprint
        np.testing.assert_array_equal(a.entry.load().numpy(), b.entry.load().numpy())
        assert a.record["nonfinite"] == b.record["nonfinite"]
        assert a.entry.meta["failures"] == b.entry.meta["failures"]
    assert whole.entries[1].record["nonfinite"]["counts"]["train"]["neginf"] == 40


def test_nonfinite_values_are_zeroed_counted_and_shown_by_default(tmp_path):
    tree, expected = multibench("mosi")
    audio = tree["train"]["audio"]
    audio[3, -1, 2] = -np.inf
    audio[4, -2:, :] = -np.inf  # 2 steps × 74 dims
    tree["test"]["vision"][0, -1, 0] = np.nan
    tree["valid"]["vision"][1, -1, 1] = np.inf
    dump(tree, tmp_path / "data" / "mosi_raw.pkl")
    result = _cli(tmp_path / "store", "mosi", "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    assert "mosi.audio.covarep" in result.stderr and "train 149 non-finite values (-inf 149) in 2 rows" in result.stderr
    assert "test 1 non-finite value (NaN 1) in 1 row" in result.stderr
    assert "val 1 non-finite value (+inf 1) in 1 row" in result.stderr
    store = Store.open(tmp_path / "store")
    entry = store.feature_entries("mosi.audio.covarep")[0]
    counts = entry.meta["ingest"]["nonfinite"]
    assert counts["policy"] == "zero" and counts["counts"]["train"] == {
        "nan": 0, "posinf": 0, "neginf": 149, "overflow": 0, "rows": 2}
    stored = entry.load().numpy()
    assert np.isfinite(stored).all()
    length = expected.lengths["audio"][4]
    assert (stored[4, length - 2:length] == 0).all() and stored[4, length - 3].any()
    info = runner.invoke(app, ["--store", str(tmp_path / "store"), "info", "mosi"])
    assert info.exit_code == 0 and "ingested entries: provenance, padding, non-finite values" in info.stdout
    wide = Console(file=io.StringIO(), width=400)
    wide.print(ingested_table(store.feature_entries()))
    shown = wide.file.getvalue()
    assert "149 non-finite values (-inf 149) in 2 rows" in shown and "front-zeros" in shown
    assert "multibench mosi_raw.pkl" in shown and f"{entry.meta['ingest']['source']['sha256'][:12]} (unknown)" in shown


def test_nonfinite_error_policy_refuses_before_storing_anything(tmp_path):
    tree, _ = multibench("mosi")
    tree["valid"]["audio"][2, -1, 0] = np.nan
    path = dump(tree, tmp_path / "data" / "mosi_raw.pkl")
    result = _cli(tmp_path / "store", "mosi", "--data-dir", str(tmp_path / "data"), "--set", "nonfinite=error")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "split 'valid', key 'audio'" in lines[0]
    assert "1 non-finite value (NaN 1) in 1 row" in lines[0]
    assert not (tmp_path / "store").exists()


def test_values_beyond_float16_are_counted_as_such(tmp_path):
    tree, _ = multibench("mosi")
    tree["train"]["vision"][0, -1, 0] = 1e6
    path = dump(tree, tmp_path / "mosi_raw.pkl")
    config = DATASETS.get("mosi").Config(file=str(path))
    with pytest.raises(UserError, match="beyond float16's range 1"):
        plan_ingest("mosi", config, IngestOptions(dtype="float16", nonfinite="error"))
    result = ingest_file(Store.open(tmp_path / "store", create=True), "mosi", config, IngestOptions(dtype="float16"))
    vision = result.entries[2]
    assert vision.record["nonfinite"]["counts"]["train"]["overflow"] == 1
    assert np.isfinite(vision.entry.load().numpy()).all()


def test_loading_one_modality_reads_no_other_modalitys_files(tmp_path, monkeypatch):
    from mmpipe.adapters.data import load_features
    from mmpipe.store import features

    write("mmsa-aligned", tmp_path / "data", "mosi")
    store = Store.open(tmp_path / "store", create=True)
    result = ingest_file(store, "mosi", DATASETS.get("mosi").Config(data_dir=str(tmp_path / "data")))
    text = result.entries[0].entry
    read, original = [], features._read_file_into
    monkeypatch.setattr(features, "_read_file_into", lambda path, *a: (read.append(Path(path)), original(path, *a))[1])
    data = load_features(store, "mosi", {"text": None}, pooling="mean")
    assert data.values["text"].shape == (64, 768)
    assert read and all(text.path in p.parents for p in read)


# -- bad files: one line naming the file, the split and the key; exit 2; nothing stored ---------------
def _mutated(mutate, kind: str = "multibench", dataset: str = "mosi"):
    def build(folder: Path) -> Path:
        tree, _ = (mmsa(aligned=kind == "mmsa-aligned") if kind.startswith("mmsa") else multibench(dataset))
        mutate(tree)
        name = {"mosi": "mosi_raw.pkl", "urfunny": "humor.pkl"}[dataset] if kind == "multibench" else "aligned_50.pkl"
        return dump(tree, folder / name)

    return build


def _written(transform):
    def build(folder: Path) -> Path:
        tree, _ = multibench("mosi")
        path = dump(tree, folder / "mosi_raw.pkl")
        path.write_bytes(transform(path.read_bytes()))
        return path

    return build


def _drop(split, key=None):
    def mutate(tree):
        if key is None:
            del tree[split]
        else:
            del tree[split][key]

    return mutate


def _set(split, key, value):
    def mutate(tree):
        tree[split][key] = value(tree[split][key]) if callable(value) else value

    return mutate


BAD_FILES = {
    "truncated inside the train text": (_written(lambda b: b[: len(b) // 2]), ["truncated", "split 'train'",
                                                                              "key 'text'"]),
    "truncated by one byte": (_written(lambda b: b[:-1]), ["truncated"]),
    "not a pickle (zeros)": (_written(lambda b: bytes(len(b))), ["not a pickle", "zeros"]),
    "an HTML page": (_written(lambda b: b"<!DOCTYPE html><html>sign in</html>"), ["not a pickle", "HTML"]),
    "bytes after the pickle": (_written(lambda b: b + b"\0\0"), ["follow the end"]),
    "missing split": (_mutated(_drop("valid")), ["split 'valid'", "missing"]),
    "missing key": (_mutated(_drop("test", "labels")), ["split 'test', key 'labels'", "missing"]),
    "modality shape differs across splits": (_mutated(_set("valid", "audio", lambda a: a[:, :, :73])),
                                             ["split 'valid', key 'audio'", "disagree with split 'train'"]),
    "labels misaligned with features": (_mutated(_set("test", "labels", lambda a: a[:-1])),
                                        ["split 'test', key 'labels'", "misaligned"]),
    "ids misaligned with features": (_mutated(_set("train", "id", lambda a: a[:-2])), ["split 'train', key 'id'"]),
    "labels of shape (N, 2)": (_mutated(_set("train", "labels", lambda a: np.repeat(a, 2, axis=1))),
                               ["split 'train', key 'labels'", "(N,), (N, 1) or (N, 1, 1)"]),
    "a NaN label": (_mutated(_set("valid", "labels", lambda a: np.where(np.arange(len(a))[:, None] == 0, np.nan, a))),
                    ["split 'valid', key 'labels'", "NaN"]),
    "sentiment outside [-3, 3]": (_mutated(_set("train", "labels", lambda a: a * 0 + 5)),
                                  ["split 'train', key 'labels'", "outside [-3, 3]"]),
    "a humor label that is not binary": (_mutated(_set("test", "labels", lambda a: np.arange(len(a)) % 3),
                                                  dataset="urfunny"), ["split 'test', key 'labels'", "binary"]),
    "features that are not sequences": (_mutated(_set("train", "vision", lambda a: a[:, 0, :])),
                                        ["split 'train', key 'vision'", "[N, T, D]"]),
    "an MMSA attention mask that is not 0/1": (_mutated(_set("valid", "text_bert", lambda a: a * 2), "mmsa-aligned"),
                                               ["split 'valid', key 'text_bert'", "attention mask"]),
    "a class the pickle may not name": (_mutated(_set("train", "note", fractions.Fraction(1, 2))),
                                        ["fractions.Fraction", "split 'train'"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_one_line_naming_file_split_and_key_and_stores_nothing(tmp_path, case):
    build, words = BAD_FILES[case]
    path = build(tmp_path / "data")
    dataset = "urfunny" if path.name == "humor.pkl" else "mosi"
    store = tmp_path / "store"
    result = _cli(store, dataset, "--set", f"file={path}")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("mmpipe: error: ") and "Traceback" not in result.output, lines
    assert str(path) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not store.exists()  # no store was even created


def test_a_bad_file_leaves_an_existing_store_as_it_was(tmp_path):
    write("multibench", tmp_path / "good", "mosi")
    store = tmp_path / "store"
    assert _cli(store, "mosi", "--data-dir", str(tmp_path / "good")).exit_code == 0
    before = _listing(store)
    bad = _mutated(_drop("test", "id"))(tmp_path / "bad")
    result = _cli(store, "mosi", "--set", f"file={bad}")
    assert result.exit_code == 2 and "split 'test', key 'id'" in result.stderr
    assert _listing(store) == before


def test_unaligned_lengths_beyond_the_steps_are_refused(tmp_path):
    tree, _ = mmsa(aligned=False)
    tree["test"]["vision_lengths"][3] = 501
    dump(tree, tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl")
    with pytest.raises(UserError, match=r"split 'test', key 'vision_lengths': 1 lengths outside 0\.\.500"):
        plan_ingest("mosi", DATASETS.get("mosi").Config(data_dir=str(tmp_path)))


# -- finding the file ------------------------------------------------------------------------------
def test_the_file_is_found_by_its_public_path_from_any_folder_of_it(tmp_path):
    path, _ = write("mmsa-unaligned", tmp_path, "mosi")
    config = DATASETS.get("mosi").Config
    for data_dir in (tmp_path, tmp_path / "MOSI", tmp_path / "MOSI" / "Processed"):
        assert DATASETS.get("mosi")().locate(config(data_dir=str(data_dir)))[0] == path
    write("mmsa-aligned", tmp_path, "mosi")
    with pytest.raises(UserError, match="several feature files .* choose one with --set file=PATH"):
        DATASETS.get("mosi")().locate(config(data_dir=str(tmp_path)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="none of mosi_raw.pkl, mosi_data.pkl"):
        DATASETS.get("mosi")().locate(config(data_dir=str(tmp_path / "empty")))


def test_a_file_with_another_name_is_told_apart_by_its_keys(tmp_path):
    tree, _ = mmsa()
    path = dump(tree, tmp_path / "my_copy.pkl")
    source = DATASETS.get("mosi")().read(DATASETS.get("mosi").Config(file=str(path)))
    assert source.file.format == "mmsa" and source.file.upstream == "unknown"
    tree, _ = multibench("mosi", mult=True, label_shape=(1, 1))
    source = DATASETS.get("mosi")().read(DATASETS.get("mosi").Config(file=str(dump(tree, tmp_path / "x.pkl"))))
    assert source.file.format == "mult"
    with pytest.raises(UserError, match="urfunny is not distributed in the mmsa format"):
        DATASETS.get("urfunny")().read(DATASETS.get("urfunny").Config(file=str(path), format="mmsa"))


def test_another_datasets_published_file_is_named_as_such(tmp_path, monkeypatch):
    path, _ = write("mmsa-aligned", tmp_path, "mosei")
    source = DATASETS.get("mosei")().read(DATASETS.get("mosei").Config(data_dir=str(tmp_path)))
    monkeypatch.setitem(PUBLISHED, source.file.sha256, ("mosei", "MOSEI/Processed/aligned_50.pkl"))
    with pytest.raises(UserError, match="is mosei's MOSEI/Processed/aligned_50.pkl .* ingest it as mosei"):
        DATASETS.get("mosi")().read(DATASETS.get("mosi").Config(file=str(path)))


def test_repeated_ids_are_made_unique_and_said(tmp_path):
    tree, _ = multibench("mosi")
    tree["test"]["id"][1] = tree["test"]["id"][0]
    dump(tree, tmp_path / "data" / "mosi_raw.pkl")
    result = _cli(tmp_path / "store", "mosi", "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 0 and "1 ids repeat" in result.stderr
    table = Store.open(tmp_path / "store").manifest("mosi").table
    assert f"{tree['test']['id'][0]}#2" in set(table["sample_id"])


# -- the dataset contract, for ingested datasets -------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in DATASETS.names() if issubclass(DATASETS.get(n), AffectDataset)])
def test_ingested_dataset_contract(tmp_path, name):
    """What tests/test_datasets_registry.py checks of a media dataset, for one read from a file."""
    cls = DATASETS.get(name)
    assert cls.name == name and cls.description and cls.Config.__dataclass_params__.frozen
    assert [(m.name, m.kind, m.column) for m in cls.modalities] == [
        ("text", "text", None), ("audio", "audio", None), ("vision", "video", None)]
    kind = next(f.format for f in cls.files)
    write(kind, tmp_path / "data", name)
    config = cls.Config(data_dir=str(tmp_path / "data"))
    manifest = cls().manifest(config)
    assert manifest.dataset == name and set(manifest.table["split"]) == set(SPLITS) and manifest.split_protocol
    assert all(label.owner == "joint" for label in manifest.labels)
    assert manifest.table.groupby("group")["split"].nunique().max() == 1  # the official folds are video-disjoint
    assert cls().manifest(config).version() == manifest.version()
    from mmpipe.store.manifest import write_manifest

    write_manifest(tmp_path / "m.parquet", manifest)
    assert read_manifest(tmp_path / "m.parquet").version() == manifest.version()


def test_ingest_options_are_checked_configs():
    specs = field_specs(IngestOptions)
    assert specs["chunk_rows"].ranges and set(specs) == {"nonfinite", "dtype", "chunk_rows"}
    for bad in ({"chunk_rows": 0}, {"nonfinite": "drop"}, {"dtype": "float64"}):
        with pytest.raises(UserError):
            apply_overrides(IngestOptions(), bad)


def test_ingest_refuses_datasets_it_does_not_read(tmp_path):
    for name, command in (("sim1", "simulate"), ("cremad", "extract")):
        result = _cli(tmp_path / "store", name, "--data-dir", str(tmp_path))
        assert result.exit_code == 2 and f"use `mmpipe {command} {name}`" in result.stderr
        assert "ingested datasets: mosei, mosi, mustard, urfunny" in result.stderr
    with pytest.raises(UserError, match="use `mmpipe simulate sim1`"):
        plan_ingest("sim1", None)


def test_the_provenance_record_is_json(tmp_path):
    write("mmsa-aligned", tmp_path / "data", "mosi")
    store = Store.open(tmp_path / "store", create=True)
    result = ingest_file(store, "mosi", DATASETS.get("mosi").Config(data_dir=str(tmp_path / "data")))
    meta = json.loads((result.entries[0].entry.path / "meta.json").read_text())
    assert meta["ingest"]["source"]["file"] == "MOSI/Processed/aligned_50.pkl"
    assert meta["ingest"]["source"]["upstream_sha256"] == \
        "d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9"
    assert meta["ingest"]["padding"].startswith("end padding: lengths from the attention mask in the file's 'text_bert'")
    assert pickle.loads(pickle.dumps(meta)) == meta
