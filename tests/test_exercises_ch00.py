"""Chapter 0's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint."""

import pytest
from exercise_checks import printed

from transformer_lib.book.exercises import ch00

# Right answers worked out by hand from the presets (tiny: 512 x 64; seed-22.5M: 50,257 x 256;
# the book's model: 2 (key, value) x 4 layers x 2 KV heads x 32 numbers per head).
RIGHT = {"exercise_1": 512 * 64, "exercise_2": 50_257 * 256, "exercise_4": 2 * 4 * 2 * 32}
WRONG = {"exercise_1": 512 * 64 * 2, "exercise_2": 22_505_984, "exercise_4": 2 * 4 * 4 * 32}




@pytest.mark.parametrize("name", sorted(RIGHT))
def test_value_exercises(name, capsys):
    number = name.split("_")[1]
    check = getattr(ch00, name)
    check(...)
    assert printed(capsys) == f"exercise {number}: not attempted yet"
    check(RIGHT[name])
    assert printed(capsys) == f"exercise {number}: correct"
    check(WRONG[name])
    assert printed(capsys).startswith(f"exercise {number}: not yet - hint: ")
    check("a string")
    assert printed(capsys).startswith(f"exercise {number}: not yet - hint: ")


def test_exercise_3_count_parameters(capsys):
    def placeholder(model):
        ...

    def right(model):
        return sum(p.numel() for p in model.parameters())

    def counts_shared_twice(model):
        return sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))

    def crashes(model):
        raise RuntimeError("oops")

    ch00.exercise_3(placeholder)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch00.exercise_3(right)
    assert printed(capsys) == "exercise 3: correct"
    for wrong in (counts_shared_twice, crashes):
        ch00.exercise_3(wrong)
        assert printed(capsys).startswith("exercise 3: not yet - hint: ")
