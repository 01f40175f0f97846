"""Checks for the exercises of chapter 2 (embeddings, LayerNorm and RMSNorm)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...model.config import ModelConfig
from ...model.rmsnorm import RMSNorm
from .. import check, is_placeholder


def _close(answer, expected: torch.Tensor, atol: float) -> bool:
    answer = torch.as_tensor(answer, dtype=torch.float32)
    return answer.shape == expected.shape and torch.allclose(answer, expected, atol=atol)


def exercise_1(rms_norm_of_3_4) -> None:
    """RMSNorm (gain 1) of [3, 4], to three decimals."""
    with torch.no_grad():
        expected = RMSNorm(2)(torch.tensor([3.0, 4.0]))
    check("exercise 1", rms_norm_of_3_4, lambda answer: _close(answer, expected, 1.5e-3),
          hint="square the entries, average the squares, take the square root: that is the "
               "RMS; then divide each entry by it")


def exercise_2(rms_norm_parameters, layer_norm_parameters) -> None:
    """Parameters of the tiny preset's norms, as RMSNorms and as LayerNorms."""
    config = ModelConfig.from_preset("tiny")
    norms = (2 * config.num_layers + 1) * config.d_model  # two per block, one before lm_head
    answer = (None if is_placeholder(rms_norm_parameters) or is_placeholder(layer_norm_parameters)
              else (rms_norm_parameters, layer_norm_parameters))
    check("exercise 2", answer, lambda a: a[0] == norms and a[1] == 2 * norms,
          hint="count the norms first; each RMSNorm learns one gain per feature, and a "
               "LayerNorm learns a second vector of the same width")


def exercise_3(rms_norm_shift_change, layer_norm_shift_change) -> None:
    """How much each norm's output moves when every feature of its input is shifted by +5."""
    answer = (None if is_placeholder(rms_norm_shift_change)
              or is_placeholder(layer_norm_shift_change)
              else (float(rms_norm_shift_change), float(layer_norm_shift_change)))
    check("exercise 3", answer, lambda a: a[0] > 0.1 and 0 <= a[1] < 1e-3,
          hint="apply each norm to x and to x + 5 and take the largest absolute difference of "
               "the two outputs; one norm removes the mean before anything else")


def exercise_4(scaled_init_final_rms) -> None:
    """RMS of the unnormalised random stack after 24 layers with branches scaled by
    1/sqrt(2 * 24)."""
    check("exercise 4", scaled_init_final_rms,
          lambda answer: 1.0 < float(answer) < 2.0 and math.isfinite(float(answer)),
          hint="keep x <- x + W x without any norm, but divide each random W by sqrt(2 * 24) "
               "on top of its 1/sqrt(width), then read the RMS after the last layer")


def exercise_5(rms_norm_of_constant, layer_norm_of_constant) -> None:
    """RMSNorm and LayerNorm (gain 1, no bias) of the constant vector [-2, -2, -2, -2]."""
    constant = torch.full((4,), -2.0)
    with torch.no_grad():
        rms_expected = RMSNorm(4)(constant)
    layer_expected = F.layer_norm(constant, (4,))
    answer = (None if is_placeholder(rms_norm_of_constant) or is_placeholder(layer_norm_of_constant)
              else (rms_norm_of_constant, layer_norm_of_constant))
    check("exercise 5", answer,
          lambda a: _close(a[0], rms_expected, 1e-3) and _close(a[1], layer_expected, 1e-3),
          hint="what is left of the vector once LayerNorm has subtracted its mean? And what is "
               "the root mean square of four entries that all equal -2?")
