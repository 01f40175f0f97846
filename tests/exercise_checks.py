"""Helpers shared by the tests of the exercise checks (tests/test_exercises_chNN.py)."""

from transformer_lib.book.checking import LINE_WIDTH


def printed(capsys) -> str:
    """The verdict a check printed since the last read, its wrapped hint joined into one line.

    A check prints one verdict; a long hint continues on indented lines, each under 100
    characters.
    """
    lines = capsys.readouterr().out.splitlines()
    assert lines and not lines[0].startswith(" "), lines
    assert all(line.startswith("    ") for line in lines[1:]), lines
    assert all(len(line) <= LINE_WIDTH for line in lines), lines
    return " ".join(line.strip() for line in lines)


def assert_cases(capsys, number, check, placeholder, right, wrongs) -> None:
    """A placeholder is not attempted, the right answer correct, every wrong one gets a hint."""
    check(*placeholder)
    assert printed(capsys) == f"exercise {number}: not attempted yet"
    check(*right)
    assert printed(capsys) == f"exercise {number}: correct"
    for wrong in wrongs:
        check(*wrong)
        assert printed(capsys).startswith(f"exercise {number}: not yet")
