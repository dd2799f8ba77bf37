from __future__ import annotations

import os

import pytest

from mmpipe.store.root import Store


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "store", create=True)


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.slow` tests (full-size models, long fits) run only with MMPIPE_SLOW=1."""
    if os.environ.get("MMPIPE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set MMPIPE_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
