"""How names print in a paper: method, component and label names as LaTeX (``multiloreft`` →
MultiLoReFT, ``z_s`` → $z_{s}$, ``z_s_m1`` → $z_{s,m1}$), the one source the LaTeX renderer reads.

Built-in defaults cover the registered methods (their papers' spellings) and every component or
label of the form ``<letter>_<subscript>`` (each ``_`` after the first becomes a comma in the
subscript). A user's ``--names names.json`` (an object of name → LaTeX text, e.g.
``{"y_s": "sentiment", "fused": "$h$"}``) takes precedence; its values are LaTeX, written as given.
A cell that starts with such a name (a variant ``multiloreft [prune=False]``, a column ``y_s (Acc) ↑``)
prints the name's display form and the rest escaped; a variant longer than ``LONG_NAME`` characters
prints its method's display form with a footnote key instead, and the table's notes spell it out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mmpipe.store.errors import UserError

METHOD_NAMES: dict[str, str] = {
    "multiloreft": "MultiLoReFT", "drimu": "DRIM-U", "apollo": "APOLLO", "late-fusion": "Late fusion",
    "early-fusion": "Early fusion", "cross-attention": "Cross-attention", "contrastive": "Contrastive",
    "mult-interactions": "Multiplicative interactions", "inputs": "Inputs", "s3": "S\\textsuperscript{3}",
    "dlf": "DLF",
}
LONG_NAME = 28  # characters of a variant name a table column holds before it becomes a footnote key
_SUBSCRIPTED = re.compile(r"^([A-Za-z])_([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*)$")


@dataclass(frozen=True)
class DisplayNames:
    """name → LaTeX; ``latex_of`` answers None for a name it does not know (escape it instead)."""

    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path | None) -> DisplayNames:
        if path is None:
            return cls()
        try:
            names = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"--names {path}: not a readable JSON file ({error})") from None
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise UserError(f"--names {path}: expected a JSON object of name → LaTeX text, e.g. "
                            '{"multiloreft": "MultiLoReFT", "z_s": "$z_s$"}')
        return cls(names)

    def latex_of(self, name: str) -> str | None:
        if name in self.names:
            return self.names[name]
        if name in METHOD_NAMES:
            return METHOD_NAMES[name]
        match = _SUBSCRIPTED.match(name)
        if match:
            return f"${match.group(1)}_{{{match.group(2).replace('_', ',')}}}$"
        return None

    def split_variant(self, text: str) -> tuple[str, str] | None:
        """``"multiloreft [prune=False]"`` → (the method's LaTeX, ``"[prune=False]"``) when the
        first word is a name with a display form; None otherwise."""
        head, _, rest = text.partition(" ")
        latex = self.latex_of(head) if rest else None
        return (latex, rest) if latex is not None else None
