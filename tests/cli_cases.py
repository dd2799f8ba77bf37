"""Generated bad command lines for every mmpipe command: each option and each config field given
values that must be refused (wrong types, NaN/inf, negatives, zero where not allowed, huge, empty,
unicode, values outside the field's declared range). Used by ``test_cli_fuzz.py``.

A case is one command line that differs from a valid one (``BASES``) in exactly one place, so its
refusal can only come from that place; ``expect`` is a word the one-line error must contain (the
option or field it names). Values come from the declared ranges (`mmpipe.store.ranges`), so a
new config field is fuzzed without touching this file.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mmpipe.adapters import METHODS
from mmpipe.pipeline.datasets import DATASETS, Simulation
from mmpipe.pipeline.datasets.affect import AffectDataset
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.ingest import IngestOptions
from mmpipe.store.ranges import Between, DeviceName, FieldSpec, field_specs


@dataclass(frozen=True)
class Case:
    command: str  # the mmpipe command, for grouping
    argv: tuple[str, ...]  # after --store
    expect: str  # a word the error line must contain
    what: str  # what is wrong, for the failure message


HUGE = "9" * 30
UNICODE = "ünï☃"
NOT_A_NUMBER = ("abc", UNICODE, "", "nan", "NaN", "inf", "-inf", "1e400", "0x10")


def _out_of_range(spec: FieldSpec, element: type) -> list[str]:
    values: list[str] = []
    for bound in spec.ranges:
        if not isinstance(bound, Between):
            continue
        if bound.low is not None:
            below = bound.low if bound.low_open else bound.low - (1 if element is int else 1e-3)
            values += [str(int(below)) if element is int else repr(float(below)), "-1" if bound.low >= 0 else str(-10**9)]
        if bound.high is not None:
            above = bound.high if bound.high_open else bound.high + (1 if element is int else 1e-3)
            values += [str(int(above)) if element is int else repr(float(above)), HUGE]
    return sorted(set(values))


def _scalar_bad(spec: FieldSpec, kind: typing.Any) -> list[str]:
    if typing.get_origin(kind) is typing.Literal:
        return [UNICODE, "nope", ""]
    if kind is bool:
        return ["maybe", "2", UNICODE, ""]
    if kind is int:
        return [*NOT_A_NUMBER, "1.5", *_out_of_range(spec, int)]
    if kind is float:
        return [*NOT_A_NUMBER, *_out_of_range(spec, float)]
    if kind is str and any(isinstance(r, DeviceName) for r in spec.ranges):
        return ["tpu9", "cuda:99999", UNICODE, ""]
    return []  # free text (a path, a name): its meaning is checked where it is used


def set_values(spec: FieldSpec) -> list[str]:
    """Bad ``--set`` texts for one config field."""
    if typing.get_origin(spec.kind) is tuple:
        element = typing.get_args(spec.kind)[0]
        if element not in (int, float):
            return []
        values = ["a,b", f"1,{UNICODE}", "nan,1,1", "inf,1,1"]
        if spec.length is not None and spec.length.top is not None:
            values.append(",".join(["1"] * (spec.length.top + 1)))
        for bad in _out_of_range(spec, element)[:2]:
            values.append(",".join([bad] + ["1"] * ((spec.length.low if spec.length else 1) - 1)))
        return values
    return _scalar_bad(spec, spec.kind)


def json_values(spec: FieldSpec) -> list[typing.Any]:
    """Bad ``--config`` JSON values for one field: wrong JSON types, NaN/inf, out of range."""
    kind = spec.kind
    if typing.get_origin(kind) is tuple:
        return [1.0, "1,1,1", [True, 1, 1], [float("nan")] * 3, {"a": 1}]
    wrong: list[typing.Any] = [[1], {"a": 1}]
    if not spec.optional:
        wrong.append(None)
    if kind is bool:
        return [*wrong, 1, "true"]
    if kind is int:
        return [*wrong, True, 1.5, "3", float("nan")]
    if kind is float:
        return [*wrong, True, "0.5", float("nan"), float("inf"), -float("inf"),
                *(float(v) for v in _out_of_range(spec, float) if v != HUGE)]
    if typing.get_origin(kind) is typing.Literal:
        return [*wrong, 1, UNICODE]
    if kind is str:
        return [*wrong, 1, True]
    return wrong


def _config_cases(command: str, base: tuple[str, ...], config_cls: type, prefix: str = "") -> Iterator[Case]:
    for spec in field_specs(config_cls).values():
        for value in set_values(spec):
            yield Case(command, (*base, "--set", f"{prefix}{spec.name}={value}"), spec.name,
                       f"--set {prefix}{spec.name}={value!r}")


def _option_cases(command: str, base: tuple[str, ...], options: dict[str, list[str]],
                  named: bool = True) -> Iterator[Case]:
    """``named``: the error must name the option (the base command line is valid without it)."""
    for option, values in options.items():
        for value in values:
            yield Case(command, (*base, option, value), option.lstrip("-").split("-")[0] if named else "",
                       f"{option} {value!r}")


INTEGER_BAD = [*NOT_A_NUMBER, "-1", HUGE, "1.5"]


def cases(store: Path, scratch: Path, run_id: str) -> list[Case]:
    """Every case against ``store`` (sim1 simulated, one multiloreft run ``run_id``, probed);
    ``scratch`` is a directory outside the store the cases may name (it holds a file ``a_file``)."""
    a_file, missing = str(scratch / "a_file"), str(scratch / "no" / "such")
    found: list[Case] = []

    # simulate: every field of each simulation's config, and the options
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        if issubclass(cls, Simulation):
            found += _config_cases("simulate", ("simulate", name), cls.Config)
    found += _option_cases("simulate", ("simulate", "sim1"), {
        "--n": [*INTEGER_BAD, "0", "2"], "--seed": INTEGER_BAD, "--dtype": ["float64", UNICODE, ""]})
    found += [Case("simulate", ("simulate", bad), "", f"dataset {bad!r}") for bad in ("nope", UNICODE, "", "cremad")]

    # fit: every field of every method's config, by --set and by --config JSON, and the options
    fit_base = ("fit", "multiloreft", "--dataset", "sim1", "--seeds", "0")
    seen: set[FieldSpec] = set()  # a field the methods share (their common base config) is fuzzed once
    for method in METHODS.names():
        base = ("fit", method, "--dataset", "sim1", "--seeds", "0")
        specs = [spec for spec in field_specs(METHODS.get(method).Config).values() if spec not in seen]
        seen.update(specs)
        for spec in specs:
            found += [Case("fit", (*base, "--set", f"{spec.name}={value}"), spec.name, f"--set {spec.name}={value!r}")
                      for value in set_values(spec)]
            for value in json_values(spec):
                path = scratch / f"config-{method}-{spec.name}-{len(found)}.json"
                path.write_text(json.dumps({spec.name: value}))
                found.append(Case("fit", (*base, "--config", str(path)), spec.name,
                                  f"--config {{{spec.name!r}: {value!r}}}"))
    config_files = {"not json": "{", "a list": "[1, 2]", "a string": '"lr"', "unknown key": '{"nope": 1}'}
    for what, text in config_files.items():
        path = scratch / f"config-{what.replace(' ', '-')}.json"
        path.write_text(text)
        found.append(Case("fit", (*fit_base, "--config", str(path)), "config", f"--config holding {what}"))
    found += _option_cases("fit", fit_base, {"--config": [str(scratch), missing, ""]})
    found += _option_cases("fit", ("fit", "multiloreft", "--dataset", "sim1"), {
        "--seeds": ["abc", "-1", "0,0", "", ",", HUGE, UNICODE, "0-3", "4294967296"],
        "--jobs": [*INTEGER_BAD, "0"]})
    found += _option_cases("fit", fit_base, {
        "--pool": ["median", UNICODE], "--m1": ["nope", UNICODE]})
    # one --input alone is refused for its modality count first; a version for matching none
    found += _option_cases("fit", fit_base, {"--input": ["=x", "m1=", UNICODE, "m1=nope", "m1=simulated", "nope"],
                                             "--data-version": ["zzz", UNICODE]}, named=False)
    found += [Case("fit", ("fit", bad, "--dataset", "sim1", "--seeds", "0"), "", f"method {bad!r}")
              for bad in ("nope", UNICODE, "")]
    found += [Case("fit", ("fit", "multiloreft", "--dataset", bad, "--seeds", "0"), "", f"dataset {bad!r}")
              for bad in ("nope", UNICODE, "", "cremad")]

    # extract: the dataset configs and encoder options (refused before any data is read)
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        if not issubclass(cls, Simulation):
            base = ("extract", name, "--encoder", "wavlm", "--data-dir", str(scratch))
            found += _config_cases("extract", base, cls.Config, prefix="dataset.")
    for name in ENCODERS.names():
        base = ("extract", "cremad", "--encoder", name, "--data-dir", str(scratch))
        found += _config_cases("extract", base, ENCODERS.get(name).Options, prefix="encoder.")
    extract_base = ("extract", "cremad", "--encoder", "wavlm", "--data-dir", str(scratch))
    found += _option_cases("extract", extract_base, {
        "--batch-size": [*INTEGER_BAD, "0"], "--workers": INTEGER_BAD, "--chunk-rows": [*INTEGER_BAD, "0"],
        "--device": ["tpu9", "cuda:99999", UNICODE, ""], "--dtype": ["float64", UNICODE, ""],
        "--layers": ["a,b", "-1", UNICODE, HUGE]})
    found += _option_cases("extract", extract_base, {"--engine": ["spark", UNICODE, ""],
                                                     "--ray-address": ["auto"]})  # without --engine ray
    found += [Case("extract", (*extract_base, "--sequence", "--set", f"max_steps={value}"), "max_steps",
                   f"--set max_steps={value!r}") for value in [*INTEGER_BAD, "0"]]
    found += [Case("extract", (*extract_base, "--set", "max_steps=8"), "max_steps", "max_steps without --sequence")]
    # the scratch directory holds no CREMA-D: these may be refused for that first
    found += _option_cases("extract", extract_base, {"--weights": [missing]}, named=False)
    found += _option_cases("extract", ("extract", "cremad", "--encoder", "wavlm"), {"--data-dir": [missing, a_file]},
                           named=False)
    found += [Case("extract", ("extract", "cremad", "--encoder", bad, "--data-dir", str(scratch)), "",
                   f"encoder {bad!r}") for bad in ("nope", UNICODE, "")]
    found += [Case("extract", ("extract", "sim1", "--encoder", "wavlm"), "simulation", "extract of a simulation")]

    # ingest: each affect dataset's config fields and the ingest options, refused before any file is
    # read (the scratch directory holds no feature file); a file that is no pickle
    for name in DATASETS.names():
        if issubclass(DATASETS.get(name), AffectDataset):
            found += _config_cases("ingest", ("ingest", name, "--data-dir", str(scratch)), DATASETS.get(name).Config)
    ingest_base = ("ingest", "mosi", "--data-dir", str(scratch))
    found += _config_cases("ingest", ingest_base, IngestOptions)
    found += _option_cases("ingest", ingest_base, {"--dtype": ["float64", UNICODE, ""],
                                                   "--chunk-rows": [*INTEGER_BAD, "0"]})
    found += _option_cases("ingest", ("ingest", "mosi"), {"--data-dir": [missing, a_file]})
    found += [Case("ingest", ("ingest", "mosi", "--set", f"file={where}"), word, f"--set file={what}")
              for what, where, word in (("missing", missing, "file"), ("a directory", str(scratch), "directory"),
                                        ("not a pickle", a_file, "pickle"))]
    found += [Case("ingest", (*ingest_base, "--set", "bogus=1"), "bogus", "--set bogus=1")]
    found += [Case("ingest", ("ingest", bad, "--data-dir", str(scratch)), "", f"dataset {bad!r}")
              for bad in ("nope", UNICODE, "", "sim1", "cremad")]
    found += [Case("store", ("--store", where, *ingest_base), "", f"--store {what} for ingest")
              for what, where in (("a file", a_file), ("a folder that is not a store", str(scratch)),
                                  ("missing", missing))]

    # the evaluator's commands
    found += _option_cases("probe", ("probe", "--all"), {
        "--k-shot": [*INTEGER_BAD, "0"], "--label": ["nope", UNICODE, ""], "--component": ["nope", UNICODE, ""]})
    found += [Case("probe", ("probe", bad), "", f"run {bad!r}") for bad in ("nope", UNICODE, "", "multiloreft-zz")]
    found += _option_cases("query", ("query", "SELECT 1"), {"--format": ["xml", UNICODE, ""]})
    found += [Case("query", ("query", sql), "", f"query {sql!r}") for sql in
              ("", "DELETE FROM probes", "SELEC 1", UNICODE, f"COPY probes TO '{missing}'",
               "SELECT * FROM read_csv('/etc/passwd')", "INSTALL httpfs", "ATTACH 'x.db'", "SET threads=1",
               "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'", "PRAGMA version", "CALL pragma_version()",
               "CHECKPOINT", "SELECT 1; DROP TABLE runs")]
    found += _option_cases("report", ("report",), {
        "--format": ["pdf", UNICODE, ""], "--dataset": ["nope", UNICODE], "--method": ["nope", UNICODE],
        "--label": ["nope", UNICODE], "--table": ["nope", UNICODE, ""], "--data-version": ["zzz"],
        "--out": [str(scratch), str(Path(a_file) / "x.tex")], "--names": [a_file, str(scratch), UNICODE]})
    found += _option_cases("plot", ("plot", run_id, "--out", str(scratch / "plots")), {
        "--format": ["gif", UNICODE, ""], "--label": ["nope", UNICODE], "--component": ["nope", UNICODE]})
    found += _option_cases("plot", ("plot", run_id), {"--out": [a_file]})
    found += [Case("plot", ("plot", bad), "", f"run {bad!r}") for bad in ("nope", UNICODE, "")]
    # export: a run or a feature entry, into a new or empty directory only
    export_out = str(scratch / "export-out")
    found += _option_cases("export", ("export", run_id, "--out", export_out), {
        "--format": ["csv", UNICODE, ""], "--fingerprint": ["ab"]})
    found += _option_cases("export", ("export", run_id), {"--out": [a_file, f"{a_file}/x", str(scratch)]},
                           named=False)
    found += _option_cases("export", ("export", "sim1.m1.simulated", "--out", export_out),
                           {"--fingerprint": ["zz", UNICODE]}, named=False)
    found += [Case("export", ("export", bad, "--out", export_out), "", f"source {bad!r}")
              for bad in ("nope", UNICODE, "", "..", "sim1.m9.simulated", "a/b.c.d")]
    stress_base = ("stress", run_id, "--modality", "m1", "--rates", "0,0.5")
    found += _option_cases("stress", stress_base, {
        "--rates": ["", ",", "abc", UNICODE, "nan", "inf", "1", "-0.1", "0.5,0.2", "0,0", HUGE],
        "--mode": ["nope", UNICODE, "", "drop"], "--noise-std": [*NOT_A_NUMBER, "0", "-1", "0.5"],
        "--seed": INTEGER_BAD, "--modality": ["nope", UNICODE, ""], "--dataset": ["nope", UNICODE],
        "--label": ["nope", UNICODE], "--component": ["nope", UNICODE], "--k-shot": [*INTEGER_BAD, "0"],
        "--format": ["gif", UNICODE, ""], "--plot": [a_file, str(Path(a_file) / "x")]})
    found += [Case("stress", ("stress", bad, "--modality", "m1"), "", f"run {bad!r}")
              for bad in ("nope", UNICODE, "", "multiloreft-zz")]
    found += [Case("stress", ("stress", "multiloreft", "--modality", "m1"), "dataset", "a method without --dataset"),
              Case("stress", ("stress", "late-fusion", "--dataset", "sim1", "--modality", "m1"), "run",
                   "a method without runs")]
    found += _option_cases("reproduce", ("reproduce", "table1", "--n", "200", "--seeds", "1"), {
        "--seeds": [*INTEGER_BAD, "0"], "--n": [*INTEGER_BAD, "0", "5"], "--max-epochs": [*INTEGER_BAD, "0"],
        "--jobs": [*INTEGER_BAD, "0"], "--format": ["pdf", UNICODE]})
    found += [Case("reproduce", ("reproduce", bad), "", f"table {bad!r}") for bad in ("nope", UNICODE, "", "table2")]
    found += _option_cases("reproduce", ("reproduce", "survey", "--n", "200", "--seeds", "1"), {
        "--method": ["nope", UNICODE, "", "inputs", "sim1"], "--mode": ["nope", UNICODE, "", "drop", "noise"],
        "--dataset": ["nope", UNICODE, "sim2"]})
    found += [Case("reproduce", ("reproduce", "table1", option, value), option.lstrip("-"), f"{option} on table1")
              for option, value in (("--method", "drimu"), ("--mode", "zero"))]
    demo_base = ("demo", "--n", "200", "--seeds", "0", "--out", str(scratch / "demo"))
    found += _option_cases("demo", demo_base, {"--n": [*INTEGER_BAD, "0", "5"], "--jobs": [*INTEGER_BAD, "0"],
                                               "--seeds": ["abc", "-1", "0,0", "", HUGE]})
    found += _config_cases("demo", demo_base, METHODS.get("multiloreft").Config)
    found += [Case("info", ("info", bad), "", f"info {bad!r}") for bad in ("nope", UNICODE, "")]
    found += [Case("list", ("list", bad), "", f"list {bad!r}") for bad in ("nope", UNICODE, "")]
    found += [Case("config", ("config", bad), "method", f"config {bad!r}") for bad in ("nope", UNICODE, "")]
    found += [Case("verify", ("verify", bad), "", f"verify {bad!r}") for bad in ("--bogus", "extra")]

    # --store (the last one given wins): a file, a folder of other things, nothing at all
    for command in (("info",), ("query", "SELECT 1"), ("report",), ("probe", "--all"), ("verify",), fit_base,
                    ("plot", run_id, "--out", str(scratch / "plots"))):
        found += [Case("store", ("--store", where, *command), "", f"--store {what} for {command[0]}")
                  for what, where in (("a file", a_file), ("a folder that is not a store", str(scratch)),
                                      ("missing", missing))]
    return found
