"""The package's layers: a module imports only from its own layer and the layers below.

    base      checks, device, fileio
    model     transformer_lib/model/
    data      transformer_lib/data/           (stories, tokenizers, token caches: no model)
    training  transformer_lib/training/
    interop   transformer_lib/interop/        (Hugging Face, llama2.c; beside training, above data)
    analysis  transformer_lib/analysis/       (computations on a model and text; above data)
    book      transformer_lib/book/           (viz, widgets, dashboard, exercises)
    cli       transformer_lib/cli/            (the command lines: imported by no other module)

Every import counts, including those inside functions.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "transformer_lib"
BELOW = {
    "base": set(),
    "model": {"base"},
    "data": {"base"},
    "training": {"base", "model", "data"},
    "interop": {"base", "model", "data"},
    "analysis": {"base", "model", "data"},
    "book": {"base", "model", "data", "training", "interop", "analysis"},
    "cli": {"base", "model", "data", "training", "interop", "analysis", "book"},
    "api": {"model"},  # transformer_lib/__init__.py: the top-level names
}


def is_short_form(parts: list[str]) -> bool:
    """transformer_lib/NAME.py beside transformer_lib/cli/NAME.py: the `python -m
    transformer_lib.NAME` form of that command (tests/test_cli.py lists which must exist)."""
    return (len(parts) == 1 and (PACKAGE / f"{parts[0]}.py").is_file()
            and (PACKAGE / "cli" / f"{parts[0]}.py").is_file())


def layer(module: str) -> str:
    """The layer of a dotted module name under transformer_lib."""
    parts = module.split(".")[1:]
    if not parts:
        return "api"
    if parts[-1] == "__main__" or is_short_form(parts):
        return "main"
    head = parts[0]
    if head in {"checks", "device", "fileio"}:
        return "base"
    if head in {"model", "data", "training", "analysis", "book", "interop", "cli"}:
        return head
    raise AssertionError(f"transformer_lib.{'.'.join(parts)} belongs to no layer: add it to "
                         f"tests/test_layers.py")


def module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(source: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every transformer_lib module the source imports."""
    package = module_of(path) if path.name == "__init__.py" else module_of(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.split(".")[0] == "transformer_lib"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "transformer_lib":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((node.lineno, full if is_module(full) else base))
    return found


def violations(source: str, path: Path) -> list[str]:
    own = layer(module_of(path))
    if own == "main":
        return []
    bad = []
    for line, target in imported_modules(source, path):
        other = layer(target)
        if other != own and other not in BELOW[own]:
            bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} imports {other} "
                       f"({target})")
        elif other == "cli" and own != "cli":
            bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports the command line "
                       f"module {target}; only __main__ files may")
    return bad


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_respect_the_layers(path):
    bad = violations(path.read_text(encoding="utf-8"), path)
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_every_layer_has_modules():
    layers = {layer(module_of(path)) for path in MODULES}
    assert set(BELOW) <= layers


def test_a_forbidden_import_is_caught():
    rope = PACKAGE / "model" / "rope.py"
    assert violations("from ..training import trainer\n", rope)
    assert violations("def f():\n    from transformer_lib.book import viz\n", rope)
    assert violations("from ...cli import train\n", PACKAGE / "book" / "viz" / "common.py")
    assert violations("from ..cli import generate\n", PACKAGE / "model" / "generation.py")
    assert violations("from ..model import rope\n", PACKAGE / "data" / "tokens.py")
    assert violations("from ..training import trainer\n", PACKAGE / "analysis" / "compute.py")
    assert not violations("from ..data import tokens\n", PACKAGE / "interop" / "llama2c.py")
