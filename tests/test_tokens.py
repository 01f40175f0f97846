"""Tests for transformer_lib.data.tokens: the cache layout and reuse, batch samplers, bits per byte."""

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from transformer_lib.data.tokenizer import GPT2_PATTERN, Tokenizer, train_tokenizer
from transformer_lib.data.tokens import (
    IGNORE_INDEX,
    RandomRows,
    RandomWindows,
    SequentialWindows,
    bits_per_byte,
    build_token_cache,
    cache_split,
    fingerprint_texts,
    open_token_cache,
    token_dtype,
)

REAL_DATA = os.environ.get("TINYSTORIES_PATH")
STORIES = [
    f"{name} found a {thing}. “It is {adjective}!” said {name}. 🌟\nThe end."
    for name in ("Lily", "Tom", "Sue", "Ben")
    for thing in ("ball", "kite", "shell")
    for adjective in ("big", "shiny")
]


@pytest.fixture(scope="module")
def toy_tokenizer():
    return train_tokenizer(STORIES, 300, name="toy")


def expected_layout(tokenizer, stories):
    """eot s1 eot s2 eot ... sN eot, built the slow obvious way."""
    ids = [tokenizer.eot_id]
    for story in stories:
        ids += tokenizer.encode(story) + [tokenizer.eot_id]
    return ids


def test_cache_holds_stories_between_eot_ids_with_metadata(toy_tokenizer, tmp_path):
    cache = build_token_cache(STORIES, toy_tokenizer, tmp_path, name="toy", source="in-test")
    assert not cache.reused
    assert isinstance(cache.tokens, np.memmap) and cache.tokens.dtype == np.uint16
    assert cache.tokens.tolist() == expected_layout(toy_tokenizer, STORIES)
    meta = json.loads(cache.path.with_suffix(".json").read_text())
    assert meta["tokenizer_name"] == "toy"
    assert meta["tokenizer_hash"] == toy_tokenizer.content_hash
    assert meta["n_tokens"] == len(cache.tokens) == cache.n_tokens
    assert meta["n_bytes"] == sum(len(s.encode("utf-8")) for s in STORIES) == cache.n_bytes
    assert meta["n_stories"] == len(STORIES) and meta["source"] == "in-test"
    assert meta["texts_sha256"] == fingerprint_texts(STORIES).sha256 and meta["dtype"] == "uint16"


def test_a_tokenizer_name_with_a_slash_names_a_file_in_the_cache_folder(toy_tokenizer,
                                                                        tmp_path):
    named = Tokenizer("stories/v2", GPT2_PATTERN, toy_tokenizer.ranks)  # tlib-tokenizer --name
    cache = build_token_cache(STORIES, named, tmp_path / "cache", progress=False)
    assert cache.path.parent == tmp_path / "cache" and "stories_v2" in cache.path.name
    assert json.loads(cache.path.with_suffix(".json").read_text())["tokenizer_name"] == (
        "stories/v2")


def test_cache_is_reused_when_inputs_match(toy_tokenizer, tmp_path, monkeypatch):
    first = build_token_cache(STORIES, toy_tokenizer, tmp_path, progress=False)
    monkeypatch.setattr(toy_tokenizer, "encode_batch", lambda *a, **k: pytest.fail("re-encoded"))
    again = build_token_cache(list(STORIES), toy_tokenizer, tmp_path, progress=False)
    assert again.reused and again.path == first.path
    assert np.array_equal(again.tokens, first.tokens)


def test_cache_is_rebuilt_when_texts_or_tokenizer_differ(toy_tokenizer, tmp_path):
    first = build_token_cache(STORIES, toy_tokenizer, tmp_path, progress=False)
    edited = STORIES[:-1] + [STORIES[-1] + "!"]
    second = build_token_cache(edited, toy_tokenizer, tmp_path, progress=False)
    assert not second.reused and second.path != first.path
    assert second.tokens.tolist() == expected_layout(toy_tokenizer, edited)

    other_tokenizer = train_tokenizer(STORIES, 280, name="toy")
    third = build_token_cache(STORIES, other_tokenizer, tmp_path, progress=False)
    assert not third.reused and third.path != first.path
    assert third.tokens.tolist() == expected_layout(other_tokenizer, STORIES)


def test_truncated_cache_is_rebuilt_not_served(toy_tokenizer, tmp_path):
    first = build_token_cache(STORIES, toy_tokenizer, tmp_path, progress=False)
    expected = first.tokens.tolist()
    with open(first.path, "r+b") as file:
        file.truncate(10)
    with pytest.raises(ValueError, match="truncated"):
        open_token_cache(first.path)
    rebuilt = build_token_cache(STORIES, toy_tokenizer, tmp_path, progress=False)
    assert not rebuilt.reused and rebuilt.tokens.tolist() == expected


