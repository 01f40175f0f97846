"""The stored notebooks are in the form JupyterLab saves, so opening one changes nothing.

A learner opens a chapter in JupyterLab, looks, saves (or autosave does): no byte of the tracked
.ipynb or .py may change, or their next ``git pull`` conflicts. The test reads each pair through
the server classes JupyterLab runs with (jupyter_server's contents manager wrapped by jupytext's,
which pairs the .ipynb with its .py as notebooks/jupytext.toml asks), applies what the browser
does to the notebook between open and save, writes it back through the same classes, and
compares bytes. What the browser does was observed in JupyterLab 4.6 in Chromium: it records the
kernel it started (``kernelspec``, ``language_info``), and its JSON round trip writes a float with
an integral value as an integer; Run All (timing not recorded, JupyterLab's default) drops each
cell's ``execution`` timings.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupytext")
pytest.importorskip("jupyter_server")
ipykernel = pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STORED = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) + sorted(
    NOTEBOOKS.glob("solutions/[0-9][0-9]_*.ipynb"))
IDS = [path.relative_to(NOTEBOOKS).as_posix() for path in STORED]


def load_execute_notebooks():
    spec = importlib.util.spec_from_file_location(
        "execute_notebooks", ROOT / "book_config" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python3_kernel(version: str) -> tuple[dict, dict]:
    """The kernelspec and language_info JupyterLab records for ipykernel's Python 3 kernel."""
    from ipykernel.ipkernel import IPythonKernel
    from ipykernel.kernelspec import KERNEL_NAME, get_kernel_dict

    spec = get_kernel_dict()
    kernelspec = {"display_name": spec["display_name"], "language": spec["language"],
                  "name": KERNEL_NAME}
    return kernelspec, dict(IPythonKernel.language_info, version=version)


def through_the_browser(content: dict, *, run_all: bool = False) -> dict:
    """What JupyterLab's front end sends back on save, for a kernel of the stored Python.

    The learner's kernel reports its own Python version; here it is the one the notebook
    records (test_every_notebook_records_one_python_3_kernel checks they all agree).
    """
    def as_javascript_number(text: str):
        number = float(text)
        return int(number) if number.is_integer() and abs(number) < 1e21 else number

    content = json.loads(json.dumps(content), parse_float=as_javascript_number)
    version = content["metadata"].get("language_info", {}).get("version", "unknown")
    kernelspec, language_info = python3_kernel(version)
    content["metadata"]["kernelspec"] = kernelspec
    content["metadata"]["language_info"] = language_info
    if run_all:
        for cell in content["cells"]:
            cell["metadata"].pop("execution", None)
    return content


def copy_pair(notebook: Path, folder: Path) -> Path:
    """The notebook, its .py and jupytext.toml, at the same relative place under folder."""
    relative = notebook.relative_to(NOTEBOOKS)
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(NOTEBOOKS / "jupytext.toml", folder / "jupytext.toml")
    for path in (notebook, notebook.with_suffix(".py")):
        shutil.copy2(path, folder / relative.with_suffix(path.suffix))
    return relative


def open_and_save_in_jupyterlab(folder: Path, relative: Path, *, run_all: bool = False) -> None:
    """Read relative (under folder) as JupyterLab's server does, then save it back."""
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class
    from nbformat.sign import NotebookNotary

    manager = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(
        root_dir=str(folder), notary=NotebookNotary(db_file=":memory:"))  # no signature file

    async def open_and_save():
        model = await manager.get(relative.as_posix(), content=True, type="notebook")
        content = through_the_browser(model["content"], run_all=run_all)
        await manager.save({"type": "notebook", "content": content}, relative.as_posix())

    asyncio.run(open_and_save())


def changed_files(folder: Path, relative: Path, originals: dict[str, bytes]) -> list[str]:
    """The files that differ from originals, each with the first lines of its diff."""
    changed = []
    for suffix, before in originals.items():
        after = (folder / relative.with_suffix(suffix)).read_bytes()
        if after != before:
            diff = difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(),
                                        lineterm="", n=0)
            changed.append(f"{suffix}:\n" + "\n".join(list(diff)[2:14]))
    return changed


@pytest.mark.parametrize("notebook", STORED, ids=IDS)
def test_opening_and_saving_in_jupyterlab_changes_no_byte(notebook, tmp_path):
    relative = copy_pair(notebook, tmp_path)
    originals = {suffix: notebook.with_suffix(suffix).read_bytes() for suffix in (".ipynb", ".py")}
    open_and_save_in_jupyterlab(tmp_path, relative)
    changed = changed_files(tmp_path, relative, originals)
    assert not changed, (
        f"saving {relative} unchanged in JupyterLab rewrites its {changed}: store it in "
        f"JupyterLab's form with python book_config/execute_notebooks.py --metadata-only "
        f"{relative.with_suffix('.ipynb').as_posix()}")


