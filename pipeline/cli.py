"""The `mmpipe` command line (Typer). The only module that imports every layer.

User errors (`mmpipe.store.errors.UserError`: unknown names, missing paths, a directory that is
not a store) print one line on stderr and exit 2 without a traceback; nothing stored is touched.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mmpipe.adapters import METHODS
from mmpipe.adapters.data import resolve_version
from mmpipe.evaluate import latex, markdown, terminal
from mmpipe.evaluate.paper_comparison import paper_comparison_table
from mmpipe.evaluate.report import TABLE_KINDS, ReportFilters, build_report, load_report_data
from mmpipe.pipeline.datasets import DATASETS, Simulation
from mmpipe.pipeline.defaults import default_config
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.extract import ExtractOptions
from mmpipe.pipeline.extract import extract as run_extraction
from mmpipe.pipeline.fit import FitOutcome, fit_runs
from mmpipe.pipeline.simulate import simulate as run_simulation
from mmpipe.store.config import apply_overrides, load_config_file
from mmpipe.store.errors import UserError
from mmpipe.store.results import query as run_query
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
    runs = [r for r in store.runs() if dataset is None or r.record.dataset == dataset]
    if runs:
        table = Table(title="adapter runs", title_justify="left")
        table.add_column("run", no_wrap=True, min_width=24)
        for column in ("dataset", "inputs", "seed", "ablation", "ranks", "seconds"):
            table.add_column(column)
        for run in runs:
            record = run.record
            ranks = " ".join(f"{k}:{v['final']}" for k, v in (record.ranks or {}).items())
            table.add_row(run.run_id, record.dataset, " + ".join(record.inputs.values()), str(record.seed),
                          record.ablation or "", ranks, f"{record.seconds:.1f}")
        out.print(table)

# -- evaluator: probe, query, report, plot --------------------------------------------------------
@app.command()
@user_errors
def probe(
    ctx: typer.Context,
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (or unique prefixes) to probe.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Probe every run in the store.")] = False,
    label: Annotated[list[str] | None, typer.Option(help="Only these labels (repeatable).")] = None,
    component: Annotated[list[str] | None, typer.Option(help="Only these components (repeatable).")] = None,
    k_shot: Annotated[list[int] | None, typer.Option("--k-shot", help="Also k-shot probes, k per class (repeatable).")] = None,
) -> None:
    """Probe every component × label of runs (fit on train, select on val, score on test) into the results DB.

    Re-probing a run replaces its rows."""
    from mmpipe.evaluate.probes import ProbeConfig, probe_run  # scikit-learn: imported only when probing
    from mmpipe.evaluate.results import save_probes

    store = _store(ctx)
    if all_runs == bool(runs):
        raise UserError("give run ids or --all (not both)")
    entries = store.runs() if all_runs else [store.run(r) for r in runs or []]
    if not entries:
        raise UserError("the store holds no runs; fit one with `mmpipe fit`")
    config = ProbeConfig(k_shot=tuple(k_shot or ()))
    total = 0
    for index, run in enumerate(entries, 1):
        with err.status(f"[{index}/{len(entries)}] probing {run.run_id}"):
            outcome = probe_run(store, run, config, labels=label, components=component)
            total += save_probes(store, run, outcome)
        for line in outcome.skipped:
            err.print(f"{run.run_id}: {line}", markup=False, highlight=False)
        err.print(f"[{index}/{len(entries)}] {run.run_id}: {len(outcome.rows)} scores", markup=False, highlight=False)
    out.print(f"{total} probe rows for {len(entries)} run(s) in {store.results_db}", markup=False, highlight=False)


QUERY_FORMATS = ("table", "csv", "json")


@app.command()
@user_errors
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="Read-only SQL over runs, probes, labels, probe_summary, delta_summary.")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run read-only SQL on the results DB (write statements are refused)."""
    import csv
    import json
    import sys

    if fmt not in QUERY_FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(QUERY_FORMATS)}")
    result = run_query(_store(ctx).results_db, sql)
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif fmt == "json":
        typer.echo(json.dumps([dict(zip(result.columns, row, strict=True)) for row in result.rows], default=str, indent=1))
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*["" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        out.print(table)


REPORT_FORMATS = ("latex", "markdown", "terminal")


def _emit_tables(tables: list, fmt: str, out_file: Path | None, what: str, file_width: int) -> None:
    """Render tables as ``fmt`` to stdout, or to ``out_file`` (then say so on stderr)."""
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
        text = (latex if fmt == "latex" else markdown).render_document(tables)
        if out_file is None:
            typer.echo(text, nl=False)
            return
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text)
    err.print(f"{what} written to {out_file}", markup=False, highlight=False)


