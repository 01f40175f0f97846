"""Checks for the exercises of chapter 4 (attention)."""

from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode

from ...model.attention import causal_mask
from ...model.rope import apply_rope, rope_tables
from .. import check


def _attention_flops(batch: int, heads: int, length: int, head_dim: int) -> int:
    """FLOPs of q k^T and weights v, counted by PyTorch on shape-only (meta) tensors."""
    with FlopCounterMode(display=False) as counter:
        q = torch.empty(batch, heads, length, head_dim, device="meta")  # (B, H, T, D)
        weights = torch.softmax(q @ q.transpose(-2, -1), dim=-1)  # (B, H, T, T)
        weights @ q  # (B, H, T, D)
    return counter.get_total_flops()


def exercise_1(attention_flops) -> None:
    """FLOPs of QK^T and AV for T = 1,024 in one GPT-2-small layer (12 heads of 64)."""
    check("exercise 1", attention_flops,
          lambda answer: int(answer) == answer and answer == _attention_flops(1, 12, 1024, 64),
          hint="count one head first: what are the shapes of the two products, and what does "
               "2mnp give for each? Then multiply by the number of heads")


def _kv_gib(layers: int, kv_heads: int, head_dim: int, tokens: int, bytes_per: int) -> float:
    return 2 * layers * kv_heads * head_dim * tokens * bytes_per / 2**30


def exercise_2(gib) -> None:
    """(grouped, multi-head): KV-cache GiB of a Llama-3-8B shape for 8,192 bfloat16 tokens."""
    expected = (_kv_gib(32, 8, 128, 8192, 2), _kv_gib(32, 32, 128, 8192, 2))
    check("exercise 2", gib,
          lambda answer: len(answer) == 2 and all(
              math.isclose(float(a), e, rel_tol=1e-6) for a, e in zip(answer, expected, strict=True)),
          hint="give a pair (grouped, multi-head) in GiB; each token stores a key and a value "
               "in every layer, one vector of head_dim numbers per key/value head, 2 bytes each")


def exercise_3(visible_keys) -> None:
    """Keys the second of 3 new tokens may read after 4 cached ones: causal_mask(3, 7)[1]."""
    expected = causal_mask(3, 7)[1].nonzero().flatten().tolist()
    check("exercise 3", visible_keys, lambda answer: [int(i) for i in answer] == expected,
          hint="the cached tokens come first in the sequence; find the position of the second "
               "new token in the whole sequence, then list every key a token at that position "
               "may read (in increasing order)")


def _attends_back(query: torch.Tensor, key: torch.Tensor, offset: int, length: int = 24) -> bool:
    """True when every query whose position allows it puts most weight `offset` tokens back."""
    head_dim = query.shape[-1]
    cos, sin = rope_tables(head_dim, length)
    queries = apply_rope(query.expand(1, 1, length, head_dim), cos, sin)  # (1, 1, T, D)
    keys = apply_rope(key.expand(1, 1, length, head_dim), cos, sin)
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(head_dim)  # (1, 1, T, T)
    weights = torch.softmax(scores.masked_fill(~causal_mask(length, length), float("-inf")), -1)
    rows = torch.arange(offset, length)
    return bool((weights[0, 0, rows, rows - offset] > 0.5).all())


def exercise_4(key_two_back, query: torch.Tensor) -> None:
    """A key vector that, with the chapter's query vector, makes the head read 2 tokens back."""
    check("exercise 4", key_two_back,
          lambda key: key.shape == query.shape and _attends_back(query, key.float(), 2),
          hint="the previous-token key was the query turned as if it sat at position 1; the "
               "score only depends on the offset, so which position should the turn use now?")


def exercise_5(largest_weight) -> None:
    """{"scaled": w, "unscaled": w}: mean largest attention weight of the stored model."""

    def is_right(answer) -> bool:
        scaled, unscaled = float(answer["scaled"]), float(answer["unscaled"])
        return 0 < scaled < 1 and scaled + 0.05 < unscaled <= 1

    check("exercise 5", largest_weight, is_right,
          hint="give a dict with keys 'scaled' and 'unscaled', each the largest weight of every "
               "row (row 0 left out) averaged over rows, heads and layers; to drop the 1/sqrt(D), "
               "multiply every q_proj.weight of a copy of the model by sqrt(head_dim)")
