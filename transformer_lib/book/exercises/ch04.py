"""Checks for the exercises of chapter 4 (attention).

Exercise 1 runs the reader's ``attention(q, k, v)`` (causal, grouped-query, the queries being the
last positions of the keys) against the library's :func:`attention_weights` and
:func:`repeat_kv` on random inputs of several shapes, in float32 and bfloat16, the gradients of
q, k and v included, and names the known mistake a wrong answer matches. Exercise 6 measures the
reader's two mean largest weights again from the model copy they hand back.
"""

from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode

from ...model.attention import attention_weights, causal_mask, repeat_kv
from ...model.rope import apply_rope, rope_tables
from .. import Part, check, check_parts, compare_function, function_answer
from ..checking import require_tensor

# ---- exercise 1: causal grouped-query attention ------------------------------------------------


def library_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The library's causal GQA: q (B, H, T, D), k and v (B, K, S, D) -> (B, H, T, D)."""
    groups = q.shape[1] // k.shape[1]
    weights = attention_weights(q, repeat_kv(k, groups))  # (B, H, T, S), masked, scaled
    return weights @ repeat_kv(v, groups).to(weights.dtype)  # (B, H, T, D)


def _variant(q, k, v, *, scale=None, mask="causal", softmax_dim=-1, repeat="interleave"):
    """Attention with one thing changed (the known mistakes), computed in float32."""
    T, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
    groups = q.shape[1] // k.shape[1]
    if repeat == "interleave":
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    else:  # the whole stack of K heads tiled: query head h reads kv head h % K
        k, v = k.repeat(1, groups, 1, 1), v.repeat(1, groups, 1, 1)  # (B, H, S, D)
    scale = 1 / math.sqrt(D) if scale is None else scale
    scores = (q.float() @ k.float().transpose(-2, -1)) * scale  # (B, H, T, S)
    rows = torch.arange(T).unsqueeze(1) + (S - T)  # each query's position among the keys
    cols = torch.arange(S).unsqueeze(0)
    allowed = {"causal": cols <= rows, "strict": cols < rows, "one ahead": cols <= rows + 1,
               "no offset": cols <= rows - (S - T), "none": torch.ones(T, S, dtype=torch.bool)}
    scores = scores.masked_fill(~allowed[mask], float("-inf"))
    weights = torch.softmax(scores, dim=softmax_dim)
    return (weights @ v.float()).to(q.dtype)


ATTENTION_MISTAKES = {
    "divide the scores by sqrt(D), the square root of the head dimension, before the softmax: "
    "without it they grow with D and the softmax saturates":
        lambda q, k, v: _variant(q, k, v, scale=1.0),
    "divide by sqrt(D), not by D": lambda q, k, v: _variant(q, k, v, scale=1 / q.shape[-1]),
    "your mask is off by one: a query may read its own position too (key j <= its position)":
        lambda q, k, v: _variant(q, k, v, mask="strict"),
    "your mask is off by one: each query reads one key from its future":
        lambda q, k, v: _variant(q, k, v, mask="one ahead"),
    "the queries are the LAST T of the S positions: query i sits at position i + (S - T), so "
    "it may read keys 0 .. i + S - T (your mask ignores the offset of the cached keys)":
        lambda q, k, v: _variant(q, k, v, mask="no offset"),
    "mask the future: a query may not read keys after its own position":
        lambda q, k, v: _variant(q, k, v, mask="none"),
    "take the softmax over the keys (the last axis, dim=-1), so that each query's weights "
    "sum to 1": lambda q, k, v: _variant(q, k, v, softmax_dim=-2),
    "query head h reads key/value head h // (H/K): repeat each kv head for its group of "
    "neighbouring query heads (repeat_interleave), not the whole stack of kv heads (repeat)":
        lambda q, k, v: _variant(q, k, v, repeat="tile"),
}


