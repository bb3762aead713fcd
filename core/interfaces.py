"""The contracts between the scorer and plugins.

A plugin provides *specs* (cheap metadata plus a factory); the factory builds the heavy object only when a
score needs it, so that listing plugins never imports torch or builds a network.

* ``Model``: ordered layers with normalized depth, accepted modalities, a fingerprint for content-keyed
  caching, and batched extraction of activations.
* ``Candidate``: what a benchmark sees of a model; the scorer wraps a ``Model`` with the activation cache
  and the chosen device, so benchmarks never deal with either.
* ``Benchmark``: owns its data, metric, ceiling, version and citation; called on a candidate it returns
  a score assembly (a plain ``xarray.Dataset``, see :mod:`cortexbench.assembly`).
* ``Metric``: a plain callable object with a declared input contract.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # heavy imports only for type checkers
    import numpy as np
    import xarray as xr

    from .stimuli import StimulusSet

Modality = Literal["image", "video", "text"]
MODALITIES: tuple[str, ...] = ("image", "video", "text")

#: How a layer's raw output is laid out, which decides how it is pooled.
#: NCHW/NHWC: convolutional maps; NLC: token sequences (batch, tokens, channels); NC: already a vector.
Layout = Literal["NCHW", "NHWC", "NLC", "NC"]

#: How a benchmark wants each layer reduced to one vector per stimulus.
#: "avg": global average over space or tokens (Shen et al.); "flatten": keep everything (Höfling et al.).
Pooling = Literal["avg", "flatten"]
POOLINGS: tuple[str, ...] = ("avg", "flatten")

DEFAULT_DEPTH_BINS = 8


@dataclass(frozen=True)
class Layer:
    """One hookable layer. ``depth`` is its position among the model's layers, normalized to 0..1.

    ``head`` marks the network's output head (class logits): a readout, not a representation, which
    representational benchmarks (e.g. Shen et al.'s depth bins) leave out.
    """

    name: str
    depth: float
    depth_bin: int
    layout: str = "NCHW"
    head: bool = False


def make_layers(names: Sequence[str], layouts: Sequence[str] | str = "NCHW",
                n_bins: int = DEFAULT_DEPTH_BINS, heads: Sequence[str] = ()) -> tuple[Layer, ...]:
    """Layers in forward order with depth ``i / (L - 1)`` and bin ``floor(n_bins * i / L)`` (Shen et al.)."""
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"layer names must be unique, got duplicates in {names}")
    if set(heads) - set(names):
        raise ValueError(f"heads {sorted(set(heads) - set(names))} are not among the layers {names}")
    if isinstance(layouts, str):
        layouts = [layouts] * len(names)
    count = len(names)
    return tuple(
        Layer(name, (i / (count - 1)) if count > 1 else 1.0, math.floor(n_bins * i / count), layout, name in heads)
        for i, (name, layout) in enumerate(zip(names, layouts, strict=True))
    )


def rebin(layers: Sequence[Layer], n_bins: int = DEFAULT_DEPTH_BINS) -> tuple[Layer, ...]:
    """The same layers with depth and bins recomputed over exactly these (e.g. after leaving the head out)."""
    return make_layers([l.name for l in layers], [l.layout for l in layers], n_bins,
                       heads=[l.name for l in layers if l.head])


@dataclass
class ActivationBatch:
    """Activations of consecutive stimuli ``start : start + n`` for each requested layer, already pooled."""

    start: int
    features: dict[str, "np.ndarray"]


@runtime_checkable
class Model(Protocol):
    """A network that turns stimuli into per-layer activations."""

    identifier: str
    modalities: frozenset[str]

    @property
    def layers(self) -> tuple[Layer, ...]:
        """All extractable layers in forward order."""

    @property
    def region_layer_map(self) -> Mapping[str, tuple[str, ...]]:
        """The model's commitment: brain region -> the layer(s) that model it. May be empty."""

    def fingerprint(self) -> Mapping[str, str]:
        """What decides its outputs besides the stimuli: weights hash, preprocessing, library versions.

        The activation cache is keyed on this; two models with equal fingerprints must give equal activations.
        """

    def iter_activations(self, stimuli: "StimulusSet", layers: Sequence[str], *, pooling: str,
                         device: str, batch_size: int, precision: str) -> Iterator[ActivationBatch]:
        """Yield pooled activations of ``layers`` for all stimuli, in order, in batches.

        ``precision`` is "fp32" or "bf16" (autocast on CUDA); it is part of the activation cache key.
        """


@runtime_checkable
class Candidate(Protocol):
    """A model as a benchmark sees it: metadata plus cached, device-placed extraction."""

    identifier: str
    modalities: frozenset[str]
    layers: tuple[Layer, ...]
    region_layer_map: Mapping[str, tuple[str, ...]]
    #: The resolved device ("cpu", "cuda:0"): benchmarks run their metrics there too.
    device: str

    def activations(self, stimuli: "StimulusSet", layers: Sequence[str] | None = None,
                    pooling: str = "avg") -> dict[str, "xr.DataArray"]:
        """Per-layer ``(stimulus, feature)`` arrays for ``layers`` (default: all), ordered like the stimuli."""


@runtime_checkable
class Benchmark(Protocol):
    identifier: str
    version: str
    metric: str

    def __call__(self, candidate: Candidate) -> "xr.Dataset":
        """Score the candidate; return a score assembly (see :func:`cortexbench.assembly.validate`)."""


@dataclass(frozen=True)
class MetricContract:
    """What a metric accepts. Leading dimensions beyond the core ones are broadcast (batched)."""

    source_dims: tuple[str, ...]
    target_dims: tuple[str, ...]
    min_stimuli: int = 3
    description: str = ""


@runtime_checkable
class Metric(Protocol):
    identifier: str
    version: str
    contract: MetricContract

    def __call__(self, source: "xr.DataArray", target: "xr.DataArray") -> "xr.DataArray":
        """Compare source with target; the result keeps the leading dimensions of both."""


# --- registration specs: cheap metadata + a factory that builds the real object on demand -------------------


@dataclass(frozen=True)
class ModelSpec:
    identifier: str
    factory: Callable[..., Model]
    description: str
    modalities: tuple[str, ...] = ("image",)
    family: str = ""
    trained: bool = True
    citation: str = ""


@dataclass(frozen=True)
class ModelFamily:
    """Resolves open-ended identifiers such as ``timm/<any architecture>``; ``resolve`` returns None if unknown."""

    prefix: str
    resolve: Callable[[str], ModelSpec | None]
    description: str


@dataclass(frozen=True)
class BenchmarkSpec:
    identifier: str
    factory: Callable[..., Benchmark]
    description: str
    version: str
    citation: str
    bibtex: str = ""
    parent: str | None = None
    metric: str = ""
    datasets: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ("image",)
    #: Optional benchmark-specific plot for ``cortexbench show --plot``: a callable ``plot(assembly, path)`` or a
    #: ``"package.module:function"`` string imported only when a plot is drawn (listing stays light).
    plot: str | Callable[[Any, Any], Any] | None = None


@dataclass(frozen=True)
class MetricSpec:
    identifier: str
    factory: Callable[..., Metric]
    description: str
    version: str
    citation: str = ""


@dataclass(frozen=True)
class CommandSpec:
    """A ``cortexbench <name>`` subcommand contributed by a plugin (as pytest plugins add options).

    ``add_arguments(parser)`` declares its arguments on an ``argparse`` sub-parser; ``run(args)`` does the work
    and returns the exit code. Both run only when the command is used, so they may import heavy modules.
    """

    name: str
    help: str
    add_arguments: Callable[[Any], None]
    run: Callable[[Any], int]
    description: str = ""


@dataclass(frozen=True)
class Registration:
    """A spec together with the plugin that registered it."""

    kind: str
    spec: Any
    plugin: str
    plugin_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def identifier(self) -> str:
        return self.spec.identifier
