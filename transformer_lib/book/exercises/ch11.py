"""Checks for the exercises of chapter 11 (inside a trained model)."""

from __future__ import annotations

import math

import torch

from ...analysis import interpret
from .. import check


def _call(function, *args):
    """The reader's function applied to args: None for the placeholder, "raised" if it fails."""
    if not callable(function):
        return function  # a placeholder (None, ...) or a non-function: let check judge it
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - a failing answer is "not yet", not a crash
        return "raised"


def _random_causal_map(T: int, generator: torch.Generator) -> torch.Tensor:
    scores = torch.randn(T, T, generator=generator) * 3
    scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    return scores.softmax(-1)


def exercise_1(previous_token_score) -> None:
    """A function: one head's (T, T) causal attention map -> its previous-token score."""
    generator = torch.Generator().manual_seed(11)
    maps = [_random_causal_map(T, generator) for T in (2, 7, 30)]
    shifted = torch.zeros(6, 6)
    shifted[0, 0] = 1
    shifted[torch.arange(1, 6), torch.arange(0, 5)] = 1  # always one step back: score 1
    answer = _call(previous_token_score, maps[1])

    def is_right(_) -> bool:
        cases = [*maps, shifted]
        return all(math.isclose(float(previous_token_score(m.clone())),
                                float(interpret.previous_token_scores([m[None, None]])),
                                rel_tol=1e-5, abs_tol=1e-7) for m in cases)

    check("exercise 1", answer, is_right,
          hint="the weights on position i-1 form one diagonal of the map (torch.diagonal has an "
               "offset); which queries have a previous token at all?")


def exercise_2(bits_per_byte) -> None:
    """A function (total loss in nats, text) -> bits per byte of that text."""
    cases = [(10.0, "naïve café"), (1.0, "a"), (123.4, "Once upon a time 🙂")]
    answer = _call(bits_per_byte, *cases[0])

    def is_right(_) -> bool:
        return all(math.isclose(float(bits_per_byte(nats, text)),
                                nats / math.log(2) / len(text.encode("utf-8")), rel_tol=1e-9)
                   for nats, text in cases)

    check("exercise 2", answer, is_right,
          hint="two conversions: from nats to bits (a logarithm changes base by a constant "
               "factor), and from the text to the number of bytes a computer stores for it, "
               "which is not always its number of characters")


def exercise_3(settled_layer) -> None:
    """A function: (S, V) logits read off S residual streams at one position -> the first
    stream from which the top token is the final one and stays so."""
    cases = []
    final = torch.zeros(5)
    final[2] = 1.0
    other = torch.zeros(5)
    other[4] = 1.0
    cases.append((torch.stack([other, final, other, final, final]), 3))  # changes its mind
    cases.append((torch.stack([final, final, final]), 0))  # right from the embedding
    cases.append((torch.stack([other, other, other, final]), 3))  # only at the end
    generator = torch.Generator().manual_seed(3)
    noisy = torch.randn(6, 50, generator=generator)
    noisy[4:, 7] += 20  # the last two streams agree on id 7; with this seed no earlier one does
    cases.append((noisy, 4))
    answer = _call(settled_layer, cases[0][0])

    def is_right(_) -> bool:
        return all(int(settled_layer(logits.clone())) == expected for logits, expected in cases)

    check("exercise 3", answer, is_right,
          hint="find each stream's top id first; then walk back from the last stream while the "
               "top id still equals the final one (a stream that agrees by chance before a "
               "disagreement does not count)")


def exercise_4(losses) -> None:
    """The head-ablation experiment: {"baseline", "top3", "bottom3"} validation losses (nats)."""

    def is_right(answer) -> bool:
        baseline, top, bottom = (float(answer[key]) for key in ("baseline", "top3", "bottom3"))
        if not all(0.5 < value < 5 for value in (baseline, top, bottom)):
            return False  # not losses of this model on stories (nats per token)
        # The three costliest heads, removed together, cost well above the three cheapest.
        return top - baseline > 0.05 and top - baseline > 2 * (bottom - baseline)

    check("exercise 4", losses, is_right,
          hint="rank the heads by their single-ablation loss increase, take the three largest "
               "and the three smallest, and pass interpret.ablated_loss each list of (layer, "
               "head) pairs, on the same windows and mask as the single ablations")
