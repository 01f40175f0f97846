"""Checks for the exercises of chapter 13 (adapting a trained model).

Exercises 1 and 2 run the reader's LoRA forward and merge against the library's ``LoRALinear``
on random inputs and name the known mistake a wrong answer matches. Exercise 3 counts the
adapters' parameters. Exercise 4 recomputes, from the model the reader hands back, the loss on
the practice batch and checks that only adapters changed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...model.lora import TARGETS, LoRALinear, lora_layers, trainable_parameters
from .. import check, compare_function, function_answer

# ---- exercises 1 and 2: the layer --------------------------------------------------------------


def _library_layer(weight, lora_A, lora_B, alpha) -> LoRALinear:
    base = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        base.weight.copy_(weight)
    layer = LoRALinear(base, lora_A.shape[0], float(alpha))
    with torch.no_grad():
        layer.lora_A.copy_(lora_A)
        layer.lora_B.copy_(lora_B)
    return layer.eval()


def library_forward(x, weight, lora_A, lora_B, alpha):
    with torch.no_grad():
        return _library_layer(weight, lora_A, lora_B, alpha)(x)


def library_merge(weight, lora_A, lora_B, alpha):
    layer = _library_layer(weight, lora_A, lora_B, alpha)
    layer.merge()
    return layer.weight.detach().clone()


def _case(batch, d_in, d_out, rank, alpha, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, d_in, generator=generator)  # (B, T, in)
    weight = torch.randn(d_out, d_in, generator=generator) / math.sqrt(d_in)
    lora_A = torch.randn(rank, d_in, generator=generator) / math.sqrt(d_in)
    lora_B = torch.randn(d_out, rank, generator=generator)
    return x, weight, lora_A, lora_B, alpha


# Square projections (in = out), ranks 2 to 4 and alpha / r != 1, r / alpha, alpha: every
# known mistake changes the numbers (a transposed correction is only computable when square).
FORWARD_CASES = (_case(2, 8, 8, 2, 8.0, 1), _case(1, 16, 16, 4, 6.0, 2), _case(3, 6, 6, 3, 1.5, 3))
MERGE_CASES = tuple(case[1:] for case in FORWARD_CASES)
RECTANGULAR_FORWARD = (_case(2, 8, 4, 2, 5.0, 4),)  # k/v projections are narrower than q
RECTANGULAR_MERGE = tuple(case[1:] for case in RECTANGULAR_FORWARD)


def _safe(wrong):
    """A mistake's output, or None where that mistake cannot even be computed."""
    def run(*args):
        try:
            return wrong(*args)
        except RuntimeError:
            return None
    return run


def _with_scale(scale_of):
    def forward(x, weight, lora_A, lora_B, alpha):
        return x @ weight.T + scale_of(alpha, lora_A.shape[0]) * (x @ lora_A.T @ lora_B.T)
    return forward


FORWARD_MISTAKES = {
    "the correction is scaled by alpha / r: yours has no scale":
        _with_scale(lambda alpha, r: 1.0),
    "the scale is alpha / r, not alpha": _with_scale(lambda alpha, r: alpha),
    "the scale is alpha / r, not r / alpha": _with_scale(lambda alpha, r: r / alpha),
    "keep the frozen layer's own output x W^T and add the correction to it":
        lambda x, w, a, b, alpha: (alpha / a.shape[0]) * (x @ a.T @ b.T),
    "x goes through A first (r x in: down to r numbers), then B (out x r: back up); the "
    "correction's weight is B A, applied like W, i.e. transposed: x (B A)^T":
        _safe(lambda x, w, a, b, alpha: x @ w.T + (alpha / a.shape[0]) * (x @ (b @ a))),
}

MERGE_MISTAKES = {
    "the merged weight adds the scaled correction alpha / r * B A: yours has no scale":
        lambda w, a, b, alpha: w + b @ a,
    "the scale is alpha / r, not alpha": lambda w, a, b, alpha: w + alpha * (b @ a),
    "the scale is alpha / r, not r / alpha":
        lambda w, a, b, alpha: w + (a.shape[0] / alpha) * (b @ a),
    "the correction is B A (out x r times r x in), shaped like W (out x in): yours is "
    "transposed": _safe(lambda w, a, b, alpha: w + (alpha / a.shape[0]) * (a.T @ b.T)),
    "merging adds the correction; subtracting it is unmerge":
        lambda w, a, b, alpha: w - (alpha / a.shape[0]) * (b @ a),
    "return the whole merged weight W + alpha / r * B A, not only the correction":
        lambda w, a, b, alpha: (alpha / a.shape[0]) * (b @ a),
}


