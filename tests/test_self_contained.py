"""A fresh clone with nothing beside it passes the suite: no file under ``tests/`` or the four
package folders (nor ``pyproject.toml``) refers to the developers' shared folder that sits next
to a checkout — not by a relative path into it, not by a path built onto it in code, not by the
environment variable that used to locate it. Data the tests need ships inside the project (the
CREMA-D metadata: ``pipeline/datasets/cremad_metadata/``).

This file names the patterns it hunts, so it skips itself.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("tests", "api", "store", "adapters", "evaluate", "pipeline", "examples")
SHARED = "shared"

# the folder beside the checkout (dot-dot then "shared"), shared/<one of its entries>…, and the
# environment variable that used to point at it
REFERENCE = re.compile(r"(?:\.\.[/\\])+shared\b[\w./-]*"
                       r"|(?<![\w/.-])shared/(?:data|papers|references|hooks|DESIGN\.md|README\.md)\b[\w./-]*"
                       r"|MMPIPE_SHARE[D]")  # the class keeps this file from matching itself

# Docstring citations of a paper kept in the shared folder, in files owned by others; provenance
# notes, not reads (nothing opens them), so a fresh clone still runs. Kept visible until the
# citations name the paper instead: {(file, citation as written): why tolerated}.
DOC_CITATIONS_OF_SHARED: dict[tuple[str, str], str] = {}


def _files() -> list[Path]:
    found = [ROOT / "pyproject.toml"]
    for folder in SCANNED:
        found.extend(p for p in sorted((ROOT / folder).rglob("*"))
                     if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"))
    return [p for p in found if p.resolve() != Path(__file__).resolve()]


def _path_built_onto_shared(tree: ast.AST) -> list[int]:
    """Lines that build a path onto a folder named ``shared`` in code: ``x / "shared"``,
    ``Path(…, "shared", …)``, ``os.path.join(…, "shared", …)``, ``p.joinpath("shared")``."""

    def is_shared(node: ast.AST) -> bool:  # "shared", "shared/…", or the same behind dot-dot
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            return False
        parts = [part for part in node.value.replace("\\", "/").split("/") if part not in ("", ".", "..")]
        return parts[:1] == [SHARED]

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and (is_shared(node.left)
                                                                               or is_shared(node.right)):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("Path", "PurePath", "PosixPath", "join", "joinpath") and any(map(is_shared, node.args)):
                lines.append(node.lineno)
    return lines


def shared_references() -> list[tuple[str, int, str]]:
    """(file relative to the root, line, what was found) for every reference to the shared folder."""
    found = []
    for path in _files():
        relative = path.relative_to(ROOT).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: no path in it to follow
        for number, line in enumerate(text.splitlines(), start=1):
            found.extend((relative, number, match.group()) for match in REFERENCE.finditer(line))
        if path.suffix == ".py":
            lines = text.splitlines()
            found.extend((relative, number, f"path built onto {SHARED!r}: {lines[number - 1].strip()}")
                         for number in _path_built_onto_shared(ast.parse(text, filename=relative)))
    return found


def test_nothing_refers_to_the_shared_folder_beside_the_checkout():
    found = shared_references()
    tolerated = [f for f in found if (f[0], f[2]) in DOC_CITATIONS_OF_SHARED]
    for file, line, text in tolerated:
        print(f"DOC_CITATIONS_OF_SHARED still present: {file}:{line}: {text}")
    for entry in sorted(set(DOC_CITATIONS_OF_SHARED) - {(f[0], f[2]) for f in found}):
        print(f"DOC_CITATIONS_OF_SHARED entry no longer needed (remove it): {entry}")
    wrong = [f for f in found if (f[0], f[2]) not in DOC_CITATIONS_OF_SHARED]
    assert not wrong, ("the project must not depend on the shared folder beside the checkout; ship what "
                       "it needs inside the repository:\n" + "\n".join(f"{f}:{n}: {t}" for f, n, t in wrong))


def test_the_scan_sees_the_old_ways_of_reaching_the_shared_folder(tmp_path):
    code = ('import os\nfrom pathlib import Path\n'
            'a = os.environ.get("MMPIPE_' 'SHARED")\n'
            'b = Path(__file__).resolve().parents[1].parent / "' 'shared"\n'
            'c = Path("..", "' 'shared", "data")\n'
            'd = "../' 'shared/data/crema-d/VideoDemographics.csv"\n'
            'e = {"owner": "' 'shared", "x": "' 'shared/private"}  # a label owner is not a path\n')
    tree = ast.parse(code)
    assert _path_built_onto_shared(tree) == [4, 5]
    matches = [m.group() for line in code.splitlines() for m in REFERENCE.finditer(line)]
    assert matches == ["MMPIPE_" "SHARED", "../" "shared/data/crema-d/VideoDemographics.csv"]
    assert not REFERENCE.search("shared/unique encoders, shared/specific factors")


def test_every_package_folder_is_listed_for_a_regular_install():
    """A non-editable install ships only the packages pyproject.toml lists: a folder of modules
    missing there would import in the checkout and fail once installed."""
    import tomllib

    root = Path(__file__).parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for package, top in config["package-dir"].items():  # mmpipe = api/, mmpipe.store = store/, ...
        for init in (root / top).rglob("__init__.py"):
            relative = init.parent.relative_to(root / top).parts
            found.add(".".join((package, *relative)))
    assert found == set(config["packages"])
