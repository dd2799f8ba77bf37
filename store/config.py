"""Frozen-dataclass configs: `key=value` overrides parsed by field type (never `eval`), JSON or
YAML config files (by extension: .yaml/.yml is YAML, anything else JSON) checked with the same
strict value types (YAML is read with PyYAML's safe loader: a YAML ``1`` is an int, ``1.0`` a float,
``"1"`` a string, a list a tuple), and every value checked against the range its
field declares (`mmpipe.store.ranges`) before the config is built.

A refusal is one line naming where the value came from, the field and its valid range, e.g.
``--set lr=-1: lr must be > 0 (a finite float)``; the config is never half-applied.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import textwrap
import tokenize
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
    """A field of a JSON or YAML config file; values as JSON types (a string quoted, so "0.1" is not 0.1)."""
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


YAML_SUFFIXES = (".yaml", ".yml")


def load_config_file(config: C, path: str) -> C:
    """Apply a JSON or YAML (``.yaml``/``.yml``) file of ``{field: value}`` on top of ``config``."""
    kind = "YAML" if path.lower().endswith(YAML_SUFFIXES) else "JSON"
    try:
        with open(path, encoding="utf-8") as handle:
            data = _read_yaml(handle, path) if kind == "YAML" else json.load(handle)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a directory; give a {kind} file of field: value") from None
    except PermissionError:
        raise UserError(f"config file {path} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text; give a {kind} file of field: value") from None
    except json.JSONDecodeError as err:
        raise UserError(f"config file {path} is not valid JSON: {err}") from None
    except OSError as err:
        raise UserError(f"config file {path} cannot be read: {err.strerror or err}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a {'YAML mapping' if kind == 'YAML' else 'JSON object'} of "
                        "field: value")
    bad_key = next((key for key in data if not isinstance(key, str)), None)
    if bad_key is not None:
        raise UserError(f"config file {path}: key {bad_key!r} is not a field name")
    return apply_overrides(config, data, label=file_label(path))


# YAML 1.2's floats: PyYAML (YAML 1.1) reads ``1e-3`` (no dot) as a string; as in JSON it is a float
_YAML_EXPONENT_FLOAT = r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"


def _read_yaml(handle: typing.TextIO, path: str) -> Any:
    """One YAML document, safe-loaded (plain data only: no tags that build Python objects). A
    float that YAML spells ``.nan``/``.inf`` is kept as such and refused by the field's range."""
    import re

    import yaml  # imported only for a YAML file

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_YAML_EXPONENT_FLOAT), list("-+0123456789"))
    try:
        return yaml.load(handle, Loader=Loader)  # noqa: S506  (a SafeLoader: plain data only)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"config file {path} is not valid YAML{line}: {problem}") from None


# The meaning of a knob many configs share, where the field itself carries no comment (one place
# for what "lr" means; a field's own comment says more and wins).
SHARED_MEANINGS = {
    "device": "where to train: auto (a GPU when there is one), cpu, cuda or cuda:N",
    "lr": "learning rate of the optimiser",
    "weight_decay": "L2 weight decay of the optimiser",
    "patience": "epochs without a relative improvement of the validation loss before a stage stops",
    "min_rel_improvement": "smallest relative drop of the validation loss that counts as an improvement",
    "min_improvement": "smallest drop of the validation loss that counts as an improvement",
    "max_epochs": "epoch cap of training",
    "hidden": "width of the hidden layers",
    "temperature": "InfoNCE temperature: lower sharpens the softmax over the batch",
    "standardize": "standardise each input with its train mean and standard deviation first",
    "activation": "non-linearity of the hidden layers",
    "dropout": "dropout probability",
}


def field_meanings(cls: type) -> dict[str, str]:
    """Each field of the config dataclass ``cls`` → what it means: the comment block right above
    the field and its trailing comment, as written in the class source (a subclass's comment
    wins); else `SHARED_MEANINGS`; else "". Read from the source, so a comment is one source."""
    meanings: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        comments = {token.start[0]: token.string.lstrip("#").strip()
                    for token in tokenize.generate_tokens(io.StringIO(source).readline)
                    if token.type == tokenize.COMMENT}
        node = ast.parse(source).body[0]
        for statement in getattr(node, "body", []):
            if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
                continue
            above, line = [], statement.lineno - 1
            while line in comments and lines[line - 1].lstrip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            trailing = [comments[n] for n in range(statement.lineno, (statement.end_lineno or statement.lineno) + 1)
                        if n in comments and not lines[n - 1].lstrip().startswith("#")]
            meaning = " ".join(above + trailing)
            if meaning or statement.target.id not in meanings:
                meanings[statement.target.id] = meaning
    return {f.name: _joined(SHARED_MEANINGS.get(f.name, ""), meanings.get(f.name, "")) for f in dataclasses.fields(cls)}


def _joined(shared: str, own: str) -> str:
    return f"{shared} ({own})" if shared and own else shared or own


def to_dict(config: Any) -> dict[str, Any]:
    """The fully resolved config (defaults included) as plain JSON-able data."""
    return dataclasses.asdict(config)
