"""SwiGLU feed-forward (Shazeer, 2020): a SiLU-gated linear unit, as in Llama.

The gate silu(gate) * up has a hand-written backward for training: it keeps gate and up for
backward, not also silu(gate), and writes the gate gradient in place (fewer fresh buffers). A
second derivative (``create_graph=True``) takes the same formula out of place, which autograd
records.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); three bias-free projections named as in Hugging Face Llama."""

    def __init__(self, d_model: int, hidden_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden_dim, bias=False)
        self.up_proj = nn.Linear(d_model, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(silu_mul(self.gate_proj(x), self.up_proj(x)))


class _SiluMulFunction(torch.autograd.Function):
    """silu(gate) * up, keeping only gate and up for backward (autograd would also keep silu(gate))."""

    @staticmethod
    def forward(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return F.silu(gate).mul_(up)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate, up = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: out of place, so autograd records it
            sigmoid = torch.sigmoid(gate)
            return grad * up * sigmoid * (1 + gate * (1 - sigmoid)), grad * (gate * sigmoid)
        grad_up = F.silu(gate).mul_(grad)
        # silu_backward(g, x) = g * sigmoid(x) * (1 + x * (1 - sigmoid(x))), written in place.
        grad_gate = grad * up
        torch.ops.aten.silu_backward.grad_input(grad_gate, gate, grad_input=grad_gate)
        return grad_gate, grad_up


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """The SwiGLU gate silu(gate) * up; when autograd records, with a leaner backward."""
    recording = torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad)
    if (recording and gate.dtype == up.dtype and gate.shape == up.shape
            and not torch.compiler.is_compiling()):
        return _SiluMulFunction.apply(gate, up)
    return F.silu(gate) * up