def _attention_case(batch, heads, kv_heads, length, keys, head_dim, dtype=torch.float32,
                    seed=0):
    """(q, k, v, grad_out): random q (B, H, T, D), k and v (B, K, S, D), a gradient (B, H, T, D)."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, length, head_dim, generator=generator)
    k = torch.randn(batch, kv_heads, keys, head_dim, generator=generator)
    v = torch.randn(batch, kv_heads, keys, head_dim, generator=generator)
    grad_out = torch.randn(batch, heads, length, head_dim, generator=generator)
    return (*(t.to(dtype).requires_grad_() for t in (q, k, v)), grad_out.to(dtype))


# (B, H, K, T, S, D): batch 1 and more, odd lengths, 1, 2 and 4 query heads per kv head, a
# query offset S - T (a cache's later positions) of 0, 1, 4, 8 and 7.
FLOAT32_ATTENTION_CASES = (
    _attention_case(1, 2, 2, 5, 5, 8, seed=1),
    _attention_case(2, 4, 2, 7, 7, 16, seed=2),
    _attention_case(1, 4, 1, 3, 7, 8, seed=3),
    _attention_case(3, 8, 2, 1, 9, 16, seed=4),  # one new token after 8 cached ones
    _attention_case(2, 6, 3, 5, 12, 32, seed=5),
    _attention_case(1, 4, 2, 9, 10, 16, seed=6),
)
BF16_ATTENTION_CASES = (_attention_case(2, 4, 1, 5, 9, 16, torch.bfloat16, seed=7),
                        _attention_case(1, 4, 2, 7, 7, 32, torch.bfloat16, seed=8))


def attention_with_gradient(function):
    """Run ``function(q, k, v)`` and backpropagate: (output, q.grad, k.grad, v.grad)."""
    def run(q, k, v, grad_out):
        out = function(q, k, v)
        require_tensor(out)
        if out.shape != q.shape:
            raise ValueError(f"returned shape {tuple(out.shape)}, expected {tuple(q.shape)} "
                             "(B, H, T, D), the shape of q")
        if out.grad_fn is None:
            raise RuntimeError("the output is not connected to q, k and v by autograd (no "
                               ".detach(), .numpy() or torch.no_grad() inside)")
        out.backward(grad_out.to(out.dtype))
        return out.detach(), q.grad, k.grad, v.grad
    return run


def _describe_attention_case(case) -> str:
    q, k = case[0], case[1]
    (B, H, T, D), K, S = q.shape, k.shape[1], k.shape[2]
    return (f"B={B}, H={H}, K={K}, T={T} queries after {S - T} cached keys (S={S}), D={D} "
            f"({str(q.dtype).removeprefix('torch.')})")


# what attention_with_gradient returns, as a hint names it
ATTENTION_OUTPUTS = ("the output", "the gradient of q", "the gradient of k", "the gradient of v")


def compare_attention(reader) -> bool | str:
    """True, or what is wrong with the reader's attention (output and the gradients)."""
    mistakes = {message: attention_with_gradient(wrong)
                for message, wrong in ATTENTION_MISTAKES.items()}
    verdict = compare_function(attention_with_gradient(reader),
                               attention_with_gradient(library_attention),
                               FLOAT32_ATTENTION_CASES, mistakes, atol=1e-5, rtol=1e-4,
                               describe_case=_describe_attention_case,
                               output_names=ATTENTION_OUTPUTS)
    if verdict is not True:
        return verdict
    return compare_function(attention_with_gradient(reader),
                            attention_with_gradient(library_attention), BF16_ATTENTION_CASES,
                            atol=3e-2, rtol=3e-2, describe_case=_describe_attention_case,
                            output_names=ATTENTION_OUTPUTS)


def exercise_1(attention_function) -> None:
    """attention(q, k, v): causal grouped-query attention, queries the last T of S positions."""
    probe = torch.ones(1, 1, 1, 4)
    check("exercise 1", function_answer(attention_function, probe, probe, probe),
          compare_attention,
          hint="scores q k^T / sqrt(D) against the kv head of each query's group, -inf where a "
               "key lies after the query's position (query i sits at i + S - T), softmax over "
               "the keys, then the weighted sum of the values; return q's dtype")


# ---- exercise 2: the cost of the two products --------------------------------------------------

GPT2_HEADS, GPT2_HEAD_DIM, FLOP_LENGTH = 12, 64, 1024


def _attention_flops(batch: int, heads: int, length: int, head_dim: int) -> int:
    """FLOPs of q k^T and weights v, counted by PyTorch on shape-only (meta) tensors."""
    with FlopCounterMode(display=False) as counter:
        q = torch.empty(batch, heads, length, head_dim, device="meta")  # (B, H, T, D)
        weights = torch.softmax(q @ q.transpose(-2, -1), dim=-1)  # (B, H, T, T)
        weights @ q  # (B, H, T, D)
    return counter.get_total_flops()


def _projection_flops(length: int, width: int) -> int:
    """FLOPs of the four C x C projections for one sequence of ``length`` tokens."""
    with FlopCounterMode(display=False) as counter:
        x = torch.empty(length, width, device="meta")  # (T, C)
        w = torch.empty(width, width, device="meta")  # (C, C)
        for _ in range(4):
            x @ w.T  # (T, C)
    return counter.get_total_flops()


