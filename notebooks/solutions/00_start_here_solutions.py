# %% [markdown]
# # Solutions to chapter 0: Start here
#
# The answers to the exercises of chapter 0, each followed by the same check call as in the
# chapter, which now prints `correct`. Every answer is computed from a configuration, so you
# can follow each count back to its fields.

# %%
import torch

from transformer_lib import ModelConfig, Transformer, book, parameter_counts
from transformer_lib.book.exercises import ch00

# %% [markdown]
# **Exercise 1.** In each block, `q_proj` and `o_proj` are `d_model × d_model`; `k_proj` and
# `v_proj` make only `num_kv_heads` heads of `head_dim = d_model / num_heads` numbers, so each
# is `d_model × (num_kv_heads · head_dim)`. The SwiGLU layer has `gate_proj` and `up_proj`,
# `d_model × ffn_hidden_dim` each, and `down_proj`, `ffn_hidden_dim × d_model`. No layer has a
# bias. The same sums give the demo's counts for the `tiny` preset (24,576 and 73,728).

# %%
def attention_and_feed_forward(config: ModelConfig) -> tuple[int, int]:
    d, head_dim = config.d_model, config.d_model // config.num_heads
    attention = 2 * d * d + 2 * d * config.num_kv_heads * head_dim
    feed_forward = 3 * d * config.ffn_hidden_dim
    return config.num_layers * attention, config.num_layers * feed_forward


book_config = ModelConfig(vocab_size=book.BOOK_VOCAB_SIZE, **book.BOOK_MODEL)
book_attention_parameters, book_feed_forward_parameters = attention_and_feed_forward(book_config)
print(f"attention: {book_attention_parameters:,}; feed-forward: {book_feed_forward_parameters:,}")
tiny_counts = parameter_counts(Transformer(ModelConfig.from_preset("tiny")))
assert attention_and_feed_forward(ModelConfig.from_preset("tiny")) == (
    tiny_counts["attention"], tiny_counts["feed_forward"])

# %%
ch00.exercise_1(book_attention_parameters, book_feed_forward_parameters)
book_total = parameter_counts(Transformer(book_config))["total"]
assert round((book_attention_parameters + book_feed_forward_parameters) / book_total, 2) == 0.75
assert book_feed_forward_parameters == 3 * book_attention_parameters

# %% [markdown]
# Three quarters of the book's model sit in these layers, and the feed-forward layers hold
# three times as many parameters as attention.
#
# **Exercise 2.** An untied output layer is a second `vocab_size × d_model` matrix (one row of
# weights per vocabulary entry), so untying adds as many parameters as the embedding table
# holds: more than half of the tied model again.

# %%
seed_config = ModelConfig.from_preset("seed-22.5M")
untied_extra_parameters = seed_config.vocab_size * seed_config.d_model
print(f"{seed_config.vocab_size:,} x {seed_config.d_model} = {untied_extra_parameters:,}")

# %%
ch00.exercise_2(untied_extra_parameters)
assert untied_extra_parameters > 22_505_984 / 2

# %% [markdown]
# **Exercise 3.** `model.parameters()` yields every learned tensor once, even the embedding
# matrix that `lm_head` shares, so summing their sizes counts each number once.

# %%
def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


tiny_config = ModelConfig.from_preset("tiny")
untied = Transformer(ModelConfig.from_preset("tiny", tie_embeddings=False))
print(f"tiny, tied: {count_parameters(Transformer(tiny_config)):,}; "
      f"untied: {count_parameters(untied):,}")

# %%
ch00.exercise_3(count_parameters)

# %% [markdown]
# **Exercise 4.** Each layer caches one key and one value per key/value head at every
# position, each `d_model / num_heads` = 32 numbers wide: 2 × 4 layers × 2 heads × 32 = 512
# numbers per token, 4 bytes each, for 256 positions. With one key/value head per query head
# (4 instead of 2) it is twice as much.

# %%
def kv_cache_bytes(config: ModelConfig) -> int:
    head_dim = config.d_model // config.num_heads
    numbers_per_token = 2 * config.num_layers * config.num_kv_heads * head_dim
    return numbers_per_token * 4 * config.max_seq_len


kv_cache_bytes_gqa = kv_cache_bytes(book_config)
kv_cache_bytes_without_gqa = kv_cache_bytes(
    ModelConfig(vocab_size=book.BOOK_VOCAB_SIZE, **{**book.BOOK_MODEL, "num_kv_heads": 4}))
print(f"{kv_cache_bytes_gqa:,} bytes with grouped-query attention; "
      f"{kv_cache_bytes_without_gqa:,} without")

# %%
ch00.exercise_4(kv_cache_bytes_gqa, kv_cache_bytes_without_gqa)
assert kv_cache_bytes_without_gqa == 2 * kv_cache_bytes_gqa

# %% [markdown]
# Half a megabyte is nothing for a model this small, but the cache grows with the layers, the
# heads, the context and the batch: for a large model serving long contexts to many users it
# is what fills the GPU's memory, and grouped-query attention divides it by the number of
# query heads that share a key/value head.
