"""Checks for the exercises of chapter 5 (the SwiGLU feed-forward).

Exercise 1 runs the reader's ``swiglu(x, w_gate, w_up, w_down)`` against the library's SwiGLU
(:func:`silu_mul` between ``F.linear`` projections) on random inputs of several shapes, in
float32 and bfloat16, comparing the output and the gradients of x and of the three weights, and
names the known mistake a wrong answer matches. Exercise 5 trains the reader's bilinear
feed-forward again from its class and seed and compares every step's loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...model.config import ModelConfig
from ...model.swiglu import SwiGLU, silu_mul
from .. import Part, check, check_parts, compare_function, function_answer
from ..checking import require_tensor

# ---- exercise 1: swiglu ----------------------------------------------------------------------


def library_swiglu(x, w_gate, w_up, w_down):
    """The library's SwiGLU with these weights: x (..., C), w_gate and w_up (h, C), w_down
    (C, h) -> (..., C)."""
    return F.linear(silu_mul(F.linear(x, w_gate), F.linear(x, w_up)), w_down)


SWIGLU_MISTAKES = {
    "gate and up are swapped: the SiLU goes on x @ w_gate.T, and x @ w_up.T is the plain "
    "projection it multiplies": lambda x, g, u, d: (F.silu(x @ u.T) * (x @ g.T)) @ d.T,
    "that is sigmoid(gate) * up, the original GLU: SwiGLU's gate is SiLU, x * sigmoid(x) "
    "(F.silu)": lambda x, g, u, d: (torch.sigmoid(x @ g.T) * (x @ u.T)) @ d.T,
    "that is GELU on the gate (GEGLU): SwiGLU's gate is SiLU, x * sigmoid(x) (F.silu)":
        lambda x, g, u, d: (F.gelu(x @ g.T) * (x @ u.T)) @ d.T,
    "the SiLU goes on the gate projection alone, before the product, not on the product":
        lambda x, g, u, d: F.silu((x @ g.T) * (x @ u.T)) @ d.T,
    "the SiLU is missing: the gate projection passes through SiLU before the product":
        lambda x, g, u, d: ((x @ g.T) * (x @ u.T)) @ d.T,
    "the down projection is missing: multiply the product by w_down.T to come back to width C":
        lambda x, g, u, d: F.silu(x @ g.T) * (x @ u.T),
    "the weights are stored as nn.Linear stores them, (out, in): project with x @ w.T, not "
    "x @ w": lambda x, g, u, d: (F.silu(x @ g) * (x @ u)) @ d,
    "w_down is (C, h), as nn.Linear stores it: project back with @ w_down.T":
        lambda x, g, u, d: (F.silu(x @ g.T) * (x @ u.T)) @ d,
    "w_gate and w_up are (h, C), as nn.Linear stores them: project with x @ w.T":
        lambda x, g, u, d: (F.silu(x @ g) * (x @ u)) @ d.T,
}


def _swiglu_case(leading, width, hidden, dtype=torch.float32, seed=0):
    """(x, w_gate, w_up, w_down, grad_out): x of shape (*leading, width), weights as nn.Linear
    stores them, a random gradient for the output."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*leading, width, generator=generator)
    w_gate = torch.randn(hidden, width, generator=generator) / math.sqrt(width)
    w_up = torch.randn(hidden, width, generator=generator) / math.sqrt(width)
    w_down = torch.randn(width, hidden, generator=generator) / math.sqrt(hidden)
    grad_out = torch.randn(*leading, width, generator=generator)
    return (*(t.to(dtype).requires_grad_() for t in (x, w_gate, w_up, w_down)),
            grad_out.to(dtype))


FLOAT32_SWIGLU_CASES = (
    _swiglu_case((1, 5), 8, 24, seed=1),
    _swiglu_case((2, 7), 16, 40, seed=2),
    _swiglu_case((3, 1), 12, 36, seed=3),
    _swiglu_case((6,), 8, 20, seed=4),  # no batch axis: any leading dimensions
)
BF16_SWIGLU_CASES = (_swiglu_case((2, 3), 16, 48, torch.bfloat16, seed=5),)
# Square weights (h = C): where a wrong answer raises on the cases above (a weight not
# transposed, no down projection), its output can be compared here, so the mistake is named.
DIAGNOSTIC_SWIGLU_CASES = (_swiglu_case((2, 3), 8, 8, seed=6), _swiglu_case((1, 4), 8, 8, seed=7))


