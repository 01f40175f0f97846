"""The command lines live in transformer_lib/cli/ and never shadow a library name; importing the
library stays light (no datasets, pyarrow or matplotlib until something needs them)."""

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
HEAVY = ("datasets", "pyarrow", "matplotlib")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_every_script_names_a_main_in_the_cli_package():
    import importlib

    assert {"tlib-demo", "tlib-train", "tlib-evaluate", "tlib-generate", "tlib-bench"} <= set(SCRIPTS)
    for name, target in SCRIPTS.items():
        module, _, function = target.partition(":")
        assert module.startswith("transformer_lib.cli."), (name, target)
        assert callable(getattr(importlib.import_module(module), function)), (name, target)


@pytest.mark.parametrize("module", sorted({t.partition(":")[0] for t in SCRIPTS.values()}))
def test_each_command_runs_as_a_module(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


# The short module forms of the commands (``generate`` has none: ``transformer_lib.generate``
# is the function, and a module of that name would replace it once imported).
SHORT_FORMS = ("train", "evaluate", "bench", "demo", "ablate")


@pytest.mark.parametrize("name", SHORT_FORMS)
def test_short_module_form_runs_the_same_command(name):
    result = subprocess.run([sys.executable, "-m", f"transformer_lib.{name}", "--help"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: tlib-{name}"), result.stdout[:200]


def test_short_module_form_keeps_the_commands_exit_status(tmp_path):
    missing = tmp_path / "no-such-run"
    result = subprocess.run([sys.executable, "-m", "transformer_lib.evaluate", "--checkpoint",
                             str(missing)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "neither a checkpoint" in result.stderr


def test_generate_stays_the_function_after_the_command_is_imported():
    result = run_python(
        "import inspect, transformer_lib.cli.generate\n"
        "from transformer_lib import generate\n"
        "import transformer_lib.model.generation as g\n"
        "assert generate is g.generate, generate\n"
        "assert inspect.isfunction(generate)\n")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", ["transformer_lib", "transformer_lib.training.trainer",
                                    "transformer_lib.interop", "transformer_lib.data",
                                    "transformer_lib.analysis.interpret"])
def test_importing_loads_no_heavy_dependency(module):
    result = run_python(f"import sys, {module}\n"
                        f"print([m for m in {HEAVY!r} if m in sys.modules])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing {module} loaded {result.stdout.strip()}"


def test_the_heavy_check_can_fail():
    result = run_python(f"import sys, transformer_lib.book.viz\n"
                        f"print([m for m in {HEAVY!r} if m in sys.modules])")
    assert "matplotlib" in result.stdout, result.stdout + result.stderr
