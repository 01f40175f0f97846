"""llama2.c checkpoints and tokenizers, checked against independent llama2.c-style code here.

The writer, the reader of the real file and the forward pass below follow llama2.c's file
layout and run.c's arithmetic directly (interleaved RoPE, no permutation, GQA by head index),
in float64 numpy, so they share nothing with transformer_lib.interop.llama2c and transformer_lib.data.llama2c
but the format.
"""

import contextlib
import io
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_lib.book import viz
from transformer_lib.data.llama2c import Llama2cFormatError, Llama2cTokenizer, llama2c_file
from transformer_lib.data.tokenizer import load_tokenizer
from transformer_lib.interop import from_llama2c
from transformer_lib.interop import llama2c as llama2c_loader

LOCAL_DIR = os.environ.get("LLAMA2C_PATH")
needs_local = pytest.mark.skipif(
    not LOCAL_DIR or not (Path(LOCAL_DIR) / "stories260K.bin").is_file(),
    reason="set LLAMA2C_PATH to a directory holding stories260K.bin and tok512.bin",
)

# ---- an independent llama2.c writer, reader and forward pass --------------------------------

KINDS_V0 = ["emb", "att_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3",
            "final_norm", "rope_cos", "rope_sin"]
KINDS_V1 = ["att_norm", "ffn_norm", "final_norm", "emb", "wq", "wk", "wv", "wo", "w1", "w2",
            "w3"]


