"""Checks for the exercises of chapter 6 (the block and the model).

Exercises 1 and 2 run the reader's ``block_forward(x, layer, cos, sin, eps)`` and
``model_forward(ids, weights, cos, sin, eps)`` against the library's ``Block`` and
``Transformer`` (random weights, random norm gains, an untied output head) on several shapes,
with 1, 2 and 4 query heads per key/value head, in float32 and then in bfloat16, and name the
known mistake a wrong answer matches. Exercises 4 and 5 measure again what the reader hands back: the re-initialised model's
loss, and the first block's gradient norms.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from ...model.block import Block
from ...model.config import ModelConfig
from ...model.transformer import Transformer
from .. import Part, check, check_parts, compare_function, function_answer
from ..checking import in_dtype, require_tensor
from ..pieces import layer_weights, library_pieces, model_weights

# ---- shared: small models with random weights ------------------------------------------------


def _config(d_model, num_heads, num_kv_heads, vocab_size=50, num_layers=2):
    return ModelConfig(vocab_size=vocab_size, d_model=d_model, num_layers=num_layers,
                       num_heads=num_heads, num_kv_heads=num_kv_heads, max_seq_len=32,
                       tie_embeddings=False)


def _randomised(module: nn.Module, seed: int) -> nn.Module:
    """``module`` with every weight drawn at a scale that makes each branch matter: matrices at
    std 1/sqrt(fan-in) and norm gains around 1 (a fresh norm's gains are all 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1 + 0.3 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(torch.randn(param.shape, generator=generator) / param.shape[-1] ** 0.5)
    return module.eval()


def _tables(config: ModelConfig, length: int):
    return library_pieces()["rope_tables"](config.head_dim, length, config.rope_theta)


# (d_model, query heads, key/value heads, batch, length): 1, 2 and 4 query heads per kv head
SHAPES = ((32, 4, 4, 1, 7), (48, 4, 2, 2, 5), (64, 8, 2, 3, 1), (32, 2, 1, 1, 9))

# ---- exercise 1: block_forward ---------------------------------------------------------------


def _block_case(d_model, heads, kv_heads, batch, length, seed, norm_eps=None):
    config = _config(d_model, heads, kv_heads)
    if norm_eps is not None:
        config = dataclasses.replace(config, norm_eps=norm_eps)
    torch.manual_seed(seed)  # Block's own init; _randomised then redraws every weight
    block = _randomised(Block(config), seed)
    cos, sin = _tables(config, length)
    x = torch.randn(batch, length, d_model, generator=torch.Generator().manual_seed(seed + 1))
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 2))
    return x.requires_grad_(), layer_weights(block), cos, sin, config.norm_eps, grad_out


# The last case's large eps shows a block that ignores its eps argument.
BLOCK_CASES = (*(_block_case(*shape, seed=10 + i) for i, shape in enumerate(SHAPES)),
               _block_case(32, 4, 2, 1, 6, seed=15, norm_eps=0.5))


# bfloat16 keeps 8 significant bits: a block's output and gradient agree to a few percent
BF16_BLOCK_CASES = (in_dtype(_block_case(48, 4, 2, 2, 5, seed=30), torch.bfloat16),)
BF16_TOLERANCE = 5e-2


def _split_heads(t, D):
    B, T, _ = t.shape
    return t.view(B, T, -1, D).transpose(1, 2)  # (B, T, heads * D) -> (B, heads, T, D)


def _attention_branch(x, layer, cos, sin, rope=True, project_out=True):
    lib = library_pieces()
    B, T, _ = x.shape
    D = cos.shape[-1]
    q, k, v = (_split_heads(F.linear(x, layer[w]), D) for w in ("wq", "wk", "wv"))
    if rope:
        q, k = lib["apply_rope"](q, cos, sin), lib["apply_rope"](k, cos, sin)
    out = lib["attention"](q, k, v).transpose(1, 2).reshape(B, T, -1)  # (B, T, H * D)
    return F.linear(out, layer["wo"]) if project_out else out


def _ffn_branch(x, layer):
    return library_pieces()["swiglu"](x, layer["w_gate"], layer["w_up"], layer["w_down"])


def _variant(x, layer, cos, sin, eps, arrangement):
    """A block with one known mistake (or none, "right"), built from the library's pieces."""
    norm = library_pieces()["rms_norm"]
    first, second = layer["attention_norm"], layer["ffn_norm"]
    if arrangement == "swapped norms":
        first, second = second, first
    if arrangement == "post-norm":
        h = norm(x + _attention_branch(x, layer, cos, sin), first, eps)
        return norm(h + _ffn_branch(h, layer), second, eps)
    attention_update = _attention_branch(norm(x, first, eps), layer, cos, sin,
                                         rope=arrangement != "no rope")
    if arrangement == "no residual":
        h = attention_update
        return _ffn_branch(norm(h, second, eps), layer)
    if arrangement == "parallel":
        return x + attention_update + _ffn_branch(norm(x, second, eps), layer)
    h = x + attention_update
    if arrangement == "norm output added":
        h = norm(x, first, eps) + attention_update
        normed = norm(h, second, eps)
        return normed + _ffn_branch(normed, layer)
    return h + _ffn_branch(norm(h, second, eps), layer)


