# %% [markdown]
# # Solutions to chapter 10: Interop and next steps
#
# The answers to the exercises of chapter 10, checked with the same functions the chapter
# calls, so every check below prints `correct`. The experiment (exercise 3) is run here on the
# book's stored model, and what it measured is stated beside its output.

# %%
import torch
import transformers

from transformer_lib import book, interop
from transformer_lib.book.exercises import ch10
from transformer_lib.data import book_stories
from transformer_lib.model import rope

_ = torch.manual_seed(0)  # every random draw below is reproducible
transformers.logging.set_verbosity_error()  # keep library notices out of the output

# %% [markdown]
# ## Exercise 1
#
# The layer number stays; the module's path changes. The norm before the attention is our
# `input_layernorm`, the one before the feed-forward our `post_attention_layernorm`. In
# `w2(F.silu(w1(x)) * w3(x))`, `w1` goes through the SiLU, so it is the gate, `w3` the up
# projection and `w2` the down projection.

# %%
META_TO_OURS = {"tok_embeddings": "embed_tokens", "norm": "norm", "output": "lm_head",
                "attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
                "attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj",
                "attention.wv": "self_attn.v_proj", "attention.wo": "self_attn.o_proj",
                "feed_forward.w1": "mlp.gate_proj", "feed_forward.w3": "mlp.up_proj",
                "feed_forward.w2": "mlp.down_proj"}


def from_meta_name(name: str) -> str:
    """Meta's (and llama2.c's) parameter name -> the name of the same tensor in our model."""
    module, kind = name.rsplit(".", 1)  # "layers.3.attention.wq", "weight"
    if module.startswith("layers."):
        _, layer, module = module.split(".", 2)
        return f"layers.{layer}.{META_TO_OURS[module]}.{kind}"
    return f"{META_TO_OURS[module]}.{kind}"


print(from_meta_name("layers.11.feed_forward.w1.weight"), from_meta_name("output.weight"))

# %%
ch10.exercise_1(from_meta_name)

# %% [markdown]
# ## Exercise 2
#
# In our layout pair $i$ is rows $(i, i + 4)$; the interleaved layout puts pair $i$ at rows
# $(2i, 2i + 1)$. So the order takes rows 0 and 4, then 1 and 5, and so on: the two halves,
# read as a 2 × 4 grid, column by column. It is `rope.halves_to_interleaved` applied to the
# row numbers.

# %%
order = torch.arange(8).view(2, 4).t().flatten().tolist()  # (halves, pairs) -> (pairs, halves)
print(order)
assert order == rope.halves_to_interleaved(torch.arange(8)[:, None], num_heads=1).flatten().tolist()

# %%
ch10.exercise_2(order)

# %% [markdown]
# ## Exercise 3 (experiment)
#
# The stored model, exported correctly and exported with the query and key rows of every layer
# permuted as if our model used interleaved pairs, both run on the first validation story (the
# chapter's `input_ids`).

# %%
stored = book.stored_model()
model, tokenizer = stored.model, stored.tokenizer
story_ids = tokenizer.encode(book_stories("validation")[0])
input_ids = torch.tensor([[tokenizer.eot_id] + story_ids])
config = model.config

wrong = interop.to_hf(model)
with torch.no_grad():
    for layer in wrong.model.layers:
        attention = layer.self_attn
        attention.q_proj.weight.copy_(rope.interleaved_to_halves(attention.q_proj.weight,
                                                                 config.num_heads))
        attention.k_proj.weight.copy_(rope.interleaved_to_halves(attention.k_proj.weight,
                                                                 config.num_kv_heads))
    ours = model(input_ids)[0]  # (T, V)
    theirs = wrong(input_ids).logits[0]
difference = (ours - theirs).abs()
same_prediction = (ours.argmax(-1) == theirs.argmax(-1)).float()
drift = (difference.max().item(), same_prediction.mean().item())
unaffected_position = next(t for t in range(len(ours)) if difference[t].max() == 0)
print(f"max |logit difference| {drift[0]:.1f}; same next token at {int(same_prediction.sum())} "
      f"of {len(same_prediction)} positions; unchanged position: {unaffected_position}")

# %% [markdown]
# Every weight is still there, yet the model is broken: the logits move by up to 11.8, and the
# predicted next token changes at 49 of the 92 positions (the same at 43). Mixing up the RoPE
# pairs does not crash anything or change a shape, so only a comparison of outputs, like the
# one this chapter makes, catches it.
#
# Position 0 is untouched, exactly. The permutation only changes the queries and keys, so it
# can only change attention weights; but the first token has a single key to attend to, its
# own, and its weight is 1 whatever the scores. From position 1 on, each query and key is
# rotated in the wrong pairs of dimensions, so the scores no longer depend on the relative
# position the way the model learned.

# %%
assert drift[0] > 5 and 0.3 < drift[1] < 0.7 and unaffected_position == 0
assert all(difference[t].max() > 0 for t in range(1, len(difference)))
ch10.exercise_3(wrong, input_ids, drift, unaffected_position)
