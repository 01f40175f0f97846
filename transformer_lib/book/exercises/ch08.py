"""Checks for the exercises of chapter 8 (generation: sampling and the KV cache).

Exercise 4 runs the reader's ``next_token(logits, temperature, top_k, top_p, generator)``
against :func:`~transformer_lib.model.generation.sample_next_token` with generators seeded
alike, so a right answer draws the very same tokens; its inputs are built so that each known
mistake (the temperature after the softmax, a top-p nucleus one token too small or too large,
top-k breaking ties) changes many of the draws. Exercise 5 runs the reader's one-token
attention step with a KV cache against one assembled from the library's public functions, in
float32 and then in bfloat16.
Exercise 3 measures again what the reader hands back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...model.config import ModelConfig
from ...model.generation import filter_logits, sample_next_token
from ...model.transformer import Transformer
from .. import Part, check, check_parts, compare_function, function_answer
from ..checking import in_dtype
from ..pieces import library_pieces

# ---- exercise 1: positions through the model ------------------------------------------------


def _positions_seen(model: Transformer, prompt_len: int, new_tokens: int, use_cache: bool) -> int:
    """Token positions that enter the embedding layer while model.generate runs."""
    seen = []
    hook = model.embed_tokens.register_forward_hook(
        lambda _module, args, _output: seen.append(args[0].shape[1]))
    try:
        model.generate(list(range(1, prompt_len + 1)), new_tokens, temperature=0.0,
                       use_cache=use_cache)
    finally:
        hook.remove()
    return sum(seen)


def exercise_1(positions) -> None:
    """positions(P, N) -> (without cache, with cache): positions the model processes."""
    answer = function_answer(positions, 5, 3)

    def is_right(function) -> bool:
        with torch.random.fork_rng():  # a throwaway model: the reader's random stream is kept
            torch.manual_seed(0)
            model = Transformer(ModelConfig.from_preset("tiny", num_layers=1)).eval()
        return all(
            tuple(int(x) for x in function(p, n))
            == (_positions_seen(model, p, n, False), _positions_seen(model, p, n, True))
            for p, n in ((5, 3), (1, 1), (12, 7), (3, 20)))

    check("exercise 1", answer, is_right,
          hint="return a pair (without cache, with cache); write down what one decoding step "
               "feeds the model in each case, then add up the steps (the last new token needs "
               "no forward pass after it)")


# ---- exercise 2: the nucleus after another prompt --------------------------------------------

NUCLEUS_PROMPT = "Tom and his mom went to the"
NUCLEUS_P = 0.8
NUCLEUS_TEMPERATURES = (1.0, 0.5)


def nucleus_counts() -> tuple[int, int]:
    """Tokens that top-p 0.8 keeps after NUCLEUS_PROMPT, at temperature 1 and at 0.5."""
    from .. import stored_model

    stored = stored_model()
    ids = [stored.tokenizer.eot_id] + stored.tokenizer.encode(NUCLEUS_PROMPT)
    with torch.no_grad():
        logits = stored.model(torch.tensor([ids]))[0, -1]  # (V,)
    return tuple(int(torch.isfinite(filter_logits(logits, t, None, NUCLEUS_P)).sum())
                 for t in NUCLEUS_TEMPERATURES)


def exercise_2(kept) -> None:
    """(tokens kept by top-p 0.8 at temperature 1, at temperature 0.5) after the prompt."""
    def is_right(answer) -> bool | str:
        got = tuple(int(a) for a in answer)
        if len(got) != 2:
            raise ValueError("a pair")
        right = nucleus_counts()
        if got == right:
            return True
        if got == (right[0], right[0]):
            return ("the two counts are equal: top-p measures the probabilities after the "
                    "temperature, so divide the logits by it before the softmax")
        return False

    check("exercise 2", kept, is_right,
          hint="run the stored model on the end-of-text id followed by the prompt's tokens, take "
               "the last position's logits, and count the tokens top-p 0.8 keeps at each "
               "temperature", expects="a pair of counts (temperature 1, temperature 0.5)")


# ---- exercise 3 (experiment): repetition against temperature ---------------------------------

CONTINUATION = 240
PROMPT_TEXT = "Once upon a time, there was a little"


def repeated_fraction(ids) -> float:
    """The fraction of the 4-grams of ``ids`` that already occurred earlier in it."""
    ids = [int(i) for i in ids]
    seen, repeats = set(), 0
    grams = [tuple(ids[i:i + 4]) for i in range(len(ids) - 3)]
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


def continuation(temperature: float, seed: int) -> list[int]:
    """The stored model's 240 new tokens after the chapter's prompt, seeded as exercise 3 asks."""
    from .. import stored_model

    stored = stored_model()
    prompt = [stored.tokenizer.eot_id] + stored.tokenizer.encode(PROMPT_TEXT)
    out = stored.model.generate(prompt, CONTINUATION, temperature=temperature,
                                generator=torch.Generator().manual_seed(seed))
    return out[len(prompt):].tolist()


def _continuations_problem(continuations) -> str | None:
    temperatures = sorted(float(t) for t in continuations)
    if len(temperatures) < 3 or temperatures[0] != 0.0 or temperatures[-1] < 1.0:
        return "use at least three temperatures, from 0 (greedy) to 1 or more"
    if any(len(list(ids)) != CONTINUATION for ids in continuations.values()):
        return f"each continuation is the {CONTINUATION} new tokens, without the prompt"
    return None


def _repetition_is_right(repetition, continuations, seed) -> bool | str:
    values = {float(t): float(f) for t, f in repetition.items()}
    try:
        usable = _continuations_problem(continuations) is None
    except (TypeError, ValueError, AttributeError):
        usable = False
    if not usable:
        return "hand in the continuations you measured too, so that the check can measure them"
    by_temperature = {float(t): ids for t, ids in continuations.items()}
    if set(values) != set(by_temperature):
        return "give a fraction for every temperature you generated at, and no other"
    for t, ids in by_temperature.items():
        if not math.isclose(values[t], repeated_fraction(ids), abs_tol=1e-6):
            return (f"the fraction at temperature {t:g} is not that of its continuation: count "
                    f"the 4-grams (runs of 4 ids) that occurred earlier in it, over all 4-grams")
    for t in sorted(by_temperature):  # every continuation generated again: none made up
        if [int(i) for i in by_temperature[t]] != continuation(t, int(seed)):
            return (f"the continuation at temperature {t:g} is not what the stored model "
                    f"generates after the chapter's prompt with a Generator seeded {int(seed)}")
    return True


def exercise_3(repetition, continuations, seed) -> None:
    """{temperature: fraction of repeated 4-grams}, measured again from the continuations the
    reader hands back, each of which is generated again from the seed."""
    check_parts("exercise 3",
                Part("continuations", continuations,
                     lambda c: _continuations_problem(c) or True,
                     "the new token ids at each temperature",
                     expects="a dict {temperature: list of 240 new token ids}"),
                Part("repetition", repetition,
                     lambda r: _repetition_is_right(r, continuations, seed),
                     "the fraction of repeated 4-grams of each continuation",
                     expects="a dict {temperature: fraction}"))


# ---- exercise 4: next_token ------------------------------------------------------------------


def _rows(probs, rows: int) -> torch.Tensor:
    """``rows`` copies of the log-probabilities ``probs``: (rows, V) logits."""
    return torch.tensor(probs).log().expand(rows, -1).contiguous()


def _random_logits(rows, vocab, seed, scale=3.0):
    return scale * torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed))


# (logits (B, V), temperature, top_k, top_p, seed). Many rows each, so that a mistake that
# changes the distribution changes some of the draws.
SAMPLING_CASES = (
    (_random_logits(64, 50, 1), 1.0, None, None, 11),
    (_random_logits(64, 50, 2), 0.7, None, None, 12),  # temperature alone
    (_random_logits(1, 50, 3), 0.0, None, None, 13),  # greedy, one row
    (_random_logits(8, 50, 4), 0.0, 5, 0.9, 14),  # greedy ignores top-k and top-p
    (_rows([0.5, 0.3, 0.2], 400), 1.0, None, 0.75, 15),  # the nucleus is the first two
    (_rows([0.5, 0.3, 0.2], 400), 1.0, None, 0.8, 16),  # 0.5 + 0.3 reaches 0.8: still two
    (_rows([0.4, 0.2, 0.2, 0.2], 400), 1.0, 2, None, 17),  # three tie for second place
    (_rows([0.45, 0.35, 0.2], 400), 2.0, None, 0.5, 18),  # the temperature decides the nucleus
    (_random_logits(32, 100, 5), 0.8, 20, 0.9, 19),  # all three
    (_random_logits(3, 7, 6, scale=1.0), 1.3, 3, None, 20),
)


def _multinomial(logits, generator):
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)


def _top_p_drop(logits, top_p, shift):
    """Cut by top-p with the nucleus ``shift`` tokens larger (or smaller) than the library's."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    cumulative = torch.cumsum(probs, dim=-1)
    if shift < 0:  # the token that reaches p is dropped too (the likeliest one survives)
        drop_sorted = (cumulative >= top_p).index_fill(-1, torch.tensor([0]), False)
    elif shift == 0:  # strictly beyond p: the token after the one that reaches p exactly stays
        drop_sorted = (cumulative - probs) > top_p
    else:
        drop_sorted = torch.cat([torch.zeros_like(cumulative[..., :1], dtype=torch.bool),
                                 (cumulative - probs)[..., :-1] >= top_p], dim=-1)
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


