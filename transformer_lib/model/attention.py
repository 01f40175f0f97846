"""Causal self-attention with grouped-query heads: a fused SDPA path and an explicit-math path.

Both paths share the projections and RoPE; they differ only in how softmax(QK^T/sqrt(D))V is
computed. ``forward`` uses ``torch.nn.functional.scaled_dot_product_attention`` (Flash or
memory-efficient kernels where the device has them); ``forward_with_weights`` spells the math out
and also returns the attention weights, for plots and teaching. A test keeps them equal.

Notation: B batch, T query positions, S key positions, H query heads, K key/value heads,
D head dimension, C = d_model.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .rmsnorm import RMSNorm
from .rope import apply_rope


class KVCache(nn.Module):
    """Keys and values of past positions, so each generated token costs one position of work.

    Shape contract: ``k_cache`` and ``v_cache`` are (B, K, max_seq_len, D); ``length`` positions
    are filled. ``update(k, v)`` appends (B, K, T, D) and returns everything filled so far.
    """

    def __init__(self, batch_size: int, num_kv_heads: int, max_seq_len: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        super().__init__()
        shape = (batch_size, num_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device),
                             persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device),
                             persistent=False)
        self.length = 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Buffers read once into locals: each module attribute lookup costs a Python call, and a
        # decoding step runs this once per layer.
        k_cache, v_cache = self.k_cache, self.v_cache
        B, K, capacity, D = k_cache.shape
        if k.shape != v.shape or (k.shape[0], k.shape[1], k.shape[3]) != (B, K, D):
            raise ValueError(f"KV cache holds batch size {B}, {K} heads of size {D}; got batch "
                             f"size {k.shape[0]}, {k.shape[1]} heads of size {k.shape[3]} (keys "
                             f"{tuple(k.shape)}, values {tuple(v.shape)})")
        if k.dtype != k_cache.dtype or v.dtype != k_cache.dtype:
            raise ValueError(f"KV cache holds {k_cache.dtype}; got {k.dtype} keys and "
                             f"{v.dtype} values. The caches were made under a different "
                             f"dtype or autocast setting than the model now runs with: call "
                             f"model.make_caches inside the same torch.autocast block (or "
                             f"outside any) that runs the model")
        start = self.length
        end = start + k.shape[2]
        if end > capacity:
            raise ValueError(f"KV cache holds {capacity} positions; cannot reach {end}")
        # narrow + copy_ rather than slice assignment: two dispatches per tensor instead of five,
        # in a step that is dozens of small operations.
        k_cache.narrow(2, start, end - start).copy_(k)
        v_cache.narrow(2, start, end - start).copy_(v)
        self.length = end
        return k_cache.narrow(2, 0, end), v_cache.narrow(2, 0, end)

    def reset(self) -> None:
        self.length = 0


def causal_mask(num_queries: int, num_keys: int, device=None) -> torch.Tensor:
    """Boolean (T, S) mask, True where attention is allowed; the T queries are the last T keys."""
    offset = num_keys - num_queries
    rows = torch.arange(num_queries, device=device).unsqueeze(1)
    cols = torch.arange(num_keys, device=device).unsqueeze(0)
    return cols <= rows + offset


def attention_weights(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale) with a causal mask; q (B, H, T, D), k (B, H, S, D) -> (B, H, T, S).

    ``scale`` defaults to 1/sqrt(D).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, T, S)
    mask = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
    scores = scores.masked_fill(~mask, float("-inf"))
    if scores.dtype in (torch.float16, torch.bfloat16):  # half precision: the softmax in float32
        scores = scores.float()
    return torch.softmax(scores, dim=-1).to(q.dtype)


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Repeat each key/value head for its group of query heads: (B, K, S, D) -> (B, K*groups, S, D)."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def attention_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype RoPE and the attention core run in for projections of ``dtype`` on ``device``.

    bfloat16 on a CPU becomes float32: PyTorch's CPU flash-attention kernel and the RoPE rotation
    were measured slower in bfloat16 than in float32 (figures in benchmarks/RESULTS.md).
    Projections stay in the autocast dtype. KV caches are allocated in this dtype too, so decoding never
    converts the whole cache.
    """
    return torch.float32 if device.type == "cpu" and dtype == torch.bfloat16 else dtype


