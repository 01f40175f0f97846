"""Chapter 6's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a known wrong one 'not yet' with the hint that names it, a fabricated one 'not yet'."""

import math

import pytest
import torch
import torch.nn.functional as F
from answer_leaks import leaks
from exercise_checks import printed

from transformer_lib import ModelConfig, Transformer
from transformer_lib.book.exercises import ch06
from transformer_lib.book.pieces import layer_weights, library_pieces
from transformer_lib.model.block import Block
from transformer_lib.model.rmsnorm import rms_norm


def placeholder_function(*args):
    ...


# ---- a reader's block and model, written independently of the check's variants ---------------


def heads(t, D):
    B, T, _ = t.shape
    return t.view(B, T, -1, D).transpose(1, 2)


def attend(q, k, v):
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    T = q.shape[-2]
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


def rotate(x, cos, sin):
    a, b = x.chunk(2, -1)
    return x * cos + torch.cat([-b, a], -1) * sin


def block(x, layer, cos, sin, eps, residual=True, post=False, parallel=False, rope=True,
          swap=False):
    norm1, norm2 = ("ffn_norm", "attention_norm") if swap else ("attention_norm", "ffn_norm")
    D = cos.shape[-1]
    B, T, _ = x.shape

    def attention_update(h):
        q, k, v = (heads(h @ layer[w].T, D) for w in ("wq", "wk", "wv"))
        if rope:
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        return attend(q, k, v).transpose(1, 2).reshape(B, T, -1) @ layer["wo"].T

    def ffn(h):
        return (F.silu(h @ layer["w_gate"].T) * (h @ layer["w_up"].T)) @ layer["w_down"].T

    if post:
        h = rms_norm(x + attention_update(x), layer[norm1], eps)
        return rms_norm(h + ffn(h), layer[norm2], eps)
    a = attention_update(rms_norm(x, layer[norm1], eps))
    if not residual:
        return ffn(rms_norm(a, layer[norm2], eps))
    if parallel:
        return x + a + ffn(rms_norm(x, layer[norm2], eps))
    h = x + a
    return h + ffn(rms_norm(h, layer[norm2], eps))


def model(ids, weights, cos, sin, eps, final_norm=True, head="lm_head"):
    x = weights["embedding"][ids]
    for layer in weights["layers"]:
        x = block(x, layer, cos, sin, eps)
    if final_norm:
        x = rms_norm(x, weights["norm"], eps)
    return x @ weights[head].T


def test_exercise_1_block_forward(capsys):
    ch06.exercise_1(placeholder_function)
    assert printed(capsys) == "exercise 1: not attempted yet"
    ch06.exercise_1(block)
    assert printed(capsys) == "exercise 1: correct"
    for wrong, message in [
        (lambda *a: block(*a, residual=False), "the residual connection is missing"),
        (lambda *a: block(*a, post=True), "the norm sits after the addition (post-norm)"),
        (lambda *a: block(*a, parallel=True), "both branches read the block's input"),
        (lambda *a: block(*a, swap=True), "the two norms' gains are swapped"),
        (lambda *a: block(*a, rope=False), "must be turned by RoPE"),
        (lambda x, *a: block(x, *a).detach(), "not connected to x by autograd"),
        (lambda x, *a: block(x, *a)[:, :1], "returned shape"),
        # right in float32, but a bfloat16 block must stay in bfloat16
        (lambda x, layer, cos, sin, eps: block(x.float(), {k: v.float() for k, v in layer.items()},
                                               cos.float(), sin.float(), eps),
         "on bfloat16 inputs and weights"),
    ]:
        ch06.exercise_1(wrong)
        verdict = printed(capsys)
        assert verdict.startswith("exercise 1: not yet - hint: ") and message in verdict, verdict


def test_exercise_1_catches_a_block_that_ignores_its_eps(capsys):
    def fixed_eps(x, layer, cos, sin, eps):
        return ch06.library_block_output(x, layer, cos, sin, 1e-6)

    ch06.exercise_1(fixed_eps)
    assert printed(capsys).startswith("exercise 1: not yet - hint: on x of shape (1, 6, 32)")


