"""tlib-book copy: the learner's working copy of the notebooks, apart from the tracked files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from transformer_lib.cli.book import book_notebooks, copy_book, main

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def tracked_book_files() -> set[str]:
    pairs = [*NOTEBOOKS.glob("[0-9][0-9]_*.*"), *NOTEBOOKS.glob("solutions/[0-9][0-9]_*.*")]
    return {p.relative_to(NOTEBOOKS).as_posix() for p in pairs if p.suffix in (".py", ".ipynb")}


def test_copy_holds_both_files_of_every_pair_and_the_pairing(tmp_path, capsys):
    assert book_notebooks() == NOTEBOOKS
    assert main(["copy", "--to", str(tmp_path / "book")]) == 0
    copied = {p.relative_to(tmp_path / "book").as_posix()
              for p in (tmp_path / "book").rglob("*") if p.is_file()}
    assert copied == tracked_book_files() | {"jupytext.toml"}
    assert len([name for name in copied if name.startswith("solutions/")]) >= 2
    for name in copied:
        assert (tmp_path / "book" / name).read_bytes() == (NOTEBOOKS / name).read_bytes(), name
    said = capsys.readouterr().out
    assert "jupyter lab" in said and str((tmp_path / "book").resolve()) in said
    assert "TINYSTORIES_PATH" in said and "stored model" in said


def test_copy_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    target = tmp_path / "book"
    copy_book(target)
    mine = target / "03_rope.py"
    mine.write_text("# my work\n", encoding="utf-8")
    (target / "00_start_here.ipynb").unlink()  # even a partial copy is not touched
    assert main(["copy", "--to", str(target)]) == 1
    error = capsys.readouterr().err
    assert "--force" in error and "nothing was copied" in error and "jupytext.toml" in error
    assert mine.read_text(encoding="utf-8") == "# my work\n"
    assert not (target / "00_start_here.ipynb").exists()
    assert main(["copy", "--to", str(target), "--force"]) == 0
    assert mine.read_bytes() == (NOTEBOOKS / "03_rope.py").read_bytes()


def test_copy_refuses_the_books_own_folder_and_a_folder_without_a_book(tmp_path, capsys):
    assert main(["copy", "--to", str(NOTEBOOKS / "mine")]) == 1
    assert "inside the book's own folder" in capsys.readouterr().err
    assert not (NOTEBOOKS / "mine").exists()
    with pytest.raises(FileNotFoundError, match="--from"):
        copy_book(tmp_path / "to", source=tmp_path / "empty")


@pytest.mark.slow
def test_a_copied_chapter_runs_from_the_copy(tmp_path):
    """Chapter 0 executed where it was copied to: data, model and library found from there."""
    target = tmp_path / "work"
    command = [sys.executable, "-m", "transformer_lib.cli.book", "copy", "--to", str(target)]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path, timeout=60)
    executed = target / "ran.ipynb"
    subprocess.run(["jupyter", "nbconvert", "--to", "notebook", "--execute",
                    "--ExecutePreprocessor.timeout=600", "--output", executed.name,
                    str(target / "00_start_here.ipynb")],
                   check=True, capture_output=True, cwd=target, timeout=900)
    cells = [c for c in json.loads(executed.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    assert not [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
