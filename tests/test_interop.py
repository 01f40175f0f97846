"""Parity with Hugging Face transformers' LlamaForCausalLM (weights copied from the other model)."""

import pytest
import torch

transformers = pytest.importorskip(
    "transformers", reason="transformers is a test dependency: pip install -r requirements-test.txt"
)

from transformer_lib import ModelConfig, Transformer  # noqa: E402
from transformer_lib.interop import (  # noqa: E402
    from_hf,
    from_hf_config,
    from_hf_state_dict,
    to_hf,
)

CASES = [(4, True), (4, False), (2, True), (1, False)]  # (num_kv_heads, tied)


def randomize_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fill every parameter with random values, norm gains included, and check none is left.

    Both libraries initialise every norm gain to 1, so a parity test on freshly built models
    could not notice a dropped or swapped norm weight; with distinct random gains it does.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:  # norm gains: positive, different per layer and dimension
                values = torch.rand(param.shape, generator=generator) + 0.5
            else:  # matrices scaled by fan-in, so logits stay of order one
                values = torch.randn(param.shape, generator=generator) / param.shape[-1] ** 0.5
            assert not torch.equal(values, param), name
            param.copy_(values)
    return model


def random_llama(num_kv_heads, tied, seed=0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=num_kv_heads, max_position_embeddings=64,
        tie_word_embeddings=tied, rope_theta=500.0, rms_norm_eps=1e-6, eos_token_id=None,
    )
    return randomize_(transformers.LlamaForCausalLM(config).float().eval(), seed)


@pytest.mark.parametrize("num_kv_heads, tied", CASES)
def test_from_hf_logits_match(num_kv_heads, tied):
    hf = random_llama(num_kv_heads, tied)
    ours = from_hf(hf).eval()
    assert ours.config.rope_theta == 500.0 and ours.config.tie_embeddings == tied
    ids = torch.randint(0, 128, (2, 33))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_kv_heads, tied", CASES)
def test_to_hf_logits_match(num_kv_heads, tied):
    torch.manual_seed(3)
    ours = Transformer(ModelConfig(vocab_size=96, d_model=64, num_layers=2, num_heads=4,
                                   num_kv_heads=num_kv_heads, tie_embeddings=tied,
                                   max_seq_len=64)).eval()
    randomize_(ours, seed=3)
    hf = to_hf(ours)
    assert isinstance(hf, transformers.LlamaForCausalLM)
    ids = torch.randint(0, 96, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids), atol=1e-5, rtol=0)
    assert from_hf_config(hf.config) == ours.config


@pytest.mark.parametrize("num_kv_heads, tied", [(4, False), (2, True)])
def test_greedy_generation_matches_transformers(num_kv_heads, tied):
    hf = random_llama(num_kv_heads, tied, seed=5)
    ours = from_hf(hf)
    prompt = torch.randint(0, 128, (2, 8))
    expected = hf.generate(prompt, max_new_tokens=24, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(prompt, 24, temperature=0), expected)


def test_unsupported_llama_features_are_refused():
    hf = random_llama(4, False)
    hf.config.attention_bias = True
    with pytest.raises(ValueError, match="attention_bias"):
        from_hf_config(hf.config)


def test_every_norm_gain_is_random_and_distinct():
    hf = random_llama(2, True)
    gains = [p for name, p in hf.named_parameters() if name.endswith("norm.weight")]
    assert len(gains) == 5  # two per layer and the final one
    assert all((g != 1).all() for g in gains)
    assert not torch.equal(gains[0], gains[1])


def _always_token(token: int, vocab_size: int = 16) -> Transformer:
    """A model whose greedy choice is always ``token``: the residual stream is the embedding
    (attention and MLP outputs zeroed), every embedding is the same positive vector, and only
    the output row of ``token`` is non-zero."""
    model = Transformer(ModelConfig(vocab_size=vocab_size, d_model=32, num_layers=1,
                                    num_heads=2, tie_embeddings=False, max_seq_len=32)).eval()
    with torch.no_grad():
        model.layers[0].self_attn.o_proj.weight.zero_()
        model.layers[0].mlp.down_proj.weight.zero_()
        model.embed_tokens.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[token] = 1.0
    return model


@pytest.mark.parametrize("token", [1, 2])
def test_exported_generate_does_not_stop_at_an_ordinary_token(token):
    ours = _always_token(token)
    hf = to_hf(ours)
    assert (hf.config.bos_token_id, hf.config.eos_token_id, hf.config.pad_token_id) == \
        (None, None, None)
    prompt = torch.tensor([[3, 4, 5]])
    expected = ours.generate(prompt, 12, temperature=0)
    assert expected[0, 3:].tolist() == [token] * 12
    out = hf.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(out, expected)


