"""Helpers shared by the tests of the exercise checks (tests/test_exercises_chNN.py)."""


def printed(capsys) -> str:
    """The one line a check printed since the last read (a check prints exactly one)."""
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def assert_cases(capsys, number, check, placeholder, right, wrongs) -> None:
    """A placeholder is not attempted, the right answer correct, every wrong one gets a hint."""
    check(*placeholder)
    assert printed(capsys) == f"exercise {number}: not attempted yet"
    check(*right)
    assert printed(capsys) == f"exercise {number}: correct"
    for wrong in wrongs:
        check(*wrong)
        assert printed(capsys).startswith(f"exercise {number}: not yet - hint: ")