@pytest.mark.parametrize("meta", ["[]", "5", '"text"', "null", '{"format": 1}'])
def test_cache_whose_metadata_is_not_an_object_is_rebuilt(toy_tokenizer, tmp_path, meta):
    first = build_token_cache(STORIES, toy_tokenizer, tmp_path, progress=False)
    expected = first.tokens.tolist()
    first.path.with_suffix(".json").write_text(meta, encoding="utf-8")
    rebuilt = build_token_cache(STORIES, toy_tokenizer, tmp_path, progress=False)
    assert not rebuilt.reused and rebuilt.tokens.tolist() == expected
    assert json.loads(first.path.with_suffix(".json").read_text())["n_tokens"] == len(expected)


def test_cache_reads_a_datasets_dataset_like_a_list(toy_tokenizer, tmp_path):
    import datasets

    from_list = build_token_cache(STORIES, toy_tokenizer, tmp_path / "a", progress=False)
    dataset = datasets.Dataset.from_dict({"text": STORIES})
    from_dataset = build_token_cache(dataset, toy_tokenizer, tmp_path / "b", progress=False)
    assert from_dataset.tokens.tolist() == from_list.tokens.tolist()
    assert from_dataset.meta["texts_sha256"] == from_list.meta["texts_sha256"]


def test_fingerprint_separates_texts_that_concatenate_alike():
    assert fingerprint_texts(["ab", "c"]).sha256 != fingerprint_texts(["a", "bc"]).sha256
    assert fingerprint_texts(["é"]).n_bytes == 2


def test_dtype_fits_the_vocabulary():
    assert token_dtype(50257) == np.uint16
    assert token_dtype(65536) == np.uint16  # ids 0..65535
    assert token_dtype(65537) == np.uint32
    with pytest.raises(ValueError, match="vocab_size"):
        token_dtype(0)


def test_random_windows_are_shifted_pairs_of_int64_on_the_device():
    tokens = np.arange(1000, dtype=np.uint16)  # token value == its position
    x, y = next(RandomWindows(tokens, batch_size=8, seq_len=16, seed=3))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # y is x shifted by one token
    assert torch.equal(x - x[:, :1], torch.arange(16).expand(8, 16))  # contiguous windows
    assert int(y.max()) <= 999
    meta_x, _ = next(RandomWindows(tokens, 2, 4, device="meta"))
    assert meta_x.device.type == "meta"


def test_random_windows_reach_both_ends():
    tokens = np.arange(20, dtype=np.uint16)
    starts = set()
    for x, _ in _take(RandomWindows(tokens, 16, 4), 20):
        starts.update(x[:, 0].tolist())
    assert starts == set(range(16))  # every start 0..N-T-1 occurs, none beyond


def _take(sampler, n):
    return [next(sampler) for _ in range(n)]


def test_random_windows_depend_on_seed_only_not_on_global_rng():
    tokens = np.arange(10_000, dtype=np.uint16)
    torch.manual_seed(0)
    np.random.seed(0)
    first = _take(RandomWindows(tokens, 4, 8, seed=7), 3)
    torch.manual_seed(123)
    np.random.seed(123)
    global_state = (torch.random.get_rng_state(), np.random.get_state()[1].copy())
    second = _take(RandomWindows(tokens, 4, 8, seed=7), 3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))
    assert torch.equal(torch.random.get_rng_state(), global_state[0])
    assert np.array_equal(np.random.get_state()[1], global_state[1])
    other = _take(RandomWindows(tokens, 4, 8, seed=8), 3)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_sampler_resumes_exactly_from_its_state_dict():
    tokens = np.arange(10_000, dtype=np.uint16)
    sampler = RandomWindows(tokens, 4, 8, seed=11)
    _take(sampler, 5)
    state = sampler.state_dict()
    expected = _take(sampler, 3)
    resumed = RandomWindows(tokens, 4, 8, seed=0)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    assert all(torch.equal(a[0], b[0]) for a, b in zip(expected, _take(resumed, 3), strict=True))
    with pytest.raises(ValueError, match="seq_len"):
        RandomWindows(tokens, 4, 16).load_state_dict(state)


def test_sampler_refuses_text_shorter_than_a_window():
    with pytest.raises(ValueError, match="seq_len"):
        RandomWindows(np.arange(8), batch_size=2, seq_len=8)
    with pytest.raises(ValueError, match="batch_size"):
        RandomWindows(np.arange(100), batch_size=0, seq_len=8)


@pytest.mark.parametrize(
    ("n_tokens", "seq_len", "batch_size"),
    [(2, 4, 3), (33, 8, 2), (41, 8, 3), (100, 7, 4), (64, 64, 1)],
)
def test_sequential_windows_predict_every_token_exactly_once(n_tokens, seq_len, batch_size):
    tokens = np.arange(n_tokens, dtype=np.uint16) + 5
    windows = SequentialWindows(tokens, batch_size, seq_len, pad_id=0)
    batches = list(windows)
    assert len(batches) == len(windows)
    xs = torch.cat([x for x, _ in batches])  # (windows, T)
    ys = torch.cat([y for _, y in batches])  # (windows, T)
    assert xs.shape[1] == ys.shape[1] == seq_len and all(
        x.shape[0] <= batch_size for x, _ in batches
    )
    valid = ys != IGNORE_INDEX
    assert ys[valid].tolist() == tokens[1:].tolist()  # every target once, in order
    assert xs[valid].tolist() == tokens[:-1].tolist()  # each with its own previous token
    assert int(valid.sum()) == windows.n_targets == n_tokens - 1
    assert bool((xs[~valid] == 0).all())