BLOCK_MISTAKES = {
    "the residual connection is missing: each branch's output is added to its input, "
    "x + attention(norm(x)), then h + ffn(norm(h))": "no residual",
    "the norm sits after the addition (post-norm); this block normalises each branch's input "
    "and adds the branch's output to the unnormalised stream: x + attention(norm(x))":
        "post-norm",
    "the residual adds the normalised copy; add the branch's update to the stream x itself, "
    "which the norm leaves untouched": "norm output added",
    "both branches read the block's input; the feed-forward branch reads the stream after the "
    "attention update has been added to it": "parallel",
    "the two norms' gains are swapped: attention_norm goes before attention, ffn_norm before "
    "the feed-forward network": "swapped norms",
    "queries and keys must be turned by RoPE (apply_rope) before attention": "no rope",
}


def _with_gradient(function):
    """Run function(x, layer, cos, sin, eps), backpropagate grad_out: (output, x.grad)."""
    def run(x, layer, cos, sin, eps, grad_out):
        out = function(x, layer, cos, sin, eps)
        require_tensor(out)
        if out.shape != x.shape:
            raise ValueError(f"returned shape {tuple(out.shape)}, expected {tuple(x.shape)}")
        if out.grad_fn is None:
            raise RuntimeError("the output is not connected to x by autograd")
        out.backward(grad_out)
        return out.detach(), x.grad
    return run


def _describe_block_case(case) -> str:
    x, layer = case[0], case[1]
    D = case[2].shape[-1]
    return (f"x of shape {tuple(x.shape)}, {layer['wq'].shape[0] // D} query heads and "
            f"{layer['wk'].shape[0] // D} key/value heads")


def compare_block_forward(reader) -> bool | str:
    """True, or what is wrong with the reader's block_forward (output and the gradient of x)."""
    mistakes = {message: _with_gradient(lambda *a, kind=kind: _variant(*a, kind))
                for message, kind in BLOCK_MISTAKES.items()}
    verdict = compare_function(_with_gradient(reader),
                               _with_gradient(lambda *a: _variant(*a, "right")), BLOCK_CASES,
                               mistakes, atol=1e-4, rtol=1e-4,
                               describe_case=_describe_block_case)
    if verdict is not True:
        return verdict
    return compare_function(_with_gradient(reader),
                            _with_gradient(lambda *a: _variant(*a, "right")), BF16_BLOCK_CASES,
                            atol=BF16_TOLERANCE, rtol=BF16_TOLERANCE,
                            describe_case=lambda case: "bfloat16 inputs and weights, "
                                                       + _describe_block_case(case))


def _block_probe():
    x, layer, cos, sin, eps, _ = _block_case(8, 2, 1, 1, 2, seed=0)
    return x.detach(), layer, cos, sin, eps


def exercise_1(block_forward) -> None:
    """block_forward(x, layer, cos, sin, eps) against the library's Block."""
    check("exercise 1", function_answer(block_forward, *_block_probe()), compare_block_forward,
          hint="h = x + attention branch (norm, project to q, k, v, split into heads, RoPE on q "
               "and k, attention, merge the heads, wo); then h + swiglu(norm(h)) with the "
               "second norm's gain")


def library_block_output(x, layer, cos, sin, eps):
    """What the library's Block computes for these weights (the check's reference)."""
    return _variant(x, layer, cos, sin, eps, "right")


# ---- exercise 2: model_forward ---------------------------------------------------------------


def _model_case(d_model, heads, kv_heads, batch, length, seed):
    config = _config(d_model, heads, kv_heads)
    torch.manual_seed(seed)
    model = _randomised(Transformer(config), seed)
    ids = torch.randint(0, config.vocab_size, (batch, length),
                        generator=torch.Generator().manual_seed(seed + 1))
    cos, sin = _tables(config, length)
    return model, ids, cos, sin, config.norm_eps


MODEL_CASES = tuple(_model_case(*shape, seed=20 + i) for i, shape in enumerate(SHAPES))


def _bf16_model_case(seed: int):
    model, ids, cos, sin, eps = _model_case(48, 4, 2, 2, 5, seed=seed)
    return model.to(torch.bfloat16), ids, cos.to(torch.bfloat16), sin.to(torch.bfloat16), eps


BF16_MODEL_CASES = (_bf16_model_case(seed=31),)


