"""Checks for the exercises of chapter 7 (training inside the notebook)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...data.tokens import SequentialWindows
from .. import check


def exercise_1(epochs, config, n_targets: int) -> None:
    """Passes over the training cache in a run of ``config`` (n_targets predictions in it)."""
    expected = config.max_steps * config.batch_size * config.seq_len / n_targets
    check("exercise 1", epochs, lambda answer: math.isclose(float(answer), expected, rel_tol=1e-6),
          hint="count the tokens the run predicts (per step, then in all), and divide by the "
               "number of predictions the cache holds")


def exercise_2(uniform_bpb, vocab_size: int, n_targets: int, n_bytes: int) -> None:
    """Bits per byte of the uniform guess over vocab_size ids."""
    expected = math.log2(vocab_size) * n_targets / n_bytes
    check("exercise 2", uniform_bpb,
          lambda answer: math.isclose(float(answer), expected, rel_tol=1e-6),
          hint="first the cost of one uniform guess in bits, then the total over every "
               "prediction, spread over the bytes of the text")


def _first_batch_is_right(answer, tokens: np.ndarray) -> bool:
    eval_x, eval_y = answer
    expected_x, expected_y = next(iter(SequentialWindows(tokens, 4, 16)))
    return (isinstance(eval_x, torch.Tensor) and isinstance(eval_y, torch.Tensor)
            and eval_x.shape == eval_y.shape == (4, 16) and eval_x.dtype == torch.int64
            and torch.equal(eval_x, expected_x) and torch.equal(eval_y, expected_y))


def exercise_3(first_eval_batch, tokens: np.ndarray) -> None:
    """(eval_x, eval_y): the first 4 non-overlapping windows of 16 tokens and their targets."""
    check("exercise 3", first_eval_batch, lambda answer: _first_batch_is_right(answer, tokens),
          hint="window i covers 16 tokens starting at 16 * i, so consecutive windows touch but "
               "do not overlap; the targets are the same slices moved one token on, and the "
               "ids must become int64 tensors")


def _mask_experiment_is_right(last_losses) -> bool:
    causal, no_mask = float(last_losses["causal"]), float(last_losses["no mask"])
    return (math.isfinite(causal) and math.isfinite(no_mask) and 0 < no_mask
            and no_mask < causal - 0.5)


def exercise_4(last_losses) -> None:
    """Mean training loss of the last 10 of 150 steps, with and without the causal mask."""
    check("exercise 4", last_losses, _mask_experiment_is_right,
          hint="a dict with keys 'causal' and 'no mask'; both models must start from the same "
               "seed and see the same batches, and only the attention of the second may look "
               "at later positions")
