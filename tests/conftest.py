from __future__ import annotations

import pytest

from mmpipe.store.root import Store


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "store", create=True)
