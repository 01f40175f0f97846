"""Chapter 5's exercise checks: placeholder, right and wrong answers each print the right line."""

import torch
import torch.nn.functional as F
from exercise_checks import printed

from transformer_lib.book.exercises import ch05


def placeholder_function(*args):
    ...


def test_exercise_1_width_and_parameters(capsys):
    ch05.exercise_1(...)
    assert printed(capsys) == "exercise 1: not attempted yet"
    ch05.exercise_1((1408, 3 * 512 * 1408))  # int(1365.33) = 1365 -> 22 * 64 = 1408
    assert printed(capsys) == "exercise 1: correct"
    ch05.exercise_1((1365, 3 * 512 * 1365))
    assert printed(capsys).startswith("exercise 1: not yet - hint: ")


def test_exercise_2_silu_derivative(capsys):
    ch05.exercise_2(placeholder_function)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch05.exercise_2(lambda x: torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x))))
    assert printed(capsys) == "exercise 2: correct"
    for wrong in (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)),
                  lambda x: 1 / 0):
        ch05.exercise_2(wrong)
        assert printed(capsys).startswith("exercise 2: not yet - hint: ")


def test_exercise_3_geglu(capsys):
    ch05.exercise_3(placeholder_function)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch05.exercise_3(lambda x, ffn: ffn.down_proj(F.gelu(ffn.gate_proj(x)) * ffn.up_proj(x)))
    assert printed(capsys) == "exercise 3: correct"
    ch05.exercise_3(lambda x, ffn: ffn(x))  # still SwiGLU
    assert printed(capsys).startswith("exercise 3: not yet - hint: ")


def test_exercise_3_leaves_the_readers_random_stream_alone(capsys):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ch05.exercise_3(lambda x, ffn: ffn(x))
    capsys.readouterr()
    assert torch.equal(torch.rand(3), expected)


def test_exercise_4_bilinear_beats_swiglu_on_products(capsys):
    swiglu = [1.0] * 250 + [0.025] * 50
    ch05.exercise_4(..., swiglu)
    assert printed(capsys) == "exercise 4: not attempted yet"
    ch05.exercise_4([1.0] * 250 + [0.002] * 50, swiglu)
    assert printed(capsys) == "exercise 4: correct"
    for wrong in ([1.0] * 250 + [0.03] * 50, [0.002] * 50):  # worse; not one loss per step
        ch05.exercise_4(wrong, swiglu)
        assert printed(capsys).startswith("exercise 4: not yet - hint: ")
