"""Checks for the exercises of chapter 3 (rotary position embeddings).

Exercises 1 and 2 run the reader's ``rope_tables(head_dim, max_seq_len, theta)`` and
``apply_rope(x, cos, sin)`` against :mod:`transformer_lib.model.rope` on random inputs (float32,
and bfloat16 for the rotation, which the library computes in the input's dtype; the rotation's
gradient too) and name the known mistake a wrong answer matches. Exercise 5 recomputes the
reader's two losses from the windows they hand back.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from ...model.rope import apply_rope, rope_frequencies, rope_tables, rotate_half
from .. import Part, check, check_parts, compare_function, function_answer
from ..checking import require_tensor

# ---- exercise 1: rope_tables -----------------------------------------------------------------

TABLE_CASES = ((8, 7, 10000.0), (16, 33, 10000.0), (64, 50, 500000.0), (2, 5, 10.0))


def _angles(head_dim: int, positions: torch.Tensor, exponents: torch.Tensor,
            theta: float) -> torch.Tensor:
    return torch.outer(positions.float(), theta ** -exponents.float())


def _halves(angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def _pairs(head_dim: int) -> torch.Tensor:
    return torch.arange(0, head_dim, 2) / head_dim  # 2i / D for the D/2 pairs


TABLE_MISTAKES = {
    "the speed of pair i is theta^(-2i/D), with i = 0 .. D/2-1: your exponent is i/D":
        lambda d, t, theta: _halves(_angles(d, torch.arange(t), torch.arange(d // 2) / d, theta)),
    "the speeds shrink with i: theta^(-2i/D), a negative exponent":
        lambda d, t, theta: _halves(_angles(d, torch.arange(t), -_pairs(d), theta)),
    "positions start at 0: the first row is angle 0 (cos 1, sin 0)":
        lambda d, t, theta: _halves(_angles(d, torch.arange(1, t + 1), _pairs(d), theta)),
    "your tables are laid out for interleaved pairs (2i, 2i+1); the library pairs i with "
    "i + D/2: repeat the D/2 angles as two halves, torch.cat([angles, angles], dim=-1)":
        lambda d, t, theta: tuple(table.repeat_interleave(2, dim=-1) for table in (
            _angles(d, torch.arange(t), _pairs(d), theta).cos(),
            _angles(d, torch.arange(t), _pairs(d), theta).sin())),
    "widen the tables to (T, D): columns i and i + D/2 both hold pair i's angle":
        lambda d, t, theta: (_angles(d, torch.arange(t), _pairs(d), theta).cos(),
                             _angles(d, torch.arange(t), _pairs(d), theta).sin()),
    "there are D/2 speeds, one per pair, theta^(-2i/D) for i < D/2, each used by columns i "
    "and i + D/2 (not one speed per column)":
        lambda d, t, theta: (_angles(d, torch.arange(t), torch.arange(d) / d, theta).cos(),
                             _angles(d, torch.arange(t), torch.arange(d) / d, theta).sin()),
    "return (cos, sin), in that order":
        lambda d, t, theta: rope_tables(d, t, theta)[::-1],
    "make the tables float32, as the library's are":
        lambda d, t, theta: tuple(table.double() for table in rope_tables(d, t, theta)),
}


def _describe_table_case(case) -> str:
    head_dim, max_seq_len, theta = case
    return f"head_dim {head_dim}, max_seq_len {max_seq_len}, theta {theta:g}"


# Small angles only: where a mistake makes angles huge (speeds that grow with i), float32 and
# float64 versions of the same mistake disagree, so mistakes are also looked for here.
DIAGNOSTIC_TABLE_CASES = ((4, 3, 10.0), (8, 4, 10.0))


def compare_rope_tables(reader) -> bool | str:
    """True, or what is wrong with the reader's rope_tables."""
    def compare(cases):
        return compare_function(reader, rope_tables, cases, TABLE_MISTAKES, atol=2e-5,
                                rtol=1e-5, describe_case=_describe_table_case)

    verdict = compare(TABLE_CASES)
    if verdict is True or verdict in TABLE_MISTAKES:
        return verdict
    diagnosis = compare(DIAGNOSTIC_TABLE_CASES)
    return diagnosis if diagnosis in TABLE_MISTAKES else verdict


def exercise_1(rope_tables_function) -> None:
    """rope_tables(head_dim, max_seq_len, theta) against the library's, split-halves layout."""
    check("exercise 1", function_answer(rope_tables_function, 4, 3, 10000.0),
          compare_rope_tables,
          hint="angles = positions 0 .. T-1 times the D/2 speeds theta^(-2i/D), an outer "
               "product (T, D/2); repeat them as two halves to (T, D); return their cos and sin")


# ---- exercise 2: apply_rope ------------------------------------------------------------------


