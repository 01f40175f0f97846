"""The book's structure: every chapter is an in-sync, executed .py/.ipynb pair.

nbval (run by plain ``pytest``, see pyproject.toml) re-executes the notebooks and compares
outputs; these tests catch what nbval cannot: a pair whose cells differ, or a notebook committed
without its outputs.
"""

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# The chapters, and their worked solutions where the folder exists.
PAIRS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")) + sorted(
    (NOTEBOOKS / "solutions").glob("[0-9][0-9]_*.py"))
MARKERS_FILE = ROOT / "book_config" / "nbval_markers.txt"


def _cells(path):
    return [(cell.cell_type, cell.source.strip()) for cell in jupytext.read(path).cells]


@pytest.mark.parametrize("source", PAIRS, ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_pair_has_the_same_cells(source):
    notebook = source.with_suffix(".ipynb")
    assert notebook.exists(), f"{notebook.name} is missing: run book_config/execute_notebooks.py"
    assert _cells(source) == _cells(notebook), (
        f"{source.name} and {notebook.name} differ: run "
        f"python book_config/execute_notebooks.py {source.relative_to(NOTEBOOKS.parent)}")


@pytest.mark.parametrize("source", PAIRS, ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_notebook_was_executed(source):
    import nbformat

    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    unexecuted = [i for i, cell in enumerate(code) if cell.get("execution_count") is None]
    assert not unexecuted, f"code cells {unexecuted} of {source.stem} were never executed"
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "execute the notebook top to bottom once"


def test_every_notebook_has_a_source():
    orphans = [p.name for p in [*NOTEBOOKS.glob("*.ipynb"), *NOTEBOOKS.glob("solutions/*.ipynb")]
               if not p.with_suffix(".py").exists()]
    assert not orphans, f"notebooks without a .py source: {orphans}"


def allowed_markers() -> set[str]:
    lines = MARKERS_FILE.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def nbval_markers(notebook) -> list[tuple[int, str]]:
    """(cell index, marker) for every NBVAL_* comment and nbval-* tag in a notebook."""
    found = []
    for index, cell in enumerate(notebook.cells):
        found += [(index, m) for m in re.findall(r"\bNBVAL_[A-Z_]+", cell.source)]
        found += [(index, tag) for tag in cell.get("metadata", {}).get("tags", [])
                  if tag.lower().startswith("nbval")]
    return found


def test_marker_scan_finds_comments_and_tags():
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# NBVAL_SKIP\nx = 1"),
        nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["nbval-raises-exception"]}),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nprint(3)")])
    bad = [m for _, m in nbval_markers(notebook) if m not in allowed_markers()]
    assert bad == ["NBVAL_SKIP", "nbval-raises-exception"]


@pytest.mark.parametrize("source", PAIRS, ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_only_allowlisted_nbval_markers(source):
    allowed = allowed_markers()
    for path in (source, source.with_suffix(".ipynb")):
        if path.exists():
            bad = [(i, m) for i, m in nbval_markers(jupytext.read(path)) if m not in allowed]
            assert not bad, (f"{path.name}: nbval markers not allowed by "
                             f"{MARKERS_FILE.relative_to(ROOT)}: {bad} (cell index, marker)")