def random_weights(dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared, seed=0):
    """llama2.c's arrays, every one random (norm gains included), in llama2.c's shapes."""
    rng = np.random.default_rng(seed)
    kv = dim // heads * kv_heads

    def mat(*shape):
        return rng.normal(0, 1 / np.sqrt(shape[-1]), shape).astype(np.float32)

    w = dict(emb=rng.normal(0, 1, (vocab, dim)).astype(np.float32),
             att_norm=rng.uniform(0.5, 1.5, (layers, dim)).astype(np.float32),
             wq=mat(layers, dim, dim), wk=mat(layers, kv, dim), wv=mat(layers, kv, dim),
             wo=mat(layers, dim, dim),
             ffn_norm=rng.uniform(0.5, 1.5, (layers, dim)).astype(np.float32),
             w1=mat(layers, hidden, dim), w2=mat(layers, dim, hidden), w3=mat(layers, hidden, dim),
             final_norm=rng.uniform(0.5, 1.5, dim).astype(np.float32),
             rope_cos=rng.normal(size=(seq_len, dim // heads // 2)).astype(np.float32),
             rope_sin=rng.normal(size=(seq_len, dim // heads // 2)).astype(np.float32))
    if not shared:
        w["cls"] = mat(vocab, dim)
    header = (dim, hidden, layers, heads, kv_heads, vocab, seq_len)
    return header, w


def write_checkpoint(path, header, w, version, shared=None, magic=0x616B3432):
    """A llama2.c .bin file: legacy (0) or the 256-byte-header float32 format (1 or other)."""
    shared = "cls" not in w if shared is None else shared
    with open(path, "wb") as f:
        if version == 0:
            dim, hidden, layers, heads, kv_heads, vocab, seq_len = header
            f.write(struct.pack("<7i", dim, hidden, layers, heads, kv_heads,
                                vocab if shared else -vocab, seq_len))
            kinds = KINDS_V0
        else:
            f.write(struct.pack("<Ii", magic, version) + struct.pack("<7i", *header))
            f.write(struct.pack("<B", int(shared)))
            f.write(b"\0" * (256 - f.tell()))
            kinds = KINDS_V1
        for kind in kinds + (["cls"] if "cls" in w else []):
            f.write(np.ascontiguousarray(w[kind], dtype="<f4").tobytes())
    return Path(path)


def read_legacy(path):
    """The arrays of a version-0 file, read with numpy (the reference for the real model)."""
    raw = Path(path).read_bytes()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack_from("<7i", raw)
    kv = dim // heads * kv_heads
    shapes = dict(emb=(abs(vocab), dim), att_norm=(layers, dim), wq=(layers, dim, dim),
                  wk=(layers, kv, dim), wv=(layers, kv, dim), wo=(layers, dim, dim),
                  ffn_norm=(layers, dim), w1=(layers, hidden, dim), w2=(layers, dim, hidden),
                  w3=(layers, hidden, dim), final_norm=(dim,),
                  rope_cos=(seq_len, dim // heads // 2), rope_sin=(seq_len, dim // heads // 2))
    if vocab < 0:
        shapes["cls"] = (-vocab, dim)
    floats = np.frombuffer(raw, dtype="<f4", offset=28)
    w, at = {}, 0
    for kind, shape in shapes.items():
        n = int(np.prod(shape))
        w[kind] = floats[at:at + n].reshape(shape)
        at += n
    assert at == floats.size
    return (dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len), w


def reference_logits(header, w, ids):
    """run.c's forward pass for a whole sequence, float64: logits (T, vocab)."""
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = header
    hs = dim // heads
    group = heads // kv_heads
    T = len(ids)

    def rmsnorm(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * g

    def rope(v, n_heads):  # v (T, n_heads * hs); rotate (2i, 2i+1) within each head
        out = v.copy()
        for pos in range(T):
            for i in range(0, n_heads * hs, 2):
                freq = 1.0 / 10000.0 ** ((i % hs) / hs)
                c, s = np.cos(pos * freq), np.sin(pos * freq)
                a, b = v[pos, i], v[pos, i + 1]
                out[pos, i], out[pos, i + 1] = a * c - b * s, a * s + b * c
        return out

    f = {k: v.astype(np.float64) for k, v in w.items()}
    x = f["emb"][ids]
    for layer in range(layers):
        xb = rmsnorm(x, f["att_norm"][layer])
        q = rope(xb @ f["wq"][layer].T, heads)
        k = rope(xb @ f["wk"][layer].T, kv_heads)
        v = xb @ f["wv"][layer].T
        att_out = np.zeros((T, dim))
        for h in range(heads):
            kvh = h // group
            qh, kh, vh = q[:, h * hs:(h + 1) * hs], k[:, kvh * hs:(kvh + 1) * hs], \
                v[:, kvh * hs:(kvh + 1) * hs]
            scores = qh @ kh.T / np.sqrt(hs)
            scores[np.triu_indices(T, 1)] = -np.inf
            p = np.exp(scores - scores.max(-1, keepdims=True))
            att_out[:, h * hs:(h + 1) * hs] = (p / p.sum(-1, keepdims=True)) @ vh
        x = x + att_out @ f["wo"][layer].T
        xb = rmsnorm(x, f["ffn_norm"][layer])
        h1, h3 = xb @ f["w1"][layer].T, xb @ f["w3"][layer].T
        x = x + (h1 / (1 + np.exp(-h1)) * h3) @ f["w2"][layer].T
    x = rmsnorm(x, f["final_norm"])
    return x @ f.get("cls", f["emb"]).T


# ---- loading checkpoints ----------------------------------------------------------------------

FORMATS = [(0, True, 2), (0, False, 4), (1, True, 4), (1, False, 2)]  # version, shared, kv heads


@pytest.mark.parametrize("version, shared, kv_heads", FORMATS)
def test_logits_match_llama2c_forward(tmp_path, version, shared, kv_heads):
    header, w = random_weights(32, 48, 2, 4, kv_heads, 37, 16, shared, seed=version + kv_heads)
    path = write_checkpoint(tmp_path / "m.bin", header, w, version)
    model = from_llama2c(path)
    c = model.config
    assert (c.d_model, c.ffn_hidden_dim, c.num_layers, c.num_heads, c.num_kv_heads,
            c.vocab_size, c.max_seq_len) == header
    assert c.tie_embeddings == shared and c.norm_eps == 1e-5 and c.rope_theta == 10000.0
    ids = np.random.default_rng(1).integers(0, 37, 16)
    with torch.no_grad():
        ours = model(torch.tensor(ids).unsqueeze(0))[0].double()
    torch.testing.assert_close(ours, torch.from_numpy(reference_logits(header, w, ids)),
                               atol=1e-5, rtol=0)


def _write_valid(tmp_path, version=1, shared=True, name="m.bin"):
    header, w = random_weights(16, 24, 1, 2, 2, 11, 8, shared)
    return write_checkpoint(tmp_path / name, header, w, version), header, w


def _bad_files(tmp_path):
    """(file, part of the expected message) for each kind of broken checkpoint."""
    good, header, w = _write_valid(tmp_path)
    data = good.read_bytes()
    cases = []

    def case(name, content, match):
        path = tmp_path / name
        path.write_bytes(content)
        cases.append((path, match))

    case("tiny.bin", data[:10], "truncated")
    case("short_v1_header.bin", data[:100], "truncated")
    case("truncated.bin", data[:-4], "truncated")
    case("extra.bin", data + b"\0" * 8, "longer than its header says")
    case("v2.bin", data[:4] + struct.pack("<i", 2) + data[8:], "version-2")
    case("v3.bin", data[:4] + struct.pack("<i", 3) + data[8:], "version 3")
    case("flag.bin", data[:36] + bytes([7]) + data[37:], "shared-classifier flag")
    # A wrong magic makes the file read as a legacy header whose sizes are nonsense.
    case("magic.bin", struct.pack("<I", 0x12345678) + data[4:], "llama2.c checkpoint")
    # The flag says untied, but the file holds no classifier: the sizes do not add up.
    case("untied_flag.bin", data[:36] + bytes([0]) + data[37:], "truncated")

    def legacy(name, fields, match):
        case(name, struct.pack("<7i", *fields) + b"\0" * 400, match)

    legacy("zero_heads.bin", (16, 24, 1, 0, 2, 11, 8), "n_heads=0")
    legacy("negative_dim.bin", (-16, 24, 1, 2, 2, 11, 8), "dim=-16")
    legacy("heads_dont_divide.bin", (18, 24, 1, 4, 4, 11, 8), "n_heads=4")
    legacy("odd_head.bin", (18, 24, 1, 2, 2, 11, 8), "even")
    legacy("kv_heads.bin", (16, 24, 1, 4, 3, 11, 8), "n_kv_heads=3")
    # A header for a 400 GB model in a 428-byte file: refused before any allocation.
    legacy("huge.bin", (8192, 28672, 800, 64, 8, 32000, 4096), "needs")
    return cases


def test_broken_files_raise_clear_errors_before_building_anything(tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was built for a broken file")

    cases = _bad_files(tmp_path)
    monkeypatch.setattr(llama2c_loader, "Transformer", no_model)
    for path, match in cases:
        with pytest.raises(Llama2cFormatError, match=match) as info:
            from_llama2c(path)
        assert isinstance(info.value, ValueError)
        assert str(path) in str(info.value), path.name


def test_version_error_says_how_to_fix(tmp_path):
    good, _, _ = _write_valid(tmp_path)
    data = good.read_bytes()
    path = tmp_path / "v2.bin"
    path.write_bytes(data[:4] + struct.pack("<i", 2) + data[8:])
    with pytest.raises(Llama2cFormatError, match="--version 1"):
        from_llama2c(path)


def test_names_resolve_in_llama2c_path_at_call_time(tmp_path, monkeypatch):
    path, header, w = _write_valid(tmp_path, version=0, shared=False, name="stories260K.bin")
    monkeypatch.setenv("LLAMA2C_PATH", str(tmp_path))
    assert llama2c_file("stories260K") == path
    assert llama2c_file("llama2c:stories260K.bin") == path
    model = from_llama2c("stories260K")
    assert model.config.d_model == header[0] and not model.config.tie_embeddings


def test_unknown_name_lists_known_ones():
    with pytest.raises(FileNotFoundError, match="stories260K"):
        from_llama2c("stories999K")


def test_offline_without_a_copy_fails_fast_naming_both_fixes(tmp_path, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.delenv("LLAMA2C_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    started = time.perf_counter()
    with pytest.raises(ConnectionError) as info:
        from_llama2c("stories260K")
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert "LLAMA2C_PATH" in message and "HF_HUB_OFFLINE" in message, message
    monkeypatch.setenv("LLAMA2C_PATH", str(tmp_path))  # a directory without the file
    with pytest.raises(ConnectionError, match="has no stories260K.bin"):
        from_llama2c("stories260K")


# ---- tokenizer ------------------------------------------------------------------------------


def write_tokenizer(path, pieces, scores):
    """A llama2.c tokenizer file: int32 max length, then (float32 score, int32 length, bytes)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max(len(p) for p in pieces)))
        for piece, score in zip(pieces, scores, strict=True):
            f.write(struct.pack("<fi", score, len(piece)) + piece)
    return Path(path)


def toy_vocab(extra):
    """Control pieces, the 256 byte pieces (all score 0), then ``extra`` (piece, score) pairs."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)]
    scores = [0.0] * len(pieces)
    for piece, score in extra:
        pieces.append(piece.encode())
        scores.append(score)
    return pieces, scores


TOY = [(" ", -9), ("a", -9), ("b", -9), ("ab", -1), (" a", -5), (" ab", -2), ("ba", -3),
       ("aa", -1), ("é", -9)]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    pieces, scores = toy_vocab(TOY)
    return Llama2cTokenizer.load(write_tokenizer(tmp_path_factory.mktemp("tok") / "toy.bin",
                                                 pieces, scores))


def naive_encode(pieces, scores, text):
    """run.c's encode, literally: rescan every pair after every merge; leftmost best wins."""
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    if not text:
        return []
    tokens = []
    for ch in " " + text:
        b = ch.encode()
        tokens += [lookup[b]] if b in lookup else [x + 3 for x in b]
    while True:
        best = None
        for i in range(len(tokens) - 1):
            merged = lookup.get(pieces[tokens[i]] + pieces[tokens[i + 1]])
            if merged is not None and scores[merged] > -1e10 and (
                    best is None or scores[merged] > scores[best[1]]):
                best = (i, merged)
        if best is None:
            return tokens
        i, merged = best
        tokens[i:i + 2] = [merged]


def test_toy_encodings_derived_by_hand(toy):
    piece = {p: i for i, p in enumerate(toy.pieces)}

    def ids(*ps):
        return [piece[p.encode()] for p in ps]

    # " "+"a"+"b": "ab" (-1) beats " a" (-5); then " "+"ab" -> " ab".
    assert toy.encode("ab") == ids(" ab")
    # "ab" first, then " ab" (-2) beats nothing else; "a" is left alone (" aba" is no piece).
    assert toy.encode("aba") == ids(" ab", "a")
    # Two "aa" pairs tie at -1: the leftmost merges, leaving " ", "aa", "a" (no further piece).
    # Merging the right one would have allowed " a" afterwards.
    assert toy.encode("aaa") == ids(" ", "aa", "a")
    # "é" is a piece; "ü" is not, so its two UTF-8 bytes become byte-fallback ids (byte + 3).
    assert toy.encode("é") == ids(" ", "é")
    assert toy.encode("ü") == ids(" ") + [0xC3 + 3, 0xBC + 3]
    assert toy.encode("") == []
    assert toy.encode("ab", add_eot=True) == ids(" ab") + [1]
    # decode: the first piece and a piece after BOS drop their leading space; bytes rejoin.
    assert toy.decode(ids(" ab", " ab")) == "ab ab"
    assert toy.decode([1] + ids(" ab") + [1] + ids(" ab")) == "<s>ab<s>ab"
    assert toy.decode(ids(" ") + [0xC3 + 3, 0xBC + 3]) == "ü"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_toy_encode_equals_naive_run_c_loop(toy, text):
    assert toy.encode(text) == naive_encode(toy.pieces, toy.scores, text)


@pytest.fixture(scope="module")
def tok512():
    if not LOCAL_DIR:
        pytest.skip("set LLAMA2C_PATH to a directory holding tok512.bin")
    return load_tokenizer(Path(LOCAL_DIR) / "tok512.bin")


EXAMPLES = ["Once upon a time, there was a little girl named Lily.", "  leading spaces",
            "emoji 🎉🐉 and CJK 日本語, combining e\u0301, RTL שלום", "tabs\tand\nnewlines\n\n",
            "\x00\x7f\u200b\ufeff", "a" * 50, ""]


@needs_local
def test_tok512_decodes_one_id_and_refuses_a_batch(tok512):
    ids = tok512.encode("Once upon a time")
    assert tok512.decode(torch.tensor(ids[0])) == tok512.decode(ids[:1]) == "Once"
    with pytest.raises(ValueError, match=r"decode each row"):
        tok512.decode(np.array([ids, ids]))


@needs_local
def test_bits_per_byte_counts_the_text_not_the_dummy_spaces(tok512):
    """Each text is encoded with a space in front that decode drops after BOS: evaluation
    counts the text's own UTF-8 bytes (the separators and the dummy spaces spell none)."""
    from transformer_lib import ModelConfig, Transformer
    from transformer_lib.training.metrics import (
        byte_lengths_after_eot,
        evaluate_tokens,
        token_byte_lengths,
    )

    texts = [text for text in EXAMPLES if text] + ["Once", " Once", "\u00fcber"]
    ids = [tok512.eot_id]
    for text in texts:
        ids += tok512.encode(text) + [tok512.eot_id]
    assert tok512.decode(ids).replace("<s>", "") == "".join(texts)
    tokens = np.array(ids, dtype=np.int64)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=512, d_model=16, num_layers=1, num_heads=2,
                                    max_seq_len=16))
    table, after = token_byte_lengths(tok512), byte_lengths_after_eot(tok512)
    result = evaluate_tokens(model, tokens, table, seq_len=16, after_eot=after)
    assert result["bytes"] == sum(len(text.encode("utf-8")) for text in texts)
    plain = evaluate_tokens(model, tokens, table, seq_len=16)
    assert plain["bytes"] == result["bytes"] + len(texts)  # one dummy space a text


@needs_local
@pytest.mark.parametrize("text", EXAMPLES)
def test_tok512_matches_naive_loop_and_round_trips(tok512, text):
    ids = tok512.encode(text)
    assert ids == naive_encode(tok512.pieces, tok512.scores, text)
    assert tok512.decode(ids) == text


@needs_local
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet="abcdefghij .,!?\n'🎉é日", max_size=120))
def test_tok512_round_trips_any_string(tok512, text):
    assert tok512.decode(tok512.encode(text)) == text


@needs_local
def test_tok512_interface(tok512, monkeypatch):
    from transformer_lib.training.trainer import token_byte_lengths

    assert isinstance(tok512, Llama2cTokenizer)
    assert (tok512.vocab_size, tok512.bos_id, tok512.eos_id, tok512.eot_id) == (512, 1, 2, 1)
    assert tok512.pieces[1] == b"\n<s>\n" and tok512.token_bytes(3 + 0x41) == b"A"
    lengths = token_byte_lengths(tok512)
    assert lengths[:3].tolist() == [0, 0, 0] and lengths[3:259].tolist() == [1] * 256
    assert tok512.decode(torch.tensor([1, tok512.encode("Hi")[0]])) == "<s>" + \
        tok512.decode(tok512.encode("Hi")[:1])
    with pytest.raises(ValueError, match="512"):
        tok512.decode([512])
    monkeypatch.setenv("LLAMA2C_PATH", LOCAL_DIR)
    for name in ("tok512", "llama2c:tok512"):
        assert load_tokenizer(name).content_hash == tok512.content_hash


@needs_local
def test_tok512_encodes_two_kilobytes_fast(tok512):
    text = ("Once upon a time, there was a little girl named Lily. She loved to play with "
            "her red ball in the park every day! ") * 20
    text = text[:2048]
    started = time.perf_counter()
    ids = tok512.encode(text)
    elapsed = time.perf_counter() - started
    assert tok512.decode(ids) == text
    assert elapsed < 0.5, f"encoding 2 KB took {elapsed:.2f} s"


def test_broken_tokenizer_files(tmp_path):
    pieces, scores = toy_vocab(TOY)
    good = write_tokenizer(tmp_path / "good.bin", pieces, scores).read_bytes()
    (tmp_path / "cut.bin").write_bytes(good[:-3])
    with pytest.raises(Llama2cFormatError, match="truncated"):
        Llama2cTokenizer.load(tmp_path / "cut.bin")
    swapped = pieces[:3] + [pieces[4], pieces[3]] + pieces[5:]
    with pytest.raises(Llama2cFormatError, match="byte piece <0x00>"):
        Llama2cTokenizer.load(write_tokenizer(tmp_path / "swap.bin", swapped, scores))
    with pytest.raises(Llama2cFormatError, match="at least 259"):
        Llama2cTokenizer.load(write_tokenizer(tmp_path / "few.bin", pieces[:100], scores[:100]))


def test_saved_json_rebuilds_the_same_tokenizer_and_refuses_an_edit(toy, tmp_path):
    """A run folder stores its tokenizer as tokenizer.json, llama2.c's vocabulary included."""
    import json

    path = toy.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(path)
    assert isinstance(again, Llama2cTokenizer) and again.content_hash == toy.content_hash
    assert again.pieces == toy.pieces and again.scores == toy.scores
    text = "emoji 🎉 and CJK 日本語, Once upon a time"
    assert again.encode(text) == toy.encode(text) and again.decode(again.encode(text)) == text
    payload = json.loads(path.read_text())
    payload["scores"][-1] += 1.0  # another merge order: a different tokenizer
    (tmp_path / "edited.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="corrupted or was edited"):
        load_tokenizer(tmp_path / "edited.json")


# ---- the real stories260K ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def stories260k():
    if not LOCAL_DIR:
        pytest.skip("set LLAMA2C_PATH to a directory holding stories260K.bin")
    return from_llama2c(Path(LOCAL_DIR) / "stories260K.bin")


@needs_local
def test_stories260k_logits_match_llama2c_forward(stories260k):
    header, w = read_legacy(Path(LOCAL_DIR) / "stories260K.bin")
    assert header == (64, 172, 5, 8, 4, 512, 512)
    ids = np.random.default_rng(0).integers(0, 512, 12)
    with torch.no_grad():
        ours = stories260k(torch.tensor(ids).unsqueeze(0))[0].double()
    torch.testing.assert_close(ours, torch.from_numpy(reference_logits(header, w, ids)),
                               atol=1e-4, rtol=0)


@needs_local
def test_stories260k_tells_a_story_from_bos(stories260k, tok512):
    cached = stories260k.generate(torch.tensor([1]), 200, temperature=0, eos_id=1)
    uncached = stories260k.generate(torch.tensor([1]), 60, temperature=0, eos_id=1,
                                    use_cache=False)
    assert torch.equal(cached[:61], uncached)
    text = tok512.decode(cached[1:].tolist())
    assert text.startswith("Once upon a time")
    words = text.split()
    assert len(words) > 60 and "\ufffd" not in text
    assert sum(w.strip('.,!?"\'').isalpha() for w in words) > 0.9 * len(words)


@needs_local
def test_generate_cli_tells_a_story(monkeypatch):
    from transformer_lib.cli.generate import main

    monkeypatch.setenv("LLAMA2C_PATH", LOCAL_DIR)
    out, err = io.StringIO(), io.StringIO()
    prompt = "One day, a little dog"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--llama2c", "stories260K", "--prompt", prompt, "--max-new-tokens", "60",
                     "--device", "cpu"])
    assert code == 0, err.getvalue()
    text = out.getvalue().strip()
    assert text.startswith(prompt) and len(text.split()) > len(prompt.split()) + 10, text


def test_generate_cli_refuses_both_sources_and_a_stray_tokenizer():
    from transformer_lib.cli.generate import main

    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        main(["--llama2c", "stories260K", "--checkpoint", "runs/x"])
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        main(["--checkpoint", "runs/x", "--tokenizer", "tok512"])


@needs_local
def test_viz_and_widgets_accept_the_tokenizer(stories260k, tok512):
    figure = viz.plot_tokens("Once upon a time, 🎉 a cat.", tok512)
    assert figure is not None
    spans = viz.token_spans(tok512, "a 🎉 b")
    assert [i for span in spans for i in span.ids] == tok512.encode("a 🎉 b")
    widgets = pytest.importorskip("transformer_lib.book.widgets")
    explorer = widgets.AttentionExplorer(stories260k, tok512, text="Once upon a time")
    assert explorer is not None
    widgets.TokenizerExplorer(tok512, text="Lily saw a cat")


@needs_local
def test_plot_labels_keep_a_pieces_leading_space(tok512):
    from transformer_lib.book import viz

    ids = tok512.encode("Once upon a time")
    labels = viz.token_labels(tok512, ids)
    assert "".join(tok512.token_bytes(i).decode() for i in ids) == " Once upon a time"
    assert len(labels) == len(ids) and labels[1].startswith(("␣", " ")), labels
