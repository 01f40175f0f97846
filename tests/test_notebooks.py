"""The book's structure: every chapter is an in-sync, executed .py/.ipynb pair.

nbval (run by plain ``pytest``, see pyproject.toml) re-executes the notebooks and compares
outputs; these tests catch what nbval cannot: a pair whose cells differ, or a notebook committed
without its outputs.
"""

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PAIRS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def _cells(path):
    return [(cell.cell_type, cell.source.strip()) for cell in jupytext.read(path).cells]


@pytest.mark.parametrize("source", PAIRS, ids=lambda p: p.stem)
def test_pair_has_the_same_cells(source):
    notebook = source.with_suffix(".ipynb")
    assert notebook.exists(), f"{notebook.name} is missing: run book_config/execute_notebooks.py"
    assert _cells(source) == _cells(notebook), (
        f"{source.name} and {notebook.name} differ: run "
        f"python book_config/execute_notebooks.py {source.relative_to(NOTEBOOKS.parent)}")


@pytest.mark.parametrize("source", PAIRS, ids=lambda p: p.stem)
def test_notebook_was_executed(source):
    import nbformat

    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    unexecuted = [i for i, cell in enumerate(code) if cell.get("execution_count") is None]
    assert not unexecuted, f"code cells {unexecuted} of {source.stem} were never executed"
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "execute the notebook top to bottom once"


def test_every_notebook_has_a_source():
    orphans = [p.name for p in NOTEBOOKS.glob("*.ipynb") if not p.with_suffix(".py").exists()]
    assert not orphans, f"notebooks without a .py source: {orphans}"
