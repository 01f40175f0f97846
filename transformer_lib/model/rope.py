"""Rotary position embeddings (Su et al., 2021) as pure functions over precomputed tables.

Pairing convention: **split halves**, as in Hugging Face's Llama. For a head of dimension D,
dimension i is paired with dimension i + D/2 (i < D/2), and pair i rotates by angle
``position * inv_freq[i]``. Meta's original Llama code and llama2.c pair *adjacent* dimensions
(2i, 2i+1) instead ("interleaved"). The two are the same rotation applied to permuted
coordinates, so weights convert by permuting the rows of the query and key projections:
see :func:`interleaved_to_halves` and :func:`halves_to_interleaved`.
"""

from __future__ import annotations

import torch


def rope_frequencies(head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Inverse frequencies theta^(-2i/D) for the D/2 rotation pairs, float32, shape (D/2,)."""
    if head_dim <= 0 or head_dim % 2:
        raise ValueError(f"head_dim={head_dim} must be a positive even number (RoPE rotates pairs)")
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    return 1.0 / (theta**exponents)


def rope_tables(
    head_dim: int, max_seq_len: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_seq_len, head_dim), laid out for the split-halves pairing."""
    positions = torch.arange(max_seq_len, dtype=torch.int64).float()
    angles = torch.outer(positions, rope_frequencies(head_dim, theta))  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D): pair i uses column i and i + D/2
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension: a 90 degree turn per pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The textbook expression x*cos + rotate_half(x)*sin; ``apply_rope`` equals it."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


def _rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (x1*cos - x2*sin, x2*cos + x1*sin) per pair, into one new buffer.

    cos/sin are (T, D/2): one column per pair. ``x * cos + rotate_half(x) * sin`` computes the
    same numbers through four full-size temporaries and a half-size one; this writes each output
    half once.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    out = torch.empty_like(x)
    out1, out2 = out[..., :half], out[..., half:]
    torch.mul(x1, cos, out=out1).addcmul_(x2, sin, value=-1)
    torch.mul(x2, cos, out=out2).addcmul_(x1, sin)
    return out


def _rotate_pairs_differentiable(x: torch.Tensor, cos: torch.Tensor,
                                 sin: torch.Tensor) -> torch.Tensor:
    """:func:`_rotate_pairs` out of place, so that autograd can record it (double backward)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class _RotateFunction(torch.autograd.Function):
    """A rotation's gradient is the opposite rotation, so backward needs only the tables."""

    @staticmethod
    def forward(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return _rotate_pairs(x, cos, sin)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, cos, sin = inputs
        ctx.save_for_backward(cos, sin)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cos, sin = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the inverse rotation, recorded
            return _rotate_pairs_differentiable(grad, cos, -sin), None, None
        return _rotate_pairs(grad, cos, -sin), None, None


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every pair of x (B, H, T, D) by its position's angle; cos/sin are (T, D).

    Equal to ``x * cos + rotate_half(x) * sin`` (:func:`apply_rope_reference`). When autograd
    records, it runs as one rotation whose backward is the inverse rotation, so no full-size
    intermediate is kept for backward. Without autograd, and under ``torch.compile`` (which fuses
    the expression into one kernel), the reference expression is used: it is as fast there.
    """
    if not (torch.is_grad_enabled() and x.requires_grad) or torch.compiler.is_compiling():
        return apply_rope_reference(x, cos, sin)
    half = x.shape[-1] // 2
    # Both halves of a table row hold the same angles (split-halves layout), so keep one.
    return _RotateFunction.apply(x, cos[..., :half].to(x.dtype), sin[..., :half].to(x.dtype))


def interleaved_to_halves(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Permute q/k projection rows from interleaved pairs (Meta) to split halves (Hugging Face).

    ``weight`` is (num_heads * D, d_in); within each head, rows (2i, 2i+1) move to (i, i + D/2).
    """
    out_dim, d_in = weight.shape
    head_dim = out_dim // num_heads
    # (H, D/2, 2, d_in) -> (H, 2, D/2, d_in): the even rows of each head first, then the odd ones.
    return (
        weight.view(num_heads, head_dim // 2, 2, d_in).transpose(1, 2).reshape(out_dim, d_in)
    )


def halves_to_interleaved(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Inverse of :func:`interleaved_to_halves`."""
    out_dim, d_in = weight.shape
    head_dim = out_dim // num_heads
    # (H, 2, D/2, d_in) -> (H, D/2, 2, d_in): interleave the two halves of each head again.
    return (
        weight.view(num_heads, 2, head_dim // 2, d_in).transpose(1, 2).reshape(out_dim, d_in)
    )


def apply_rope_interleaved(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Reference RoPE in the interleaved convention, with complex numbers (as Meta's code does).

    Used by tests and the book to show that the two conventions agree up to a permutation.
    """
    head_dim = x.shape[-1]
    angles = torch.outer(positions.float(), rope_frequencies(head_dim, theta))  # (T, D/2)
    rotations = torch.polar(torch.ones_like(angles), angles)  # (T, D/2) unit complex numbers
    # (..., T, D) -> (..., T, D/2, 2) -> complex (..., T, D/2)
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], head_dim // 2, 2).contiguous())
    rotated = torch.view_as_real(pairs * rotations)  # (..., T, D/2, 2)
    return rotated.flatten(-2).to(x.dtype)  # (..., T, D)
