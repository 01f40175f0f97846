"""Checks for the exercises of chapter 3 (rotary position embeddings)."""

from __future__ import annotations

import math

import torch

from ...model.rope import apply_rope, rope_frequencies, rope_tables
from .. import check, function_answer


def exercise_1(wavelength) -> None:
    """Pair 8 of a 64-dimensional head with base 10,000: tokens per full turn."""
    expected = 2 * math.pi / float(rope_frequencies(64, 10000.0)[8])
    check("exercise 1", wavelength, lambda answer: math.isclose(float(answer), expected,
                                                                rel_tol=1e-4),
          hint="a wavelength is 2*pi divided by the pair's speed; write the exponent 2i/D as a "
               "fraction first, it simplifies nicely")


def _rotated(vector: torch.Tensor, position: int, head_dim: int) -> torch.Tensor:
    """A (D,) vector rotated by RoPE for one position (base 10,000)."""
    cos, sin = rope_tables(head_dim, position + 1)
    return apply_rope(vector.view(1, 1, 1, -1), cos[position:], sin[position:]).view(-1)


def _relative_score_is_right(relative_score) -> bool:
    generator = torch.Generator().manual_seed(3)
    for head_dim, query_at, offset in ((64, 5, 7), (16, 40, 0), (32, 11, 90)):
        query = torch.randn(head_dim, generator=generator)
        key = torch.randn(head_dim, generator=generator)
        expected = float(_rotated(query, query_at, head_dim)
                         @ _rotated(key, query_at + offset, head_dim))
        got = relative_score(query.clone(), key.clone(), offset)
        if got is None or not math.isclose(float(got), expected, rel_tol=1e-4, abs_tol=1e-4):
            return False
    return True


def exercise_2(relative_score) -> None:
    """relative_score(query, key, offset): the RoPE score from the offset alone."""
    check("exercise 2", function_answer(relative_score, torch.ones(8), torch.ones(8), 1),
          _relative_score_is_right,
          hint="the score of a query at m and a key at n depends on n - m only, so you may put "
               "the query wherever is most convenient and rotate just one of the two vectors")


def _turning_pairs_is_right(turning_pairs) -> bool:
    for head_dim, base, context in ((64, 10000.0, 512), (32, 10000.0, 256),
                                    (32, 500000.0, 256), (128, 10000.0, 4096), (8, 10.0, 7)):
        wavelengths = 2 * math.pi / rope_frequencies(head_dim, base).double()
        expected = [i for i, wavelength in enumerate(wavelengths.tolist())
                    if wavelength <= context]
        got = turning_pairs(head_dim, base, context)
        if got is None or [int(i) for i in got] != expected:
            return False
    return True


def exercise_3(turning_pairs) -> None:
    """turning_pairs(head_dim, base, context_length): pairs that turn fully within the context."""
    check("exercise 3", function_answer(turning_pairs, 8, 10000.0, 16),
          _turning_pairs_is_right,
          hint="compare each pair's wavelength (tokens per full turn) with the context length; "
               "return the pair indices in increasing order, as plain ints")


def _theta_losses_are_right(losses) -> bool:
    trained, other = float(losses[10000.0]), float(losses[500000.0])
    # Cross-entropy in nats per token of a 2,048-token vocabulary: between 0 and a few times
    # ln(2048); the weights were trained with base 10,000, so another base must do worse.
    return 0 < trained < math.log(2048) and trained < other < 5 * math.log(2048)


def exercise_4(losses) -> None:
    """{10000.0: loss, 500000.0: loss}: the stored model's validation loss under each base."""
    check("exercise 4", losses, _theta_losses_are_right,
          hint="give a dict with both bases as keys and the mean validation cross-entropy "
               "(nats per token) as values; build each model with the stored model's config, "
               "only rope_theta changed, and load the stored weights into it")
