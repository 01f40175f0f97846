"""Chapter 4's exercise checks: placeholder, right and wrong answers each print the right line."""

import pytest
import torch
from exercise_checks import printed

from transformer_lib.book.exercises import ch04
from transformer_lib.model.rope import apply_rope, rope_tables

QUERY = 4.0 * torch.ones(16)  # the chapter's hand-set query vector


def turned(vector, position):
    cos, sin = rope_tables(vector.shape[-1], position + 1)
    return apply_rope(vector.view(1, 1, 1, -1), cos[position:], sin[position:]).view(-1)


@pytest.mark.parametrize(("exercise", "right", "wrong"), [
    # 2 products of (1024 x 64) by (64 x 1024) and (1024 x 1024) by (1024 x 64), 12 heads
    (ch04.exercise_1, 2 * 12 * 2 * 1024 * 1024 * 64, 12 * 2 * 1024 * 1024 * 64),
    (ch04.exercise_2, (1.0, 4.0), (4.0, 1.0)),  # 2 * 32 * 8 * 128 * 8192 * 2 bytes = 1 GiB
    (ch04.exercise_3, [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4]),
])
def test_placeholder_right_and_wrong(capsys, exercise, right, wrong):
    name = f"exercise {exercise.__name__[-1]}"
    exercise(...)
    assert printed(capsys) == f"{name}: not attempted yet"
    exercise(right)
    assert printed(capsys) == f"{name}: correct"
    exercise(wrong)
    assert printed(capsys).startswith(f"{name}: not yet - hint: ")


def test_exercise_4_wants_a_head_two_tokens_back(capsys):
    ch04.exercise_4(..., QUERY)
    assert printed(capsys) == "exercise 4: not attempted yet"
    ch04.exercise_4(turned(QUERY, 2), QUERY)
    assert printed(capsys) == "exercise 4: correct"
    for wrong in (turned(QUERY, 1), QUERY, torch.ones(8)):  # one back, itself, a wrong shape
        ch04.exercise_4(wrong, QUERY)
        assert printed(capsys).startswith("exercise 4: not yet - hint: ")


def test_exercise_5_wants_saturation_without_the_scale(capsys):
    ch04.exercise_5(...)
    assert printed(capsys) == "exercise 5: not attempted yet"
    ch04.exercise_5({"scaled": 0.45, "unscaled": 0.8})
    assert printed(capsys) == "exercise 5: correct"
    for wrong in ({"scaled": 0.8, "unscaled": 0.45}, {"scaled": 0.45}, {"scaled": 0.45,
                                                                        "unscaled": 1.5}):
        ch04.exercise_5(wrong)
        assert printed(capsys).startswith("exercise 5: not yet - hint: ")
