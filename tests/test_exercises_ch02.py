"""Chapter 2's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint that names the mistake where one is known."""

import pytest
import torch
import torch.nn.functional as F
from answer_leaks import leaks
from exercise_checks import assert_cases, printed

from transformer_lib.book.exercises import ch02

# ---- exercise 1: rms_norm, and the mistakes a reader makes -----------------------------------
# Written the way a reader would write them, independently of the check's own variants.


def right(x, weight, eps):
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


def right_in_float64(x, weight, eps):
    x64 = x.double()
    rms = torch.sqrt(torch.mean(x64 * x64, dim=-1, keepdim=True) + eps)
    return (x64 / rms * weight.double()).to(x.dtype)


def upcast(function):
    return lambda x, weight, eps: function(x.float(), weight.float(), eps).to(x.dtype)


MISTAKES = [
    (upcast(lambda x, w, eps: x / (torch.sqrt((x ** 2).mean(-1, keepdim=True)) + eps) * w),
     "eps belongs inside the square root"),
    (upcast(lambda x, w, eps: x / torch.sqrt((x ** 2).mean(-1, keepdim=True)) * w),
     "add eps to the mean square before the root"),
    (upcast(lambda x, w, eps: (x - x.mean(-1, keepdim=True))
            / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps) * w),
     "RMSNorm does not subtract the mean"),
    (upcast(lambda x, w, eps: x / torch.sqrt(x.mean(-1, keepdim=True) ** 2 + eps) * w),
     "square first, then average"),
    (upcast(lambda x, w, eps: x / torch.sqrt((x ** 2).sum(-1, keepdim=True) + eps) * w),
     "average the squares"),
    (upcast(lambda x, w, eps: x / ((x ** 2).mean(-1, keepdim=True) + eps) * w),
     "take the square root of the mean square"),
    (upcast(lambda x, w, eps: x / torch.sqrt((x ** 2).mean(0, keepdim=True) + eps) * w),
     "over its own features, the last dimension (dim=-1"),
    (upcast(lambda x, w, eps: x / torch.sqrt((x ** 2).mean(-2, keepdim=True) + eps) * w),
     "not over positions"),
    (upcast(lambda x, w, eps: x / torch.sqrt((x ** 2).mean() + eps) * w),
     "not over the whole tensor"),
    (upcast(lambda x, w, eps: x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + eps)),
     "multiply by weight"),
    (lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w,
     "compute in float32 inside"),
]


def test_exercise_1_placeholder_and_right(capsys):
    def placeholder(x, weight, eps):
        ...

    ch02.exercise_1(placeholder)
    assert printed(capsys) == "exercise 1: not attempted yet"
    for answer in (right, right_in_float64):
        ch02.exercise_1(answer)
        assert printed(capsys) == "exercise 1: correct"


@pytest.mark.parametrize(("wrong", "message"), MISTAKES)
def test_exercise_1_names_each_mistake(capsys, wrong, message):
    ch02.exercise_1(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 1: not yet - hint: ") and message in said, said


def test_exercise_1_other_wrong_answers(capsys):
    def no_cast_back(x, weight, eps):
        return upcast(right)(x, weight, eps).float()

    def detached(x, weight, eps):
        return right(x, weight, eps).detach()

    def wrong_gradient(x, weight, eps):  # right values, but the gain's gradient is lost
        return right(x, weight.detach(), eps)

    ch02.exercise_1(no_cast_back)
    said = printed(capsys)
    assert "the output is torch.float32, expected torch.bfloat16" in said, said
    ch02.exercise_1(detached)
    assert "not connected to x and weight by autograd" in printed(capsys)
    ch02.exercise_1(wrong_gradient)
    said = printed(capsys)
    assert said.startswith("exercise 1: not yet") and "x of shape" in said, said


def test_exercise_1_checks_gradients_against_the_library():
    # the library's gradients come from a hand-written backward: the reader's autograd ones
    # must agree with it, and a function with the right values but wrong gradients must not
    x, weight, eps, grad = ch02.FLOAT32_CASES[1]
    _, x_grad, weight_grad = ch02.with_gradients(right)(*(t.detach().clone().requires_grad_(
        t.requires_grad) if isinstance(t, torch.Tensor) else t for t in (x, weight, eps, grad)))
    x64 = x.detach().double().requires_grad_()
    w64 = weight.detach().double().requires_grad_()
    (x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps) * w64).backward(grad.double())
    torch.testing.assert_close(x_grad.double(), x64.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weight_grad.double(), w64.grad, rtol=1e-5, atol=1e-5)


# ---- exercises 2 to 5 ------------------------------------------------------------------------


