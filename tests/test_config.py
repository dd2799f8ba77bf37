from dataclasses import dataclass
from typing import Literal

import pytest

from mmpipe.store.config import apply_overrides, load_config_file
from mmpipe.store.errors import UserError


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
