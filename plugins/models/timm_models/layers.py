"""Which modules of a network are its layers, and how their outputs are laid out.

Three granularities (``granularity=`` factory option), all returning module paths in forward order:

* ``"feature_info"`` (default): the stages timm reports in ``feature_info`` plus the classifier output; a network
  without ``feature_info`` falls back to ``"shen"``.
* ``"shen"``: Shen et al.'s rule (FloyedShen/BrainAlign, ``extract_vision_feature_single.py``): for each attribute
  ``blocks, features, stage, s, layer, layers, block, stages`` the network has, every child of it when it is
  indexable, else the numbered siblings ``<name>1, <name>2, ...``.
* ``"blocks"``: every repeated block (Höfling et al. hook the 16 bottleneck blocks of a ResNet-50): the stages above,
  widened to all same-class siblings inside their container (EfficientNet's ``feature_info`` skips stages 3 and 5),
  each expanded into its repeated children (``layer1.0``, ``stages.2.blocks.5``, ``layers.1.blocks.0``); a module
  that is neither a repeated child nor has same-class siblings (a stem) is left out.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from cortexbench.errors import InputError
from cortexbench.interfaces import Layer, make_layers

GRANULARITIES = ("feature_info", "shen", "blocks")
#: The container attributes Shen et al. look for, in their order.
SHEN_CONTAINERS = ("blocks", "features", "stage", "s", "layer", "layers", "block", "stages")


def discover_layers(network: torch.nn.Module, input_size: tuple[int, int, int],
                    granularity: str = "feature_info") -> tuple[Layer, ...]:
    """Layers at ``granularity`` with depth, 8 depth bins and a layout read off a dry run at ``input_size``."""
    probe: dict[str, tuple] = {}
    names = layer_paths(network, granularity, input_size, probe)
    if not names:
        raise InputError(f"found no layers in {type(network).__name__} at granularity {granularity!r}; it has no "
                         f"feature_info and none of the containers {SHEN_CONTAINERS}")
    shapes = {n: probe[n][2] for n in names} if all(n in probe for n in names) else \
        output_shapes(network, names, input_size)
    nhwc = getattr(network, "output_fmt", "NCHW") == "NHWC"
    head = _classifier(network)
    return make_layers(names, [layout_of(shapes[name], nhwc) for name in names], heads=[head] if head in names else [])


def layer_paths(network: torch.nn.Module, granularity: str = "feature_info",
                input_size: tuple[int, int, int] = (3, 224, 224), probe: dict | None = None) -> list[str]:
    """Module paths of the layers; ``probe`` (optional) receives what a dry run saw of each module it hooked."""
    if granularity not in GRANULARITIES:
        raise InputError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    info = [entry["module"] for entry in (getattr(network, "feature_info", None) or [])]
    if granularity == "shen" or (granularity == "feature_info" and not info):
        return shen_paths(network)
    if granularity == "feature_info":
        return info + [c for c in [_classifier(network)] if c and c not in info]
    return block_paths(network, info or shen_paths(network), input_size, probe)


def shen_paths(network: torch.nn.Module) -> list[str]:
    """Shen et al.'s hooked modules, in forward (registration) order."""
    found: list[str] = []
    for attr in SHEN_CONTAINERS:
        container = getattr(network, attr, None)
        if not isinstance(container, torch.nn.Module):
            continue
        if isinstance(container, (torch.nn.Sequential, torch.nn.ModuleList)):
            found += [f"{attr}.{name}" for name, _ in container.named_children()]
        else:
            index = 1
            while isinstance(getattr(network, f"{attr}{index}", None), torch.nn.Module):
                found.append(f"{attr}{index}")
                index += 1
    return _in_forward_order(network, found)


def block_paths(network: torch.nn.Module, stages: Sequence[str], input_size: tuple[int, int, int],
                probe: dict | None = None) -> list[str]:
    modules = dict(network.named_modules())
    widened: list[str] = []
    for path in stages:
        parent_path, _, _ = path.rpartition(".")
        parent = modules.get(parent_path) if parent_path else None
        if isinstance(parent, (torch.nn.Sequential, torch.nn.ModuleList)):
            kind = type(modules[path])
            widened += [_join(parent_path, name) for name, child in parent.named_children() if type(child) is kind]
        else:
            widened.append(path)
    widened = list(dict.fromkeys(widened))
    groups = {path: _repeated_children(modules[path]) for path in widened}
    members = {p: [_join(p, c) for c in g] for p, g in groups.items() if g}
    seen = dry_run(network, [*widened, *(m for group in members.values() for m in group)], input_size)
    if probe is not None:
        probe.update(seen)
    chained = {path: group for path, group in members.items()  # each member consumes its predecessor's output
               if all(m in seen for m in group) and all(seen[b][0] == seen[a][1] for a, b in zip(group, group[1:]))}
    blocks: list[str] = []
    for path in widened:
        if path in chained:
            blocks += chained[path]
        elif _has_same_class_sibling(network, modules, path):
            blocks.append(path)
    return _in_forward_order(network, list(dict.fromkeys(blocks)))


