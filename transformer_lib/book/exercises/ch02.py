"""Checks for the exercises of chapter 2 (embeddings, LayerNorm and RMSNorm).

Exercise 1 runs the reader's ``rms_norm(x, weight, eps)`` against the library's
:func:`~transformer_lib.model.rmsnorm.rms_norm` on random inputs: outputs and the gradients of
``x`` and ``weight``, in float32 (tightly) and in bfloat16 and float16 (within their rounding),
and names the known mistake a wrong answer matches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...model.config import ModelConfig
from ...model.rmsnorm import RMSNorm, rms_norm
from .. import (
    BOOK_MODEL,
    BOOK_VOCAB_SIZE,
    Part,
    check,
    check_parts,
    compare_function,
    function_answer,
)
from ..checking import require_tensor, say

# ---- exercise 1: rms_norm(x, weight, eps) ----------------------------------------------------


def _case(shape, dtype, eps, scale=1.0, offset=0.0, seed=0):
    """(x, weight, eps, grad_out): x and weight require grad; grad_out is what backward gets."""
    generator = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(shape, generator=generator) + offset
    weight = 1 + 0.5 * torch.randn(shape[-1], generator=generator)  # a trained-looking gain
    grad_out = torch.randn(shape, generator=generator)
    return (x.to(dtype).requires_grad_(), weight.to(dtype).requires_grad_(), eps,
            grad_out.to(dtype))


FLOAT32_CASES = (
    _case((1, 1, 8), torch.float32, 1e-5, seed=1),  # one token
    _case((2, 5, 64), torch.float32, 1e-5, scale=3.0, offset=1.0, seed=2),  # off-centre
    _case((3, 7, 16), torch.float32, 0.5, scale=0.3, offset=0.2, seed=3),  # eps matters
    _case((2, 3, 5, 32), torch.float32, 1e-6, seed=4),  # (B, H, T, D)
    _case((5, 12), torch.float32, 1e-5, offset=-0.5, seed=5),  # (T, D)
)
HALF_CASES = (
    _case((2, 5, 64), torch.bfloat16, 1e-5, scale=2.0, seed=6),
    _case((3, 32), torch.float16, 1e-5, scale=300.0, seed=7),  # squares overflow float16
)


def _inverse_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)


def _in_float32(mistake):
    """A float32 mistake run as the library runs: computed in float32, cast back to x's dtype."""
    return lambda x, weight, eps: mistake(x.float(), weight.float(), eps).to(x.dtype)


RMS_NORM_MISTAKES = {
    "eps belongs inside the square root: sqrt(mean(x^2) + eps), not sqrt(mean(x^2)) + eps":
        _in_float32(lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w),
    "add eps to the mean square before the root: it keeps the division finite":
        _in_float32(lambda x, w, eps: x / x.pow(2).mean(-1, keepdim=True).sqrt() * w),
    "RMSNorm does not subtract the mean (that is LayerNorm): divide x itself by its root mean "
    "square":
        _in_float32(lambda x, w, eps: F.layer_norm(x, x.shape[-1:], eps=eps) * w),
    "square first, then average: mean(x^2), not mean(x)^2":
        _in_float32(lambda x, w, eps: x * torch.rsqrt(x.mean(-1, keepdim=True).pow(2) + eps) * w),
    "average the squares (divide their sum by D), don't only add them up":
        _in_float32(lambda x, w, eps: x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w),
    "take the square root of the mean square: divide by sqrt(mean(x^2) + eps)":
        _in_float32(lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True) + eps) * w),
    "normalise each vector over its own features, the last dimension (dim=-1, keepdim=True)":
        _in_float32(lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * w),
    "normalise each vector over its own features, the last dimension, not over positions":
        _in_float32(lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-2, keepdim=True) + eps) * w),
    "normalise each vector on its own, over the last dimension, not over the whole tensor":
        _in_float32(lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean() + eps) * w),
    "multiply by weight, the learned gain, after normalising":
        _in_float32(lambda x, w, eps: x * _inverse_rms(x, eps)),
}
HALF_MISTAKES = {
    "compute in float32 inside (x.float()), then cast back to x's dtype: in float16 a square "
    "above 65,504 overflows, and in bfloat16 every step rounds to 8 bits":
        lambda x, weight, eps: x * _inverse_rms(x, eps) * weight,
}


def with_gradients(function):
    """Run ``function(x, weight, eps)``, backpropagate ``grad_out``; (output, x.grad, weight.grad).

    An output that autograd cannot trace back to the inputs raises, with the likely reason.
    """
    def run(x, weight, eps, grad_out):
        out = function(x, weight, eps)
        require_tensor(out)
        if out.shape != grad_out.shape:
            raise ValueError(f"returned shape {tuple(out.shape)}, expected {tuple(x.shape)}")
        if out.grad_fn is None:
            raise RuntimeError("the output is not connected to x and weight by autograd "
                               "(no .detach(), .item(), .numpy() or torch.no_grad() inside)")
        out.backward(grad_out.to(out.dtype))
        return out.detach(), x.grad, weight.grad
    return run


