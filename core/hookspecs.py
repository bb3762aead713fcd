"""Hook specifications: the whole contract between cortexbench and its plugins.

A plugin is an importable module (or object) with ``@hookimpl`` functions, exposed through the
``cortexbench`` entry-point group in its ``pyproject.toml``::

    [project.entry-points.cortexbench]
    my_plugin = "my_package.cortexbench_plugin"

Hooks return specs (metadata plus a lazy factory). They run when cortexbench lists or resolves plugins,
so they must be cheap: import torch or build networks inside factories, never at module import.
"""
from __future__ import annotations

from collections.abc import Iterable

import pluggy

from .data import DatasetSpec
from .interfaces import BenchmarkSpec, CommandSpec, MetricSpec, ModelFamily, ModelSpec

PROJECT = "cortexbench"
ENTRY_POINT_GROUP = "cortexbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def cortexbench_models() -> Iterable[ModelSpec]:
    """Return the models this plugin provides, each a :class:`~cortexbench.interfaces.ModelSpec`."""


@hookspec
def cortexbench_model_families() -> Iterable[ModelFamily]:
    """Return resolvers for open-ended model identifiers (e.g. every timm architecture under ``timm/``)."""


@hookspec
def cortexbench_benchmarks() -> Iterable[BenchmarkSpec]:
    """Return the benchmarks this plugin provides, each with version, citation and parent."""


@hookspec
def cortexbench_metrics() -> Iterable[MetricSpec]:
    """Return the metrics this plugin provides."""


@hookspec
def cortexbench_datasets() -> Iterable[DatasetSpec]:
    """Return the datasets (and weight files) this plugin's models or benchmarks need, with checksums."""


@hookspec
def cortexbench_commands() -> Iterable[CommandSpec]:
    """Return extra ``cortexbench`` subcommands (e.g. an importer for a dataset's released results)."""
