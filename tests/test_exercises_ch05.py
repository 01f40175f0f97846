"""Chapter 5's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint that names the mistake where one is known; the experiment is
trained again, so made-up losses are refused."""

import pytest
import torch
import torch.nn.functional as F
from answer_leaks import chapter_text, leaks
from exercise_checks import printed

from transformer_lib.book.exercises import ch05
from transformer_lib.model.swiglu import SwiGLU


def placeholder_function(*args):
    ...


# ---- exercise 1: swiglu, and the mistakes a reader makes -------------------------------------
# Written the way a reader would write them, independently of the check's own variants.


def swiglu(x, w_gate, w_up, w_down, act=F.silu, swap=False, transpose=True, down=True):
    if swap:
        w_gate, w_up = w_up, w_gate
    gate = x @ (w_gate.T if transpose else w_gate)
    up = x @ (w_up.T if transpose else w_up)
    hidden = act(gate) * up
    return hidden @ (w_down.T if transpose else w_down) if down else hidden


def with_linear_layers(x, w_gate, w_up, w_down):  # another right answer
    gate, up = F.linear(x, w_gate), F.linear(x, w_up)
    return F.linear(gate * torch.sigmoid(gate) * up, w_down)


def in_float32(x, w_gate, w_up, w_down):  # computed in float32, returned in x's dtype
    return swiglu(*(t.float() for t in (x, w_gate, w_up, w_down))).to(x.dtype)


SWIGLU_MISTAKES = [
    (lambda x, g, u, d: swiglu(x, g, u, d, swap=True), "gate and up are swapped"),
    (lambda x, g, u, d: swiglu(x, g, u, d, act=torch.sigmoid), "sigmoid(gate) * up"),
    (lambda x, g, u, d: swiglu(x, g, u, d, act=F.gelu), "GELU on the gate"),
    (lambda x, g, u, d: swiglu(x, g, u, d, act=lambda t: t), "the SiLU is missing"),
    (lambda x, g, u, d: F.silu((x @ g.T) * (x @ u.T)) @ d.T, "not on the product"),
    (lambda x, g, u, d: swiglu(x, g, u, d, down=False), "the down projection is missing"),
    (lambda x, g, u, d: swiglu(x, g, u, d, transpose=False), "not x @ w"),
    (lambda x, g, u, d: (F.silu(x @ g.T) * (x @ u.T)) @ d, "project back with @ w_down.T"),
]


def test_exercise_1_placeholder_and_right(capsys):
    ch05.exercise_1(placeholder_function)
    assert printed(capsys) == "exercise 1: not attempted yet"
    for right in (swiglu, with_linear_layers, in_float32):
        ch05.exercise_1(right)
        assert printed(capsys) == "exercise 1: correct"


@pytest.mark.parametrize(("wrong", "message"), SWIGLU_MISTAKES)
def test_exercise_1_names_each_mistake(capsys, wrong, message):
    ch05.exercise_1(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 1: not yet - hint: ") and message in said, said


def test_exercise_1_other_wrong_answers(capsys):
    ch05.exercise_1(lambda x, g, u, d: swiglu(x, g, u, d).float())  # bfloat16 in, float32 out
    assert "the output is torch.float32, expected torch.bfloat16" in printed(capsys)
    ch05.exercise_1(lambda x, g, u, d: swiglu(x, g.detach(), u, d))  # no gradient for w_gate
    assert printed(capsys).startswith("exercise 1: not yet")


# ---- exercises 2 to 4 ------------------------------------------------------------------------


def test_exercise_2_width_and_parameters(capsys):
    ch05.exercise_2(...)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch05.exercise_2((1408, 3 * 512 * 1408))  # int(1365.33) = 1365 -> 22 * 64 = 1408
    assert printed(capsys) == "exercise 2: correct"
    ch05.exercise_2((1408, 2 * 512 * 1408))  # two matrices counted
    assert "the width is right" in printed(capsys)
    ch05.exercise_2((1365, 3 * 512 * 1365))
    assert printed(capsys).startswith("exercise 2: not yet - hint: 8 * 512 / 3")
    ch05.exercise_2(1408)
    assert printed(capsys).endswith("expected a pair (hidden width, parameters)")


def test_exercise_3_silu_derivative(capsys):
    ch05.exercise_3(placeholder_function)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch05.exercise_3(lambda x: torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x))))
    assert printed(capsys) == "exercise 3: correct"
    for wrong in (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)),
                  lambda x: 1 / 0):
        ch05.exercise_3(wrong)
        assert printed(capsys).startswith("exercise 3: not yet - hint: ")
    def in_float32(x):
        s = torch.sigmoid(x.float())
        return s * (1 + x.float() * (1 - s))

    ch05.exercise_3(in_float32)
    assert "the formula is right, but it returned torch.float32" in printed(capsys)


