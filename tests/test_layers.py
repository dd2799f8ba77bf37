"""The layer chain of DESIGN.md ("Layout and layers"), read from every module's imports.

    store ← adapters ← evaluate ← pipeline

Each layer imports only itself and the layers to its left: ``store`` nothing of mmpipe,
``adapters`` store, ``evaluate`` store and adapters, ``pipeline`` everything. No module imports a
bare ``store``, ``adapters``, ``evaluate`` or ``pipeline`` (only ``mmpipe.<layer>``; bare
``evaluate`` is Hugging Face's library).

Every ``import`` / ``from … import`` anywhere in a module counts — inside functions, methods,
``if TYPE_CHECKING:`` blocks and ``try:`` blocks too — as do relative imports (resolved against
the module's package) and ``importlib.import_module("…")`` / ``__import__("…")`` with a literal
name. The top-level ``mmpipe`` namespace (the public API, built from every layer) counts as the
top of the chain: only ``pipeline`` may import it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("store", "adapters", "evaluate", "pipeline")
MAY_IMPORT = {layer: set(LAYERS[: index + 1]) for index, layer in enumerate(LAYERS)}
TOP = "mmpipe"  # the namespace itself: above every layer
ROOT = Path(__file__).resolve().parents[1]

# Violations present in code owned by others, kept visible until they are fixed:
# {(file relative to the repository root, imported module as written): why it is tolerated}.
# Empty: today's code keeps the chain.
KNOWN_LAYER_VIOLATIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Violation:
    file: str  # relative to the scanned root, e.g. "store/runs.py"
    line: int
    statement: str  # the import as written (ast.unparse), e.g. "from mmpipe.pipeline import cli"
    imported: str  # the module it names, e.g. "mmpipe.pipeline.cli" or "evaluate.metrics"
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: `{self.statement}` — {self.reason}"


def _package_of(relative: Path) -> list[str]:
    """``store/sub/x.py`` → ["mmpipe", "store", "sub"]; ``store/sub/__init__.py`` the same."""
    return [TOP, *relative.parent.parts]


def _imported_modules(node: ast.AST, package: list[str]) -> list[str]:
    """The absolute module names one import node brings in: ``from a.b import c`` yields ``a.b``,
    ``from mmpipe import evaluate`` yields ``mmpipe.evaluate`` (a layer named that way counts)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package[: len(package) - (node.level - 1)] if node.level - 1 < len(package) else []
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        if module != TOP:
            return [module]
        return list(dict.fromkeys(f"{TOP}.{alias.name}" if alias.name != "*" else TOP for alias in node.names))
    if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and not node.args[0].value.startswith("."):
            return [node.args[0].value]
    return []


def _judge(layer: str, module: str) -> str | None:
    """Why ``layer`` must not import ``module`` (None when it may)."""
    parts = module.split(".")
    if parts[0] in LAYERS:
        return f"bare `{parts[0]}`: import `mmpipe.{parts[0]}` (DESIGN.md: never a bare layer name)"
    if parts[0] != TOP:
        return None  # the standard library or a third-party package
    target = parts[1] if len(parts) > 1 and parts[1] in LAYERS else TOP
    if target == TOP:
        allowed = layer == LAYERS[-1]
    else:
        allowed = target in MAY_IMPORT[layer]
    if allowed:
        return None
    may = ", ".join(sorted(MAY_IMPORT[layer] - {layer}, key=LAYERS.index)) or "nothing of mmpipe"
    what = "the top-level `mmpipe` namespace" if target == TOP else f"`{target}`"
    return f"{layer} imports {what}, a layer above it ({layer} may import: {may})"


def layer_violations(root: Path) -> tuple[list[Violation], int]:
    """Every wrong-way or bare import in the ``.py`` files under ``root/<layer>/``, and how many
    modules were read."""
    found: list[Violation] = []
    read = 0
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            relative = path.relative_to(root)
            if "__pycache__" in relative.parts:
                continue
            read += 1
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source, filename=str(relative))
            package = _package_of(relative)
            for node in ast.walk(tree):
                for module in _imported_modules(node, package):
                    reason = _judge(layer, module)
                    if reason:
                        statement = ast.get_source_segment(source, node) or ast.unparse(node)
                        found.append(Violation(relative.as_posix(), node.lineno, " ".join(statement.split()),
                                               module, reason))
    found.sort(key=lambda v: (v.file, v.line, v.imported))
    return found, read


