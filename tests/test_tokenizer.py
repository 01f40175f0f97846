"""Tests for transformer_lib.data.tokenizer: exact round trips, HF-identical ids, one-file save/load."""

import base64
import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer_lib.cli.tokenizer import main
from transformer_lib.data import stories as data
from transformer_lib.data import tokenizer
from transformer_lib.data.tokenizer import (
    EOT_TEXT,
    GPT2_PATTERN,
    Tokenizer,
    hf_bpe_ranks,
    load_tokenizer,
    train_hf_bpe,
    train_tokenizer,
)

REAL_DATA = os.environ.get("TINYSTORIES_PATH")
needs_real_data = pytest.mark.skipif(
    not REAL_DATA, reason="TINYSTORIES_PATH is unset: no local TinyStories sample to test on"
)
TOY_CORPUS = [
    f"Once upon a time, {name} saw a {thing}. {name} said, “Wow, a {thing}!” 🐱 café naïve\n"
    f"They played   all day.\tThe end {i}."
    for i, (name, thing) in enumerate(
        [("Lily", "cat"), ("Tom", "dog"), ("Sue", "bird"), ("Max", "tree")] * 25
    )
]
TOY_VOCAB = 400

# Text that stresses the byte level: emoji (4-byte UTF-8), combining marks, CJK, whitespace
# runs, control characters, and the special token's text inside ordinary text.
tricky_text = st.lists(
    st.one_of(
        st.text(),
        st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2028\u3000", max_size=8),
        st.sampled_from(
            [EOT_TEXT, "<|endoftext", "|>", "👩‍👩‍👧", "é", "e\u0301", "日本語", "'s", "'ll"]
        ),
    ),
    max_size=8,
).map("".join)


@pytest.fixture(scope="module")
def toy_hf():
    return train_hf_bpe(TOY_CORPUS, TOY_VOCAB)


@pytest.fixture(scope="module")
def toy_tokenizer(toy_hf):
    return Tokenizer("toy", GPT2_PATTERN, hf_bpe_ranks(toy_hf))


@pytest.fixture(scope="module")
def real_stories():
    if not REAL_DATA:
        pytest.skip("TINYSTORIES_PATH is unset: no local TinyStories sample to test on")
    train = list(data.load_stories("train")["text"])
    validation = list(data.load_stories("validation")["text"])
    return train, validation


