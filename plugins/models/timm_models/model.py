"""Build timm networks (pretrained offline, or seeded untrained) as :class:`cortexbench.extraction.TorchImageModel`."""
from __future__ import annotations

from pathlib import Path

import torch

from cortexbench.errors import InputError, UnknownIdentifierError
from cortexbench.extraction import Preprocessing, TorchImageModel
from cortexbench.plugins.models.huggingface import hub
from cortexbench.video import VideoSampling

from .layers import discover_layers

PREFIX = "timm/"


def _check_arch(arch: str) -> None:
    import timm

    if not timm.is_model(arch):
        raise UnknownIdentifierError("timm architecture", arch, timm.list_models(),
                                     listing="Run `python -c \"import timm; print(timm.list_models())\"`")


def _create(arch: str, seed: int) -> torch.nn.Module:
    import timm

    _check_arch(arch)
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        return timm.create_model(arch, pretrained=False).eval()


def pretrained_cfg(arch: str, tag: str | None):
    """timm's pretrained config of ``arch.tag`` (``tag=None``: timm's default tag for the architecture)."""
    import timm
    from timm.models import get_pretrained_cfg

    _check_arch(arch)
    try:
        cfg = get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    except RuntimeError:  # timm: "Invalid pretrained tag"
        cfg = None
    tags = [name.split(".", 1)[1] for name in timm.list_pretrained(f"{arch}.*")]
    if not tags or (cfg is not None and not (cfg.hf_hub_id or cfg.url or cfg.file)):
        raise InputError(f"timm has no pretrained weights for {arch!r}; use timm/{arch}.untrained-seed0")
    if cfg is None or (tag and cfg.tag != tag):
        raise UnknownIdentifierError("timm pretrained tag", f"{arch}.{tag}", [f"{arch}.{t}" for t in tags],
                                     listing=f"Run `python -c \"import timm; print(timm.list_pretrained('{arch}.*'))\"`")
    return cfg


def _hub_filenames(cfg) -> list[str]:
    """The files timm would fetch from the hub for this config, safetensors first (as timm's loader does)."""
    if cfg.hf_hub_filename:
        name = cfg.hf_hub_filename
        safe = [name[:-4] + ".safetensors"] if name.endswith(".bin") else []
        if name == "open_clip_pytorch_model.bin":
            safe = ["open_clip_model.safetensors"]
        return [*safe, name]
    return ["model.safetensors", "pytorch_model.bin"]


def locate_weights(identifier: str, cfg, weights: str | Path | None = None) -> Path:
    """The weights file for a pretrained timm model: ``weights``, ``$CORTEXBENCH_WEIGHTS``, the Hugging Face cache
    or timm's torch-hub cache, in that order; otherwise an error that says what to provide."""
    if weights is not None:
        return hub.explicit_path(weights, identifier)
    tagged = f"{PREFIX}{cfg.architecture}.{cfg.tag}"
    env_ids = list(dict.fromkeys([identifier, tagged]))
    for candidate in hub.weights_env_candidates(env_ids):
        if candidate.is_file():
            return candidate
    repo_id, _, revision = (cfg.hf_hub_id or "").partition("@")
    filenames = _hub_filenames(cfg)
    if repo_id:
        for filename in filenames:
            found = hub.cached_file(repo_id, filename, revision or None)
            if found is not None:
                return found
    if cfg.url:
        checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url.split("?")[0]).name
        if checkpoint.is_file():
            return checkpoint
    raise hub.missing(identifier, repo_id or None, filenames,
                      env_names=[f"{identifier.replace('/', '__')}.safetensors"],
                      extra=f"(timm's original URL for these weights: {cfg.url})" if cfg.url and not repo_id else "")


def _model(identifier: str, network: torch.nn.Module, weights_id: str, granularity: str,
           video_frames: str, decode: str, extra: dict[str, str]) -> TorchImageModel:
    import timm

    preprocessing = preprocessing_for(network)
    layers = discover_layers(network, (3, preprocessing.input_size, preprocessing.input_size), granularity)
    return TorchImageModel(
        identifier=identifier,
        build=lambda: network,
        layers=layers,
        preprocessing=preprocessing,
        weights_id=weights_id,
        video=VideoSampling(frames=video_frames),
        decode=decode,
        fingerprint_extra={"timm": timm.__version__, "granularity": granularity, **extra},
    )


def preprocessing_for(network: torch.nn.Module) -> Preprocessing:
    """timm's own evaluation transform (``resolve_data_config``), described as data."""
    from timm.data import resolve_data_config

    return preprocessing_from_config(resolve_data_config({}, model=network))


def preprocessing_from_config(cfg: dict) -> Preprocessing:
    """A timm data config (``resolve_data_config``) as a :class:`Preprocessing` that equals ``create_transform``."""
    if cfg["input_size"][-1] != cfg["input_size"][-2]:
        raise InputError(f"non-square input size {cfg['input_size']} is not supported")
    return Preprocessing(input_size=int(cfg["input_size"][-1]), resize="crop", crop_pct=float(cfg["crop_pct"]),
                         interpolation=str(cfg["interpolation"]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                         crop_mode=str(cfg.get("crop_mode") or "center"))


def build_untrained(arch: str, seed: int, *, granularity: str = "feature_info",
                    video_frames: str = "preprocess", decode: str = "workers") -> TorchImageModel:
    network = _create(arch, seed)
    return _model(f"{PREFIX}{arch}.untrained-seed{seed}", network, f"untrained:{arch}:seed{seed}", granularity,
                  video_frames, decode, {})


def build_pretrained(arch: str, tag: str | None, *, weights: str | Path | None = None,
                     granularity: str = "feature_info", video_frames: str = "preprocess",
                     decode: str = "workers") -> TorchImageModel:
    """``timm/<arch>`` (timm's default tag) or ``timm/<arch>.<tag>`` with weights found offline."""
    import timm

    identifier = f"{PREFIX}{arch}.{tag}" if tag else f"{PREFIX}{arch}"
    cfg = pretrained_cfg(arch, tag)
    path = locate_weights(identifier, cfg, weights)
    try:
        network = timm.create_model(f"{arch}.{cfg.tag}", pretrained=True,
                                    pretrained_cfg_overlay={"file": str(path)}).eval()
    except (RuntimeError, KeyError, ValueError) as err:
        raise InputError(f"{identifier}: the weights file {path} does not fit {arch}: {err}") from err
    return _model(identifier, network, f"sha256:{hub.sha256(path)}", granularity, video_frames, decode,
                  {"pretrained_tag": str(cfg.tag)})
