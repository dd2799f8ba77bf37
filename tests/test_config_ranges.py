"""Every config of every registered method, dataset and encoder (and the extraction and probe
configs) declares a range on each numeric field, its defaults lie inside, and a value outside is
refused in one line naming the field and the range: a new plug-in cannot ship an unchecked field."""

import dataclasses
import math
import typing

import pytest

from mmpipe.adapters import METHODS
from mmpipe.evaluate.probes import ProbeConfig
from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.extract import ExtractOptions
from mmpipe.store.config import apply_overrides
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import Between, Checked, field_specs

CONFIGS = {
    **{f"method {name}": METHODS.get(name).Config for name in METHODS.names()},
    **{f"dataset {name}": DATASETS.get(name).Config for name in DATASETS.names()},
    **{f"encoder {name}": ENCODERS.get(name).Options for name in ENCODERS.names()},
    "ExtractOptions": ExtractOptions,
    "ProbeConfig": ProbeConfig,
}
FIELDS = [(owner, name) for owner, cls in CONFIGS.items() for name in field_specs(cls)]


@pytest.mark.parametrize("owner", list(CONFIGS))
def test_every_config_is_checked_and_its_defaults_are_valid(owner):
    cls = CONFIGS[owner]
    assert issubclass(cls, Checked) and dataclasses.is_dataclass(cls), f"{owner}: derive the config from Checked"
    defaults = cls()  # construction checks every field and the relations between them
    for spec in field_specs(cls).values():
        assert spec.problem(getattr(defaults, spec.name)) is None, (owner, spec.name)


@pytest.mark.parametrize("owner, name", FIELDS)
def test_every_numeric_field_declares_a_range(owner, name):
    spec = field_specs(CONFIGS[owner])[name]
    if spec.numeric:
        assert spec.ranges, f"{owner}.{name}: declare its range, e.g. Annotated[{spec.kind}, POSITIVE]"


def _outside(spec) -> list:
    """Values just outside the field's declared bounds, plus NaN/inf and a wrong type."""
    element = typing.get_args(spec.kind)[0] if typing.get_origin(spec.kind) is tuple else spec.kind
    bounds = [r for r in spec.ranges if isinstance(r, Between)]
    step = 1 if element is int else 1e-9
    values = ["text"]
    for r in bounds:
        if r.low is not None:
            values.append(r.low if r.low_open else r.low - step)
        if r.high is not None:
            values.append(r.high if r.high_open else r.high + step)
    if element is float:
        values += [math.nan, math.inf, -math.inf, True]
    if element is int:
        values += [1.5, True]
    if typing.get_origin(spec.kind) is tuple:
        args = typing.get_args(spec.kind)
        length = len(args) if Ellipsis not in args else 3  # 3: a length every variable tuple field accepts
        return [(v,) * length for v in values]
    return values


NUMERIC = [(owner, name) for owner, name in FIELDS if field_specs(CONFIGS[owner])[name].numeric]


@pytest.mark.parametrize("owner, name", NUMERIC)
def test_a_value_outside_the_range_is_refused_in_one_line(owner, name):
    cls = CONFIGS[owner]
    spec = field_specs(cls)[name]
    for value in _outside(spec):
        with pytest.raises(UserError) as caught:
            apply_overrides(cls(), {name: list(value) if isinstance(value, tuple) else value})
        message = str(caught.value)
        assert f"{name} must be " in message and "\n" not in message, (value, message)
