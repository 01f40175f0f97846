"""The checks of chapter 9's exercises: placeholder, right answer, wrong answer."""

import torch
from exercise_checks import printed

from transformer_lib.book.exercises import ch09


def test_exercise_1_formats(capsys):
    ch09.exercise_1(...)
    assert printed(capsys) == "exercise 1: not attempted yet"
    ch09.exercise_1({"fp32", "fp16"})  # 10 mantissa bits reach 2^-9, bf16's 7 do not
    assert printed(capsys) == "exercise 1: correct"
    ch09.exercise_1({"fp32"})
    assert printed(capsys).startswith("exercise 1: not yet - hint:")


def test_exercise_2_sequences_per_forward(capsys):
    ch09.exercise_2(...)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch09.exercise_2(8)
    assert printed(capsys) == "exercise 2: correct"
    ch09.exercise_2(16)
    assert printed(capsys).startswith("exercise 2: not yet - hint:")


def test_exercise_3_kv_cache_formula(capsys):
    def placeholder(config, batch_size, seq_len):
        ...

    def right(config, batch_size, seq_len):
        return 2 * config.num_layers * batch_size * config.num_kv_heads * seq_len \
            * config.head_dim * 4

    def query_heads(config, batch_size, seq_len):  # forgets grouped-query attention
        return 2 * config.num_layers * batch_size * config.num_heads * seq_len \
            * config.head_dim * 4

    def raises(config, batch_size, seq_len):
        raise RuntimeError("oops")

    ch09.exercise_3(placeholder)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch09.exercise_3(right)
    assert printed(capsys) == "exercise 3: correct"
    for wrong in (query_heads, raises):
        ch09.exercise_3(wrong)
        assert printed(capsys).startswith("exercise 3: not yet - hint:")


def _errors(sizes):
    errors = {}
    for n in sizes:
        generator = torch.Generator().manual_seed(n)
        a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)
        exact = a.double() @ b.double()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = a @ b
        errors[n] = tuple(float((c.double() - exact).norm() / exact.norm())
                          for c in (a @ b, low))
    return errors


def test_exercise_4_bf16_matmul_error(capsys):
    ch09.exercise_4(...)
    assert printed(capsys) == "exercise 4: not attempted yet"
    ch09.exercise_4(_errors([16, 64, 256]))
    assert printed(capsys) == "exercise 4: correct"
    swapped = {n: (b, f) for n, (f, b) in _errors([16, 64, 256]).items()}
    for wrong in (swapped, _errors([16, 32]), {16: (0.0, 0.0)}):
        ch09.exercise_4(wrong)
        assert printed(capsys).startswith("exercise 4: not yet - hint:")