def test_to_hf_takes_special_ids_from_the_tokenizer():
    from transformer_lib.data.llama2c import Llama2cTokenizer
    from transformer_lib.data.tokenizer import GPT2_PATTERN, Tokenizer

    ours = Transformer(ModelConfig.from_preset("tiny", vocab_size=300))
    book = Tokenizer("bytes", GPT2_PATTERN, {bytes([b]): b for b in range(256)})
    hf = to_hf(ours, tokenizer=book)
    assert book.eot_id == 256
    assert (hf.config.bos_token_id, hf.config.eos_token_id, hf.config.pad_token_id) == \
        (256, 256, 256)
    assert hf.generation_config.eos_token_id == 256
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)]
    llama2c = Llama2cTokenizer("toy", pieces, [0.0] * len(pieces))
    hf = to_hf(ours, tokenizer=llama2c)
    assert (hf.config.bos_token_id, hf.config.eos_token_id, hf.config.pad_token_id) == \
        (1, 2, None)


def test_conversion_refuses_source_weights_it_would_drop():
    hf = random_llama(2, False)
    config = hf.config
    state = dict(hf.state_dict())
    extra = {**state, "model.layers.0.self_attn.q_proj.bias": torch.zeros(64)}
    with pytest.raises(ValueError, match="q_proj.bias"):
        from_hf_state_dict(extra, config)
    misspelled = dict(state)
    misspelled["model.norm.weigth"] = misspelled.pop("model.norm.weight")
    with pytest.raises(KeyError, match="model.norm.weigth"):
        from_hf_state_dict(misspelled, config)
    assert torch.equal(from_hf_state_dict(state, config).norm.weight, state["model.norm.weight"])


def test_a_tied_model_saved_by_transformers_loads_without_its_head(tmp_path):
    """save_pretrained leaves lm_head.weight out of a tied model's files."""
    from safetensors.torch import load_file

    hf = random_llama(2, True, seed=7)
    hf.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert "lm_head.weight" not in saved
    ours = from_hf_state_dict(saved, hf.config)
    assert not ours.training
    ids = torch.randint(0, 128, (2, 17))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)
    state = dict(hf.state_dict())
    state["lm_head.weight"] = state["lm_head.weight"] + 1  # no longer the embedding
    with pytest.raises(ValueError, match="tie_word_embeddings=False"):
        from_hf_state_dict(state, hf.config)


def test_rotary_frequency_buffers_of_older_checkpoints_are_checked_and_skipped():
    """Llama checkpoints saved by transformers before 4.31 hold each layer's inv_freq."""
    hf = random_llama(2, False, seed=3)
    head_dim = hf.config.hidden_size // hf.config.num_attention_heads
    frequencies = 1.0 / 500.0 ** (torch.arange(0, head_dim, 2).double() / head_dim)
    state = dict(hf.state_dict())
    for layer in range(hf.config.num_hidden_layers):
        state[f"model.layers.{layer}.self_attn.rotary_emb.inv_freq"] = frequencies.float()
    ids = torch.randint(0, 128, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(from_hf_state_dict(state, hf.config)(ids), hf(ids).logits,
                                   atol=1e-5, rtol=0)
        for dtype in (torch.float16, torch.bfloat16):  # saved in a half-precision checkpoint's
            rounded = {name: (frequencies.to(dtype) if name.endswith("inv_freq") else tensor)
                       for name, tensor in state.items()}
            torch.testing.assert_close(from_hf_state_dict(rounded, hf.config)(ids),
                                       hf(ids).logits, atol=1e-5, rtol=0)
    state["model.layers.1.self_attn.rotary_emb.inv_freq"] = frequencies.float() / 8  # scaled
    with pytest.raises(ValueError, match="rotary frequencies other than those of rope_theta=500"):
        from_hf_state_dict(state, hf.config)


def test_models_that_only_look_like_llama_are_refused():
    """Mistral with a sliding window and Gemma share Llama's weight names but compute other
    logits; converting them would give a wrong model without a word."""
    shape = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    windowed = transformers.MistralForCausalLM(transformers.MistralConfig(**shape,
                                                                        sliding_window=4))
    with pytest.raises(ValueError, match="sliding_window=4"):
        from_hf(windowed)
    gemma = transformers.GemmaForCausalLM(transformers.GemmaConfig(**shape, head_dim=8))
    with pytest.raises(ValueError, match="model_type='gemma'"):
        from_hf(gemma)
    # Mistral without a window is Llama under another name, and converts exactly.
    torch.manual_seed(0)
    plain = randomize_(transformers.MistralForCausalLM(
        transformers.MistralConfig(**shape, sliding_window=None)).float().eval(), seed=1)
    ids = torch.randint(0, 64, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(from_hf(plain)(ids), plain(ids).logits, atol=1e-5, rtol=0)
