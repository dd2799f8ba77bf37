import gzip
import shutil
from pathlib import Path

import pytest

from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.datasets.flickr30k_multi import LABELS, Flickr30kMulti, Flickr30kMultiConfig
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import Modality, read_manifest, write_manifest
from tests.synthetic_trees import MULTI30K_FILES, make_multi30k_tree, multi30k_caption

OFFICIAL = {"train": "train", "val": "val", "test_2016_flickr": "test"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("multi30k")
    return root, make_multi30k_tree(root)


@pytest.fixture
def fresh(tmp_path) -> tuple[Path, dict[str, list[str]]]:
    """A tree of its own, for the tests that damage it."""
    return tmp_path, make_multi30k_tree(tmp_path, {"train": 4, "val": 3, "test_2016_flickr": 3})


def _manifest(root: Path, **changes):
    return Flickr30kMulti().manifest(Flickr30kMultiConfig(data_dir=str(root), **changes))


def _expected_captions(listing: dict[str, list[str]], lang: str) -> dict[str, str]:
    """image -> its caption in ``lang``, as the builder wrote it (line numbers run across files)."""
    expected, line = {}, 0
    for images in listing.values():
        for image in images:
            expected[image] = multi30k_caption(lang, line)
            line += 1
    return expected


def test_registered_with_image_and_caption_and_a_caption_owned_language_label():
    assert DATASETS.get("flickr30k-multi") is Flickr30kMulti
    assert Flickr30kMulti.modalities == (Modality("image", "image"), Modality("caption", "text"))
    assert [(s.name, s.kind, s.owner) for s in LABELS] == [("language", "categorical", "caption")]


def test_default_pairs_each_image_once_with_a_balanced_english_or_french_caption(built):
    root, listing = built
    manifest = _manifest(root)
    table = manifest.table
    assert manifest.modalities == (Modality("image", "image", "image_path"), Modality("caption", "text", "caption"))
    assert len(table) == sum(MULTI30K_FILES.values()) and table["group"].is_unique
    for source, split in OFFICIAL.items():
        rows = table[table["source_file"] == source]
        assert set(rows["split"]) == {split}
        assert sorted(rows["group"]) == sorted(Path(i).stem for i in listing[source])
        assert (rows["language"] == "en").sum() == (rows["language"] == "fr").sum()  # 12/6/6 images: exact halves
    for lang in ("en", "fr"):
        expected = _expected_captions(listing, lang)
        rows = table[table["language"] == lang]
        assert rows["caption"].tolist() == [expected[Path(p).name] for p in rows["image_path"]]
    image_root = Flickr30kMulti().media_root(Flickr30kMultiConfig(data_dir=str(root)), "image")
    assert image_root == root / "images" and Flickr30kMulti().media_root(Flickr30kMultiConfig(), "caption") is None
    assert all((image_root / p).is_file() for p in table["image_path"]) and table["has_image"].all()
    assert not table["image_path"].str.contains("/").any()  # relative to image_dir, never absolute
    assert manifest.split_protocol == ("official Multi30k files train=train, val=val, test=test_2016_flickr; "
                                       "one caption per image, languages en/fr dealt in turn, seed 0")
    assert (table["sample_id"] == table["source_file"] + "/" + table["group"] + "/" + table["language"]).all()


def test_language_dealing_is_seeded(built):
    root, _ = built
    first = _manifest(root)
    assert _manifest(root).version() == first.version()
    second = _manifest(root, seed=1)
    assert set(first.table["group"]) == set(second.table["group"])
    assert set(first.table["sample_id"]) != set(second.table["sample_id"])  # the languages moved


def test_pairing_all_keeps_both_captions_of_an_image_in_one_split(built):
    root, listing = built
    table = _manifest(root, pairing="all").table
    assert len(table) == 2 * sum(MULTI30K_FILES.values())
    assert table.groupby("group")["language"].apply(lambda s: sorted(s) == ["en", "fr"]).all()
    assert table.groupby("group")["split"].nunique().max() == 1


def test_group_split_pools_the_files_and_keeps_images_disjoint(built):
    root, _ = built
    manifest = _manifest(root, split="group", pairing="all", seed=3)
    table = manifest.table
    assert table.groupby("group")["split"].nunique().max() == 1
    assert {s: table.loc[table["split"] == s, "group"].nunique() for s in ("train", "val", "test")} == \
        {"train": 17, "val": 4, "test": 3}  # 24 images: round(16.8), round(3.6), rest
    assert manifest.split_protocol.startswith("image-disjoint 70/15/15 over train+val+test_2016_flickr, seed 3")
    # official membership no longer decides the split
    assert set(table.loc[table["source_file"] == "train", "split"]) != {"train"}


def test_other_languages_and_three_way_dealing(built):
    root, listing = built
    table = _manifest(root, languages=("de", "en", "cs")).table
    assert set(table["language"]) == {"de", "en", "cs"}
    counts = table[table["split"] == "train"]["language"].value_counts()
    assert counts.tolist() == [4, 4, 4]
    expected = _expected_captions(listing, "cs")
    rows = table[table["language"] == "cs"]
    assert rows["caption"].tolist() == [expected[Path(p).name] for p in rows["image_path"]]


def test_image_dir_inside_or_outside_data_dir(tmp_path):
    data, outside = tmp_path / "multi30k", tmp_path / "flickr30k-images"
    make_multi30k_tree(data, {"train": 3, "val": 3, "test_2016_flickr": 3}, image_dir=outside)
    outside_manifest = _manifest(data, image_dir=str(outside))
    assert all((outside / p).is_file() for p in outside_manifest.table["image_path"])
    shutil.move(outside, data / "flickr30k-images")
    inside = _manifest(data, image_dir="flickr30k-images")
    root = Flickr30kMulti().media_root(Flickr30kMultiConfig(data_dir=str(data), image_dir="flickr30k-images"), "image")
    assert root == data / "flickr30k-images" and all((root / p).is_file() for p in inside.table["image_path"])
    assert inside.version() == outside_manifest.version()  # where the images lie is not part of the data


def test_missing_images_keep_their_rows_but_an_empty_image_dir_is_an_error(fresh):
    root, listing = fresh
    (root / "images" / listing["val"][0]).unlink()
    manifest = _manifest(root)
    table = manifest.table
    assert len(table) == 10
    assert table.loc[~table["has_image"], "group"].tolist() == [Path(listing["val"][0]).stem]
    [(row, why)] = Flickr30kMulti().unusable_media(manifest, "image").items()  # masked in the image only
    assert not table["has_image"][row] and why == f"missing: no {listing['val'][0]} in image_dir"
    assert Flickr30kMulti().unusable_media(manifest, "caption") == {}
    for image in (root / "images").iterdir():
        image.unlink()
    with pytest.raises(UserError, match=r"holds none of the 10 listed images"):
        _manifest(root)


def test_version_survives_moving_the_tree_and_a_parquet_round_trip(built, tmp_path):
    root, _ = built
    shutil.copytree(root, tmp_path / "moved")
    manifest = _manifest(root)
    assert _manifest(tmp_path / "moved").version() == manifest.version()
    write_manifest(tmp_path / "m.parquet", manifest)
    assert read_manifest(tmp_path / "m.parquet").version() == manifest.version()


def _misalign(root: Path) -> None:
    path = root / "data/task1/raw/val.fr.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("Une seule ligne.\n")


def _list_twice(root: Path) -> None:
    train = (root / "data/task1/image_splits/train.txt").read_text().splitlines()
    test = root / "data/task1/image_splits/test_2016_flickr.txt"
    lines = test.read_text().splitlines()
    test.write_text("\n".join([train[0], *lines[1:]]) + "\n")


@pytest.mark.parametrize("damage, changes, message", [
    (lambda root: shutil.rmtree(root / "data"), {}, r"expected data/task1/ in .* \(a checkout of"),
    (lambda root: (root / "data/task1/raw/train.fr.gz").unlink(), {}, r"expected the fr captions .*train\.fr\.gz"),
    (lambda root: (root / "data/task1/image_splits/val.txt").unlink(), {}, r"expected the image list .*val\.txt"),
    (_misalign, {}, r"val\.fr\.gz has 1 lines but .*val\.txt lists 3 images"),
    (lambda root: shutil.rmtree(root / "images"), {}, r"expected the Flickr30k images in .*images"),
    (lambda root: None, {"languages": ("en",)}, "two or more distinct codes"),
    (lambda root: None, {"languages": ("en", "xx")}, "two or more distinct codes"),
    (lambda root: None, {"test_file": "val"}, "must differ"),
    (lambda root: None, {"test_file": "test_2017_flickr"}, r"expected the image list .*test_2017_flickr\.txt"),
    (_list_twice, {}, "listed in more than one of the official files; use split=group"),
])
def test_mislaid_trees_raise_one_clear_user_error(fresh, damage, changes, message):
    root, _ = fresh
    damage(root)
    with pytest.raises(UserError, match=message):
        _manifest(root, **changes)


def test_an_image_in_two_files_is_fine_under_the_image_disjoint_split(fresh):
    root, _ = fresh
    _list_twice(root)
    table = _manifest(root, split="group").table
    assert table.groupby("group")["split"].nunique().max() == 1
    assert table["sample_id"].is_unique


def test_missing_data_dir():
    with pytest.raises(UserError, match="flickr30k-multi needs data_dir"):
        Flickr30kMulti().manifest(Flickr30kMultiConfig())
