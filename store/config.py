"""Frozen-dataclass configs: `key=value` overrides parsed by field type (never `eval`), JSON
config files checked with strict value types, and every value checked against the range its
field declares (`mmpipe.store.ranges`) before the config is built.

A refusal is one line naming where the value came from, the field and its valid range, e.g.
``--set lr=-1: lr must be > 0 (a finite float)``; the config is never half-applied.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from mmpipe.store.errors import UserError
from mmpipe.store.ranges import field_specs, show

C = TypeVar("C")
Label = Callable[[str, Any], str]  # (field, value as given) -> where the value came from, for messages

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def set_label(key: str, value: Any) -> str:
    return f"--set {key}={value}"


def option_label(key: str, value: Any) -> str:
    """A command-line option named after the field (``n`` → ``--n 6``)."""
    return f"--{key.replace('_', '-')} {value if isinstance(value, str) else show(value)}"


def file_label(path: str) -> Label:
    """A field of a JSON config file; values as JSON types (a string quoted, so "0.1" is not 0.1)."""
    return lambda key, value: f"--config {path}: {key}={show(value)}"


def _parse_scalar(text: str, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if text.lower() in {"none", "null"} and len(options) < len(typing.get_args(kind)):
            return None
        if len(options) == 1:
            return _parse_scalar(text, options[0])
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        for value in allowed:
            if str(value) == text:
                return value
        raise UserError(f"{text!r} is not one of {', '.join(map(str, allowed))}")
    if origin is tuple:
        args = typing.get_args(kind)
        parts = [p.strip() for p in text.split(",") if p.strip()]
        kinds = (args[0],) * len(parts) if not args or args[-1] is Ellipsis else args
        if len(kinds) != len(parts):
            raise UserError(f"{len(kinds)} comma-separated values are needed, not {len(parts)}")
        return tuple(_parse_scalar(p, k) for p, k in zip(parts, kinds, strict=True))
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
    except ValueError:
        raise UserError(f"cannot read {text!r} as {kind.__name__}") from None
    raise UserError(f"fields of type {kind} cannot be set from the command line")


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _from_json(value: Any) -> Any:
    """JSON arrays become tuples (every sequence field is a tuple); the type check follows."""
    return tuple(_from_json(v) for v in value) if isinstance(value, list) else value


def apply_overrides(config: C, overrides: dict[str, Any] | list[str] | tuple[str, ...],
                    label: Label = set_label) -> C:
    """Return a copy of ``config`` with overrides applied, every value checked first.

    ``overrides`` is either a list of ``"key=value"`` strings (parsed by the field's declared type)
    or a dict of already-typed values (e.g. from a JSON config file: types are checked strictly,
    never converted). Unknown keys raise a UserError that lists the valid keys; a value outside
    its field's range raises one naming ``label(key, value)``, the field and the range; relations
    between fields (the config's own check) are checked on the result.
    """
    types_ = field_types(type(config))
    specs = field_specs(type(config))
    if isinstance(overrides, dict):
        items = [(key, value, _from_json(value)) for key, value in overrides.items()]
    else:
        items = []
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"override {item!r} is not of the form key=value")
            items.append((key.strip(), value.strip(), value.strip()))
    changes: dict[str, Any] = {}
    labels = []
    for key, given, value in items:
        if key not in types_:
            raise UserError(f"unknown config key {key!r}; valid: {', '.join(sorted(types_))}")
        where = label(key, given)
        if isinstance(value, str) and not isinstance(overrides, dict):
            try:
                value = _parse_scalar(value, types_[key])
            except UserError as error:
                raise UserError(f"{where}: {error}") from None
        problem = specs[key].problem(value)
        if problem is not None:
            raise UserError(f"{where}: {problem}")
        changes[key] = value
        labels.append(where)
    try:
        return dataclasses.replace(config, **changes)
    except UserError as error:  # a relation between fields (each field alone was checked above)
        raise UserError(f"{', '.join(labels)}: {error}") from None


def load_config_file(config: C, path: str) -> C:
    """Apply a JSON file of ``{field: value}`` on top of ``config``."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a directory; give a JSON file of field: value") from None
    except PermissionError:
        raise UserError(f"config file {path} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text; give a JSON file of field: value") from None
    except json.JSONDecodeError as err:
        raise UserError(f"config file {path} is not valid JSON: {err}") from None
    except OSError as err:
        raise UserError(f"config file {path} cannot be read: {err.strerror or err}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a JSON object of field: value")
    return apply_overrides(config, data, label=file_label(path))


def to_dict(config: Any) -> dict[str, Any]:
    """The fully resolved config (defaults included) as plain JSON-able data."""
    return dataclasses.asdict(config)
