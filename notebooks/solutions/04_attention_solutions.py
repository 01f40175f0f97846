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
from transformer_lib.data import book_stories
from transformer_lib.model.rope import apply_rope, rope_tables

_ = torch.manual_seed(0)

# %% [markdown]
# ## Exercise 1
#
# Per head, $QK^\top$ multiplies $(T \times D)$ by $(D \times T)$: $2 T^2 D$ operations; $AV$
# multiplies $(T \times T)$ by $(T \times D)$: another $2 T^2 D$. Twelve heads:
# $12 \cdot 4 T^2 D = 4 T^2 C$ with $C = 12 \cdot 64 = 768$.

# %%
T, H, D = 1024, 12, 64
attention_flops = H * 2 * (2 * T * T * D)
print(f"{attention_flops:,} operations")

# %%
ch04.exercise_1(attention_flops)

# %% [markdown]
# The projections cost $8 T C^2$; the two are equal when $4T^2C = 8TC^2$, at $T = 2C = 1{,}536$
# tokens. Beyond that, GPT-2 small spends more on attention than on its projections.
#
# ## Exercise 2
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
ch04.exercise_2(kv_cache_gib)

# %% [markdown]
# ## Exercise 3
#
# The 4 cached tokens hold positions 0 to 3, so the new tokens are at 4, 5 and 6. The second
# one, at position 5, may read every key up to its own position.

# %%
visible_keys = [0, 1, 2, 3, 4, 5]

# %%
ch04.exercise_3(visible_keys)

# %% [markdown]
# ## Exercise 4
#
# The score of query $i$ against key $j$ is $q^\top R\big((j - i)\theta\big)\,k$. With
# $k = R(2\theta)\,q$ (the query turned as if at position 2) it is
# $q^\top R\big((j - i + 2)\theta\big)\,q$, largest at $j = i - 2$.

# %%
D16 = 16
query_vector = 4.0 * torch.ones(D16)  # the chapter's query
cos, sin = rope_tables(D16, 3)
key_two_back = apply_rope(query_vector.view(1, 1, 1, D16), cos[2:3], sin[2:3]).view(D16)

# %%
ch04.exercise_4(key_two_back, query_vector)

# %% [markdown]
# ## Exercise 5
#
# A copy of the stored model with every `q_proj.weight` multiplied by $\sqrt{D}$ computes
# $q \cdot k$ where the original computes $q \cdot k / \sqrt{D}$. Both read the chapter's text
# (the first 32 tokens of validation story 4); the validation loss of both is measured on 16
# windows of 256 tokens.

# %%
stored = book.stored_model()
model, tokenizer = stored.model, stored.tokenizer
ids = torch.tensor([tokenizer.encode(book_stories("validation")[4])[:32]])  # (1, 32)
unscaled = copy.deepcopy(model)
for layer in unscaled.layers:
    layer.self_attn.q_proj.weight.data *= math.sqrt(model.config.head_dim)


def mean_largest_weight(some_model) -> float:
    """Largest weight of every row (row 0 left out), averaged over rows, heads and layers."""
    maps = some_model.attention_maps(ids)  # one (1, H, T, T) per layer
    return torch.stack([m[0, :, 1:].amax(dim=-1).mean() for m in maps]).mean().item()


validation_ids = torch.from_numpy(book.book_tokens("validation", tokenizer).tokens.astype("int64"))
windows = validation_ids[:16 * 257].view(16, 257)


def validation_loss(some_model) -> float:
    with torch.no_grad():
        logits = some_model(windows[:, :-1])  # (16, 256, vocab)
    return F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()).item()


largest_weight = {"scaled": mean_largest_weight(model), "unscaled": mean_largest_weight(unscaled)}
losses = {"scaled": validation_loss(model), "unscaled": validation_loss(unscaled)}
for name in largest_weight:
    print(f"{name:8}: mean largest weight {largest_weight[name]:.2f}, "
          f"validation loss {losses[name]:.2f} nats/token")

# %%
ch04.exercise_5(largest_weight)

# %% [markdown]
# Without the $1/\sqrt{D}$ ($D = 32$, so every score grows by a factor of about 5.7) the
# softmax saturates: the mean largest weight per row doubles, from 0.42 to 0.84, so most rows
# put nearly all their weight on one key. The model was trained with the scale, and its
# validation loss rises from 2.64 to 3.22 nats per token. A model trained without the scale
# could learn smaller query and key weights to compensate, but it would start from saturated
# softmaxes whose gradients are small (the chapter's Jacobian measurement), which is what the
# scale is there to avoid.

# %%
assert largest_weight["unscaled"] > largest_weight["scaled"] + 0.05
assert losses["unscaled"] > losses["scaled"] + 0.1