def _describe_norm_case(case) -> str:
    x, _, eps, _ = case
    return f"x of shape {tuple(x.shape)} ({str(x.dtype).removeprefix('torch.')}), eps {eps:g}"


# what with_gradients returns, as a hint names it
NORM_OUTPUTS = ("the output", "the gradient of x", "the gradient of the weight")


def compare_rms_norm(reader) -> bool | str:
    """True, or what is wrong with the reader's rms_norm (see the module docstring)."""
    verdict = compare_function(
        with_gradients(reader), with_gradients(rms_norm), FLOAT32_CASES,
        {message: with_gradients(wrong) for message, wrong in RMS_NORM_MISTAKES.items()},
        describe_case=_describe_norm_case, output_names=NORM_OUTPUTS)
    if verdict is not True:
        return verdict
    return compare_function(
        with_gradients(reader), with_gradients(rms_norm), HALF_CASES,
        {message: with_gradients(wrong) for message, wrong in HALF_MISTAKES.items()},
        atol=2e-2, rtol=2e-2, describe_case=_describe_norm_case, output_names=NORM_OUTPUTS)


def exercise_1(rms_norm_function) -> None:
    """rms_norm(x, weight, eps) against the library's, values and gradients."""
    probe = (torch.ones(1, 4), torch.ones(4), 1e-5)
    check("exercise 1", function_answer(rms_norm_function, *probe), compare_rms_norm,
          hint="divide x by the root of the mean of its squares over the last dimension, plus "
               "eps, then multiply by weight; compute in float32 and return x's dtype")


# ---- exercise 2: the norms' parameters -------------------------------------------------------


def _book_config() -> ModelConfig:
    return ModelConfig(vocab_size=BOOK_VOCAB_SIZE, **BOOK_MODEL)


def _norm_parameters(config: ModelConfig) -> int:
    return (2 * config.num_layers + 1) * config.d_model  # two per block, one before lm_head


def _is_count(answer, expected: int) -> bool:
    if isinstance(answer, bool) or int(answer) != answer:
        raise TypeError("not a whole number")
    return int(answer) == expected


def exercise_2(rms_norm_parameters, layer_norm_parameters) -> None:
    """Parameters of the book's model's norms, as RMSNorms and as LayerNorms."""
    norms = _norm_parameters(_book_config())
    check_parts("exercise 2",
                Part("rms_norm_parameters", rms_norm_parameters,
                     lambda answer: _is_count(answer, norms),
                     "count the norms first (two in each block and one more); each RMSNorm "
                     "learns one gain per feature", expects="a whole number"),
                Part("layer_norm_parameters", layer_norm_parameters,
                     lambda answer: _is_count(answer, 2 * norms),
                     "a LayerNorm learns a gain and a bias, each one number per feature",
                     expects="a whole number"))


# ---- exercise 3 (experiment): a shift of the input -------------------------------------------


def shift_changes(x: torch.Tensor, shift: float) -> tuple[float, float]:
    """Largest change of RMSNorm's and of LayerNorm's output (gain 1, no bias) when every
    feature of ``x`` is shifted by ``shift``."""
    x = torch.as_tensor(x, dtype=torch.float32)
    width = x.shape[-1]
    with torch.no_grad():
        norm = RMSNorm(width)
        rms_change = (norm(x + shift) - norm(x)).abs().max().item()
        layer_change = (F.layer_norm(x + shift, (width,)) - F.layer_norm(x, (width,))).abs().max()
    return rms_change, layer_change.item()


def _measured(answer, expected: float, tolerance: float) -> bool:
    answer = float(answer)
    return math.isfinite(answer) and abs(answer - expected) <= tolerance


def exercise_3(x, shift, rms_norm_shift_change, layer_norm_shift_change) -> None:
    """The largest change of each norm's output when the vectors ``x`` are shifted by
    ``shift``: recomputed from ``x`` and ``shift``."""
    try:
        x_tensor = torch.as_tensor(x, dtype=torch.float32)
        shift_value = float(shift)
        usable = x_tensor.dim() >= 1 and x_tensor.shape[-1] >= 2 and abs(shift_value) >= 1
    except (TypeError, ValueError, RuntimeError):
        usable = False
    if not usable:
        say("exercise 3: not yet - hint: pass the vectors x you measured on and the shift you "
            "added (a number, at least 1 in size)")
        return
    rms_change, layer_change = shift_changes(x_tensor, shift_value)
    hint = ("apply the norm to x and to x + shift and take the largest absolute difference "
            "of the two outputs, over every entry")
    check_parts("exercise 3",
                Part("rms_norm_shift_change", rms_norm_shift_change,
                     lambda answer: _measured(answer, rms_change, 1e-3 * rms_change + 1e-4),
                     hint, expects="a number"),
                Part("layer_norm_shift_change", layer_norm_shift_change,
                     lambda answer: _measured(answer, layer_change, 1e-4),
                     hint, expects="a number"))


