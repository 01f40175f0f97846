"""Argument validators shared by every layer: one function per kind of argument.

Each returns the value it accepted, so a caller can validate and assign in one line. A value of
the wrong type raises TypeError; a value of the right type out of range raises ValueError. Both
name the argument and say what it must be.
"""

from __future__ import annotations

import numbers


def is_int(value) -> bool:
    """True for Python and numpy integers; False for bool (True is not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_int(name: str, value, minimum: int = 1, why: str = "") -> int:
    """``value`` as an int if it is an integer >= ``minimum``; ``why`` ends the error message."""
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}{why}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}{why}")
    return int(value)


def require_positive_number(name: str, value, why: str = "") -> float:
    """``value`` as a float if it is a real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}{why}")
    if not value > 0:  # also refuses NaN
        raise ValueError(f"{name}={value!r} must be a positive number{why}")
    return float(value)
