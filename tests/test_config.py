import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated, Literal

import pytest

from mmpipe.store.config import apply_overrides, load_config_file
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import (
    DEVICE,
    FRACTION,
    MIN_SPLIT_ROWS,
    NON_NEGATIVE,
    POSITIVE,
    Checked,
    Length,
    between,
    check_split_rows,
    field_specs,
)


@dataclass(frozen=True)
class Cfg:
    n: int = 10
    lr: float = 0.1
    staged: bool = True
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    dims: tuple[int, ...] = (1, 2)
    cap: int | None = None


def test_overrides_parsed_by_field_type():
    cfg = apply_overrides(Cfg(), ["n=5", "lr=1e-4", "staged=false", "name=abc", "mode=b", "dims=3,4,5", "cap=7"])
    assert cfg == Cfg(n=5, lr=1e-4, staged=False, name="abc", mode="b", dims=(3, 4, 5), cap=7)
    assert apply_overrides(cfg, ["cap=none"]).cap is None


def test_override_never_evaluates_code():
    with pytest.raises(UserError, match="cannot read"):
        apply_overrides(Cfg(), ["n=__import__('os').getpid()"])


@pytest.mark.parametrize("item, message", [("bogus=1", "unknown config key 'bogus'; valid: cap, dims, lr, mode, n"),
                                           ("n=abc", "cannot read 'abc' as int"),
                                           ("mode=c", "not one of a, b"),
                                           ("staged=maybe", "cannot read"),
                                           ("n", "not of the form key=value")])
def test_bad_overrides_raise_user_errors(item, message):
    with pytest.raises(UserError, match=message):
        apply_overrides(Cfg(), [item])


def test_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"n": 3, "dims": [7]}')
    assert load_config_file(Cfg(), str(path)) == Cfg(n=3, dims=(7,))
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_config_file(Cfg(), str(path))
    with pytest.raises(UserError, match="not found"):
        load_config_file(Cfg(), str(tmp_path / "missing.json"))


# -- ranges declared beside the fields (store/ranges.py) -------------------------------------------
@dataclass(frozen=True)
class Ranged(Checked):
    lr: Annotated[float, POSITIVE] = 0.1
    decay: Annotated[float, NON_NEGATIVE] = 0.0
    share: Annotated[float, FRACTION] = 0.5
    epochs: Annotated[int, between(1, 10)] = 3
    rank: Annotated[int | None, between(1, 64)] = None
    weights: Annotated[tuple[float, ...], NON_NEGATIVE, Length(3)] = (1.0, 1.0, 1.0)
    pair: Annotated[tuple[float, float], POSITIVE] = (1.0, 2.0)
    device: Annotated[str, DEVICE] = "auto"
    staged: bool = True
    mode: Literal["a", "b"] = "a"

    def check(self) -> None:
        if self.decay > self.lr:
            raise UserError(f"decay must be <= lr, not {self.decay} > {self.lr}")


@pytest.mark.parametrize("item, message", [
    ("lr=-1", "--set lr=-1: lr must be > 0 (a finite float)"),
    ("lr=0", "--set lr=0: lr must be > 0 (a finite float)"),
    ("lr=nan", "--set lr=nan: lr must be > 0 (a finite float)"),
    ("lr=inf", "--set lr=inf: lr must be > 0 (a finite float)"),
    ("lr=1e999", "--set lr=1e999: lr must be > 0 (a finite float)"),
    ("decay=-0.5", "--set decay=-0.5: decay must be >= 0 (a finite float)"),
    ("share=1", "--set share=1: share must be in (0, 1) (a finite float)"),
    ("epochs=0", "--set epochs=0: epochs must be in [1, 10] (an integer)"),
    ("epochs=11", "--set epochs=11: epochs must be in [1, 10] (an integer)"),
    ("rank=0", "--set rank=0: rank must be in [1, 64] (an integer), or none"),
    ("weights=1,2", "--set weights=1,2: weights must be three values, each >= 0 (finite floats)"),
    ("weights=1,-2,3", "--set weights=1,-2,3: weights must be three values, each >= 0 (finite floats)"),
    ("pair=1", "--set pair=1: 2 comma-separated values are needed, not 1"),
    ("pair=1,0", "--set pair=1,0: pair must be two values, each > 0 (finite floats)"),
    ("device=tpu9", "--set device=tpu9: device must be one of auto, cpu, cuda, cuda:N"),
    ("epochs=2.5", "--set epochs=2.5: cannot read '2.5' as int"),
])
def test_set_outside_the_range_names_where_the_field_and_the_range(item, message):
    with pytest.raises(UserError) as caught:
        apply_overrides(Ranged(), [item])
    assert str(caught.value) == message


