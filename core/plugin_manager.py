"""Plugin discovery and lookup.

Plugins are found through the ``cortexbench`` entry-point group (the built-in ones too, from this project's own
``pyproject.toml``). Each plugin is loaded and each hook called in isolation: a plugin that fails to import, raises
in a hook, returns something invalid or re-uses an identifier is recorded in :attr:`PluginManager.failures`,
reported with its name, and does not stop the others.
"""
from __future__ import annotations

import functools
import importlib.metadata
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .data import DatasetSpec
from .errors import PluginError, UnknownIdentifierError
from .interfaces import BenchmarkSpec, CommandSpec, MetricSpec, ModelFamily, ModelSpec, Registration

BUILTIN_DISTRIBUTION = "cortexbench"

_KINDS: dict[str, tuple[str, type]] = {
    "model": ("cortexbench_models", ModelSpec),
    "model family": ("cortexbench_model_families", ModelFamily),
    "benchmark": ("cortexbench_benchmarks", BenchmarkSpec),
    "metric": ("cortexbench_metrics", MetricSpec),
    "dataset": ("cortexbench_datasets", DatasetSpec),
    "command": ("cortexbench_commands", CommandSpec),
}


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    problem: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}: {self.problem}"


class PluginManager:
    """Registry of everything the installed plugins provide."""

    def __init__(self, *, entry_points: bool = True, extra_plugins: Iterable[tuple[str, Any]] = ()):
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.plugin_versions: dict[str, str] = {}
        self._registrations: dict[str, dict[str, Registration]] = {kind: {} for kind in _KINDS}
        if entry_points:
            self._load_entry_points()
        for name, plugin in extra_plugins:
            self._register(name, plugin, version="")
        self._collect()

    # --- loading -----------------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        eps = importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)
        seen: set[tuple[str, str]] = set()
        # Built-ins first, so that a third-party plugin cannot shadow a built-in identifier.
        ordered = sorted(eps, key=lambda ep: (_dist_name(ep) != BUILTIN_DISTRIBUTION, _dist_name(ep), ep.name))
        for ep in ordered:
            dist = _dist_name(ep)
            if (dist, ep.name) in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add((dist, ep.name))
            name = ep.name if dist == BUILTIN_DISTRIBUTION else f"{dist}:{ep.name}"
            try:
                plugin = ep.load()
            except Exception as err:  # noqa: BLE001 - any import failure must be isolated
                self.failures.append(PluginFailure(name, f"failed to import {ep.value!r}: {type(err).__name__}: {err}"))
                continue
            self._register(name, plugin, version=_dist_version(ep))

    def _register(self, name: str, plugin: Any, version: str) -> None:
        try:
            self._pm.register(plugin, name=name)
        except Exception as err:  # noqa: BLE001 - pluggy validation errors, duplicate names
            self.failures.append(PluginFailure(name, f"could not be registered: {type(err).__name__}: {err}"))
            return
        self.plugin_versions[name] = version

    def _collect(self) -> None:
        for kind, (hook_name, spec_type) in _KINDS.items():
            hook = getattr(self._pm.hook, hook_name)
            for impl in hook.get_hookimpls():  # registration order: built-ins first
                plugin = impl.plugin_name
                try:
                    specs = list(impl.function() or ())
                except Exception as err:  # noqa: BLE001 - a raising hook must not stop the others
                    self.failures.append(PluginFailure(plugin, f"hook {hook_name} raised {type(err).__name__}: {err}"))
                    continue
                for spec in specs:
                    self._add(kind, spec_type, spec, plugin)

    def _add(self, kind: str, spec_type: type, spec: Any, plugin: str) -> None:
        if not isinstance(spec, spec_type):
            self.failures.append(PluginFailure(plugin, f"returned {type(spec).__name__} from its {kind} hook; "
                                                       f"expected {spec_type.__name__}"))
            return
        key = {"model family": "prefix", "command": "name"}.get(kind, "identifier")
        key = getattr(spec, key)
        if not key or not isinstance(key, str) or any(c.isspace() for c in key):
            self.failures.append(PluginFailure(plugin, f"registered a {kind} with invalid identifier {key!r}"))
            return
        table = self._registrations[kind]
        if key in table:
            self.failures.append(PluginFailure(
                plugin, f"{kind} {key!r} is already registered by plugin {table[key].plugin!r}; this one is ignored"))
            return
        table[key] = Registration(kind, spec, plugin, self.plugin_versions.get(plugin, ""))

    # --- lookup ------------------------------------------------------------------------------------------
    def registrations(self, kind: str) -> dict[str, Registration]:
        return dict(self._registrations[kind])

    def get(self, kind: str, identifier: str) -> Registration:
        table = self._registrations[kind]
        if identifier in table:
            return table[identifier]
        if kind == "model":
            for prefix, registration in self._registrations["model family"].items():
                if identifier.startswith(prefix):
                    spec = registration.spec.resolve(identifier)
                    if spec is not None:
                        return Registration("model", spec, registration.plugin, registration.plugin_version)
        raise UnknownIdentifierError(kind, identifier, table)

    def model_spec(self, identifier: str) -> ModelSpec:
        return self.get("model", identifier).spec

    def benchmark_spec(self, identifier: str) -> BenchmarkSpec:
        return self.get("benchmark", identifier).spec

    def metric_spec(self, identifier: str) -> MetricSpec:
        return self.get("metric", identifier).spec

    def dataset(self, identifier: str) -> DatasetSpec:
        return self.get("dataset", identifier).spec

    def create_model(self, identifier: str, **options: Any):
        return _build("model", identifier, self.model_spec(identifier), options)

    def create_benchmark(self, identifier: str, **options: Any):
        return _build("benchmark", identifier, self.benchmark_spec(identifier), options)

    def create_metric(self, identifier: str, **options: Any):
        return _build("metric", identifier, self.metric_spec(identifier), options)

    def report_failures(self, stream=None) -> None:
        stream = stream or sys.stderr
        for failure in self.failures:
            print(f"warning: {failure}", file=stream)


def _build(kind: str, identifier: str, spec: Any, options: dict[str, Any]):
    try:
        return spec.factory(**options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise PluginError(f"{kind} {identifier!r} does not accept option(s) {sorted(options)}: {err}") from err
        raise


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "unknown"


def _dist_version(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else ""


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager built from installed entry points."""
    return PluginManager()


def datasets() -> dict[str, DatasetSpec]:
    """All registered datasets by identifier (a convenience for plugins that resolve files)."""
    return {k: r.spec for k, r in get_plugin_manager().registrations("dataset").items()}


def dataset(identifier: str) -> DatasetSpec:
    return get_plugin_manager().dataset(identifier)
