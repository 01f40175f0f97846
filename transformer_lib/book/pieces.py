"""The reader's own pieces: functions written in one chapter's exercises, kept for a later one.

Chapters 2 to 6 ask the reader to write a component (``rms_norm``, the RoPE tables, attention,
SwiGLU, a block). After its check, :func:`keep` saves the function's source in a folder beside
the notebook (``my_pieces/`` in the kernel's working directory), and chapter 6 reads them all
back with :func:`load_pieces` to run the reader's own model on real weights.

Only the reader's own code is stored and read back (it runs in their kernel either way). A
function whose body is still the exercise's placeholder ``...`` is never kept, so it cannot
overwrite a piece the reader wrote earlier.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..fileio import write_text_atomically

PIECES_DIR = Path("my_pieces")  # relative to the notebook's folder: the kernel's working directory
# Which chapter asks for each piece (the order chapter 6 assembles them in).
PIECES = {
    "rms_norm": 2,
    "rope_tables": 3,
    "apply_rope": 3,
    "attention": 4,
    "swiglu": 5,
    "block_forward": 6,
    "model_forward": 6,
}


def is_placeholder_source(source: str) -> bool:
    """True when the function in ``source`` has a body of only a docstring and ``...``."""
    function = ast.parse(textwrap.dedent(source)).body[0]
    if not isinstance(function, ast.FunctionDef):
        raise ValueError("expected the source of one function")
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
               and node.value.value is Ellipsis for node in body)


def _check_name(name: str) -> None:
    if name not in PIECES:
        raise ValueError(f"unknown piece {name!r}; the pieces are {', '.join(PIECES)}")


def keep(function: Callable, folder: str | Path = PIECES_DIR) -> None:
    """Save the reader's ``function`` (named as one of :data:`PIECES`) for chapter 6.

    Prints one line: where it was kept, or that its body is still ``...`` (nothing is written).
    """
    name = getattr(function, "__name__", None)
    _check_name(name)
    source = textwrap.dedent(inspect.getsource(function))
    if is_placeholder_source(source):
        print(f"{name}: still `...`, not kept (chapter 6 uses it once you write it)")
        return
    path = Path(folder) / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, source)
    print(f"{name}: kept in {path.as_posix()} for chapter 6")


def load_pieces(folder: str | Path = PIECES_DIR,
                names: Iterable[str] = PIECES) -> dict[str, Callable | None]:
    """The reader's kept pieces by name, None for each one not written yet.

    Each source runs in a namespace holding ``torch``, ``math``, ``F`` (torch.nn.functional) and
    the pieces loaded before it, in :data:`PIECES` order, so a block may call the reader's own
    ``rms_norm`` and ``attention``.
    """
    namespace: dict = {"torch": torch, "math": math, "F": F}
    pieces: dict[str, Callable | None] = {}
    for name in names:
        _check_name(name)
        path = Path(folder) / f"{name}.py"
        if not path.is_file():
            pieces[name] = None
            continue
        source = path.read_text(encoding="utf-8")
        if is_placeholder_source(source):
            pieces[name] = None
            continue
        exec(compile(source, str(path), "exec"), namespace)  # the reader's own code
        pieces[name] = namespace[name]
    return pieces


def missing(pieces: dict[str, Callable | None]) -> list[str]:
    """The pieces not written yet, each with the chapter that asks for it."""
    return [f"{name} (chapter {PIECES[name]})" for name, fn in pieces.items() if fn is None]
