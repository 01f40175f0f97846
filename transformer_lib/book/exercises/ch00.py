"""Checks for the exercises of chapter 0 (start here): counting what a configuration implies."""

from __future__ import annotations

import torch

from ...model.config import ModelConfig
from ...model.transformer import Transformer, parameter_counts
from .. import BOOK_MODEL, BOOK_VOCAB_SIZE, Part, check, check_parts, function_answer

BYTES_PER_FLOAT32 = 4


def _is_count(answer, expected: int) -> bool:
    if isinstance(answer, bool) or int(answer) != answer:
        raise TypeError("not a whole number")
    return int(answer) == expected


def _book_config(**overrides) -> ModelConfig:
    return ModelConfig(vocab_size=BOOK_VOCAB_SIZE, **{**BOOK_MODEL, **overrides})


def _book_counts() -> dict[str, int]:
    return parameter_counts(Transformer(_book_config()))


def _attention_is_right(answer) -> bool | str:
    config = _book_config()
    if _is_count(answer, _book_counts()["attention"]):
        return True
    if _is_count(answer, config.num_layers * 4 * config.d_model**2):
        return ("k_proj and v_proj are narrower than q_proj: they make num_kv_heads heads, not "
                "num_heads")
    return False


def _feed_forward_is_right(answer) -> bool | str:
    config = _book_config()
    if _is_count(answer, _book_counts()["feed_forward"]):
        return True
    if _is_count(answer, config.num_layers * 2 * config.d_model * config.ffn_hidden_dim):
        return "SwiGLU has three matrices, not two: gate_proj, up_proj and down_proj"
    return False


def exercise_1(book_attention_parameters, book_feed_forward_parameters) -> None:
    """Parameters of the book's model's attention layers and feed-forward layers, all blocks."""
    check_parts("exercise 1",
                Part("book_attention_parameters", book_attention_parameters, _attention_is_right,
                     "each block has four projections; q_proj and o_proj map d_model to d_model, "
                     "k_proj and v_proj map d_model to num_kv_heads * head_dim. Try your method "
                     "on the tiny preset first: the demo printed its count", "a whole number"),
                Part("book_feed_forward_parameters", book_feed_forward_parameters,
                     _feed_forward_is_right,
                     "each block's SwiGLU maps d_model to ffn_hidden_dim twice and back once",
                     "a whole number"))


def exercise_2(untied_extra_parameters) -> None:
    """Parameters an untied output layer would add to the seed-22.5M preset."""
    config = ModelConfig.from_preset("seed-22.5M")
    check("exercise 2", untied_extra_parameters,
          lambda answer: _is_count(answer, config.vocab_size * config.d_model),
          hint="an untied output layer is a matrix of its own that maps a d_model-wide vector to "
               "one score per vocabulary entry; read both sizes from seed_config",
          expects="a whole number")


def _count_is_right(count_parameters) -> bool:
    torch.manual_seed(0)
    models = [Transformer(ModelConfig.from_preset("tiny")),
              Transformer(ModelConfig.from_preset("tiny", tie_embeddings=False)),
              Transformer(_book_config())]
    return all(_is_count(count_parameters(model), parameter_counts(model)["total"])
               for model in models)


def exercise_3(count_parameters) -> None:
    """count_parameters(model): the number of distinct learned numbers, a shared tensor once."""
    probe = Transformer(ModelConfig.from_preset("tiny"))
    check("exercise 3", function_answer(count_parameters, probe), _count_is_right,
          hint="every learned tensor of the model is reachable from the model itself; a tensor "
               "that two layers share must be counted once, and an untied model has one more")


def kv_cache_bytes(config: ModelConfig, positions: int) -> int:
    """float32 bytes of the keys and values every layer keeps for ``positions`` tokens."""
    head_dim = config.d_model // config.num_heads
    return (2 * config.num_layers * config.num_kv_heads * head_dim * positions
            * BYTES_PER_FLOAT32)


def _cache_is_right(answer, config: ModelConfig) -> bool | str:
    full = kv_cache_bytes(config, config.max_seq_len)
    if _is_count(answer, full):
        return True
    if _is_count(answer, full // BYTES_PER_FLOAT32):
        return "that counts numbers; a float32 number takes 4 bytes"
    if _is_count(answer, full // config.max_seq_len):
        return f"that is one token's share; the cache holds all {config.max_seq_len} positions"
    return False


def exercise_4(kv_cache_bytes_gqa, kv_cache_bytes_without_gqa) -> None:
    """float32 bytes of the book's model's KV cache for a full context, with its 2 key/value
    heads and with one key/value head per query head."""
    grouped = _book_config()
    ungrouped = _book_config(num_kv_heads=grouped.num_heads)
    hint = ("every layer keeps a key and a value for each key/value head at every position, "
            "one head is d_model / num_heads numbers wide, and a float32 number takes 4 bytes")
    check_parts("exercise 4",
                Part("kv_cache_bytes_gqa", kv_cache_bytes_gqa,
                     lambda answer: _cache_is_right(answer, grouped), hint, "a whole number"),
                Part("kv_cache_bytes_without_gqa", kv_cache_bytes_without_gqa,
                     lambda answer: _cache_is_right(answer, ungrouped),
                     "now with as many key/value heads as query heads", "a whole number"))


def expected_values() -> dict[str, int]:
    """The numbers right answers give (for the test that the chapter shows none of them)."""
    counts, config = _book_counts(), _book_config()
    seed = ModelConfig.from_preset("seed-22.5M")
    return {
        "exercise 1 attention": counts["attention"],
        "exercise 1 feed-forward": counts["feed_forward"],
        "exercise 2": seed.vocab_size * seed.d_model,
        "exercise 4 gqa": kv_cache_bytes(config, config.max_seq_len),
        "exercise 4 without": kv_cache_bytes(_book_config(num_kv_heads=config.num_heads),
                                             config.max_seq_len),
    }
