# %% [markdown]
# # Solutions to chapter 11: Inside a trained model
#
# The answers to the exercises of chapter 11, checked with the same functions the chapter calls,
# so every check below prints `correct`. The logit-lens function of exercise 3 is applied to the
# chapter's prompts, and the ablation experiment (exercise 4) is run on the chapter's
# validation windows; what they measured is stated beside the output.

# %%
import math

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
# The weights on position $i-1$ are the diagonal just below the main one
# (`diagonal(offset=-1)`), one value for each query $i = 1, \dots, T-1$. Query 0 has no
# previous token, so it is not part of the mean.

# %%
def previous_token_score(weights: torch.Tensor) -> float:
    return float(weights.diagonal(offset=-1).mean())


ch11.exercise_1(previous_token_score)

# %% [markdown]
# ## Exercise 2
#
# A loss in nats becomes bits by dividing by $\ln 2$; the divisor is the text's UTF-8 length,
# which is larger than its number of characters as soon as one is not ASCII ("ï" and "é" take
# two bytes, an emoji four).

# %%
def bits_per_byte(total_nats: float, text: str) -> float:
    return total_nats / math.log(2) / len(text.encode("utf-8"))


ch11.exercise_2(bits_per_byte)
print(f"'naïve café': {len('naïve café')} characters, {len('naïve café'.encode())} bytes")

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
ch11.exercise_4(ablation_losses)

# %%
for name, heads in (("top3", top3), ("bottom3", bottom3)):
    together = ablation_losses[name] - baseline
    alone = sum(float(increase[layer * 8 + head]) for layer, head in heads)
    print(f"{name:7s} heads {heads}: together +{together:.3f} nats/token, "
          f"sum of single increases +{alone:.3f}")

# %%
top_together = ablation_losses["top3"] - baseline
bottom_together = ablation_losses["bottom3"] - baseline
assert 8 < top_together / bottom_together < 13 and bottom_together > 0  # about ten times
top_alone = sum(float(increase[layer * 8 + head]) for layer, head in top3)
assert 0.8 < top_together / top_alone < 1.3  # about additive

# %% [markdown]
# Removing the three costliest heads together costs about the sum of their single costs (a
# little more), and about ten times what the three cheapest cost together. In this small
# model the heads' contributions add up roughly independently: no two of the costly heads back
# each other up.
