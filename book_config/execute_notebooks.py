"""Regenerate each chapter's .ipynb from its .py source and execute it in place.

Usage: python book_config/execute_notebooks.py [notebooks/NN_name.py ...]
(default: every chapter, then every solution notebook in notebooks/solutions/)

The .py is the source: the .ipynb is rebuilt from it with ``jupytext --update`` (which keeps
nothing but outputs), then executed so that the stored outputs are the ones nbval compares.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(paths: list[str]) -> int:
    sources = [Path(p).resolve() for p in paths] or [
        *sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")),
        *sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.py"))]
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
        # Peak resident memory of any process this script has waited for so far (the kernels
        # included): the book promises every chapter stays under 3 GB.
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{notebook.name}: executed in {time.perf_counter() - start:.0f} s, "
              f"peak RSS so far {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
