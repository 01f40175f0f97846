# %% [markdown]
# # 4. Attention
#
# So far every position has been processed on its own: a token becomes a vector, the vector is
# normalised, and RoPE turns it according to where it sits. Nothing has let one position read
# another. Attention is the step that does: each token looks back over the tokens before it,
# decides which of them matter, and pulls in a weighted mix of what they carry. It is the only
# place in the model where information moves between positions.
#
# What you will build:
#
# - scaled dot-product attention from queries, keys and values, and the reason for the
#   $1/\sqrt{D}$ in it,
# - the causal mask that stops a token from reading the future,
# - multi-head and grouped-query attention (GQA), with the memory GQA saves, and then your
#   own causal GQA function for chapter 6's model (exercise 1),
# - a complete attention module with RoPE, checked against `transformer_lib.model.attention.Attention`,
# - the fused kernel behind `torch.nn.functional.scaled_dot_product_attention` (Flash attention),
#   its trick rebuilt in a few lines, and a timing against the explicit math,
# - a head you can read before seeing a trained model: a previous-token head with hand-set
#   weights,
# - the attention maps of the book's trained model, layer by layer and head by head.
#
# The notation is chapter 3's: $C$ is the model width, $D$ the width of one head, $T$ the number
# of positions; vectors are columns ($q = W_Q\,x$), and a stack of tokens is a matrix with one
# token per row ($Q = X W_Q^\top$, in code `x @ w_q.T`, which is what `nn.Linear` computes).

# %%
import math
import time
from functools import partial
from itertools import pairwise
from statistics import median

import torch
import torch.nn.functional as F
from torch import nn

from transformer_lib import ModelConfig, Transformer, book
from transformer_lib.book import viz
from transformer_lib.book.exercises import ch04
from transformer_lib.book.pieces import keep
from transformer_lib.book.widgets import AttentionExplorer
from transformer_lib.data import book_stories
from transformer_lib.model.attention import Attention, causal_mask, repeat_kv
from transformer_lib.model.rope import apply_rope, rope_tables

_ = torch.manual_seed(0)

# %% [markdown]
# ## Queries, keys and values
#
# Attention gives each position three vectors, all computed from that position's input $x_t$
# by a learned linear map:
#
# - a **query** $q_t = W_Q\,x_t$: what this position is looking for,
# - a **key** $k_t = W_K\,x_t$: what this position offers, used as an address to be matched,
# - a **value** $v_t = W_V\,x_t$: what this position hands over when it is chosen.
#
# Position $i$ compares its query with every key by a dot product, turns the scores into
# weights that are positive and sum to one with a softmax, and returns the weighted average of
# the values:
#
# $$a_{ij} = \operatorname{softmax}_j\!\left(\frac{q_i \cdot k_j}{\sqrt{D}}\right), \qquad
# o_i = \sum_j a_{ij}\, v_j .$$
#
# Stacking the vectors as rows of matrices $Q, K, V$ gives the whole layer in one line,
# $\operatorname{softmax}(QK^\top/\sqrt{D})\,V$. The division by $\sqrt{D}$ ($D$ is the length
# of a query) gets its own section below. First a single head on five random "tokens", with no
# scaling yet, so that each step can be seen.

# %%
num_tokens, width = 5, 8
x = torch.randn(num_tokens, width)  # (T, C): one row per token
w_query, w_key, w_value = (nn.Linear(width, width, bias=False) for _ in range(3))
queries, keys, values = w_query(x), w_key(x), w_value(x)  # each (T, D): one head, D = C
scores = queries @ keys.T  # (T, T): scores[i, j] = q_i . k_j
weights = torch.softmax(scores, dim=-1)  # each row: how much token i takes from each token j
mixed = weights @ values  # (T, D): row i is the weighted average of the value rows
print("scores", tuple(scores.shape), "weights", tuple(weights.shape), "output", tuple(mixed.shape))
print("row sums of the weights:", [round(s, 4) for s in weights.sum(dim=-1).tolist()])

# %% [markdown]
# Each row of the weights is a probability distribution over the tokens, and each output row is
# the matching average of the value rows.

# %%
torch.testing.assert_close(weights.sum(dim=-1), torch.ones(num_tokens))
assert (weights > 0).all()
torch.testing.assert_close(mixed[2], sum(weights[2, j] * values[j] for j in range(num_tokens)))

# %% [markdown]
# Here is the same computation as a function we will reuse for the rest of the chapter. It
# works on any leading dimensions (batch, heads), takes an optional boolean mask (`True` where
# attending is allowed), and returns the weights too, so that we can look at them.