@app.command()
@user_errors
def report(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="latex, markdown or terminal.")] = "terminal",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="Only these datasets (repeatable).")] = None,
    method: Annotated[list[str] | None, typer.Option(help="Only these methods (repeatable).")] = None,
    label: Annotated[list[str] | None, typer.Option(help="Only these labels (repeatable).")] = None,
    table: Annotated[list[str] | None, typer.Option(help=f"Only these tables: {', '.join(TABLE_KINDS)}.")] = None,
    data_version: Annotated[list[str] | None, typer.Option(
        help="Only runs on these manifest versions (prefixes), when a dataset has several.")] = None,
) -> None:
    """Paper-style tables (decoupling, fusion, learned ranks, ablations) from the results DB."""
    if fmt not in REPORT_FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(REPORT_FORMATS)}")
    filters = ReportFilters(tuple(dataset or ()), tuple(method or ()), tuple(label or ()), tuple(data_version or ()))
    tables = build_report(load_report_data(_store(ctx).results_db, filters), table or TABLE_KINDS)
    if fmt == "terminal" and out_file is None and not tables:
        out.print("No results match the filters.")
        return
    _emit_tables(tables, fmt, out_file, f"{len(tables)} table(s)", file_width=200)


@app.command()
@user_errors
def plot(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Run id (or unique prefix).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the figures.")] = Path("plots"),
    fmt: Annotated[str, typer.Option("--format", help="png or pdf.")] = "png",
    label: Annotated[list[str] | None, typer.Option(help="Only these labels (repeatable).")] = None,
    component: Annotated[list[str] | None, typer.Option(help="Only these components (repeatable).")] = None,
) -> None:
    """PCA scatter of each component coloured by each label, and the rank trajectory of the run."""
    from mmpipe.evaluate.plots import plot_run  # matplotlib: imported only when plotting

    store = _store(ctx)
    entry = store.run(run)
    manifest = store.manifest(entry.record.dataset, entry.record.manifest_version)
    with err.status(f"plotting {entry.run_id}"):
        paths = plot_run(entry, manifest, out_dir, fmt, components=component, labels=label)
    for path in paths:
        out.print(str(path), markup=False, highlight=False)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, not {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds must list distinct integers, not {text!r}")
    return seeds


def _report_fit(outcome: FitOutcome) -> None:
    run = outcome.run
    seed = run.record.seed
    if outcome.reused:
        err.print(f"{run.run_id}: seed {seed} already fitted, nothing to do", markup=False, highlight=False)
        return
    ranks = run.record.ranks or {}
    rank_text = " ".join(f"{k} {v['initial']}→{v['final']}" for k, v in ranks.items())
    err.print(f"{run.run_id}: seed {seed} fitted in {run.record.seconds:.1f} s, {run.record.epochs} epochs"
              f"{', ranks ' + rank_text if rank_text else ''}", markup=False, highlight=False)


def _check_jobs(jobs: int) -> None:
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {jobs}")


def _fit_with_progress(store: Store, method: str, dataset: str, inputs: dict[str, str | None], config: Any,
                       seeds: list[int], data_version: str | None, jobs: int) -> list[FitOutcome]:
    chosen = " + ".join(f"{m}={f}" if f else m for m, f in inputs.items())
    what = f"fitting {method} on {dataset} ({chosen}), seeds {','.join(map(str, seeds))}"
    with err.status(what + (f" in {jobs} processes" if jobs > 1 else "")) as status:
        return fit_runs(store, method, dataset, inputs, config, seeds, data_version, jobs=jobs, on_done=_report_fit,
                        progress=lambda message: status.update(f"{what}: {message}"))


def fit_inputs(store: Store, dataset: str, given: list[str], m1: str | None, m2: str | None,
               data_version: str | None) -> dict[str, str | None]:
    """modality -> feature (None: the only one stored), in the order the method sees them.

    ``--input MODALITY=FEATURE`` (or ``--input MODALITY``), in order; else ``--m1``/``--m2``, the
    features of the dataset's first and second modality; else every modality of the dataset.
    """
    if given and (m1 or m2):
        raise UserError("give --input or --m1/--m2, not both")
    if given:
        inputs: dict[str, str | None] = {}
        for item in given:
            modality, sep, feature = item.partition("=")
            modality, feature = modality.strip(), feature.strip()
            if not modality or (sep and not feature):
                raise UserError(f"--input {item!r} must be MODALITY=FEATURE or MODALITY")
            if modality in inputs:
                raise UserError(f"--input names {modality} twice")
            inputs[modality] = feature or None
        return inputs
    modalities = resolve_version(store, dataset, data_version).modality_names
    if m1 or m2:
        if len(modalities) < 2:
            raise UserError(f"{dataset} has {len(modalities)} modality; --m1/--m2 need two")
        return {modalities[0]: m1, modalities[1]: m2}
    return dict.fromkeys(modalities)


@app.command()
@user_errors
def fit(
    ctx: typer.Context,
    method: Annotated[str, typer.Argument(help="Adapter method, e.g. multiloreft (see `mmpipe list methods`).")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset whose cached features to train on.")],
    inputs: Annotated[list[str] | None, typer.Option(
        "--input", help="MODALITY=FEATURE (or MODALITY: its only feature), repeatable; the order is the order "
        "the method sees [default: every modality of the dataset].")] = None,
    m1: Annotated[str | None, typer.Option("--m1", help="Short form: the feature of the dataset's first modality.")] = None,
    m2: Annotated[str | None, typer.Option("--m2", help="Short form: the feature of the dataset's second modality.")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, one run each.")] = "0,1,2,3",
    config_file: Annotated[Path | None, typer.Option("--config", help="JSON file of config fields.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Config field, key=value (repeatable).")] = None,
    data_version: Annotated[str | None, typer.Option(help="Manifest version, when the store holds several.")] = None,
    jobs: Annotated[int, typer.Option(help="Seeds fitted in parallel worker processes.")] = 1,
) -> None:
    """Train an adapter on cached features, one run per seed. Same config and seed again = no work.

    The method's defaults for the dataset (`mmpipe.pipeline.defaults`) apply unless --config or
    --set give the field."""
    cls = METHODS.get(method)
    config = default_config(cls.Config, method, dataset)
    if config_file is not None:
        config = load_config_file(config, str(config_file))
    config = apply_overrides(config, list(overrides or []))
    seed_list = _seeds(seeds)
    _check_jobs(jobs)
    store = _store(ctx)
    chosen = fit_inputs(store, dataset, list(inputs or []), m1, m2, data_version)
    for outcome in _fit_with_progress(store, method, dataset, chosen, config, seed_list, data_version, jobs):
        out.print(outcome.run.run_id, markup=False, highlight=False)


@app.command()
@user_errors
def demo(
    ctx: typer.Context,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, one MultiLoReFT run each.")] = "0,1,2,3",
    n: Annotated[int, typer.Option(help="Simulation I samples.")] = 10_000,
    jobs: Annotated[int, typer.Option(help="Seeds fitted in parallel worker processes.")] = 2,
    out_dir: Annotated[Path, typer.Option("--out", help="Where report.tex and the plots go.")] = Path("mmpipe-demo"),
    overrides: Annotated[list[str] | None, typer.Option("--set", help="MultiLoReFT config field, key=value.")] = None,
) -> None:
    """The main job on the embedded default: Simulation I → MultiLoReFT (4 seeds) → probes → tables and plots."""
    from mmpipe.evaluate.plots import plot_run  # scikit-learn and matplotlib: imported only when used
    from mmpipe.evaluate.probes import probe_runs
    from mmpipe.evaluate.results import save_probes, variant_of

    seed_list = _seeds(seeds)
    _check_jobs(jobs)
    config = apply_overrides(default_config(METHODS.get("multiloreft").Config, "multiloreft", "sim1"),
                             list(overrides or []))
    sim_config = apply_overrides(DATASETS.get("sim1").Config(), {"n": n})
    store = _store(ctx, create=True)
    started = time.perf_counter()
    err.print(f"[1/4] simulating sim1 (n={n}) into {store.root}", markup=False, highlight=False)
    run_simulation(store, "sim1", sim_config)
    err.print(f"[2/4] fitting multiloreft, seeds {seeds}", markup=False, highlight=False)
    outcomes = _fit_with_progress(store, "multiloreft", "sim1", {"m1": None, "m2": None}, config, seed_list, None,
                                  jobs)
    runs = [o.run for o in outcomes]
    err.print("[3/4] probing every component of every run (fit on train, select on val, score on test)",
              markup=False, highlight=False)
    with err.status("probing") as status:
        probe_runs(store, runs, on_done=lambda run, outcome: (save_probes(store, run, outcome),
                                                               status.update(f"probed {run.run_id}")))
    err.print("[4/4] writing the report and plots", markup=False, highlight=False)
    variant = variant_of(runs[0].record)
    data = load_report_data(store.results_db, ReportFilters(("sim1",), (variant,), (),
                                                            (runs[0].record.manifest_version,)))
    data = dataclasses.replace(data, summary=[r for r in data.summary if r["method"] == variant],
                               deltas=[r for r in data.deltas if r["method"] == variant],
                               runs=[r for r in data.runs if r["variant"] == variant])
    tables = build_report(data, ("decoupling", "ranks"))
    comparison = paper_comparison_table(data, "sim1", variant)
    for group in terminal.render_document(tables + ([comparison] if comparison else [])):
        out.print(group)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.tex").write_text(latex.render_document(tables + ([comparison] if comparison else [])))
    plots = plot_run(runs[0], store.manifest("sim1", runs[0].record.manifest_version), out_dir / "plots", "png")
    out.print(f"report: {out_dir / 'report.tex'}", markup=False, highlight=False)
    out.print(f"plots ({runs[0].run_id}): " + ", ".join(str(p) for p in plots), markup=False, highlight=False)
    out.print(f"results DB: {store.results_db} (try `mmpipe query \"SELECT * FROM delta_summary\"`)",
              markup=False, highlight=False)
    err.print(f"demo finished in {time.perf_counter() - started:.0f} s", markup=False, highlight=False)


# -- extract -------------------------------------------------------------------------------------
def _split_overrides(dataset_config: Any, encoder_options: Any, overrides: list[str]) -> tuple[list, list, list]:
    """Route each --set key=value to the dataset config, the encoder options or the engine
    (``modality``); ``dataset.key`` / ``encoder.key`` disambiguate a key both have."""

    dataset_keys = {f.name for f in dataclasses.fields(dataset_config)}
    encoder_keys = {f.name for f in dataclasses.fields(encoder_options)}
    to_dataset, to_encoder, to_engine = [], [], []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"override {item!r} is not of the form key=value")
        key = key.strip()
        scope, dot, bare = key.partition(".")
        if dot and scope in ("dataset", "encoder"):
            (to_dataset if scope == "dataset" else to_encoder).append(f"{bare}={value}")
        elif key == "modality":
            to_engine.append(value.strip())
        elif key in dataset_keys and key in encoder_keys:
            raise UserError(f"--set {key} is ambiguous; write dataset.{key}=... or encoder.{key}=...")
        elif key in encoder_keys:
            to_encoder.append(item)
        elif key in dataset_keys:
            to_dataset.append(item)
        else:
            valid = sorted(dataset_keys | encoder_keys | {"modality"})
            raise UserError(f"unknown --set key {key!r}; valid: {', '.join(valid)}")
    return to_dataset, to_encoder, to_engine


@app.command()
@user_errors
def extract(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset to read (see `mmpipe list datasets`).")],
    encoder: Annotated[str, typer.Option("--encoder", help="Encoder to run (see `mmpipe list encoders`).")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the dataset's files are.")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="Local checkpoint directory or file "
                                                 "[default: the hub id / torchvision weights].")] = None,
    layers: Annotated[str | None, typer.Option("--layers", help="Hidden layers to store as extra arrays, e.g. 4,8.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Clips per forward pass.")] = 16,
    workers: Annotated[int, typer.Option("--workers", help="Decoding worker processes (0: decode in-process).")] = 2,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="Stored dtype: float16 or float32.")] = "float16",
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Dataset config or encoder option, key=value "
                                                        "(repeatable; modality=NAME picks the modality).")] = None,
    allow_failures: Annotated[bool, typer.Option("--allow-failures", help="Exit 0 even if some media failed.")] = False,
    chunk_rows: Annotated[int | None, typer.Option("--chunk-rows", hidden=True,
                                                   help="Rows per stored chunk (resume granularity).")] = None,
) -> None:
    """Run a frozen encoder over a dataset into the store: batched, resumable, failures recorded."""
    dataset_cls = DATASETS.get(dataset)
    encoder_cls = ENCODERS.get(encoder)
    if issubclass(dataset_cls, Simulation):
        raise UserError(f"{dataset} is a simulation with no media; use `mmpipe simulate {dataset}`")
    config, options = dataset_cls.Config(), encoder_cls.Options()
    to_dataset, to_encoder, to_engine = _split_overrides(config, options, list(overrides or []))
    config, options = apply_overrides(config, to_dataset), apply_overrides(options, to_encoder)
    if data_dir is not None:
        if not hasattr(config, "data_dir"):
            raise UserError(f"dataset {dataset} takes no --data-dir")
        config = apply_overrides(config, {"data_dir": str(data_dir)})
    try:
        chosen_layers = tuple(int(k) for k in layers.split(",") if k.strip()) if layers else ()
    except ValueError:
        raise UserError(f"--layers must be comma-separated integers, not {layers!r}") from None
    engine = ExtractOptions(dtype=dtype, layers=chosen_layers, batch_size=batch_size, num_workers=workers,
                            device=device, chunk_rows=chunk_rows, modality=to_engine[-1] if to_engine else None)
    store = _store(ctx, create=True)
    result = run_extraction(store, dataset, config, encoder_cls(options), weights=weights, options=engine, console=err)
    entry = result.entry
    shape = " × ".join(map(str, entry.shape))
    if not result.created:
        err.print(f"{entry.name} [{entry.fingerprint[:12]}] {shape} already stored, nothing to do",
                  markup=False, highlight=False)
    else:
        timings = entry.meta["timings"]
        resumed = f", resumed {result.chunks_resumed} finished chunk(s)" if result.chunks_resumed else ""
        err.print(f"{entry.name} [{entry.fingerprint[:12]}] {shape} {entry.meta['dtype']} written: "
                  f"{timings['rows']} clips in {timings['wall_s']:.1f} s ({timings['clips_per_s']:.1f} clips/s; "
                  f"decode {timings['decode_s']:.1f} s in workers, forward {timings['forward_s']:.1f} s, "
                  f"write {timings['write_s']:.1f} s){resumed}", markup=False, highlight=False)
    if result.failures:
        err.print(f"{len(result.failures)} of {entry.shape[0]} clips failed and are masked (valid=False):",
                  markup=False, highlight=False)
        for failure in result.failures[:20]:
            err.print(f"  {failure['sample_id']}: {failure['error']}", markup=False, highlight=False)
        if len(result.failures) > 20:
            err.print(f"  ... and {len(result.failures) - 20} more (all listed in {entry.path / 'meta.json'})",
                      markup=False, highlight=False)
        if not allow_failures:
            raise typer.Exit(1)
    out.print(f"{entry.name} {entry.fingerprint} in {store.root}", markup=False, highlight=False)


