"""Chapter 3's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint that names the mistake where one is known."""

import math

import pytest
import torch
import torch.nn.functional as F
from answer_leaks import chapter_text, leaks
from exercise_checks import printed

from transformer_lib.book.exercises import ch03
from transformer_lib.model.rope import apply_rope, rope_tables


def placeholder_function(*args):
    ...


# ---- exercise 1: rope_tables, and the mistakes a reader makes --------------------------------
# Written the way a reader would write them, independently of the check's own variants.


def tables(head_dim, max_seq_len, theta, exponent=2, first_position=0, layout="halves",
           swap=False, dtype=torch.float32):
    speeds = [theta ** (-exponent * i / head_dim) for i in range(head_dim // 2)]
    positions = torch.arange(first_position, first_position + max_seq_len, dtype=torch.float64)
    angles = positions[:, None] * torch.tensor(speeds, dtype=torch.float64)[None, :]
    if layout == "halves":
        angles = torch.cat([angles, angles], dim=-1)
    elif layout == "interleaved":
        angles = torch.stack([angles, angles], dim=-1).flatten(-2)
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    return (sin, cos) if swap else (cos, sin)


def per_column_speeds(head_dim, max_seq_len, theta):
    speeds = theta ** (-torch.arange(head_dim) / head_dim)
    angles = torch.arange(max_seq_len)[:, None] * speeds[None, :]
    return angles.cos(), angles.sin()


TABLE_MISTAKES = [
    (lambda d, t, theta: tables(d, t, theta, exponent=1), "your exponent is i/D"),
    (lambda d, t, theta: tables(d, t, theta, exponent=-2), "a negative exponent"),
    (lambda d, t, theta: tables(d, t, theta, first_position=1), "positions start at 0"),
    (lambda d, t, theta: tables(d, t, theta, layout="interleaved"), "laid out for interleaved"),
    (lambda d, t, theta: tables(d, t, theta, layout="pairs only"), "widen the tables to (T, D)"),
    (per_column_speeds, "not one speed per column"),
    (lambda d, t, theta: tables(d, t, theta, swap=True), "return (cos, sin)"),
    (lambda d, t, theta: tables(d, t, theta, dtype=torch.float64), "make the tables float32"),
]


def test_exercise_1_placeholder_and_right(capsys):
    ch03.exercise_1(placeholder_function)
    assert printed(capsys) == "exercise 1: not attempted yet"
    ch03.exercise_1(tables)  # computed in float64, then rounded: still the library's tables
    assert printed(capsys) == "exercise 1: correct"


@pytest.mark.parametrize(("wrong", "message"), TABLE_MISTAKES)
def test_exercise_1_names_each_mistake(capsys, wrong, message):
    ch03.exercise_1(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 1: not yet - hint: ") and message in said, said


# ---- exercise 2: apply_rope ------------------------------------------------------------------


def rotate(x, cos, sin, pairing="halves", sign=1, negate=True, use_sin=True, swap=False):
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if swap:
        cos, sin = sin, cos
    if pairing == "halves":
        a, b = x.chunk(2, dim=-1)
        turned = torch.cat([-b if negate else b, a], dim=-1)
    else:  # neighbours (2i, 2i+1), Meta's way
        a, b = x[..., 0::2], x[..., 1::2]
        turned = torch.stack([-b, a], dim=-1).flatten(-2)
    return x * cos + sign * turned * sin if use_sin else x * cos


def right_in_float32(x, cos, sin):
    return rotate(x.float(), cos, sin).to(x.dtype)


ROPE_MISTAKES = [
    (lambda x, cos, sin: rotate(x, cos, sin, pairing="neighbours"), "rotate_every_two"),
    (lambda x, cos, sin: rotate(x, cos, sin, sign=-1), "the sign of sin is flipped"),
    (lambda x, cos, sin: rotate(x, cos, sin, negate=False), "negate the second half"),
    (lambda x, cos, sin: rotate(x, cos, sin, use_sin=False), "x * cos is only half"),
    (lambda x, cos, sin: rotate(x, cos, sin, swap=True), "cos and sin are swapped"),
]


def test_exercise_2_placeholder_and_right(capsys):
    ch03.exercise_2(placeholder_function)
    assert printed(capsys) == "exercise 2: not attempted yet"
    for right in (rotate, right_in_float32):
        ch03.exercise_2(right)
        assert printed(capsys) == "exercise 2: correct"


@pytest.mark.parametrize(("wrong", "message"), ROPE_MISTAKES)
def test_exercise_2_names_each_mistake(capsys, wrong, message):
    ch03.exercise_2(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 2: not yet - hint: ") and message in said, said


def test_exercise_2_other_wrong_answers(capsys):
    def interleaved_by_hand(x, cos, sin):
        half = x.shape[-1] // 2
        c, s = cos[..., :half], sin[..., :half]
        out = torch.empty_like(x)
        out[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
        out[..., 1::2] = x[..., 1::2] * c + x[..., 0::2] * s
        return out

    def in_float32_always(x, cos, sin):
        return rotate(x.float(), cos, sin)

    def detached(x, cos, sin):
        return rotate(x, cos, sin).detach()

    ch03.exercise_2(interleaved_by_hand)
    assert "rotated neighbouring dimensions (2i, 2i+1)" in printed(capsys)
    ch03.exercise_2(in_float32_always)
    assert "the output is torch.float32, expected torch.bfloat16" in printed(capsys)
    ch03.exercise_2(detached)
    assert "not connected to x by autograd" in printed(capsys)


# ---- exercises 3 and 4 -----------------------------------------------------------------------


def relative_score(query, key, offset):  # written independently of the check: rotate the key
    cos, sin = rope_tables(key.shape[-1], offset + 1)
    return float(query @ apply_rope(key.view(1, 1, 1, -1), cos[offset:], sin[offset:]).view(-1))


def turning_pairs(head_dim, base, context_length):
    return [i for i in range(head_dim // 2)
            if 2 * math.pi * base ** (2 * i / head_dim) <= context_length]


@pytest.mark.parametrize(("exercise", "right", "wrong"), [
    (ch03.exercise_3, relative_score, lambda q, k, offset: float(q @ k)),  # no rotation
    (ch03.exercise_4, turning_pairs, lambda head_dim, base, context: list(range(head_dim // 2))),
])
def test_exercises_3_and_4(capsys, exercise, right, wrong):
    name = f"exercise {exercise.__name__[-1]}"
    exercise(placeholder_function)
    assert printed(capsys) == f"{name}: not attempted yet"
    exercise(right)
    assert printed(capsys) == f"{name}: correct"
    exercise(wrong)
    assert printed(capsys).startswith(f"{name}: not yet - hint: ")
    exercise(lambda *args: 1 / 0)
    assert printed(capsys).startswith(f"{name}: not yet")


def test_exercise_3_accepts_tensor_results(capsys):
    ch03.exercise_3(lambda q, k, offset: torch.tensor(relative_score(q, k, offset)))
    assert printed(capsys) == "exercise 3: correct"


# ---- exercise 5 (experiment): the losses are measured again from the windows -----------------


@pytest.fixture(scope="module")
def windows_and_losses():
    from transformer_lib import Transformer, book

    stored = book.stored_model()
    ids = torch.from_numpy(ch03.validation_ids())
    windows = ids[1000:1000 + 10 * 257].view(10, 257)  # not where the chapter starts
    losses = {}
    for base in (10000.0, 500000.0):  # measured here, not by the check's own function
        config = stored.model.config
        model = Transformer(type(config)(**{**config.to_dict(), "rope_theta": base})).eval()
        model.load_state_dict(stored.model.state_dict())
        with torch.no_grad():
            logits = model(windows[:, :-1])
        losses[base] = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                       windows[:, 1:].reshape(-1)).item()
    return windows, losses


def test_exercise_5_losses_are_measured_again(capsys, windows_and_losses):
    windows, losses = windows_and_losses
    assert losses[500000.0] > losses[10000.0]
    ch03.exercise_5(..., ...)
    assert printed(capsys) == "exercise 5: not attempted yet"
    ch03.exercise_5(windows, losses)
    assert printed(capsys) == "exercise 5: correct"
    fabricated = [
        {10000.0: 0.0, 500000.0: 0.0},  # all zeros
        {10000.0: 1.0, 500000.0: 2.0},  # the right direction, made-up sizes
        {10000.0: losses[10000.0], 500000.0: losses[500000.0] + 0.05},  # one entry changed
    ]
    for made_up in fabricated:
        ch03.exercise_5(windows, made_up)
        assert printed(capsys).startswith("exercise 5: not yet (windows right, losses not yet)")
    ch03.exercise_5(windows, {10000.0: losses[500000.0], 500000.0: losses[10000.0]})
    assert "swapped" in printed(capsys)
    ch03.exercise_5(windows, {10000.0: losses[10000.0]})  # a key missing
    assert printed(capsys).endswith("losses: expected a dict {10000.0: loss, 500000.0: loss}")


def test_exercise_5_windows_must_be_validation_text(capsys, windows_and_losses):
    windows, losses = windows_and_losses
    shuffled = windows[:, torch.randperm(257, generator=torch.Generator().manual_seed(0))]
    ch03.exercise_5(shuffled, losses)
    assert "257 consecutive tokens of the validation split" in printed(capsys)
    ch03.exercise_5(windows[:3], losses)  # too few windows to mean anything
    assert "at least 8 windows" in printed(capsys)
    ch03.exercise_5(windows[:, :256], losses)  # inputs without their next tokens
    assert printed(capsys).startswith("exercise 5: not yet (windows not yet, losses not yet) - "
                                      "hint: windows: expected a tensor of shape (N, 257)")
    ch03.exercise_5(..., losses)
    assert "hand in the windows you scored first" in printed(capsys)


def test_the_chapter_shows_no_answer():
    # Exercises 1 to 4 ask for functions: the chapter must show none of their bodies. (The
    # wavelength that an old exercise 1 asked for, 62.8 tokens, is printed by the chapter, so
    # it is no longer asked.) Exercise 5's loss under base 500,000 must not be printed.
    values = ch03.expected_values()
    assert 2 < values["exercise 5 (500000)"] < 6
    assert leaks("03_rope", values.values()) == []
    text = chapter_text("03_rope")
    for name in ("rope_tables", "apply_rope", "relative_score", "turning_pairs"):
        assert f"def {name}(" in text
        body = text.split(f"def {name}(", 1)[1].split("\n# %%", 1)[0]
        assert "...  # your code here" in body and "return" not in body, name
