"""Valid ranges of config fields, declared beside each field, and the one check that reads them.

A field of a frozen config dataclass names its range in its annotation::

    lr: Annotated[float, POSITIVE] = 1e-3
    rank: Annotated[int | None, between(1, MAX_WIDTH)] = None                # None: auto
    fixed_weights: Annotated[tuple[float, ...], NON_NEGATIVE, Length(3)] = (1.0, 1.0, 1.0)

A range applies to the value, or to every element of a tuple; `Length` to the tuple itself; None
passes wherever the type is optional (``X | None``: "auto"). Types are strict: a bool is not an
int, an int is a float (never the other way), a string is neither, a tuple's elements are checked
one by one. Every float must be finite: NaN and ±inf are refused everywhere (no range admits them).

A config class derives from `Checked`: constructing it (or ``dataclasses.replace``) checks every
field, then its own `Checked.check` (relations between fields, e.g. split fractions summing below
one), so an out-of-range config cannot exist, whichever way it was built. A problem is one line
naming the field and its valid range, ``lr must be > 0 (a finite float)``; the caller adds where
the value came from (``--set lr=-1: ...``, `mmpipe.store.config`). ``tests/test_config_ranges.py``
requires a range on every numeric field of every registered config and every default inside it.

`MIN_SPLIT_ROWS` is the fewest rows a train, val or test split may hold for any command.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from mmpipe.store.errors import UserError

SEED_MAX = 2**32 - 1  # numpy's legacy seeding takes 32 bits; every seed of the project fits in it
MAX_WIDTH = 2**16  # widest layer or subspace a config may ask for (the encoders' widths are ~10³)
MAX_EPOCHS = 1_000_000
MAX_ROWS = 10_000_000  # largest simulation; 10⁷ × 80 float32 views are 3.2 GB
# The fewest rows in any split: a standard deviation, HSIC's median bandwidth and an InfoNCE over
# negatives all need two rows (a probe metric that needs more, a silhouette, is left out below it).
MIN_SPLIT_ROWS = 2


class Range:
    """A set of valid values for a scalar (or for each element of a tuple)."""

    def holds(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Between(Range):
    """low ≤ value ≤ high (an open end: <); None: unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: Any) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.low is None and self.high is None:
            return ""  # no bound: the type (a finite float) says it all
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return (f"in {'(' if self.low_open else '['}{_number(self.low)}, "
                f"{_number(self.high)}{')' if self.high_open else ']'}")


def between(low: float, high: float) -> Between:
    return Between(low, high)


def at_least(low: float) -> Between:
    return Between(low)


POSITIVE = Between(0, low_open=True)
NON_NEGATIVE = Between(0)
FINITE = Between()  # any finite float
FRACTION = Between(0, 1, low_open=True, high_open=True)  # a share of rows strictly inside (0, 1)
SHARE = Between(0, 1, high_open=True)  # [0, 1): a share that may be empty (e.g. val)
SEED = Between(0, SEED_MAX)
WIDTH = Between(1, MAX_WIDTH)
EPOCHS = Between(1, MAX_EPOCHS)


@dataclass(frozen=True)
class DeviceName(Range):
    """A device a config can name: auto (CUDA when available, else the CPU), cpu, cuda, cuda:N.
    Whether it exists on this machine is checked where it is resolved (before any work)."""

    def holds(self, value: Any) -> bool:
        return re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", value) is not None

    def describe(self) -> str:
        return "one of auto, cpu, cuda, cuda:N"


DEVICE = DeviceName()


@dataclass(frozen=True)
class Length:
    """How many elements a tuple field holds: exactly ``low`` (``high`` = ``low``) or a span."""

    low: int
    high: int | None = -1  # -1: the same as low; None: no upper bound

    @property
    def top(self) -> int | None:
        return self.low if self.high == -1 else self.high

    def holds(self, n: int) -> bool:
        return n >= self.low and (self.top is None or n <= self.top)

    def describe(self) -> str:
        if self.top == self.low:
            return f"{_count(self.low)} value{'s' if self.low != 1 else ''}"
        if self.top is None:
            return f"{_count(self.low)} or more values"
        return f"{_count(self.low)} to {_count(self.top)} values"


def _count(n: int) -> str:
    return ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")[n] if n < 10 else str(n)