@settings(max_examples=300, deadline=None)
@given(text=tricky_text)
def test_decode_inverts_encode_for_every_string(toy_tokenizer, text):
    assert toy_tokenizer.decode(toy_tokenizer.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(text=tricky_text)
def test_ids_match_the_hugging_face_tokenizer_they_were_trained_with(toy_hf, toy_tokenizer, text):
    assert toy_tokenizer.encode(text) == toy_hf.encode(text).ids


def test_empty_string_round_trips(toy_tokenizer):
    assert toy_tokenizer.encode("") == []
    assert toy_tokenizer.decode([]) == ""


def test_special_token_text_in_user_text_is_plain_text(toy_tokenizer):
    eot = toy_tokenizer.eot_id
    ids = toy_tokenizer.encode(EOT_TEXT)
    assert ids != [eot] and eot not in ids
    assert toy_tokenizer.decode(ids) == EOT_TEXT
    mixed = f"The end.{EOT_TEXT}Once upon a time"
    assert eot not in toy_tokenizer.encode(mixed)
    assert toy_tokenizer.decode(toy_tokenizer.encode(mixed)) == mixed


def test_add_eot_appends_exactly_the_eot_id(toy_tokenizer):
    text = "Tom saw a dog."
    assert toy_tokenizer.encode(text, add_eot=True) == toy_tokenizer.encode(text) + [
        toy_tokenizer.eot_id
    ]
    assert toy_tokenizer.decode([toy_tokenizer.eot_id]) == EOT_TEXT


def test_encode_batch_matches_encode(toy_tokenizer):
    texts = TOY_CORPUS[:5] + ["", EOT_TEXT]
    assert toy_tokenizer.encode_batch(texts) == [toy_tokenizer.encode(t) for t in texts]
    with_eot = toy_tokenizer.encode_batch(texts, add_eot=True)
    assert with_eot == [toy_tokenizer.encode(t, add_eot=True) for t in texts]


def test_vocab_size_and_eot_id_are_as_requested(toy_tokenizer):
    assert toy_tokenizer.vocab_size == TOY_VOCAB
    assert toy_tokenizer.eot_id == TOY_VOCAB - 1
    assert max(toy_tokenizer.encode(" ".join(TOY_CORPUS))) < TOY_VOCAB - 1
    assert len(toy_tokenizer.encode("Once upon a time")) < len("Once upon a time")  # merges learned


@pytest.mark.parametrize("vocab_size", [0, 256, 257])
def test_too_small_vocab_is_refused_with_the_minimum(vocab_size):
    with pytest.raises(ValueError, match=">= 258: a byte-level BPE needs 256 byte tokens"):
        train_tokenizer(TOY_CORPUS, vocab_size)


def test_non_int_vocab_and_single_string_corpus_are_refused():
    with pytest.raises(TypeError, match="vocab_size"):
        train_tokenizer(TOY_CORPUS, "4096")
    with pytest.raises(TypeError, match="iterable of str"):
        train_tokenizer("one long string", 300)


def test_corpus_too_small_for_the_vocab_warns_and_reports_the_truth():
    with pytest.warns(UserWarning, match="fewer than vocab_size"):
        small = train_tokenizer(["ab ab ab"], 1000)
    assert small.vocab_size < 1000
    assert small.decode(small.encode("ab ab")) == "ab ab"


def test_save_and_load_give_the_same_tokenizer(toy_tokenizer, tmp_path):
    path = toy_tokenizer.save(tmp_path / "sub" / "toy.json")
    loaded = load_tokenizer(path)
    assert (loaded.name, loaded.content_hash, loaded.eot_id) == (
        "toy",
        toy_tokenizer.content_hash,
        toy_tokenizer.eot_id,
    )
    assert loaded.encode_batch(TOY_CORPUS) == toy_tokenizer.encode_batch(TOY_CORPUS)


def test_tokenizer_pickles_for_worker_processes(toy_tokenizer):
    clone = pickle.loads(pickle.dumps(toy_tokenizer))
    assert clone.content_hash == toy_tokenizer.content_hash
    assert clone.encode_batch(TOY_CORPUS) == toy_tokenizer.encode_batch(TOY_CORPUS)


def test_edited_file_is_refused(toy_tokenizer, tmp_path):
    path = toy_tokenizer.save(tmp_path / "toy.json")
    payload = json.loads(path.read_text())
    payload["ranks"][300], payload["ranks"][301] = payload["ranks"][301], payload["ranks"][300]
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="hash"):
        load_tokenizer(path)


def test_foreign_json_and_unknown_names_are_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"model": {}}')
    with pytest.raises(ValueError, match="not a transformer_lib.tokenizer"):
        load_tokenizer(path)
    with pytest.raises(FileNotFoundError, match="gpt2"):
        load_tokenizer(tmp_path / "missing.json")


def test_tiktoken_ranks_file_loads_with_gpt2_rules(toy_tokenizer, tmp_path):
    path = tmp_path / "toy.tiktoken"
    lines = [
        f"{base64.b64encode(tok).decode()} {rank}" for tok, rank in toy_tokenizer.ranks.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_tokenizer(path)
    assert loaded.content_hash == toy_tokenizer.content_hash
    assert loaded.encode_batch(TOY_CORPUS) == toy_tokenizer.encode_batch(TOY_CORPUS)


def test_gpt2_unavailable_offline_fails_fast_with_the_fixes(monkeypatch):
    monkeypatch.setattr(tokenizer, "_tiktoken_cached", lambda url: False)
    monkeypatch.setattr(data, "url_reachable", lambda *args, **kwargs: False)
    started = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"\.tiktoken") as error:
        load_tokenizer("gpt2")
    assert time.perf_counter() - started < 5.0
    assert "online" in str(error.value)


