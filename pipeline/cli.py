"""The `mmpipe` command line (Typer). The only module that imports every layer.

User errors (`mmpipe.store.errors.UserError`: unknown names, missing paths, a directory that is
not a store) print one line on stderr and exit 2 without a traceback; nothing stored is touched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mmpipe.adapters.registry import METHODS
from mmpipe.pipeline.datasets import DATASETS, Simulation
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.simulate import simulate as run_simulation
from mmpipe.store.config import apply_overrides
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store

app = typer.Typer(
    name="mmpipe",
    help="Multimodal representation learning on frozen encoders: cache embeddings once, fit small adapters, "
    "probe every component, report as SQL rows and tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    store_path: Path | None


def user_errors(command: F) -> F:
    """Turn a UserError into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            typer.echo(f"mmpipe: error: {error}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _store(ctx: typer.Context, *, create: bool = False) -> Store:
    return Store.open(ctx.obj.store_path, create=create)


@app.callback()
def main_options(
    ctx: typer.Context,
    store: Annotated[Path | None, typer.Option("--store", envvar="MMPIPE_STORE",
                                                help="Store directory (default ./mmpipe-store).")] = None,
) -> None:
    ctx.obj = State(store_path=store)


@app.command()
@user_errors
def simulate(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Simulation to generate: sim1 or sim2.")],
    n: Annotated[int | None, typer.Option(help="Number of samples [default: 10000].")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for latents, projections and splits [default: 0].")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Any config field, key=value (repeatable).")] = None,
    dtype: Annotated[str, typer.Option(help="Stored dtype: float32 or float16.")] = "float32",
) -> None:
    """Generate Simulation I or II (paper Appendix A.1) into the store. Same config again = no work."""
    dataset_cls = DATASETS.get(dataset)
    if not issubclass(dataset_cls, Simulation):
        simulations = ", ".join(n for n in DATASETS.names() if issubclass(DATASETS.get(n), Simulation))
        raise UserError(f"{dataset} is not a simulation; simulations: {simulations}")
    if dtype not in ("float32", "float16"):
        raise UserError(f"--dtype must be float32 or float16, not {dtype!r}")
    config = apply_overrides(dataset_cls.Config(), list(overrides or []))
    config = apply_overrides(config, {k: v for k, v in {"n": n, "seed": seed}.items() if v is not None})
    store = _store(ctx, create=True)
    with err.status(f"simulating {dataset} (n={config.n}, seed={config.seed})"):
        result = run_simulation(store, dataset, config, dtype=dtype)
    for entry in result.entries.values():
        state = "written" if entry.name in result.created else "already stored, nothing to do"
        err.print(f"{entry.name}: {entry.shape[0]} × {entry.shape[1]} {entry.meta['dtype']} "
                  f"[{entry.fingerprint[:12]}] {state}", markup=False, highlight=False)
    out.print(f"{dataset} manifest {result.manifest_version} in {store.root}", markup=False, highlight=False)


REGISTRIES = {"datasets": DATASETS, "encoders": ENCODERS, "methods": METHODS}


@app.command("list")
@user_errors
def list_(
    what: Annotated[str | None, typer.Argument(help="datasets, encoders or methods [default: all three].")] = None,
) -> None:
    """List the registered datasets, encoders and adapter methods."""
    if what is not None and what not in REGISTRIES:
        raise UserError(f"cannot list {what!r}; valid: {', '.join(REGISTRIES)}")
    for kind in [what] if what else list(REGISTRIES):
        registry = REGISTRIES[kind]
        table = Table(title=kind, title_justify="left", show_header=False, box=None)
        for name in registry.names():
            item = registry.get(name)
            table.add_row(name, getattr(item, "description", ""))
        if not len(registry):
            table.add_row("(none registered yet)")
        out.print(table)


def _size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError


@app.command()
@user_errors
def info(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset's manifests and features.")] = None,
) -> None:
    """What the store holds: manifests, feature entries, shapes, dtypes, fingerprints, sizes."""
    store = _store(ctx)
    datasets = store.datasets()
    if dataset is not None and dataset not in datasets:
        raise UserError(f"the store holds nothing for {dataset!r}; datasets in store: {', '.join(datasets) or 'none'}")
    manifests = Table(title=f"manifests in {store.root}", title_justify="left")
    for column in ("dataset", "version", "rows", "train/val/test", "labels", "split protocol"):
        manifests.add_column(column)
    for name in [dataset] if dataset else datasets:
        for version in store.manifest_versions(name):
            manifest = store.manifest(name, version)
            counts = manifest.table["split"].value_counts()
            splits = "/".join(str(counts.get(s, 0)) for s in ("train", "val", "test"))
            labels = " ".join(f"{s.name}:{s.owner}" for s in manifest.labels)
            manifests.add_row(name, version, str(len(manifest)), splits, labels, manifest.split_protocol)
    out.print(manifests)
    features = Table(title="feature entries", title_justify="left")
    for column in ("name", "fingerprint", "shape", "dtype", "missing", "on disk", "created"):
        features.add_column(column)
    for entry in store.feature_entries():
        if dataset is not None and entry.meta.get("dataset") != dataset:
            continue
        features.add_row(entry.name, entry.fingerprint[:12], " × ".join(map(str, entry.shape)), entry.meta["dtype"],
                         str(entry.meta.get("n_missing", 0)), _size(entry.disk_bytes()), entry.meta.get("created_at", ""))
    out.print(features)


def main() -> None:
    app()
