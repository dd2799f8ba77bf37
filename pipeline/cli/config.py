"""`mmpipe config METHOD`: every config field of a method with its type and range, its default and
its meaning (the comment beside the field in the method's source, `store.config.field_meanings`)."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mmpipe.pipeline.cli.app import app, out, user_errors
from mmpipe.pipeline.cli.catalog import completer
from mmpipe.store.config import field_meanings
from mmpipe.store.ranges import field_specs, show


@app.command("config", epilog="Example: mmpipe config multiloreft --json")
@user_errors
def config_command(
    method: Annotated[str, typer.Argument(help="Adapter method (see `mmpipe list methods`).",
                                          autocompletion=completer("methods"))],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of a table.")] = False,
) -> None:
    """Every config field of a method: type and valid range, default, meaning. Set one with `fit --set
    FIELD=VALUE` or a --config file; pipeline/defaults.py may change a default for a dataset.

    JSON: [{"field", "type", "default", "meaning"}, ...] in declaration order (default as JSON)."""
    from mmpipe.adapters import METHODS  # the plug-ins import torch: only in this command

    cls = METHODS.get(method).Config
    specs, meanings, defaults = field_specs(cls), field_meanings(cls), cls()
    fields = [{"field": f.name, "type": specs[f.name].expected(), "default": getattr(defaults, f.name),
               "meaning": meanings[f.name]} for f in dataclasses.fields(cls)]
    if as_json:
        typer.echo(json.dumps(fields, indent=1, ensure_ascii=False))
        return
    table = Table(title=Text(f"{method} config"), title_justify="left")
    for column in ("field", "type", "default", "meaning"):
        table.add_column(column)
    for field in fields:
        table.add_row(Text(field["field"]), Text(field["type"]), Text(show(field["default"])),
                      Text(field["meaning"] or "(no comment in the source)"))
    out.print(table)
