"""The command lines, one module each: ``tlib-NAME`` or ``python -m transformer_lib.cli.NAME``.

demo, train, evaluate, generate, bench, data (the book's extract) and tokenizer. Nothing in the
library imports these modules; they sit on top of every other layer.

The helpers below are shared by the commands: argparse types that refuse a bad number while the
arguments are parsed (exit status 2, before any model is built or data read), and a check that
an output file can be written, made before the work whose result it will hold.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


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


def output_file_problem(path: str | os.PathLike, option: str = "--out") -> str | None:
    """Why a file cannot be written at ``path`` (one line saying what to do), or None.

    Run before long work: a path that is a folder, or lies under a file, would otherwise fail
    only when the result is saved, and the work would be lost.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return (f"{option} {path} is a folder; give a file name, e.g. "
                f"{option} {path / 'out.json'}")
    for parent in path.parents:
        if parent.is_dir():
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{option} {path}: cannot write in {parent} (permission denied)"
            return None
        if parent.exists() or parent.is_symlink():
            return (f"{option} {path}: {parent} is a file, not a folder; choose a path under a "
                    f"folder")
    return None
