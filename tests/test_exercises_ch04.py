"""Chapter 4's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint that names the mistake where one is known; experiment answers
are measured again, so made-up numbers are refused."""

import copy
import math

import pytest
import torch
from answer_leaks import chapter_text, leaks
from exercise_checks import printed

from transformer_lib.book.exercises import ch04
from transformer_lib.model.rope import apply_rope, rope_tables


def placeholder_function(*args):
    ...


# ---- exercise 1: attention, and the mistakes a reader makes ----------------------------------
# Written the way a reader would write them, independently of the check's own variants.


def attention(q, k, v, scale="sqrt", mask="right", axis=-1, kv_order="groups", upcast=True):
    B, H, T, D = q.shape
    K, S = k.shape[1], k.shape[2]
    head_of = [h // (H // K) for h in range(H)] if kv_order == "groups" else \
        [h % K for h in range(H)]
    k, v = k[:, head_of], v[:, head_of]  # (B, H, S, D)
    work = torch.float32 if upcast else q.dtype
    scores = q.to(work) @ k.to(work).transpose(-1, -2)
    if scale == "sqrt":
        scores = scores / math.sqrt(D)
    elif scale == "D":
        scores = scores / D
    position = torch.arange(S - T, S)[:, None]  # where each query sits
    key = torch.arange(S)[None, :]
    if mask == "right":
        allowed = key <= position
    elif mask == "strict":
        allowed = key < position
    elif mask == "plus one":
        allowed = key <= position + 1
    elif mask == "from the start":
        allowed = key <= torch.arange(T)[:, None]
    else:
        allowed = torch.ones(T, S, dtype=torch.bool)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return (torch.softmax(scores, dim=axis) @ v.to(work)).to(q.dtype)


def via_sdpa(q, k, v):  # another right answer: PyTorch's kernel with an explicit mask
    T, S = q.shape[-2], k.shape[-2]
    groups = q.shape[1] // k.shape[1]
    allowed = torch.ones(T, S, dtype=torch.bool).tril(S - T)
    return torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1), attn_mask=allowed)


ATTENTION_MISTAKES = [
    (lambda q, k, v: attention(q, k, v, scale=None), "divide the scores by sqrt(D)"),
    (lambda q, k, v: attention(q, k, v, scale="D"), "not by D"),
    (lambda q, k, v: attention(q, k, v, mask="strict"), "may read its own position too"),
    (lambda q, k, v: attention(q, k, v, mask="plus one"), "one key from its future"),
    (lambda q, k, v: attention(q, k, v, mask="from the start"), "ignores the offset"),
    (lambda q, k, v: attention(q, k, v, mask="none"), "mask the future"),
    (lambda q, k, v: attention(q, k, v, axis=-2), "softmax over the keys"),
    (lambda q, k, v: attention(q, k, v, kv_order="tiled"), "not the whole stack of kv heads"),
]


def test_exercise_1_placeholder_and_right(capsys):
    ch04.exercise_1(placeholder_function)
    assert printed(capsys) == "exercise 1: not attempted yet"
    for right in (attention, via_sdpa, lambda q, k, v: attention(q, k, v, upcast=False)):
        ch04.exercise_1(right)
        assert printed(capsys) == "exercise 1: correct"


