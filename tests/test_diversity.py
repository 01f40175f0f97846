"""distinct-n, the repeated-n-gram rate and a continuation's bits per byte."""

import math

import numpy as np
import pytest
import torch

from transformer_lib import ModelConfig, Transformer
from transformer_lib.analysis.diversity import (
    continuation_bits_per_byte,
    distinct_n,
    repeated_ngram_rate,
)


def test_distinct_n_counts_distinct_ngrams_over_all_texts():
    texts = [[1, 2, 3, 1, 2], [1, 2, 9]]
    # bigrams: (1,2) (2,3) (3,1) (1,2) | (1,2) (2,9): 4 distinct of 6
    assert distinct_n(texts, 2) == pytest.approx(4 / 6)
    assert distinct_n(texts, 1) == pytest.approx(4 / 8)
    assert distinct_n([[5, 6, 7, 8]], 3) == 1.0
    assert math.isnan(distinct_n([[1]], 2))


def test_repeated_rate_counts_repeats_within_a_text_only():
    # (1,2) repeats within the first text; the second text's (1,2) is new to it
    assert repeated_ngram_rate([[1, 2, 3, 1, 2], [1, 2, 9]], 2) == pytest.approx(1 / 6)
    loop = [4, 5, 6, 7] * 10
    assert repeated_ngram_rate([loop], 4) == pytest.approx((37 - 4) / 37)
    assert repeated_ngram_rate([list(range(30))], 4) == 0.0
    assert repeated_ngram_rate(torch.tensor([[1, 1, 1, 1]]), 1) == pytest.approx(3 / 4)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_n_is_refused(bad):
    with pytest.raises(ValueError, match="positive integer"):
        distinct_n([[1, 2]], bad)


def test_a_flat_sequence_is_refused():
    with pytest.raises(TypeError, match="list of texts"):
        repeated_ngram_rate([1, 2, 3], 2)


def test_continuation_bits_equal_the_summed_log_probabilities():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset("tiny")).eval()
    prompt, continuation = [5, 9, 2], [7, 7, 100, 3]
    byte_lengths = np.arange(512) % 4  # any sizes
    bits, size = continuation_bits_per_byte(model, prompt, continuation, byte_lengths)
    expected = 0.0
    for k, token in enumerate(continuation):  # one forward pass per token, independently
        with torch.no_grad():
            logits = model(torch.tensor([prompt + continuation[:k]]))[0, -1]
        expected -= torch.log_softmax(logits.double(), -1)[token].item() / math.log(2)
    assert bits == pytest.approx(expected, rel=1e-5)
    assert size == sum(int(byte_lengths[t]) for t in continuation)
    assert continuation_bits_per_byte(model, prompt, [], byte_lengths) == (0.0, 0)


def test_the_stored_decoding_table_has_every_method_and_sane_figures():
    """book_config/make_decoding_table.py's output, as shipped in the assets."""
    import json
    from pathlib import Path

    import transformer_lib

    path = Path(transformer_lib.__file__).parent / "assets" / "decoding" / "table.json"
    table = json.loads(path.read_text())["table"]
    assert set(table) == {"greedy", "sampling, T=0.8", "top-p 0.9", "min-p 0.1",
                          "beam search, 4 beams", "greedy, repetition penalty 1.2"}
    for row in table.values():
        assert 0 <= row["distinct_2"] <= 1 and 0 <= row["repeated_4gram_rate"] <= 1
        assert 0 < row["own_bits_per_byte"] < 8
    # what the table is for: the argmax decoders loop, the penalty and sampling do not
    assert table["greedy"]["repeated_4gram_rate"] > 5 * table["sampling, T=0.8"]["repeated_4gram_rate"]
    assert (table["greedy, repetition penalty 1.2"]["repeated_4gram_rate"]
            < table["greedy"]["repeated_4gram_rate"])
    assert table["beam search, 4 beams"]["own_bits_per_byte"] < table["greedy"]["own_bits_per_byte"]
