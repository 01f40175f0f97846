"""merges_from_ranks reads back exactly the merges the Hugging Face trainer learned."""

import json
import warnings

import pytest

from transformer_lib.data.bpe import bpe_parts, merges_from_ranks
from transformer_lib.data.tokenizer import _bytes_to_unicode, hf_bpe_ranks, train_hf_bpe

CORPORA = [
    ["Once upon a time there was a little cat. The little cat liked to sit in the sun."] * 3,
    ["aaaa aaa aa aaaaaaa abab ababab baba", "naïve café 🙂 über Über 1234 12 123"],
]


def trainer_merges(texts, vocab_size):
    """The trainer's own merge list (from its JSON), as {(left id, right id): id}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = train_hf_bpe(texts, vocab_size)
    model = json.loads(hf.to_str())["model"]
    char_to_byte = {char: byte for byte, char in _bytes_to_unicode().items()}

    def spelled(token):
        return bytes(char_to_byte[char] for char in token)

    ranks = {spelled(token): i for token, i in model["vocab"].items()}
    merges = {}
    for entry in model["merges"]:
        left, right = entry if isinstance(entry, list) else entry.split(" ")
        left, right = spelled(left), spelled(right)
        merges[(ranks[left], ranks[right])] = ranks[left + right]
    return hf, merges


@pytest.mark.parametrize("texts", CORPORA)
def test_the_trainers_merges_are_read_back_in_order(texts):
    hf, expected = trainer_merges(texts, 256 + 60 + 1)
    recovered = merges_from_ranks(hf_bpe_ranks(hf))
    assert list(recovered.items()) == list(expected.items())
    assert list(recovered.values()) == list(range(256, 256 + len(expected)))


def test_bpe_parts_stops_below_the_rank():
    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257, b"bc": 258}
    assert bpe_parts(b"abc", ranks, below=257) == [b"ab", b"c"]
    assert bpe_parts(b"abc", ranks, below=300) == [b"abc"]
    assert merges_from_ranks(ranks) == {(97, 98): 256, (256, 99): 257, (98, 99): 258}


def test_a_table_no_merges_can_make_is_refused():
    ranks = {bytes([b]): b for b in range(256)} | {b"abc": 256}  # no "ab" or "bc" below it
    with pytest.raises(ValueError, match="not the merge of two tokens"):
        merges_from_ranks(ranks)