# ---- exercise 4 (experiment): scaled initialisation ------------------------------------------

STACK_LAYERS, STACK_WIDTH = 24, 256


def stream_rms_by_depth(num_layers: int, width: int, weight_divisor: float = 1.0) -> list[float]:
    """The chapter's random stack without normalisation, x <- x + W x, with each random W
    divided by ``weight_divisor`` on top of 1/sqrt(width); the RMS before and after each layer."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, width, generator=generator)
    sizes = [x.pow(2).mean(dim=-1).sqrt().mean().item()]
    for _ in range(num_layers):
        weight = torch.randn(width, width, generator=generator) / width**0.5 / weight_divisor
        x = x + x @ weight.T
        sizes.append(x.pow(2).mean(dim=-1).sqrt().mean().item())
    return sizes


def _agrees(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(math.isclose(g, w, rel_tol=2e-3)
                                         for g, w in zip(got, want, strict=True))


def _scaled_stack_is_right(answer) -> bool | str:
    got = [float(value) for value in answer]
    scale = (2 * STACK_LAYERS) ** 0.5
    if len(got) != STACK_LAYERS + 1:
        return (f"give {STACK_LAYERS + 1} numbers: the RMS before the first layer and after each "
                f"of the {STACK_LAYERS}, as stream_rms_by_depth returns")
    if _agrees(got, stream_rms_by_depth(STACK_LAYERS, STACK_WIDTH, scale)):
        return True
    if _agrees(got, stream_rms_by_depth(STACK_LAYERS, STACK_WIDTH)):
        return "that is the stack without the scaling: divide every W by sqrt(2 * 24) as well"
    if _agrees(got, stream_rms_by_depth(STACK_LAYERS, STACK_WIDTH, scale**2)):
        return "divide by the square root of 2 * 24, not by 2 * 24"
    return ("copy stream_rms_by_depth, keep its seeded draws in the same order, and divide each "
            "random W by sqrt(2 * 24) on top of its 1/sqrt(width), without any norm")


def exercise_4(scaled_init_rms_by_layer) -> None:
    """The RMS of the unnormalised random stack, layer by layer, with branches scaled by
    1/sqrt(2 * 24): recomputed from the chapter's seeded stack."""
    check("exercise 4", scaled_init_rms_by_layer, _scaled_stack_is_right,
          hint="copy stream_rms_by_depth and divide each random W by sqrt(2 * 24)",
          expects=f"a list of {STACK_LAYERS + 1} numbers")


# ---- exercise 5: a constant vector -----------------------------------------------------------

CONSTANT = [-2.0, -2.0, -2.0, -2.0]


def _close(answer, expected: torch.Tensor, atol: float) -> bool:
    answer = torch.as_tensor(answer, dtype=torch.float32)
    if answer.shape != expected.shape:
        raise ValueError("wrong length")
    return torch.allclose(answer, expected, atol=atol)


def exercise_5(rms_norm_of_constant, layer_norm_of_constant) -> None:
    """RMSNorm and LayerNorm (gain 1, no bias) of the constant vector [-2, -2, -2, -2]."""
    constant = torch.tensor(CONSTANT)
    with torch.no_grad():
        rms_expected = RMSNorm(len(CONSTANT))(constant)
    layer_expected = F.layer_norm(constant, (len(CONSTANT),))
    check_parts("exercise 5",
                Part("rms_norm_of_constant", rms_norm_of_constant,
                     lambda answer: _close(answer, rms_expected, 1e-3),
                     "what is the root mean square of four entries that all equal -2?",
                     expects="a list of four numbers"),
                Part("layer_norm_of_constant", layer_norm_of_constant,
                     lambda answer: _close(answer, layer_expected, 1e-3),
                     "what is left of the vector once LayerNorm has subtracted its mean?",
                     expects="a list of four numbers"))


def expected_values() -> dict[str, object]:
    """The numbers right answers give (for the test that the chapter shows none of them).

    Exercise 3's figure is for the chapter's vectors (seed 0, 8 vectors of width 64) and a
    shift of 5; exercise 1 asks for a function, which has no single value.
    """
    norms = _norm_parameters(_book_config())
    torch.manual_seed(0)
    x = torch.randn(8, 64)
    return {
        "exercise 2 rms": norms,
        "exercise 2 layer": 2 * norms,
        "exercise 3 rms": shift_changes(x, 5.0)[0],
        "exercise 4 final": stream_rms_by_depth(STACK_LAYERS, STACK_WIDTH,
                                                (2 * STACK_LAYERS) ** 0.5)[-1],
        "exercise 5 rms": [-1.0] * len(CONSTANT),  # eps moves it by 1e-6 only
        "exercise 5 layer": F.layer_norm(torch.tensor(CONSTANT), (len(CONSTANT),)).tolist(),
    }
