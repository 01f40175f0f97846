"""The checks of chapter 9's exercises: placeholder, right answer, wrong and fabricated ones."""

import pytest
import torch
from answer_leaks import leaks
from exercise_checks import assert_cases, printed

from transformer_lib import Transformer
from transformer_lib.book.exercises import ch09


def test_exercise_1_formats(capsys):
    assert_cases(capsys, 1, ch09.exercise_1, [...], [{"fp32", "fp16"}],
                 [[{"fp32"}], [{"fp32", "bf16", "fp16"}], [set()]])


def test_exercise_2_sequences_per_forward(capsys):
    assert_cases(capsys, 2, ch09.exercise_2, [...], [21], [[42], [63], [126], [0], [21.5]])
    ch09.exercise_2(42)
    assert "--grad-accum splits it again" in printed(capsys)
    ch09.exercise_2(63)
    assert "shared among the processes first" in printed(capsys)


# ---- exercise 3: written independently of the check, from the shapes ----------------------


def _parameters(config):
    with torch.device("meta"):
        return Transformer(config).num_parameters()


def right(config, seq_len, memory_bytes):
    per_sequence = 2 * config.num_layers * config.num_kv_heads * config.head_dim * seq_len * 4
    return max(0, (memory_bytes - 4 * _parameters(config)) // per_sequence)


def no_weights(config, seq_len, memory_bytes):
    return memory_bytes // (2 * config.num_layers * config.num_kv_heads * config.head_dim
                            * seq_len * 4)


def query_heads(config, seq_len, memory_bytes):
    per_sequence = 2 * config.num_layers * config.num_heads * config.head_dim * seq_len * 4
    return max(0, (memory_bytes - 4 * _parameters(config)) // per_sequence)


def rounds_up(config, seq_len, memory_bytes):
    per_sequence = 2 * config.num_layers * config.num_kv_heads * config.head_dim * seq_len * 4
    return max(0, -(-(memory_bytes - 4 * _parameters(config)) // per_sequence))


def keys_only(config, seq_len, memory_bytes):
    per_sequence = config.num_layers * config.num_kv_heads * config.head_dim * seq_len * 4
    return max(0, (memory_bytes - 4 * _parameters(config)) // per_sequence)


def negative(config, seq_len, memory_bytes):  # forgets that a too-small memory holds none
    per_sequence = 2 * config.num_layers * config.num_kv_heads * config.head_dim * seq_len * 4
    return (memory_bytes - 4 * _parameters(config)) // per_sequence


def raises(config, seq_len, memory_bytes):
    raise RuntimeError("oops")


def test_exercise_3_placeholder_right_and_wrong(capsys):
    def placeholder(config, seq_len, memory_bytes):
        ...

    def fractional(config, seq_len, memory_bytes):
        return right(config, seq_len, memory_bytes) + 0.5

    assert_cases(capsys, 3, ch09.exercise_3, [placeholder], [right],
                 [[negative], [raises], [fractional], [lambda c, t, m: 0]])


@pytest.mark.parametrize(("wrong", "message"), [
    (no_weights, "the weights need room too"),
    (query_heads, "num_kv_heads heads, not num_heads"),
    (rounds_up, "round down"),
    (keys_only, "keys and values, two tensors"),
])
def test_exercise_3_names_each_mistake(capsys, wrong, message):
    ch09.exercise_3(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 3: not yet - hint: ") and message in said, said


# ---- exercise 4: recomputed from the seed --------------------------------------------------


def measured(sizes, seed):
    """Written independently of the check: a then b from one generator per size."""
    errors = {}
    for n in sizes:
        generator = torch.Generator().manual_seed(seed)
        a = torch.randn(n, n, generator=generator)
        b = torch.randn(n, n, generator=generator)
        exact = a.double() @ b.double()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = a @ b
        errors[n] = tuple(float((c.double() - exact).norm() / exact.norm())
                          for c in (a @ b, low))
    return errors


def test_exercise_4_recomputes_from_the_seed(capsys):
    honest = measured([16, 64, 256], seed=3)
    one_changed = dict(honest)
    one_changed[64] = (honest[64][0], honest[64][1] * 1.1)
    made_up = {16: (1e-7, 3e-3), 64: (2e-7, 3e-3), 256: (3e-7, 3e-3)}  # right direction
    swapped = {n: (b, f) for n, (f, b) in honest.items()}
    assert_cases(capsys, 4, ch09.exercise_4, [..., ...], [honest, 3],
                 [[{n: (0.0, 0.0) for n in honest}, 3], [made_up, 3], [one_changed, 3],
                  [swapped, 3], [honest, 4], [measured([16, 32], 3), 3], [honest, "3"],
                  [honest, ...]])
    too_large = {16: (1e-7, 3e-3), 64: (2e-7, 3e-3), 2048: (4e-7, 3e-3)}  # not run: refused
    ch09.exercise_4(too_large, 0)
    assert "keep n between 2 and 512" in printed(capsys)
    ch09.exercise_4([1e-7, 3e-3], 0)
    assert printed(capsys).endswith("expected a dict {n: (fp32_error, bf16_error)}")


def test_the_chapter_shows_no_answer():
    values = ch09.expected_values()
    assert values["exercise 2"] == 21 and values["exercise 3 example"] > 1000
    assert leaks("09_hardware", values.values()) == []
