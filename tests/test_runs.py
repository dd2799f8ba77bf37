import numpy as np
import pytest
import torch

from mmpipe.store.damage import DamagedError
from mmpipe.store.errors import UserError
from mmpipe.store.runs import RunRecord, find_run, publish_run


def record(seed: int) -> RunRecord:
    return RunRecord(method="toy", dataset="sim1", manifest_version="v", inputs={"m1": "sim1.m1.x"},
                     input_fingerprints={"m1": "f"}, seed=seed, config={}, ablation=None, settings={},
                     dims={"m1": 4}, components=[], started_at="2026-01-01T00:00:00", seconds=1.0,
                     code_version="c", n_params=5)


def _publish(store, seed=0, **extra):
    components = {"z_s1": np.arange(12, dtype=np.float32).reshape(6, 2), "z_m1": np.ones((6, 3), np.float32)}
    return publish_run(store.runs_dir, "toy", {"dataset": "sim1", "seed": seed, **extra}, record(seed),
                       components, np.array([True] * 5 + [False]), {"w": torch.arange(4.0)})


def test_publish_round_trip_and_reuse(store):
    run = _publish(store)
    assert run.run_id == f"toy-{run.fingerprint[:12]}" and run.record.run_id == run.run_id
    assert run.record.components == ["z_s1", "z_m1"] and run.record.fingerprint == run.fingerprint
    parts = run.components()
    assert list(parts) == ["z_s1", "z_m1"] and parts["z_s1"][5].tolist() == [10.0, 11.0]
    assert run.valid().tolist() == [True] * 5 + [False]
    assert torch.equal(run.state_dict()["w"], torch.arange(4.0))
    again = _publish(store)
    assert again.path == run.path
    assert find_run(store.runs_dir, "toy", {"dataset": "sim1", "seed": 0}).run_id == run.run_id
    assert find_run(store.runs_dir, "toy", {"dataset": "sim1", "seed": 1}) is None
    other = _publish(store, seed=1)
    assert {r.run_id for r in store.runs()} == {run.run_id, other.run_id}
    assert store.run(run.run_id[:10]).fingerprint == run.fingerprint


def test_unknown_run_and_component_list_valid_ones(store):
    run = _publish(store)
    with pytest.raises(UserError, match=f"run 'toy-zzz' is unknown; valid: {run.run_id}"):
        store.run("toy-zzz")
    with pytest.raises(UserError, match="no component 'phi1'; valid: z_s1, z_m1"):
        run.components(["phi1"])


def test_a_run_json_of_another_format_is_refused_in_one_line(store):
    run = _publish(store)
    other = _publish(store, seed=1)
    (run.path / "run.json").write_text('{"method": "toy", "m1": "sim1.m1", "m2": "sim1.m2"}')
    with pytest.raises(DamagedError, match=r"damaged run .*: run.json is not a run record of this mmpipe \(missing "
                                           r"dataset.*run `mmpipe verify --repair`"):
        store.run(run.run_id)
    listing = store.scan_runs()  # the other run still lists; the damaged one is named beside it
    assert [r.run_id for r in listing.entries] == [other.run_id]
    assert [(d.path, d.kind) for d in listing.damaged] == [(run.path, "run")]
    assert [r.run_id for r in store.runs()] == [other.run_id]
