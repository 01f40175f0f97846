"""The hand-written backward passes (RMSNorm, RoPE, the SwiGLU gate) against autograd's, to the
second derivative.

Each fast function has a textbook reference that autograd differentiates; the two must give the
same values and the same gradients, in float64 (gradcheck against finite differences), float32
and under bfloat16 autocast, for contiguous and strided inputs.
"""

import pytest
import torch
import torch.nn.functional as F

from transformer_lib.model.rmsnorm import rms_norm, rms_norm_reference
from transformer_lib.model.rope import apply_rope, apply_rope_reference, rope_tables
from transformer_lib.model.swiglu import silu_mul


def _values_and_grads(fn, inputs, grad_out=None):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    grad_out = torch.randn_like(out) if grad_out is None else grad_out
    grads = torch.autograd.grad(out, inputs, grad_out)
    return out.detach(), grads, grad_out


def test_rms_norm_gradcheck_float64():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w: rms_norm(a, w, 1e-5), (x, weight))


@pytest.mark.parametrize("shape", [(4, 16, 64), (2, 3, 7, 32)])
def test_rms_norm_matches_autograd_of_reference(shape):
    torch.manual_seed(1)
    x, weight = torch.randn(shape) * 3, torch.rand(shape[-1]) + 0.5
    fast, fast_grads, grad_out = _values_and_grads(lambda a, w: rms_norm(a, w, 1e-5), [x, weight])
    ref, ref_grads, _ = _values_and_grads(
        lambda a, w: rms_norm_reference(a, w, 1e-5), [x, weight], grad_out)
    torch.testing.assert_close(fast, ref)
    for got, want in zip(fast_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_rms_norm_under_bf16_autocast_keeps_dtypes_and_gradients():
    torch.manual_seed(2)
    x, weight = torch.randn(4, 8, 32, dtype=torch.bfloat16), torch.rand(32) + 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast, fast_grads, grad_out = _values_and_grads(
            lambda a, w: rms_norm(a, w, 1e-5), [x, weight])
        ref, ref_grads, _ = _values_and_grads(
            lambda a, w: rms_norm_reference(a, w, 1e-5), [x, weight], grad_out)
    assert fast.dtype == ref.dtype == torch.float32  # float32 gain times bf16 values
    assert fast_grads[0].dtype == torch.bfloat16 and fast_grads[1].dtype == torch.float32
    torch.testing.assert_close(fast, ref)
    torch.testing.assert_close(fast_grads[0].float(), ref_grads[0].float(), atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(fast_grads[1], ref_grads[1], atol=1e-2, rtol=1e-2)


def test_rms_norm_without_grad_does_not_touch_its_input():
    x, weight = torch.randn(2, 3, 8), torch.rand(8)
    before = x.clone()
    with torch.no_grad():
        out = rms_norm(x, weight, 1e-5)
    torch.testing.assert_close(x, before)
    torch.testing.assert_close(out, rms_norm_reference(before, weight, 1e-5))


def test_rope_gradcheck_float64():
    torch.manual_seed(3)
    cos, sin = rope_tables(8, 10)
    x = torch.randn(2, 3, 10, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: apply_rope(a, cos.double(), sin.double()), (x,))


@pytest.mark.parametrize("strided", [False, True])
def test_rope_matches_autograd_of_reference(strided):
    torch.manual_seed(4)
    cos, sin = rope_tables(16, 12)
    if strided:  # (B, T, H, D) -> (B, H, T, D), as the attention layer hands it over
        x = torch.randn(2, 12, 3, 16).transpose(1, 2)
    else:
        x = torch.randn(2, 3, 12, 16)
    fast, (fast_grad,), grad_out = _values_and_grads(lambda a: apply_rope(a, cos, sin), [x])
    ref, (ref_grad,), _ = _values_and_grads(
        lambda a: apply_rope_reference(a, cos, sin), [x], grad_out)
    torch.testing.assert_close(fast, ref)
    torch.testing.assert_close(fast_grad, ref_grad)
    # The gradient of a rotation is the inverse rotation: it preserves the gradient's norm.
    torch.testing.assert_close(fast_grad.norm(dim=-1), grad_out.norm(dim=-1))


def test_rope_in_bfloat16():
    torch.manual_seed(5)
    cos, sin = rope_tables(8, 6)
    x = torch.randn(1, 2, 6, 8, dtype=torch.bfloat16)
    fast, (fast_grad,), grad_out = _values_and_grads(lambda a: apply_rope(a, cos, sin), [x])
    ref, (ref_grad,), _ = _values_and_grads(
        lambda a: apply_rope_reference(a, cos, sin), [x], grad_out)
    assert fast.dtype == fast_grad.dtype == torch.bfloat16
    torch.testing.assert_close(fast, ref, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(fast_grad, ref_grad, atol=2e-2, rtol=2e-2)


def test_silu_mul_gradcheck_float64():
    torch.manual_seed(6)
    gate = torch.randn(4, 7, 12, dtype=torch.float64, requires_grad=True)
    up = torch.randn(4, 7, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(silu_mul, (gate, up))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_silu_mul_matches_autograd_of_reference(dtype):
    torch.manual_seed(7)
    gate, up = torch.randn(3, 9, 40, dtype=dtype), torch.randn(3, 9, 40, dtype=dtype)
    fast, fast_grads, grad_out = _values_and_grads(silu_mul, [gate, up])
    ref, ref_grads, _ = _values_and_grads(lambda g, u: F.silu(g) * u, [gate, up], grad_out)
    tolerance = {} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(fast, ref, **tolerance)
    for got, want in zip(fast_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, **tolerance)


def test_fast_paths_leave_saved_inputs_intact_for_a_second_backward():
    torch.manual_seed(8)
    cos, sin = rope_tables(8, 4)
    x = torch.randn(2, 4, 8, requires_grad=True)
    weight = torch.rand(8, requires_grad=True)
    normed = rms_norm(x, weight, 1e-5)
    out = silu_mul(normed, normed * 2) + apply_rope(normed.unsqueeze(1), cos, sin).squeeze(1)
    first = torch.autograd.grad(out.sum(), (x, weight), retain_graph=True)
    second = torch.autograd.grad(out.sum(), (x, weight))
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b)


def _second_order_cases():
    """(fast function, its textbook expression, float64 inputs to differentiate twice)."""
    torch.manual_seed(9)
    cos, sin = (t.double() for t in rope_tables(8, 3))
    x = torch.randn(2, 3, 8, dtype=torch.float64) * 2
    weight = torch.rand(8, dtype=torch.float64) + 0.5
    gate, up = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    return {
        "rms_norm": (lambda a, w: rms_norm(a, w, 1e-5),
                     lambda a, w: rms_norm_reference(a, w, 1e-5), (x, weight)),
        "apply_rope": (lambda a: apply_rope(a.unsqueeze(0), cos, sin),
                       lambda a: apply_rope_reference(a.unsqueeze(0), cos, sin), (x,)),
        "silu_mul": (silu_mul, lambda g, u: F.silu(g) * u, (gate, up)),
    }


def _curved(fn):
    """A scalar with curvature in every direction: sum(sin(out) * fixed weights)."""
    def scalar(*inputs):
        out = fn(*inputs)
        torch.manual_seed(10)
        mix = torch.randn(out.shape, dtype=out.dtype)
        return (torch.sin(out) * mix).sum()
    return scalar


def _hessian_vector_product(scalar, inputs, vectors):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    grads = torch.autograd.grad(scalar(*inputs), inputs, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vectors, strict=True))
    return torch.autograd.grad(dot, inputs)


@pytest.mark.parametrize("name", ["rms_norm", "apply_rope", "silu_mul"])
def test_hessian_vector_products_equal_the_plain_expressions(name):
    """Double backward through the hand-written backwards, in float64, against autograd's
    second derivative of the textbook expression."""
    fast, plain, inputs = _second_order_cases()[name]
    torch.manual_seed(11)
    vectors = [torch.randn_like(t) for t in inputs]
    got = _hessian_vector_product(_curved(fast), inputs, vectors)
    want = _hessian_vector_product(_curved(plain), inputs, vectors)
    for g, w in zip(got, want, strict=True):
        assert w.abs().max() > 1e-2  # a real curvature, so zeros could not pass
        torch.testing.assert_close(g, w, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("name", ["rms_norm", "apply_rope", "silu_mul"])
def test_functional_hessian_equals_the_plain_expressions(name):
    fast, plain, inputs = _second_order_cases()[name]
    got = torch.autograd.functional.hessian(_curved(fast), inputs)
    want = torch.autograd.functional.hessian(_curved(plain), inputs)
    for row_got, row_want in zip(got, want, strict=True):
        for g, w in zip(row_got, row_want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-8, rtol=1e-8)
    assert want[0][0].abs().max() > 1e-2


def _tiny_float64_model(dropout=0.0):
    from transformer_lib import ModelConfig, Transformer

    torch.manual_seed(12)
    config = ModelConfig(vocab_size=32, d_model=16, num_layers=2, num_heads=2, num_kv_heads=1,
                         max_seq_len=8, dropout=dropout)
    model = Transformer(config).double().train()
    model.init_weights(std=0.3)  # large weights: curvature well above rounding
    ids = torch.randint(0, 32, (2, 7))
    return model, ids


def test_torch_func_grad_through_a_transformer_in_training_mode():
    model, ids = _tiny_float64_model()

    def loss_of(params):
        logits = torch.func.functional_call(model, params, (ids[:, :-1],))
        return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())

    params = {name: p.detach() for name, p in model.named_parameters()}
    grads = torch.func.grad(loss_of)(params)
    loss_of(dict(model.named_parameters())).backward()
    assert model.training
    for name, param in model.named_parameters():
        torch.testing.assert_close(grads[name], param.grad, atol=1e-10, rtol=1e-8)


def test_hessian_vector_product_through_a_transformer_matches_finite_differences():
    """Second derivatives through every layer (attention by the math kernel: PyTorch's fused
    CPU attention has no double backward) against central differences of the gradient."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model, ids = _tiny_float64_model()
    params = list(model.parameters())
    torch.manual_seed(13)
    vectors = [torch.randn_like(p) for p in params]

    def gradient(create_graph=False):
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        return torch.autograd.grad(loss, params, create_graph=create_graph)

    with sdpa_kernel(SDPBackend.MATH):
        grads = gradient(create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vectors, strict=True))
        hvp = torch.autograd.grad(dot, params)
        step = 1e-6  # the difference's error shrinks as step**2: 7e-6 at 1e-5, 7e-8 here
        with torch.no_grad():
            for p, v in zip(params, vectors, strict=True):
                p.add_(v, alpha=step)
        plus = gradient()
        with torch.no_grad():
            for p, v in zip(params, vectors, strict=True):
                p.sub_(v, alpha=2 * step)
        minus = gradient()
    for got, a, b in zip(hvp, plus, minus, strict=True):
        torch.testing.assert_close(got, (a - b) / (2 * step), atol=1e-6, rtol=1e-6)
