"""What a forward or training step costs: FLOPs and bytes per token, and the roofline.

The FLOPs follow the convention of PaLM (Chowdhery et al., 2022, appendix B) and nanoGPT: a
token passing forward through a matrix of N weights costs 2N FLOPs (one multiply, one add), and
its backward pass twice that, so training costs 6N per token. Attention adds, per layer, the
scores q·k and the weighted sum of the values over T positions, 2·T·C FLOPs each forward
(C = d_model = heads × head size): 4·L·T·C forward, 12·L·T·C for training. The causal mask
halves the useful part of that on average; the convention counts it whole. N counts the weights
that multiply: every block's matrices and the output head, not the embedding (a lookup) nor the
norms' gains (one multiply per feature, negligible).

Bytes are the weights a step must read from memory (4 per float32 number), plus, when decoding,
the keys and values of the KV cache. At batch 1 every weight is read for one token, which is why
decoding is memory-bound on any hardware; a batch of B tokens shares one read.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..model.config import ModelConfig

FP32_BYTES = 4


def matmul_parameters(config: ModelConfig) -> int:
    """N: the weights a token is multiplied by (block matrices and output head), no embedding."""
    d, kv_width = config.d_model, config.num_kv_heads * config.head_dim
    attention = 2 * d * d + 2 * d * kv_width  # q and o; k and v
    matrices = 2 if config.mlp == "gelu" else 3  # up and down; SwiGLU adds the gate
    feed_forward = matrices * d * config.ffn_hidden_dim
    return config.num_layers * (attention + feed_forward) + config.vocab_size * d  # + lm_head


def attention_flops_per_token(config: ModelConfig, context: int) -> int:
    """Forward FLOPs of the scores and the weighted sum for one query over ``context`` keys."""
    return 4 * config.num_layers * context * config.d_model


def forward_flops_per_token(config: ModelConfig, context: int) -> int:
    """2N + 4·L·T·C: one token's forward pass with ``context`` positions to attend to."""
    return 2 * matmul_parameters(config) + attention_flops_per_token(config, context)


def training_flops_per_token(config: ModelConfig, context: int) -> int:
    """6N + 12·L·T·C: forward and backward (twice the forward) for one token of a sequence of
    ``context`` tokens."""
    return 3 * forward_flops_per_token(config, context)


def kv_cache_bytes_per_token(config: ModelConfig, bytes_per_value: int = FP32_BYTES) -> int:
    """Bytes of keys and values one position holds in every layer's cache."""
    return 2 * config.num_layers * config.num_kv_heads * config.head_dim * bytes_per_value


def decode_bytes_per_token(config: ModelConfig, context: int, batch_size: int = 1,
                           bytes_per_value: int = FP32_BYTES) -> float:
    """Bytes read to decode one token: the weights (shared by ``batch_size`` sequences) and this
    sequence's ``context`` cached keys and values."""
    weights = matmul_parameters(config) * bytes_per_value / batch_size
    return weights + context * kv_cache_bytes_per_token(config, bytes_per_value)


def training_bytes_per_token(config: ModelConfig, tokens_per_step: int,
                             bytes_per_value: int = FP32_BYTES) -> float:
    """Weight traffic of one training step per token: the weights read in the forward and twice
    in the backward (activations left out, so the true traffic is higher)."""
    return 3 * matmul_parameters(config) * bytes_per_value / tokens_per_step


@dataclass(frozen=True)
class Workload:
    """One point of a roofline: FLOPs and bytes moved per token."""

    name: str
    flops: float
    bytes: float

    def __post_init__(self) -> None:
        for field in ("flops", "bytes"):  # a roofline is log-log: both must be positive
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not 0 < value < math.inf:
                raise ValueError(f"Workload {self.name!r}: {field}={value!r} must be a positive "
                                 f"finite number (per token)")

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte."""
        return self.flops / self.bytes


def attainable_flops(intensity: float, peak_flops: float, bandwidth: float) -> float:
    """The roofline: min(peak, intensity × bandwidth), in FLOP/s."""
    if peak_flops <= 0 or bandwidth <= 0 or intensity <= 0:
        raise ValueError("peak_flops, bandwidth and intensity must be positive")
    return min(peak_flops, intensity * bandwidth)


def ridge_intensity(peak_flops: float, bandwidth: float) -> float:
    """The intensity (FLOPs per byte) at which a workload stops being memory-bound."""
    return peak_flops / bandwidth


def roofline_seconds(workload: Workload, peak_flops: float, bandwidth: float) -> float:
    """The least time one token of ``workload`` can take: its FLOPs at the attainable rate."""
    return workload.flops / attainable_flops(workload.intensity, peak_flops, bandwidth)


# ---- measuring the machine --------------------------------------------------------------------


def best_seconds(fn: Callable[[], object], repeats: int = 5) -> float:
    """Fastest of ``repeats`` calls of fn() in seconds, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measured_matmul_flops(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of an n × n float32 matrix product on the current device and threads (CPU)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_seconds(lambda: a @ b, repeats)


def measured_bandwidth(mebibytes: int = 64, repeats: int = 5) -> float:
    """Bytes/s of a large float32 copy (read and written) on the CPU."""
    source = torch.ones(mebibytes * 2**20 // FP32_BYTES)
    target = torch.empty_like(source)
    return 2 * source.nbytes / best_seconds(lambda: target.copy_(source), repeats)
