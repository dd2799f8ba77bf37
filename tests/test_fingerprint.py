import dataclasses

import pytest

from mmpipe.store.fingerprint import (
    CACHE_VERSION,
    FingerprintError,
    differing_fields,
    fingerprint,
    key_material,
)


@dataclasses.dataclass(frozen=True)
class Cfg:
    rank: int = 10
    lr: float = 1e-3
    layers: tuple[int, ...] = (12,)
    device: str = "cpu"
    batch_size: int = 256
    num_workers: int = 4


def test_same_config_same_key_regardless_of_key_order():
    assert fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == fingerprint({"b": {"d": 3, "c": 2}, "a": 1})
    assert fingerprint(Cfg()) == fingerprint(dataclasses.asdict(Cfg()))


@pytest.mark.parametrize("change", [{"rank": 11}, {"lr": 2e-3}, {"layers": (11,)}, {"layers": (12, 6)}])
def test_result_affecting_field_changes_key(change):
    assert fingerprint(dataclasses.replace(Cfg(), **change)) != fingerprint(Cfg())


@pytest.mark.parametrize("change", [{"device": "cuda"}, {"batch_size": 8}, {"num_workers": 0}])
def test_speed_only_fields_do_not_change_key(change):
    assert fingerprint(dataclasses.replace(Cfg(), **change)) == fingerprint(Cfg())


def test_int_and_float_are_distinct_and_cache_version_is_included():
    assert fingerprint({"x": 1}) != fingerprint({"x": 1.0})
    assert key_material({"x": 1})["cache_version"] == CACHE_VERSION


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": object()}, {"x": b"bytes"}, {1: "non-string key"},
                                 {"x": {3, 4}}])
def test_non_json_values_raise(bad):
    with pytest.raises(FingerprintError):
        fingerprint(bad)


def test_differing_fields_names_nested_paths():
    stored = {"a": 1, "enc": {"rev": "x", "dim": 768}, "gone": 1}
    wanted = {"a": 1, "enc": {"rev": "y", "dim": 768}, "new": 2}
    assert differing_fields(stored, wanted) == ["enc.rev", "gone", "new"]