# %%
def scaled_dot_product(q, k, v, mask=None):
    """softmax(q k^T / sqrt(D)) v; q (..., T, D), k and v (..., S, D), mask (T, S) or None."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: no weight at all
    weights = torch.softmax(scores, dim=-1)  # (..., T, S), each row sums to 1
    return weights @ v, weights  # (..., T, D) and (..., T, S)


# %% [markdown]
# ## Why divide by $\sqrt{D}$
#
# Suppose the entries of a query and a key are independent with mean 0 and variance 1. Their
# dot product $q \cdot k = \sum_{i=1}^{D} q_i k_i$ is a sum of $D$ such products, so its
# variance is $D$ and its typical size $\sqrt{D}$. For a head of dimension 1,024 the scores are
# spread over about $\pm 32$, and a softmax of numbers that far apart puts nearly all the weight
# on the largest one: it *saturates*. A saturated softmax is also a flat one for learning. Its
# Jacobian $\partial a_i / \partial s_j = a_i(\delta_{ij} - a_j)$ vanishes when one $a_i$ is 1
# and the rest are 0, so the scores receive almost no gradient.
#
# Dividing the scores by $\sqrt{D}$ brings their variance back to 1, whatever the head size. We
# measure both versions: 1,000 random queries against 64 random keys, for several head sizes,
# recording the spread of the scores, the largest weight in each row (averaged over rows) and
# the size of the softmax Jacobian (its Frobenius norm, averaged over rows).

# %%
def softmax_statistics(scores):
    """Std of the scores, mean largest weight per row, mean Frobenius norm of the Jacobian."""
    p = torch.softmax(scores, dim=-1)  # (rows, keys)
    jacobian = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (rows, keys, keys)
    return (scores.std().item(), p.max(dim=-1).values.mean().item(),
            jacobian.flatten(1).norm(dim=-1).mean().item())


head_sizes = [16, 64, 256, 1024]
torch.manual_seed(0)
statistics = {"unscaled": [], "scaled": []}
for size in head_sizes:
    raw_scores = torch.randn(1000, size) @ torch.randn(64, size).T  # (1000 queries, 64 keys)
    statistics["unscaled"].append(softmax_statistics(raw_scores))
    statistics["scaled"].append(softmax_statistics(raw_scores / math.sqrt(size)))
print("head size | score std (unscaled, scaled) | largest weight | softmax gradient size")
for i, size in enumerate(head_sizes):
    (std_u, top_u, grad_u), (std_s, top_s, grad_s) = (statistics[k][i] for k in statistics)
    print(f"{size:9} | {std_u:6.2f} {std_s:6.2f}                | {top_u:.3f} {top_s:.3f}    "
          f"| {grad_u:.3f} {grad_s:.3f}")

# %% [markdown]
# Unscaled, the spread of the scores doubles every time the head size quadruples (it is
# $\sqrt{D}$), the largest weight climbs towards 1 and the gradient through the softmax shrinks.
# Scaled, all three stay where they were at $D = 16$.

# %%
for i, size in enumerate(head_sizes):
    std_u, std_s = statistics["unscaled"][i][0], statistics["scaled"][i][0]
    assert abs(std_u / math.sqrt(size) - 1) < 0.05 and abs(std_s - 1) < 0.05
largest_unscaled = [top for _, top, _ in statistics["unscaled"]]
largest_scaled = [top for _, top, _ in statistics["scaled"]]
assert largest_unscaled == sorted(largest_unscaled) and largest_unscaled[-1] > 0.9
assert max(largest_scaled) < 0.15
assert statistics["unscaled"][-1][2] < 0.5 * statistics["scaled"][-1][2]

# %%
viz.plot_lines(head_sizes, {"unscaled: q . k": largest_unscaled,
                            "scaled: q . k / sqrt(D)": largest_scaled},
               title="The softmax saturates without the 1/sqrt(D) scale",
               xlabel="head dimension D", ylabel="mean largest attention weight", logx=True,
               markers=True)

# %% [markdown]
# With 64 keys a uniform row would give each key $1/64 \approx 0.016$; the scaled softmax stays
# near 0.1, a real mixture, while the unscaled one approaches a hard choice of one key.

# %% [markdown]
# ## The causal mask
#
# A language model is trained to predict token $t+1$ from tokens $0..t$. All positions of a
# training sequence are computed at once, so position $i$ must be stopped from reading any key
# $j > i$, or it could simply copy the answer. The *causal mask* is a lower-triangular matrix
# of booleans: row $i$ (the query) is `True` in columns $0..i$ (the keys it may read). Where it
# is `False`, the score is replaced by $-\infty$ before the softmax, and $e^{-\infty} = 0$ gives
# exactly zero weight.

# %%
sentence = ["The", "cat", "sat", "on", "the", "mat"]
T = len(sentence)
mask = torch.tril(torch.ones(T, T, dtype=torch.bool))  # (T, T): True on and below the diagonal
print(mask.int())

# %%
assert torch.equal(mask, causal_mask(T, T))  # the library's version

# %% [markdown]
# ### From "average of the past" to a masked softmax
#
# The simplest thing a position could do with the tokens it may read is to average them. Three
# ways to compute that average lead straight to attention; each is checked equal to the one
# before. First, a loop: the output at position $i$ is the mean of the value rows $0..i$.

# %%
torch.manual_seed(0)
past_values = torch.randn(T, 4)  # (T, 4): one value row per token of the sentence
average_loop = torch.stack([past_values[:i + 1].mean(dim=0) for i in range(T)])  # (T, 4)

# %% [markdown]
# Second, one matrix product: a lower-triangular matrix whose row $i$ holds $1/(i+1)$ in
# columns $0..i$ mixes the value rows in exactly those proportions.

# %%
averaging = mask.float() / mask.sum(dim=-1, keepdim=True)  # (T, T): row i is 1/(i+1) on 0..i
average_matmul = averaging @ past_values  # (T, T) @ (T, 4) -> (T, 4)
torch.testing.assert_close(average_matmul, average_loop)

# %% [markdown]
# Third, a masked softmax: give every allowed pair the same score (0), put $-\infty$ on the
# future, and the softmax spreads each row evenly over the allowed keys, which is the same
# matrix. Attention is this third form with the equal scores replaced by $q_i \cdot k_j /
# \sqrt{D}$: instead of a flat average, each row weighs its past by how well the keys match its
# query.

# %%
flat_scores = torch.zeros(T, T).masked_fill(~mask, float("-inf"))
mask_weights = torch.softmax(flat_scores, dim=-1)  # (T, T)
torch.testing.assert_close(mask_weights, averaging)
torch.testing.assert_close(mask_weights @ past_values, average_loop)

# %% [markdown]
# Drawn as an attention map (rows are queries, columns the keys they read, grey the masked
# future), the first token can only read itself (weight 1) and the last spreads $1/6$ over the
# whole sentence. The colour scale runs from 0 to 1, so no weight is clipped.

# %%
viz.plot_attention(mask_weights[None, None], sentence,  # (1 batch, 1 head, T, T)
                   title="The causal mask as weights: each row averages its prefix", vmax=1.0)

# %% [markdown]
# The mask makes the output at position $i$ a function of tokens $0..i$ only. We check it
# directly: change the key and value of token 4 and see which outputs move.

# %%
torch.manual_seed(0)
q, k, v = torch.randn(3, T, 16).unbind(0)  # each (T, D)
before, _ = scaled_dot_product(q, k, v, mask)
k_changed, v_changed = k.clone(), v.clone()
k_changed[4], v_changed[4] = torch.randn(16), torch.randn(16)
after, _ = scaled_dot_product(q, k_changed, v_changed, mask)
print("outputs that changed:", [i for i in range(T) if not torch.equal(before[i], after[i])])

# %%
assert torch.equal(before[:4], after[:4])  # bit for bit: the future is invisible
assert not torch.allclose(before[4:], after[4:])

# %% [markdown]
# During generation the model reads one new token at a time, with the keys and values of the
# earlier tokens kept in a *KV cache* (chapter 8). There are then fewer queries ($T$) than keys
# ($S$), and the queries are the *last* $T$ positions. `causal_mask(T, S)` handles both cases:
# here two new queries after three cached tokens.

# %%
print(causal_mask(2, 5).int())

# %%
assert causal_mask(2, 5).tolist() == [[True] * 4 + [False], [True] * 5]

# %% [markdown]
# ## Multi-head attention
#
# One attention pattern per query is limiting: a token may need its subject from three words
# back *and* the previous token at the same time. Multi-head attention runs $H$ attentions side
# by side, each on its own slice of $D = C / H$ dimensions, with its own weights.
#
# Nothing new is needed to compute them. $W_Q$ stays one $C \times C$ matrix; we cut its output
# into $H$ groups of $D$ features and move the head index next to the batch index, so that one
# batched matrix product handles every head at once. Follow the shapes (B batch, T positions,
# C model width, H heads, D head width):

# %%
B, T, C, H = 2, 6, 32, 4
D = C // H
torch.manual_seed(0)
x = torch.randn(B, T, C)
q_proj = nn.Linear(C, C, bias=False)
q = q_proj(x)  # (B, T, C)
q = q.view(B, T, H, D)  # (B, T, H, D): the C features cut into H groups of D
q = q.transpose(1, 2)  # (B, H, T, D): heads become a batch dimension
print(tuple(q.shape))

# %% [markdown]
# Head $h$ is nothing but rows $hD .. (h+1)D$ of the projection matrix: the split is a
# bookkeeping step, not extra computation.

# %%
head = 1
torch.testing.assert_close(q[:, head], x @ q_proj.weight[head * D:(head + 1) * D].T)

# %% [markdown]
# After attention, each head's output is (B, H, T, D). Merging undoes the split: move the heads
# back next to their features and flatten them into C again. `transpose` only changes strides,
# so the tensor is no longer contiguous in memory and `view` refuses; `reshape` copies when it
# has to. An output projection $W_O$ then mixes the heads.

# %%
k = torch.randn(B, H, T, D)  # stand-ins for the keys and values, split the same way
v = torch.randn(B, H, T, D)
heads_out, _ = scaled_dot_product(q, k, v, causal_mask(T, T))  # (B, H, T, D)
swapped = heads_out.transpose(1, 2)  # (B, T, H, D), a strided view
merged = swapped.reshape(B, T, C)  # (B, T, C): head h fills features hD..(h+1)D
print("contiguous after transpose:", swapped.is_contiguous(), "| merged:", tuple(merged.shape))

# %%
assert not swapped.is_contiguous()
torch.testing.assert_close(merged[:, :, head * D:(head + 1) * D], heads_out[:, head])

# %% [markdown]
# ## Grouped-query attention
#
# When a model generates text, it stores the key and value of every past token in every layer,
# so that each new token costs one position of work instead of re-reading the whole prompt.
# That cache holds $2 \times L \times K \times D$ numbers per token ($L$ layers, $K$ key/value
# heads), and at long contexts it is what fills the memory.
#
# *Grouped-query attention* (Ainslie et al., 2023) keeps $H$ query heads but only $K < H$ key
# and value heads; each key/value head serves a group of $H/K$ query heads. Llama 2 70B and
# Llama 3 use 8 key/value heads. ($K = 1$ is *multi-query* attention; $K = H$ is ordinary
# multi-head attention.) To compute it, repeat each key/value head for the query heads of its
# group and run ordinary attention. With `expand`, the repeat is a view until `reshape` has to
# lay it out:

# %%
def my_repeat_kv(x, groups):
    """(B, K, S, D) -> (B, K * groups, S, D): query head h reads key/value head h // groups."""
    B, K, S, D = x.shape
    x = x[:, :, None].expand(B, K, groups, S, D)  # (B, K, groups, S, D), no copy yet
    return x.reshape(B, K * groups, S, D)  # (B, H, S, D)


