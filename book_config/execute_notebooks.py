"""Regenerate each chapter's .ipynb from its .py source, execute it, and store it as JupyterLab saves.

Usage:
    python book_config/execute_notebooks.py [notebooks/NN_name.py ...]
    python book_config/execute_notebooks.py --metadata-only [notebooks/NN_name.ipynb ...]
(default: every chapter, then every solution notebook in notebooks/solutions/)

The .py is the source: the .ipynb is rebuilt from it with ``jupytext --update`` (which keeps
nothing but outputs and the notebook's metadata), then executed so that the stored outputs are
the ones nbval compares. Last, the .ipynb is rewritten in the form JupyterLab writes when a
learner opens and saves it (:func:`stored_form`): opening a chapter then changes no byte, and a
learner's Run All changes outputs, not metadata. ``--metadata-only`` does only that last step,
without executing anything (tests/test_notebook_files.py checks every stored notebook).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def python3_kernel() -> tuple[dict, dict]:
    """ipykernel's Python 3 kernel as JupyterLab records it: (kernelspec, language_info).

    JupyterLab writes the kernelspec as name, display name and language of the kernel it
    started, and the language_info that kernel reports; both come from ipykernel here, so a
    new ipykernel that renames its kernel is followed rather than contradicted.
    """
    from ipykernel.ipkernel import IPythonKernel
    from ipykernel.kernelspec import KERNEL_NAME, get_kernel_dict

    spec = get_kernel_dict()
    kernelspec = {"display_name": spec["display_name"], "language": spec["language"],
                  "name": KERNEL_NAME}
    return kernelspec, dict(IPythonKernel.language_info)


def stored_form(notebook: dict) -> dict:
    """The notebook as JupyterLab would save it after opening it, or after Run All.

    - ``kernelspec`` and ``language_info``: JupyterLab adds them on open (and marks the notebook
      changed) when they are missing or differ from its kernel's.
    - ``language_info.version`` is the Python that executed the notebook (nbclient records it;
      without one, this Python). JupyterLab writes the learner's own version there on open, so
      no stored value suits every learner: the truthful one opens every chapter clean for
      learners on the Python the book was executed with, and changes that one line for others.
      All notebooks must record the same version (tests/test_notebook_files.py).
    - Cells lose nbclient's ``execution`` timings: JupyterLab drops them on Run All (it records
      none by default), which made a learner's run rewrite every cell's metadata.
    - A float with an integral value (widget state: ``"max": 2.0``) is written as an integer:
      the notebook travels to the server as JavaScript's JSON, which has no such float.
    - Everything else stays: cell ids, jupytext's metadata, the widget state the HTML book
      draws from (JupyterLab keeps what it does not write itself).
    """
    notebook = json.loads(json.dumps(notebook), parse_float=_as_javascript_number)
    kernelspec, language_info = python3_kernel()
    metadata = notebook["metadata"]
    version = metadata.get("language_info", {}).get("version") or platform.python_version()
    metadata["kernelspec"] = kernelspec
    metadata["language_info"] = dict(language_info, version=version)
    for cell in notebook["cells"]:
        cell.get("metadata", {}).pop("execution", None)
    return notebook


def _as_javascript_number(text: str) -> int | float:
    """A JSON number as it comes back from a browser: integral values as integers."""
    number = float(text)
    return int(number) if number.is_integer() and abs(number) < 1e21 else number


def normalise_stored_notebook(path: str | os.PathLike) -> bool:
    """Rewrite a stored .ipynb in :func:`stored_form`, as jupyter_server writes notebooks
    (nbformat's JSON: indent 1, sorted keys, a final newline); True if a byte changed."""
    import nbformat

    path = Path(path)
    before = path.read_bytes()
    notebook = nbformat.reads(before.decode("utf-8"), as_version=nbformat.NO_CONVERT)
    after = nbformat.writes(nbformat.from_dict(stored_form(notebook)), version=nbformat.NO_CONVERT)
    after = (after if after.endswith("\n") else after + "\n").encode("utf-8")
    if after != before:
        path.write_bytes(after)
    return after != before


def execute(sources: list[Path]) -> None:
    # Data comes from TINYSTORIES_PATH / LLAMA2C_PATH when set, else from the user's cache.
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline",
               PYTHONHASHSEED="0")
    for source in sources:
        start = time.perf_counter()
        subprocess.run(["jupytext", "--to", "ipynb", "--update", str(source)], check=True,
                       env=env, capture_output=True)
        notebook = source.with_suffix(".ipynb")
        subprocess.run(["jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                        "--ExecutePreprocessor.timeout=900", str(notebook)], check=True, env=env,
                       cwd=source.parent)
        normalise_stored_notebook(notebook)
        # Peak resident memory of any process this script has waited for so far (the kernels
        # included): the book promises every chapter stays under 3 GB.
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{notebook.name}: executed in {time.perf_counter() - start:.0f} s, "
              f"peak RSS so far {peak_mib:.0f} MiB")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="chapters' .py sources (or their .ipynb); "
                        "default: every chapter, then every solution notebook")
    parser.add_argument("--metadata-only", action="store_true",
                        help="only rewrite the stored .ipynb in JupyterLab's form; execute nothing")
    args = parser.parse_args(argv)
    sources = [Path(p).resolve().with_suffix(".py") for p in args.paths] or [
        *sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")),
        *sorted((NOTEBOOKS / "solutions").glob("[0-9][0-9]_*.py"))]
    if not args.metadata_only:
        execute(sources)
        return 0
    for source in sources:
        notebook = source.with_suffix(".ipynb")
        changed = normalise_stored_notebook(notebook)
        print(f"{notebook.name}: {'normalised' if changed else 'already in the stored form'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