def _crossover_length() -> int:
    """The T at which the two products cost as much as the four projections (counted).

    The products cost a * T^2 and the projections b * T, so they meet at T = b / a.
    """
    width = GPT2_HEADS * GPT2_HEAD_DIM
    length = _projection_flops(1, width) // _attention_flops(1, GPT2_HEADS, 1, GPT2_HEAD_DIM)
    assert _attention_flops(1, GPT2_HEADS, length, GPT2_HEAD_DIM) == _projection_flops(length,
                                                                                      width)
    return length


def _whole_number(answer) -> bool:
    return int(answer) == answer


def exercise_2(attention_flops, crossover_length) -> None:
    """FLOPs of QK^T and AV for T = 1,024 in one GPT-2-small layer (12 heads of 64), and the
    length at which they cost as much as the four projections."""
    check_parts(
        "exercise 2",
        Part("attention_flops", attention_flops,
             lambda answer: _whole_number(answer)
             and answer == _attention_flops(1, GPT2_HEADS, FLOP_LENGTH, GPT2_HEAD_DIM),
             "count one head first: what are the shapes of the two products, and what does "
             "2mnp give for each? Then multiply by the number of heads",
             expects="a whole number of operations"),
        Part("crossover_length", crossover_length,
             lambda answer: _whole_number(answer) and answer == _crossover_length(),
             "write both costs as formulas in T and C (yours grows like T^2, the projections' "
             "like T) and solve for the T where they are equal",
             expects="a whole number of tokens"))


# ---- exercise 3: the KV cache of a Llama-3-8B shape --------------------------------------------


def _kv_gib(layers: int, kv_heads: int, head_dim: int, tokens: int, bytes_per: int) -> float:
    return 2 * layers * kv_heads * head_dim * tokens * bytes_per / 2**30


def _kv_cache_pair() -> tuple[float, float]:
    return _kv_gib(32, 8, 128, 8192, 2), _kv_gib(32, 32, 128, 8192, 2)


def exercise_3(gib) -> None:
    """(grouped, multi-head): KV-cache GiB of a Llama-3-8B shape for 8,192 bfloat16 tokens."""
    expected = _kv_cache_pair()

    def is_right(answer) -> bool | str:
        if len(answer) != 2:
            raise ValueError("not a pair")
        got = [float(a) for a in answer]
        if all(math.isclose(g, e, rel_tol=1e-6) for g, e in zip(got, expected, strict=True)):
            return True
        if all(math.isclose(g, e, rel_tol=1e-6) for g, e in zip(got, expected[::-1],
                                                                   strict=True)):
            return "the pair is (grouped, multi-head): the grouped cache is the smaller one"
        return False

    check("exercise 3", gib, is_right,
          hint="each token stores a key and a value in every layer, one vector of head_dim "
               "numbers per key/value head, 2 bytes each; a GiB is 2**30 bytes",
          expects="a pair (GiB with 8 key/value heads, GiB with 32)")


# ---- exercise 4: the mask after a cache --------------------------------------------------------


def _visible_keys() -> list[int]:
    return causal_mask(3, 7)[1].nonzero().flatten().tolist()


def exercise_4(visible_keys) -> None:
    """Keys the second of 3 new tokens may read after 4 cached ones: causal_mask(3, 7)[1]."""
    check("exercise 4", visible_keys, lambda answer: [int(i) for i in answer] == _visible_keys(),
          hint="the cached tokens come first in the sequence; find the position of the second "
               "new token in the whole sequence, then list every key a token at that position "
               "may read (in increasing order)",
          expects="a list of key positions")


# ---- exercise 5: a head that reads n tokens back -----------------------------------------------


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


# The chapter's query and a second one of another size: a key that only fits the chapter's
# all-equal query is not the rule.
KEY_CASES = ((4.0 * torch.ones(16), (2, 3, 5)), (3.0 * torch.ones(32), (2, 4, 6)))


def _key_for_offset_is_right(key_for_offset) -> bool | str:
    for query, offsets in KEY_CASES:
        for offset in offsets:
            key = key_for_offset(query.clone(), offset)
            if not isinstance(key, torch.Tensor) or key.shape != query.shape:
                raise TypeError("return a key vector of the query's shape")
            if not _attends_back(query, key.detach().float(), offset):
                return (f"with a query of size {query.shape[0]}, a head using your key for "
                        f"n = {offset} does not read {offset} tokens back")
    return True


def exercise_5(key_for_offset) -> None:
    """key_for_offset(query, n): a key that, with ``query``, makes the head read n tokens back."""
    check("exercise 5", function_answer(key_for_offset, torch.ones(4), 1),
          _key_for_offset_is_right,
          hint="the score of query i against key j depends on the offset j - i only; pick the "
               "key so that all pairs of dimensions are back in phase at j = i - n",
          expects="a function returning a tensor of the query's shape")