@pytest.mark.parametrize("notebook", STORED, ids=IDS)
def test_run_all_in_jupyterlab_changes_outputs_not_metadata(notebook, tmp_path):
    """After Run All only outputs and counts may differ: emulate its metadata, not its outputs."""
    relative = copy_pair(notebook, tmp_path)
    originals = {suffix: notebook.with_suffix(suffix).read_bytes() for suffix in (".ipynb", ".py")}
    open_and_save_in_jupyterlab(tmp_path, relative, run_all=True)
    changed = changed_files(tmp_path, relative, originals)
    assert not changed, (
        f"Run All in JupyterLab would rewrite the metadata of {relative} ({changed}): cells "
        f"carry nbclient's execution timings, which JupyterLab drops")


def test_every_notebook_records_one_python_3_kernel():
    """One kernel, one Python for all: the book's Python opens every chapter clean."""
    recorded = {}
    for notebook in STORED:
        metadata = json.loads(notebook.read_text(encoding="utf-8"))["metadata"]
        recorded[notebook.relative_to(NOTEBOOKS).as_posix()] = (
            metadata.get("kernelspec"), metadata.get("language_info"))
    versions = {info.get("version") if info else None for _, info in recorded.values()}
    assert len(versions) == 1, f"notebooks record different Pythons: {sorted(map(str, versions))}"
    expected = python3_kernel(versions.pop())
    wrong = [name for name, found in recorded.items() if found != expected]
    assert not wrong, (f"{wrong} lack JupyterLab's kernelspec/language_info for Python 3 "
                       f"{expected}: run python book_config/execute_notebooks.py --metadata-only")


# ---- the storage step writes that form -------------------------------------------------------

TINY_SOURCE = '''# %% [markdown]
# # A tiny chapter

# %%
import ipywidgets

slider = ipywidgets.FloatSlider(value=1.0, min=0.0, max=2.0)
print("one line")
print("two lines")
slider
'''


def test_storage_step_writes_what_jupyterlab_saves(tmp_path):
    execute_notebooks = load_execute_notebooks()
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy2(NOTEBOOKS / "jupytext.toml", folder / "jupytext.toml")
    source = folder / "99_tiny.py"
    source.write_text(TINY_SOURCE, encoding="utf-8")
    assert execute_notebooks.main([str(source)]) == 0
    notebook = json.loads(source.with_suffix(".ipynb").read_text(encoding="utf-8"))
    assert [cell.get("execution_count") for cell in notebook["cells"]] == [None, 1]
    assert "one line" in json.dumps(notebook["cells"][1]["outputs"])
    assert notebook["metadata"]["widgets"], "the widget state (for the HTML book) must stay"
    originals = {suffix: source.with_suffix(suffix).read_bytes() for suffix in (".ipynb", ".py")}
    for run_all in (False, True):
        open_and_save_in_jupyterlab(folder, Path(source.name).with_suffix(".ipynb"),
                                    run_all=run_all)
        assert not changed_files(folder, Path(source.name), originals)


def test_metadata_only_normalises_without_executing(tmp_path):
    """The normaliser turns a notebook as nbconvert and jupytext leave it into JupyterLab's form."""
    execute_notebooks = load_execute_notebooks()
    relative = copy_pair(STORED[0], tmp_path)
    path = tmp_path / relative
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["metadata"].pop("kernelspec", None)  # as nbconvert + jupytext --update left them
    raw["metadata"]["widgets"] = {"state": {"a": {"max": 2.0, "step": 0.1}}}
    raw["cells"][-1]["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    path.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    command = [sys.executable, str(ROOT / "book_config" / "execute_notebooks.py"),
               "--metadata-only", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    normalised = json.loads(path.read_text(encoding="utf-8"))
    assert normalised["metadata"]["widgets"] == {"state": {"a": {"max": 2, "step": 0.1}}}
    assert "execution" not in normalised["cells"][-1]["metadata"]
    assert [c.get("outputs") for c in normalised["cells"]] == [c.get("outputs") for c in raw["cells"]]
    once = path.read_bytes()
    execute_notebooks.normalise_stored_notebook(path)
    assert path.read_bytes() == once, "normalising twice must change nothing"
    originals = {suffix: path.with_suffix(suffix).read_bytes() for suffix in (".ipynb", ".py")}
    open_and_save_in_jupyterlab(tmp_path, relative)
    assert not changed_files(tmp_path, relative, originals)