def _model_variant(ids, weights, cos, sin, eps, kind):
    norm = library_pieces()["rms_norm"]
    x = weights["embedding"][ids]  # (B, T, C)
    for layer in weights["layers"]:
        x = _variant(x, layer, cos, sin, eps, "right")
    if kind != "no final norm":
        x = norm(x, weights["norm"], eps)
    head = weights["embedding"] if kind == "tied" else weights["lm_head"]
    return F.linear(x, head)  # (B, T, V)


MODEL_MISTAKES = {
    "the final norm is missing: normalise the stream with weights['norm'] before the output "
    "head": "no final norm",
    "the output head is weights['lm_head']; it is the embedding only in a model that ties "
    "them, and these models do not": "tied",
}


def compare_model_forward(reader) -> bool | str:
    """True, or what is wrong with the reader's model_forward (the logits): in float32 on
    every shape, then on a model moved to bfloat16."""
    verdict = _compare_model_forward(reader, MODEL_CASES, 1e-4, MODEL_MISTAKES)
    if verdict is not True:
        return verdict
    return _compare_model_forward(reader, BF16_MODEL_CASES, BF16_TOLERANCE, {})


def _compare_model_forward(reader, model_cases, tolerance: float, known: dict) -> bool | str:
    cases = tuple((ids, model_weights(model), cos, sin, eps)
                  for model, ids, cos, sin, eps in model_cases)
    # compare_function clones the inputs, so each case's library model is found by its ids
    models = {(tuple(ids.shape), tuple(ids.flatten().tolist())): model
              for model, ids, *_ in model_cases}

    def library(ids, weights, cos, sin, eps):
        with torch.no_grad():
            return models[(tuple(ids.shape), tuple(ids.flatten().tolist()))](ids)

    mistakes = {message: (lambda *a, kind=kind: _model_variant(*a, kind))
                for message, kind in known.items()}

    def reader_no_grad(*args):
        with torch.no_grad():
            return reader(*args)

    def describe(case) -> str:
        dtype = case[1]["embedding"].dtype
        return f"ids of shape {tuple(case[0].shape)}" + (
            ", a model in bfloat16" if dtype == torch.bfloat16 else "")

    return compare_function(reader_no_grad, library, cases, mistakes, atol=tolerance,
                            rtol=tolerance, describe_case=describe)


def exercise_2(model_forward) -> None:
    """model_forward(ids, weights, cos, sin, eps) against the library's Transformer."""
    model, ids, cos, sin, eps = _model_case(8, 2, 1, 1, 2, seed=0)
    check("exercise 2", function_answer(model_forward, ids, model_weights(model), cos, sin, eps),
          compare_model_forward,
          hint="look up each id's row of the embedding, run every block_forward in order, "
               "normalise with the final norm, and multiply by the output head (V, C) "
               "transposed")


# ---- exercise 3: what tying saves in gpt2-small ----------------------------------------------


def _meta_parameters(module_type, config: ModelConfig) -> int:
    """Parameters of a Block or Transformer of this config, built without storage."""
    with torch.device("meta"):
        module = module_type(config)
    return sum(p.numel() for p in module.parameters())


def tying_fraction() -> float:
    """The fraction of the untied gpt2-small model's parameters that tying saves."""
    tied = _meta_parameters(Transformer, ModelConfig.from_preset("gpt2-small"))
    untied = _meta_parameters(Transformer, ModelConfig.from_preset("gpt2-small",
                                                                   tie_embeddings=False))
    return (untied - tied) / untied


def exercise_3(fraction) -> None:
    """The fraction of the untied gpt2-small model's parameters that tying saves."""
    check("exercise 3", fraction,
          lambda answer: math.isclose(float(answer), tying_fraction(), rel_tol=1e-3),
          hint="a fraction between 0 and 1: what tying removes, divided by the size of the model "
               "that still has it")


# ---- exercise 4 (experiment): a broken initialisation ----------------------------------------

LARGE_STD = 1.0


def initial_loss(model: Transformer, story_ids: torch.Tensor) -> float:
    """Mean next-token loss (nats) of ``model`` on story_ids (1, T + 1)."""
    with torch.no_grad():
        logits = model.eval()(story_ids[:, :-1])  # (1, T, V)
    return F.cross_entropy(logits.flatten(0, 1), story_ids[0, 1:]).item()


def _large_init_problem(model) -> str | None:
    if not isinstance(model, Transformer):
        raise TypeError("not a Transformer")
    if model.config.vocab_size != 512:
        return "use the chapter's tiny model with the 512-id tokenizer"
    std = model.layers[0].self_attn.q_proj.weight.std().item()
    if not 0.9 < std < 1.1:
        return (f"the model's weights have std {std:.2f}; re-initialise it with "
                f"init_weights(std={LARGE_STD})")
    return None