TOP_P_SHIFTS = {"top-p one too few": -1, "top-p strict": 0, "top-p one too many": 1}


def _sampling_variant(logits, temperature, top_k, top_p, generator, kind):
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    if kind == "temperature after softmax":  # dividing probabilities, then renormalising
        return _multinomial(filter_logits(logits, 1.0, top_k, top_p), generator)
    if kind == "no cut":
        return _multinomial(logits / temperature, generator)
    logits = logits / temperature
    if top_k is not None:
        if kind == "top-k ties":  # exactly k survive: ties with the k-th are broken
            kept = torch.zeros_like(logits, dtype=torch.bool)
            kept.scatter_(-1, torch.topk(logits, top_k, dim=-1).indices, True)
            logits = logits.masked_fill(~kept, float("-inf"))
        else:
            logits = filter_logits(logits, 1.0, top_k, None)
    if top_p is not None:
        if kind in TOP_P_SHIFTS:
            logits = _top_p_drop(logits, top_p, TOP_P_SHIFTS[kind])
        else:
            logits = filter_logits(logits, 1.0, None, top_p)
    if kind == "sorted draw":  # Meta's sample_top_p: the draw made over the sorted probabilities
        sorted_probs, order = torch.sort(torch.softmax(logits, dim=-1), dim=-1, descending=True)
        drawn = torch.multinomial(sorted_probs, 1, generator=generator)  # (B, 1)
        return order.gather(-1, drawn).squeeze(-1)
    return _multinomial(logits, generator)


