"""Checks for the exercises of chapter 5 (the SwiGLU feed-forward)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...model.config import ModelConfig
from ...model.swiglu import SwiGLU
from .. import check, function_answer


def exercise_1(width_and_parameters) -> None:
    """(hidden width, parameters) of the SwiGLU of a d_model = 512 model (ModelConfig's rule)."""
    hidden = ModelConfig(d_model=512, num_heads=8).ffn_hidden_dim
    expected = (hidden, sum(p.numel() for p in SwiGLU(512, hidden).parameters()))
    check("exercise 1", width_and_parameters,
          lambda answer: tuple(int(a) for a in answer) == expected,
          hint="give a pair (hidden width, parameters); 8 * 512 / 3 is not a whole number: cut "
               "it to an int first, then round up to a multiple of 64, and count the weights "
               "of all three matrices")


def _silu_derivative_is_right(silu_derivative) -> bool:
    grid = torch.linspace(-8, 8, 801, dtype=torch.float64)
    x = grid.clone().requires_grad_(True)
    F.silu(x).sum().backward()
    got = silu_derivative(grid.clone())
    return got.shape == grid.shape and torch.allclose(got.double(), x.grad, atol=1e-9)


def exercise_2(silu_derivative) -> None:
    """silu_derivative(x): the derivative of x * sigmoid(x), element-wise."""
    check("exercise 2", function_answer(silu_derivative, torch.zeros(3, dtype=torch.float64)),
          _silu_derivative_is_right,
          hint="apply the product rule to x times sigma(x), use sigma' = sigma (1 - sigma), "
               "and return a tensor of the input's shape")


def _geglu_is_right(geglu) -> bool:
    with torch.random.fork_rng(devices=[]):  # seeded weights; the reader's stream untouched
        torch.manual_seed(5)
        ffn = SwiGLU(12, 20)
        x = torch.randn(3, 4, 12)  # (B, T, C)
    gate = F.gelu(x @ ffn.gate_proj.weight.T)  # (B, T, h)
    expected = (gate * (x @ ffn.up_proj.weight.T)) @ ffn.down_proj.weight.T  # (B, T, C)
    with torch.no_grad():
        got = geglu(x.clone(), ffn)
    return got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)


def exercise_3(geglu) -> None:
    """geglu(x, ffn): GEGLU with the weights of a SwiGLU module."""
    with torch.random.fork_rng(devices=[]):
        probe = SwiGLU(4, 8)
    check("exercise 3", function_answer(geglu, torch.zeros(1, 4), probe), _geglu_is_right,
          hint="start from SwiGLU's formula and change one thing only; use the module's "
               "gate_proj, up_proj and down_proj weights (or call the layers themselves)")


def exercise_4(bilinear_losses, swiglu_losses) -> None:
    """Training losses of a SwiGLU without the SiLU on its gate, against SwiGLU's."""

    def is_right(losses) -> bool:
        losses = [float(loss) for loss in losses]
        if len(losses) != len(swiglu_losses):
            return False
        final, reference = sum(losses[-50:]) / 50, sum(swiglu_losses[-50:]) / 50
        return 0 <= final < 0.5 * reference

    check("exercise 4", bilinear_losses, is_right,
          hint="give the list of per-step losses that the chapter's train() returns for your "
               "feed-forward: same width (43), same steps, float64; the gate keeps its "
               "projection but loses its activation, (W_gate x) * (W_up x)")
