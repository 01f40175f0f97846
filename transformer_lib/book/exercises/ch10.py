"""Checks for the exercises of chapter 10 (interop with Hugging Face transformers).

Exercise 1 maps Meta's (and llama2.c's) parameter names to ours; exercise 3 takes the wrongly
paired export the reader built and recomputes its drift from the stored model.
"""

from __future__ import annotations

import math

import torch

from ...model.config import ModelConfig
from ...model.rope import (
    apply_rope,
    apply_rope_interleaved,
    interleaved_to_halves,
    rope_tables,
)
from ...model.transformer import Transformer
from .. import Part, check, check_parts, function_answer, is_placeholder
from ..checking import say

# ---- exercise 1: Meta's names -> ours ---------------------------------------------------------

# Meta's original Llama code (and llama2.c's model.py) name each of our modules so:
META_NAMES = {"embed_tokens": "tok_embeddings", "norm": "norm", "lm_head": "output",
              "input_layernorm": "attention_norm", "post_attention_layernorm": "ffn_norm",
              "self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
              "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
              "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
              "mlp.up_proj": "feed_forward.w3"}


def to_meta_name(name: str) -> str:
    """Our parameter name -> Meta's name of the same tensor."""
    prefix, _, rest = name.partition("layers.")
    if prefix == "" and rest:
        layer, _, module = rest.partition(".")
        module, _, kind = module.rpartition(".")
        return f"layers.{layer}.{META_NAMES[module]}.{kind}"
    module, _, kind = name.rpartition(".")
    return f"{META_NAMES[module]}.{kind}"


def _our_names() -> list[str]:
    """Every parameter name of an untied 12-layer model (two-digit layer numbers included)."""
    with torch.random.fork_rng(), torch.device("meta"):  # names only; the reader's seed kept
        model = Transformer(ModelConfig.from_preset("tiny", num_layers=12, tie_embeddings=False))
    return list(model.state_dict())


def _swapped(name: str) -> str:
    for a, b in (("gate_proj", "up_proj"), ("up_proj", "gate_proj")):
        if a in name:
            return name.replace(a, b)
    return name


def _meta_mapping_is_right(function) -> bool | str:
    ours = _our_names()
    got = {name: function(to_meta_name(name)) for name in ours}
    if all(got[name] == name for name in ours):
        return True
    if all(got[name] == _swapped(name) for name in ours):
        return ("gate and up are swapped: in Meta's FeedForward, which of w1 and w3 goes "
                "through the SiLU?")
    wrong = next(name for name in ours if got[name] != name)
    return f"{to_meta_name(wrong)!r} gave {got[wrong]!r}, which is not the same tensor's name"


def exercise_1(from_meta_name) -> None:
    """from_meta_name(name): Meta's (and llama2.c's) parameter name -> ours."""
    answer = function_answer(from_meta_name, "layers.0.attention.wq.weight")
    check("exercise 1", answer, _meta_mapping_is_right,
          hint="print our model's state-dict names beside the Meta names listed above: the "
               "layer number stays, the module's path changes")


def exercise_2(order) -> None:
    """The order of our (split-halves) rows that gives the interleaved layout, for head size 8."""

    def is_right(answer) -> bool:
        index = [int(i) for i in answer]
        if sorted(index) != list(range(8)):
            return False
        generator = torch.Generator().manual_seed(0)
        q = torch.randn(1, 1, 5, 8, generator=generator)  # (B, H, T, D) in our layout
        cos, sin = rope_tables(8, 5)
        ours = apply_rope(q, cos, sin)
        interleaved = apply_rope_interleaved(q[..., index], torch.arange(5), 10000.0)
        return torch.allclose(interleaved, ours[..., index], atol=1e-6)

    check("exercise 2", order, is_right,
          hint="a list of the 8 row indices; in the interleaved layout rows 2i and 2i + 1 form "
               "pair i, so find which two of our rows form pair i in the split-halves layout")


# ---- exercise 3 (experiment): a wrong export ----------------------------------------------


def wrongly_paired_logits(wrong_model, input_ids: torch.Tensor):
    """(our stored model's logits, the wrong copy's logits), each (T, V), on input_ids (1, T)."""
    from .. import stored_model

    model = stored_model().model
    with torch.no_grad():
        return model(input_ids)[0], wrong_model(input_ids).logits[0]


