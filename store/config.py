"""Frozen-dataclass configs: `key=value` overrides parsed by field type (never `eval`)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

from mmpipe.store.errors import UserError

C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_scalar(text: str, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if text.lower() in {"none", "null"} and len(options) < len(typing.get_args(kind)):
            return None
        if len(options) == 1:
            return _parse_scalar(text, options[0], key)
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        for value in allowed:
            if str(value) == text:
                return value
        raise UserError(f"{key}: {text!r} is not one of {', '.join(map(str, allowed))}")
    if origin is tuple:
        args = typing.get_args(kind)
        element = args[0] if args else str
        parts = [p for p in text.split(",") if p.strip()]
        return tuple(_parse_scalar(p.strip(), element, key) for p in parts)
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
        raise UserError(f"{key}: cannot read {text!r} as {kind.__name__}") from None
    raise UserError(f"{key}: fields of type {kind} cannot be set from the command line")


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def apply_overrides(config: C, overrides: dict[str, Any] | list[str] | tuple[str, ...]) -> C:
    """Return a copy of ``config`` with overrides applied.

    ``overrides`` is either a list of ``"key=value"`` strings (parsed by the field's declared type)
    or a dict of already-typed values (e.g. from a JSON config file). Unknown keys raise a
    UserError that lists the valid keys.
    """
    types_ = field_types(type(config))
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"override {item!r} is not of the form key=value")
            items.append((key.strip(), value.strip()))
    changes: dict[str, Any] = {}
    for key, value in items:
        if key not in types_:
            raise UserError(f"unknown config key {key!r}; valid: {', '.join(sorted(types_))}")
        if isinstance(value, str) and types_[key] is not str:
            value = _parse_scalar(value, types_[key], key)
        elif isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return dataclasses.replace(config, **changes)


def load_config_file(config: C, path: str) -> C:
    """Apply a JSON file of ``{field: value}`` on top of ``config``."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"config file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a JSON object of field: value")
    return apply_overrides(config, data)


def to_dict(config: Any) -> dict[str, Any]:
    """The fully resolved config (defaults included) as plain JSON-able data."""
    return dataclasses.asdict(config)