def _rope_case(shape, dtype=torch.float32, theta=10000.0, seed=0):
    """(x, cos, sin, grad_out) for x of ``shape`` (B, H, T, D), the library's tables for T."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator)
    grad_out = torch.randn(shape, generator=generator)
    cos, sin = rope_tables(shape[-1], shape[-2], theta)
    return x.to(dtype).requires_grad_(), cos, sin, grad_out.to(dtype)


FLOAT32_ROPE_CASES = (
    _rope_case((1, 1, 1, 8), seed=1),  # one position: angle 0, nothing turns
    _rope_case((2, 3, 5, 16), seed=2),
    _rope_case((1, 4, 7, 8), seed=3),
    _rope_case((3, 2, 9, 64), theta=500000.0, seed=4),
)
BF16_ROPE_CASES = (_rope_case((2, 2, 6, 32), torch.bfloat16, seed=5),)


def _rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): Meta's pairing of neighbours."""
    return torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)


def _interleaved_rotation(x, cos, sin):
    half = x.shape[-1] // 2
    c, s = cos[..., :half].to(x.dtype), sin[..., :half].to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * c - odd * s, odd * c + even * s], dim=-1).flatten(-2)


ROPE_MISTAKES = {
    "you rotated neighbouring dimensions (2i, 2i+1) together; the library pairs dimension i "
    "with i + D/2 (split halves)": _interleaved_rotation,
    "you turned neighbouring dimensions (2i, 2i+1) together, as Meta's rotate_every_two does; "
    "the library pairs dimension i with i + D/2 (split halves)":
        lambda x, cos, sin: x * cos.to(x.dtype) + _rotate_every_two(x) * sin.to(x.dtype),
    "each pair turns the wrong way: the sign of sin is flipped. Pair (a, b) becomes "
    "(a cos - b sin, b cos + a sin)":
        lambda x, cos, sin: x * cos.to(x.dtype) - rotate_half(x) * sin.to(x.dtype),
    "swapping the halves is not enough: the 90 degree turn of (a, b) is (-b, a), so negate the "
    "second half before it moves to the front":
        lambda x, cos, sin: x * cos.to(x.dtype)
        + torch.cat(x.chunk(2, dim=-1)[::-1], dim=-1) * sin.to(x.dtype),
    "cos and sin are swapped: the part of x that stays in place is multiplied by cos":
        lambda x, cos, sin: x * sin.to(x.dtype) + rotate_half(x) * cos.to(x.dtype),
    "x * cos is only half of the rotation: add the turned vector times sin":
        lambda x, cos, sin: x * cos.to(x.dtype),
}


def with_gradient(function):
    """Run ``function(x, cos, sin)`` and backpropagate ``grad_out``: (output, x.grad)."""
    def run(x, cos, sin, grad_out):
        out = function(x, cos, sin)
        require_tensor(out)
        if out.shape != x.shape:
            raise ValueError(f"returned shape {tuple(out.shape)}, expected {tuple(x.shape)}")
        if out.grad_fn is None:
            raise RuntimeError("the output is not connected to x by autograd (no .detach(), "
                               ".numpy() or torch.no_grad() inside)")
        out.backward(grad_out.to(out.dtype))
        return out.detach(), x.grad
    return run


def _describe_rope_case(case) -> str:
    x = case[0]
    return f"x of shape {tuple(x.shape)} ({str(x.dtype).removeprefix('torch.')})"


ROPE_OUTPUTS = ("the output", "the gradient of x")  # what with_gradient returns


def compare_apply_rope(reader) -> bool | str:
    """True, or what is wrong with the reader's apply_rope (values and the gradient of x)."""
    mistakes = {message: with_gradient(wrong) for message, wrong in ROPE_MISTAKES.items()}
    verdict = compare_function(with_gradient(reader), with_gradient(apply_rope),
                               FLOAT32_ROPE_CASES, mistakes, describe_case=_describe_rope_case,
                               output_names=ROPE_OUTPUTS)
    if verdict is not True:
        return verdict
    return compare_function(with_gradient(reader), with_gradient(apply_rope), BF16_ROPE_CASES,
                            atol=2e-2, rtol=2e-2, describe_case=_describe_rope_case,
                            output_names=ROPE_OUTPUTS)


def exercise_2(apply_rope_function) -> None:
    """apply_rope(x, cos, sin) against the library's, values and the gradient of x."""
    cos, sin = rope_tables(4, 2)
    check("exercise 2", function_answer(apply_rope_function, torch.ones(1, 1, 2, 4), cos, sin),
          compare_apply_rope,
          hint="turn each pair (a, b) = (x_i, x_(i+D/2)) into (a cos - b sin, b cos + a sin): "
               "x * cos plus the turned vector (-b, a) times sin, in x's dtype")


# ---- exercise 3: the score from the offset alone ---------------------------------------------


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


