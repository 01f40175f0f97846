"""Properties of the building blocks: RMSNorm, RoPE, attention."""

import math

import pytest
import torch

from transformer_lib import ModelConfig
from transformer_lib.model.attention import Attention, attention_weights, causal_mask
from transformer_lib.model.rmsnorm import RMSNorm
from transformer_lib.model.rope import (
    apply_rope,
    apply_rope_interleaved,
    halves_to_interleaved,
    interleaved_to_halves,
    rope_frequencies,
    rope_tables,
)


def test_rmsnorm_matches_definition_and_is_scale_invariant():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 16)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    # eps only matters when mean(x^2) is comparable to it, so test scales that keep it negligible
    for scale in (0.5, 3.0, 1e3):
        torch.testing.assert_close(norm(scale * x), norm(x), atol=1e-5, rtol=1e-5)
    # RMS of the normalised vector is 1 before the gain
    plain = RMSNorm(16, eps=0.0)(x)
    torch.testing.assert_close(plain.pow(2).mean(-1), torch.ones(3, 5))


def test_rope_frequencies_and_tables():
    freqs = rope_frequencies(8, theta=10000.0)
    torch.testing.assert_close(freqs, torch.tensor([1.0, 0.1, 0.01, 0.001]))
    cos, sin = rope_tables(8, 5)
    assert cos.shape == sin.shape == (5, 8)
    torch.testing.assert_close(cos[0], torch.ones(8))
    torch.testing.assert_close(cos[3, :4], cos[3, 4:])  # split halves share angles
    assert math.isclose(sin[2, 0].item(), math.sin(2.0), rel_tol=1e-6)
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(7)


def test_rope_preserves_norms():
    torch.manual_seed(0)
    cos, sin = rope_tables(16, 32)
    x = torch.randn(2, 3, 32, 16)
    rotated = apply_rope(x, cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    assert not torch.allclose(rotated[:, :, 1:], x[:, :, 1:])  # it did rotate


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    cos, sin = rope_tables(16, 64)
    q, k = torch.randn(16), torch.randn(16)

    def score(query_pos, key_pos):
        q_rot = apply_rope(q.expand(1, 1, 64, 16), cos, sin)[0, 0, query_pos]
        k_rot = apply_rope(k.expand(1, 1, 64, 16), cos, sin)[0, 0, key_pos]
        return torch.dot(q_rot, k_rot).item()

    for offset in (0, 3, 17):
        base = score(offset, 0)
        for shift in (1, 10, 40):
            assert math.isclose(score(offset + shift, shift), base, rel_tol=1e-4, abs_tol=1e-4)
    assert not math.isclose(score(5, 0), score(9, 0), rel_tol=1e-3)


def test_interleaved_and_split_halves_conventions_agree_up_to_permutation():
    torch.manual_seed(0)
    num_heads, head_dim, d_in, T = 3, 8, 12, 10
    w_interleaved = torch.randn(num_heads * head_dim, d_in)
    w_halves = interleaved_to_halves(w_interleaved, num_heads)
    torch.testing.assert_close(halves_to_interleaved(w_halves, num_heads), w_interleaved)
    assert not torch.equal(w_halves, w_interleaved)
    x = torch.randn(T, d_in)
    # (T, H*D) -> (H, T, D)
    q_meta = (x @ w_interleaved.T).view(T, num_heads, head_dim).transpose(0, 1)
    q_hf = (x @ w_halves.T).view(T, num_heads, head_dim).transpose(0, 1)
    cos, sin = rope_tables(head_dim, T)
    rotated_meta = apply_rope_interleaved(q_meta, torch.arange(T), 10000.0)  # (H, T, D)
    rotated_hf = apply_rope(q_hf, cos, sin)
    # Same rotation: the interleaved result, permuted into halves order, equals the HF one.
    as_halves = interleaved_to_halves(rotated_meta.transpose(0, 1).reshape(T, -1).T, num_heads).T
    torch.testing.assert_close(as_halves, rotated_hf.transpose(0, 1).reshape(T, -1),
                               atol=1e-5, rtol=1e-5)


def test_causal_mask_with_cached_prefix():
    mask = causal_mask(2, 5)
    assert mask.tolist() == [[True, True, True, True, False], [True] * 5]


def test_attention_weights_are_causal_distributions():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    weights = attention_weights(q, k)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 6))
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_attention_weights_keep_float64_and_compute_half_precision_in_float32():
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 5, 8, dtype=torch.float64), torch.randn(1, 2, 5, 8, dtype=torch.float64)
    scores = (q @ k.mT) / 8 ** 0.5
    expected = torch.softmax(scores.masked_fill(~causal_mask(5, 5), float("-inf")), dim=-1)
    torch.testing.assert_close(attention_weights(q, k), expected, atol=1e-15, rtol=0)
    half = attention_weights(q.bfloat16(), k.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.double(), expected, atol=2e-2, rtol=0)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
def test_sdpa_and_explicit_attention_agree(num_kv_heads):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=10, d_model=64, num_layers=1, num_heads=4,
                         num_kv_heads=num_kv_heads, max_seq_len=32)
    attention = Attention(config).eval()
    cos, sin = rope_tables(config.head_dim, 32)
    x = torch.randn(2, 32, 64)
    fused = attention(x, cos, sin)
    explicit, weights = attention.forward_with_weights(x, cos, sin)
    torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=0)
    assert weights.shape == (2, 4, 32, 32)


def test_grouped_query_heads_share_keys():
    """With one kv head, copying it into four equal heads must not change the output."""
    torch.manual_seed(0)
    gqa = Attention(ModelConfig(vocab_size=10, d_model=32, num_layers=1, num_heads=4,
                                num_kv_heads=1)).eval()
    mha = Attention(ModelConfig(vocab_size=10, d_model=32, num_layers=1, num_heads=4)).eval()
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.o_proj.weight.copy_(gqa.o_proj.weight)
        mha.k_proj.weight.copy_(gqa.k_proj.weight.repeat(4, 1))
        mha.v_proj.weight.copy_(gqa.v_proj.weight.repeat(4, 1))
    cos, sin = rope_tables(8, 10)
    x = torch.randn(1, 10, 32)
    torch.testing.assert_close(gqa(x, cos, sin), mha(x, cos, sin), atol=1e-6, rtol=0)


def test_attention_core_dtype_policy_on_cpu(monkeypatch):
    """bfloat16 attention on a CPU upcasts to float32 (faster there); float32 stays float32."""
    import transformer_lib.model.attention as attention_module

    seen = []
    real_sdpa = attention_module.F.scaled_dot_product_attention

    def recording_sdpa(q, k, v, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return real_sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", recording_sdpa)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=64, d_model=32, num_layers=1, num_heads=4, max_seq_len=16)
    layer = Attention(config)
    x = torch.randn(2, 8, 32)
    cos, sin = rope_tables(config.head_dim, 8)
    reference = layer(x, cos, sin)
    assert seen.pop() == (torch.float32,) * 3 and reference.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = layer(x, cos, sin)
    assert seen.pop() == (torch.float32,) * 3
    assert mixed.dtype == torch.bfloat16  # the output projection still runs under autocast
    torch.testing.assert_close(mixed.float(), reference, atol=3e-2, rtol=3e-2)
    layer_bf16 = layer.to(torch.bfloat16)
    out = layer_bf16(x.bfloat16(), cos, sin)
    assert seen.pop() == (torch.float32,) * 3 and out.dtype == torch.bfloat16