def swiglu_with_gradient(function):
    """Run ``function(x, w_gate, w_up, w_down)`` and backpropagate: the output and the
    gradients of x, w_gate, w_up and w_down."""
    def run(x, w_gate, w_up, w_down, grad_out):
        out = function(x, w_gate, w_up, w_down)
        require_tensor(out)
        if out.shape != x.shape:
            raise ValueError(f"returned shape {tuple(out.shape)}, expected {tuple(x.shape)}, "
                             "the shape of x")
        if out.grad_fn is None:
            raise RuntimeError("the output is not connected to x and the weights by autograd "
                               "(no .detach(), .numpy() or torch.no_grad() inside)")
        out.backward(grad_out.to(out.dtype))
        return out.detach(), x.grad, w_gate.grad, w_up.grad, w_down.grad
    return run


def _describe_swiglu_case(case) -> str:
    x, w_gate = case[0], case[1]
    return (f"x of shape {tuple(x.shape)}, hidden width {w_gate.shape[0]} "
            f"({str(x.dtype).removeprefix('torch.')})")


# what swiglu_with_gradient returns, as a hint names it
SWIGLU_OUTPUTS = ("the output", "the gradient of x", "the gradient of w_gate",
                  "the gradient of w_up", "the gradient of w_down")


def compare_swiglu(reader) -> bool | str:
    """True, or what is wrong with the reader's swiglu (output and all four gradients)."""
    mistakes = {message: swiglu_with_gradient(wrong)
                for message, wrong in SWIGLU_MISTAKES.items()}

    def compare(cases, atol=1e-5, rtol=1e-4, known=mistakes):
        return compare_function(swiglu_with_gradient(reader),
                                swiglu_with_gradient(library_swiglu), cases, known, atol=atol,
                                rtol=rtol, describe_case=_describe_swiglu_case,
                                output_names=SWIGLU_OUTPUTS)

    verdict = compare(FLOAT32_SWIGLU_CASES)
    if verdict is True:
        return compare(BF16_SWIGLU_CASES, atol=3e-2, rtol=3e-2, known=None)
    if verdict in SWIGLU_MISTAKES:
        return verdict
    diagnosis = compare(DIAGNOSTIC_SWIGLU_CASES)
    return diagnosis if diagnosis in SWIGLU_MISTAKES else verdict


def exercise_1(swiglu_function) -> None:
    """swiglu(x, w_gate, w_up, w_down) against the library's, outputs and gradients."""
    probe = torch.ones(1, 4)
    check("exercise 1", function_answer(swiglu_function, probe, torch.ones(8, 4),
                                        torch.ones(8, 4), torch.ones(4, 8)),
          compare_swiglu,
          hint="project x with w_gate and w_up (x @ w.T, each (..., h)), put SiLU on the gate "
               "projection only, multiply the two element by element, and project back with "
               "w_down (@ w_down.T)")


# ---- exercise 2: width and parameters ----------------------------------------------------------


def _width_and_parameters() -> tuple[int, int]:
    hidden = ModelConfig(d_model=512, num_heads=8).ffn_hidden_dim
    return hidden, sum(p.numel() for p in SwiGLU(512, hidden).parameters())


def exercise_2(width_and_parameters) -> None:
    """(hidden width, parameters) of the SwiGLU of a d_model = 512 model (ModelConfig's rule)."""
    expected = _width_and_parameters()

    def is_right(answer) -> bool | str:
        if len(answer) != 2:
            raise ValueError("not a pair")
        width, parameters = (int(a) for a in answer)
        if (width, parameters) == expected:
            return True
        if width == expected[0]:
            return "the width is right; count the weights of all three matrices"
        return False

    check("exercise 2", width_and_parameters, is_right,
          hint="8 * 512 / 3 is not a whole number: cut it to an int first, then round up to a "
               "multiple of 64, and count the weights of all three matrices",
          expects="a pair (hidden width, parameters)")


def _silu_derivative_is_right(silu_derivative) -> bool | str:
    grid = torch.linspace(-8, 8, 801, dtype=torch.float64)
    x = grid.clone().requires_grad_(True)
    F.silu(x).sum().backward()
    got = silu_derivative(grid.clone())
    if got.shape != grid.shape:
        return False
    if torch.allclose(got.double(), x.grad, atol=1e-9):
        return True
    if got.dtype != torch.float64 and torch.allclose(got.double(), x.grad, atol=1e-6):
        return (f"the formula is right, but it returned {got.dtype} for a float64 input: "
                f"compute in the input's dtype")
    return False


