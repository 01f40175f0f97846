"""tlib-book (python -m transformer_lib.cli.book): a working copy of the book's notebooks.

``tlib-book copy --to DIR`` copies every chapter and solution notebook (both files of each
jupytext pair) and ``jupytext.toml`` into DIR. Opened from there, a learner's edits, runs and
autosaves land in DIR, and the tracked files in ``notebooks/`` stay as they are, so a later
``git pull`` brings the book's updates without conflicts. The notebooks find everything else
without the repository: the data through ``TINYSTORIES_PATH`` / ``LLAMA2C_PATH`` or the user's
cache, the stored model inside the installed package; they use no relative paths.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from ..fileio import output_path_problem

PAIR_CONFIG = "jupytext.toml"  # pairs each .ipynb with its .py when JupyterLab opens the folder
CHAPTER_GLOBS = ("[0-9][0-9]_*.py", "[0-9][0-9]_*.ipynb", "solutions/[0-9][0-9]_*.py",
                 "solutions/[0-9][0-9]_*.ipynb")


def book_notebooks() -> Path:
    """The book's notebooks/ folder: beside the package in a clone (pip install -e .)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def book_files(source: Path) -> list[Path]:
    """jupytext.toml and every chapter and solution file under source, relative to it."""
    files = [Path(PAIR_CONFIG)] if (source / PAIR_CONFIG).is_file() else []
    for pattern in CHAPTER_GLOBS:
        files += sorted(path.relative_to(source) for path in source.glob(pattern))
    return files


def copy_book(to: str | os.PathLike, *, source: str | os.PathLike | None = None,
              force: bool = False) -> list[Path]:
    """Copy the book's notebooks into folder ``to``; return the copied paths.

    Raises FileNotFoundError when there is no book to copy, FileExistsError (copying nothing)
    when a file would be overwritten and force is false, ValueError when ``to`` lies inside the
    book's own folder.
    """
    source = Path(source).expanduser().resolve() if source else book_notebooks()
    files = book_files(source) if source.is_dir() else []
    if not any(path.suffix == ".ipynb" for path in files):
        raise FileNotFoundError(
            f"no chapter notebooks in {source}: tlib-book copies them from a clone of the "
            f"repository (installed with pip install -e .), or from --from PATH/notebooks")
    target = Path(to).expanduser().resolve()
    if target == source or source in target.parents:
        raise ValueError(f"{target} is inside the book's own folder {source}: choose a folder "
                         f"outside it, e.g. --to ~/transformer-book")
    problem = output_path_problem(target, "--to", folder=True)
    if problem:  # before anything is copied
        raise FileExistsError(f"{problem}; nothing was copied (a new folder is created, e.g. "
                              f"--to ~/transformer-book)")
    # lexists: a link counts as existing even when it dangles, so a dangling link is never
    # written through (that would create its target, outside DIR).
    existing = [target / path for path in files if os.path.lexists(target / path)]
    folders = [target / path for path in existing
               if (target / path).is_dir() and not (target / path).is_symlink()]
    if folders:
        raise FileExistsError(f"{folders[0]} is a folder where the book has a file; nothing was "
                              f"copied. Move it away, or choose another --to folder")
    linked = sorted({folder for path in files for folder in _folders_between(target, path)
                     if folder.is_symlink()})
    if (existing or linked) and not force:
        clashes = [*linked, *existing]
        names = ", ".join(str(path) for path in clashes[:3])
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise FileExistsError(
            f"{names}{more} already exist; nothing was copied. Pass --force to overwrite them "
            f"(your changes there are lost), or choose another --to folder")
    for folder in linked:  # a linked folder is replaced by a real one; what it points to stays
        folder.unlink()
    copied = []
    for path in files:
        destination = target / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.is_symlink():
            # copy2 would write through the link into the file it points to, which may lie
            # outside DIR; replace the link itself by the notebook.
            destination.unlink()
        copied.append(Path(shutil.copy2(source / path, destination)))
    return copied


def _folders_between(target: Path, path: Path) -> list[Path]:
    """The folders inside target that lead to target / path (for solutions/x.py: solutions)."""
    return [target / parent for parent in path.parents if parent != Path(".")]


def _data_note() -> str:
    from ..data.llama2c import ENV_VAR as LLAMA2C_ENV_VAR
    from ..data.stories import SOURCE_ENV_VAR

    notes = []
    for name, otherwise in [
            (SOURCE_ENV_VAR, "the first chapter that needs stories downloads the book's extract "
                             "once into ~/.cache/transformer_lib/"),
            (LLAMA2C_ENV_VAR, "chapters 10 and 11 download llama2.c's stories260K once into the "
                              "Hugging Face cache")]:
        value = os.environ.get(name)
        notes.append(f"  {name}={value} (set it where you start jupyter lab too)" if value
                     else f"  {name} is unset: {otherwise}")
    return "\n".join(notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tlib-book", description="Work on the book's notebooks away from the tracked files.")
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser(
        "copy", help="copy the chapter and solution notebooks to a working folder",
        description="Copy every chapter and solution notebook (the .ipynb and its .py source) "
                    "and jupytext.toml into DIR. Open them from there: your edits, runs and "
                    "saves stay in DIR and `git pull` keeps updating notebooks/ cleanly.")
    copy.add_argument("--to", required=True, metavar="DIR", help="the working folder")
    copy.add_argument("--force", action="store_true",
                      help="overwrite files already in DIR (your changes there are lost)")
    copy.add_argument("--from", dest="source", metavar="NOTEBOOKS",
                      help="the book's notebooks folder (default: the one beside the library)")
    args = parser.parse_args(argv)
    try:
        copied = copy_book(args.to, source=args.source, force=args.force)
    except (OSError, ValueError) as err:  # OSError: also a folder that cannot be written
        print(f"error: {err}", file=sys.stderr)
        return 1
    target = Path(args.to).expanduser().resolve()
    notebooks = [path for path in copied if path.suffix == ".ipynb"]
    solutions = sum(path.parent.name == "solutions" for path in notebooks)
    root_flag = " --allow-root" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    print(f"copied {len(notebooks) - solutions} chapters and {solutions} solution notebooks "
          f"(each .ipynb with its .py source) and {PAIR_CONFIG} to {target}\n"
          f"open them with:\n\n    jupyter lab{root_flag} {target}\n\n"
          f"Your edits, runs and saves stay there; the tracked notebooks/ stay as they are.\n"
          f"The book's data:\n{_data_note()}\n"
          f"The stored model comes with the library.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
