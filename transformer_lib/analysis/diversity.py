"""How varied a model's generated text is, and how likely the model finds it.

- :func:`distinct_n` (Li et al., 2016): distinct n-grams over all n-grams, pooled over a set of
  generations. Low when the texts repeat themselves or each other.
- :func:`repeated_ngram_rate`: the fraction of n-grams that already occurred earlier *in the
  same* text (chapter 8's measure of greedy loops), pooled over the texts.
- :func:`continuation_bits_per_byte`: the model's own surprise at a continuation, in bits per
  UTF-8 byte; decoders that pick likely tokens score low, which is not the same as reading well.

All work on token ids (any sequences of hashable items); n-grams never cross two texts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from ..data.tokens import nats_to_bits
from ..model.transformer import Transformer, eval_mode


def _ngrams(text: Sequence, n: int) -> list[tuple]:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer (1 for single tokens)")
    return [tuple(text[i:i + n]) for i in range(len(text) - n + 1)]


def _as_list(texts: Iterable[Sequence]) -> list[Sequence]:
    if isinstance(texts, torch.Tensor):
        texts = texts.tolist() if texts.dim() == 2 else [texts.tolist()]
    texts = list(texts)
    if texts and not isinstance(texts[0], (list, tuple, str, torch.Tensor)):
        raise TypeError("give a list of texts (each a sequence of token ids), not one flat "
                        "sequence: wrap a single text as [ids]")
    return [t.tolist() if isinstance(t, torch.Tensor) else t for t in texts]


def distinct_n(texts: Iterable[Sequence], n: int) -> float:
    """Distinct n-grams / n-grams, over all ``texts`` together; NaN when none has n items."""
    grams = [gram for text in _as_list(texts) for gram in _ngrams(text, n)]
    return len(set(grams)) / len(grams) if grams else math.nan


def repeated_ngram_rate(texts: Iterable[Sequence], n: int) -> float:
    """Fraction of n-grams equal to an earlier n-gram of the same text, over all ``texts``."""
    repeats = total = 0
    for text in _as_list(texts):
        seen: set[tuple] = set()
        for gram in _ngrams(text, n):
            repeats += gram in seen
            seen.add(gram)
            total += 1
    return repeats / total if total else math.nan


@torch.no_grad()
def continuation_bits_per_byte(model: Transformer, prompt: Sequence[int],
                               continuation: Sequence[int], byte_lengths) -> tuple[float, int]:
    """(bits, bytes) of ``continuation`` after ``prompt`` under ``model`` (no temperature, no
    filtering); ``byte_lengths[id]`` is the UTF-8 size of each token (0 for special tokens, see
    ``training.metrics.token_byte_lengths``). Sum both over texts, then divide, for a pooled
    bits per byte.
    """
    if len(prompt) == 0:
        raise ValueError("the prompt is empty: the first token needs something to follow")
    if len(continuation) == 0:
        return 0.0, 0
    device = model.embed_tokens.weight.device
    ids = torch.tensor([list(prompt) + list(continuation)], device=device)  # (1, T)
    with eval_mode(model):
        logits = model(ids[:, :-1])[0, len(prompt) - 1:]  # (len(continuation), V)
    targets = ids[0, len(prompt):]
    nats = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    size = int(sum(int(byte_lengths[t]) for t in continuation))
    return nats_to_bits(float(nats)), size
