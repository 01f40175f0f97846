"""The reader's pieces are kept across chapters; a placeholder or a piece that fails its check
never overwrites one kept before."""

import importlib.util

import pytest
import torch

from transformer_lib.book import pieces

REAL = '''
def rms_norm(x, weight, eps):
    """My RMSNorm."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight
'''
NO_EPS = '''
def rms_norm(x, weight, eps):
    """My RMSNorm, eps forgotten: it fails the check."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True))).to(x.dtype) * weight
'''
PLACEHOLDER = '''
def rms_norm(x, weight, eps):
    """(B, T, C) -> (B, T, C)"""
    ...
'''
SWIGLU = '''
def swiglu(x, w_gate, w_up, w_down):
    return (torch.nn.functional.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T
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
    assert "still `...`, not kept" in capsys.readouterr().out
    pieces.keep(function_from(tmp_path, NO_EPS, "rms_norm"), folder)
    assert "not kept, as it does not pass its check yet" in capsys.readouterr().out
    pieces.keep(function_from(tmp_path, SWIGLU, "swiglu"), folder)
    loaded = pieces.load_pieces(folder)
    x = torch.full((2, 3, 4), 1e-3)  # where eps matters: the kept rms_norm is REAL's, not NO_EPS's
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(loaded["rms_norm"](x, torch.ones(4), 1e-5), expected)
    w_gate, w_up, w_down = torch.randn(6, 4), torch.randn(6, 4), torch.randn(4, 6)
    torch.testing.assert_close(loaded["swiglu"](x, w_gate, w_up, w_down),
                               torch.nn.functional.silu(x @ w_gate.T) * (x @ w_up.T) @ w_down.T)
    assert pieces.missing(loaded) == [f"{name} (chapter {chapter})"
                                      for name, chapter in pieces.PIECES.items()
                                      if name not in ("rms_norm", "swiglu")]


USES_A_HELPER = '''
def _mean_square(x):
    return x.pow(2).mean(-1, keepdim=True)


def rms_norm(x, weight, eps):
    x32 = x.float()
    return (x32 * torch.rsqrt(_mean_square(x32) + eps)).to(x.dtype) * weight
'''


def test_a_piece_that_needs_a_name_from_outside_it_is_not_kept(tmp_path, capsys):
    """Chapter 6 reads a piece's source alone: a helper from another cell would be missing
    there, so the piece would fail in chapter 6 although it passed its check."""
    folder = tmp_path / "my_pieces"
    pieces.keep(function_from(tmp_path, USES_A_HELPER, "rms_norm"), folder)
    out = capsys.readouterr().out
    assert "not kept: it passes its check here, but uses a name defined outside it" in out
    assert not (folder / "rms_norm.py").exists()


def test_a_block_is_checked_with_the_kept_pieces_or_the_librarys(tmp_path, capsys):
    write_pieces(tmp_path, skip=("block_forward", "model_forward"))
    block = SOLUTIONS.split("---")[5]
    pieces.keep(function_from(tmp_path, "import math\nimport torch.nn.functional as F\n" + block,
                              "block_forward"), tmp_path)
    assert "block_forward: kept in" in capsys.readouterr().out
    other = tmp_path / "alone"
    pieces.keep(function_from(tmp_path, block, "block_forward"), other)  # no piece kept there
    assert "block_forward: kept in" in capsys.readouterr().out


def test_an_unknown_piece_is_refused(tmp_path):
    def my_norm(x):
        return x

    with pytest.raises(ValueError, match="unknown piece 'my_norm'"):
        pieces.keep(my_norm, tmp_path)


# ---- the reader's model: assembled from kept pieces only -------------------------------------

SOLUTIONS = '''
def rms_norm(x, weight, eps):
    x32 = x.float()
    return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
---
def rope_tables(head_dim, max_seq_len, theta):
    speeds = theta ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(max_seq_len).float(), speeds)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()
---
def apply_rope(x, cos, sin):
    a, b = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-b, a], dim=-1) * sin
---
def attention(q, k, v):
    T, S = q.shape[-2], k.shape[-2]
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    visible = torch.ones(T, S, dtype=torch.bool).tril(S - T)
    return torch.softmax(scores.masked_fill(~visible, float("-inf")), -1) @ v
---
def swiglu(x, w_gate, w_up, w_down):
    return (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T
---
def block_forward(x, layer, cos, sin, eps):
    B, T, C = x.shape
    D = cos.shape[-1]
    h = rms_norm(x, layer["attention_norm"], eps)
    q, k, v = ((h @ layer[w].T).view(B, T, -1, D).transpose(1, 2) for w in ("wq", "wk", "wv"))
    out = attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)
    x = x + out.transpose(1, 2).reshape(B, T, -1) @ layer["wo"].T
    h = rms_norm(x, layer["ffn_norm"], eps)
    return x + swiglu(h, layer["w_gate"], layer["w_up"], layer["w_down"])
---
def model_forward(ids, weights, cos, sin, eps):
    x = weights["embedding"][ids]
    for layer in weights["layers"]:
        x = block_forward(x, layer, cos, sin, eps)
    return rms_norm(x, weights["norm"], eps) @ weights["lm_head"].T
