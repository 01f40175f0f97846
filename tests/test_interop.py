"""Parity with Hugging Face transformers' LlamaForCausalLM (weights copied from the other model)."""

import pytest
import torch

transformers = pytest.importorskip(
    "transformers", reason="transformers is a test dependency: pip install -r requirements-test.txt"
)

from transformer_lib import ModelConfig, Transformer  # noqa: E402
from transformer_lib.interop import from_hf, from_hf_config, to_hf  # noqa: E402

CASES = [(4, True), (4, False), (2, True), (1, False)]  # (num_kv_heads, tied)


def random_llama(num_kv_heads, tied, seed=0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=num_kv_heads, max_position_embeddings=64,
        tie_word_embeddings=tied, rope_theta=500.0, rms_norm_eps=1e-6, eos_token_id=None,
    )
    return transformers.LlamaForCausalLM(config).float().eval()


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
