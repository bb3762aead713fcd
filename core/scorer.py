"""One score, end to end: resolve plugins, extract through the cache, run the benchmark, store the result."""
from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import assembly, provenance
from .activations import ActivationStore, CachedCandidate
from .device import describe, resolve_device, resolve_precision
from .errors import InputError
from .plugin_manager import PluginManager, get_plugin_manager
from .progress import progress_enabled


@dataclass
class ScoreResult:
    assembly: Any  # xarray.Dataset
    path: Path | None
    wall_time_s: float
    device: str
    cache_hits: int
    cache_misses: int


def score(model: str, benchmark: str, *, registry: Any = None, device: str = "auto", precision: str = "auto",
          batch_size: int = 64, cache: bool = True, cache_dir: str | Path | None = None,
          model_options: Mapping[str, Any] | None = None, benchmark_options: Mapping[str, Any] | None = None,
          store: bool = True, progress: bool = True, plugins: PluginManager | None = None) -> ScoreResult:
    """Score ``model`` on ``benchmark`` and (unless ``store=False``) write the assembly to the registry.

    ``registry`` is a :class:`cortexbench.registry.Registry`, a path, or None for the default location.
    """
    from cortexbench.registry import Registry

    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    plugins = plugins or get_plugin_manager()
    model_reg = plugins.get("model", model)
    bench_reg = plugins.get("benchmark", benchmark)
    bench_spec = bench_reg.spec
    if not set(bench_spec.modalities) & set(model_reg.spec.modalities):
        raise InputError(f"benchmark {benchmark!r} presents {list(bench_spec.modalities)} stimuli but model "
                         f"{model!r} accepts only {list(model_reg.spec.modalities)}")
    metric_spec = plugins.metric_spec(bench_spec.metric) if bench_spec.metric else None
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    registry = registry if isinstance(registry, Registry) or not store else Registry(registry)

    built_model = plugins.create_model(model, **dict(model_options or {}))
    built_benchmark = plugins.create_benchmark(benchmark, **dict(benchmark_options or {}))
    candidate = CachedCandidate(built_model, ActivationStore(cache_dir) if cache else None, device=device,
                                batch_size=batch_size, precision=precision)
    facts = {
        "model": model, "model_plugin": _plugin(model_reg), "benchmark": benchmark,
        "benchmark_plugin": _plugin(bench_reg), "benchmark_version": bench_spec.version,
        "metric": bench_spec.metric, "metric_version": metric_spec.version if metric_spec else "",
        "model_fingerprint": dict(built_model.fingerprint()), "data_checksums": _data_checksums(plugins, bench_spec),
        "device": describe(device), "precision": precision, "batch_size": batch_size,
        "model_options": dict(model_options or {}), "benchmark_options": dict(benchmark_options or {}),
    }
    start = time.perf_counter()
    try:
        with progress_enabled(progress):
            result = built_benchmark(candidate)
        assembly.validate(result)
        _check_identity(result, model, bench_spec, metric_spec)
        result = result.load()  # memory-mapped activations must not outlive a --no-cache scratch store
    except Exception as err:
        if store:
            registry.record_failure(model=model, benchmark=benchmark, benchmark_version=bench_spec.version,
                                    metric=bench_spec.metric, metric_version=facts["metric_version"],
                                    error=f"{type(err).__name__}: {err}",
                                    provenance=provenance.collect(**facts, traceback=traceback.format_exc()))
        raise
    finally:
        candidate.close()
    wall = time.perf_counter() - start
    facts.update(wall_time_s=round(wall, 3), activation_cache_keys=candidate.cache_keys,
                 activation_cache={"hits": candidate.cache_hits, "misses": candidate.cache_misses},
                 seeds=_seeds(result.attrs))
    path = None
    if store:
        stored = registry.write(result, provenance.collect(**facts))
        path = stored.path
    return ScoreResult(result, path, wall, device, candidate.cache_hits, candidate.cache_misses)


def _plugin(registration) -> dict[str, str]:
    return {"name": registration.plugin, "version": registration.plugin_version}


def _check_identity(result, model: str, bench_spec, metric_spec) -> None:
    """A benchmark must label its assembly with what was actually scored."""
    expected = {"model": model, "benchmark": bench_spec.identifier, "benchmark_version": bench_spec.version}
    if metric_spec is not None:
        expected.update(metric=metric_spec.identifier, metric_version=metric_spec.version)
    wrong = {k: (result.attrs.get(k), v) for k, v in expected.items() if str(result.attrs.get(k)) != str(v)}
    if wrong:
        detail = ", ".join(f"{k}={got!r} (expected {want!r})" for k, (got, want) in wrong.items())
        raise InputError(f"benchmark {bench_spec.identifier!r} returned an assembly labelled {detail}")


def _data_checksums(plugins: PluginManager, bench_spec) -> dict[str, dict[str, Any]]:
    """One digest per declared dataset over its files' (path, sha256) pairs: small, yet pins every byte."""
    out = {}
    for identifier in bench_spec.datasets:
        spec = plugins.dataset(identifier)
        digest = hashlib.sha256()
        for f in sorted(spec.files, key=lambda f: f.path):
            digest.update(f"{f.path}\t{f.sha256}\n".encode())
        out[identifier] = {"files": len(spec.files), "manifest_sha256": digest.hexdigest()}
    return out


def _seeds(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: attrs[k] for k in attrs if "seed" in k}


def score_brain_to_brain(benchmark: str, *, registry: Any = None, device: str = "auto",
                         benchmark_options: Mapping[str, Any] | None = None, store: bool = True,
                         progress: bool = True, plugins: PluginManager | None = None) -> ScoreResult:
    """Brain-to-brain scores and ceilings of a benchmark that implements ``brain_to_brain()``, stored under model
    ``brain-to-brain`` (what ``cortexbench apa`` compares model alignment patterns with)."""
    from cortexbench.registry import Registry

    from .alignment_patterns import BRAIN_MODEL

    plugins = plugins or get_plugin_manager()
    bench_reg = plugins.get("benchmark", benchmark)
    bench_spec = bench_reg.spec
    metric_spec = plugins.metric_spec(bench_spec.metric) if bench_spec.metric else None
    device = resolve_device(device)
    built = plugins.create_benchmark(benchmark, **dict(benchmark_options or {}))
    if hasattr(built, "device") and "device" not in (benchmark_options or {}):
        built.device = device  # benchmarks that take a device get the resolved one
    if not callable(getattr(built, "brain_to_brain", None)):
        raise InputError(f"benchmark {benchmark!r} has no brain-to-brain comparison (it needs several subjects and "
                         "regions and a brain_to_brain() method)")
    registry = registry if isinstance(registry, Registry) or not store else Registry(registry)
    start = time.perf_counter()
    with progress_enabled(progress):
        result = built.brain_to_brain()
    assembly.validate(result)
    _check_identity(result, BRAIN_MODEL, bench_spec, metric_spec)
    wall = time.perf_counter() - start
    path = None
    if store:
        facts = {"model": BRAIN_MODEL, "benchmark": benchmark, "benchmark_plugin": _plugin(bench_reg),
                 "benchmark_version": bench_spec.version, "metric": bench_spec.metric,
                 "metric_version": metric_spec.version if metric_spec else "",
                 "data_checksums": _data_checksums(plugins, bench_spec), "device": describe(device),
                 "benchmark_options": dict(benchmark_options or {}), "wall_time_s": round(wall, 3),
                 "seeds": _seeds(result.attrs)}
        path = registry.write(result, provenance.collect(**facts)).path
    return ScoreResult(result, path, wall, device, 0, 0)