torch.manual_seed(0)
kv = torch.randn(2, 2, 5, 8)  # (B, K=2, S, D)
repeated = my_repeat_kv(kv, groups=3)  # (B, H=6, S, D)
print("query head -> key/value head:",
      [next(j for j in range(2) if torch.equal(repeated[:, h], kv[:, j])) for h in range(6)])

# %%
assert torch.equal(repeated, repeat_kv(kv, 3))  # the library's version
assert all(torch.equal(repeated[:, h], kv[:, h // 3]) for h in range(6))

# %% [markdown]
# The cache saving is the ratio $H/K$. Here is the size of the KV cache from a model's config,
# first checked against the buffers the library really allocates for the `tiny` preset (4
# query heads, 2 key/value heads, float32), then applied to a GPT-2-small-shaped model (12
# heads) with 4 key/value heads instead of 12.

# %%
def kv_cache_bytes(config, seq_len, batch_size=1, bytes_per_value=2):
    """Keys and values of every layer: 2 * L * K * D numbers per token."""
    per_token = 2 * config.num_layers * config.num_kv_heads * config.head_dim
    return per_token * seq_len * batch_size * bytes_per_value


tiny = ModelConfig.from_preset("tiny")
caches = Transformer(tiny).make_caches(batch_size=3)
allocated = sum(buffer.nbytes for cache in caches for buffer in cache.buffers())
print(f"tiny: formula {kv_cache_bytes(tiny, tiny.max_seq_len, 3, 4):,} bytes, "
      f"allocated {allocated:,} bytes")

# %%
assert kv_cache_bytes(tiny, tiny.max_seq_len, batch_size=3, bytes_per_value=4) == allocated

# %%
full = ModelConfig.from_preset("gpt2-small")
grouped = ModelConfig.from_preset("gpt2-small", num_kv_heads=4)
for name, config in (("multi-head, K = 12", full), ("grouped, K = 4", grouped)):
    cache_mib = kv_cache_bytes(config, 1024) / 2**20
    k_proj_params = config.d_model * config.num_kv_heads * config.head_dim
    print(f"{name:18}: KV cache {cache_mib:5.1f} MiB for 1,024 tokens in 16-bit, "
          f"{k_proj_params:,} parameters in each of k_proj and v_proj")

# %%
assert kv_cache_bytes(full, 1024) == 3 * kv_cache_bytes(grouped, 1024)  # H / K = 12 / 4
assert kv_cache_bytes(full, 1024) == 36 * 2**20

# %% [markdown]
# Three times less cache, and the key and value projections shrink by the same factor, for a
# small loss in quality that training largely recovers. The query heads stay, so the number of
# attention patterns per layer is unchanged.
#
# ## Your attention
#
# Every piece is now on the table: scores scaled by $1/\sqrt{D}$, the causal mask, the softmax
# over the keys, the weighted sum of the values, and the key/value head that each group of
# query heads shares. One more case matters for generation: after a KV cache, the $T$ queries
# are the *last* $T$ of the $S$ positions, so query $i$ sits at position $i + S - T$ and may
# read every key up to there.
#
# **Exercise 1.** Write `attention(q, k, v)`: causal grouped-query attention for $H$ query
# heads and $K$ key/value heads ($H$ a multiple of $K$; query head $h$ reads key/value head
# $\lfloor h / (H/K) \rfloor$, as in `my_repeat_kv`), with the queries at the last $T$ of
# the $S$ key positions. Each exercise in this book has a cell for your answer, which starts
# out holding a placeholder (`...`), and a check cell that prints `not attempted yet`,
# `correct`, or `not yet` with a hint; the worked answers are in
# `notebooks/solutions/04_attention_solutions.ipynb`. The check runs your function against the
# library (`attention.attention_weights` and `attention.repeat_kv`) on random inputs: batch 1
# and more, odd lengths, 1, 2 and 4 query heads per key/value head, $S - T$ from 0 to 8, in
# float32 and bfloat16 (return `q`'s dtype), and compares the output and the gradients that
# reach `q`, `k` and `v`. When it prints `correct`, the cell after it keeps your function for
# chapter 6, which assembles your pieces into a model. Chapter 6 reads back the function's
# source alone, with `torch`, `math` and `F` at hand, so build the mask and the repeat inside
# it (this chapter's `scaled_dot_product`, `my_repeat_kv` and the library's `causal_mask` are
# not there).

# %%
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal grouped-query attention. q (B, H, T, D); k and v (B, K, S, D) with S >= T and H
    a multiple of K. Query i sits at position i + S - T and reads keys 0 .. i + S - T; query
    head h reads key/value head h // (H // K). Returns (B, H, T, D) in q's dtype."""
    ...  # your code here


# %%
ch04.exercise_1(attention)

# %%
keep(attention)

# %% [markdown]
# ## The attention module from scratch
#
# Now the pieces go together, in the order the library uses: project, split into heads, rotate
# queries and keys with RoPE (chapter 3: positions enter here, and values are not rotated),
# repeat the key/value heads, attend under the causal mask, merge heads, project out. The
# parameter names match `transformer_lib.model.attention.Attention` (and Hugging Face's Llama), so the
# library's weights can be loaded into ours.

# %%
class ScratchAttention(nn.Module):
    """Causal grouped-query self-attention with RoPE, written out step by step."""

    def __init__(self, config):
        super().__init__()
        self.num_heads, self.num_kv_heads = config.num_heads, config.num_kv_heads
        self.head_dim = config.head_dim
        kv_dim = config.num_kv_heads * config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.k_proj = nn.Linear(config.d_model, kv_dim, bias=False)
        self.v_proj = nn.Linear(config.d_model, kv_dim, bias=False)
        self.o_proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, cos, sin):
        """x (B, T, C), cos/sin (T, D) -> output (B, T, C) and weights (B, H, T, T)."""
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.num_heads, self.head_dim)  # (B, T, H, D)
        k = self.k_proj(x).view(B, T, self.num_kv_heads, self.head_dim)  # (B, T, K, D)
        v = self.v_proj(x).view(B, T, self.num_kv_heads, self.head_dim)  # (B, T, K, D)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H or K, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # rotate by position
        groups = self.num_heads // self.num_kv_heads
        k, v = my_repeat_kv(k, groups), my_repeat_kv(v, groups)  # (B, H, T, D)
        out, weights = scaled_dot_product(q, k, v, causal_mask(T, T, device=x.device))
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, H, D) -> (B, T, C)
        return self.o_proj(out), weights


