"""RMSNorm: rescale each vector to unit root-mean-square, then apply a learned gain.

``rms_norm`` has a hand-written backward. Differentiating the textbook expression, autograd
runs about ten element-wise kernels per norm, most of them into a fresh full-size buffer; the
closed-form gradient below needs two such buffers. On a CPU, where every fresh buffer costs
page faults, that is measurable per step (``benchmarks/bench_custom_backward.py``; figures in
``benchmarks/RESULTS.md``). A second derivative (``create_graph=True``, ``torch.func``) takes an
out-of-place form of the same closed form, which autograd differentiates again. Under
``torch.compile`` the plain expression is used instead, because the compiler fuses it better than
any hand-written backward, and without autograd there is no backward to save buffers for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision inputs; float32 and float64 stay as they are."""
    return x if x.dtype == torch.float64 else x.float()


def _inverse_rms(x32: torch.Tensor, eps: float) -> torch.Tensor:
    """1 / sqrt(mean(x^2) + eps) over the last dimension, keepdim; x32 is float32 or wider."""
    # vector_norm reduces in one pass without materialising x**2.
    norm = torch.linalg.vector_norm(x32, dim=-1, keepdim=True)
    return norm.square_().div_(x32.shape[-1]).add_(eps).rsqrt_()


def _scale(weight: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
    """weight * normed, in place when ``normed`` is a fresh buffer of the result's dtype."""
    if normed.dtype == torch.result_type(weight, normed):
        return normed.mul_(weight)
    return weight * normed


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The textbook expression, differentiated by autograd; ``rms_norm`` equals it."""
    x32 = _upcast(x)
    normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


class _RMSNormFunction(torch.autograd.Function):
    """y = rms_norm(x) * weight; also returns the inverse RMS, kept for backward (not an output
    to differentiate). ``forward``/``setup_context`` are separate so torch.func can use it."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, eps: float):
        x32 = _upcast(x)
        inverse_rms = _inverse_rms(x32, eps)
        return _scale(weight, (x32 * inverse_rms).to(x.dtype)), inverse_rms

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, eps = inputs
        ctx.eps = eps
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(x, weight, output[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_inverse_rms: torch.Tensor | None):
        x, weight, inverse_rms = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True (or torch.func): a second derivative
            return (*_rms_norm_backward_differentiable(grad, x, weight, ctx.eps,
                                                       ctx.needs_input_grad[1]), None)
        # With n = x * r and r = (mean(x^2) + eps)^(-1/2), for y = w * n:
        #   dL/dx = r * (g*w - n * mean(g*w*n))      dL/dw = sum over tokens of g * n
        normed = _upcast(x) * inverse_rms
        grad_normed = _upcast(grad) * _upcast(weight)
        mean_dot = torch.linalg.vecdot(grad_normed, normed, dim=-1).unsqueeze(-1)
        mean_dot = mean_dot.div_(x.shape[-1])
        grad_x = grad_normed.addcmul_(normed, mean_dot, value=-1).mul_(inverse_rms)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            token_dims = tuple(range(grad.dim() - 1))
            grad_weight = normed.mul_(grad).sum(dim=token_dims).to(weight.dtype)
        return grad_x.to(x.dtype), grad_weight, None


def _rms_norm_backward_differentiable(grad, x, weight, eps, needs_weight_grad):
    """The closed-form gradient of the backward above, out of place and from x itself (the saved
    inverse RMS carries no history), so autograd can differentiate it again."""
    x32 = _upcast(x)
    inverse_rms = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    normed = x32 * inverse_rms
    grad_normed = _upcast(grad) * _upcast(weight)
    mean_dot = (grad_normed * normed).mean(dim=-1, keepdim=True)
    grad_x = (grad_normed - normed * mean_dot) * inverse_rms
    grad_weight = None
    if needs_weight_grad:
        grad_weight = (_upcast(grad) * normed).sum(dim=tuple(range(grad.dim() - 1)))
        grad_weight = grad_weight.to(weight.dtype)
    return grad_x.to(x.dtype), grad_weight


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """y = x / sqrt(mean(x^2) + eps) * weight, computed in float32 for stability under autocast.

    Training (autograd recording) takes the hand-written backward. Inference takes PyTorch's
    ``F.rms_norm`` where it computes the same expression (input and gain of one full-precision
    dtype), and the reference otherwise; with nothing saved for backward they are as fast.
    """
    recording = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if recording and not torch.compiler.is_compiling():
        return _RMSNormFunction.apply(x, weight, eps)[0]
    if x.dtype == weight.dtype and x.dtype in (torch.float32, torch.float64):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return rms_norm_reference(x, weight, eps)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich, 2019): no mean subtraction, no bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
