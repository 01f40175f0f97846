"""Chapter 8's exercise checks: placeholder, right answer, the known mistakes named, and
fabricated answers rejected."""

import math

import pytest
import torch
from answer_leaks import leaks
from exercise_checks import printed

from transformer_lib import ModelConfig
from transformer_lib.book.exercises import ch08
from transformer_lib.model.attention import Attention, KVCache
from transformer_lib.model.generation import sample_next_token
from transformer_lib.model.rope import rope_tables


def placeholder_function(*args):
    ...


def test_exercise_1_positions_through_the_model(capsys):
    def right(P, N):
        return N * P + N * (N - 1) // 2, P + N - 1

    def one_too_many(P, N):  # counts a forward pass after the last token
        return sum(P + t for t in range(N + 1)), P + N

    ch08.exercise_1(placeholder_function)
    assert printed(capsys) == "exercise 1: not attempted yet"
    ch08.exercise_1(right)
    assert printed(capsys) == "exercise 1: correct"
    ch08.exercise_1(one_too_many)
    assert printed(capsys).startswith("exercise 1: not yet - hint:")


def test_exercise_1_keeps_the_readers_random_stream(capsys):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ch08.exercise_1(lambda P, N: (N * P + N * (N - 1) // 2, P + N - 1))
    assert torch.equal(torch.rand(3), expected)
    capsys.readouterr()


def test_exercise_2_top_p_survivors(capsys):
    at_1, at_half = ch08.nucleus_counts()
    assert at_half < at_1
    ch08.exercise_2(...)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch08.exercise_2((at_1, at_half))
    assert printed(capsys) == "exercise 2: correct"
    ch08.exercise_2((at_1, at_1))  # forgot the temperature
    assert "top-p measures the probabilities after the temperature" in printed(capsys)
    for wrong in ((0, 0), (at_1, at_half + 1), (at_half, at_1), (at_1,), "two"):
        ch08.exercise_2(wrong)
        assert printed(capsys).startswith("exercise 2: not yet")


@pytest.fixture(scope="module")
def generated():
    continuations = {t: ch08.continuation(t, 3) for t in (0.0, 0.8, 1.5)}
    return continuations, {t: ch08.repeated_fraction(ids) for t, ids in continuations.items()}


def test_exercise_3_measures_the_continuations_again(capsys, generated):
    continuations, repetition = generated
    ch08.exercise_3(..., ..., ...)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch08.exercise_3(repetition, continuations, 3)
    assert printed(capsys) == "exercise 3: correct"
    one_changed = dict(repetition)
    one_changed[0.8] += 0.01
    other_text = dict(continuations)
    other_text[1.5] = list(reversed(continuations[1.5]))
    made_up_middle = dict(continuations)  # an intermediate temperature's text invented
    made_up_middle[0.8] = [5] * len(continuations[0.8])
    for wrong in [
        ({t: 0.0 for t in repetition}, continuations, 3),  # all zeros
        ({0.0: 0.8, 0.8: 0.3, 1.5: 0.05}, continuations, 3),  # the right direction, made up
        (one_changed, continuations, 3),  # a real answer with one entry changed
        (repetition, continuations, 4),  # another seed than the one used
        ({t: ch08.repeated_fraction(ids) for t, ids in other_text.items()}, other_text, 3),
        ({0.0: 0.8, 0.8: 0.3, 1.5: 0.05}, ..., 3),  # no continuations handed back
        ({t: ch08.repeated_fraction(ids) for t, ids in made_up_middle.items()}, made_up_middle,
         3),
    ]:
        ch08.exercise_3(*wrong)
        assert printed(capsys).startswith("exercise 3: not yet")


# ---- exercise 4: a reader's sampler, with the mistakes written independently -----------------


def sampler(logits, temperature, top_k, top_p, generator, temperature_after=False,
            nucleus_shift=0, exact_k=False, strict_nucleus=False):
    if temperature == 0:
        return logits.argmax(-1)
    scaled = logits if temperature_after else logits / temperature
    if top_k is not None:
        if exact_k:
            index = scaled.topk(top_k, dim=-1).indices
            scaled = torch.full_like(scaled, -math.inf).scatter(-1, index,
                                                                 scaled.gather(-1, index))
        else:
            kth = scaled.sort(-1, descending=True).values[:, top_k - 1:top_k]
            scaled = torch.where(scaled >= kth, scaled, -math.inf)
    if top_p is not None:
        probs, order = scaled.softmax(-1).sort(-1, descending=True)
        before = probs.cumsum(-1) - probs
        inside = before <= top_p if strict_nucleus else before < top_p
        count = inside.sum(-1, keepdim=True) + nucleus_shift  # tokens to keep
        keep_sorted = torch.arange(probs.shape[-1]) < count.clamp(min=1)
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        scaled = scaled.masked_fill(~keep, -math.inf)
    probs = scaled.softmax(-1)
    if temperature_after:
        probs = probs / temperature
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def meta_style_sampler(logits, temperature, top_k, top_p, generator):
    """Right distribution, draw over the sorted probabilities (Meta's sample_top_p)."""
    if temperature == 0:
        return logits.argmax(-1)
    scaled = logits / temperature
    probs = scaled.softmax(-1)
    if top_k is not None:
        kth = scaled.sort(-1, descending=True).values[:, top_k - 1:top_k]
        probs = torch.where(scaled >= kth, probs, 0.0)
    sorted_probs, order = probs.sort(-1, descending=True)
    if top_p is not None:
        sorted_probs = sorted_probs / sorted_probs.sum(-1, keepdim=True)
        before = sorted_probs.cumsum(-1) - sorted_probs
        sorted_probs = torch.where(before < top_p, sorted_probs, 0.0)
    drawn = torch.multinomial(sorted_probs / sorted_probs.sum(-1, keepdim=True), 1,
                              generator=generator)
    return order.gather(-1, drawn)[:, 0]


def test_exercise_4_next_token(capsys):
    ch08.exercise_4(placeholder_function)
    assert printed(capsys) == "exercise 4: not attempted yet"
    for right in (sampler, sample_next_token):
        ch08.exercise_4(right)
        assert printed(capsys) == "exercise 4: correct"
    for wrong, message in [
        (lambda *a: sampler(*a, temperature_after=True), "before the softmax"),
        (lambda *a: sampler(*a, nucleus_shift=-1), "the nucleus is one token too small"),
        (lambda *a: sampler(*a, nucleus_shift=1), "the nucleus is one token too large"),
        (lambda *a: sampler(*a, strict_nucleus=True), "not only when it is > top_p"),
        (meta_style_sampler, "in the vocabulary's own order"),
        (lambda *a: sampler(*a, exact_k=True), "top-k keeps every token tied"),
        (lambda logits, *a: sampler(logits, *a)[:1], "returned shape"),
    ]:
        ch08.exercise_4(wrong)
        verdict = printed(capsys)
        assert verdict.startswith("exercise 4: not yet - hint: ") and message in verdict, verdict


# ---- exercise 5: a reader's decoding step ----------------------------------------------------


def step(x, layer, cache_k, cache_v, position, cos, sin, angle_shift=0, slot_shift=0,
         sees_itself=True):
    B, _, _ = x.shape
    D = cos.shape[-1]
    q, k, v = ((x @ layer[w].T).view(B, 1, -1, D).transpose(1, 2) for w in ("wq", "wk", "wv"))
    angle = position + angle_shift
    c, s = cos[angle], sin[angle]

    def turn(t):
        a, b = t.chunk(2, -1)
        return t * c + torch.cat([-b, a], -1) * s

    q, k = turn(q), turn(k)
    cache_k[:, :, position + slot_shift] = k[:, :, 0]
    cache_v[:, :, position + slot_shift] = v[:, :, 0]
    end = position + 1 if sees_itself else position
    groups = q.shape[1] // cache_k.shape[1]
    keys = cache_k[:, :, :end].repeat_interleave(groups, 1)
    values = cache_v[:, :, :end].repeat_interleave(groups, 1)
    weights = (q @ keys.transpose(-2, -1) / D ** 0.5).softmax(-1)
    return (weights @ values).transpose(1, 2).reshape(B, 1, -1) @ layer["wo"].T


def test_exercise_5_decode_step(capsys):
    ch08.exercise_5(placeholder_function)
    assert printed(capsys) == "exercise 5: not attempted yet"
    ch08.exercise_5(step)
    assert printed(capsys) == "exercise 5: correct"
    for wrong, message in [
        (lambda *a: step(*a, angle_shift=1), "yours are one position ahead"),
        (lambda *a: step(*a, slot_shift=1), "one slot too far"),
        (lambda *a: step(*a, sees_itself=False), "must also see its own key"),
        (lambda x, layer, k, v, *a: step(x, layer, k.clone(), v.clone(), *a),
         "cache_k after the step differs from the library's (the output matches)"),
        (lambda *a: step(*a).float(), "in bfloat16"),  # right in float32, leaves bfloat16
    ]:
        ch08.exercise_5(wrong)
        verdict = printed(capsys)
        assert verdict.startswith("exercise 5: not yet - hint: ") and message in verdict, verdict


def test_exercise_5s_reference_is_the_librarys_cached_attention():
    config = ModelConfig(vocab_size=10, d_model=32, num_layers=1, num_heads=4, num_kv_heads=2,
                         max_seq_len=16)
    torch.manual_seed(0)
    attention = Attention(config).eval()
    layer = {"wq": attention.q_proj.weight, "wk": attention.k_proj.weight,
             "wv": attention.v_proj.weight, "wo": attention.o_proj.weight}
    cos, sin = rope_tables(config.head_dim, 16)
    x = torch.randn(2, 6, 32)
    cache = KVCache(2, 2, 16, config.head_dim)
    with torch.no_grad():
        library = attention(x, cos[:6], sin[:6], cache)  # the prompt at once, then compare
        cache_k, cache_v = torch.zeros(2, 2, 16, 8), torch.zeros(2, 2, 16, 8)
        mine = torch.cat([ch08.library_decode_step(x[:, t:t + 1], layer, cache_k, cache_v, t,
                                                   cos, sin) for t in range(6)], dim=1)
    torch.testing.assert_close(mine, library, atol=1e-5, rtol=1e-5)


def test_the_chapter_shows_no_answer():
    assert leaks("08_generation", list(ch08.expected_values().values())) == []