# -- reproduce -----------------------------------------------------------------------------------
@app.command()
@user_errors
def reproduce(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="table1, table3a, table4, table5, table6 or table7.")],
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (0..N-1), one run each.")] = 4,
    n: Annotated[int, typer.Option("--n", help="Samples per simulation.")] = 10_000,
    fmt: Annotated[str, typer.Option("--format", help="terminal, markdown or latex.")] = "terminal",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the table to this file.")] = None,
    max_epochs: Annotated[int | None, typer.Option("--max-epochs", help="Cap every epoch limit (a quick look; "
                                                   "the paper's tables use the defaults).")] = None,
    jobs: Annotated[int, typer.Option(help="Seeds fitted in parallel worker processes.")] = 2,
) -> None:
    """Reproduce one of the paper's tables on Simulation I/II: simulate, fit every method × seed it
    needs (reusing stored runs), probe, and print ours beside the paper's numbers."""
    from mmpipe.evaluate import reproduce as reproduction  # scikit-learn: imported only when used

    spec = reproduction.spec_of(table)
    if fmt not in REPORT_FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(REPORT_FORMATS)}")
    if seeds < 1 or n < 20:
        raise UserError("--seeds must be at least 1 and --n at least 20")
    _check_jobs(jobs)
    store = _store(ctx, create=True)
    started = time.perf_counter()
    versions = {}
    for dataset in spec.datasets:
        config = DATASETS.get(dataset).Config(n=n)
        versions[dataset] = run_simulation(store, dataset, config).manifest_version
    with err.status(f"reproducing {table}") as status:
        runs = reproduction.fit_table(store, spec, list(range(seeds)), versions, max_epochs,
                                      progress=status.update, jobs=jobs)
        probed = reproduction.probe_missing(store, runs, progress=status.update)
    ours = reproduction.our_values(store, runs)
    result = reproduction.comparison_table(spec, ours)
    lines = reproduction.pattern_lines(spec, ours)
    result = dataclasses.replace(result, notes=result.notes + lines)
    err.print(f"{len(runs)} runs ({probed} newly probed) in {time.perf_counter() - started:.0f} s",
              markup=False, highlight=False)
    tables = [result]
    if spec.companions:
        methods = tuple(sorted({method for method, _ in spec.fits}))
        data = load_report_data(store.results_db, ReportFilters(
            datasets=spec.datasets, methods=methods, data_versions=tuple(versions[d] for d in spec.datasets)))
        tables += build_report(data, spec.companions)
    _emit_tables(tables, fmt, out_file, table, file_width=240)


def main() -> None:
    app()
