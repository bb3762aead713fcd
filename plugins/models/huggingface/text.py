"""Hugging Face text models: the hidden state of the embedding output and of every layer, one vector per text.

Causal language models follow Shen et al. (FloyedShen/BrainAlign, ``brain_datasets.py`` and
``extract_language_feature_single.py``): the caption goes into the user message "Consider the image described by
the following sentences: \\n\\n'{caption}'", wrapped in the tokenizer's chat template with the generation prompt
when it has one (otherwise the message alone), tokenized with left padding (pad token = EOS when missing) and
truncation at 512 tokens; the readout of each ``hidden_states[i]`` is the last token's vector.
Text encoders (sentence-transformers such as all-MiniLM-L6-v2) take the text as it is, right-padded, and the
readout is the attention-masked mean over tokens (the encoder's own sentence pooling).

Batching never changes a result: padded positions are masked, and with left padding the position ids are counted
from each text's first real token (Shen et al. pad every caption to 512 tokens instead; see README.md).
"""
from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cortexbench.errors import InputError
from cortexbench.extraction import require_modality, stream_to_host
from cortexbench.interfaces import ActivationBatch, Layer, make_layers
from cortexbench.stimuli import StimulusSet

from . import hub

#: Shen et al.'s user message (``chat_template`` in brain_datasets.py), with ``{caption}`` for the text.
SHEN_PROMPT = "Consider the image described by the following sentences: \n\n'{caption}'"
MAX_LENGTH = 512


@dataclass
class HFTextModel:
    """A Hugging Face text model as :class:`cortexbench.interfaces.Model` (layers ``hidden_states.0..N``)."""

    identifier: str
    folder: Path
    kind: str  # "causal" or "encoder"
    n_layers: int
    weights_id: str
    readout: str = ""  # "last" (causal default) or "mean" (encoder default)
    template: str = "auto"  # "auto": chat template when the tokenizer has one; "none": the prompt alone
    prompt: str = SHEN_PROMPT
    max_length: int = MAX_LENGTH
    region_layer_map: dict = field(default_factory=dict)
    modalities: frozenset[str] = frozenset({"text"})
    _network: torch.nn.Module | None = field(default=None, init=False, repr=False)
    _tokenizer: object = field(default=None, init=False, repr=False)
    _device: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("causal", "encoder"):
            raise InputError(f"{self.identifier}: kind must be 'causal' or 'encoder', got {self.kind!r}")
        self.readout = self.readout or ("last" if self.kind == "causal" else "mean")
        if self.readout not in ("last", "mean"):
            raise InputError(f"{self.identifier}: readout must be 'last' or 'mean', got {self.readout!r}")
        if self.template not in ("auto", "none"):
            raise InputError(f"{self.identifier}: template must be 'auto' or 'none', got {self.template!r}")
        if self.kind == "causal" and "{caption}" not in self.prompt:
            raise InputError(f"{self.identifier}: prompt must contain '{{caption}}', got {self.prompt!r}")

    @property
    def layers(self) -> tuple[Layer, ...]:
        return make_layers([f"hidden_states.{i}" for i in range(self.n_layers + 1)], "NLC")

    def fingerprint(self) -> dict[str, str]:
        import transformers

        fp = {"model": self.identifier, "weights": self.weights_id, "kind": self.kind, "readout": self.readout,
              "max_length": str(self.max_length), "torch": torch.__version__.split("+")[0],
              "transformers": transformers.__version__, "class": type(self).__qualname__}
        if self.kind == "causal":
            fp.update(template=self.template, prompt=self.prompt)
        return fp

    # --- building ----------------------------------------------------------------------------------------
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = hub.load_pretrained(AutoTokenizer, self.folder)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "left" if self.kind == "causal" else "right"
            # the last-token readout must read the end of the prompt (the generation prompt), also past 512 tokens
            tokenizer.truncation_side = "left" if self.kind == "causal" else "right"
            self._tokenizer = tokenizer
        return self._tokenizer

    def network(self, device: str = "cpu") -> torch.nn.Module:
        if self._network is None:
            from transformers import AutoModel, AutoModelForCausalLM

            if self.kind == "causal":  # as Shen et al. load it; the base model (no LM head) gives the same states
                self._network = hub.load_pretrained(AutoModelForCausalLM, self.folder,
                                                    dtype=torch.float32).base_model.eval()
            else:
                self._network = hub.load_pretrained(AutoModel, self.folder, dtype=torch.float32).eval()
        if self._device != device:
            self._network.to(device)
            self._device = device
        return self._network

    def texts_for(self, texts: Sequence[str]) -> list[str]:
        """What the tokenizer sees for each stimulus text."""
        if self.kind == "encoder":
            return list(texts)
        tokenizer = self.tokenizer()
        messages = [self.prompt.format(caption=text) for text in texts]
        if self.template == "auto" and getattr(tokenizer, "chat_template", None):
            return [tokenizer.apply_chat_template([{"role": "user", "content": m}], tokenize=False,
                                                  add_generation_prompt=True) for m in messages]
        return messages

    # --- extraction --------------------------------------------------------------------------------------
    def iter_activations(self, stimuli: StimulusSet, layers: Sequence[str], *, pooling: str = "avg",
                         device: str = "cpu", batch_size: int = 64, precision: str = "fp32",
                         ) -> Iterator[ActivationBatch]:
        require_modality(self, stimuli)
        if pooling != "avg":
            raise InputError(f"model {self.identifier!r}: text has no fixed length to {pooling!r}; use "
                             f"pooling='avg' (the {self.readout} token readout)")
        names = [layer.name for layer in self.layers]
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise InputError(f"model {self.identifier!r} has no layer(s) {unknown}; it has {names}")
        indices = {name: names.index(name) for name in layers}
        tokenizer, network = self.tokenizer(), self.network(device)
        positions = "position_ids" in inspect.signature(network.forward).parameters
        cuda = device.startswith("cuda")
        texts = [stimuli.load(i) for i in range(len(stimuli))]
        batches = (texts[start:start + batch_size] for start in range(0, len(texts), batch_size))

        def compute(chunk: list[str]) -> dict[str, torch.Tensor]:
            encoded = tokenizer(self.texts_for(chunk), padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(device)
            mask = encoded["attention_mask"]
            inputs = dict(encoded)
            if self.kind == "causal":
                inputs.pop("token_type_ids", None)
                if positions:  # count positions from each text's first real token, whatever the padding
                    inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
            hidden = network(**inputs, output_hidden_states=True, return_dict=True).hidden_states
            last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)  # the last real token, either padding side
            rows = torch.arange(mask.shape[0], device=mask.device)
            out = {}
            for name, index in indices.items():
                states = hidden[index]
                if self.readout == "last":
                    out[name] = states[rows, last].float()
                else:
                    weights = mask.unsqueeze(-1).to(torch.float32)
                    out[name] = (states.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            return out

        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and precision == "bf16")
        with torch.inference_mode(), autocast:
            yield from stream_to_host(batches, compute, list(layers), device)