def test_exercise_1s_reference_is_the_librarys_block():
    config = ModelConfig(vocab_size=50, d_model=48, num_layers=1, num_heads=4, num_kv_heads=2)
    torch.manual_seed(0)
    library_block = Block(config).eval()
    with torch.no_grad():
        for norm in (library_block.input_layernorm, library_block.post_attention_layernorm):
            norm.weight.normal_(1.0, 0.2)
    cos, sin = library_pieces()["rope_tables"](config.head_dim, 6)
    x = torch.randn(2, 6, 48)
    torch.testing.assert_close(
        ch06.library_block_output(x, layer_weights(library_block), cos, sin, config.norm_eps),
        library_block(x, cos, sin), atol=1e-5, rtol=1e-5)


def test_exercise_2_model_forward(capsys):
    ch06.exercise_2(placeholder_function)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch06.exercise_2(model)
    assert printed(capsys) == "exercise 2: correct"
    for wrong, message in [
        (lambda *a: model(*a, final_norm=False), "the final norm is missing"),
        (lambda *a: model(*a, head="embedding"), "the output head is weights['lm_head']"),
        (lambda *a: model(*a)[..., :-1], "returned shape"),
        (lambda *a: model(*a).float(), "a model in bfloat16"),
    ]:
        ch06.exercise_2(wrong)
        verdict = printed(capsys)
        assert verdict.startswith("exercise 2: not yet - hint: ") and message in verdict, verdict


def test_exercise_3_tying_fraction(capsys):
    saved, tied = 50257 * 768, 123_551_232
    ch06.exercise_3(...)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch06.exercise_3(saved / (tied + saved))
    assert printed(capsys) == "exercise 3: correct"
    for wrong in (saved / tied, saved, 0.0, "a third"):
        ch06.exercise_3(wrong)
        assert printed(capsys).startswith("exercise 3: not yet - hint: ")


@pytest.fixture(scope="module")
def large_init():
    torch.manual_seed(0)
    story_ids = torch.randint(0, 512, (1, 65), generator=torch.Generator().manual_seed(3))
    model = Transformer(ModelConfig.from_preset("tiny", vocab_size=512)).eval()
    model.init_weights(std=1.0)
    with torch.no_grad():
        loss = F.cross_entropy(model(story_ids[:, :-1])[0], story_ids[0, 1:]).item()
    return model, loss, story_ids


def test_exercise_4_measures_the_loss_again(capsys, large_init):
    model, loss, story_ids = large_init
    ch06.exercise_4(..., ..., story_ids)
    assert printed(capsys) == "exercise 4: not attempted yet"
    ch06.exercise_4(model, loss, story_ids)
    assert printed(capsys) == "exercise 4: correct"
    torch.manual_seed(0)
    untouched = Transformer(ModelConfig.from_preset("tiny", vocab_size=512)).eval()
    for wrong_model, wrong_loss in [
        (model, 0.0),  # all zeros
        (model, loss + 1.0),  # a real answer with one entry changed
        (..., 25.0),  # a made-up number of the right size, no model
        (untouched, ch06.initial_loss(untouched, story_ids)),  # never re-initialised
    ]:
        ch06.exercise_4(wrong_model, wrong_loss, story_ids)
        assert printed(capsys).startswith("exercise 4: not yet")


def test_exercise_5_measures_every_depth_again(capsys):
    right = {name: [ch06.first_block_gradient(name, d) for d in ch06.DEPTHS]
             for name in ("pre-norm", "post-norm")}
    ch06.exercise_5(...)
    assert printed(capsys) == "exercise 5: not attempted yet"
    ch06.exercise_5(right)
    assert printed(capsys) == "exercise 5: correct"
    changed = {name: list(values) for name, values in right.items()}
    changed["pre-norm"][0] *= 1.1
    for wrong in [
        {"pre-norm": [0.0] * 5, "post-norm": [0.0] * 5},  # all zeros
        {"pre-norm": [1.0, 1.1, 1.2, 1.3, 1.4], "post-norm": [1, 2, 4, 10, 500]},  # made up
        changed,  # a real answer with one entry changed
        {"pre-norm": right["post-norm"], "post-norm": right["pre-norm"]},  # swapped
        {name: values[:2] for name, values in right.items()},  # too few depths
        {name: [values[0], 1.0, values[2], 1.0, 1e6] for name, values in right.items()},  # the
        # depths of the old check right, the others made up
    ]:
        ch06.exercise_5(wrong)
        assert printed(capsys).startswith("exercise 5: not yet")


def test_the_chapter_shows_no_answer():
    values = ch06.expected_values()
    assert math.isclose(values["exercise 3"], 50257 * 768 / (123_551_232 + 50257 * 768))
    assert leaks("06_model", list(values.values())) == []