@pytest.mark.skipif(
    not all(tokenizer._tiktoken_cached(url) for url in tokenizer.GPT2_CACHED_URLS),
    reason="GPT-2 files are not in tiktoken's cache and tests must not download them",
)
def test_gpt2_gives_gpt2_ids():
    gpt2 = load_tokenizer("gpt2")
    assert (gpt2.vocab_size, gpt2.eot_id) == (50257, 50256)
    assert gpt2.encode("Hello world") == [15496, 995]


def test_decode_accepts_arrays_and_refuses_bad_ids(toy_tokenizer):
    ids = toy_tokenizer.encode("Lily saw a cat.")
    assert toy_tokenizer.decode(torch.tensor(ids)) == "Lily saw a cat."
    assert toy_tokenizer.decode(np.array(ids, dtype=np.uint16)) == "Lily saw a cat."
    with pytest.raises(ValueError, match=str(TOY_VOCAB)):
        toy_tokenizer.decode([1, TOY_VOCAB])
    with pytest.raises(TypeError, match="encode_batch"):
        toy_tokenizer.encode(["a list"])
    with pytest.raises(TypeError, match="one str"):
        toy_tokenizer.encode_batch("a str")


def test_ranks_missing_a_byte_are_refused(toy_tokenizer):
    ranks = dict(toy_tokenizer.ranks)
    del ranks[b"\x00"]
    ranks = {tok: i for i, tok in enumerate(sorted(ranks, key=ranks.__getitem__))}
    with pytest.raises(ValueError, match="256"):
        Tokenizer("broken", GPT2_PATTERN, ranks)


def test_cli_trains_a_file_that_load_tokenizer_reads(tmp_path, capsys):
    corpus = tmp_path / "train.txt"
    corpus.write_text("".join(f"{s}\n<|endoftext|>\n" for s in TOY_CORPUS), encoding="utf-8")
    out = tmp_path / "toy300.json"
    assert main(["train", "--input", str(tmp_path), "--vocab-size", "300", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    trained = load_tokenizer(out)
    assert (trained.name, trained.vocab_size) == ("toy300", 300)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--input", str(tmp_path), "--vocab-size", "100", "--out", str(out)])
    assert exit_info.value.code == 2
    assert ">= 258" in capsys.readouterr().err


def test_cli_help_explains_the_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--input", "--vocab-size", "--out", "TINYSTORIES_PATH"):
        assert flag in help_text


@needs_real_data
def test_real_text_ids_match_hf_and_round_trip(real_stories):
    train, validation = real_stories
    hf = train_hf_bpe(train, 4096)
    served = Tokenizer("real", GPT2_PATTERN, hf_bpe_ranks(hf))
    ours = served.encode_batch(validation)
    assert ours == [encoding.ids for encoding in hf.encode_batch(validation)]
    assert [served.decode(ids) for ids in ours] == validation
    n_bytes = sum(len(story.encode()) for story in validation)
    assert 3.5 < n_bytes / sum(map(len, ours)) < 4.5  # ~4 bytes/token at vocab 4096


@pytest.mark.slow
@needs_real_data
def test_real_cli_trains_vocab_4096_within_a_minute(tmp_path):
    out = tmp_path / "bpe4096.json"
    command = [sys.executable, "-m", "transformer_lib.cli.tokenizer", "train", "--input", REAL_DATA]
    command += ["--vocab-size", "4096", "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    assert time.perf_counter() - started < 60
    assert load_tokenizer(out).vocab_size == 4096


def test_decode_accepts_int_like_ids():
    import numpy as np
    import torch

    tokenizer = train_tokenizer(["hello world, hello there"] * 20, 300)
    ids = tokenizer.encode("hello")
    assert tokenizer.decode([torch.tensor(i) for i in ids]) == "hello"
    assert tokenizer.decode([np.int64(i) for i in ids]) == "hello"
