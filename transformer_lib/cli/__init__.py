"""The command lines, one module each: ``tlib-NAME`` or ``python -m transformer_lib.cli.NAME``.

demo, train, evaluate, generate, bench, data (the book's extract) and tokenizer. Nothing in the
library imports these modules; they sit on top of every other layer.

The helpers below are shared by the commands: argparse types that refuse a bad number while the
arguments are parsed (exit status 2, before any model is built or data read). Whether an output
path can be written is ``fileio.output_path_problem``, shared with the data layer.
"""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= {minimum}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (float() alone accepts 'inf' and 'nan')."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value
