"""The `mmpipe` application object and what every command group shares: the consoles, the store
option, the one-line handling of user errors, and small option parsers.

User errors (`mmpipe.store.errors.UserError`: unknown names, missing paths, a directory that is
not a store) print one line on stderr and exit 2 without a traceback; nothing stored is touched.
So does an OSError the disk caused (full, read-only, permission denied): one line naming the
file and the free space. Ctrl-C prints one line and exits 130. Warnings the layers log (e.g.
"the results DB is locked by PID N; waiting") are printed on stderr as they happen.

Output that goes to a file or another program is as wide as it needs to be (never cut or wrapped
at rich's 80 columns). Start-up stays fast: this package imports only typer, rich and the light
parts of `mmpipe.store` at module level; torch, the registries' plug-ins, scikit-learn, pandas and
zarr are imported inside the commands that use them (`tests/benchmarks/bench_startup.py`).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from mmpipe.evaluate.display_names import DisplayNames
from mmpipe.store.errors import UserError, disk_error
from mmpipe.store.provenance import code_version
from mmpipe.store.ranges import SEED, Between

if TYPE_CHECKING:  # imports torch: only when a command opens the store
    from mmpipe.store.root import Store


class OneLineUsageErrors(TyperGroup):
    """The command group, with Click's usage errors (unknown option, a value of the wrong type, a
    missing argument) as one line on stderr and exit code 2, like every other refusal, instead of
    a usage block and a boxed panel."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as error:  # Click's usage errors, as Typer exports them
            context = getattr(error, "ctx", None)
            if type(error).__name__ == "NoArgsIsHelpError":  # no arguments at all: the help, as Typer shows it
                error.show()
                raise SystemExit(2) from None
            message = " ".join(error.format_message().split())
            command = getattr(context, "command_path", None) or "mmpipe"
            typer.echo(f"mmpipe: error: {message} (see `{command} --help`)", err=True)
            raise SystemExit(error.exit_code) from None
        except typer.Abort:
            typer.echo("mmpipe: error: aborted", err=True)
            raise SystemExit(1) from None
        raise SystemExit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="mmpipe",
    cls=OneLineUsageErrors,
    help="Multimodal representation learning on frozen encoders: cache embeddings once, fit small adapters, "
    "probe every component, report as SQL rows and tables.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",  # help texts are rich markup: write a literal "[" as "\\[", a default as show_default
)
PIPED_WIDTH = 100_000  # columns of output that is not a terminal: wide enough that nothing is cut or wrapped


def console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr): a terminal's own width, and `PIPED_WIDTH` columns when
    the stream is a file or a pipe, where rich would otherwise cut tables and wrap lines at 80."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


out = console()
err = console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    store_path: Path | None


class _OneLine(logging.Handler):
    """mmpipe's log records as ``mmpipe: <message>`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"mmpipe: {record.getMessage()}", err=True)


def _show_warnings() -> None:
    logger = logging.getLogger("mmpipe")
    if not any(isinstance(h, _OneLine) for h in logger.handlers):
        logger.addHandler(_OneLine(logging.WARNING))
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"mmpipe: error: {message}", err=True)
    return typer.Exit(code)


def user_errors(command: F) -> F:
    """Turn a UserError, or an OSError the disk caused, into one line on stderr and exit code 2;
    Ctrl-C into one line and exit code 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _show_warnings()
        try:
            return command(*args, **kwargs)
        except UserError as error:
            raise _fail(str(error)) from None
        except OSError as error:
            problem = disk_error(error)
            if problem is None:
                raise
            raise _fail(str(problem)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted; nothing half-written was published (run the command again to finish)",
                        130) from None

    return wrapper  # type: ignore[return-value]


def store_of(ctx: typer.Context, *, create: bool = False) -> Store:
    from mmpipe.store.root import Store

    return Store.open(ctx.obj.store_path, create=create)


def _print_version(given: bool) -> None:
    if given:
        typer.echo(f"mmpipe {code_version()}")
        raise typer.Exit()