def exercise_3(relative_score) -> None:
    """relative_score(query, key, offset): the RoPE score from the offset alone."""
    check("exercise 3", function_answer(relative_score, torch.ones(8), torch.ones(8), 1),
          _relative_score_is_right,
          hint="the score of a query at m and a key at n depends on n - m only, so you may put "
               "the query wherever is most convenient and rotate just one of the two vectors")


# ---- exercise 4: which pairs turn within the context -----------------------------------------


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


def exercise_4(turning_pairs) -> None:
    """turning_pairs(head_dim, base, context_length): pairs that turn fully within the context."""
    check("exercise 4", function_answer(turning_pairs, 8, 10000.0, 16),
          _turning_pairs_is_right,
          hint="compare each pair's wavelength (tokens per full turn) with the context length; "
               "return the pair indices in increasing order, as plain ints")


# ---- exercise 5 (experiment): another theta after training -----------------------------------

WINDOW = 256
MIN_WINDOWS = 8
BASES = (10000.0, 500000.0)


def validation_ids() -> np.ndarray:
    """The validation split of the book's extract, in the stored model's tokens (int64)."""
    from .. import book_tokens, stored_model

    return np.asarray(book_tokens("validation", stored_model().tokenizer).tokens, dtype=np.int64)


def _windows_problem(windows) -> str | None:
    """Why ``windows`` are not N >= 8 pieces of 257 consecutive validation tokens, or None."""
    windows = torch.as_tensor(windows)
    if windows.dim() != 2 or windows.shape[1] != WINDOW + 1 or windows.is_floating_point():
        raise ValueError("not (N, 257) integers")
    if windows.shape[0] < MIN_WINDOWS:
        return f"score at least {MIN_WINDOWS} windows, so that the mean is worth comparing"
    haystack = validation_ids().tobytes()
    for row in windows.to(torch.int64).numpy():
        at = haystack.find(row.tobytes())
        while at != -1 and at % 8:
            at = haystack.find(row.tobytes(), at + 1)
        if at == -1:
            return ("each window must be 257 consecutive tokens of the validation split, cut "
                    "from validation_ids as the chapter cuts its windows")
    return None


def theta_losses(windows, bases=BASES) -> dict[float, float]:
    """Mean next-token loss (nats) of the stored model on ``windows`` under each RoPE base."""
    from ...model.transformer import Transformer
    from .. import stored_model

    stored = stored_model()
    windows = torch.as_tensor(windows).to(torch.int64)
    losses = {}
    for base in bases:
        model = Transformer(dataclasses.replace(stored.model.config, rope_theta=base))
        model.load_state_dict(stored.model.state_dict())
        with torch.no_grad():
            logits = model.eval()(windows[:, :-1])  # (N, 256, vocab)
        losses[base] = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()).item()
    return losses


def _losses_are_right(losses, windows) -> bool | str:
    if set(losses) != set(BASES):
        raise KeyError("keys")
    try:
        usable = _windows_problem(windows) is None
    except (TypeError, ValueError, RuntimeError):
        usable = False
    if not usable:
        return "hand in the windows you scored first, so that the check can score them too"
    measured = theta_losses(windows)
    got = {base: float(losses[base]) for base in BASES}
    if all(math.isclose(got[base], measured[base], rel_tol=1e-3) for base in BASES):
        return True
    if all(math.isclose(got[base], measured[other], rel_tol=1e-3)
           for base, other in zip(BASES, BASES[::-1], strict=True)):
        return "the two losses are swapped: key each loss by the base its model used"
    return ("score these windows with both models: inputs windows[:, :-1], targets "
            "windows[:, 1:], the mean cross-entropy over every position")


def exercise_5(windows, losses) -> None:
    """The stored model's validation loss under base 10,000 and 500,000, on the windows the
    reader hands back: both losses are measured again from them."""
    check_parts("exercise 5",
                Part("windows", windows, lambda w: _windows_problem(w) or True,
                     "windows of 257 consecutive validation tokens",
                     expects="a tensor of shape (N, 257) holding token ids"),
                Part("losses", losses, lambda answer: _losses_are_right(answer, windows),
                     "the mean cross-entropy of each model on your windows",
                     expects="a dict {10000.0: loss, 500000.0: loss}"))


def expected_values() -> dict[str, float]:
    """The number a right answer gives that the chapter does not measure itself: the loss under
    base 500,000 on the windows the solutions use (the first 32 of the validation split).

    Exercises 1 to 4 ask for functions, which have no single value; the loss under base
    10,000 is, by design, close to the one the chapter prints for positions 0 to 255.
    """
    windows = torch.from_numpy(validation_ids()[:32 * (WINDOW + 1)]).view(32, WINDOW + 1)
    return {"exercise 5 (500000)": theta_losses(windows, bases=(500000.0,))[500000.0]}
