"""Muon: momentum SGD whose update for each weight matrix is orthogonalised first.

For a matrix W with gradient G, Muon keeps a momentum average M of G and steps along
orthogonalise(M): M's singular vectors with every singular value pushed towards 1. A gradient
dominated by a few strong directions then moves the weak ones as much as the strong ones.
The orthogonalisation is Keller Jordan's quintic Newton-Schulz iteration, five steps of

    X <- a X + (b X X^T + c (X X^T)^2) X,   (a, b, c) = (3.4445, -4.775, 2.0315),

started from M / ||M||_F; it leaves the singular values between about 0.5 and 1.5 rather than at
exactly 1, which trains as well and costs a few matrix products.

The update rule is ``torch.optim.Muon``'s with ``adjust_lr_fn="match_rms_adamw"`` (the step is
scaled by 0.2 * sqrt(max(rows, cols)) so that AdamW's learning rate and weight decay carry over).
Two things differ, both for speed, neither in the mathematics:

- torch runs the iteration in bfloat16. A CPU without bfloat16 arithmetic (AVX2 machines, most
  AMD EPYC and older Intel parts) emulates it many times slower than float32; on the book's
  model that made a Muon step about two and a half times as long as an AdamW one.
  ``iteration_dtype`` chooses: bfloat16 where the hardware has it, float32 elsewhere (the
  default, ``None``, decides by device).
- Matrices of one shape are orthogonalised together, as one batch of matrix products.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import torch

from ..device import cpu_has_native_bf16

NEWTON_SCHULZ_COEFFICIENTS = (3.4445, -4.775, 2.0315)


def orthogonalise(updates: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """The Newton-Schulz orthogonalisation of a batch of matrices (N, rows, cols), in their dtype.

    Each matrix is normalised by its own Frobenius norm, which bounds its spectral norm by 1
    (where the iteration converges), and the iteration runs on the wide orientation (rows <= cols)
    so that the Gram matrices are the small ones.
    """
    if updates.dim() != 3:
        raise ValueError(f"orthogonalise takes a batch of matrices (N, rows, cols), got shape "
                         f"{tuple(updates.shape)}")
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    tall = updates.shape[1] > updates.shape[2]
    x = updates.mT if tall else updates  # (N, r, c) with r <= c
    x = x / x.norm(dim=(1, 2), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT  # (N, r, r)
        polynomial = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b G + c G^2
        x = torch.baddbmm(x, polynomial, x, beta=a)  # a X + (b G + c G^2) X
    return x.mT if tall else x


def default_iteration_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA and on a CPU with bfloat16 arithmetic in hardware; float32 elsewhere
    (other CPUs, and Apple MPS, where the library's precision policy is float32 too)."""
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters (see the module docstring): Nesterov momentum, orthogonalised
    update, decoupled weight decay, step scaled to AdamW's RMS."""

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-3,
                 weight_decay: float = 0.1, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, iteration_dtype: torch.dtype | None = None):
        if not lr >= 0 or not weight_decay >= 0 or not 0 <= momentum < 1:
            raise ValueError(f"Muon needs lr >= 0 (got {lr}), weight_decay >= 0 (got "
                             f"{weight_decay}) and momentum in [0, 1) (got {momentum})")
        if not 1 <= ns_steps < 100:
            raise ValueError(f"ns_steps={ns_steps}: give between 1 and 99 Newton-Schulz steps")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "momentum": momentum,
                                  "nesterov": nesterov, "ns_steps": ns_steps})
        # an attribute, not a group entry: checkpoints store groups, and the right dtype is the
        # machine's that resumes, not the one that saved
        self.iteration_dtype = iteration_dtype
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon takes weight matrices only; got a parameter of shape "
                                     f"{tuple(p.shape)} (give vectors and embeddings to AdamW)")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            buffers = []
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                buffers.append(self.state[p]["momentum_buffer"])
            momentum = group["momentum"]
            for m, g in zip(buffers, grads, strict=True):
                m.lerp_(g, 1 - momentum)  # M <- mu M + (1 - mu) G
            if group["nesterov"]:
                updates = [g.lerp(m, momentum) for g, m in zip(grads, buffers, strict=True)]
            else:
                updates = buffers
            by_shape: dict[tuple, list[int]] = defaultdict(list)
            for index, p in enumerate(params):
                by_shape[(tuple(p.shape), p.device)].append(index)
            for (shape, device), indices in by_shape.items():
                dtype = self.iteration_dtype or default_iteration_dtype(device)
                stacked = torch.stack([updates[i] for i in indices]).to(dtype)  # (N, rows, cols)
                directions = orthogonalise(stacked, group["ns_steps"])
                scaled_lr = group["lr"] * 0.2 * math.sqrt(max(shape))
                for i, direction in zip(indices, directions, strict=True):
                    params[i].mul_(1 - group["lr"] * group["weight_decay"])
                    params[i].add_(direction.to(params[i].dtype), alpha=-scaled_lr)
        return loss
