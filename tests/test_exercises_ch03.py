"""Chapter 3's exercise checks: placeholder, right and wrong answers each print the right line."""

import math

import pytest
import torch
from exercise_checks import printed

from transformer_lib.book.exercises import ch03
from transformer_lib.model.rope import apply_rope, rope_tables


def placeholder_function(*args):
    ...


def relative_score(query, key, offset):  # written independently of the check: rotate the key
    cos, sin = rope_tables(key.shape[-1], offset + 1)
    return float(query @ apply_rope(key.view(1, 1, 1, -1), cos[offset:], sin[offset:]).view(-1))


def turning_pairs(head_dim, base, context_length):
    return [i for i in range(head_dim // 2)
            if 2 * math.pi * base ** (2 * i / head_dim) <= context_length]


@pytest.mark.parametrize(("exercise", "placeholder", "right", "wrong"), [
    (ch03.exercise_1, ..., 20 * math.pi, 2 * math.pi),
    (ch03.exercise_2, placeholder_function, relative_score,
     lambda q, k, offset: float(q @ k)),  # ignores the rotation
    (ch03.exercise_3, placeholder_function, turning_pairs,
     lambda head_dim, base, context: list(range(head_dim // 2))),
    (ch03.exercise_4, ..., {10000.0: 1.4, 500000.0: 2.9}, {10000.0: 2.9, 500000.0: 1.4}),
])
def test_placeholder_right_and_wrong(capsys, exercise, placeholder, right, wrong):
    name = f"exercise {exercise.__name__[-1]}"
    exercise(placeholder)
    assert printed(capsys) == f"{name}: not attempted yet"
    exercise(right)
    assert printed(capsys) == f"{name}: correct"
    exercise(wrong)
    assert printed(capsys).startswith(f"{name}: not yet - hint: ")


def test_a_function_that_raises_is_wrong_not_a_crash(capsys):
    def broken(*args):
        raise RuntimeError("bug")

    ch03.exercise_2(broken)
    assert printed(capsys).startswith("exercise 2: not yet")
    ch03.exercise_4({10000.0: 1.4})  # a missing key
    assert printed(capsys).startswith("exercise 4: not yet")


def test_exercise_2_accepts_tensor_results(capsys):
    ch03.exercise_2(lambda q, k, offset: torch.tensor(relative_score(q, k, offset)))
    assert printed(capsys) == "exercise 2: correct"