# %% [markdown]
# To compare, we build the library's module for the `tiny` preset (4 query heads, 2 key/value
# heads, head dimension 16), build ours, and copy the library's weights *into* ours. Both start
# from different random weights, so the copy is what makes them agree.

# %%
torch.manual_seed(0)
library_attention = Attention(tiny)
scratch_attention = ScratchAttention(tiny)
assert not torch.equal(scratch_attention.q_proj.weight, library_attention.q_proj.weight)
scratch_attention.load_state_dict(library_attention.state_dict())  # library -> ours (a copy)
print({name: tuple(p.shape) for name, p in scratch_attention.named_parameters()})

# %% [markdown]
# The library has two paths with the same weights: `forward` calls PyTorch's fused kernel (next
# section), and `forward_with_weights` spells the math out and also returns the weights. Ours
# must match both, with the RoPE tables of the library (chapter 3) for 12 positions.

# %%
cos, sin = rope_tables(tiny.head_dim, 12, tiny.rope_theta)  # (T, D) each
x = torch.randn(2, 12, tiny.d_model)  # (B, T, C)
ours, our_weights = scratch_attention(x, cos, sin)
library_weights_out, library_weights = library_attention.forward_with_weights(x, cos, sin)
torch.testing.assert_close(ours, library_attention(x, cos, sin))  # the SDPA path
torch.testing.assert_close(ours, library_weights_out)  # the explicit path
torch.testing.assert_close(our_weights, library_weights)
assert scratch_attention.q_proj.weight.data_ptr() != library_attention.q_proj.weight.data_ptr()
print("our attention matches the library's:", tuple(ours.shape), tuple(our_weights.shape))

