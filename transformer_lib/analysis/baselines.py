"""What a bits-per-byte figure means: the baselines a language model has to beat.

Every function scores the same texts the way :func:`~.interpret.score_texts` scores a model:
each text is read as ``[start_id] + tokenizer.encode(text)``, every token of the text is
predicted once, and the total is divided by the UTF-8 bytes of the texts themselves. So the
numbers line up with a trained model's on the same stories.

- :func:`uniform_score`: every id equally likely (what an untrained model knows).
- :class:`NgramModel`: unigram and bigram counts from training tokens, Witten-Bell smoothed
  (a bigram falls back on the unigram in proportion to how many different tokens followed its
  context), so no token of the validation text has probability zero.
- :func:`compressed_bits_per_byte`: a general-purpose compressor's size for the same texts.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
from collections.abc import Sequence

import numpy as np

from .interpret import TextScore

COMPRESSORS = ("gzip", "bz2", "xz")


def _token_lists(tokenizer, texts: Sequence[str], start_id: int) -> list[list[int]]:
    return [[start_id] + list(tokenizer.encode(text)) for text in texts]


def _score(nll_nats: float, lists: list[list[int]], texts: Sequence[str]) -> TextScore:
    return TextScore(nll_nats=float(nll_nats),
                     num_bytes=sum(len(text.encode("utf-8")) for text in texts),
                     num_tokens=sum(len(ids) - 1 for ids in lists), num_texts=len(texts),
                     num_split=0)


def uniform_score(tokenizer, texts: Sequence[str], *, start_id: int) -> TextScore:
    """Every id of the vocabulary equally likely: ln(V) nats per token."""
    lists = _token_lists(tokenizer, texts, start_id)
    return _score(sum(len(ids) - 1 for ids in lists) * math.log(tokenizer.vocab_size), lists,
                  texts)


class NgramModel:
    """Unigram (``order=1``) or bigram (``order=2``) next-token probabilities from counts.

    The unigram is add-one smoothed over the vocabulary. The bigram interpolates, Witten-Bell
    style: P(b | a) = (c(a, b) + T(a) P(b)) / (c(a) + T(a)), with T(a) the number of different
    tokens seen after a. A context seen often with few followers trusts its counts; a rare or
    varied one leans on the unigram. There is nothing to tune.
    """

    def __init__(self, tokens, vocab_size: int, order: int = 2):
        if order not in (1, 2):
            raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order}")
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or len(tokens) < 2:
            raise ValueError("tokens must be a 1-D sequence of at least two ids")
        if tokens.min() < 0 or tokens.max() >= vocab_size:
            raise ValueError(f"token ids must lie in [0, {vocab_size}); got "
                             f"[{tokens.min()}, {tokens.max()}]")
        self.order, self.vocab_size = order, vocab_size
        counts = np.bincount(tokens, minlength=vocab_size).astype(np.float64)
        self.unigram = (counts + 1.0) / (counts.sum() + vocab_size)  # (V,)
        if order == 2:
            # Only the pairs that occur, sorted by their code a * V + b: a dense (V, V) table
            # would take gigabytes for a 32K or 50K vocabulary.
            codes, counts = np.unique(tokens[:-1] * vocab_size + tokens[1:], return_counts=True)
            self.pair_codes, self.pair_counts = codes, counts.astype(np.float64)  # (P,) each
            contexts = codes // vocab_size
            self.context_counts = np.bincount(contexts, weights=self.pair_counts,
                                              minlength=vocab_size)  # c(a), (V,)
            self.followers = np.bincount(contexts, minlength=vocab_size).astype(np.float64)

    def log_probs(self, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
        """ln P(following | previous) for arrays of ids of equal shape."""
        if self.order == 1:
            return np.log(self.unigram[following])
        seen, kinds = self.context_counts[previous], self.followers[previous]
        numerator = self._pair_counts(previous, following) + kinds * self.unigram[following]
        denominator = seen + kinds
        # a context never seen in training (c = T = 0) falls back on the unigram entirely
        probs = np.where(denominator > 0, numerator / np.maximum(denominator, 1.0),
                         self.unigram[following])
        return np.log(probs)

    def _pair_counts(self, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
        """c(previous, following) for arrays of ids of equal shape (0 for pairs never seen)."""
        query = np.asarray(previous, dtype=np.int64) * self.vocab_size + following
        at = np.minimum(np.searchsorted(self.pair_codes, query), len(self.pair_codes) - 1)
        return np.where(self.pair_codes[at] == query, self.pair_counts[at], 0.0)

    def score(self, tokenizer, texts: Sequence[str], *, start_id: int) -> TextScore:
        """The total loss on ``texts``, counted as :func:`~.interpret.score_texts` counts it."""
        lists = _token_lists(tokenizer, texts, start_id)
        previous = np.concatenate([np.asarray(ids[:-1], dtype=np.int64) for ids in lists])
        following = np.concatenate([np.asarray(ids[1:], dtype=np.int64) for ids in lists])
        return _score(-self.log_probs(previous, following).sum(), lists, texts)


def compressed_bits_per_byte(texts: Sequence[str], method: str) -> float:
    """Bits per byte of the texts, joined by newlines, compressed whole by ``method``.

    ``gzip`` and ``xz`` at their strongest settings (``-9`` and ``-9e``), ``bz2`` with 900 KB
    blocks. The newlines between texts are counted in the bytes (one per text, under 0.2% of a
    story), and the container's header in the compressed size, as a file on disk would.
    """
    data = "\n".join(texts).encode("utf-8")
    if not data:
        raise ValueError("no text to compress")
    if method == "gzip":
        packed = gzip.compress(data, compresslevel=9, mtime=0)
    elif method == "bz2":
        packed = bz2.compress(data, compresslevel=9)
    elif method == "xz":
        packed = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    else:
        raise ValueError(f"unknown compressor {method!r}; choose one of {COMPRESSORS}")
    return 8 * len(packed) / len(data)
