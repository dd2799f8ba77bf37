import numpy as np
import pytest

from mmpipe.pipeline.datasets.splits import fraction_label, group_split, random_split, stratified_split
from mmpipe.store.errors import UserError

SPLITS = ("train", "val", "test")


def _groups(n_groups: int, sizes=(3, 9)) -> np.ndarray:
    rng = np.random.default_rng(7)
    groups = np.concatenate([[f"g{g:02d}"] * rng.integers(*sizes) for g in range(n_groups)]).astype(object)
    return groups[rng.permutation(len(groups))]


def _split_of_each_group(groups, split) -> dict:
    return {g: set(split[groups == g]) for g in set(groups)}


def test_group_split_never_lets_a_group_span_splits():
    groups = _groups(40)
    split = group_split(groups, 0.7, 0.15, seed=0)
    assert all(len(s) == 1 for s in _split_of_each_group(groups, split).values())
    per_split = {s: len(set(groups[split == s])) for s in SPLITS}
    assert per_split == {"train": 28, "val": 6, "test": 6}  # fractions count groups: round(40·0.7), round(40·0.15)


def test_group_split_is_seeded_and_independent_of_row_order():
    groups = _groups(30)
    first = group_split(groups, 0.7, 0.15, seed=3)
    assert np.array_equal(first, group_split(groups, 0.7, 0.15, seed=3))
    assert not np.array_equal(first, group_split(groups, 0.7, 0.15, seed=4))
    order = np.random.default_rng(0).permutation(len(groups))
    shuffled = group_split(groups[order], 0.7, 0.15, seed=3)
    assert np.array_equal(shuffled, first[order])


@pytest.mark.parametrize("n_groups, val", [(3, 0.15), (4, 0.15), (5, 0.15), (2, 0.0)])
def test_group_split_gives_every_split_a_group_even_when_few(n_groups, val):
    groups = np.array([f"a{i}" for i in range(n_groups) for _ in range(2)], dtype=object)
    split = group_split(groups, 0.7, val, seed=0)
    expected = set(SPLITS) if val > 0 else {"train", "test"}
    assert set(split) == expected


def test_group_split_rejects_too_few_or_missing_groups_and_bad_fractions():
    with pytest.raises(UserError, match="at least 3 groups"):
        group_split(["a", "a", "b"], 0.7, 0.15, seed=0)
    with pytest.raises(UserError, match="needs a group"):
        group_split(["a", None, "b", "c"], 0.7, 0.15, seed=0)
    with pytest.raises(UserError, match="split fractions"):
        group_split(["a", "b", "c"], 0.9, 0.2, seed=0)


def test_stratified_split_keeps_every_class_proportion():
    strata = np.array(["ANG"] * 100 + ["NEU"] * 40 + ["SAD"] * 7, dtype=object)
    split = stratified_split(strata, 0.7, 0.15, seed=0)
    for value, n in (("ANG", 100), ("NEU", 40), ("SAD", 7)):
        rows = split[strata == value]
        n_train, n_val = round(n * 0.7), round(n * 0.15)
        assert [(rows == s).sum() for s in SPLITS] == [n_train, n_val, n - n_train - n_val]


def test_stratified_split_is_seeded_and_random_within_a_class():
    strata = np.array(["a", "b"] * 50, dtype=object)
    first = stratified_split(strata, 0.6, 0.2, seed=1)
    assert np.array_equal(first, stratified_split(strata, 0.6, 0.2, seed=1))
    assert not np.array_equal(first, stratified_split(strata, 0.6, 0.2, seed=2))
    # not simply the first rows of each class
    assert set(first[strata == "a"][:30]) != {"train"}
    with pytest.raises(UserError, match="stratum"):
        stratified_split(["a", None, "b"], 0.6, 0.2, seed=0)


def test_random_split_counts_and_fraction_label():
    split = random_split(20, 0.7, 0.15, seed=0)
    assert [(split == s).sum() for s in SPLITS] == [14, 3, 3]
    assert fraction_label(0.7, 0.15) == "70/15/15"
    assert fraction_label(0.8, 0.0) == "80/0/20"
