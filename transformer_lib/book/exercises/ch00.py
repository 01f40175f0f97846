"""Checks for the exercises of chapter 0 (start here): counting what a configuration implies."""

from __future__ import annotations

import torch

from ...model.config import ModelConfig
from ...model.transformer import Transformer, parameter_counts
from .. import BOOK_MODEL, BOOK_VOCAB_SIZE, check, function_answer


def _is_int(answer, expected: int) -> bool:
    return not isinstance(answer, bool) and int(answer) == answer and int(answer) == expected


def exercise_1(tiny_embedding_parameters) -> None:
    """Parameters of the tiny preset's embedding table."""
    config = ModelConfig.from_preset("tiny")
    check("exercise 1", tiny_embedding_parameters,
          lambda answer: _is_int(answer, config.vocab_size * config.d_model),
          hint="the table holds one row per token id; how many numbers are in one row? Both "
               "sizes are fields of the configuration the demo printed")


def exercise_2(untied_extra_parameters) -> None:
    """Parameters an untied output layer would add to the seed-22.5M preset."""
    config = ModelConfig.from_preset("seed-22.5M")
    check("exercise 2", untied_extra_parameters,
          lambda answer: _is_int(answer, config.vocab_size * config.d_model),
          hint="an untied output layer is a matrix of its own that maps a d_model-wide vector to "
               "one score per vocabulary entry; read both sizes from seed_config")


def _count_is_right(count_parameters) -> bool:
    torch.manual_seed(0)
    models = [Transformer(ModelConfig.from_preset("tiny")),
              Transformer(ModelConfig.from_preset("tiny", tie_embeddings=False)),
              Transformer(ModelConfig(vocab_size=BOOK_VOCAB_SIZE, **BOOK_MODEL))]
    return all(_is_int(count_parameters(model), parameter_counts(model)["total"])
               for model in models)


def exercise_3(count_parameters) -> None:
    """count_parameters(model): the number of distinct learned numbers, a shared tensor once."""
    probe = Transformer(ModelConfig.from_preset("tiny"))
    check("exercise 3", function_answer(count_parameters, probe), _count_is_right,
          hint="every learned tensor of the model is reachable from the model itself; a tensor "
               "that two layers share must be counted once, and an untied model has one more")


def exercise_4(kv_numbers_per_token) -> None:
    """Numbers the book's model caches per generated token (keys and values, all layers)."""
    config = ModelConfig(vocab_size=BOOK_VOCAB_SIZE, **BOOK_MODEL)
    expected = 2 * config.num_layers * config.num_kv_heads * (config.d_model // config.num_heads)
    check("exercise 4", kv_numbers_per_token, lambda answer: _is_int(answer, expected),
          hint="every layer keeps a key and a value for each key/value head (not each query "
               "head), and one head is d_model / num_heads numbers wide")
