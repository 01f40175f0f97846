"""The checks of chapter 8's exercises: placeholder, right answer, wrong answer."""

import torch
from exercise_checks import printed

from transformer_lib.book.exercises import ch08
from transformer_lib.model.generation import filter_logits


def test_exercise_1_positions_through_the_model(capsys):
    def placeholder(P, N):
        ...

    def right(P, N):
        return N * P + N * (N - 1) // 2, P + N - 1

    def one_too_many(P, N):  # counts a forward pass after the last token
        return sum(P + t for t in range(N + 1)), P + N

    ch08.exercise_1(placeholder)
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
    logits = torch.randn(200, generator=torch.Generator().manual_seed(0)) * 3

    def kept(temperature):
        return int(torch.isfinite(filter_logits(logits, temperature, None, 0.9)).sum())

    ch08.exercise_2(..., logits)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch08.exercise_2((kept(1.0), kept(0.5)), logits)
    assert printed(capsys) == "exercise 2: correct"
    ch08.exercise_2((kept(1.0), kept(1.0)), logits)  # forgot the temperature
    assert printed(capsys).startswith("exercise 2: not yet - hint:")


def test_exercise_3_repetition_against_temperature(capsys):
    ch08.exercise_3(...)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch08.exercise_3({0.0: 0.8, 0.7: 0.3, 1.0: 0.05})
    assert printed(capsys) == "exercise 3: correct"
    for wrong in ({0.0: 0.05, 0.7: 0.3, 1.0: 0.8}, {0.0: 0.8, 1.0: 0.1}, {0.5: 0.8, 0.7: 0.3,
                                                                            1.0: 0.1}):
        ch08.exercise_3(wrong)
        assert printed(capsys).startswith("exercise 3: not yet - hint:")