'''


def write_pieces(folder, skip=(), replace=None):
    folder.mkdir(parents=True, exist_ok=True)
    for source in SOLUTIONS.split("---"):
        name = source.split("def ")[1].split("(")[0]
        if name not in skip:
            source = (replace or {}).get(name, source)
            (folder / f"{name}.py").write_text(source.strip() + "\n")


class ByteTokenizer:
    eot_id = 0

    def encode(self, text):
        return [1 + b % 40 for b in text.encode()]

    def decode(self, ids):
        return " ".join(map(str, ids))


def random_model(tie_embeddings):
    from transformer_lib import ModelConfig, Transformer

    config = ModelConfig(vocab_size=41, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                         max_seq_len=64, tie_embeddings=tie_embeddings)
    torch.manual_seed(0)
    model = Transformer(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():  # weights that make every branch matter
            param.copy_(1 + 0.3 * torch.randn_like(param) if name.endswith("norm.weight")
                        else torch.randn_like(param) / param.shape[-1] ** 0.5)
    return model


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_the_readers_model_reproduces_the_library(tmp_path, capsys, tie_embeddings):
    write_pieces(tmp_path)
    mine = pieces.load_pieces(tmp_path)
    model = random_model(tie_embeddings)
    result = pieces.run_readers_model(mine, model, ByteTokenizer(), "a text to score", "Once",
                                      20, "random")
    assert result["max_difference"] <= 1e-4
    assert result["story_ids"] == result["library_ids"] and len(result["story_ids"]) == 1 + 4 + 20
    out = capsys.readouterr().out
    assert "random: your logits on 16 tokens are within 1e-4 of the library's" in out


def test_a_missing_piece_stops_the_assembly(tmp_path, capsys):
    write_pieces(tmp_path, skip=("attention",))
    mine = pieces.load_pieces(tmp_path)
    assert mine["attention"] is None
    assert pieces.run_readers_model(mine, random_model(True), ByteTokenizer(), "text", "Once", 5,
                                    "random") is None
    assert capsys.readouterr().out == ("not assembled, and nothing stands in for a missing piece: "
                                       "still to write attention (chapter 4)\n")
    pieces.describe(mine)
    assert "attention      chapter 4: missing" in capsys.readouterr().out


def test_a_wrong_piece_is_not_corrected(tmp_path, capsys):
    no_scale = SOLUTIONS.split("---")[3].replace(" / math.sqrt(q.shape[-1])", "")
    write_pieces(tmp_path, replace={"attention": no_scale})
    result = pieces.run_readers_model(pieces.load_pieces(tmp_path), random_model(False),
                                      ByteTokenizer(), "a text to score", "Once", 3, "random")
    assert result["max_difference"] > 1e-4  # the reader's mistake shows: no library stands in
    assert "NOT within 1e-4" in capsys.readouterr().out


def test_library_attention_with_a_query_offset():
    from transformer_lib import ModelConfig
    from transformer_lib.model.attention import Attention

    config = ModelConfig(vocab_size=10, d_model=32, num_layers=1, num_heads=4, num_kv_heads=2)
    torch.manual_seed(0)
    layer = Attention(config).eval()
    x = torch.randn(2, 7, 32)
    cos, sin = pieces.library_pieces()["rope_tables"](8, 7)
    full = layer(x, cos, sin)
    B, T = 2, 7
    q = layer.q_proj(x).view(B, T, 4, 8).transpose(1, 2)
    k = layer.k_proj(x).view(B, T, 2, 8).transpose(1, 2)
    v = layer.v_proj(x).view(B, T, 2, 8).transpose(1, 2)
    rope = pieces.library_pieces()["apply_rope"]
    q, k = rope(q, cos, sin), rope(k, cos, sin)
    last_three = pieces.library_attention(q[:, :, 4:], k, v)  # queries 4..6 see keys 0..their own
    merged = layer.o_proj(last_three.transpose(1, 2).reshape(B, 3, 32))
    torch.testing.assert_close(merged, full[:, 4:], atol=1e-5, rtol=1e-5)


def test_sample_story_draws_with_the_readers_sampler_and_compares_with_the_librarys(capsys):
    import torch.nn.functional as F

    from transformer_lib.model.generation import sample_next_token

    model = random_model(True)
    settings = dict(max_new_tokens=30, temperature=1.0, top_k=20, top_p=0.95, seed=3)
    calls = []

    def right(logits, temperature, top_k, top_p, generator):
        calls.append(logits.shape)
        return sample_next_token(logits, temperature, top_k, top_p, generator)

    story = pieces.sample_story(right, model, ByteTokenizer(), "Once", **settings)
    assert calls and all(shape == (1, 41) for shape in calls)
    assert story["ids"] == story["library_ids"] and len(story["ids"]) > 5
    assert "written by your next_token (temperature 1.0, top-k 20, top-p 0.95, seed 3)" in (
        capsys.readouterr().out)

    def softmax_before_temperature(logits, temperature, top_k, top_p, generator):
        probs = F.softmax(logits, dim=-1) / temperature  # a known mistake: no longer the same draws
        return torch.multinomial(probs ** 3, 1, generator=generator).squeeze(-1)

    wrong = pieces.sample_story(softmax_before_temperature, model, ByteTokenizer(), "Once",
                                **settings)
    assert wrong["ids"] != wrong["library_ids"]

    def placeholder(logits, temperature, top_k, top_p, generator):
        ...

    assert pieces.sample_story(placeholder, model, ByteTokenizer(), "Once") is None
    assert "nothing stands in for it" in capsys.readouterr().out
