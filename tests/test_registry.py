"""Registry: atomic netCDF4 files, SQLite index, failure states, and real concurrent writer processes."""
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import xarray as xr

from cortexbench import assembly
from cortexbench.errors import CortexbenchError, InputError
from cortexbench.registry import Registry, load_assembly


def make_assembly(model="m", benchmark="b", value=0.5, version="1"):
    raw = xr.DataArray(np.arange(6.0).reshape(2, 3) * value, dims=("layer", "subject"),
                       coords={"layer": ["a", "b"], "subject": ["s1", "s2", "s3"]})
    return assembly.make(score=value, score_error=0.01, ceiling=0.8, raw=raw, attrs={
        "model": model, "benchmark": benchmark, "benchmark_version": version, "metric": "rsa",
        "metric_version": "1", "ceiling_method": "test", "error_method": "test", "config": {"nested": [1, 2]}})


def test_round_trip_keeps_every_dimension_and_provenance(registry):
    stored = registry.write(make_assembly(), {"device": "cpu", "seeds": {"seed": 3}})
    ds = load_assembly(stored.path)
    xr.testing.assert_identical(ds["raw"], make_assembly()["raw"])
    assert stored.provenance["seeds"] == {"seed": 3}
    assert ds.attrs["config"] == '{"nested": [1, 2]}'          # structures stored as JSON, never pickled
    with h5py.File(stored.path) as f:                            # a real netCDF4/HDF5 file
        assert f.attrs["_NCProperties"] is not None
    assert not list(stored.path.parent.glob(".*tmp*"))          # no temporary files left behind
    assert registry.verify() == []


def test_a_rerun_replaces_the_score_and_keeps_the_history(registry):
    registry.write(make_assembly(value=0.1), {})
    registry.write(make_assembly(value=0.2), {})
    rows = registry.scores("m", "b")
    assert len(rows) == 1 and rows[0].score == pytest.approx(0.2)
    assert [r["score"] for r in registry.index.runs("m", "b")] == pytest.approx([0.1, 0.2])


def test_failures_keep_a_state_and_never_replace_a_score(registry):
    registry.record_failure(model="m", benchmark="never-scored", benchmark_version="1", metric="rsa",
                            metric_version="1", error="ValueError: x", provenance={})
    registry.write(make_assembly(value=0.3), {})
    registry.record_failure(model="m", benchmark="b", benchmark_version="1", metric="rsa", metric_version="1",
                            error="RuntimeError: y", provenance={})
    states = {r.benchmark: (r.state, r.score) for r in registry.scores("m")}
    assert states["never-scored"] == ("failed", None)
    assert states["b"] == ("scored", pytest.approx(0.3))
    with pytest.raises(CortexbenchError, match="No stored score"):
        registry.get("m", "never-scored")


def test_invalid_assemblies_are_refused_before_anything_is_written(registry):
    bad = make_assembly().drop_vars("ceiling")
    with pytest.raises(InputError, match="missing variable 'ceiling'"):
        registry.write(bad, {})
    assert registry.scores() == []


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_registry import make_assembly
    from cortexbench.registry import Registry
    registry = Registry({root!r})
    worker = int(sys.argv[1])
    for i in range(6):
        # every worker writes its own pair and also fights over one shared pair
        registry.write(make_assembly(model=f"w{{worker}}", benchmark=f"b{{i}}", value=worker + i / 10), {{"w": worker}})
        registry.write(make_assembly(model="shared", benchmark="b", value=worker * 10 + i), {{"w": worker}})
""")


def test_concurrent_writer_processes_lose_and_corrupt_nothing(tmp_path):
    root = tmp_path / "registry"
    Registry(root)  # create the schema once, as a first `cortexbench score` would
    code = WRITER.format(tests=str(__import__("pathlib").Path(__file__).parent), root=str(root))
    processes = [subprocess.Popen([sys.executable, "-c", code, str(w)], stderr=subprocess.PIPE, text=True)
                 for w in range(6)]
    for p in processes:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    registry = Registry(root)
    runs = registry.index.runs()
    assert len(runs) == 6 * 6 * 2                                           # every write recorded
    rows = {(r.model, r.benchmark): r for r in registry.scores()}
    assert len(rows) == 6 * 6 + 1
    for w in range(6):
        for i in range(6):
            assert rows[(f"w{w}", f"b{i}")].score == pytest.approx(w + i / 10)
    assert registry.verify() == []                                          # each file matches its indexed hash
    shared = rows[("shared", "b")]
    last = max((r for r in runs if r["model"] == "shared"), key=lambda r: r["created_at"])
    assert shared.run_id == last["run_id"]                                   # index points at the last write
    assert float(load_assembly(shared.path)["score"]) == pytest.approx(shared.score)


def test_leaderboard_keeps_failed_and_never_run_apart(registry, tmp_path):
    from cortexbench.registry import leaderboard

    registry.write(make_assembly(model="strong", benchmark="b1", value=0.9), {})
    registry.write(make_assembly(model="strong", benchmark="b2", value=0.7), {})
    registry.write(make_assembly(model="weak", benchmark="b1", value=0.2), {})
    registry.record_failure(model="weak", benchmark="b2", benchmark_version="1", metric="rsa", metric_version="1",
                            error="boom", provenance={})
    registry.write(make_assembly(model="single", benchmark="b2", value=0.5), {})
    board = leaderboard.build(registry)
    assert board.models == ["strong", "single", "weak"]                 # ranked by mean over scored benchmarks
    assert board.mean("strong") == (pytest.approx(0.8), 2)
    assert board.mean("weak") == (pytest.approx(0.2), 1)                 # the failure is not a zero
    assert board.cells[("weak", "b2")].state == "failed"
    assert board.cells[("single", "b1")].state == "never run"
    rows = {r["model"]: r for r in board.rows()}
    assert rows["weak"]["coverage"] == "1/2" and rows["weak"]["b2"] == "failed"
    leaderboard.plot(board, tmp_path / "board.png")
    assert (tmp_path / "board.png").stat().st_size > 5_000
