import pandas as pd
import pytest

from mmpipe.store.errors import UserError
from mmpipe.store.manifest import LabelSpec, Manifest, Modality, read_manifest, write_manifest


def _manifest(**changes) -> Manifest:
    table = pd.DataFrame({
        "sample_id": ["a", "b", "c", "d"],
        "split": ["train", "train", "val", "test"],
        "group": ["g1", "g1", "g2", None],
        "emotion": ["ANG", "HAP", "SAD", "ANG"],
        "age": [20.0, 31.5, 44.0, 25.0],
        "wav": ["A/a.wav", "A/b.wav", "A/c.wav", "A/d.wav"],
    })
    labels = (LabelSpec("emotion", "categorical", "joint"), LabelSpec("age", "continuous", "shared"))
    fields = dict(dataset="toy", table=table, labels=labels,
                  modalities=(Modality("face", "features"), Modality("voice", "audio", "wav")),
                  split_protocol="group-disjoint")
    fields.update(changes)
    return Manifest(**fields)


def test_round_trip_keeps_rows_labels_and_metadata(tmp_path):
    manifest = _manifest()
    write_manifest(tmp_path / "m.parquet", manifest)
    back = read_manifest(tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(back.table, manifest.table, check_dtype=False)
    assert back.labels == manifest.labels
    assert back.modalities == manifest.modalities == (Modality("face", "features"), Modality("voice", "audio", "wav"))
    assert back.modality_names == ("face", "voice") and back.modality("voice").column == "wav"
    assert back.split_protocol == "group-disjoint"
    assert back.version() == manifest.version()
    assert back.table["group"].isna().tolist() == [False, False, False, True]


def test_version_is_a_content_hash():
    base = _manifest()
    table = base.table.copy()
    table.loc[0, "age"] = 21.0
    assert _manifest(table=table).version() != base.version()
    relabelled = (LabelSpec("emotion", "categorical", "face"), LabelSpec("age", "continuous", "shared"))
    assert _manifest(labels=relabelled).version() != base.version()
    renamed = (Modality("face", "features"), Modality("speech", "audio", "wav"))
    assert _manifest(modalities=renamed).version() != base.version()
    assert _manifest().version() == base.version()
    reworded = (LabelSpec("emotion", "categorical", "joint", "the displayed emotion"),
                LabelSpec("age", "continuous", "shared", "in years"))
    assert _manifest(labels=reworded).version() == base.version()  # prose is not data: no new fingerprints


def test_invalid_manifests_raise():
    table = _manifest().table
    with pytest.raises(ValueError, match="duplicate sample_id"):
        _manifest(table=table.assign(sample_id=["a", "a", "b", "c"]))
    with pytest.raises(ValueError, match="unknown split"):
        _manifest(table=table.assign(split=["train", "dev", "val", "test"]))
    with pytest.raises(ValueError, match="label column 'mood' missing"):
        _manifest(labels=(LabelSpec("mood", "categorical", "joint"),))
    with pytest.raises(ValueError, match="kind must be"):
        LabelSpec("x", "ordinal", "face")
    with pytest.raises(ValueError, match="has owner 'm1'; valid: shared, joint, face, voice"):
        _manifest(labels=(LabelSpec("age", "continuous", "m1"),))
    with pytest.raises(ValueError, match="modality voice column 'mp3' missing"):
        _manifest(modalities=(Modality("voice", "audio", "mp3"),))
    with pytest.raises(ValueError, match="modality names repeat"):
        _manifest(modalities=(Modality("voice", "audio", "wav"), Modality("voice", "features")))
    for bad in ("Voice", "shared", "joint", "s", "2d", "a-b"):
        with pytest.raises(ValueError, match="must be lower-case"):
            Modality(bad, "audio")
    with pytest.raises(ValueError, match="kind must be one of"):
        Modality("voice", "speech")
    with pytest.raises(UserError, match="has no modality 'text'; valid: face, voice"):
        _manifest().modality("text")
