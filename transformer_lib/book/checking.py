"""How the book's exercise checks talk to the reader.

Every check prints one verdict: ``exercise N: not attempted yet``, ``exercise N: correct``, or
``exercise N: not yet - hint: ...``. A hint longer than a line is wrapped at :data:`LINE_WIDTH`
characters onto indented continuation lines, so it reads in a narrow notebook column.

- :func:`check` judges one answer. Its test may return ``True``/``False``, or a string that
  names the specific mistake (said instead of the general hint). An answer of the wrong form
  (the test raises TypeError, ValueError, IndexError...) is told what form was expected.
- :func:`check_parts` judges an answer of several named parts and says which are right.
- :func:`compare_function` runs a reader's function against the library's on a list of inputs
  and, when they differ, names the known mistake whose output the reader's matches.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

LINE_WIDTH = 99  # printed lines stay under 100 characters
SHAPE_ERRORS = (TypeError, ValueError, IndexError, KeyError, AttributeError, RuntimeError)


class Unrecognised(str):
    """What differs, from a comparison that recognised no known mistake: :func:`check` adds
    the exercise's own hint after it, where a named mistake replaces the hint."""


def is_placeholder(answer: Any) -> bool:
    """True for what an exercise cell holds before the reader answers: ``...`` or ``None``."""
    return answer is None or answer is Ellipsis


def function_answer(function: Any, *probe: Any) -> Any:
    """The reader's function, or None while it is still the placeholder (a body of ``...``).

    The body is read from the source where there is one, so a written function that forgets its
    ``return`` counts as attempted (the check then says it returned None). Without a source,
    ``probe`` (one call's arguments) decides: a function returning ``...`` or None is the
    placeholder, one that raises is attempted and gets "not yet".
    """
    if is_placeholder(function):
        return None
    body_is_placeholder = _body_is_placeholder(function)
    if body_is_placeholder is not None:
        return None if body_is_placeholder else function
    try:
        with torch.random.fork_rng(devices=[]):
            result = function(*probe)
    except Exception:  # noqa: BLE001 - attempted but failing: the check will say "not yet"
        return function
    return None if is_placeholder(result) else function


def is_placeholder_source(source: str) -> bool:
    """True when the function in ``source`` has a body of only a docstring and ``...`` (or
    ``return ...``): what an exercise cell holds before the reader writes it."""
    function = ast.parse(textwrap.dedent(source)).body[0]
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ValueError("expected the source of one function")
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    return all(isinstance(node, (ast.Expr, ast.Return)) and isinstance(node.value, ast.Constant)
               and node.value.value is Ellipsis for node in body)


def _body_is_placeholder(function: Any) -> bool | None:
    """Whether a function's body is the placeholder; None without a source to read (a builtin,
    a lambda, a function made by exec)."""
    try:
        return is_placeholder_source(inspect.getsource(function))
    except (OSError, TypeError, SyntaxError, ValueError, IndexError):
        return None


def say(text: str) -> None:
    """Print ``text`` wrapped to :data:`LINE_WIDTH`, continuation lines indented."""
    print(textwrap.fill(text, width=LINE_WIDTH, subsequent_indent="    ",
                        break_long_words=False, break_on_hyphens=False))


def judge(answer: Any, is_right: Callable[[Any], bool | str], hint: str,
          expects: str | None = None) -> tuple[bool, str]:
    """(passed, what to tell the reader) for one answer; see :func:`check`."""
    try:
        result = is_right(answer)
    except SHAPE_ERRORS:
        return False, f"expected {expects}" if expects else hint
    except Exception:  # noqa: BLE001 - any failure of a wrong answer is "not yet", not a crash
        return False, hint
    if isinstance(result, Unrecognised):  # it says what differs, the hint how to build it
        return False, f"{result}; {hint}"
    if isinstance(result, str):
        return False, result
    return bool(result), hint


