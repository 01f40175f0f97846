"""The baselines of chapter 7's ladder: uniform, n-gram counts and compressors."""

import bz2
import gzip
import lzma
import math

import numpy as np
import pytest

from transformer_lib.analysis import baselines
from transformer_lib.data.tokenizer import train_tokenizer

TEXTS = [f"Once upon a time, {name} had a {thing}. {name} loved the {thing} very much."
         for name in ("Tom", "Lily", "Sam") for thing in ("ball", "cat", "kite", "boat")]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS * 5, 300)


def test_uniform_is_log_of_the_vocabulary_per_token(tokenizer):
    score = baselines.uniform_score(tokenizer, TEXTS, start_id=tokenizer.eot_id)
    tokens = sum(len(tokenizer.encode(t)) for t in TEXTS)
    assert score.num_tokens == tokens and score.num_bytes == sum(len(t.encode()) for t in TEXTS)
    assert score.bits_per_byte == pytest.approx(math.log2(300) * tokens / score.num_bytes)


def brute_force_bigram_nats(stream, tokenizer, texts, vocab):
    """Witten-Bell by the formula, one pair at a time with Python dicts."""
    counts = {t: stream.count(t) for t in range(vocab)}
    unigram = {t: (counts[t] + 1) / (len(stream) + vocab) for t in range(vocab)}
    pairs: dict = {}
    for a, b in zip(stream, stream[1:], strict=False):
        pairs[a, b] = pairs.get((a, b), 0) + 1
    total = 0.0
    for text in texts:
        ids = [tokenizer.eot_id, *tokenizer.encode(text)]
        for a, b in zip(ids, ids[1:], strict=False):
            seen = sum(c for (x, _), c in pairs.items() if x == a)
            kinds = sum(1 for (x, _) in pairs if x == a)
            p = ((pairs.get((a, b), 0) + kinds * unigram[b]) / (seen + kinds) if seen
                 else unigram[b])
            total -= math.log(p)
    return total


def test_bigram_matches_the_formula_and_beats_the_unigram(tokenizer):
    stream = []
    for text in TEXTS[:8]:  # train on some stories, score others: unseen pairs must be finite
        stream += [tokenizer.eot_id, *tokenizer.encode(text)]
    held_out = TEXTS[8:]
    bigram = baselines.NgramModel(stream, tokenizer.vocab_size, order=2)
    unigram = baselines.NgramModel(stream, tokenizer.vocab_size, order=1)
    expected = brute_force_bigram_nats(stream, tokenizer, held_out, tokenizer.vocab_size)
    got = bigram.score(tokenizer, held_out, start_id=tokenizer.eot_id)
    assert got.nll_nats == pytest.approx(expected, rel=1e-9)
    assert math.isfinite(got.nll_nats)
    uniform = baselines.uniform_score(tokenizer, held_out, start_id=tokenizer.eot_id)
    one = unigram.score(tokenizer, held_out, start_id=tokenizer.eot_id)
    assert got.bits_per_byte < one.bits_per_byte < uniform.bits_per_byte


def test_bigram_probabilities_sum_to_one_for_every_context():
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 7, size=200)
    stream[stream == 6] = 5  # id 6 never occurs: its row must still be a distribution
    model = baselines.NgramModel(stream, 7, order=2)
    previous = np.repeat(np.arange(7), 7)
    following = np.tile(np.arange(7), 7)
    probs = np.exp(model.log_probs(previous, following)).reshape(7, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_a_deterministic_sequence_costs_the_bigram_almost_nothing():
    stream = np.tile(np.arange(5), 400)  # 0 1 2 3 4 0 1 2 ...: each token fixes the next
    model = baselines.NgramModel(stream, 5, order=2)
    assert np.exp(model.log_probs(np.array([2]), np.array([3])))[0] > 0.99


def test_a_large_vocabulary_costs_the_bigram_only_the_pairs_it_sees():
    """A dense (V, V) table took over 1 GB for V = 8,192 (and 20 GB a table for GPT-2's)."""
    import tracemalloc

    stream = np.random.default_rng(0).integers(0, 8192, size=10_000)
    tracemalloc.start()
    try:
        model = baselines.NgramModel(stream, 8192, order=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # bytes
    assert np.exp(model.log_probs(stream[:1], stream[1:2]))[0] > 1 / 8192  # a seen pair


def test_compressors_agree_with_the_standard_library():
    data = "\n".join(TEXTS).encode()
    assert baselines.compressed_bits_per_byte(TEXTS, "gzip") == (
        8 * len(gzip.compress(data, compresslevel=9, mtime=0)) / len(data))
    assert baselines.compressed_bits_per_byte(TEXTS, "bz2") == 8 * len(bz2.compress(data)) / len(
        data)
    assert baselines.compressed_bits_per_byte(TEXTS, "xz") == 8 * len(
        lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) / len(data)
    long = TEXTS * 40  # repetitive text compresses far below 8 bits per byte
    assert all(baselines.compressed_bits_per_byte(long, m) < 1.0 for m in baselines.COMPRESSORS)


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown compressor 'zip'"):
        baselines.compressed_bits_per_byte(TEXTS, "zip")
    with pytest.raises(ValueError, match="no text"):
        baselines.compressed_bits_per_byte([""], "gzip")
    with pytest.raises(ValueError, match="order must be"):
        baselines.NgramModel([1, 2, 3], 5, order=3)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        baselines.NgramModel([1, 2, 9], 5)