class Attention(nn.Module):
    """Multi-head causal self-attention with RoPE and grouped-query key/value heads."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.num_kv_heads = config.num_kv_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        kv_dim = config.num_kv_heads * config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.k_proj = nn.Linear(config.d_model, kv_dim, bias=False)
        self.v_proj = nn.Linear(config.d_model, kv_dim, bias=False)
        self.o_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        # None: scaled_dot_product_attention's own 1/sqrt(D); 1.0 drops the scale (an ablation).
        self.scale = None if config.attention_scale else 1.0
        if config.qk_norm:
            self.q_norm = RMSNorm(config.head_dim, config.norm_eps)
            self.k_norm = RMSNorm(config.head_dim, config.norm_eps)
        else:
            self.q_norm = self.k_norm = None
        # Speed-run additions (chapter 12 measures them): a table of per-token vectors added to
        # the values, and values averaged with the first layer's (given to forward).
        self.value_embedding = (nn.Embedding(config.vocab_size, kv_dim)
                                if config.value_embeddings else None)
        self.value_residual = config.value_residual

    def values(self, x: torch.Tensor, input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """This layer's own values (B, K, T, D) for x (B, T, C): the projection of x, plus the
        value embeddings of ``input_ids`` (B, T) if the model has them."""
        B, T, _ = x.shape
        v = self.v_proj(x)  # (B, T, K*D)
        if self.value_embedding is not None:
            if input_ids is None:
                raise ValueError("this model adds value embeddings to its values: pass the "
                                 "input_ids (Transformer.forward does)")
            v = v + self.value_embedding(input_ids).to(v.dtype)
        return v.view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)  # -> (B, K, T, D)

    def _project(self, x, cos, sin, cache, input_ids=None, first_values=None):
        B, T, _ = x.shape
        # (B, T, C) -> (B, T, H, D) -> (B, H, T, D); likewise with K heads for keys
        q = self.q_proj(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.values(x, input_ids)  # (B, K, T, D)
        if self.value_residual:
            if first_values is None:
                raise ValueError("this model averages each layer's values with the first "
                                 "layer's: pass first_values (Transformer.forward does)")
            v = 0.5 * (v + first_values.to(v.dtype))  # the first layer's own: 0.5 (v + v) = v
        compute_dtype = attention_dtype(q.dtype, q.device)
        if compute_dtype != q.dtype:
            q, k, v = q.to(compute_dtype), k.to(compute_dtype), v.to(compute_dtype)
        if self.q_norm is not None:
            q, k = self.q_norm(q).to(q.dtype), self.k_norm(k).to(k.dtype)
        if cos is not None:  # None: the model has no rotary positions (absolute or none)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, K, S, D) with S = positions so far
        return q, k, v

    def _merge_heads(self, out: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))  # (B, H, T, D) -> (B, T, C)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None, input_ids: torch.Tensor | None = None,
                first_values: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C); cos/sin (T, D) for the positions of x; returns (B, T, C).

        ``input_ids`` (B, T) and ``first_values`` (B, K, T, D) are needed only by a model with
        value embeddings and value residuals respectively (see :meth:`values`)."""
        q, k, v = self._project(x, cos, sin, cache, input_ids, first_values)
        T, S = q.shape[2], k.shape[2]
        if T == S:
            mask, is_causal = None, True
        elif T == 1:
            mask, is_causal = None, False  # one new query sees every cached key
        else:
            mask, is_causal = causal_mask(T, S, device=x.device), False
        # Autocast would turn float32 attention (see attention_dtype) back into bfloat16.
        upcast = q.dtype == torch.float32 and torch.is_autocast_enabled(x.device.type)
        with torch.autocast(x.device.type, enabled=False) if upcast else nullcontext():
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal,
                dropout_p=self.dropout if self.training else 0.0, scale=self.scale,
                enable_gqa=self.num_kv_heads != self.num_heads,
            )  # (B, H, T, D)
        return self._merge_heads(out.to(x.dtype))

    def forward_with_weights(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                             cache: KVCache | None = None, input_ids: torch.Tensor | None = None,
                             first_values: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same computation spelled out; returns (output (B, T, C), weights (B, H, T, S))."""
        q, k, v = self._project(x, cos, sin, cache, input_ids, first_values)
        groups = self.num_heads // self.num_kv_heads
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)  # (B, H, S, D)
        weights = attention_weights(q, k, self.scale)  # (B, H, T, S)
        dropped = F.dropout(weights, self.dropout, self.training)
        return self._merge_heads((dropped @ v).to(x.dtype)), weights
