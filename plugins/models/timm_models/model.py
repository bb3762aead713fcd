"""Build timm networks and discover their layers."""
from __future__ import annotations

import torch

from cortexbench.errors import UnknownIdentifierError
from cortexbench.extraction import Preprocessing, TorchImageModel
from cortexbench.interfaces import Layer, make_layers


def _create(arch: str, seed: int) -> torch.nn.Module:
    import timm

    if not timm.is_model(arch):
        raise UnknownIdentifierError("timm architecture", arch, timm.list_models())
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        return timm.create_model(arch, pretrained=False).eval()


def discover_layers(network: torch.nn.Module, input_size: tuple[int, int, int]) -> tuple[Layer, ...]:
    """The stages timm reports in ``feature_info`` plus the classifier output, with layouts from a dry run."""
    info = getattr(network, "feature_info", None) or []
    names = [entry["module"] for entry in info]
    channels = [entry.get("num_chs") for entry in info]
    classifier = network.pretrained_cfg.get("classifier") if hasattr(network, "pretrained_cfg") else None
    modules = dict(network.named_modules())
    if classifier and classifier in modules and classifier not in names:
        names.append(classifier)
        channels.append(None)
    shapes = _output_shapes(network, names, input_size)
    layouts = []
    for name, chs in zip(names, channels):
        shape = shapes[name]
        if len(shape) == 2:
            layouts.append("NC")
        elif len(shape) == 3:
            layouts.append("NLC")
        elif chs is not None and shape[-1] == chs and shape[1] != chs:
            layouts.append("NHWC")
        else:
            layouts.append("NCHW")
    return make_layers(names, layouts)


def _output_shapes(network: torch.nn.Module, names: list[str], input_size) -> dict[str, tuple[int, ...]]:
    modules = dict(network.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [modules[n].register_forward_hook(
        lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple((out[0] if isinstance(out, (tuple, list)) else out).shape)))
        for n in names]
    try:
        with torch.inference_mode():
            network(torch.zeros(1, *input_size))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def preprocessing_for(network: torch.nn.Module) -> Preprocessing:
    """timm's own evaluation transform (``resolve_data_config``), described as data."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=network)
    return Preprocessing(input_size=int(cfg["input_size"][-1]), resize="crop", crop_pct=float(cfg["crop_pct"]),
                         interpolation=str(cfg["interpolation"]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


def build_untrained(arch: str, seed: int) -> TorchImageModel:
    import timm

    network = _create(arch, seed)
    preprocessing = preprocessing_for(network)
    layers = discover_layers(network, (3, preprocessing.input_size, preprocessing.input_size))
    return TorchImageModel(
        identifier=f"timm/{arch}.untrained-seed{seed}",
        build=lambda: network,
        layers=layers,
        preprocessing=preprocessing,
        weights_id=f"untrained:{arch}:seed{seed}",
        fingerprint_extra={"timm": timm.__version__},
    )
