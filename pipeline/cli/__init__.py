"""The `mmpipe` command line (Typer), one module per command group. The only package that
imports every layer; `app` holds the commands, `main` runs them.
"""

import signal

from mmpipe.pipeline.cli import (  # noqa: F401  (register the commands)
    config,
    data,
    export,
    fitting,
    ingest,
    reproduce,
    results,
    stress,
    verify,
)
from mmpipe.pipeline.cli.app import app


def main() -> None:
    # a supervisor's SIGTERM stops a command the way Ctrl-C does: its cleanup runs (worker
    # processes stopped, temporary files removed) and one line is printed, exit code 130
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    app()


__all__ = ["app", "main"]
