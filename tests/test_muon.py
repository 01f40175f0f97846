"""The library's Muon: the Newton-Schulz iteration, torch.optim.Muon's update rule, the dtype it
iterates in, and its place in the trainer."""

import math

import pytest
import torch

from transformer_lib.model.config import ModelConfig
from transformer_lib.model.transformer import Transformer
from transformer_lib.training import muon, trainer


def newton_schulz_reference(grad: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Plain quintic Newton-Schulz iteration on one matrix (Keller Jordan's coefficients)."""
    a, b, c = 3.4445, -4.775, 2.0315
    x = grad / grad.norm().clamp(min=1e-7)  # as torch.optim.Muon normalises
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


def muon_reference(params, grads_per_step, lr, weight_decay, momentum=0.95):
    """torch.optim.Muon's rule (Nesterov, match_rms_adamw), one matrix at a time, in float64."""
    params = [p.clone() for p in params]
    buffers = [torch.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for p, g, m in zip(params, grads, buffers, strict=True):
            m.mul_(momentum).add_(g, alpha=1 - momentum)
            update = newton_schulz_reference(g + momentum * (m - g))  # g.lerp(m, momentum)
            p.mul_(1 - lr * weight_decay)
            p.sub_(lr * 0.2 * math.sqrt(max(p.shape)) * update)
    return params


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (8, 8)])
def test_batched_iteration_equals_the_one_matrix_reference(shape):
    torch.manual_seed(0)
    batch = torch.randn(3, *shape, dtype=torch.float64)
    out = muon.orthogonalise(batch)
    for one, expected in zip(out, batch, strict=True):
        torch.testing.assert_close(one, newton_schulz_reference(expected), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="batch of matrices"):
        muon.orthogonalise(batch[0])


def test_steps_follow_the_reference_rule_in_float64():
    torch.manual_seed(0)
    shapes = [(12, 8), (12, 8), (8, 20), (16, 16)]  # two of one shape share a batch
    start = [torch.randn(s, dtype=torch.float64) for s in shapes]
    grads_per_step = [[torch.randn(s, dtype=torch.float64) for s in shapes] for _ in range(3)]
    params = [torch.nn.Parameter(p.clone()) for p in start]
    optimizer = muon.Muon(params, lr=0.02, weight_decay=0.5, iteration_dtype=torch.float64)
    for grads in grads_per_step:
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
    expected = muon_reference(start, grads_per_step, lr=0.02, weight_decay=0.5)
    for got, want in zip(params, expected, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-10, atol=1e-10)


def test_agrees_with_torch_muon_when_both_iterate_in_bfloat16():
    torch.manual_seed(0)
    shapes = [(24, 16), (16, 40)]
    start = [torch.randn(s) for s in shapes]
    ours = [torch.nn.Parameter(p.clone()) for p in start]
    theirs = [torch.nn.Parameter(p.clone()) for p in start]
    mine = muon.Muon(ours, lr=0.02, weight_decay=0.1, iteration_dtype=torch.bfloat16)
    reference = torch.optim.Muon(theirs, lr=0.02, weight_decay=0.1,
                                 adjust_lr_fn="match_rms_adamw")
    for _ in range(3):
        grads = [torch.randn(s) for s in shapes]
        for a, b, g in zip(ours, theirs, grads, strict=True):
            a.grad, b.grad = g.clone(), g.clone()
        mine.step()
        reference.step()
    for a, b, s in zip(ours, theirs, start, strict=True):
        moved_ours, moved_theirs = a.detach() - s, b.detach() - s
        # same rule: equal up to bfloat16 rounding inside the iteration (batched and unbatched
        # products round differently), far closer than two different rules would be
        cosine = (moved_ours * moved_theirs).sum() / (moved_ours.norm() * moved_theirs.norm())
        assert cosine > 0.999
        assert moved_ours.norm() / moved_theirs.norm() == pytest.approx(1.0, abs=0.01)


def test_iterates_in_float32_on_a_cpu_without_bfloat16(monkeypatch):
    monkeypatch.setattr(muon, "cpu_has_native_bf16", lambda: False)
    assert muon.default_iteration_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setattr(muon, "cpu_has_native_bf16", lambda: True)
    assert muon.default_iteration_dtype(torch.device("cpu")) == torch.bfloat16
    assert muon.default_iteration_dtype(torch.device("cuda")) == torch.bfloat16
    assert muon.default_iteration_dtype(torch.device("mps")) == torch.float32
    seen = []
    original = muon.orthogonalise
    monkeypatch.setattr(muon, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(muon, "orthogonalise", lambda x, steps: seen.append(x.dtype) or
                        original(x, steps))
    weight = torch.nn.Parameter(torch.randn(4, 6))
    weight.grad = torch.randn(4, 6)
    muon.Muon([weight]).step()
    assert seen == [torch.float32]


def test_a_float32_run_orthogonalises_in_float32_even_where_bfloat16_is_fast(monkeypatch):
    """Under --precision fp32 one process and several must compute the same steps, so Muon's
    iteration may not round in bfloat16; under bf16 autocast it keeps the device's default."""
    monkeypatch.setattr(muon, "cpu_has_native_bf16", lambda: True)
    model = Transformer(ModelConfig.from_preset("tiny"))
    chosen = {}
    for precision in ("fp32", "auto", "bf16"):
        config = trainer.TrainConfig(max_steps=1, optimizer="muon", precision=precision)
        optimizer = trainer.make_optimizer(model, config, torch.device("cpu"))
        chosen[precision] = optimizer.muon.iteration_dtype or muon.default_iteration_dtype(
            torch.device("cpu"))
    # on a CPU "auto" computes in float32 (device.pick_precision)
    assert chosen == {"fp32": torch.float32, "auto": torch.float32, "bf16": torch.bfloat16}


def test_refuses_what_is_not_a_matrix_and_bad_settings():
    with pytest.raises(ValueError, match="weight matrices only"):
        muon.Muon([torch.nn.Parameter(torch.ones(5))])
    with pytest.raises(ValueError, match="momentum"):
        muon.Muon([torch.nn.Parameter(torch.ones(2, 2))], momentum=1.0)
    with pytest.raises(ValueError, match="ns_steps"):
        muon.Muon([torch.nn.Parameter(torch.ones(2, 2))], ns_steps=0)


def test_trainer_orthogonalises_the_blocks_matrices_only():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset("tiny"))
    config = trainer.TrainConfig(max_steps=1, optimizer="muon", lr=0.01, weight_decay=0.0)
    optimizer = trainer.make_optimizer(model, config, torch.device("cpu"))
    muon_params = {id(p) for p in optimizer.muon_params}
    # matrices of the blocks go to Muon; embeddings and gains to AdamW
    assert id(model.layers[0].self_attn.q_proj.weight) in muon_params
    assert id(model.embed_tokens.weight) not in muon_params
    assert id(model.layers[0].input_layernorm.weight) not in muon_params
    weight = model.layers[0].mlp.down_proj.weight
    before = weight.detach().clone()
    rank = min(weight.shape)
    left = torch.linalg.qr(torch.randn(weight.shape[0], rank)).Q
    right = torch.linalg.qr(torch.randn(weight.shape[1], rank)).Q
    strengths = torch.logspace(0, 2, rank)  # singular values from 1 to 100
    grad = left @ torch.diag(strengths) @ right.T
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    weight.grad = grad
    optimizer.step()
    update = (weight.detach() - before).double()
    reference = newton_schulz_reference(grad.double())
    cosine = (update * reference).sum() / (update.norm() * reference.norm())
    assert cosine < -0.99  # a step against the orthogonalised gradient
    singular = torch.linalg.svdvals(update)
    # directions whose gradient strengths span a factor 100 move by comparable amounts
    # (the quintic iteration leaves them between about 0.5 and 1.5, not exactly 1)
    assert singular[0] / singular[-1] < 4