# %% [markdown]
# From here on the book uses `transformer_lib.model.attention.Attention`.
#
# ## Fused attention: SDPA and Flash attention
#
# The explicit computation writes the full score matrix and the full weight matrix, each
# $B \times H \times T \times T$ numbers, to memory and reads them back. At 8,192 tokens with 32
# heads that is 8 GiB in float32 per layer and sequence, and on a GPU, moving it between the
# compute units and the main memory takes longer than the arithmetic.
#
# *Flash attention* (Dao et al., 2022) never forms the matrix. It walks over the keys in blocks
# small enough to stay in on-chip memory and keeps, for every query, three running quantities:
# the largest score so far $m$, the sum of $e^{s - m}$ so far $\ell$, and the unnormalised sum
# of values $\sum e^{s-m} v$. When a block brings a larger maximum, what was accumulated is
# rescaled by $e^{m_\text{old} - m_\text{new}}$. At the end, dividing by $\ell$ gives exactly the
# softmax average. This "online softmax" fits in a few lines:

# %%
def attention_in_key_blocks(q, k, v, block_size=16):
    """Causal softmax(q k^T / sqrt(D)) v, reading keys block by block; never (T, S) at once."""
    T, S = q.shape[-2], k.shape[-2]
    mask = causal_mask(T, S)
    running_max = torch.full((*q.shape[:-1], 1), float("-inf"))  # (..., T, 1)
    running_sum = torch.zeros(*q.shape[:-1], 1)  # (..., T, 1): sum of exp(score - max)
    accumulated = torch.zeros_like(q)  # (..., T, D): sum of exp(score - max) * value
    for start in range(0, S, block_size):
        block = slice(start, start + block_size)
        scores = q @ k[..., block, :].transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, b)
        scores = scores.masked_fill(~mask[:, block], float("-inf"))
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        rescale = torch.exp(running_max - new_max)  # old sums were relative to the old max
        exp_scores = torch.exp(scores - new_max)  # (..., T, b)
        running_sum = running_sum * rescale + exp_scores.sum(dim=-1, keepdim=True)
        accumulated = accumulated * rescale + exp_scores @ v[..., block, :]
        running_max = new_max
    return accumulated / running_sum  # (..., T, D)


# %% [markdown]
# PyTorch ships this as `torch.nn.functional.scaled_dot_product_attention` (SDPA). It picks a
# fused kernel for the device: Flash attention or a memory-efficient kernel on CUDA GPUs, a
# fused kernel on Apple GPUs (MPS) and on CPUs, and the plain math as a fallback.
# `is_causal=True` applies the mask inside the kernel, and `enable_gqa=True` lets $K < H$
# key/value heads through without repeating them in memory. All three computations agree to
# float32 rounding:

# %%
torch.manual_seed(0)
q = torch.randn(2, 4, 64, 16)  # (B, H=4, T, D)
k, v = torch.randn(2, 2, 2, 64, 16).unbind(0)  # each (B, K=2, S, D)
explicit, _ = scaled_dot_product(q, repeat_kv(k, 2), repeat_kv(v, 2), causal_mask(64, 64))
blockwise = attention_in_key_blocks(q, repeat_kv(k, 2), repeat_kv(v, 2))
fused = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
print("largest difference below 1e-6 (float32 rounding):",
      f"explicit vs SDPA {bool((explicit - fused).abs().max() < 1e-6)},",
      f"blockwise vs SDPA {bool((blockwise - fused).abs().max() < 1e-6)}")

# %%
torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=0)
torch.testing.assert_close(blockwise, fused, atol=1e-6, rtol=0)

# %% [markdown]
# What does the fusion buy? We time the explicit math (`scaled_dot_product` with a mask) against
# SDPA for one sequence with 4 heads of dimension 32, doubling the length from 256 to 2,048
# tokens, and note the size of the score matrix the explicit path creates (a second one of the
# same size holds the weights). A single call is short and easily disturbed, so each time is the
# median of at least 5 calls (more for the short ones: about a fifth of a second of calls, at
# most 100), after a warm-up call whose time is discarded. The timing runs on one thread, so that
# it does not depend on how busy the other cores of the machine are. Your numbers will differ;
# the shape is what to look at.

# %%
def median_time(function, warmup=1, min_repeats=5, budget_s=0.2):
    """Median wall-clock seconds of repeated calls, after `warmup` calls that are not counted."""
    for _ in range(warmup):
        function()
    times = []
    while len(times) < min_repeats or sum(times) < budget_s and len(times) < 100:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return median(times)


