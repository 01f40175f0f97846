# %% [markdown]
# # Solutions to chapter 4: Attention
#
# One answer per exercise of chapter 4, each followed by the same check the chapter calls. The
# experiment, the trained model without the $1/\sqrt{D}$, is run here and its measured result
# stated beside the output.

# %%
import copy
import math

import torch
import torch.nn.functional as F

from transformer_lib import book
from transformer_lib.book.exercises import ch04
from transformer_lib.book.pieces import keep
from transformer_lib.data import book_stories
from transformer_lib.model.rope import apply_rope, rope_tables

_ = torch.manual_seed(0)

# %% [markdown]
# ## Exercise 1
#
# Query $i$ sits at position $i + S - T$, so the mask allows key $j$ when
# $j \le i + S - T$: `torch.ones(T, S).tril(S - T)` keeps exactly the entries on or below the
# diagonal shifted $S - T$ columns to the right. Each key/value head is repeated for its group
# of neighbouring query heads (`repeat_interleave` on the head axis). The scores and the
# softmax run in float32, as the library's do, and the result goes back to `q`'s dtype.

# %%
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal grouped-query attention. q (B, H, T, D); k and v (B, K, S, D) with S >= T and H
    a multiple of K. Query i sits at position i + S - T and reads keys 0 .. i + S - T; query
    head h reads key/value head h // (H // K). Returns (B, H, T, D) in q's dtype."""
    T, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)  # (B, H, S, D): head h gets kv head h // groups
    v = v.repeat_interleave(groups, dim=1)  # (B, H, S, D)
    scores = q.float() @ k.float().transpose(-2, -1) / math.sqrt(D)  # (B, H, T, S)
    allowed = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)  # (T, S)
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (B, H, T, S): over the keys
    return (weights @ v.float()).to(q.dtype)  # (B, H, T, D)


# %%
ch04.exercise_1(attention)

# %%
keep(attention)

# %% [markdown]
# ## Exercise 2
#
# Per head, $QK^\top$ multiplies $(T \times D)$ by $(D \times T)$: $2 T^2 D$ operations; $AV$
# multiplies $(T \times T)$ by $(T \times D)$: another $2 T^2 D$. Twelve heads:
# $12 \cdot 4 T^2 D = 4 T^2 C$ with $C = 12 \cdot 64 = 768$. The projections cost $8 T C^2$;
# the two are equal when $4T^2C = 8TC^2$, at $T = 2C$. Beyond that length, GPT-2 small spends
# more on attention than on its projections.

# %%
T, H, D = 1024, 12, 64
attention_flops = H * 2 * (2 * T * T * D)
crossover_length = 2 * H * D
print(f"{attention_flops:,} operations; equal to the projections at T = {crossover_length:,}")

# %%
ch04.exercise_2(attention_flops, crossover_length)

# %% [markdown]
# ## Exercise 3
#
# Each token stores a key and a value of $D = 128$ numbers per key/value head in each of the 32
# layers, 2 bytes each.

# %%
def kv_gib(kv_heads: int, layers: int = 32, head_dim: int = 128, tokens: int = 8192) -> float:
    """KV-cache size in GiB, bfloat16."""
    return 2 * layers * kv_heads * head_dim * tokens * 2 / 2**30


kv_cache_gib = (kv_gib(8), kv_gib(32))
print(f"grouped (8 key/value heads): {kv_cache_gib[0]:g} GiB, "
      f"multi-head (32): {kv_cache_gib[1]:g} GiB")

# %%
ch04.exercise_3(kv_cache_gib)

# %% [markdown]
# ## Exercise 4
#
# The 4 cached tokens hold positions 0 to 3, so the new tokens are at 4, 5 and 6. The second
# one, at position 5, may read every key up to its own position.

# %%
visible_keys = [0, 1, 2, 3, 4, 5]

# %%
ch04.exercise_4(visible_keys)

# %% [markdown]
# ## Exercise 5
#
# The score of query $i$ against key $j$ is $q^\top R\big((j - i)\theta\big)\,k$. With
# $k = R(n\theta)\,q$ (the query turned as if it sat at position $n$) it is
# $q^\top R\big((j - i + n)\theta\big)\,q$, which is largest, every pair in phase, at
# $j = i - n$. The tables need $n + 1$ rows; row $n$ turns by $n\theta$.

# %%
def key_for_offset(query: torch.Tensor, n: int) -> torch.Tensor:
    """A (D,) key that, with the (D,) query, makes the head attend n tokens back."""
    head_dim = query.shape[-1]
    cos, sin = rope_tables(head_dim, n + 1)  # (n + 1, D) each
    return apply_rope(query.view(1, 1, 1, head_dim), cos[n:], sin[n:]).view(head_dim)


# %%
ch04.exercise_5(key_for_offset)

# %% [markdown]
# ## Exercise 6
#
# A copy of the stored model with every `q_proj.weight` multiplied by $\sqrt{D}$ computes
# $q \cdot k$ where the original computes $q \cdot k / \sqrt{D}$. Both read the chapter's text
# (the first 32 tokens of validation story 4); the validation loss of both is measured on 16
# windows of 256 tokens.

# %%
stored = book.stored_model()
model, tokenizer = stored.model, stored.tokenizer
measured_ids = torch.tensor([tokenizer.encode(book_stories("validation")[4])[:32]])  # (1, 32)
unscaled_model = copy.deepcopy(model)
for layer in unscaled_model.layers:
    layer.self_attn.q_proj.weight.data *= math.sqrt(model.config.head_dim)


def mean_largest_weight(some_model) -> float:
    """Largest weight of every row (row 0 left out), averaged over rows, heads and layers."""
    with torch.no_grad():
        maps = some_model.attention_maps(measured_ids)  # one (1, H, T, T) per layer
    return torch.stack([m[0, :, 1:].amax(dim=-1).mean() for m in maps]).mean().item()


validation_ids = torch.from_numpy(book.book_tokens("validation", tokenizer).tokens.astype("int64"))
windows = validation_ids[:16 * 257].view(16, 257)


def validation_loss(some_model) -> float:
    with torch.no_grad():
        logits = some_model(windows[:, :-1])  # (16, 256, vocab)
    return F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()).item()


largest_weight = {"scaled": mean_largest_weight(model),
                  "unscaled": mean_largest_weight(unscaled_model)}
losses = {"scaled": validation_loss(model), "unscaled": validation_loss(unscaled_model)}
for name in largest_weight:
    print(f"{name:8}: mean largest weight {largest_weight[name]:.2f}, "
          f"validation loss {losses[name]:.2f} nats/token")

# %%
ch04.exercise_6(unscaled_model, measured_ids, largest_weight)

# %% [markdown]
# Without the $1/\sqrt{D}$ ($D = 32$, so every score grows by a factor of about 5.7) the
# softmax saturates: the mean largest weight per row more than doubles, from 0.34 to 0.77, and
# most rows now put more than half their weight on a single key. The model was trained with
# the scale, and its validation loss rises from 2.39 to 2.94 nats per token. A
# model trained without the scale could learn smaller query and key weights to compensate, but
# it would start from saturated softmaxes whose gradients are small (the chapter's Jacobian
# measurement), which is what the scale is there to avoid.

# %%
assert largest_weight["unscaled"] > 2 * largest_weight["scaled"]
assert losses["unscaled"] > losses["scaled"] + 0.5
with torch.no_grad():
    row_largest = torch.cat([m[0, :, 1:].amax(dim=-1).flatten()
                             for m in unscaled_model.attention_maps(measured_ids)])
assert (row_largest > 0.5).float().mean() > 0.5  # most rows: over half on one key