def check(exercise: str, answer: Any, is_right: Callable[[Any], bool | str], hint: str,
          expects: str | None = None) -> None:
    """Tell the reader whether an exercise's answer is right.

    ``answer`` is the reader's value (``...`` or ``None`` until they write one, which prints
    "not attempted yet"); ``is_right(answer)`` tests the property the exercise is about and
    returns a bool, or a string naming the mistake it recognised. ``expects`` describes the
    answer's form ("a pair (rms, layer_norm)", "a list of 2 numbers"): an answer of another
    form, which makes the test raise, is told that instead of the hint. The hint guides without
    giving the answer away. Returns nothing, so no stray value follows the verdict.
    """
    if is_placeholder(answer):
        print(f"{exercise}: not attempted yet")
        return
    with torch.random.fork_rng(devices=[]):  # a check leaves the reader's random stream alone
        passed, message = judge(answer, is_right, hint, expects)
    if passed:
        print(f"{exercise}: correct")
    else:
        say(f"{exercise}: not yet - hint: {message}")


@dataclass(frozen=True)
class Part:
    """One named part of an answer, judged on its own (see :func:`check_parts`)."""

    name: str  # as the reader's variable is called
    answer: Any
    is_right: Callable[[Any], bool | str]
    hint: str
    expects: str | None = None  # its form, e.g. "a whole number"


def check_parts(exercise: str, *parts: Part) -> None:
    """Tell the reader which parts of a several-part answer are right.

    Every part a placeholder: "not attempted yet". Every part right: "correct". Otherwise one
    verdict that names each part as right, not yet, or not attempted, then the hint of the first
    part that is not right.
    """
    if all(is_placeholder(part.answer) for part in parts):
        print(f"{exercise}: not attempted yet")
        return
    statuses, first_hint = [], None
    for part in parts:
        if is_placeholder(part.answer):
            statuses.append(f"{part.name} not attempted")
            continue
        with torch.random.fork_rng(devices=[]):
            passed, message = judge(part.answer, part.is_right, part.hint, part.expects)
        statuses.append(f"{part.name} {'right' if passed else 'not yet'}")
        if not passed and first_hint is None:
            first_hint = f"{part.name}: {message}"
    if first_hint is None and all(not is_placeholder(part.answer) for part in parts):
        print(f"{exercise}: correct")
        return
    first_hint = first_hint or "answer the remaining parts"
    say(f"{exercise}: not yet ({', '.join(statuses)}) - hint: {first_hint}")


# ---- functions the reader writes ------------------------------------------------------------


