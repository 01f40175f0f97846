# %% [markdown]
# # Solutions to chapter 11: Inside a trained model
#
# The answers to the exercises of chapter 11, checked with the same functions the chapter calls,
# so every check below prints `correct`. The logit-lens function of exercise 3 is applied to the
# chapter's prompts, and the ablation experiment (exercise 4) is run on the chapter's
# validation windows; what they measured is stated beside the output.

# %%

import torch

from transformer_lib.analysis import interpret
from transformer_lib.book.exercises import ch11
from transformer_lib.data import book_stories
from transformer_lib.data.tokenizer import load_tokenizer
from transformer_lib.interop import from_llama2c

torch.manual_seed(0)
torch.set_num_threads(1)  # as in the chapter: a tiny model runs fastest on one thread
model = from_llama2c("stories260K")
tokenizer = load_tokenizer("tok512")
BOS = tokenizer.bos_id

# %% [markdown]
# ## Exercise 1
#
# A query at position $i$ in the second copy (positions $1 + \text{length}$ to
# $2\,\text{length}$) finds the same token at $i - \text{length}$; the token that followed it
# there, where an induction head looks, is at $i - \text{length} + 1$. Those weights form one
# diagonal of the map, offset $-(\text{length} - 1)$, and the second copy's queries are its
# last `length` entries. (The first copy's queries are left out: there is nothing earlier to
# repeat.)

# %%
def induction_score(weights: torch.Tensor, length: int) -> float:
    """Mean weight of the second copy's queries on where an induction head looks; weights (T, T)."""
    return float(weights.diagonal(offset=-(length - 1))[-length:].mean())


ch11.exercise_1(induction_score)

# %% [markdown]
# ## Exercise 2
#
# In this library's split-halves pairing, pair $i$ is dimensions $i$ and $i + D/2$. Its energy
# is the sum of the two squares; summed over every vector and divided by the total, the shares
# add up to 1. Summing before dividing weighs each vector by its length, as
# `interpret.rope_pair_energy` does.

# %%
def pair_energy(vectors: torch.Tensor) -> torch.Tensor:
    """(D/2,) share of the squared norm of all vectors (..., D) in each RoPE pair; sums to 1."""
    half = vectors.shape[-1] // 2
    squares = vectors.float().square()
    per_pair = (squares[..., :half] + squares[..., half:]).reshape(-1, half).sum(0)  # (D/2,)
    return per_pair / per_pair.sum()


ch11.exercise_2(pair_energy)

# %% [markdown]
# ## Exercise 3
#
# Take each stream's top id, then walk back from the last stream as long as the top id still
# equals the final one.

# %%
def settled_layer(stream_logits: torch.Tensor) -> int:
    top = stream_logits.argmax(-1)  # (S,)
    index = len(top) - 1
    while index > 0 and top[index - 1] == top[-1]:
        index -= 1
    return index


ch11.exercise_3(settled_layer)

# %% [markdown]
# On the chapter's three prompts (stream 0 is the embedding, stream $l$ the output of layer
# $l - 1$):

# %%
prompts = ["Once upon a time, there was a little girl named Lily. She loved to play with her",
           "Tom and Sam went to the park. Tom said to",
           "The sun was shining and the birds were"]
settled = {}
for prompt in prompts:
    ids = torch.tensor([[BOS] + tokenizer.encode(prompt)])
    stream_logits = interpret.logit_lens(model, ids)[:, 0, -1]  # (S, V)
    settled[prompt] = settled_layer(stream_logits)
    print(f"...{prompt[-25:]!r}: settles at stream {settled[prompt]} of "
          f"{len(stream_logits) - 1}")

# %%
assert list(settled.values()) == [5, 3, 5]

# %% [markdown]
# The first prompt settles only at the output (stream 5), the second after layer 2
# (stream 3); the third finds its final guess "very" after layer 1 but leaves it for "a" in
# layers 2 and 3, so by this definition it too settles only at the output.
#
# ## Exercise 4 (experiment)
#
# The chapter's windows: the first 256 tokens of each of the first 16 validation stories.
# We repeat the single-head ablations to rank the heads, then zero the three costliest and the
# three cheapest together.

# %%
rows = [[BOS] + tokenizer.encode(text)[:255] for text in book_stories("validation")[:16]]
windows = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
targets = torch.zeros(len(rows), windows.shape[1] - 1, dtype=torch.bool)
for row, ids in enumerate(rows):
    windows[row, :len(ids)] = torch.tensor(ids)
    targets[row, :len(ids) - 1] = True
baseline, ablated = interpret.head_ablation_losses(model, windows, targets)
increase = (ablated - baseline).flatten()
order = increase.argsort(descending=True).tolist()
top3 = [divmod(i, model.config.num_heads) for i in order[:3]]
bottom3 = [divmod(i, model.config.num_heads) for i in order[-3:]]
ablation_losses = {"baseline": baseline,
                   "top3": interpret.ablated_loss(model, windows, top3, targets),
                   "bottom3": interpret.ablated_loss(model, windows, bottom3, targets)}
single_increases = ablated - baseline  # (layers, heads)
together_over_sum = tuple(
    (ablation_losses[name] - baseline)
    / sum(float(single_increases[layer, head]) for layer, head in heads)
    for name, heads in (("top3", top3), ("bottom3", bottom3)))
ch11.exercise_4(single_increases, ablation_losses, together_over_sum)

# %%
for (name, heads), ratio in zip((("top3", top3), ("bottom3", bottom3)), together_over_sum,
                                strict=True):
    together = ablation_losses[name] - baseline
    print(f"{name:7s} heads {heads}: together +{together:.3f} nats/token, "
          f"{ratio:.2f} times the sum of their single increases")

# %%
top_together = ablation_losses["top3"] - baseline
bottom_together = ablation_losses["bottom3"] - baseline
assert 8 < top_together / bottom_together < 13 and bottom_together > 0  # about ten times
assert 0.8 < together_over_sum[0] < 1.3  # about additive

# %% [markdown]
# Removing the three costliest heads together costs a little more than the sum of their single
# costs (1.09 times), the three cheapest too (1.12 times), and the costliest three cost about
# ten times what the three cheapest cost together. In this small
# model the heads' contributions add up roughly independently: no two of the costly heads back
# each other up.
