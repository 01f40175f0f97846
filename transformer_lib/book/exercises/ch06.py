"""Checks for the exercises of chapter 6 (the block and the model)."""

from __future__ import annotations

import math

import torch

from ...model.block import Block
from ...model.config import ModelConfig
from ...model.transformer import Transformer
from .. import check, function_answer


def _meta_parameters(module_type, config: ModelConfig) -> int:
    """Parameters of a Block or Transformer of this config, built without storage."""
    with torch.device("meta"):
        module = module_type(config)
    return sum(p.numel() for p in module.parameters())


# Several shapes, so that a formula written for one preset only does not pass: full multi-head
# attention, grouped-query attention, one key/value head, and an explicit SwiGLU width.
_BLOCK_CONFIGS = (
    dict(vocab_size=512, d_model=256, num_layers=2, num_heads=8),
    dict(vocab_size=512, d_model=128, num_layers=2, num_heads=4, num_kv_heads=2),
    dict(vocab_size=512, d_model=96, num_layers=2, num_heads=6, num_kv_heads=1,
         ffn_hidden_dim=200),
)


def _block_parameters_is_right(block_parameters) -> bool:
    for settings in _BLOCK_CONFIGS:
        config = ModelConfig(**settings)
        if int(block_parameters(config)) != _meta_parameters(Block, config):
            return False
    return True


def exercise_1(block_parameters) -> None:
    """block_parameters(config): the parameters of one block, by formula."""
    check("exercise 1", function_answer(block_parameters, ModelConfig(**_BLOCK_CONFIGS[0])),
          _block_parameters_is_right,
          hint="list every weight of a block with its shape; with grouped-query attention the "
               "key and value projections are narrower than the query's, and the two norms "
               "have weights too")


def exercise_2(tying_fraction) -> None:
    """The fraction of the untied gpt2-small model's parameters that tying saves."""
    tied = _meta_parameters(Transformer, ModelConfig.from_preset("gpt2-small"))
    untied = _meta_parameters(Transformer, ModelConfig.from_preset("gpt2-small",
                                                                   tie_embeddings=False))
    check("exercise 2", tying_fraction,
          lambda answer: math.isclose(float(answer), (untied - tied) / untied, rel_tol=1e-3),
          hint="a fraction between 0 and 1: what tying removes, divided by the size of the model "
               "that still has it")


def exercise_3(large_init_loss) -> None:
    """The loss of the chapter's tiny model on the story after init_weights(std=1.0)."""
    uniform = math.log(512)
    check("exercise 3", large_init_loss,
          lambda answer: math.isfinite(float(answer)) and float(answer) > uniform + 2.0,
          hint="re-initialise the model with init_weights and a standard deviation of 1, then "
               "measure the cross-entropy exactly as in the section on the loss at "
               "initialisation, on the same story")


def _gradients_are_right(first_block_grads) -> bool:
    depths = 5  # L = 2, 4, 8, 16, 32
    pre = [float(value) for value in first_block_grads["pre-norm"]]
    post = [float(value) for value in first_block_grads["post-norm"]]
    if len(pre) != depths or len(post) != depths:
        return False
    if not all(math.isfinite(value) and value > 0 for value in pre + post):
        return False
    post_growth, pre_growth = post[-1] / post[0], pre[-1] / pre[0]
    return post_growth > 10 * pre_growth and post[-1] > post[2] > post[0]


def exercise_4(first_block_grads) -> None:
    """Gradient norm of the first block, pre-norm against post-norm, at depths 2 to 32."""
    check("exercise 4", first_block_grads, _gradients_are_right,
          hint="a dict with keys 'pre-norm' and 'post-norm', each the first block's gradient "
               "norm at 2, 4, 8, 16 and 32 blocks; draw the weights at the scale of the "
               "pre-norm/post-norm section and call backward on a loss of the normalised output")