def test_exercise_2_norm_parameters(capsys):
    # the book's model: 4 blocks x 2 norms + 1 final = 9 norms of width 128
    assert_cases(capsys, 2, ch02.exercise_2, [..., ...], [1152, 2304],
                 [[1152, 1152], [1024, 2048], [2304, 4608]])
    ch02.exercise_2(1152, 1152)  # first right, second wrong
    assert printed(capsys).startswith("exercise 2: not yet (rms_norm_parameters right, "
                                      "layer_norm_parameters not yet) - hint: "
                                      "layer_norm_parameters: ")
    ch02.exercise_2((1152, 2304), ...)  # a pair where one number is expected
    assert printed(capsys) == ("exercise 2: not yet (rms_norm_parameters not yet, "
                               "layer_norm_parameters not attempted) - hint: "
                               "rms_norm_parameters: expected a whole number")
    ch02.exercise_2(1152.5, 2304)
    assert printed(capsys).endswith("rms_norm_parameters: expected a whole number")


def shift_measurements(x, shift):
    with torch.no_grad():
        rms = F.rms_norm(x + shift, (x.shape[-1],), eps=1e-5) - F.rms_norm(x, (x.shape[-1],),
                                                                          eps=1e-5)
        layer = F.layer_norm(x + shift, (x.shape[-1],)) - F.layer_norm(x, (x.shape[-1],))
    return rms.abs().max().item(), layer.abs().max().item()


def test_exercise_3_shift_is_measured_again(capsys):
    torch.manual_seed(0)
    x = torch.randn(8, 64)
    rms_change, layer_change = shift_measurements(x, 5.0)
    assert rms_change > 1 and layer_change < 1e-4
    assert_cases(capsys, 3, ch02.exercise_3, [x, 5.0, ..., ...],
                 [x, 5.0, rms_change, layer_change],
                 [[x, 5.0, 0.0, 0.0],  # all zeros
                  [x, 5.0, 0.4, 1e-6],  # the right direction, made-up sizes
                  [x, 5.0, rms_change + 0.1, layer_change],  # one entry changed
                  [x, 5.0, layer_change, rms_change]])  # swapped
    ch02.exercise_3(x, 5.0, rms_change, 0.3)
    assert printed(capsys).startswith("exercise 3: not yet (rms_norm_shift_change right, "
                                      "layer_norm_shift_change not yet)")
    other_rms, other_layer = shift_measurements(x, -3.0)  # another shift, measured honestly
    ch02.exercise_3(x, -3.0, other_rms, other_layer)
    assert printed(capsys) == "exercise 3: correct"
    ch02.exercise_3(x, 5.0, [rms_change], layer_change)
    assert printed(capsys).endswith("rms_norm_shift_change: expected a number")
    for bad_x, bad_shift in ((..., 5.0), (x, 0.0), (x, "five")):
        ch02.exercise_3(bad_x, bad_shift, rms_change, layer_change)
        assert "pass the vectors x you measured on" in printed(capsys)


def scaled_stack(divisor):
    """The chapter's seeded stack, each W divided by `divisor` too (written for this test)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 256, generator=generator)
    sizes = [x.pow(2).mean(-1).sqrt().mean().item()]
    for _ in range(24):
        weight = torch.randn(256, 256, generator=generator) / 16 / divisor
        x = x + x @ weight.T
        sizes.append(x.pow(2).mean(-1).sqrt().mean().item())
    return sizes


def test_exercise_4_scaled_init_is_recomputed(capsys):
    right_list = scaled_stack(48 ** 0.5)
    assert 1.2 < right_list[-1] < 1.4
    one_changed = right_list[:10] + [right_list[10] * 1.05] + right_list[11:]
    assert_cases(capsys, 4, ch02.exercise_4, [...], [right_list],
                 [[[0.0] * 25], [one_changed], [[1.0 + i / 100 for i in range(25)]],
                  [right_list[-1]]])
    ch02.exercise_4(scaled_stack(1.0))
    assert "without the scaling" in printed(capsys)
    ch02.exercise_4(scaled_stack(48.0))
    assert "not by 2 * 24" in printed(capsys)
    ch02.exercise_4(right_list[1:])
    assert "give 25 numbers" in printed(capsys)
    ch02.exercise_4(1.29)
    assert printed(capsys) == "exercise 4: not yet - hint: expected a list of 25 numbers"


def test_exercise_5_constant_vector(capsys):
    assert_cases(capsys, 5, ch02.exercise_5, [..., ...], [[-1.0] * 4, [0.0] * 4],
                 [[[1.0] * 4, [0.0] * 4], [[-1.0] * 4, [-1.0] * 4]])
    ch02.exercise_5([-1.0] * 4, [-1.0] * 4)  # half right
    assert printed(capsys).startswith("exercise 5: not yet (rms_norm_of_constant right, "
                                      "layer_norm_of_constant not yet)")
    ch02.exercise_5([-1.0] * 3, [0.0] * 4)  # a list of the wrong length
    assert printed(capsys).endswith("rms_norm_of_constant: expected a list of four numbers")
    ch02.exercise_5(-1.0, [0.0] * 4)  # one number where four are expected
    assert printed(capsys).endswith("rms_norm_of_constant: expected a list of four numbers")


def test_the_chapter_shows_no_answer():
    values = ch02.expected_values()
    assert values["exercise 2 rms"] == 1152 and 1.2 < values["exercise 4 final"] < 1.4
    assert leaks("02_embeddings_rmsnorm", values.values()) == []
