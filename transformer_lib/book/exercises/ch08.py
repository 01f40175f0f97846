"""Checks for the exercises of chapter 8 (generation: sampling and the KV cache)."""

from __future__ import annotations

import torch

from ...model.config import ModelConfig
from ...model.generation import filter_logits
from ...model.transformer import Transformer
from .. import check, function_answer


def _positions_seen(model: Transformer, prompt_len: int, new_tokens: int, use_cache: bool) -> int:
    """Token positions that enter the embedding layer while model.generate runs."""
    seen = []
    hook = model.embed_tokens.register_forward_hook(
        lambda _module, args, _output: seen.append(args[0].shape[1]))
    try:
        model.generate(list(range(1, prompt_len + 1)), new_tokens, temperature=0.0,
                       use_cache=use_cache)
    finally:
        hook.remove()
    return sum(seen)


def exercise_1(positions) -> None:
    """positions(P, N) -> (without cache, with cache): positions the model processes."""
    answer = function_answer(positions, 5, 3)

    def is_right(function) -> bool:
        with torch.random.fork_rng():  # a throwaway model: the reader's random stream is kept
            torch.manual_seed(0)
            model = Transformer(ModelConfig.from_preset("tiny", num_layers=1)).eval()
        return all(
            tuple(int(x) for x in function(p, n))
            == (_positions_seen(model, p, n, False), _positions_seen(model, p, n, True))
            for p, n in ((5, 3), (1, 1), (12, 7), (3, 20)))

    check("exercise 1", answer, is_right,
          hint="return a pair (without cache, with cache); write down what one decoding step "
               "feeds the model in each case, then add up the steps (the last new token needs "
               "no forward pass after it)")


def exercise_2(kept, logits: torch.Tensor) -> None:
    """(tokens kept by top-p 0.9 at temperature 1, at temperature 0.5) for these logits."""

    def survivors(temperature: float) -> int:
        return int(torch.isfinite(filter_logits(logits, temperature, None, 0.9)).sum())

    check("exercise 2", kept,
          lambda answer: tuple(int(a) for a in answer) == (survivors(1.0), survivors(0.5)),
          hint="give a pair of counts; top-p measures probabilities after the temperature, so "
               "divide the logits by it before the softmax, then count the tokens needed to "
               "reach 0.9")


def exercise_3(repetition) -> None:
    """{temperature: fraction of repeated 4-grams} for continuations of one prompt."""

    def is_right(fractions) -> bool:
        temperatures = sorted(float(t) for t in fractions)
        values = {float(t): float(f) for t, f in fractions.items()}
        return (len(temperatures) >= 3 and temperatures[0] == 0.0 and temperatures[-1] >= 1.0
                and all(0.0 <= f <= 1.0 for f in values.values())
                and values[0.0] > values[temperatures[-1]])

    check("exercise 3", repetition, is_right,
          hint="use at least three temperatures, from 0 (greedy) to 1 or more, a long "
               "continuation (a couple of hundred tokens) and the fraction of its 4-grams that "
               "already occurred earlier in it")
