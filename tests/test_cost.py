"""The FLOPs and bytes per token of analysis.cost, checked against counts made independently:
FLOPs counted by torch's FlopCounterMode on a real forward and backward, parameters from a
built model."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from transformer_lib import ModelConfig, Transformer
from transformer_lib.analysis import cost

CONFIG = ModelConfig(vocab_size=96, d_model=64, num_layers=3, num_heads=4, num_kv_heads=2,
                     max_seq_len=32)


GELU = ModelConfig(vocab_size=96, d_model=64, num_layers=3, num_heads=4, num_kv_heads=2,
                   max_seq_len=32, mlp="gelu")


@pytest.mark.parametrize("config", [CONFIG, GELU], ids=["swiglu", "gelu"])
def test_matmul_parameters_are_the_built_models_minus_embedding_and_norms(config):
    model = Transformer(config)
    norms = sum(p.numel() for name, p in model.named_parameters() if "norm" in name)
    embedding = config.vocab_size * config.d_model
    head = embedding  # tied: the head's matrix is the embedding, and it does multiply
    assert cost.matmul_parameters(config) == model.num_parameters() - norms - embedding + head


def counted_flops(model, ids, backward):
    with FlopCounterMode(display=False) as counter:
        logits = model(ids)
        if backward:
            F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    return counter.get_total_flops()


def test_flops_per_token_match_a_flop_counter():
    # FlopCounterMode counts matrix products; on the CPU it does not count the fused attention
    # kernel, so the model's count is the 2N (forward) and 6N (training) part, and the attention
    # part is counted on attention written out as matrix products, per layer
    model = Transformer(CONFIG)
    T = CONFIG.max_seq_len
    ids = torch.randint(0, CONFIG.vocab_size, (2, T))
    N = cost.matmul_parameters(CONFIG)
    attention = cost.attention_flops_per_token(CONFIG, T)
    assert counted_flops(model, ids, backward=False) / ids.numel() in (2 * N, 2 * N + attention)
    assert counted_flops(model, ids, backward=True) / ids.numel() in (6 * N, 6 * N + 3 * attention)
    H, D = CONFIG.num_heads, CONFIG.head_dim
    q, k, v = (torch.randn(1, H, T, D, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as counter:
        out = (q @ k.transpose(-1, -2) / D**0.5).softmax(-1) @ v  # (1, H, T, D)
        out.sum().backward()
    assert counter.get_total_flops() / T * CONFIG.num_layers == 3 * attention
    assert cost.training_flops_per_token(CONFIG, T) == 6 * N + 12 * CONFIG.num_layers * T * (
        CONFIG.d_model)


def test_decode_bytes_are_weights_and_cache():
    cache = Transformer(CONFIG).make_caches(1, 10)
    cache_bytes = sum(b.numel() * b.element_size() for c in cache for b in c.buffers())
    assert cost.kv_cache_bytes_per_token(CONFIG) * 10 == cache_bytes
    weights = 4 * cost.matmul_parameters(CONFIG)
    assert cost.decode_bytes_per_token(CONFIG, 10) == weights + cache_bytes
    assert cost.decode_bytes_per_token(CONFIG, 0, batch_size=8) == weights / 8


def test_roofline():
    assert cost.attainable_flops(0.5, peak_flops=1e11, bandwidth=1e10) == 5e9
    assert cost.attainable_flops(1e3, peak_flops=1e11, bandwidth=1e10) == 1e11
    assert cost.ridge_intensity(1e11, 1e10) == 10
    decode = cost.Workload("decode", flops=2e6, bytes=4e6)
    assert decode.intensity == 0.5
    assert math.isclose(cost.roofline_seconds(decode, 1e11, 1e10), 2e6 / 5e9)
    with pytest.raises(ValueError, match="positive"):
        cost.attainable_flops(0.0, 1e11, 1e10)


def test_machine_measurements_are_positive_and_plausible():
    flops = cost.measured_matmul_flops(n=128, repeats=2)
    bandwidth = cost.measured_bandwidth(mebibytes=8, repeats=2)
    assert 1e7 < flops < 1e15 and 1e7 < bandwidth < 1e13