SAMPLING_MISTAKES = {
    "the temperature divides the logits, before the softmax: dividing the probabilities by it "
    "changes nothing once they are renormalised": "temperature after softmax",
    "the nucleus is one token too small: keep every token until the probability kept so far "
    "reaches top_p, including the token that reaches it": "top-p one too few",
    "the nucleus is one token too large: stop at the first token whose cumulative probability "
    "reaches top_p": "top-p one too many",
    "where the likelier tokens hold exactly top_p, the nucleus is complete: drop a token when "
    "the probability before it is >= top_p, not only when it is > top_p": "top-p strict",
    "top-k keeps every token tied with the k-th highest logit (logits >= the k-th value), not "
    "exactly k of them": "top-k ties",
    "tokens cut by top-k and top-p must get probability 0: set their logits to -inf before the "
    "softmax": "no cut",
    "the distribution is right, but draw from the probabilities in the vocabulary's own order "
    "(torch.multinomial over all the ids), not in sorted order: the check compares the tokens "
    "drawn with the same generator": "sorted draw",
}


def _seeded(function):
    """function(logits, temperature, top_k, top_p, generator), called with a fresh generator."""
    def run(logits, temperature, top_k, top_p, seed):
        return function(logits, temperature, top_k, top_p, torch.Generator().manual_seed(seed))
    return run


