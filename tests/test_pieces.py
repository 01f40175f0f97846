"""The reader's pieces are kept across chapters; a placeholder never overwrites a real one."""

import importlib.util

import pytest
import torch

from transformer_lib.book import pieces

REAL = '''
def rms_norm(x, weight, eps):
    """My RMSNorm."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
'''
PLACEHOLDER = '''
def rms_norm(x, weight, eps):
    """(B, T, C) -> (B, T, C)"""
    ...
'''
USES_ANOTHER_PIECE = '''
def swiglu(x, w_gate, w_up, w_down):
    return rms_norm(x, torch.ones(x.shape[-1]), 1e-5)
'''


def function_from(tmp_path, source, name):
    path = tmp_path / f"src_{name}_{abs(hash(source))}.py"
    path.write_text("import torch\n" + source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_placeholder_source_is_recognised():
    assert pieces.is_placeholder_source(PLACEHOLDER)
    assert not pieces.is_placeholder_source(REAL)
    assert pieces.is_placeholder_source("def f():\n    ...\n")
    assert not pieces.is_placeholder_source("def f():\n    ...\n    return 1\n")


def test_keep_and_load_round_trip(tmp_path, capsys):
    folder = tmp_path / "my_pieces"
    pieces.keep(function_from(tmp_path, REAL, "rms_norm"), folder)
    assert "kept in" in capsys.readouterr().out
    pieces.keep(function_from(tmp_path, PLACEHOLDER, "rms_norm"), folder)
    assert "not kept" in capsys.readouterr().out
    pieces.keep(function_from(tmp_path, USES_ANOTHER_PIECE, "swiglu"), folder)
    loaded = pieces.load_pieces(folder)
    x = torch.randn(2, 3, 4)
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(loaded["rms_norm"](x, torch.ones(4), 1e-5), expected)
    torch.testing.assert_close(loaded["swiglu"](x, None, None, None), expected)
    assert pieces.missing(loaded) == [f"{name} (chapter {chapter})"
                                      for name, chapter in pieces.PIECES.items()
                                      if name not in ("rms_norm", "swiglu")]


def test_an_unknown_piece_is_refused(tmp_path):
    def my_norm(x):
        return x

    with pytest.raises(ValueError, match="unknown piece 'my_norm'"):
        pieces.keep(my_norm, tmp_path)