def _as_outputs(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _same(got: Any, want: Any, atol: float, rtol: float) -> bool:
    got, want = _as_outputs(got), _as_outputs(want)
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if isinstance(w, torch.Tensor):
            if not isinstance(g, torch.Tensor) or g.shape != w.shape or g.dtype != w.dtype:
                return False
            if not torch.allclose(g.detach().double(), w.detach().double(), atol=atol, rtol=rtol,
                                  equal_nan=True):
                return False
        elif isinstance(w, float):
            if not isinstance(g, (int, float)) or not math.isclose(g, w, abs_tol=atol,
                                                                     rel_tol=rtol):
                return False
        elif g != w:
            return False
    return True


def _mismatch(got: Any, want: Any, names: Sequence[str] | None = None, atol: float = 0.0,
              rtol: float = 0.0) -> str:
    """What differs between the reader's output and the library's, in a few words; with
    ``names`` (one per output, e.g. "the output", "the gradient of x"), which output differs."""
    got, want = _as_outputs(got), _as_outputs(want)
    if names is None or len(names) != len(want):
        if len(got) != len(want):
            return f"returned {len(got)} value(s), expected {len(want)}"
        if all(g is None for g in got) and not all(w is None for w in want):
            return "your function returned None: is its `return` missing?"
        names = None
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        part = names[index] if names else None
        if g is None and w is not None and part is not None:
            return (f"{part} is None: something between the inputs and the output is cut off "
                    f"from autograd (a .detach(), .data or torch.no_grad())")
        if isinstance(w, torch.Tensor):
            if not isinstance(g, torch.Tensor):
                return f"{part or 'returned'} {_describe(g)}, expected {_describe(w)}"
            if g.shape != w.shape:
                return (f"{part + ' has' if part else 'returned'} shape {tuple(g.shape)}, "
                        f"expected {tuple(w.shape)}")
            if g.dtype != w.dtype:
                return (f"{part + ' is' if part else 'returned'} {g.dtype}, expected {w.dtype} "
                        f"(keep the input's dtype)")
        if part is not None and not _same(g, w, atol, rtol):
            rest = [name for name, g2, w2 in zip(names, got, want, strict=True)
                    if name != part and _same(g2, w2, atol, rtol)]
            verb = "matches" if len(rest) == 1 else "match"
            matching = f" ({' and '.join(rest)} {verb})" if rest else ""
            return f"{part} differs from the library's{matching}"
    return "the values differ from the library's"


def compare_function(reader: Callable, reference: Callable, cases: Sequence[tuple],
                     mistakes: Mapping[str, Callable] | None = None, *, atol: float = 1e-5,
                     rtol: float = 1e-5, describe_case: Callable[[tuple], str] | None = None,
                     output_names: Sequence[str] | None = None) -> bool | str:
    """True when ``reader(*case)`` equals ``reference(*case)`` for every case, else a message.

    ``cases`` are argument tuples (random inputs of several shapes and dtypes); tensors in them
    are cloned for each call, so neither function sees the other's in-place changes. Outputs
    are compared in shape, dtype and value (within ``atol``/``rtol``). When they differ, each
    known wrong variant in ``mistakes`` (message -> function with the reference's signature)
    is run on the same cases; the message of the first one that the reader's output matches
    everywhere is returned, so the reader learns the likely mistake. Otherwise the message
    names the first failing case (``describe_case`` words it) and what differs: with
    ``output_names`` (one per returned value), which of the outputs.
    """
    outputs = []
    for case in cases:
        want = reference(*_cloned(case))
        try:
            got = reader(*_cloned(case))
        except Exception as err:  # noqa: BLE001 - the reader's bug, reported in a line
            where = f" on {describe_case(case)}" if describe_case else ""
            return f"your function raised {type(err).__name__}{where}: {str(err)[:120]}"
        outputs.append((got, want))
    if all(_same(got, want, atol, rtol) for got, want in outputs):
        return True
    for message, wrong in (mistakes or {}).items():
        if all(_same(got, wrong(*_cloned(case)), atol, rtol)
               for (got, _), case in zip(outputs, cases, strict=True)):
            return message
    for (got, want), case in zip(outputs, cases, strict=True):
        if not _same(got, want, atol, rtol):
            where = f"on {describe_case(case)}: " if describe_case else ""
            return Unrecognised(where + _mismatch(got, want, output_names, atol, rtol))
    return Unrecognised("the values differ from the library's")  # unreachable


def require_tensor(out: Any) -> torch.Tensor:
    """``out`` if the reader's function returned a tensor; else a TypeError that says what it
    returned (None most often means a missing ``return``)."""
    if out is None:
        raise TypeError("your function returned None: is its `return` missing?")
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"return a tensor, not a {type(out).__name__}")
    return out


def in_dtype(case: tuple, dtype: torch.dtype) -> tuple:
    """A case with every floating-point tensor in it (inside dicts and lists too) moved to
    ``dtype``, keeping whether it requires grad: the same inputs for a model cast to ``dtype``."""
    def cast(value):
        if isinstance(value, dict):
            return {key: cast(item) for key, item in value.items()}
        if isinstance(value, list):
            return [cast(item) for item in value]
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.detach().to(dtype).requires_grad_(value.requires_grad)
        return value
    return tuple(cast(value) for value in case)


def _cloned(case: tuple) -> tuple:
    """A fresh copy of every tensor in ``case``, inside dicts and lists too: a function that
    writes into its inputs (a layer's weights, a cache) cannot change the cases for the next
    call, nor for a later check in the same session."""
    def clone(value):
        if isinstance(value, torch.Tensor):
            return value.detach().clone().requires_grad_(value.requires_grad)
        if isinstance(value, dict):
            return {key: clone(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clone(item) for item in value]
        if isinstance(value, tuple):
            items = [clone(item) for item in value]
            return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
        return value
    return tuple(clone(value) for value in case)
