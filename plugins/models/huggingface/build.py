"""Build ``hf/<repo id>`` from a local folder: a vision backbone, a text encoder or a causal language model."""
from __future__ import annotations

from pathlib import Path

from cortexbench.errors import InputError

from . import hub

PREFIX = "hf/"


def build_model(repo_id: str, *, weights: str | Path | None = None, video_frames: str = "preprocess",
                readout: str = "", template: str = "auto", max_length: int = 512):
    identifier = PREFIX + repo_id
    folder = hub.locate_folder(identifier, repo_id, weights)
    if folder is None:
        raise hub.missing(identifier, repo_id, ["config.json and the weights (model.safetensors)"], folder=True,
                          extra="Language models need the tokenizer files too (a full snapshot).")
    kind = hub.model_kind(folder)
    if not list(folder.glob("*.safetensors")) + list(folder.glob("*.bin")):
        raise hub.missing(identifier, repo_id, ["model.safetensors"], folder=True,
                          extra=f"The folder {folder} has a config but no weights file.")
    weights_id = f"sha256:{hub.folder_digest(folder)}"
    if kind == "vision":
        if readout or template != "auto":
            raise InputError(f"{identifier} is a vision backbone; readout/template apply to text models only")
        from .vision import build

        return build(identifier, folder, weights_id, video_frames)
    from .text import HFTextModel

    config = hub.read_json(folder / "config.json")
    n_layers = config.get("num_hidden_layers") or config.get("text_config", {}).get("num_hidden_layers")
    if not n_layers:
        raise InputError(f"{identifier}: {folder / 'config.json'} has no num_hidden_layers")
    return HFTextModel(identifier=identifier, folder=folder, kind=kind, n_layers=int(n_layers),
                       weights_id=weights_id, readout=readout, template=template, max_length=int(max_length))
