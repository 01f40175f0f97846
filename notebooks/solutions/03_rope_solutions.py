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
from transformer_lib.book.pieces import keep
from transformer_lib.model import rope

_ = torch.manual_seed(0)

# %% [markdown]
# ## Exercise 1
#
# The $D/2$ speeds are $\theta^{-2i/D}$ for $i = 0, \dots, D/2 - 1$: `torch.arange(0, D, 2)`
# gives $2i$ directly. The angles are the outer product of the positions $0, \dots, T-1$ with
# the speeds, $(T, D/2)$; concatenating the table with itself puts pair $i$'s angle in columns
# $i$ and $i + D/2$.

# %%
def rope_tables(head_dim: int, max_seq_len: int,
                theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * theta_i for positions 0 .. max_seq_len - 1 and the head_dim/2
    speeds theta_i = theta^(-2i/head_dim): each (max_seq_len, head_dim), float32, split-halves
    layout (columns i and i + head_dim/2 hold pair i's angle)."""
    speeds = theta ** (-torch.arange(0, head_dim, 2).float() / head_dim)  # (D/2,)
    angles = torch.outer(torch.arange(max_seq_len).float(), speeds)  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D): pair i in columns i and i + D/2
    return angles.cos(), angles.sin()


# %%
ch03.exercise_1(rope_tables)

# %%
keep(rope_tables)

# %% [markdown]
# ## Exercise 2
#
# With $x_1$ the first half of `x` and $x_2$ the second, pair $i$ is $(a, b) = (x_{1,i},
# x_{2,i})$. Its turned value $(a\cos - b\sin, b\cos + a\sin)$ is `x * cos` plus the vector
# $(-x_2, x_1)$ times `sin`: the pair turned by 90 degrees, scaled by the sine. Casting the
# tables to `x`'s dtype keeps a bfloat16 input in bfloat16.

# %%
def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every pair (x_i, x_(i+D/2)) of x (B, H, T, D) by its position's angle; cos and
    sin are (T, D) tables in the split-halves layout. Returns (B, H, T, D) in x's dtype."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, D/2) each
    turned = torch.cat([-x2, x1], dim=-1)  # every pair turned by 90 degrees
    return x * cos.to(x.dtype) + turned * sin.to(x.dtype)


# %%
ch03.exercise_2(apply_rope)

# %%
keep(apply_rope)

# %% [markdown]
# ## Exercise 3
#
# The score depends on the offset only, so put the query at position 0, where RoPE leaves it
# unchanged, and the key at position `offset`.

# %%
def relative_score(query: torch.Tensor, key: torch.Tensor, offset: int) -> float:
    """The score of `query` against `key` placed `offset` positions after it."""
    cos, sin = rope.rope_tables(key.shape[-1], offset + 1)
    key_at_offset = rope.apply_rope(key.view(1, 1, 1, -1), cos[offset:], sin[offset:]).view(-1)
    return float(query @ key_at_offset)


# %%
ch03.exercise_3(relative_score)

# %% [markdown]
# ## Exercise 4
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
ch03.exercise_4(turning_pairs)

# %% [markdown]
# With base 10,000, pairs 0 to 6 of the stored model's 16 complete a turn inside its 256-token
# context; with 500,000 only pairs 0 to 4 do. Pairs 5 and 6 join the ones that never complete a
# turn: their angle still grows with the offset, so they can still tell distances apart, and
# they never wrap round to an angle that a shorter distance also reaches.

# %%
assert turning_pairs(32, 10000.0, 256) == list(range(7))
assert turning_pairs(32, 500000.0, 256) == list(range(5))

# %% [markdown]
# ## Exercise 5
#
# Two models with the stored weights, one with the base it was trained with and one with
# 500,000, scored on the same 32 validation windows of 256 tokens.

# %%
stored = book.stored_model()
validation_ids = torch.from_numpy(
    book.book_tokens("validation", stored.tokenizer).tokens.astype("int64"))
theta_windows = validation_ids[:32 * 257].view(32, 257)  # (32, 257): inputs and next tokens
losses = {}
for base in (10000.0, 500000.0):
    model = Transformer(dataclasses.replace(stored.model.config, rope_theta=base)).eval()
    model.load_state_dict(stored.model.state_dict())
    with torch.no_grad():
        logits = model(theta_windows[:, :-1])  # (32, 256, vocab)
    losses[base] = F.cross_entropy(logits.flatten(0, 1), theta_windows[:, 1:].flatten()).item()
    print(f"base {base:>9,.0f}: validation loss {losses[base]:.2f} nats/token")
print(f"the larger base costs {losses[500000.0] - losses[10000.0]:.2f} nats per token")

# %%
ch03.exercise_5(theta_windows, losses)
assert losses[500000.0] > losses[10000.0] + 0.1

# %% [markdown]
# With the base it was trained with, the stored model scores the lower loss printed above;
# with 500,000 the loss goes up by the difference printed on the last line, although nothing
# was retrained. The weights learned to read the angles that base 10,000 produces, and the new
# base turns every pair except pair 0 more slowly, so the same offset now looks like a shorter
# one. Changing $\theta$ is a change to the model, which is why long-context models that
# raise it are trained further afterwards.
