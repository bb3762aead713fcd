"""The score registry: one netCDF4 file per (model, benchmark, versions), indexed in SQLite.

Writes are atomic and safe with concurrent writer processes: the assembly is serialized to a temporary file in
the target folder and fsynced, then, inside one exclusive SQLite write transaction, renamed over the final
path and recorded in the index. Readers therefore see either the old or the new file, never a partial one,
and the index row always names the sha256 of the file at its path. No pickle is involved anywhere: files are
netCDF4 (HDF5), provenance is JSON.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from cortexbench import assembly, config
from cortexbench.data import sha256_file
from cortexbench.errors import CortexbenchError

from .index import Index, ScoreRow

ENGINE = "h5netcdf"  # writes netCDF4 (HDF5) files with h5py alone; no netCDF-C library needed
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")
DEFAULT_VARIANT = "default"
#: Options that say where data lives or how the work is laid out, not what is computed: they never make a variant.
#: (The bytes they point at are pinned by the provenance: data checksums, the model's weights fingerprint.)
NEUTRAL_OPTIONS = frozenset({"root", "nsd_root", "videos", "atlas", "hcp_atlas", "captions", "weights", "device",
                             "dtype", "n_targets_batch", "chunk_size", "layers_per_pass", "max_batch", "memory_gb",
                             "plot_dir"})


def slug(identifier: str) -> str:
    """A file-system-safe, reversible-enough name: ``timm/resnet50.a1_in1k`` -> ``timm__resnet50.a1_in1k``."""
    return _SAFE.sub("_", identifier.replace("/", "__"))


def variant_of(model_options: dict[str, Any] | None = None, benchmark_options: dict[str, Any] | None = None) -> str:
    """``default`` for the plugins' defaults, else ``options-<digest>`` of the options as canonical JSON, so that a
    score under other settings is kept beside the default one instead of replacing it. Options in
    :data:`NEUTRAL_OPTIONS` (data locations, devices, batch sizes) are left out: they do not change the score."""
    options = {side: {k: v for k, v in dict(given or {}).items() if k not in NEUTRAL_OPTIONS}
               for side, given in (("model", model_options), ("benchmark", benchmark_options))}
    if not options["model"] and not options["benchmark"]:
        return DEFAULT_VARIANT
    text = json.dumps(options, sort_keys=True, default=str, separators=(",", ":"))
    return "options-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class StoredScore:
    row: ScoreRow
    path: Path

    def load(self) -> xr.Dataset:
        return load_assembly(self.path)

    @property
    def provenance(self) -> dict[str, Any]:
        with self.load() as ds:
            return json.loads(ds.attrs.get("provenance", "{}"))


class Registry:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = config.registry_dir(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = Index(self.root / "index.sqlite")

    def path_for(self, model: str, benchmark: str, benchmark_version: str, metric_version: str,
                 variant: str = DEFAULT_VARIANT) -> Path:
        suffix = "" if variant == DEFAULT_VARIANT else f"_{slug(variant)}"
        return (self.root / "scores" / slug(model) / slug(benchmark)
                / f"v{slug(benchmark_version)}_metric-v{slug(metric_version)}{suffix}.nc")

    def write(self, dataset: xr.Dataset, provenance: dict[str, Any]) -> StoredScore:
        """Store a validated assembly with its provenance; returns the record just written.

        The variant comes from the provenance's ``model_options`` / ``benchmark_options`` (:func:`variant_of`)."""
        assembly.validate(dataset)
        attrs = dataset.attrs
        variant = variant_of(provenance.get("model_options"), provenance.get("benchmark_options"))
        key = (attrs["model"], attrs["benchmark"], str(attrs["benchmark_version"]), str(attrs["metric_version"]),
               variant)
        final = self.path_for(*key)
        final.parent.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex
        provenance = dict(provenance, run_id=run_id)
        dataset = dataset.copy()
        dataset.attrs["provenance"] = json.dumps(provenance, sort_keys=True, default=str)
        dataset.attrs["run_id"] = run_id
        dataset.attrs["variant"] = variant
        temp = final.with_name(f".{final.stem}.{run_id}.tmp.nc")
        try:
            dataset.to_netcdf(temp, engine=ENGINE, format="NETCDF4", invalid_netcdf=False)
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
            digest = sha256_file(temp)
            head = assembly.headline(dataset)
            with self.index.write_transaction() as conn:
                now = _now()  # stamped under the write lock, so history order is commit order
                os.replace(temp, final)
                _fsync_dir(final.parent)
                Index.insert_run(conn, {
                    "run_id": run_id, "model": key[0], "benchmark": key[1], "benchmark_version": key[2],
                    "metric": attrs["metric"], "metric_version": key[3], "variant": variant, "state": "scored",
                    "score": head["score"], "score_error": head["score_error"], "ceiling": head["ceiling"],
                    "error_message": None, "path": str(final), "sha256": digest, "provenance": provenance,
                    "created_at": now})
                row = {"model": key[0], "benchmark": key[1], "benchmark_version": key[2], "metric_version": key[3],
                       "variant": variant, "metric": attrs["metric"], "state": "scored", "score": head["score"],
                       "score_error": head["score_error"], "ceiling": head["ceiling"], "path": str(final),
                       "sha256": digest, "run_id": run_id, "updated_at": now}
                Index.upsert_score(conn, row)
        finally:
            temp.unlink(missing_ok=True)
        return StoredScore(ScoreRow(**row), final)

    def record_failure(self, *, model: str, benchmark: str, benchmark_version: str, metric: str,
                       metric_version: str, error: str, provenance: dict[str, Any]) -> str:
        """Log a failed run; a stored score for the same key is kept, a never-scored pair becomes 'failed'."""
        run_id = uuid.uuid4().hex
        variant = variant_of(provenance.get("model_options"), provenance.get("benchmark_options"))
        with self.index.write_transaction() as conn:
            now = _now()
            Index.insert_run(conn, {
                "run_id": run_id, "model": model, "benchmark": benchmark, "benchmark_version": benchmark_version,
                "metric": metric, "metric_version": metric_version, "variant": variant, "state": "failed",
                "score": None,
                "score_error": None, "ceiling": None, "error_message": error, "path": None, "sha256": None,
                "provenance": dict(provenance, run_id=run_id), "created_at": now})
            conn.execute(
                "INSERT OR IGNORE INTO scores (model, benchmark, benchmark_version, metric_version, variant, metric, "
                "state, run_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'failed', ?, ?)",
                (model, benchmark, benchmark_version, metric_version, variant, metric, run_id, now))
        return run_id

    def scores(self, model: str | None = None, benchmark: str | None = None, variant: str | None = None
               ) -> list[ScoreRow]:
        """Index rows (every variant unless one is named)."""
        return self.index.scores(model, benchmark, variant)

    def get(self, model: str, benchmark: str, benchmark_version: str | None = None,
            variant: str = DEFAULT_VARIANT) -> StoredScore:
        """The newest stored score of the pair in ``variant`` (the default options unless named)."""
        pair = self.index.scores(model, benchmark)
        rows = [r for r in pair if r.state == "scored" and r.variant == variant
                and (benchmark_version is None or r.benchmark_version == benchmark_version)]
        if not rows:
            failed = [r for r in pair if r.state == "failed" and r.variant == variant]
            if failed:
                run = self.index.run(failed[0].run_id)
                raise CortexbenchError(
                    f"No stored score for model {model!r} on benchmark {benchmark!r}: its run failed (run "
                    f"{failed[0].run_id}, {failed[0].updated_at[:19]}): {run.get('error_message') if run else '?'}. "
                    f"Fix the cause and run `cortexbench score {model} {benchmark}` again.")
            others = sorted({r.variant for r in pair if r.state == "scored"} - {variant})
            if others:
                raise CortexbenchError(
                    f"No stored score for model {model!r} on benchmark {benchmark!r} in variant {variant!r}; stored "
                    f"variants: {', '.join(others)} (pass --variant NAME; `cortexbench list scores` shows them).")
            known = sorted({(r.model, r.benchmark) for r in self.index.scores()})
            hint = f" Stored pairs: {', '.join(f'{m} x {b}' for m, b in known[:8])}." if known else ""
            raise CortexbenchError(f"No stored score for model {model!r} on benchmark {benchmark!r} in registry "
                                   f"{self.root}. Run `cortexbench score {model} {benchmark}` first.{hint}")
        row = max(rows, key=lambda r: r.updated_at)
        return StoredScore(row, Path(row.path))

    def verify(self) -> list[str]:
        """Problems found: missing files or files whose sha256 differs from the index."""
        problems = []
        for row in self.index.scores():
            if row.state != "scored":
                continue
            path = Path(row.path)
            if not path.is_file():
                problems.append(f"{row.model} x {row.benchmark}: file {path} is missing")
            elif sha256_file(path) != row.sha256:
                problems.append(f"{row.model} x {row.benchmark}: file {path} differs from the indexed sha256")
        return problems


def load_assembly(path: str | os.PathLike) -> xr.Dataset:
    """Open a stored assembly fully into memory (the file handle is released at once)."""
    with xr.open_dataset(path, engine=ENGINE) as ds:
        return ds.load()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
