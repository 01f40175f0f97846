"""The checks of chapter 10's exercises: placeholder, right answer, wrong answer."""

import pytest
from exercise_checks import printed

from transformer_lib.book.exercises import ch10

pytest.importorskip("transformers")



def test_exercise_1_name_mapping(capsys):
    def placeholder(name):
        ...

    def right(name):
        return name if name.startswith("lm_head") else "model." + name

    def prefix_everything(name):
        return "model." + name

    ch10.exercise_1(placeholder)
    assert printed(capsys) == "exercise 1: not attempted yet"
    ch10.exercise_1(right)
    assert printed(capsys) == "exercise 1: correct"
    ch10.exercise_1(prefix_everything)
    assert printed(capsys).startswith("exercise 1: not yet - hint:")


def test_exercise_2_halves_to_interleaved_order(capsys):
    ch10.exercise_2(...)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch10.exercise_2([0, 4, 1, 5, 2, 6, 3, 7])
    assert printed(capsys) == "exercise 2: correct"
    for wrong in ([0, 2, 4, 6, 1, 3, 5, 7], list(range(8)), [0, 4, 1]):
        ch10.exercise_2(wrong)
        assert printed(capsys).startswith("exercise 2: not yet - hint:")


def test_exercise_3_wrong_export_drift(capsys):
    ch10.exercise_3(...)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch10.exercise_3((7.5, 0.4))
    assert printed(capsys) == "exercise 3: correct"
    for wrong in ((1e-6, 1.0), (7.5, 1.0)):
        ch10.exercise_3(wrong)
        assert printed(capsys).startswith("exercise 3: not yet - hint:")
