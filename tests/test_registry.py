import pytest

from mmpipe.adapters.registry import METHODS
from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.store.errors import UnknownNameError, UserError
from mmpipe.store.registry import Registry


def test_register_get_names():
    registry: Registry[int] = Registry("widget")
    registry.register("b")(2)
    registry.register("a")(1)
    assert registry.get("a") == 1
    assert registry.names() == ["a", "b"]
    assert "a" in registry and "c" not in registry
    assert len(registry) == 2


def test_duplicate_name_raises():
    registry: Registry[int] = Registry("widget")
    registry.register("a")(1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(2)
    assert registry.get("a") == 1


def test_unknown_name_lists_valid_names():
    registry: Registry[int] = Registry("widget")
    registry.register("alpha")(1)
    registry.register("beta")(2)
    with pytest.raises(UnknownNameError) as info:
        registry.get("gamma")
    assert isinstance(info.value, UserError)
    assert str(info.value) == "unknown widget 'gamma'; valid: alpha, beta"


@pytest.mark.parametrize("registry", [DATASETS, ENCODERS, METHODS], ids=lambda r: r.kind)
def test_project_registries_reject_unknown(registry):
    with pytest.raises(UnknownNameError, match=f"unknown {registry.kind}"):
        registry.get("no-such-thing")