def test_values_inside_the_range_and_none_for_optional_fields_pass():
    cfg = apply_overrides(Ranged(), ["lr=1e-5", "decay=0", "share=0.25", "epochs=10", "rank=64", "weights=0,0,2",
                                     "pair=0.5,3", "device=cuda:1"])
    assert (cfg.lr, cfg.epochs, cfg.rank, cfg.weights, cfg.device) == (1e-5, 10, 64, (0.0, 0.0, 2.0), "cuda:1")
    assert apply_overrides(cfg, ["rank=none"]).rank is None


def test_a_relation_between_fields_is_checked_on_the_result():
    with pytest.raises(UserError, match=r"^--set decay=1: decay must be <= lr, not 1.0 > 0.1$"):
        apply_overrides(Ranged(), ["decay=1"])
    assert apply_overrides(Ranged(), ["lr=2", "decay=1"]).decay == 1.0  # the result is checked, not each step


def test_construction_and_replace_check_every_field():
    with pytest.raises(UserError, match=r"^lr=-1: lr must be > 0"):
        Ranged(lr=-1.0)
    with pytest.raises(UserError, match=r"^epochs=true: epochs must be in \[1, 10\] \(an integer\)"):
        dataclasses.replace(Ranged(), epochs=True)  # a bool is not an int
    with pytest.raises(UserError, match="decay must be <= lr"):
        Ranged(decay=0.5)


@pytest.mark.parametrize("data, message", [
    ({"lr": "0.1"}, "lr='0.1': lr must be > 0 (a finite float)"),  # a string is not a float
    ({"epochs": True}, "epochs=true: epochs must be in [1, 10] (an integer)"),  # a bool is not an int
    ({"epochs": 2.0}, "epochs=2: epochs must be in [1, 10] (an integer)"),  # a float is not an int
    ({"staged": 1}, "staged=1: staged must be true or false"),
    ({"lr": None}, "lr=none: lr must be > 0 (a finite float)"),  # null only for optional fields
    ({"weights": [1, "a", 1]}, "weights=1,'a',1: weights must be three values, each >= 0 (finite floats)"),
    ({"mode": "c"}, "mode='c': mode must be one of a, b"),
    ({"device": {"a": 1}}, "device={'a': 1}: device must be one of auto, cpu, cuda, cuda:N"),
])
def test_config_file_values_are_type_checked_strictly(tmp_path, data, message):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as caught:
        load_config_file(Ranged(), str(path))
    assert str(caught.value) == f"--config {path}: {message}"


def test_config_file_json_values_of_the_right_type_apply(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"lr": 1, "rank": null, "weights": [0, 1, 2.5], "staged": false}')
    cfg = load_config_file(Ranged(rank=4), str(path))  # an int is a float; null resets an optional field
    assert (cfg.lr, cfg.rank, cfg.weights, cfg.staged) == (1, None, (0, 1, 2.5), False)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "is not UTF-8 text"),
    (lambda p: p.write_text("[1, 2]"), "must hold a JSON object"),
    (lambda p: p.write_text('{"lr": NaN}'), "lr=nan: lr must be > 0"),
])
def test_config_file_that_is_not_a_json_object_is_one_line(tmp_path, make, message):
    path = tmp_path / "c.json"
    make(path)
    with pytest.raises(UserError) as caught:
        load_config_file(Ranged(), str(path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_every_numeric_field_needs_a_declared_range_to_be_described():
    specs = field_specs(Ranged)
    assert specs["lr"].ranges == (POSITIVE,) and specs["rank"].optional and specs["weights"].length == Length(3)
    assert specs["staged"].numeric is False and specs["weights"].numeric and specs["pair"].numeric
    assert field_specs(Cfg)["n"].ranges == ()  # an unranged field is visible (tests/test_config_ranges.py)


def test_split_rows_below_the_minimum_name_the_split_and_its_size():
    with pytest.raises(UserError, match=rf"^sim: the val split has 1 row, fewer than the {MIN_SPLIT_ROWS} every split "
                                        r"needs; more rows$"):
        check_split_rows({"train": 10, "val": 1, "test": 5}, "sim", "more rows")
    check_split_rows({"train": MIN_SPLIT_ROWS, "val": MIN_SPLIT_ROWS}, "sim", "")