def exercise_3(silu_derivative) -> None:
    """silu_derivative(x): the derivative of x * sigmoid(x), element-wise."""
    check("exercise 3", function_answer(silu_derivative, torch.zeros(3, dtype=torch.float64)),
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


def exercise_4(geglu) -> None:
    """geglu(x, ffn): GEGLU with the weights of a SwiGLU module."""
    with torch.random.fork_rng(devices=[]):
        probe = SwiGLU(4, 8)
    check("exercise 4", function_answer(geglu, torch.zeros(1, 4), probe), _geglu_is_right,
          hint="start from SwiGLU's formula and change one thing only; use the module's "
               "gate_proj, up_proj and down_proj weights (or call the layers themselves)")


# ---- exercise 5 (experiment): the gate without its SiLU ---------------------------------------

TRAIN_STEPS, TRAIN_WIDTH, TRAIN_HIDDEN = 300, 16, 43


def neighbour_products(x: torch.Tensor) -> torch.Tensor:
    """y_j = x_j * x_{j-1}, wrapping round: the chapter's target made of products."""
    return x * x.roll(1, dims=-1)


def train(model: nn.Module, steps: int = TRAIN_STEPS, batch_size: int = 128) -> list[float]:
    """The chapter's train(): Adam (lr 0.01) on the same seeded float64 batches; each loss."""
    data = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        x = torch.randn(batch_size, TRAIN_WIDTH, generator=data, dtype=torch.float64)
        loss = F.mse_loss(model(x), neighbour_products(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _bilinear_problem(model) -> str | None:
    """Why ``model`` is not a bilinear SwiGLU-shaped feed-forward of width 43, or None."""
    if not isinstance(model, SwiGLU):
        raise TypeError("not a SwiGLU subclass")
    if model.gate_proj.weight.shape != (TRAIN_HIDDEN, TRAIN_WIDTH):
        return f"build it as in the chapter's experiment: {TRAIN_WIDTH} wide, hidden width 43"
    if model.gate_proj.weight.dtype != torch.float64:
        return "train it in float64, as the chapter's experiment: .double() before training"
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(1)
        x = torch.randn(4, TRAIN_WIDTH, dtype=torch.float64)
        got = model(x)
        bilinear = model.down_proj(model.gate_proj(x) * model.up_proj(x))
        swiglu = model.down_proj(F.silu(model.gate_proj(x)) * model.up_proj(x))
    if torch.allclose(got, bilinear, rtol=1e-9, atol=1e-12):
        return None
    if torch.allclose(got, swiglu, rtol=1e-9, atol=1e-12):
        return "this is still SwiGLU: take the SiLU off the gate, (W_gate x) * (W_up x)"
    return "its forward should be down_proj(gate_proj(x) * up_proj(x)), nothing else"


def retrain(model_class) -> list[float]:
    """The chapter's run for ``model_class``: seed 0, built (16, 43), float64, trained."""
    with torch.random.fork_rng(devices=[]):  # the reader's random stream untouched
        torch.manual_seed(0)
        fresh = model_class(TRAIN_WIDTH, TRAIN_HIDDEN).double()
        return train(fresh)


def _losses_are_right(losses, model) -> bool | str:
    losses = [float(loss) for loss in losses]
    if len(losses) != TRAIN_STEPS:
        return f"hand in every step's loss: the list train() returns, {TRAIN_STEPS} numbers"
    try:
        usable = _bilinear_problem(model) is None
    except (TypeError, AttributeError, ValueError, RuntimeError):
        usable = False
    if not usable:
        return "hand in the model you trained, so that the check can train its class again"
    try:
        measured = retrain(type(model))
    except (TypeError, ValueError, RuntimeError):
        return "build your model as a subclass of SwiGLU, so that Bilinear(16, 43) builds it"
    if all(math.isclose(g, m, rel_tol=1e-6, abs_tol=1e-12)
           for g, m in zip(losses, measured, strict=True)):
        return True
    return ("train a fresh model as the chapter does: torch.manual_seed(0), then build it "
            "(16, 43), .double(), and pass it to train()")


def exercise_5(bilinear_model, bilinear_losses) -> None:
    """The trained bilinear feed-forward and its per-step losses: the check trains the model's
    class again from the same seed and compares every step."""
    check_parts(
        "exercise 5",
        Part("bilinear_model", bilinear_model, lambda m: _bilinear_problem(m) or True,
             "a SwiGLU subclass whose forward drops the SiLU",
             expects="a subclass of SwiGLU (class Bilinear(SwiGLU) with its own forward)"),
        Part("bilinear_losses", bilinear_losses,
             lambda losses: _losses_are_right(losses, bilinear_model),
             "the list train() returned for your model",
             expects=f"a list of {TRAIN_STEPS} losses"))


class _Bilinear(SwiGLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.gate_proj(x) * self.up_proj(x))


def expected_values() -> dict[str, object]:
    """What right answers give, for the test that the chapter prints none of them (exercises
    1, 3 and 4 ask for functions)."""
    width, parameters = _width_and_parameters()
    bilinear = retrain(_Bilinear)
    return {"exercise 2": (width, parameters), "exercise 2 (parameters)": parameters,
            "exercise 5 (last 50 steps)": sum(bilinear[-50:]) / 50}