def _compare(reader, reference, cases, rectangular, mistakes):
    verdict = compare_function(reader, reference, cases, mistakes, atol=1e-5, rtol=1e-5)
    if verdict is not True:
        return verdict
    # Right on square projections; also on a narrower one (as k and v are)?
    return compare_function(reader, reference, rectangular, {}, atol=1e-5, rtol=1e-5)


def exercise_1(lora_forward) -> None:
    """lora_forward(x, weight, lora_A, lora_B, alpha) against LoRALinear.forward."""
    check("exercise 1", function_answer(lora_forward, *FORWARD_CASES[0]),
          lambda reader: _compare(reader, library_forward, FORWARD_CASES, RECTANGULAR_FORWARD,
                                  FORWARD_MISTAKES),
          hint="the frozen layer's output plus the correction: down through A to r numbers, "
               "up through B, times the scale; r is the number of rows of A")


def exercise_2(merge_weight) -> None:
    """merge_weight(weight, lora_A, lora_B, alpha) against LoRALinear.merge."""
    check("exercise 2", function_answer(merge_weight, *MERGE_CASES[0]),
          lambda reader: _compare(reader, library_merge, MERGE_CASES, RECTANGULAR_MERGE,
                                  MERGE_MISTAKES),
          hint="one weight that does in one product what exercise 1 does in three: the same "
               "shape as W, and the same scale")


# ---- exercise 3: counting ----------------------------------------------------------------------


def adapter_parameters(model, rank: int, targets) -> int:
    """Parameters of rank-``rank`` adapters on ``targets`` in every block of ``model``."""
    total = 0
    for block in model.layers:
        for target in targets:
            linear = block.get_submodule(TARGETS[target])
            total += rank * (linear.in_features + linear.out_features)
    return total


def exercise_3(count, model) -> None:
    """Trainable parameters of rank-4 LoRA on q and v of the stored model."""
    expected = adapter_parameters(model, 4, ("q", "v"))
    check("exercise 3", count, lambda answer: int(answer) == expected and float(answer)
          == expected,
          hint="each adapted projection trains A (r x in) and B (out x r); the value projection "
               "is narrower than the query's (grouped key/value heads), and every layer has "
               "its own pair", expects="a whole number")


# ---- exercise 4: an adaptation of your own ------------------------------------------------------


def batch_loss(model, batch: torch.Tensor) -> float:
    """Mean next-token loss of model on a (B, T) batch of ids."""
    with torch.no_grad():
        was_training = model.training
        model.eval()
        logits = model(batch[:, :-1])
        model.train(was_training)
    return F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten()).item()


def _adaptation_verdict(adapted, base, batch) -> bool | str:
    layers = lora_layers(adapted)
    if not layers:
        return "hand back the model with its LoRA layers (add_lora), not a merged copy"
    if any(layer.merged for layer in layers.values()):
        return "unmerge the model before handing it back, so its base weights can be compared"
    base_state = base.state_dict()
    for name, tensor in adapted.state_dict().items():
        if ".lora_" in name:
            continue
        if name not in base_state or not torch.equal(tensor.cpu(), base_state[name]):
            return (f"{name} differs from the stored model's: only the adapters may change "
                    f"(start from book.stored_model().model and let add_lora freeze the rest)")
    trained = {name for name, p in adapted.named_parameters() if p.requires_grad}
    if any(".lora_" not in name for name in trained):
        return "some base weights still require gradients: add_lora freezes them"
    expected = sum(layer.rank * (layer.in_features + layer.out_features)
                   for layer in layers.values())
    if trainable_parameters(adapted) != expected:
        return "the trainable parameters should be exactly the adapters' r (in + out) each"
    before, after = batch_loss(base, batch), batch_loss(adapted, batch)
    if not math.isfinite(after) or after > before - 0.2:
        return (f"the adapted model's loss on the practice batch is {after:.2f} against the "
                f"stored model's {before:.2f}: train longer or with a larger learning rate")
    return True


def exercise_4(adapted, base, batch: torch.Tensor) -> None:
    """A LoRA adaptation of the stored model that lowers the practice batch's loss."""
    check("exercise 4", adapted, lambda model: _adaptation_verdict(model, base, batch),
          hint="add_lora on a fresh stored model, AdamW on its trainable parameters, a few "
               "dozen steps on the practice batch", expects="a Transformer with LoRA layers")
