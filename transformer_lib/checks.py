"""Argument validators shared by every layer: one function per kind of argument.

Each returns the value it accepted, so a caller can validate and assign in one line. A value of
the wrong type raises TypeError; a value of the right type out of range raises ValueError. Both
name the argument and say what it must be.
"""

from __future__ import annotations

import math
import numbers
import operator


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


def require_real(name: str, value, why: str = "") -> float:
    """``value`` as a float if it is a real number: a Python or numpy int or float, not a bool, a
    string or a tensor (which a config saved as JSON could not hold)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}{why}")
    return float(value)


def require_positive_number(name: str, value, why: str = "") -> float:
    """``value`` as a float if it is a finite real number > 0."""
    value = require_real(name, value, why)
    if not 0 < value < math.inf:  # also refuses NaN
        raise ValueError(f"{name}={value!r} must be a finite positive number{why}")
    return value


def require_token_ids(ids, vocab_size: int) -> list[int]:
    """One sequence of token ids as a list of ints, each in [0, vocab_size): a list, a numpy
    array or tensor of shape (T,), or a single id (an int or a 0-dim array) for one token."""
    shape = getattr(ids, "shape", None)
    if shape is not None and len(shape) > 1:
        raise ValueError(f"decode takes one sequence of ids (T,), got shape {tuple(shape)}; "
                         f"decode each row")
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if is_int(ids) or isinstance(ids, bool):  # one id (a bool is refused below)
        ids = [ids]
    ids = [_as_index(i) for i in ids]
    bad = [i for i in ids if not is_int(i) or not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"cannot decode ids {bad[:5]}: ids must be ints in [0, {vocab_size})")
    return ids


def texts_of(texts):
    """The documents of ``texts``: a datasets.Dataset's "text" column, read in batches (what
    load_stories returns; iterating the Dataset itself would give its rows as dicts), else
    ``texts`` itself."""
    if hasattr(texts, "column_names"):
        require_text_column(texts)
        return (text for batch in texts.iter(batch_size=1000) for text in batch["text"])
    return texts


def require_text_column(dataset) -> None:
    """A KeyError naming the columns of a datasets.Dataset that has no "text" column."""
    if "text" not in dataset.column_names:
        raise KeyError(f"dataset has no 'text' column (columns: {dataset.column_names})")


def _as_index(value):
    """An int from an int-like id (a numpy integer, a 0-dim tensor); other values unchanged
    (a bool too: True is not a token id)."""
    if isinstance(value, bool):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value
