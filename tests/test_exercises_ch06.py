"""Chapter 6's exercise checks: placeholder, right and wrong answers."""

import math

import pytest

from transformer_lib.book.exercises import ch06


def block_formula(config):
    C, F = config.d_model, config.ffn_hidden_dim
    kv_width = config.num_kv_heads * config.head_dim
    return 2 * C * C + 2 * C * kv_width + 3 * C * F + 2 * C


def without_kv_heads(config):  # right only for full multi-head attention
    return 4 * config.d_model ** 2 + 3 * config.d_model * config.ffn_hidden_dim + 2 * config.d_model


def placeholder_function(config):
    ...


def raises(config):
    raise RuntimeError("unfinished")


GPT2_SAVED = 50257 * 768
GPT2_UNTIED = 123_551_232 + GPT2_SAVED
MEASURED_GRADS = {"pre-norm": [0.456, 0.599, 0.715, 0.987, 1.26],
                  "post-norm": [0.546, 1.0, 2.35, 6.44, 248.0]}


@pytest.mark.parametrize("exercise, placeholder, right, wrongs", [
    (ch06.exercise_1, placeholder_function, block_formula, [without_kv_heads, raises]),
    (ch06.exercise_2, ..., GPT2_SAVED / GPT2_UNTIED,
     [GPT2_SAVED / 123_551_232, GPT2_SAVED, "a third"]),
    (ch06.exercise_3, ..., 25.0, [math.log(512), 6.3, float("nan")]),
    (ch06.exercise_4, None, MEASURED_GRADS,
     [{"pre-norm": MEASURED_GRADS["post-norm"], "post-norm": MEASURED_GRADS["pre-norm"]},
      {"pre-norm": [1.0] * 4, "post-norm": [1.0, 10.0, 100.0, 1e3]},
      {"pre-norm": [0.5, 0.6], "post-norm": [0.5, 250.0]}]),
])
def test_placeholder_right_and_wrong(capsys, exercise, placeholder, right, wrongs):
    number = exercise.__name__.split("_")[1]
    exercise(placeholder)
    assert capsys.readouterr().out == f"exercise {number}: not attempted yet\n"
    exercise(right)
    assert capsys.readouterr().out == f"exercise {number}: correct\n"
    for wrong in wrongs:
        exercise(wrong)
        assert capsys.readouterr().out.startswith(f"exercise {number}: not yet - hint: ")