lengths = [256, 512, 1024, 2048]
explicit_ms, sdpa_ms, score_mib = [], [], []
threads = torch.get_num_threads()
torch.set_num_threads(1)
with torch.no_grad():
    for length in lengths:
        q, k, v = torch.randn(3, 1, 4, length, 32).unbind(0)  # each (B=1, H=4, T, D=32)
        length_mask = causal_mask(length, length)
        explicit_ms.append(1e3 * median_time(partial(scaled_dot_product, q, k, v, length_mask)))
        sdpa_ms.append(1e3 * median_time(
            partial(F.scaled_dot_product_attention, q, k, v, is_causal=True)))
        score_mib.append(4 * length * length * 4 / 2**20)  # H * T * T float32 numbers
torch.set_num_threads(threads)

# %% [markdown]
# The measurements, and how much each time grew over the 8-fold increase in length (the work
# of attention, and the size of the score matrix, grow 64-fold):

# %%
# NBVAL_IGNORE_OUTPUT
for length, explicit, sdpa, mib in zip(lengths, explicit_ms, sdpa_ms, score_mib, strict=True):
    print(f"T={length:5d}: explicit {explicit:7.2f} ms, SDPA {sdpa:6.2f} ms, "
          f"explicit / SDPA {explicit / sdpa:4.1f}, score matrix {mib:g} MiB")
print(f"from T={lengths[0]} to T={lengths[-1]}: explicit x{explicit_ms[-1] / explicit_ms[0]:.0f}, "
      f"SDPA x{sdpa_ms[-1] / sdpa_ms[0]:.0f}")

# %% [markdown]
# On log-log axes a cost that grows like $T^2$ is a straight line of slope 2. The third line has
# that slope, drawn through the explicit path's first point, for comparison.

# %%
quadratic = [explicit_ms[0] * (length / lengths[0]) ** 2 for length in lengths]
viz.plot_lines(lengths, {"explicit math": explicit_ms, "SDPA (fused)": sdpa_ms,
                         "slope 2 (grows like T²)": quadratic},
               title="Causal attention, 4 heads of dimension 32, one thread (this machine)",
               xlabel="sequence length T (tokens)", ylabel="milliseconds per call (median)",
               logx=True, logy=True, markers=True)

# %% [markdown]
# In the run stored with this page, SDPA is faster than the explicit math at every length, and
# the gap is widest at 2,048 tokens. Over the 8-fold increase in length (64-fold in arithmetic),
# the explicit path's time grows by much more than 64 (last line of the printout): its line is
# steeper than the slope-2 line, because past a few hundred tokens its score and weight matrices
# (64 MiB each at 2,048 tokens) no longer fit in the processor's caches and every pass over them
# goes out to main memory, the traffic the fused kernel avoids. SDPA's line runs roughly parallel
# to the slope-2 line, a little shallower, with no such jump: its cost is mostly the arithmetic
# itself. (Rerun the cell and the numbers move, on a busy machine by a lot; these comparisons are
# the part to look for.)
#
# We assert only what does not depend on the machine: the memory of the explicit path
# quadruples when the sequence doubles, and every timing is a real measurement.

# %%
assert all(later == 4 * earlier for earlier, later in pairwise(score_mib))
assert all(t > 0 for t in explicit_ms + sdpa_ms)

# %% [markdown]
# ## A head you can read before training
#
# Before looking at a trained model, let us build a head whose map we can predict. The task:
# every position should fetch the token just before it, a *previous-token head*, one of the
# first patterns found in trained models. The head must find the key one position back, whatever
# the words are, so its queries and keys should depend on position only. RoPE (chapter 3) gives
# exactly that. If every query is the same vector $q$ and every key the same vector $k$ before
# rotation, the score of query $i$ against key $j$ is $q^\top R\big((j - i)\theta\big)\,k$, a
# function of the offset $j - i$ alone. Choose $k = R(\theta)\,q$, the query turned as if it
# sat at position 1. Then the score is $q^\top R\big((j - i + 1)\theta\big)\,q$, and it is
# largest, with every pair of dimensions in phase, when $j = i - 1$.
#
# To give the head fixed queries and keys, each token vector $x_t$ is the one-hot code of its
# word plus a last feature that is always 1. $W_Q$ and $W_K$ read only that constant feature and
# write $q$ and $k$; $W_V$ copies the one-hot code, so the output at position $i$ is (almost)
# the code of the word the head looked at. The query is $4 \cdot (1, \dots, 1)$ in a head of
# $D = 16$; the factor 4 makes the scores large enough for the softmax to pick one key.

# %%
words = "the cat sat on the mat and the dog sat on the cat".split()
vocabulary = sorted(set(words))
word_ids = torch.tensor([vocabulary.index(word) for word in words])  # (T,)
T, V, D = len(words), len(vocabulary), 16
token_vectors = torch.cat([F.one_hot(word_ids, V).float(), torch.ones(T, 1)], dim=1)  # (T, V+1)

cos, sin = rope_tables(D, T)  # (T, D) each
query_vector = 4.0 * torch.ones(D)  # (D,)
key_vector = apply_rope(query_vector.view(1, 1, 1, D), cos[1:2], sin[1:2]).view(D)  # R(1) q
w_q, w_k = torch.zeros(D, V + 1), torch.zeros(D, V + 1)  # (D, V+1): read the constant feature
w_q[:, V], w_k[:, V] = query_vector, key_vector
w_v = torch.eye(V, V + 1)  # (V, V+1): copy the one-hot code

q = apply_rope((token_vectors @ w_q.T)[None, None], cos, sin)  # (1, 1, T, D)
k = apply_rope((token_vectors @ w_k.T)[None, None], cos, sin)  # (1, 1, T, D)
v = (token_vectors @ w_v.T)[None, None]  # (1, 1, T, V)
copied, previous_token_weights = scaled_dot_product(q, k, v, causal_mask(T, T))
print("hand-built previous-token head:", tuple(previous_token_weights.shape))

# %% [markdown]
# Predict the picture before looking: a bright line just below the diagonal, since row $i$
# should put its weight on column $i - 1$; row 0 has no previous token and can only read itself.

# %%
viz.plot_attention(previous_token_weights, words, vmax=1.0,
                   title="A hand-set previous-token head: each word reads the word before it")

