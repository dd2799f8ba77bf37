"""A store written by another layout is refused in one line, never misread."""

import json

import pytest
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.store.errors import UserError
from mmpipe.store.root import FORMAT, MARKER, Store


def test_an_older_layout_is_refused_with_how_to_rebuild(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    (root / MARKER).write_text(json.dumps({"format": "mmpipe-store", "layout_version": 1}))
    with pytest.raises(UserError, match=f"written by mmpipe store layout 1, this mmpipe reads layout "
                                        f"{FORMAT['layout_version']}: rebuild it in a new store"):
        Store.open(root)
    result = CliRunner().invoke(app, ["--store", str(root), "info"])
    assert result.exit_code == 2 and "layout 1" in result.output and "Traceback" not in result.output
    assert json.loads((root / MARKER).read_text())["layout_version"] == 1  # nothing rewritten
