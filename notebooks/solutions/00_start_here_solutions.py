# %% [markdown]
# # Solutions to chapter 0: Start here
#
# The answers to the exercises of chapter 0, each followed by the same check call as in the
# chapter, which now prints `correct`. Every answer is computed from a configuration, so you
# can follow each count back to its fields.

# %%
import torch

from transformer_lib import ModelConfig, Transformer, book
from transformer_lib.book.exercises import ch00

# %% [markdown]
# **Exercise 1.** The embedding table has one row per token id and `d_model` numbers per row:
# `vocab_size × d_model`.

# %%
tiny_config = ModelConfig.from_preset("tiny")
tiny_embedding_parameters = tiny_config.vocab_size * tiny_config.d_model
print(f"{tiny_config.vocab_size} ids x {tiny_config.d_model} = {tiny_embedding_parameters:,}")

# %%
ch00.exercise_1(tiny_embedding_parameters)

# %% [markdown]
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


untied = Transformer(ModelConfig.from_preset("tiny", tie_embeddings=False))
print(f"tiny, tied: {count_parameters(Transformer(tiny_config)):,}; "
      f"untied: {count_parameters(untied):,}")

# %%
ch00.exercise_3(count_parameters)

# %% [markdown]
# **Exercise 4.** Each layer caches one key and one value per key/value head, each
# `d_model / num_heads` = 32 numbers wide: 2 × 4 layers × 2 heads × 32 = 512 numbers per
# token. With one key/value head per query head (4 instead of 2) it would be twice as many.

# %%
book_config = ModelConfig(vocab_size=book.BOOK_VOCAB_SIZE, **book.BOOK_MODEL)
head_dim = book_config.d_model // book_config.num_heads
kv_numbers_per_token = 2 * book_config.num_layers * book_config.num_kv_heads * head_dim
print(f"{kv_numbers_per_token} numbers per token; "
      f"{2 * book_config.num_layers * book_config.num_heads * head_dim} without grouping")

# %%
ch00.exercise_4(kv_numbers_per_token)
