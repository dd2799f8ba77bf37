"""The registered datasets, encoders and methods with their descriptions, read from the plug-ins'
source files without importing them (importing one registers it, and pulls in torch and the
libraries it wraps: seconds that `mmpipe list` and `mmpipe --help` do not need).

One source: a plug-in is the modules its package's ``__init__`` imports, and in them each class
decorated ``@REGISTRY.register("name")`` with its class attribute ``description = "..."`` (a
string literal, implicit concatenation included); exactly what importing the package registers
(``tests/test_cli_polish.py`` checks the two agree, name for name and word for word).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding adapters/, pipeline/ (mmpipe's subpackages)
PACKAGES = {  # kind -> the package whose __init__ imports (registers) every plug-in of that kind
    "datasets": "pipeline/datasets",
    "encoders": "pipeline/encoders",
    "methods": "adapters/methods",
}


@dataclass(frozen=True)
class Plugin:
    name: str
    description: str
    module: str  # the file that registers it, relative to mmpipe's source root


def plugins(kind: str) -> list[Plugin]:
    """The plug-ins of ``kind`` (a key of `PACKAGES`), sorted by name as the registries list them."""
    package = SOURCE_ROOT / PACKAGES[kind]
    found = []
    for module in _imported_modules(package):
        path = package / f"{module}.py"
        text = path.read_text(encoding="utf-8")
        for match in _REGISTER.finditer(text):
            found.append(Plugin(match.group(1), _description(text[match.end():]), str(path.relative_to(SOURCE_ROOT))))
    return sorted(found, key=lambda p: p.name)


# a top-level class decorated @REGISTRY.register("name"); the files are read as text, not parsed
# whole (a few large method files: parsing them all took most of `mmpipe list`'s time)
_REGISTER = re.compile(r'^@\w+\.register\("([^"\\]+)"\)[ \t]*\n(?=(?:@.*\n)*class )', re.MULTILINE)
_DESCRIPTION = re.compile(r"^[ \t]+description[ \t]*=[ \t]*", re.MULTILINE)
_TOP_LEVEL = re.compile(r"^(?=\S)(?!class |@)", re.MULTILINE)


def completer(kind: str) -> Callable[[str], list[str]]:
    """Shell completion of a plug-in name of ``kind`` (``typer.Argument(autocompletion=...)``)."""
    return lambda incomplete: [p.name for p in plugins(kind) if p.name.startswith(incomplete)]


def _imported_modules(package: Path) -> list[str]:
    """The sibling modules ``__init__`` imports (``from <this package> import a, b``)."""
    tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    return [alias.name for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
            and node.module.endswith("." + package.name) for alias in node.names
            if (package / f"{alias.name}.py").exists()]


def _description(klass: str) -> str:
    """The string literal assigned to ``description`` in the class body that ``klass`` starts with
    ("" if the body assigns none)."""
    end = _TOP_LEVEL.search(klass)
    body = klass[:end.start()] if end else klass
    found = _DESCRIPTION.search(body)
    if found is None:
        return ""
    lines = body[found.end():].splitlines()
    for count in range(1, len(lines) + 1):  # the shortest run of lines that is a whole literal
        try:
            value = ast.literal_eval("\n".join(lines[:count]).split("  #")[0].strip())
        except (SyntaxError, ValueError):
            continue
        return value if isinstance(value, str) else ""
    return ""
