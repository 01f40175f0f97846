"""Does a chapter show an exercise's answer? (used by tests/test_exercises_chNN.py)

A chapter's source (.py: prose and code) and its stored outputs (.ipynb) are searched for every
expected value, written the ways a chapter would print it: ``320``, ``320.0``, ``1,152``,
``62.8``, ``62.83``, ``(97, 98)``, ``[256, 256, 99]``... A number counts only as a whole
number: ``320`` is not found inside ``1320``, ``3.20``, ``320,5`` or a time such as ``10:13:20``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def chapter_text(stem: str) -> str:
    """The chapter's .py source and the text of every output stored in its .ipynb."""
    source = (NOTEBOOKS / f"{stem}.py").read_text(encoding="utf-8")
    notebook = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text(encoding="utf-8"))
    outputs = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            outputs.append("".join(output.get("text", [])))
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/"):
                    outputs.append("".join(value))
    return source + "\n" + "\n".join(outputs)


def spellings(value) -> set[str]:
    """The ways a chapter could print ``value``: a number, or a tuple or list of them (found
    only whole: list an answer's independent numbers as values of their own)."""
    if isinstance(value, (tuple, list)):
        inner = ", ".join(repr(v) if isinstance(v, float) else str(v) for v in value)
        return {f"({inner})", f"[{inner}]"}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected values are numbers or sequences of them, got {value!r}")
    if isinstance(value, int) or float(value).is_integer():
        number = int(value)
        return {str(number), f"{number:,}", f"{number}.0", f"{number:,}.0"}
    found = {repr(value)}
    for digits in range(3, 7):  # 3 to 6 significant digits, in both notations
        found.add(f"{value:.{digits}g}")
        decimals = max(0, digits - 1 - int(f"{abs(value):e}".split("e")[1]))
        found.add(f"{value:.{decimals}f}")
    return found


def leaks(stem: str, values) -> list[str]:
    """The spellings of ``values`` that appear in the chapter ``stem`` (empty when none)."""
    text = chapter_text(stem)
    found = []
    for value in values:
        for spelling in sorted(spellings(value)):
            # Not inside a time of day either (10:13:21 in a log line the profiler prints).
            pattern = r"(?<![\w.,])(?<!\d:)" + re.escape(spelling) + r"(?![\w]|[.,:]\d)"
            if re.search(pattern, text):
                found.append(spelling)
    return found