def _is_the_wrong_export(wrong_model) -> bool:
    """True when every layer's q and k rows are permuted as the exercise says, the rest kept."""
    from .. import stored_model

    model = stored_model().model
    config = model.config
    layers = wrong_model.model.layers
    if len(layers) != config.num_layers:
        return False
    for ours, theirs in zip(model.layers, layers, strict=True):
        for name, heads in (("q_proj", config.num_heads), ("k_proj", config.num_kv_heads)):
            want = interleaved_to_halves(getattr(ours.self_attn, name).weight, heads)
            if not torch.equal(getattr(theirs.self_attn, name).weight, want):
                return False
        if not torch.equal(theirs.self_attn.v_proj.weight, ours.self_attn.v_proj.weight):
            return False
    return True


def drift_of(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    """(max |logit difference|, fraction of positions where both predict the same token)."""
    same = (ours.argmax(-1) == theirs.argmax(-1)).float()
    return (ours - theirs).abs().max().item(), same.mean().item()


def exercise_3(wrong_model, input_ids, drift, unaffected_position) -> None:
    """The wrongly paired export, the ids it ran on, (max |logit difference|, fraction of
    positions with the same argmax) and the position left unchanged: recomputed here."""
    if is_placeholder(drift) and is_placeholder(unaffected_position):
        print("exercise 3: not attempted yet")
        return
    try:
        usable = (isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2
                  and input_ids.shape[0] == 1 and input_ids.shape[1] >= 16
                  and _is_the_wrong_export(wrong_model))
    except (AttributeError, TypeError, RuntimeError):
        usable = False
    if not usable:
        say("exercise 3: not yet - hint: pass the exported copy whose q_proj and k_proj rows you "
            "permuted in every layer (and nothing else), and the input_ids (1, T) of at least 16 "
            "tokens you ran both models on")
        return
    ours, theirs = wrongly_paired_logits(wrong_model, input_ids)
    max_difference, agreement = drift_of(ours, theirs)
    unchanged = [t for t in range(ours.shape[0]) if torch.equal(ours[t], theirs[t])]

    def drift_is_right(answer) -> bool:
        got_max, got_agreement = (float(value) for value in answer)
        return (math.isclose(got_max, max_difference, rel_tol=1e-3)
                and math.isclose(got_agreement, agreement, abs_tol=1e-6))

    def position_is_right(answer) -> bool:
        if isinstance(answer, bool) or int(answer) != answer:
            raise TypeError("not a whole number")
        return unchanged == [int(answer)]

    check_parts("exercise 3",
                Part("drift", drift, drift_is_right,
                     "take the largest absolute difference over all positions and the whole "
                     "vocabulary, and compare the argmax of both at each position",
                     expects="a pair (max |logit difference|, fraction with the same argmax)"),
                Part("unaffected_position", unaffected_position, position_is_right,
                     "compare the two models' logits position by position: at which one are "
                     "they exactly equal, and what does attention there have to choose from?",
                     expects="a whole number, a position"))


def expected_values() -> dict[str, object]:
    """The numbers right answers give on the chapter's text (for the test that the chapter shows
    none of them)."""
    from ...data.stories import book_stories
    from ...interop import to_hf
    from .. import stored_model

    stored = stored_model()
    model, tokenizer = stored.model, stored.tokenizer
    ids = torch.tensor([[tokenizer.eot_id] + tokenizer.encode(book_stories("validation")[0])])
    wrong = to_hf(model)
    with torch.no_grad():
        for layer in wrong.model.layers:
            for name, heads in (("q_proj", model.config.num_heads),
                                ("k_proj", model.config.num_kv_heads)):
                weight = getattr(layer.self_attn, name).weight
                weight.copy_(interleaved_to_halves(weight, heads))
    max_difference, agreement = drift_of(*wrongly_paired_logits(wrong, ids))
    return {"exercise 2": [0, 4, 1, 5, 2, 6, 3, 7], "exercise 3 max": max_difference,
            "exercise 3 agreement": agreement}
