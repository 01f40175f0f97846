"""Checks for the exercises of chapter 10 (interop with Hugging Face transformers)."""

from __future__ import annotations

import torch

from ...model.config import ModelConfig
from ...model.rope import apply_rope, apply_rope_interleaved, rope_tables
from ...model.transformer import Transformer
from .. import check, function_answer


def exercise_1(to_hf_name) -> None:
    """to_hf_name(name): our parameter name -> the name of the same tensor in LlamaForCausalLM."""
    from ...interop import to_hf

    answer = function_answer(to_hf_name, "norm.weight")

    def is_right(function) -> bool:
        with torch.random.fork_rng():  # a throwaway model: the reader's random stream is kept
            torch.manual_seed(0)
            ours = Transformer(ModelConfig.from_preset("tiny", num_layers=2, tie_embeddings=False))
        theirs = to_hf(ours).state_dict()
        names = {function(name) for name in ours.state_dict()}
        return names == set(theirs) and all(
            torch.equal(tensor, theirs[function(name)])
            for name, tensor in ours.state_dict().items())

    check("exercise 1", answer, is_right,
          hint="print a few names from both state dicts side by side: what is added to ours, "
               "and which tensor does not live where the others do?")


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


def exercise_3(drift) -> None:
    """(max |logit difference|, fraction of positions with the same argmax) after a wrong export."""

    def is_right(answer) -> bool:
        max_difference, agreement = (float(a) for a in answer)
        return max_difference > 1.0 and 0.0 <= agreement < 1.0

    check("exercise 3", drift, is_right,
          hint="give a pair; permute every layer's q_proj and k_proj rows of the exported copy "
               "(k_proj has num_kv_heads heads), then compare its logits with ours on a real "
               "sentence of several dozen tokens")