# ---- exercise 6 (experiment): the trained model without 1/sqrt(D) ------------------------------


def mean_largest_weight(model, ids: torch.Tensor) -> float:
    """Largest weight of every row (row 0 left out), averaged over rows, heads and layers."""
    with torch.no_grad():
        maps = model.attention_maps(ids)  # one (B, H, T, T) per layer
    return torch.stack([m[:, :, 1:].amax(dim=-1).mean() for m in maps]).mean().item()


def _unscaled_copy_problem(unscaled_model) -> str | None:
    """Why ``unscaled_model`` is not the stored model with q_proj scaled by sqrt(D), or None."""
    from .. import stored_model

    stored = stored_model().model
    if type(unscaled_model) is not type(stored) or unscaled_model.config != stored.config:
        raise TypeError("not a Transformer of the stored model's config")
    factor = math.sqrt(stored.config.head_dim)
    ours = dict(unscaled_model.state_dict())
    for name, weight in stored.state_dict().items():
        want = weight * factor if name.endswith("q_proj.weight") else weight
        if not torch.allclose(ours[name].float(), want.float(), rtol=1e-5, atol=1e-6):
            if name.endswith("q_proj.weight") and torch.allclose(ours[name], weight):
                return "multiply every layer's q_proj.weight by sqrt(head_dim) in your copy"
            return (f"{name} differs from the stored model's; only each q_proj.weight should "
                    "change, times sqrt(head_dim)")
    return None


def _ids_problem(ids) -> str | None:
    ids = torch.as_tensor(ids)
    if ids.dim() != 2 or ids.is_floating_point():
        raise ValueError("not (1, T) token ids")
    if ids.shape[1] < 16:
        return "measure on at least 16 tokens"
    return None


def _largest_weight_is_right(answer, unscaled_model, ids) -> bool | str:
    from .. import stored_model

    if set(answer) != {"scaled", "unscaled"}:
        raise KeyError("keys")
    got = {name: float(answer[name]) for name in ("scaled", "unscaled")}
    try:
        usable = _unscaled_copy_problem(unscaled_model) is None and _ids_problem(ids) is None
    except (TypeError, ValueError, AttributeError, KeyError, RuntimeError):
        usable = False
    if not usable:
        return "hand in the copy you measured and the ids it read, so that the check can too"
    ids = torch.as_tensor(ids)
    measured = {"scaled": mean_largest_weight(stored_model().model, ids),
                "unscaled": mean_largest_weight(unscaled_model, ids)}
    if all(math.isclose(got[n], measured[n], rel_tol=1e-3) for n in got):
        return True
    if math.isclose(got["scaled"], measured["unscaled"], rel_tol=1e-3) and math.isclose(
            got["unscaled"], measured["scaled"], rel_tol=1e-3):
        return "the two are swapped: 'scaled' is the stored model, 'unscaled' your copy"
    return ("for each model: the largest weight of every row of every map, rows 1 onwards, "
            "averaged over rows, heads and layers (model.attention_maps(ids))")


def exercise_6(unscaled_model, ids, largest_weight) -> None:
    """The copy without 1/sqrt(D), the ids it read, and {"scaled": w, "unscaled": w}: the mean
    largest attention weight of each model, measured again by the check."""
    check_parts(
        "exercise 6",
        Part("unscaled_model", unscaled_model, lambda m: _unscaled_copy_problem(m) or True,
             "a copy of the stored model with every q_proj.weight times sqrt(head_dim)",
             expects="a copy of the stored Transformer (copy.deepcopy(model))"),
        Part("ids", ids, lambda i: _ids_problem(i) or True, "the token ids you measured on",
             expects="a tensor of shape (1, T) holding token ids"),
        Part("largest_weight", largest_weight,
             lambda answer: _largest_weight_is_right(answer, unscaled_model, ids),
             "the mean largest weight of each model on your ids",
             expects='a dict {"scaled": weight, "unscaled": weight}'))


def expected_values() -> dict[str, object]:
    """What right answers give, for the test that the chapter prints none of them.

    Exercise 1 and 5 ask for functions; exercise 6's weights depend on the text measured.
    """
    return {"exercise 2 (flops)": _attention_flops(1, GPT2_HEADS, FLOP_LENGTH, GPT2_HEAD_DIM),
            "exercise 2 (crossover)": _crossover_length(),
            "exercise 3": _kv_cache_pair(),
            "exercise 4": _visible_keys()}