@dataclass(frozen=True)
class FieldSpec:
    """One config field: its type (Optional stripped) and the constraints its annotation names."""

    name: str
    kind: Any
    optional: bool
    ranges: tuple[Range, ...]
    length: Length | None

    @property
    def numeric(self) -> bool:
        element = _element(self.kind)
        return element in (int, float) if element is not None else self.kind in (int, float)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid here (one line), or None."""
        if value is None and self.optional:
            return None
        if _valid(self.kind, value, self.ranges, self.length):
            return None
        return f"{self.name} must be {self.expected()}"

    def expected(self) -> str:
        """The valid values in words: ``> 0 (a finite float)``, ``3 values, each >= 0 (finite floats)``."""
        text = _expected(self.kind, self.ranges, self.length)
        return f"{text}, or none" if self.optional else text


def _element(kind: Any) -> Any:
    """The element type of a homogeneous tuple type; None for anything else."""
    if typing.get_origin(kind) is not tuple:
        return None
    args = [a for a in typing.get_args(kind) if a is not Ellipsis]
    return args[0] if args and all(a == args[0] for a in args) else None


def _scalar_ok(kind: Any, value: Any) -> bool:
    if typing.get_origin(kind) is typing.Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(kind))
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    return False


def _valid(kind: Any, value: Any, ranges: tuple[Range, ...], length: Length | None) -> bool:
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, tuple):
            return False
        args = typing.get_args(kind)
        fixed = Ellipsis not in args
        if fixed and len(value) != len(args):
            return False
        if length is not None and not length.holds(len(value)):
            return False
        kinds = args if fixed else (args[0],) * len(value)
        return all(_valid(k, v, ranges, None) for k, v in zip(kinds, value, strict=True))
    return _scalar_ok(kind, value) and all(r.holds(value) for r in ranges)


_TYPE_WORDS = {float: ("a finite float", "finite floats"), int: ("an integer", "integers"),
               str: ("a string", "strings"), bool: ("true or false", "true or false")}


def _expected(kind: Any, ranges: tuple[Range, ...], length: Length | None) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        count = length or (Length(len(args)) if Ellipsis not in args else None)
        one, many = _TYPE_WORDS.get(args[0], (str(args[0]), str(args[0])))
        bounds = " and ".join(filter(None, (r.describe() for r in ranges)))
        return f"{count.describe() if count else 'a list of values'}, " + (f"each {bounds} ({many})" if bounds
                                                                           else f"each {one}")
    words = _TYPE_WORDS.get(kind, (str(kind), str(kind)))[0]
    bounds = " and ".join(filter(None, (r.describe() for r in ranges)))
    if bounds and kind is str:
        return bounds  # a named set of strings (a device)
    return f"{bounds} ({words})" if bounds else words


def _split_optional(kind: Any) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(options) == 1 and len(options) < len(typing.get_args(kind)):
            return options[0], True
    return kind, False


@functools.cache
def field_specs(cls: type) -> dict[str, FieldSpec]:
    """Every field of the config dataclass ``cls`` with the constraints its annotation declares."""
    hints = typing.get_type_hints(cls, include_extras=True)
    specs = {}
    for f in dataclasses.fields(cls):
        hint, extras = hints[f.name], ()
        if typing.get_origin(hint) is typing.Annotated:
            hint, *extras = typing.get_args(hint)
        kind, optional = _split_optional(hint)
        specs[f.name] = FieldSpec(f.name, kind, optional, tuple(e for e in extras if isinstance(e, Range)),
                                  next((e for e in extras if isinstance(e, Length)), None))
    return specs


def show(value: Any) -> str:
    """A value as the user would have typed it (strings quoted, tuples as lists)."""
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple | list):
        return ",".join(show(v) for v in value)
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "none"
    return str(value)


class Checked:
    """Base of every config dataclass: an instance is checked field by field when it is built.

    A subclass states relations between its fields in `check` (raise UserError, one line)."""

    def __post_init__(self) -> None:
        for spec in field_specs(type(self)).values():
            value = getattr(self, spec.name)
            problem = spec.problem(value)
            if problem is not None:
                raise UserError(f"{spec.name}={show(value)}: {problem}")
        self.check()

    def check(self) -> None:
        """Relations between fields that no single range states; nothing by default."""


def check_split_rows(counts: dict[str, int], what: str, fix: str) -> None:
    """Refuse (one line) a split with fewer than `MIN_SPLIT_ROWS` rows, naming it and its size."""
    for split, rows in counts.items():
        if rows < MIN_SPLIT_ROWS:
            raise UserError(f"{what}: the {split} split has {rows} row{'s' if rows != 1 else ''}, fewer than the "
                            f"{MIN_SPLIT_ROWS} every split needs; {fix}")