def _describe_sampling_case(case) -> str:
    logits, temperature, top_k, top_p, _ = case
    return (f"logits of shape {tuple(logits.shape)}, temperature {temperature:g}, top_k {top_k}, "
            f"top_p {top_p}")


def compare_next_token(reader) -> bool | str:
    """True, or what is wrong with the reader's next_token (the same tokens, seeded alike)."""
    mistakes = {message: _seeded(lambda *a, kind=kind: _sampling_variant(*a, kind))
                for message, kind in SAMPLING_MISTAKES.items()}
    return compare_function(_seeded(reader), _seeded(sample_next_token), SAMPLING_CASES,
                            mistakes, atol=0, rtol=0, describe_case=_describe_sampling_case)


def exercise_4(next_token) -> None:
    """next_token(logits, temperature, top_k, top_p, generator) against sample_next_token."""
    probe = (torch.zeros(1, 4), 1.0, None, None, torch.Generator().manual_seed(0))
    check("exercise 4", function_answer(next_token, *probe), compare_next_token,
          hint="temperature 0: the argmax. Otherwise divide the logits by the temperature, cut "
               "with top-k then top-p (cut logits become -inf), softmax, and draw one id per "
               "row with torch.multinomial(probs, 1, generator=generator)")


# ---- exercise 5: one decoding step with a KV cache -------------------------------------------


def _split_heads(t, D):
    B, T, _ = t.shape
    return t.view(B, T, -1, D).transpose(1, 2)  # (B, T, heads * D) -> (B, heads, T, D)


def _decode_variant(x, layer, cache_k, cache_v, position, cos, sin, kind="right"):
    """One query through attention with a KV cache, from the library's pieces (or a mistake)."""
    lib = library_pieces()
    D = cos.shape[-1]
    q, k, v = (_split_heads(F.linear(x, layer[w]), D) for w in ("wq", "wk", "wv"))
    angle = {"rope ahead": position + 1, "rope behind": max(position - 1, 0)}.get(kind, position)
    c, s = cos[angle:angle + 1], sin[angle:angle + 1]  # (1, D): the new token's angle
    q, rotated_k = lib["apply_rope"](q, c, s), lib["apply_rope"](k, c, s)
    slot = position + 1 if kind == "slot ahead" else position
    cache_k[:, :, slot] = (k if kind == "unrotated cache" else rotated_k)[:, :, 0]
    cache_v[:, :, slot] = v[:, :, 0]
    seen = {"without itself": position, "whole cache": cache_k.shape[2]}.get(kind, position + 1)
    keys, values = cache_k[:, :, :seen], cache_v[:, :, :seen]
    if kind == "unrotated cache":
        keys = torch.cat([keys[:, :, :-1], rotated_k], dim=2)
    if kind == "rotated again":
        keys = lib["apply_rope"](keys, cos[:seen], sin[:seen])
    out = lib["attention"](q, keys, values)  # (B, H, 1, D)
    B = x.shape[0]
    return F.linear(out.transpose(1, 2).reshape(B, 1, -1), layer["wo"])  # (B, 1, C)


DECODE_MISTAKES = {
    "the new token is at `position`: turn its query and key with cos[position] and "
    "sin[position] (yours are one position ahead)": "rope ahead",
    "the new token is at `position`: turn its query and key with cos[position] and "
    "sin[position] (yours are one position behind)": "rope behind",
    "write the new key and value into the cache at index `position` (yours went one slot too "
    "far)": "slot ahead",
    "the new query must also see its own key: attend to the cache's first position + 1 "
    "entries": "without itself",
    "attend only to the filled part of the cache, positions 0 .. position: the rest holds no "
    "keys yet": "whole cache",
    "the cache holds keys already turned by RoPE at their own positions: turn only the new "
    "key, once": "rotated again",
    "store the key after RoPE: the cache holds turned keys, so that they are never turned "
    "again": "unrotated cache",
}


def _with_cache(function):
    """Run a decoding step; returns (output, the cache's keys, its values) after the call."""
    def run(x, layer, cache_k, cache_v, position, cos, sin):
        out = function(x, layer, cache_k, cache_v, position, cos, sin)
        return out, cache_k, cache_v
    return run


