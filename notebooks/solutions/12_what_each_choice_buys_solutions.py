# %% [markdown]
# # Solutions to chapter 12: What each choice buys
#
# The answers to the exercises of chapter 12, checked with the same functions the chapter
# calls, so every check below prints `correct`. The experiment (exercise 3) is run here, and
# what it measured is stated beside its output.

# %%
import torch

from transformer_lib import book
from transformer_lib.analysis.ablations import clear_differences, summarise_ablations
from transformer_lib.book import ablations
from transformer_lib.book.exercises import ch12

_ = torch.manual_seed(0)
results = book.stored_ablations()
recipe = results["recipe"]
summaries = summarise_ablations(results)
tokenizer = book.stored_model().tokenizer

# %% [markdown]
# ## Exercise 1
#
# SwiGLU has three matrices of `d_model` x width (gate, up, down), a GELU MLP two, so per hidden
# unit SwiGLU holds $3C$ numbers and GELU $2C$. Equal totals need $2w = 3 \times 384$.

# %%
gelu_width = 3 * 384 // 2
print(gelu_width)

# %%
ch12.exercise_1(gelu_width, ablations.variant_config("baseline", 2048)[0].ffn_hidden_dim)

# %% [markdown]
# ## Exercise 2
#
# A variant differs beyond noise when all its seeds lie above all the baseline's seeds (worse)
# or all below (better).

# %%
base = summaries["baseline"]
directions = {}
for name, summary in summaries.items():
    if name != "baseline" and min(summary.bits_per_byte) > base.high:
        directions[name] = "worse"
    elif name != "baseline" and max(summary.bits_per_byte) < base.low:
        directions[name] = "better"
print(dict(sorted(directions.items())))
assert directions == {name: "worse" if gap > 0 else "better"
                      for name, gap in clear_differences(summaries).items()}

# %%
ch12.exercise_2(directions, results)

# %% [markdown]
# ## Exercise 3
#
# Our variant halves the depth: two blocks instead of four, with everything else the book's. It
# has fewer parameters and each step costs about half as much, so the question is what the
# other two blocks buy at this budget.

# %%
# NBVAL_IGNORE_OUTPUT
changes = {"num_layers": 2}
model, record = ablations.train_variant((changes, {}), tokenizer, recipe["steps"], seed=0,
                                        eval_tokens=recipe["eval_tokens"])
print(f"{record['parameters']:,} parameters against {base.parameters:,}; "
      f"{record['val_bpb']:.2f} bits per byte against the baseline's "
      f"{base.low:.2f} to {base.high:.2f}")

# %% [markdown]
# Whether two blocks cost bits per byte at this budget is read off the baseline's seeds: the
# printout below says whether the shallow model's figure lies outside their range, and which
# way (the figures come from training on this CPU, so the printout is not compared; the check
# below scores the model again). Both models had the same 300 updates; what the shallow one
# lacks is two blocks of capacity, not training.

# %%
# NBVAL_IGNORE_OUTPUT
side = ("above the baseline's seeds (worse)" if record["val_bpb"] > base.high
        else "below the baseline's seeds (better)" if record["val_bpb"] < base.low
        else "inside the baseline's seed range (within noise)")
print(f"two blocks: {record['val_bpb'] - base.mean:+.2f} bits per byte, {side}")

# %%
assert record["parameters"] < base.parameters
my_variant = {"changes": changes, "model": model, "bits_per_byte": record["val_bpb"],
              "eval_tokens": recipe["eval_tokens"]}
ch12.exercise_3(my_variant, tokenizer)