def test_exercise_4_geglu(capsys):
    ch05.exercise_4(placeholder_function)
    assert printed(capsys) == "exercise 4: not attempted yet"
    ch05.exercise_4(lambda x, ffn: ffn.down_proj(F.gelu(ffn.gate_proj(x)) * ffn.up_proj(x)))
    assert printed(capsys) == "exercise 4: correct"
    ch05.exercise_4(lambda x, ffn: ffn(x))  # still SwiGLU
    assert printed(capsys).startswith("exercise 4: not yet - hint: ")


def test_exercise_4_leaves_the_readers_random_stream_alone(capsys):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ch05.exercise_4(lambda x, ffn: ffn(x))
    capsys.readouterr()
    assert torch.equal(torch.rand(3), expected)


# ---- exercise 5 (experiment): trained again from the model's class ---------------------------


class Bilinear(SwiGLU):
    def forward(self, x):
        return self.down_proj(self.gate_proj(x) * self.up_proj(x))


def chapter_train(model, steps=300, batch_size=128):  # the chapter's train(), written out
    data = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        x = torch.randn(batch_size, 16, generator=data, dtype=torch.float64)
        loss = F.mse_loss(model(x), x * x.roll(1, dims=-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = Bilinear(16, 43).double()
    return model, chapter_train(model)


def test_exercise_5_trained_again(capsys, trained):
    model, losses = trained
    assert sum(losses[-50:]) / 50 < 0.01
    ch05.exercise_5(..., ...)
    assert printed(capsys) == "exercise 5: not attempted yet"
    ch05.exercise_5(model, losses)
    assert printed(capsys) == "exercise 5: correct"
    fabricated = [
        [0.0] * 300,  # all zeros
        [1.0] * 250 + [0.002] * 50,  # the right direction, made-up sizes
        losses[:-1] + [losses[-1] * 1.01],  # one entry changed
    ]
    for made_up in fabricated:
        ch05.exercise_5(model, made_up)
        assert printed(capsys).startswith("exercise 5: not yet (bilinear_model right, "
                                          "bilinear_losses not yet)")
    ch05.exercise_5(model, losses[:50])
    assert "hand in every step's loss" in printed(capsys)
    ch05.exercise_5(..., losses)
    assert "hand in the model you trained" in printed(capsys)


def test_exercise_5_wants_the_silu_off(capsys, trained):
    _, losses = trained
    torch.manual_seed(0)
    swiglu_model = SwiGLU(16, 43).double()
    swiglu_losses = chapter_train(swiglu_model)
    ch05.exercise_5(swiglu_model, swiglu_losses)
    assert "this is still SwiGLU" in printed(capsys)
    torch.manual_seed(0)
    in_float32 = Bilinear(16, 43)
    ch05.exercise_5(in_float32, losses)
    assert "train it in float64" in printed(capsys)
    torch.manual_seed(1)  # another seed: its losses differ from the chapter's run
    other_seed = Bilinear(16, 43).double()
    ch05.exercise_5(other_seed, chapter_train(other_seed))
    assert "torch.manual_seed(0)" in printed(capsys)


def test_the_chapter_shows_no_answer():
    values = ch05.expected_values()
    assert values["exercise 2"] == (1408, 2162688)
    assert leaks("05_swiglu", values.values()) == []
    text = chapter_text("05_swiglu")
    for name in ("swiglu", "silu_derivative", "geglu"):
        body = text.split(f"def {name}(", 1)[1].split("\n# %%", 1)[0]
        assert "...  # your code here" in body and "return" not in body, name
    assert "22.5M model" not in text  # the book's model has about 1.05M parameters