def _decode_case(d_model, heads, kv_heads, batch, position, seed, max_len=12):
    generator = torch.Generator().manual_seed(seed)
    D = d_model // heads

    def matrix(rows, cols):
        return torch.randn(rows, cols, generator=generator) / cols ** 0.5

    layer = {"wq": matrix(heads * D, d_model), "wk": matrix(kv_heads * D, d_model),
             "wv": matrix(kv_heads * D, d_model), "wo": matrix(d_model, heads * D)}
    cache_k = torch.zeros(batch, kv_heads, max_len, D)  # (B, K, S, D): a preallocated cache
    cache_v = torch.zeros(batch, kv_heads, max_len, D)
    cache_k[:, :, :position] = torch.randn(batch, kv_heads, position, D, generator=generator)
    cache_v[:, :, :position] = torch.randn(batch, kv_heads, position, D, generator=generator)
    x = torch.randn(batch, 1, d_model, generator=generator)
    cos, sin = library_pieces()["rope_tables"](D, max_len, 10000.0)
    return x, layer, cache_k, cache_v, position, cos, sin


# (d_model, query heads, key/value heads, batch, position): 1, 2 and 4 query heads per kv head
DECODE_CASES = (
    _decode_case(32, 4, 4, 1, 5, seed=1),
    _decode_case(48, 4, 2, 2, 3, seed=2),
    _decode_case(64, 8, 2, 3, 9, seed=3),
    _decode_case(32, 2, 1, 1, 1, seed=4),
    _decode_case(32, 4, 2, 2, 10, seed=5),
)


# bfloat16 keeps 8 significant bits: the step's output and cache agree to a few percent
BF16_DECODE_CASES = (in_dtype(_decode_case(48, 4, 2, 2, 6, seed=6), torch.bfloat16),)


def _describe_decode_case(case) -> str:
    x, layer, cache_k, *_ = case
    dtype = ", in bfloat16" if x.dtype == torch.bfloat16 else ""
    return (f"x of shape {tuple(x.shape)}, position {case[4]}, a cache of shape "
            f"{tuple(cache_k.shape)}{dtype}")


# what _with_cache returns, as a hint names it
DECODE_OUTPUTS = ("the output", "cache_k after the step", "cache_v after the step")


def compare_decode_step(reader) -> bool | str:
    """True, or what is wrong with the reader's decode_step (output and the cache after it)."""
    mistakes = {message: _with_cache(lambda *a, kind=kind: _decode_variant(*a, kind=kind))
                for message, kind in DECODE_MISTAKES.items()}
    verdict = compare_function(_with_cache(reader), _with_cache(_decode_variant), DECODE_CASES,
                               mistakes, atol=1e-5, rtol=1e-4,
                               describe_case=_describe_decode_case, output_names=DECODE_OUTPUTS)
    if verdict is not True:
        return verdict
    return compare_function(_with_cache(reader), _with_cache(_decode_variant), BF16_DECODE_CASES,
                            atol=5e-2, rtol=5e-2, describe_case=_describe_decode_case,
                            output_names=DECODE_OUTPUTS)


def exercise_5(decode_step) -> None:
    """decode_step(x, layer, cache_k, cache_v, position, cos, sin) against the library's
    attention with a KV cache."""
    probe = _decode_case(8, 2, 1, 1, 1, seed=0, max_len=3)
    check("exercise 5", function_answer(decode_step, *probe), compare_decode_step,
          hint="project x to q, k, v and split the heads; turn q and k with the angle of "
               "`position`; write k and v into the caches at index `position`; attend from q to "
               "the cache's entries 0 .. position (all visible); merge the heads and apply wo")


def library_decode_step(x, layer, cache_k, cache_v, position, cos, sin):
    """The check's reference: exercise 5's step, built from the library's public functions."""
    return _decode_variant(x, layer, cache_k, cache_v, position, cos, sin)


def expected_values() -> dict[str, object]:
    """The values right answers give (for the test that the chapter shows none of them)."""
    return {"exercise 2": nucleus_counts()}