def _repeated_children(module: torch.nn.Module) -> list[str] | None:
    """Names of a module's candidate repeated blocks: its children when they are >= 2 modules of one class (not
    bare containers), or those of the one child that holds such children (a ConvNeXt/Swin stage's ``blocks``)."""
    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)

    def same_class(m: torch.nn.Module) -> list[str] | None:
        children = list(m.named_children())
        kinds = {type(c) for _, c in children}
        if len(children) >= 2 and len(kinds) == 1 and not issubclass(kinds.pop(), containers):
            return [name for name, _ in children]
        return None

    direct = same_class(module)
    if direct is not None:
        return direct
    holders = [(name, names) for name, child in module.named_children() if (names := same_class(child))]
    if len(holders) == 1:
        holder, names = holders[0]
        return [f"{holder}.{name}" for name in names]
    return None


def dry_run(network: torch.nn.Module, names: Sequence[str], input_size) -> dict[str, tuple]:
    """One forward pass of a blank input: per module, (input storage, output storage, output shape) of its first
    call. Blocks in depth pass their output on to the next block; parallel branches (an Inception module's) all
    read the same input."""
    modules = dict(network.named_modules())
    seen: dict[str, tuple] = {}

    def record(name):
        def hook(_module, inputs, output):
            first = inputs[0] if inputs else None
            out = output[0] if isinstance(output, (tuple, list)) else output
            if name not in seen and isinstance(out, torch.Tensor):
                source = first.untyped_storage().data_ptr() if isinstance(first, torch.Tensor) else None
                seen[name] = (source, out.untyped_storage().data_ptr(), tuple(out.shape))
        return hook

    hooks = [modules[name].register_forward_hook(record(name)) for name in dict.fromkeys(names)]
    try:
        with torch.inference_mode():
            network.eval()(torch.zeros(1, *input_size))
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _has_same_class_sibling(network: torch.nn.Module, modules: dict, path: str) -> bool:
    parent_path, _, name = path.rpartition(".")
    parent = modules[parent_path] if parent_path else network
    kind = type(modules[path])
    return any(type(child) is kind for other, child in parent.named_children() if other != name)


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _in_forward_order(network: torch.nn.Module, paths: list[str]) -> list[str]:
    order = {name: i for i, (name, _) in enumerate(network.named_modules())}
    missing = [p for p in paths if p not in order]
    if missing:
        raise InputError(f"{type(network).__name__} has no module(s) {missing}")
    return sorted(dict.fromkeys(paths), key=order.__getitem__)


def _classifier(network: torch.nn.Module) -> str | None:
    cfg = getattr(network, "pretrained_cfg", None) or {}
    name = cfg.get("classifier")
    if isinstance(name, (tuple, list)):  # distilled models (DeiT, LeViT): the class-token head comes first
        name = name[0] if name else None
    return name if name and name in dict(network.named_modules()) else None


def layout_of(shape: tuple[int, ...], nhwc_network: bool = False) -> str:
    """NC / NLC / NCHW / NHWC from an output shape; square maps tell channels from space, else the network's format."""
    if len(shape) == 2:
        return "NC"
    if len(shape) == 3:
        return "NLC"
    if len(shape) != 4:
        return "NCHW"  # pooling averages every axis after the channels
    _, a, b, c = shape
    if b == c and a != b:
        return "NCHW"
    if a == b and c != a:
        return "NHWC"
    return "NHWC" if nhwc_network else "NCHW"


def output_shapes(network: torch.nn.Module, names: Sequence[str], input_size) -> dict[str, tuple[int, ...]]:
    """Output shape of each named module for one blank input (the first tensor of tuple outputs)."""
    seen = dry_run(network, names, input_size)
    missing = [name for name in names if name not in seen]
    if missing:
        raise InputError(f"{type(network).__name__}: module(s) {missing} never ran in a forward pass; "
                         "they cannot be used as layers")
    return {name: seen[name][2] for name in names}
