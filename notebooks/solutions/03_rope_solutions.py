# %% [markdown]
# # Solutions to chapter 3: Rotary position embeddings
#
# One answer per exercise of chapter 3, each followed by the same check the chapter calls. The
# two experiments, a larger $\theta$ on paper and on the stored model, are run here and their
# measured results stated beside the output.

# %%
import dataclasses
import math

import torch
import torch.nn.functional as F

from transformer_lib import Transformer, book
from transformer_lib.book.exercises import ch03
from transformer_lib.model.rope import apply_rope, rope_tables

_ = torch.manual_seed(0)

# %% [markdown]
# ## Exercise 1
#
# $\lambda_8 = 2\pi \cdot 10000^{2 \cdot 8/64} = 2\pi \cdot 10000^{1/4} = 2\pi \cdot 10 \approx
# 62.8$ tokens.

# %%
wavelength_pair_8 = 2 * math.pi * 10000.0 ** (2 * 8 / 64)
print(f"{wavelength_pair_8:.2f} tokens")

# %%
ch03.exercise_1(wavelength_pair_8)

# %% [markdown]
# ## Exercise 2
#
# The score depends on the offset only, so put the query at position 0, where RoPE leaves it
# unchanged, and the key at position `offset`.

# %%
def relative_score(query: torch.Tensor, key: torch.Tensor, offset: int) -> float:
    """The score of `query` against `key` placed `offset` positions after it."""
    cos, sin = rope_tables(key.shape[-1], offset + 1)
    key_at_offset = apply_rope(key.view(1, 1, 1, -1), cos[offset:], sin[offset:]).view(-1)
    return float(query @ key_at_offset)


# %%
ch03.exercise_2(relative_score)

# %% [markdown]
# ## Exercise 3
#
# Pair $i$ turns once every $\lambda_i = 2\pi\,\text{base}^{2i/D}$ tokens; it completes a turn
# inside the context when $\lambda_i$ is at most the context length.

# %%
def turning_pairs(head_dim: int, base: float, context_length: int) -> list[int]:
    """Indices of the RoPE pairs whose wavelength is at most context_length tokens."""
    return [i for i in range(head_dim // 2)
            if 2 * math.pi * base ** (2 * i / head_dim) <= context_length]


for base in (10000.0, 500000.0):
    print(f"base {base:>9,.0f}: pairs that turn within 256 tokens: {turning_pairs(32, base, 256)}")

# %%
ch03.exercise_3(turning_pairs)

# %% [markdown]
# With base 10,000, pairs 0 to 6 of the stored model's 16 complete a turn inside its 256-token
# context; with 500,000 only pairs 0 to 4 do. Pairs 5 and 6 join the ones that never complete a
# turn: their angle still grows with the offset, so they can still tell distances apart, and
# they never wrap round to an angle that a shorter distance also reaches.

# %%
assert turning_pairs(32, 10000.0, 256) == list(range(7))
assert turning_pairs(32, 500000.0, 256) == list(range(5))

# %% [markdown]
# ## Exercise 4
#
# Two models with the stored weights, one with the base it was trained with and one with
# 500,000, scored on the same 32 validation windows of 256 tokens.

# %%
stored = book.stored_model()
validation_ids = torch.from_numpy(
    book.book_tokens("validation", stored.tokenizer).tokens.astype("int64"))
windows = validation_ids[:32 * 257].view(32, 257)  # (32, 257): inputs and their next tokens
losses = {}
for base in (10000.0, 500000.0):
    model = Transformer(dataclasses.replace(stored.model.config, rope_theta=base)).eval()
    model.load_state_dict(stored.model.state_dict())
    with torch.no_grad():
        logits = model(windows[:, :-1])  # (32, 256, vocab)
    losses[base] = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()).item()
    print(f"base {base:>9,.0f}: validation loss {losses[base]:.2f} nats/token")

# %%
ch03.exercise_4(losses)

# %% [markdown]
# With the base it was trained with, the stored model scores 2.64 nats per token on these
# windows; with 500,000 it scores 2.95. Nothing was retrained, yet the loss went up by 0.31
# nats: the weights learned to read the angles that base 10,000 produces, and the new base
# turns every pair except pair 0 more slowly, so the same offset now looks like a shorter
# one. Changing $\theta$ is a change to the model, which is why long-context models that
# raise it are trained further afterwards.

# %%
assert losses[500000.0] > losses[10000.0] + 0.1