def test_imports_follow_the_layer_chain():
    violations, read = layer_violations(ROOT)
    assert read >= 40, f"read only {read} modules under {ROOT}: is the checker looking in the right place?"
    tolerated = [v for v in violations if (v.file, v.imported) in KNOWN_LAYER_VIOLATIONS]
    for v in tolerated:
        print(f"KNOWN_LAYER_VIOLATIONS still present: {v} (tolerated: {KNOWN_LAYER_VIOLATIONS[(v.file, v.imported)]})")
    stale = set(KNOWN_LAYER_VIOLATIONS) - {(v.file, v.imported) for v in violations}
    for entry in sorted(stale):
        print(f"KNOWN_LAYER_VIOLATIONS entry no longer needed (remove it): {entry}")
    wrong = [v for v in violations if (v.file, v.imported) not in KNOWN_LAYER_VIOLATIONS]
    assert not wrong, ("imports that point the wrong way along store ← adapters ← evaluate ← pipeline:\n"
                       + "\n".join(str(v) for v in wrong))


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checker_catches_wrong_way_and_bare_imports(tmp_path):
    _write(tmp_path, "store/__init__.py", "")
    _write(tmp_path, "store/fine.py", "import json\nfrom mmpipe.store import errors\nfrom . import registry\n")
    _write(tmp_path, "store/sneaky.py",
           "import os\n\n\ndef load():\n    from mmpipe.adapters.base import Method\n    return Method\n")
    _write(tmp_path, "store/sub/deep.py", "from ...pipeline import cli\n")  # relative, two packages up
    _write(tmp_path, "store/dynamic.py", "import importlib\nimportlib.import_module('mmpipe.evaluate.report')\n")
    _write(tmp_path, "adapters/ok.py", "from mmpipe.store.manifest import Manifest\nimport mmpipe.adapters.base\n")
    _write(tmp_path, "adapters/typed.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                          "    from mmpipe import evaluate\n")
    _write(tmp_path, "evaluate/ok.py", "from mmpipe.adapters import registry\nfrom mmpipe.store import runs\n")
    _write(tmp_path, "evaluate/bare.py", "import evaluate\n")
    _write(tmp_path, "evaluate/api.py", "class A:\n    def f(self):\n        import mmpipe\n")
    _write(tmp_path, "pipeline/ok.py", "import mmpipe\nfrom mmpipe.evaluate import report\nfrom mmpipe import store\n"
                                       "from ..adapters import base\n")
    _write(tmp_path, "pipeline/bare.py", "from store.manifest import Manifest\n")

    violations, read = layer_violations(tmp_path)
    assert read == 12
    got = {(v.file, v.line, v.imported) for v in violations}
    assert got == {
        ("store/sneaky.py", 5, "mmpipe.adapters.base"),
        ("store/sub/deep.py", 1, "mmpipe.pipeline"),
        ("store/dynamic.py", 2, "mmpipe.evaluate.report"),
        ("adapters/typed.py", 3, "mmpipe.evaluate"),
        ("evaluate/bare.py", 1, "evaluate"),
        ("evaluate/api.py", 3, "mmpipe"),
        ("pipeline/bare.py", 1, "store.manifest"),
    }
    message = {v.file: str(v) for v in violations}
    assert message["store/sneaky.py"].startswith(
        "store/sneaky.py:5: `from mmpipe.adapters.base import Method` — store imports `adapters`")
    assert "store may import: nothing of mmpipe" in message["store/sneaky.py"]
    assert "adapters may import: store" in message["adapters/typed.py"]
    assert message["evaluate/bare.py"] == ("evaluate/bare.py:1: `import evaluate` — bare `evaluate`: import "
                                           "`mmpipe.evaluate` (DESIGN.md: never a bare layer name)")
    assert "top-level `mmpipe` namespace" in message["evaluate/api.py"]
