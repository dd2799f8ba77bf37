"""The `mmpipe` command line (Typer), one module per command group. The only package that
imports every layer; `app` holds the commands, `main` runs them.
"""

from mmpipe.pipeline.cli import data, fitting, reproduce, results, verify  # noqa: F401  (register the commands)
from mmpipe.pipeline.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