# %% [markdown]
# The line is there. Each row from 1 on puts most of its weight one token back, and the output
# at position $i$, read back as a word, is word $i - 1$: the head copies the previous token.

# %%
below_diagonal = previous_token_weights[0, 0].diagonal(-1)  # weight of row i on column i - 1
print(f"smallest weight on the previous token: {below_diagonal.min():.3f}")
print("copied words:", [vocabulary[i] for i in copied[0, 0, 1:].argmax(dim=-1)])

# %%
assert below_diagonal.min() > 0.9
assert torch.equal(copied[0, 0, 1:].argmax(dim=-1), word_ids[:-1])

# %% [markdown]
# ## Attention maps of the book's trained model
#
# A model built from these modules returns its attention weights with `model.attention_maps`,
# which runs the explicit path in every layer. We load the model that ships with the library
# (`book.stored_model()`: 4 layers of 4 query heads and 2 key/value heads, head dimension 32,
# trained once on the book's TinyStories extract) with its tokenizer, and read the start of a
# validation story, text it never trained on.
#
# First, for contrast, what an **untrained** model with the same configuration does: its weights
# are random and small (standard deviation 0.02), so every score is close to 0 and every head
# spreads its weight almost evenly over the prefix, like the average-of-the-past map above.

# %%
stored = book.stored_model()
model, tokenizer = stored.model, stored.tokenizer
story = book_stories("validation")[4]
text = tokenizer.decode(tokenizer.encode(story)[:32])  # the first 32 tokens of the story
ids = torch.tensor([tokenizer.encode(text)])  # (1, T)
print(f"{ids.shape[1]} tokens: {text!r}")

torch.manual_seed(0)
untrained = Transformer(model.config).eval()
prefix_average = causal_mask(ids.shape[1], ids.shape[1]).float()
prefix_average /= prefix_average.sum(dim=-1, keepdim=True)  # row i: 1/(i+1) on its prefix


def distance_from_average(maps):
    """Largest |weight - 1/(i+1)| over every layer, head and row."""
    return max((layer_map[0] - prefix_average).abs().max().item() for layer_map in maps)


untrained_distance = distance_from_average(untrained.attention_maps(ids))
trained_distance = distance_from_average(model.attention_maps(ids))
print(f"largest distance from an even split over the prefix: untrained {untrained_distance:.2f}, "
      f"trained {trained_distance:.2f}")

# %%
assert untrained_distance < 0.1 < 0.5 < trained_distance

# %% [markdown]
# The trained model's maps, every layer and head. Sixteen panels leave room to label 16 tokens
# legibly, so the grid shows the first 16 tokens of the story. Attention is causal, so these
# maps are exactly the top-left corners of the maps for all 32 tokens (the first 16 queries
# never see the later keys); the single head further down shows all 32.

# %%
first_ids = ids[:, :16]  # (1, 16)
viz.plot_attention(model.attention_maps(first_ids),
                   viz.token_labels(tokenizer, first_ids[0].tolist()))

# %%
for corner, whole in zip(model.attention_maps(first_ids), model.attention_maps(ids), strict=True):
    torch.testing.assert_close(corner, whole[:, :, :16, :16])  # the same weights, causally
stop_stripe = model.attention_maps(first_ids)[1][0, 0, 11:, 10]  # layer 1, head 0, key 10
assert tokenizer.decode([int(first_ids[0, 10])]) == "."
assert (stop_stripe > 2 / torch.arange(12, 17)).all()  # over twice each row's even share

# %% [markdown]
# Unlike the untrained model's, these heads differ from each other. Several draw a line just
# below the diagonal, the pattern of our hand-built head: each token reads the one before it
# (most clearly layer 1, head 2 and layer 2, head 3). Others draw vertical stripes, many
# queries reading the same few keys, such as the full stop after " farmer" in layer 1, head 0,
# which every query after it keeps reading. The colour
# scale stops at the largest weight outside row 0 (row 0 is always 1), which the arrow on the
# colour bar marks.
#
# Is there a previous-token head like the one we built by hand? For every head, the mean weight
# each query puts on the token just before it, over 8 windows of 128 validation tokens. For
# comparison, an even split over the prefix gives $1/(i+1)$ at row $i$, which averages to
# about 0.035 over rows 1 to 127.

# %%
validation_ids = torch.from_numpy(book.book_tokens("validation", tokenizer).tokens.astype("int64"))
window_ids = validation_ids[:8 * 128].view(8, 128)  # (8 windows, 128 tokens)
previous_weight = torch.stack([layer_map.diagonal(-1, dim1=-2, dim2=-1).mean(dim=(0, 2))
                               for layer_map in model.attention_maps(window_ids)])  # (L, H)
best_layer, best_head = divmod(int(previous_weight.argmax()), model.config.num_heads)
for layer in range(model.config.num_layers):
    print(f"layer {layer}: " + "  ".join(f"head {h} {previous_weight[layer, h]:.2f}"
                                         for h in range(model.config.num_heads)))
even_split = (1 / torch.arange(2, 129).float()).mean()  # rows 1..127 of a 128-token window
print(f"most previous-token-like: layer {best_layer}, head {best_head} "
      f"({previous_weight[best_layer, best_head] / even_split:.0f} times the even split)")

# %%
assert previous_weight[best_layer, best_head] > 5 * even_split
top_two = previous_weight.flatten().topk(2).indices.tolist()  # the two heads the grid names
assert sorted(divmod(i, model.config.num_heads) for i in top_two) == [(1, 2), (2, 3)]

# %% [markdown]
# That head alone, on the story above:

# %%
viz.plot_model_attention(model, tokenizer, text, layers=best_layer, heads=best_head)

# %% [markdown]
# In Jupyter, the explorer below redraws the trained model's maps for any text you type and any
# layer or head you pick (on a static page it shows the head above, on the same text). The
# text box redraws when you press Enter (or click outside it), not on every key, since each
# new text runs the model again. With layer or head set to `all`, the panels form a grid.

