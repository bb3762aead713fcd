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
from cortexbench.registry import Registry, load_assembly, variant_of
from cortexbench.registry.index import SCHEMA


def make_assembly(model="m", benchmark="b", value=0.5, version="1", ceiling=0.8):
    raw = xr.DataArray(np.arange(6.0).reshape(2, 3) * value, dims=("layer", "subject"),
                       coords={"layer": ["a", "b"], "subject": ["s1", "s2", "s3"]})
    return assembly.make(score=value, score_error=0.01, ceiling=ceiling, raw=raw, attrs={
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


def test_leaderboard_ranks_ceiled_default_scores_only(registry, tmp_path):
    from cortexbench.alignment_patterns import BRAIN_MODEL
    from cortexbench.registry import leaderboard

    registry.write(make_assembly(model="a", benchmark="b1", value=0.5), {})
    registry.write(make_assembly(model="a", benchmark="behaviour", value=0.95, ceiling=float("nan")), {})
    registry.write(make_assembly(model="a", benchmark="b1", value=0.99), {"model_options": {"pooling": "max"}})
    registry.write(make_assembly(model=BRAIN_MODEL, benchmark="b1", value=0.7), {})
    board = leaderboard.build(registry)
    assert board.models == ["a"]                                          # the brain-to-brain ceiling is no model
    assert board.mean("a") == (pytest.approx(0.5), 1)                    # neither the raw score nor the variant
    assert board.rows()[0]["behaviour"].endswith(" raw")
    leaderboard.plot(board, tmp_path / "board.png")


def test_options_make_a_variant_that_never_replaces_the_default_score(registry):
    default = registry.write(make_assembly(value=0.4), {"model_options": {}, "benchmark_options": {}})
    other = registry.write(make_assembly(value=0.9), {"model_options": {"pooling": "flatten"}})
    again = registry.write(make_assembly(value=0.7), {"model_options": {"pooling": "flatten"}})
    assert other.row.variant == again.row.variant == variant_of({"pooling": "flatten"}) != "default"
    assert other.path == again.path != default.path
    assert again.row.score == pytest.approx(0.7) and again.row.run_id == registry.index.runs()[-1]["run_id"]
    assert registry.get("m", "b").row.score == pytest.approx(0.4)                     # default untouched
    assert registry.get("m", "b", variant=again.row.variant).row.score == pytest.approx(0.7)
    assert load_assembly(again.path).attrs["variant"] == again.row.variant
    assert sorted(r.variant for r in registry.scores("m", "b")) == sorted(["default", again.row.variant])
    # the same options in another order are the same variant; other options are another one
    assert variant_of({"a": 1, "b": 2}, {"c": 3}) == variant_of({"b": 2, "a": 1}, {"c": 3})
    assert variant_of({"a": 1}) != variant_of(None, {"a": 1})
    # where the data or weights live and what runs the work is no variant (the provenance pins those bytes)
    assert variant_of({"weights": "/w/x.pt"}, {"root": "/data/bmd", "device": "cuda:1"}) == "default"


def test_only_a_variant_stored_names_it_in_the_error(registry):
    stored = registry.write(make_assembly(), {"benchmark_options": {"n_splits": 3}})
    with pytest.raises(CortexbenchError, match=f"stored variants: {stored.row.variant}"):
        registry.get("m", "b")


def test_a_failed_pair_says_why_it_failed(registry):
    registry.record_failure(model="m", benchmark="b", benchmark_version="1", metric="rsa", metric_version="1",
                            error="ValueError: the layer 'x' does not exist", provenance={})
    with pytest.raises(CortexbenchError, match="failed .*ValueError: the layer 'x' does not exist"):
        registry.get("m", "b")


def test_an_index_from_before_variants_is_migrated_without_losing_scores(tmp_path):
    import sqlite3

    root = tmp_path / "old"
    (root / "scores").mkdir(parents=True)
    conn = sqlite3.connect(root / "index.sqlite")
    old_schema = SCHEMA.replace("    variant TEXT NOT NULL DEFAULT 'default',\n", "").replace(
        ", metric_version, variant)", ", metric_version)")
    conn.executescript(old_schema)
    conn.execute("INSERT INTO runs (run_id, model, benchmark, benchmark_version, metric, metric_version, state, "
                 "score, provenance, created_at) VALUES ('r1', 'm', 'b', '1', 'rsa', '1', 'scored', 0.25, '{}', 't')")
    conn.execute("INSERT INTO scores (model, benchmark, benchmark_version, metric_version, metric, state, score, "
                 "run_id, updated_at) VALUES ('m', 'b', '1', '1', 'rsa', 'scored', 0.25, 'r1', 't')")
    conn.commit()
    conn.close()
    registry = Registry(root)
    (row,) = registry.scores()
    assert (row.variant, row.score) == ("default", pytest.approx(0.25))
    assert registry.index.runs()[0]["variant"] == "default"
    registry.write(make_assembly(value=0.5), {})                      # the migrated table takes new writes
    assert registry.get("m", "b").row.score == pytest.approx(0.5)