@pytest.mark.parametrize(("wrong", "message"), ATTENTION_MISTAKES)
def test_exercise_1_names_each_mistake(capsys, wrong, message):
    ch04.exercise_1(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 1: not yet - hint: ") and message in said, said


def test_exercise_1_other_wrong_answers(capsys):
    ch04.exercise_1(lambda q, k, v: attention(q, k, v).float())  # bfloat16 in, float32 out
    assert "the output is torch.float32, expected torch.bfloat16" in printed(capsys)
    ch04.exercise_1(lambda q, k, v: attention(q, k, v).detach())
    assert "not connected to q, k and v by autograd" in printed(capsys)
    ch04.exercise_1(lambda q, k, v: attention(q, k, v)[:, :, -1:])  # the last query only
    assert "expected (1, 2, 5, 8)" in printed(capsys)


# ---- exercise 2: the cost, and the length where it overtakes the projections -----------------


def test_exercise_2_both_parts_checked(capsys):
    flops = 12 * 2 * (2 * 1024 * 1024 * 64)  # two products of 2 * T * T * D, 12 heads
    crossover = 2 * 768  # 4 T^2 C = 8 T C^2
    ch04.exercise_2(..., ...)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch04.exercise_2(flops, crossover)
    assert printed(capsys) == "exercise 2: correct"
    ch04.exercise_2(flops, ...)
    assert printed(capsys).startswith(
        "exercise 2: not yet (attention_flops right, crossover_length not attempted)")
    ch04.exercise_2(flops, 768)
    assert printed(capsys).startswith(
        "exercise 2: not yet (attention_flops right, crossover_length not yet) - hint: "
        "crossover_length:")
    ch04.exercise_2(flops // 2, crossover)
    assert printed(capsys).startswith(
        "exercise 2: not yet (attention_flops not yet, crossover_length right)")
    ch04.exercise_2("many", crossover)
    assert "attention_flops: expected a whole number of operations" in printed(capsys)


# ---- exercises 3 and 4 -----------------------------------------------------------------------


def test_exercise_3_kv_cache(capsys):
    gib = 2 * 32 * 8 * 128 * 8192 * 2 / 2**30  # keys and values, 32 layers, 8 heads, bfloat16
    ch04.exercise_3(...)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch04.exercise_3((gib, 4 * gib))
    assert printed(capsys) == "exercise 3: correct"
    ch04.exercise_3((4 * gib, gib))
    assert "the pair is (grouped, multi-head)" in printed(capsys)
    ch04.exercise_3((gib / 2, 2 * gib))
    assert printed(capsys).startswith("exercise 3: not yet - hint: each token stores")
    ch04.exercise_3(gib)
    assert printed(capsys).endswith("expected a pair (GiB with 8 key/value heads, GiB with 32)")


def test_exercise_4_visible_keys(capsys):
    ch04.exercise_4(...)
    assert printed(capsys) == "exercise 4: not attempted yet"
    ch04.exercise_4(list(range(6)))  # the second new token sits at position 5
    assert printed(capsys) == "exercise 4: correct"
    ch04.exercise_4([0, 1])  # read as if there were no cache
    assert printed(capsys).startswith("exercise 4: not yet - hint: ")


# ---- exercise 5: a key for any offset --------------------------------------------------------


def turned(vector, position):
    cos, sin = rope_tables(vector.shape[-1], position + 1)
    return apply_rope(vector.view(1, 1, 1, -1), cos[position:], sin[position:]).view(-1)


def test_exercise_5_key_for_any_offset(capsys):
    ch04.exercise_5(placeholder_function)
    assert printed(capsys) == "exercise 5: not attempted yet"
    ch04.exercise_5(turned)
    assert printed(capsys) == "exercise 5: correct"
    ch04.exercise_5(lambda query, n: turned(query, 2))  # the answer for n = 2 only
    assert "n = 3 does not read 3 tokens back" in printed(capsys)
    ch04.exercise_5(lambda query, n: turned(query, 1))  # the chapter's previous-token key
    assert "does not read 2 tokens back" in printed(capsys)
    ch04.exercise_5(lambda query, n: turned(query, n + 1))  # one too far
    assert "with a query of size 16, a head using your key for n = 2" in printed(capsys)
    ch04.exercise_5(lambda query, n: torch.ones(3))
    assert printed(capsys).endswith("expected a function returning a tensor of the query's shape")


# ---- exercise 6 (experiment): measured again from the copy -----------------------------------


@pytest.fixture(scope="module")
def measured():
    from transformer_lib import book

    stored = book.stored_model()
    model, tokenizer = stored.model, stored.tokenizer
    ids = torch.tensor([tokenizer.encode("Once upon a time, a little dog found a red ball "
                                         "in the park and ran home to show his mom.")])
    unscaled = copy.deepcopy(model)
    for layer in unscaled.layers:
        layer.self_attn.q_proj.weight.data *= math.sqrt(model.config.head_dim)

    def largest(some_model):  # measured here, not by the check's own function
        with torch.no_grad():
            maps = some_model.attention_maps(ids)
        return sum(m[0, :, 1:].max(dim=-1).values.mean().item() for m in maps) / len(maps)

    return model, unscaled, ids, {"scaled": largest(model), "unscaled": largest(unscaled)}


def test_exercise_6_measured_again(capsys, measured):
    model, unscaled, ids, weights = measured
    assert weights["unscaled"] > weights["scaled"] + 0.05
    ch04.exercise_6(..., ..., ...)
    assert printed(capsys) == "exercise 6: not attempted yet"
    ch04.exercise_6(unscaled, ids, weights)
    assert printed(capsys) == "exercise 6: correct"
    fabricated = [
        {"scaled": 0.0, "unscaled": 0.0},  # all zeros
        {"scaled": 0.45, "unscaled": 0.8},  # the right direction, made-up sizes
        {"scaled": weights["scaled"], "unscaled": weights["unscaled"] + 0.02},  # one changed
    ]
    for made_up in fabricated:
        ch04.exercise_6(unscaled, ids, made_up)
        assert printed(capsys).startswith("exercise 6: not yet (unscaled_model right, ids "
                                          "right, largest_weight not yet)")
    ch04.exercise_6(unscaled, ids, {"scaled": weights["unscaled"], "unscaled": weights["scaled"]})
    assert "swapped" in printed(capsys)
    ch04.exercise_6(copy.deepcopy(model), ids, weights)  # the copy was never changed
    assert "multiply every layer's q_proj.weight by sqrt(head_dim)" in printed(capsys)
    ch04.exercise_6(..., ids, weights)
    assert "hand in the copy you measured" in printed(capsys)
    ch04.exercise_6(unscaled, ids, {"scaled": weights["scaled"]})
    assert printed(capsys).endswith('expected a dict {"scaled": weight, "unscaled": weight}')


def test_the_chapter_shows_no_answer():
    values = ch04.expected_values()
    assert values["exercise 2 (crossover)"] == 1536
    assert leaks("04_attention", values.values()) == []
    text = chapter_text("04_attention")
    for name in ("attention", "key_for_offset"):
        body = text.split(f"def {name}(", 1)[1].split("\n# %%", 1)[0]
        assert "...  # your code here" in body and "return" not in body, name
    # the hand-built head's prose must not say which rows of the tables give two tokens back
    assert "cos[2:3]" not in text and "position 2" not in text