# %%
explorer = AttentionExplorer(model, tokenizer, text=text, layer=best_layer, head=best_head)
explorer

# %% [markdown]
# ## Measured: what this choice buys
#
# Chapter 12 measures this chapter's choices on the book's own task: multi-head attention
# (+0.05, from one bad seed), multi-query (+0.02) and dropping the $1/\sqrt{D}$ scale (+0.006 bits
# per byte) all stay inside the seeds' spread. Grouped-query attention buys memory for the KV
# cache at no measurable cost in loss. These are runs of chapter 7's 300 steps from three seeds
# each, so they measure a short run, not where a long one ends up.

# %% [markdown]
# ## Exercises
#
# Exercise 1 asked for `attention`, above; the others follow. The worked answers are in
# `notebooks/solutions/04_attention_solutions.ipynb`.
#
# **Exercise 2.** Count the floating-point operations of the two matrix products at the heart
# of attention, $QK^\top$ and $AV$, for one sequence of $T = 1{,}024$ tokens in one layer of a
# GPT-2-small-shaped model (12 heads of dimension 64). A product of an $(m \times n)$ and an
# $(n \times p)$ matrix costs $2mnp$ operations (a multiply and an add each). Then compare
# your count with the projections: the four of them ($W_Q, W_K, W_V, W_O$, each $C \times C$
# with $K = H$) cost $8TC^2$, linear in $T$, while your count grows with $T^2$. At which
# length $T$ do the two become equal? The check counts both with PyTorch's `FlopCounterMode`
# on shape-only ("meta") tensors.

# %%
attention_flops = ...  # your answer: a whole number of operations
crossover_length = ...  # your answer: the T (in tokens) where both costs are equal

# %%
ch04.exercise_2(attention_flops, crossover_length)

# %% [markdown]
# **Exercise 3.** A Llama-3-8B-shaped model has 32 layers, 32 query heads, 8 key/value heads
# and head dimension 128 ($C = 4{,}096$). How many GiB ($2^{30}$ bytes) does its KV cache need
# for one sequence of 8,192 tokens in bfloat16 (2 bytes per number)? And how many would it need
# with 32 key/value heads? Give the pair (grouped, multi-head).

# %%
kv_cache_gib = ...  # your answer: (GiB with 8 key/value heads, GiB with 32)

# %%
ch04.exercise_3(kv_cache_gib)

# %% [markdown]
# **Exercise 4.** During generation, 4 tokens are already in the KV cache and 3 new tokens are
# processed together, so the mask is `causal_mask(3, 7)`. Which key positions (0 to 6) may the
# *second* new token (row 1 of the mask) attend to? Work it out before printing the mask.

# %%
visible_keys = ...  # your answer: a list of key positions

# %%
ch04.exercise_4(visible_keys)

# %% [markdown]
# **Exercise 5.** Generalise the hand-built head: write `key_for_offset(query, n)`, the key
# vector that makes a head with this fixed query (before rotation) read the token `n` places
# back, for any `n` >= 1 and any even query size, using `rope.rope_tables` and
# `rope.apply_rope`. The check builds the head for several `n` and two queries (the chapter's,
# and one of size 32), and asks that every row that can reach `n` tokens back puts most of its
# weight there.

# %%
def key_for_offset(query: torch.Tensor, n: int) -> torch.Tensor:
    """A (D,) key that, with the (D,) query, makes the head attend n tokens back."""
    ...  # your code here


# %%
ch04.exercise_5(key_for_offset)

# %% [markdown]
# **Exercise 6 (experiment: drop the $1/\sqrt{D}$).** The chapter measured saturation on random
# vectors. Measure it on the trained model: make a copy, `unscaled_model =
# copy.deepcopy(model)`, whose scores skip the division by $\sqrt{D}$ (the scale is applied
# inside the attention code, so multiply every layer's `self_attn.q_proj.weight` by $\sqrt{D}$
# instead: $q\sqrt{D} \cdot k / \sqrt{D} = q \cdot k$). For the story `ids` above, take the
# largest weight of every row of every map (`model.attention_maps(ids)`; row 0 left out, it
# is always 1), average it over rows, heads and layers, and compare the two models. Hand in
# the copy, the ids and both numbers; the check measures both again. Before you run it: what
# do you expect the validation loss of the copy to do?

# %%
unscaled_model = ...  # your copy of the model, every q_proj.weight times sqrt(head_dim)
measured_ids = ...  # the token ids you measured on: a tensor of shape (1, T)
largest_weight = ...  # your measurements: {"scaled": ..., "unscaled": ...}

# %%
ch04.exercise_6(unscaled_model, measured_ids, largest_weight)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | from scratch in this chapter | in `transformer_lib` |
# |---|---|
# | `scaled_dot_product`: softmax$(QK^\top/\sqrt{D})V$ with a mask | `attention.attention_weights` (and the explicit path of `Attention`) |
# | `torch.tril` mask | `attention.causal_mask(T, S)`, also for queries after a KV cache |
# | head split and merge with `view`/`transpose`/`reshape` | `Attention._project`, `Attention._merge_heads` |
# | `my_repeat_kv` | `attention.repeat_kv` |
# | your `attention` (exercise 1): masked GQA after a cache | `attention.attention_weights` with `repeat_kv`; SDPA with `is_causal` and `enable_gqa` |
# | `kv_cache_bytes` | `attention.KVCache`, allocated by `Transformer.make_caches` |
# | `ScratchAttention` | `attention.Attention` (`forward`: SDPA; `forward_with_weights`: explicit) |
# | `attention_in_key_blocks` (online softmax) | the fused kernels behind `F.scaled_dot_product_attention` |
#
# Attention moves information between positions; the feed-forward network of chapter 5 then
# works on each position on its own. Chapter 6 puts the two together into a block, and stacks
# blocks into the whole model.