@app.callback(epilog="Example: mmpipe --store runs/store list methods")
def main_options(
    ctx: typer.Context,
    store: Annotated[Path | None, typer.Option("--store", envvar="MMPIPE_STORE", show_default="./mmpipe-store",
                                                help="Store directory.")] = None,
    show_version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                           help="Print mmpipe's version and exit.")] = False,
) -> None:
    ctx.obj = State(store_path=store)


REPORT_FORMATS = ("latex", "markdown", "terminal")


def output_file(path: Path | None) -> Path | None:
    """Refuse (one line, before any work) an output file that cannot be written: a directory, or
    under something that is not a directory."""
    if path is None:
        return None
    if path.is_dir():
        raise UserError(f"--out {path} is a directory; give a file name")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"--out {path}: {parent} is a file, not a directory")
    return path


def output_dir(path: Path) -> Path:
    """Refuse (one line, before any work) an output directory that is an existing file, or lies
    under one."""
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"--out {path}: {blocking} is a file, not a directory")
    return path


FragmentOption = Annotated[bool, typer.Option(
    "--fragment", help="LaTeX: the tables alone, for \\input{} (the paper loads booktabs and graphicx).")]
NamesOption = Annotated[Path | None, typer.Option(
    "--names", help='LaTeX: a JSON file of display names, e.g. {"multiloreft": "MultiLoReFT", "z_s": "$z_s$"}.')]


def latex_options(fmt: str, fragment: bool, names: Path | None) -> DisplayNames:
    """The display names of ``--names``, checked before any work; ``--fragment`` and ``--names``
    belong to ``--format latex``."""
    if (fragment or names is not None) and fmt != "latex":
        raise UserError(f"--fragment and --names apply to --format latex, not {fmt}")
    return DisplayNames.from_file(names)


def emit_tables(tables: list, fmt: str, out_file: Path | None, what: str, file_width: int,
                fragment: bool = False, names: DisplayNames | None = None) -> None:
    """Render tables as ``fmt`` to stdout, or to ``out_file`` (then say so on stderr); LaTeX as a
    document, or the tables alone with ``fragment``."""
    from mmpipe.evaluate import latex, markdown, terminal

    if fmt == "terminal":
        if out_file is None:
            for group in terminal.render_document(tables):
                out.print(group)
            return
        with out_file.open("w") as handle:
            console = Console(file=handle, width=file_width, no_color=True)
            for group in terminal.render_document(tables):
                console.print(group)
    else:
        if fmt == "latex":
            text = (latex.render_fragment if fragment else latex.render_document)(tables, names)
        else:
            text = markdown.render_document(tables)
        if out_file is None:
            typer.echo(text, nl=False)
            return
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text)
    err.print(f"{what} written to {out_file}", markup=False, highlight=False)


MAX_SEEDS = 1000  # runs one command may fit; each is a full fit
MAX_JOBS = 256


def parse_seeds(text: str) -> list[int]:
    """Distinct seeds in [0, 2**32 - 1], at most `MAX_SEEDS` of them."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, not {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds must list distinct integers, not {text!r}")
    bad = next((s for s in seeds if not SEED.holds(s)), None)
    if bad is not None:
        raise UserError(f"--seeds {bad}: a seed must be {SEED.describe()}")
    check_seed_count(len(seeds))
    return seeds


def check_seed_count(count: int) -> None:
    if not 1 <= count <= MAX_SEEDS:
        raise UserError(f"--seeds must be at least 1 and at most {MAX_SEEDS} (runs), not {count}")


def check_jobs(jobs: int) -> None:
    if not 1 <= jobs <= MAX_JOBS:
        raise UserError(f"--jobs {jobs}: must be in [1, {MAX_JOBS}] worker processes")


def check_option(option: str, value: int, valid: Between) -> None:
    """One integer command-line option against its range: ``--max-epochs 0: must be in [1, 1000000]``."""
    if not valid.holds(value):
        raise UserError(f"{option} {value}: must be {valid.describe()}")


def check_device_of(config: Any) -> None:
    """The config's device exists on this machine (``cuda:7`` without that GPU is refused), checked
    before any data is loaded or anything written; a config without a device trains nothing."""
    from mmpipe.adapters.training import resolve_device

    device = getattr(config, "device", None)
    if device is not None:
        resolve_device(device)