def _large_loss_is_right(loss, model, story_ids) -> bool | str:
    value = float(loss)
    try:
        usable = _large_init_problem(model) is None
    except (TypeError, AttributeError):
        usable = False
    if not usable:
        return "hand in the re-initialised model too, so that the check can measure it"
    measured = initial_loss(model, story_ids)
    if math.isclose(value, measured, rel_tol=1e-4, abs_tol=1e-4):
        return True
    return ("measure the loss of the model you hand in, exactly as in the section on the loss "
            "at initialisation: inputs story_ids[:, :-1], targets story_ids[0, 1:]")


def exercise_4(large_init_model, large_init_loss, story_ids) -> None:
    """The loss of the chapter's tiny model after init_weights(std=1.0), measured again from
    the model the reader hands back."""
    check_parts("exercise 4",
                Part("large_init_model", large_init_model,
                     lambda m: _large_init_problem(m) or True,
                     "the chapter's tiny model after init_weights(std=1.0)",
                     expects="a Transformer"),
                Part("large_init_loss", large_init_loss,
                     lambda loss: _large_loss_is_right(loss, large_init_model, story_ids),
                     "the mean cross-entropy on the story", expects="a number"))


# ---- exercise 5 (experiment): the first block's gradient at depth ----------------------------

DEPTHS = (2, 4, 8, 16, 32)
WIDTH, LENGTH = 64, 32


def _arranged(block, x, cos, sin, arrangement):
    if arrangement == "pre-norm":
        return block(x, cos, sin)
    x = block.input_layernorm(x + block.self_attn(x, cos, sin))
    return block.post_attention_layernorm(x + block.mlp(x))


def first_block_gradient(arrangement: str, num_layers: int) -> float:
    """The norm of the gradient of the first block's parameters, as exercise 5 specifies."""
    config = ModelConfig(vocab_size=64, d_model=WIDTH, num_layers=num_layers, num_heads=4,
                         max_seq_len=LENGTH)
    with torch.random.fork_rng():  # the reader's random stream is left as it was
        torch.manual_seed(0)
        blocks = nn.ModuleList(Block(config) for _ in range(num_layers))
        x = torch.randn(2, LENGTH, WIDTH)  # (B, T, C)
        with torch.no_grad():
            for matrix in (p for p in blocks.parameters() if p.dim() == 2):
                nn.init.normal_(matrix, std=1 / math.sqrt(WIDTH))
    target = torch.randn(2, LENGTH, WIDTH, generator=torch.Generator().manual_seed(1))
    cos, sin = _tables(config, LENGTH)
    y = x
    for block in blocks:
        y = _arranged(block, y, cos, sin, arrangement)
    F.mse_loss(y / y.pow(2).mean().sqrt(), target).backward()
    return torch.cat([p.grad.flatten() for p in blocks[0].parameters()]).norm().item()


def _gradients_are_right(grads) -> bool | str:
    got = {name: [float(value) for value in grads[name]] for name in ("pre-norm", "post-norm")}
    if any(len(values) != len(DEPTHS) for values in got.values()):
        raise ValueError("five norms each")
    for name in got:  # every depth of each arrangement measured again: none made up
        for index in range(len(DEPTHS)):
            measured = first_block_gradient(name, DEPTHS[index])
            if not math.isclose(got[name][index], measured, rel_tol=1e-3):
                return (f"{name} at {DEPTHS[index]} blocks differs from the check's measurement;"
                        " build a separate stack for each depth in output_shifts' order (seed 0,"
                        " that many blocks, then x, then the 1/sqrt(C) weights), with target ="
                        " torch.randn(2, 32, 64, generator=torch.Generator().manual_seed(1))"
                        " and the loss F.mse_loss")
    return True


def exercise_5(first_block_grads) -> None:
    """Gradient norm of the first block, pre-norm against post-norm, at depths 2 to 32; every
    depth of each is measured again."""
    check("exercise 5", first_block_grads, _gradients_are_right,
          hint="a dict with keys 'pre-norm' and 'post-norm', each the first block's gradient "
               "norm at 2, 4, 8, 16 and 32 blocks",
          expects="a dict {'pre-norm': [5 norms], 'post-norm': [5 norms]}")


def expected_values() -> dict[str, object]:
    """The numbers right answers give (for the test that the chapter shows none of them).

    Exercises 1 and 2 ask for functions and exercise 4's loss depends on the reader's model
    only through its seed; exercise 5's norms are measured here.
    """
    values = {"exercise 3": tying_fraction(), "exercise 3 percent": 100 * tying_fraction()}
    for name in ("pre-norm", "post-norm"):
        values[f"exercise 5 {name} 32"] = first_block_gradient(name, 32)
    return values