def test_bits_per_byte_formula():
    assert bits_per_byte(math.log(2), n_tokens=10, n_bytes=10) == pytest.approx(1.0)
    # a uniform guess over 256 byte-sized tokens costs exactly 8 bits per byte
    assert bits_per_byte(math.log(256), n_tokens=1000, n_bytes=1000) == pytest.approx(8.0)
    # the same total information over 4x fewer tokens (4 bytes each) is the same bpb
    assert bits_per_byte(4 * 1.5, 250, 1000) == pytest.approx(bits_per_byte(1.5, 1000, 1000))
    with pytest.raises(ValueError, match="n_bytes"):
        bits_per_byte(1.0, 10, 0)
    with pytest.raises(ValueError, match="finite"):
        bits_per_byte(float("nan"), 10, 10)


def test_full_evaluation_pass_gives_bits_per_byte_of_a_uniform_model(toy_tokenizer, tmp_path):
    cache = build_token_cache(STORIES, toy_tokenizer, tmp_path, progress=False)
    vocab = toy_tokenizer.vocab_size
    total_loss, n_targets = 0.0, 0
    for x, y in SequentialWindows(cache.tokens, batch_size=4, seq_len=32):
        logits = torch.zeros(*x.shape, vocab)  # (B, T, V): a uniform model
        total_loss += F.cross_entropy(logits.view(-1, vocab), y.view(-1), reduction="sum").item()
        n_targets += int((y != IGNORE_INDEX).sum())
    assert n_targets == cache.n_targets
    bpb = cache.bits_per_byte(total_loss / n_targets)
    assert bpb == pytest.approx(math.log2(vocab) * cache.n_targets / cache.n_bytes)


@pytest.mark.skipif(not REAL_DATA, reason="TINYSTORIES_PATH is unset: no local TinyStories sample")
def test_real_validation_cache_decodes_back_to_the_stories(tmp_path):
    from transformer_lib.data import load_stories

    stories = list(load_stories("validation", limit=200)["text"])
    tokenizer = train_tokenizer(stories, 1024, name="real")
    cache = cache_split("validation", tokenizer, limit=200, cache_dir=tmp_path, progress=False)
    assert cache.meta["source"].startswith("local:") and "validation.txt" in cache.meta["source"]
    tokens = np.asarray(cache.tokens)
    boundaries = np.flatnonzero(tokens == tokenizer.eot_id)
    assert len(boundaries) == len(stories) + 1
    decoded = [
        tokenizer.decode(tokens[a + 1 : b])
        for a, b in zip(boundaries[:-1], boundaries[1:], strict=True)
    ]
    assert decoded == stories
    assert cache_split(
        "validation", tokenizer, limit=200, cache_dir=tmp_path, progress=False
    ).reused


def test_random_rows_draw_whole_rows_with_their_weights_and_resume_exactly():
    rows = np.arange(30 * 9).reshape(30, 9)  # row r holds 9r .. 9r + 8
    weights = (rows % 3).astype(np.float32) + 1.0
    sampler = RandomRows(rows, batch_size=6, weights=weights, seed=4)
    batch = sampler.windows_at(5)
    assert batch.shape == (6, 9) and batch.dtype == np.int64
    picked = batch[:, 0] // 9
    np.testing.assert_array_equal(batch, rows[picked])  # whole rows
    np.testing.assert_array_equal(sampler.weights_at(5), weights[picked, 1:])  # the same rows
    np.testing.assert_array_equal(batch, RandomRows(rows, 6, seed=4).windows_at(5))  # by seed
    assert not np.array_equal(batch, sampler.windows_at(6))
    assert RandomRows(rows, 6).weights_at(0) is None
    reached = set()
    for step in range(40):
        reached.update((sampler.windows_at(step)[:, 0] // 9).tolist())
    assert reached == set(range(30))

    sampler.step = 11
    resumed = RandomRows(rows, 6, weights=weights)
    resumed.load_state_dict(sampler.state_dict())
    assert resumed.step == 11 and resumed.seed == 4
    with pytest.raises(ValueError, match="n_rows"):
        RandomRows(rows[:20], 6).load_state_dict(sampler.state_dict())
    with pytest.raises(ValueError, match="N, seq_len"):
        RandomRows(rows[0], 6)
    with pytest.raises(ValueError, match="shape"):
        RandomRows(rows, 6, weights=weights[:, :4])
