"""Tests for transformer_lib.data.tokenizer: exact round trips, HF-identical ids, one-file save/load."""

import base64
import hashlib
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
    for flags in (torch.tensor([True, False]), [True], True):  # a mask is not a list of ids
        with pytest.raises(ValueError, match="ids must be ints"):
            toy_tokenizer.decode(flags)


def test_training_on_a_dataset_reads_its_text_column():
    """Iterating a datasets.Dataset gives rows as dicts: Hugging Face's trainer then learned
    the column's name ("text") and nothing of the stories."""
    from datasets import Dataset

    stories = Dataset.from_dict({"text": TOY_CORPUS})
    from_dataset = train_tokenizer(stories, 300)
    assert from_dataset.ranks == train_tokenizer(list(TOY_CORPUS), 300).ranks
    with pytest.raises(KeyError, match="no 'text' column"):
        train_tokenizer(Dataset.from_dict({"story": TOY_CORPUS}), 300)
    with pytest.raises(TypeError, match="got dict"):
        train_tokenizer([{"text": story} for story in TOY_CORPUS], 300)


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
    # a single id, as a 0-dim tensor or an int, is one token; a batch is refused with a fix
    assert tokenizer.decode(torch.tensor(ids[0])) == tokenizer.decode(ids[0]) == \
        tokenizer.decode(ids[:1])
    with pytest.raises(ValueError, match=r"one sequence of ids \(T,\), got shape \(2, 1\)"):
        tokenizer.decode(torch.tensor([ids[:1], ids[:1]]))


# ---- special tokens in text, and GPT-2's vocab.json + merges.txt ----------------------------

SOT_TEXT = "<|startoftext|>"  # tiktoken's GPT-2 file reader also leaves this one out of the ranks
MIXED_TEXTS = [
    f"The end.{EOT_TEXT}Once upon a time",
    f"{EOT_TEXT}{EOT_TEXT} two in a row, then {SOT_TEXT}Lily saw a cat.{EOT_TEXT}",
    f"  spaces before {EOT_TEXT}   and after\n{SOT_TEXT}\n",
    f"half a token <|endoftext and |> apart, then {EOT_TEXT}",
    "no special text at all 🐱",
    "",
]


def write_gpt2_files(hf_tokenizer, folder, extra_vocab):
    """Write a trained HF ByteLevel BPE as GPT-2's vocab.json + merges.txt, plus extra_vocab."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = (folder / "vocab.json", folder / "merges.txt")
    hf_tokenizer.model.save(str(folder))  # Hugging Face's own writer of GPT-2's two files
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    vocab.update(extra_vocab)
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return vocab_path, merges_path


def tiktoken_reference(vocab_path, merges_path, special_tokens):
    """tiktoken's own reader of GPT-2's two files (what get_encoding('gpt2') uses) as an Encoding."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    # clobber_one_byte_tokens: keep the file's ids for single bytes (HF numbers them its own way)
    ranks = data_gym_to_mergeable_bpe_ranks(str(merges_path), str(vocab_path),
                                            clobber_one_byte_tokens=True)
    return tiktoken.Encoding("reference", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens=special_tokens)


def assert_matches_tiktoken(ours, reference, texts):
    """Our ids equal tiktoken's for every text, with special text allowed or not."""
    for text in texts:
        assert ours.encode(text) == reference.encode(text, disallowed_special=()), text
        assert ours.encode(text, allowed_special="all") == reference.encode(
            text, allowed_special="all"), text
        assert ours.encode(text, allowed_special={EOT_TEXT}) == reference.encode(
            text, allowed_special={EOT_TEXT}, disallowed_special=()), text
        assert ours.decode(ours.encode(text, allowed_special="all")) == text


@pytest.fixture()
def gpt2_style_files(toy_hf, tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's reader must not cache tmp files
    n = toy_hf.get_vocab_size()
    specials = {EOT_TEXT: n, SOT_TEXT: n + 1}
    return (*write_gpt2_files(toy_hf, tmp_path / "gpt2-style", specials), specials)


def test_gpt2_files_give_tiktoken_ids_with_special_text_allowed_or_not(gpt2_style_files):
    vocab_path, merges_path, specials = gpt2_style_files
    ours = Tokenizer.from_gpt2_files(vocab_path, merges_path, [EOT_TEXT, SOT_TEXT])
    reference = tiktoken_reference(vocab_path, merges_path, specials)
    assert dict(ours.special_tokens) == specials and ours.vocab_size == reference.n_vocab
    assert_matches_tiktoken(ours, reference, MIXED_TEXTS + TOY_CORPUS[:3])
    assert ours.encode_batch(MIXED_TEXTS, allowed_special="all") == reference.encode_batch(
        MIXED_TEXTS, allowed_special="all")
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    del vocab[SOT_TEXT]  # load_tokenizer(folder) knows <|endoftext|> only, like GPT-2's files
    vocab_path.write_text(json.dumps(vocab), encoding="utf-8")
    from_folder = load_tokenizer(vocab_path.parent)
    assert dict(from_folder.special_tokens) == {EOT_TEXT: specials[EOT_TEXT]}
    assert from_folder.encode_batch(MIXED_TEXTS) == ours.encode_batch(MIXED_TEXTS)


def test_special_text_is_ordinary_text_unless_allowed(toy_tokenizer):
    text = f"The end.{EOT_TEXT}Once"
    assert toy_tokenizer.eot_id not in toy_tokenizer.encode(text)  # the default, as before
    allowed = toy_tokenizer.encode(text, allowed_special={EOT_TEXT})
    assert allowed == [*toy_tokenizer.encode("The end."), toy_tokenizer.eot_id,
                       *toy_tokenizer.encode("Once")]
    assert toy_tokenizer.encode(text, allowed_special="all") == allowed
    assert toy_tokenizer.encode_batch([text, "x"], allowed_special="all") == [
        allowed, toy_tokenizer.encode("x")]


def test_disallowed_special_raises_as_in_tiktoken_when_asked(toy_tokenizer):
    text = f"The end.{EOT_TEXT}"
    with pytest.raises(ValueError, match=r"<\|endoftext\|>.*allowed_special"):
        toy_tokenizer.encode(text, disallowed_special="all")
    with pytest.raises(ValueError, match="allowed_special"):
        toy_tokenizer.encode_batch(["fine", text], disallowed_special={EOT_TEXT})
    assert toy_tokenizer.encode("fine", disallowed_special="all") == toy_tokenizer.encode("fine")
    assert toy_tokenizer.encode(text, allowed_special="all", disallowed_special="all")[-1] == (
        toy_tokenizer.eot_id)


def test_bad_allowed_special_is_refused_with_the_fix(toy_tokenizer):
    with pytest.raises(TypeError, match=r"a set of special-token strings or 'all'.*\{'<\|"):
        toy_tokenizer.encode("x", allowed_special=EOT_TEXT)
    with pytest.raises(ValueError, match=r"<\|pad\|>.*not a special token.*<\|endoftext\|>"):
        toy_tokenizer.encode("x", allowed_special={"<|pad|>"})


@pytest.mark.parametrize("order", [0, 1, 2])
def test_overlapping_special_tokens_prefer_the_longest(toy_tokenizer, order):
    n = len(toy_tokenizer.ranks)
    names = [EOT_TEXT, "<|end", "<|end|>", "d|><|b"]
    names = names[order:] + names[:order]  # the answer must not depend on the mapping's order
    specials = {name: n + i for i, name in enumerate(names)}
    ours = Tokenizer("overlap", GPT2_PATTERN, toy_tokenizer.ranks, specials)
    ids = ours.encode(f"a{EOT_TEXT}b<|end|><|b<|end", allowed_special="all")
    found = [ours.token_bytes(i).decode() for i in ids if i >= n]
    # leftmost first, then the longest starting there: "<|end|>" beats "<|end" and "d|><|b"
    assert found == [EOT_TEXT, "<|end|>", "<|end"]
    assert ours.decode(ids) == f"a{EOT_TEXT}b<|end|><|b<|end"
    only_short = ours.encode(f"a{EOT_TEXT}", allowed_special={"<|end"})
    assert [ours.token_bytes(i) for i in only_short if i >= n] == [b"<|end"]


def test_special_token_with_id_zero(tmp_path, monkeypatch):
    """A vocabulary trained with its special token first: <|endoftext|> = 0, bytes from 1."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.train_from_iterator(TOY_CORPUS, trainers.BpeTrainer(
        vocab_size=TOY_VOCAB, special_tokens=[EOT_TEXT], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    assert hf.token_to_id(EOT_TEXT) == 0
    vocab_path, merges_path = write_gpt2_files(hf, tmp_path / "eot-first", {})
    ours = Tokenizer.from_gpt2_files(vocab_path, merges_path, [EOT_TEXT])
    assert (ours.eot_id, ours.vocab_size) == (0, TOY_VOCAB)
    for text in MIXED_TEXTS[:1] + MIXED_TEXTS[3:] + TOY_CORPUS[:3]:
        # Hugging Face always recognises its special tokens: our allowed_special="all"
        assert ours.encode(text, allowed_special="all") == hf.encode(text).ids, text
        assert ours.decode(ours.encode(text)) == text
    assert ours.encode("end", add_eot=True)[-1] == 0
    reloaded = load_tokenizer(ours.save(tmp_path / "eot-first.json"))
    assert reloaded.content_hash == ours.content_hash
    assert reloaded.encode_batch(MIXED_TEXTS, allowed_special="all") == ours.encode_batch(
        MIXED_TEXTS, allowed_special="all")
    assert pickle.loads(pickle.dumps(ours)).encode(MIXED_TEXTS[0]) == ours.encode(MIXED_TEXTS[0])


def test_special_ids_must_fill_the_gaps_exactly(toy_tokenizer):
    n = len(toy_tokenizer.ranks)
    with pytest.raises(ValueError, match="collide"):
        Tokenizer("clash", GPT2_PATTERN, toy_tokenizer.ranks, {EOT_TEXT: 5})
    with pytest.raises(ValueError, match=rf"no gaps.*\[{n}\]"):
        Tokenizer("gap", GPT2_PATTERN, toy_tokenizer.ranks, {EOT_TEXT: n + 1})
    with pytest.raises(ValueError, match="empty"):
        Tokenizer("empty", GPT2_PATTERN, toy_tokenizer.ranks, {EOT_TEXT: n, "": n + 1})


def test_gpt2_files_that_do_not_fit_are_refused_with_the_reason(gpt2_style_files, tmp_path):
    vocab_path, merges_path, _ = gpt2_style_files
    with pytest.raises(ValueError, match=r"<\|startoftext\|>.*special_tokens"):
        Tokenizer.from_gpt2_files(vocab_path, merges_path, [EOT_TEXT])  # one special left out
    with pytest.raises(ValueError, match=r"<\|pad\|>.*not in.*vocab.json"):
        Tokenizer.from_gpt2_files(vocab_path, merges_path, [EOT_TEXT, SOT_TEXT, "<|pad|>"])
    lines = merges_path.read_text(encoding="utf-8").splitlines()
    swapped = tmp_path / "swapped.txt"  # two merges out of their vocab.json id order
    swapped.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n",
                       encoding="utf-8")
    with pytest.raises(ValueError, match="merge order"):
        Tokenizer.from_gpt2_files(vocab_path, swapped, [EOT_TEXT, SOT_TEXT])
    with pytest.raises(FileNotFoundError, match="merges"):
        Tokenizer.from_gpt2_files(vocab_path, tmp_path / "missing.txt", [EOT_TEXT, SOT_TEXT])


def _local_gpt2_files():
    """GPT-2's vocab.json + merges.txt if this machine has them: tiktoken's cache or HF's."""
    import tempfile

    cache = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get(
        "DATA_GYM_CACHE_DIR", os.path.join(tempfile.gettempdir(), "data-gym-cache")))
    merges_url, vocab_url = tokenizer.GPT2_CACHED_URLS  # vocab.bpe is merges.txt by another name
    in_tiktoken = [os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())
                   for url in (vocab_url, merges_url)] if cache else []
    if in_tiktoken and all(os.path.exists(path) for path in in_tiktoken):
        return tuple(in_tiktoken)
    from huggingface_hub import try_to_load_from_cache

    for repo in ("openai-community/gpt2", "gpt2"):
        found = [try_to_load_from_cache(repo, name) for name in ("vocab.json", "merges.txt")]
        if all(isinstance(path, str) for path in found):
            return tuple(found)
    return None


@pytest.mark.skipif(_local_gpt2_files() is None,
                    reason="GPT-2's vocab.json/merges.txt are in neither tiktoken's nor the "
                           "Hugging Face cache, and tests must not download them")
def test_real_gpt2_files_give_gpt2_ids(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    vocab_path, merges_path = _local_gpt2_files()
    gpt2 = Tokenizer.from_gpt2_files(vocab_path, merges_path, [EOT_TEXT])
    assert (gpt2.vocab_size, gpt2.eot_id) == (50257, 50256)
    assert gpt2.encode("Hello world") == [15496, 995]
    reference = tiktoken_reference(vocab_path, merges_path, {EOT_TEXT: 50256})
    assert_matches_tiktoken(gpt2, reference, MIXED_TEXTS)
