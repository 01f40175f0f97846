# %% [markdown]
# # 13. Adapting a trained model
#
# Pretraining gave us a model that continues stories. Most projects start there and want
# something else from it: follow a format, do a task. This chapter sets the stored model a
# task it cannot do, adapts it in two ways, and measures what each buys and costs:
#
# - **the task**: a header `Words: ball, tree, brave` above a story names three words the story
#   must use; the score is the fraction of generated stories that use all three;
# - **full fine-tuning**: keep training every weight, on headed stories; done the obvious way it
#   learns nothing, and we measure why and what fixes it;
# - **LoRA** (low-rank adaptation): freeze every weight and train small corrections beside a few
#   of them, at two ranks;
# - for each: the score, the parameters trained, the minutes, and how much the model
#   **forgets** of ordinary stories (bits per byte before and after).
#
# The fine-tuning runs take minutes each, so they were run once by
# `book_config/make_adaptation_results.py` and stored with their meta, like the stored model;
# this chapter loads them, and runs one cheap LoRA demo live.

# %%
import json
import time

import torch
import torch.nn.functional as F

from transformer_lib import book
from transformer_lib.book import viz
from transformer_lib.book.exercises import ch13
from transformer_lib.data import book_stories, tasks
from transformer_lib.model.lora import (
    LoRAConfig,
    add_lora,
    load_adapter,
    lora_layers,
    merge_lora,
    trainable_parameters,
    unmerge_lora,
)

torch.manual_seed(0)
torch.set_num_threads(1)  # a 1M-parameter model: one thread is fastest on a busy CPU
stored = book.stored_model()
model, tokenizer = stored.model, stored.tokenizer
ADAPTATION_DIR = book.STORED_MODEL_DIR.parent / "adaptation"
results = json.loads((ADAPTATION_DIR / "results.json").read_text(encoding="utf-8"))
runs = results["runs"]
print(f"stored model: {model.num_parameters():,} parameters; stored runs: {', '.join(runs)}")

# %%
assert set(runs) == {"base_header", "base_plain", "full_plain", "full_swaps", "full", "lora_r1",
                     "lora_r8"}

# %% [markdown]
# ## The task
#
# `transformer_lib.data.tasks` builds it from the book's extract. A fixed list of 60 concrete
# words (`tasks.TASK_WORDS`: nouns, adjectives and verbs that each appear in roughly 1% to 15% of
# the stories) is searched in every training story; a story that uses at least three of them
# gets a header naming three, drawn with a seed per story and listed in the order the story uses
# them. Stories with fewer than three list words are left out.

# %%
train, validation = book_stories("train"), book_stories("validation")
task_train = tasks.task_stories(train, "train")
print(f"{len(task_train):,} of {len(train):,} training stories get a header; the first:\n")
print(task_train[0][:300])

# %%
head, body = task_train[0].split("\n", 1)
assert head.startswith(tasks.HEADER_PREFIX)
assert tasks.uses_all(body, head.removeprefix(tasks.HEADER_PREFIX).split(", "))
assert 1000 < len(task_train) < len(train)

# %% [markdown]
# The score uses 200 **held-out** triples: drawn the same way from the validation stories,
# leaving out any triple that heads a training text (the swapped copies below included). For
# each, the model writes one story (sampled at temperature 0.8, up to 240 tokens, which with the
# prompt fills the model's 256 positions, with a fixed seed), and the story counts if it uses
# all three words as whole words ("trees" is not "tree").

# %%
triples = tasks.held_out_triples(validation, train)
print(f"{len(triples)} held-out triples; the first three: {triples[:3]}")
print(tasks.header(triples[0]))
print(tasks.plain_prompt(triples[0]))

# %%
assert len(triples) == 200 and [list(t) for t in triples] == results["triples"]

# %% [markdown]
# How does the stored model do? Given only the header it has never seen, it writes some story,
# which used all three words in none of 200 tries; given a plain story opening that mentions
# the words, in one: it continues text, it does not follow requests. (The stored scores were
# measured by the results script; sampled stories depend on the CPU's rounding, so they are not
# recomputed here.)

# %%
for name, label in (("base_header", "header only"), ("base_plain", "plain prompt")):
    print(f"base model, {label:12s}: score {runs[name]['score']:.3f}")
print("\nthe base model's story for the first triple, given the header:\n")
print(runs["base_header"]["example"][:300])

# %%
assert runs["base_header"]["score"] < 0.05 and runs["base_plain"]["score"] < 0.05

# %% [markdown]
# ## Full fine-tuning, the obvious way
#
# The simplest adaptation is more training: the same trainer as chapter 7, starting from the
# stored weights, on the headed stories, with a smaller learning rate (1e-3 rather than the
# 5e-3 of pretraining) so that the first steps do not wreck what the model knows. Every one of
# the model's parameters trains, and AdamW keeps two more numbers for each.
#
# The results script did exactly that: 300 steps of 8 windows of 256 tokens, cut at random from
# the headed stories as chapter 7 cuts its text (about 2 passes over them). Stored as
# `full_plain`:

# %%
plain = runs["full_plain"]
print(f"full fine-tuning on headed stories: score {plain['score']:.3f} "
      f"(base model: {runs['base_header']['score']:.3f}); {plain['minutes']:.1f} minutes")

# %%
assert plain["score"] < 0.02

# %% [markdown]
# It did not learn the task: not one story in 200 uses all three words, as for the base model. Two
# reasons, both about the signal the loss gives:
#
# - **The model already knows these stories.** Pretraining read each training story about 9
#   times (chapter 7). When "ball" comes up in one of them, the model predicts it from the story
#   around it; the header adds nothing it needs, so no gradient asks it to look there.
# - **The header is a small part of the loss.** It is about 10 tokens before a story of about
#   250, and its own tokens are arbitrary words the model cannot predict: training on them
#   teaches nothing useful.
#
# ## A recipe that makes the header matter
#
# Three changes, each aimed at one of those reasons (`tasks.swapped_story` and
# `tasks.training_rows`):
#
# 1. **Swap the words.** Besides each headed story, two copies in which the three header words
#    are replaced, wherever the story uses them, by other list words of the same kind that the
#    story does not use. The story can read oddly, and that is the point: a swapped-in word
#    can only come from the header.
# 2. **Whole stories, header out of the loss.** Each training row is one story from its
#    beginning (the trainer takes rows as well as a flat array, `data.tokens.RandomRows`), and
#    the header's tokens get weight 0: they are the prompt, not something to predict.
# 3. **Weigh the words.** A story token that starts one of the header's words counts 5 times
#    in the loss (the trainer's `train_weights`).
#
# A swapped copy of the second training story:

# %%
swapped = tasks.swapped_story(train[1], "train:1:1")
print("the story's own words:", ", ".join(tasks.choose_words(train[1], "train:1:1")))
print(swapped[:280])

# %%
swapped_head, swapped_body = swapped.split("\n", 1)
swapped_in = swapped_head.removeprefix(tasks.HEADER_PREFIX).split(", ")
assert tasks.uses_all(swapped_body, swapped_in)
assert not set(swapped_in) & set(tasks.story_words(train[1]))

# %% [markdown]
# And the first training row as the loss sees it: `[brackets]` around tokens that do not count
# (the header), `<<angle brackets>>` around the tokens that count 5 times.

# %%
rows, weights = tasks.training_rows(train, tokenizer, seq_len=256)
print(f"{len(rows):,} rows of {rows.shape[1]} tokens; on average "
      f"{(weights == 5).sum(axis=1).mean():.1f} tokens of a row count 5 times\n")
pieces = []
for token, weight in zip(rows[0, :48].tolist(), weights[0, :48].tolist(), strict=True):
    piece = tokenizer.decode([token])
    pieces.append(f"[{piece}]" if weight == 0 else f"<<{piece}>>" if weight > 1 else piece)
print("".join(pieces))

# %%
assert len(rows) == runs["full"]["training_rows"] == 3 * len(task_train)
assert weights[0, 0] == 0 and (weights[0] == 5).sum() >= 1

# %% [markdown]
# Full fine-tuning with this recipe (same steps, learning rate and seed) is the run `full`; the
# run `full_swaps` has the swaps and whole rows but weighs every story token alike, to see what
# the weighting adds on its own.

# %%
for name in ("full_plain", "full_swaps", "full"):
    print(f"{name:11s} score {runs[name]['score']:.3f}")

# %%
assert runs["full"]["score"] > 10 * runs["full_swaps"]["score"]
assert runs["full_swaps"]["score"] < 0.05
assert runs["full"]["score"] > 10 * runs["full_plain"]["score"]

# %% [markdown]
# The recipe takes the score from none of 200 stories to about half (102 of 200). The swaps
# without the weighting did almost nothing (one story in 200): both changes are needed. The
# swaps make the header the only source of those words, and the weights make those few tokens a
# large enough part of the loss to learn from in 300 steps. Half is still far from every story,
# for a 1M-parameter model that must decide, while telling a story, to bring three given words
# into it.
#
# ## LoRA: train a small correction instead
#
# Hu et al. (2021) observed that the change fine-tuning makes to a weight matrix has low
# *rank*: it can be written as a product of two thin matrices. LoRA trains only those. A
# projection $y = x W^\top$ with $W$ of shape (out, in) becomes
#
# $$ y = x W^\top + \frac{\alpha}{r}\, (x A^\top)\, B^\top, \qquad A: (r, \text{in}),\;
# B: (\text{out}, r), $$
#
# with $W$ frozen. $x A^\top$ squeezes each position down to $r$ numbers and $B$ maps them back
# up. $B$ starts at zero, so training starts from exactly the base model; $A$ starts random (as
# `nn.Linear` initialises its weights). The scale $\alpha / r$ ties the update's size to
# $\alpha$, not to the rank; our runs set $\alpha = 2r$, so the scale is 2 at every rank.
#
# A rank-$r$ adapter on a (out, in) projection trains $r(\text{in} + \text{out})$ numbers instead
# of $\text{in} \times \text{out}$. After training, $W + \frac{\alpha}{r} B A$ is again one
# matrix of W's shape: **merging** it in makes the adapted model exactly as fast as the base
# one, and subtracting it again (**unmerging**) gives the base back.
#
# `transformer_lib.model.lora` has the layer, `LoRALinear`, and `add_lora(model, config)`, which
# wraps the chosen projections of every block (any of `q`, `k`, `v`, `o` in attention and
# `gate`, `up`, `down` in the feed-forward) and freezes everything else. Its parameter names
# follow the `peft` library's, and `tests/test_lora.py` checks it against `peft` on the same model
# exported with `to_hf`: equal logits (within 1e-5), equal trainable-parameter counts, equal
# adapters after one AdamW step, and merged weights that give the unmerged logits.
#
# The results script trained LoRA at rank 1 and rank 8 on all seven projections (alpha = 2r,
# learning rate 1e-2: adapters start from zero and need a larger step), with the recipe above
# and the same steps and seed as full fine-tuning. Here is the rank-8 adapter, loaded onto the
# stored model:

# %%
ADAPTER = ADAPTATION_DIR / "lora_r8.safetensors"
adapted = load_adapter(ADAPTER, book.stored_model().model)
config = adapted.lora_config
print(config)
print(f"adapter file: {ADAPTER.stat().st_size / 1024:.0f} KB; "
      f"{len(lora_layers(adapted))} LoRA layers; trainable {trainable_parameters(adapted):,} "
      f"of {adapted.num_parameters():,} parameters")

# %%
assert trainable_parameters(adapted) == runs["lora_r8"]["trainable_parameters"]
assert ADAPTER.stat().st_size < 400 * 1024

# %% [markdown]
# Merging folds every correction into its weight; the logits do not change beyond float32
# rounding (they reach about 15 here, and float32 keeps about 7 significant digits, so we
# allow 1e-4), and unmerging restores the frozen weights.

# %%
ids = torch.tensor([[tokenizer.eot_id] + tokenizer.encode(tasks.header(triples[0]) + "\n")])
frozen_before = {name: p.clone() for name, p in adapted.named_parameters() if "lora_" not in name}
with torch.no_grad():
    unmerged_logits = adapted(ids)
    merge_lora(adapted)
    merged_logits = adapted(ids)
    unmerge_lora(adapted)
difference = (merged_logits - unmerged_logits).abs().max().item()
print(f"largest |logit| {unmerged_logits.abs().max().item():.0f}; largest logit difference, "
      f"merged vs unmerged: {'below 1e-4' if difference < 1e-4 else difference}")

# %%
assert difference < 1e-4 and 10 < unmerged_logits.abs().max().item() < 25
for name, p in adapted.named_parameters():
    if "lora_" not in name:
        torch.testing.assert_close(p, frozen_before[name], atol=1e-6, rtol=0)

# %% [markdown]
# ## What each adaptation bought, and what it cost
#
# "Minutes" are the wall-clock minutes of training on the 2 cores of an otherwise idle machine
# (the script stores CPU minutes too). Bits per byte are measured on the first 100 windows of
# 256 tokens of the *ordinary* validation stories, which have no header: a rise means the model
# got worse at what it could do before.

# %%
labels = {"base_header": "base, header", "base_plain": "base, plain prompt",
          "full_plain": "full, plain data", "full": "full, recipe", "lora_r1": "LoRA r=1",
          "lora_r8": "LoRA r=8"}
print(f"{'':20s} {'score':>6s} {'trainable':>10s} {'minutes':>8s} {'bpb before':>11s} "
      f"{'bpb after':>10s}")
for name in labels:
    run = runs[name]
    print(f"{labels[name]:20s} {run['score']:6.3f} {run['trainable_parameters']:10,d} "
          f"{run['minutes']:8.1f} {run['bpb_before']:11.3f} {run['bpb_after']:10.3f}")

# %%
assert (runs["lora_r1"]["trainable_parameters"] < runs["lora_r8"]["trainable_parameters"]
        < runs["full"]["trainable_parameters"] == model.num_parameters())
rise = {name: runs[name]["bpb_after"] - runs[name]["bpb_before"] for name in labels}
assert rise["full"] > max(rise["lora_r1"], rise["lora_r8"])
assert min(rise["lora_r1"], rise["lora_r8"]) > 0
assert 0.6 < rise["lora_r1"] / rise["full"] < 0.9 and 0.6 < rise["lora_r8"] / rise["full"] < 0.9
assert rise["full_plain"] < min(rise["lora_r1"], rise["lora_r8"])
assert runs["full"]["score"] > runs["lora_r8"]["score"] > 3 * runs["lora_r1"]["score"]
assert min(runs["lora_r1"]["score"], runs["lora_r8"]["score"]) > 5 * runs["full_plain"]["score"]

# %% [markdown]
# The figure puts the four measures side by side.

# %%
viz.plot_adaptation_results({labels[name]: runs[name] for name in labels})

# %% [markdown]
# Read it from left to right. **Score**: with the recipe, full fine-tuning wrote 102 stories of
# 200 that use all three words; LoRA wrote 17 at rank 1 and 69 at rank 8. Here the rank
# matters: eight dimensions of correction per matrix bought four times the score of one. Every
# one of them is far above the obvious fine-tuning's none.
# **Cost**: LoRA at rank 1 trains under one percent of the weights and stores them in a file of
# about 45 KB, while full fine-tuning needs a whole new copy of the model (and AdamW's two
# moments for every weight while it trains); the minutes are about the same here, because a
# 1M-parameter model's step costs its forward and backward passes, not its optimizer.
# **Forgetting**: full fine-tuning with the recipe moved every weight toward headed stories and
# lost the most on ordinary ones, 0.020 bits per byte; LoRA's frozen weights held it closer to
# the base model, about three quarters of that (0.015) at either rank. The obvious fine-tuning
# forgot less still (0.011), but it learned nothing. More score, more forgetting: the trade-off
# the choice between them is about.
#
# Here are the stories each adapted model wrote for the first triple (stored with the results):

# %%
print("words:", ", ".join(triples[0]))
for name in ("full_plain", "full", "lora_r1", "lora_r8"):
    story = runs[name]["example"]
    print(f"\n{labels[name]} (uses all three: {tasks.uses_all(story, triples[0])}):\n"
          f"{story[:300]}")

# %% [markdown]
# The obvious fine-tuning wrote about a shy girl and uses none of the three words. Full
# fine-tuning and LoRA at rank 8, trained with the recipe, use all three, and LoRA at rank 1
# uses "bright" and "water" but misses "small". Read the stories, though: they say "bright" again
# and again, where it makes little sense. The weighting counted every appearance of a header
# word five times in the loss, so the models learned to expect the words everywhere, and the
# score only asks whether each word appears. It says nothing about whether the story is still
# a good one (nor does the forgetting column, measured on ordinary stories): reading what the
# model writes is part of measuring it.

# %%
used = {name: [w for w in triples[0] if tasks.uses_all(runs[name]["example"], [w])]
        for name in ("full_plain", "full", "lora_r1", "lora_r8")}
assert used["full_plain"] == [] and used["lora_r1"] == ["bright", "water"]
assert used["full"] == used["lora_r8"] == list(triples[0])
assert all(runs[name]["example"].lower().count("bright") >= 5 for name in ("full", "lora_r8"))

# %% [markdown]
# ## A LoRA run you can watch
#
# A few steps of LoRA on one batch of headed stories, with the same pieces the trainer uses:
# `add_lora` freezes the model, AdamW sees only the adapters, and the loss falls while every
# base weight stays as it was. (The timing varies by machine and is not compared.)

# %%
demo = add_lora(book.stored_model().model, LoRAConfig(rank=4, alpha=8.0,
                                                      targets=("q", "v", "up")))
ids = torch.from_numpy(tasks.encode_texts(task_train[:16], tokenizer)[:8 * 129]).view(8, 129)
optimizer = torch.optim.AdamW([p for p in demo.parameters() if p.requires_grad], lr=1e-2)
base_weights = {name: p.clone() for name, p in demo.named_parameters() if not p.requires_grad}


def demo_loss(net) -> torch.Tensor:
    logits = net(ids[:, :-1])  # (8, 128, vocab)
    return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


demo.train()
losses, start = [], time.perf_counter()
for _ in range(15):
    loss = demo_loss(demo)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
demo = demo.eval()

# %%
# NBVAL_IGNORE_OUTPUT
print(f"15 LoRA steps in {time.perf_counter() - start:.1f} s: loss {losses[0]:.3f} -> "
      f"{losses[-1]:.3f}; {trainable_parameters(demo):,} trainable parameters")

# %%
assert losses[-1] < losses[0] - 0.1
assert all(torch.equal(p, base_weights[name]) for name, p in demo.named_parameters()
           if not p.requires_grad)

# %% [markdown]
# ## Decoding: adapting the output without training
#
# Adapting need not touch the weights. Chapter 8's greedy stories from the stored model repeat
# themselves, and its only cure there was randomness. The library's `generate` has three more
# tools, each checked token for token against Hugging Face transformers' `generate` in the tests:
#
# - **beam search** (`num_beams=4`) keeps the 4 most probable continuations so far and returns
#   the most probable whole one (divided by its length to the power `length_penalty`);
# - a **repetition penalty** (`repetition_penalty=1.2`, transformers' convention) divides a
#   positive logit, or multiplies a negative one, by 1.2, once for each distinct token already
#   in the text;
# - **min-p** (`min_p=0.1`) samples only among tokens at least 0.1 times as probable as the
#   most probable one, a cut that widens when the model is unsure and narrows when it is sure.
#
# `book_config/make_decoding_table.py` ran each method on the stored model from the first six
# words of 20 validation stories, 100 new tokens each, and measured three things: *distinct-2*
# (the share of word pairs that are different: higher is more varied), the share of *repeated
# 4-grams* (lower is less loopy), and the stored model's own bits per byte on what it wrote
# (lower means text the model itself finds likely, that is, blander).

# %%
decoding = book.stored_decoding_table()
print(f"{'method':32s} {'distinct-2':>10s} {'repeated 4-grams':>17s} {'own bits/byte':>14s}")
for method, row in decoding["table"].items():
    print(f"{method:32s} {row['distinct_2']:10.3f} {row['repeated_4gram_rate']:17.3f} "
          f"{row['own_bits_per_byte']:14.3f}")

# %% [markdown]
# The measured trade-off: greedy decoding and beam search pick the most probable text, which the
# model rates as very likely (about 0.3 bits per byte) and which repeats itself: about a tenth
# of greedy decoding's 4-grams repeat an earlier one, and beam search, the more thorough search
# for probable text, repeats nearly a third. The repetition penalty keeps greedy decoding
# deterministic and removes the repeats, at a cost in the model's own likelihood. Sampling
# removes them too, with much more variety, and min-p sits between greedy and plain sampling.

# %%
table = decoding["table"]
greedy, beam = table["greedy"], table["beam search, 4 beams"]
penalty = table["greedy, repetition penalty 1.2"]
assert beam["repeated_4gram_rate"] > greedy["repeated_4gram_rate"] > penalty["repeated_4gram_rate"]
assert 0.05 < greedy["repeated_4gram_rate"] < 0.2 and 0.25 < beam["repeated_4gram_rate"] < 0.45
assert 0.15 < beam["own_bits_per_byte"] and greedy["own_bits_per_byte"] < 0.35
assert beam["own_bits_per_byte"] < greedy["own_bits_per_byte"] < penalty["own_bits_per_byte"]
samplers = [table[name] for name in ("sampling, T=0.8", "top-p 0.9", "min-p 0.1")]
assert all(s["distinct_2"] > 3 * greedy["distinct_2"] for s in samplers)
assert greedy["own_bits_per_byte"] < table["min-p 0.1"]["own_bits_per_byte"] < min(
    table["sampling, T=0.8"]["own_bits_per_byte"], table["top-p 0.9"]["own_bits_per_byte"])

# %% [markdown]
# What each method wrote after the first prompt (stored with the table; the prompt itself is
# left out):

# %%
for method, story in decoding["first_prompt_story"].items():
    print(f"--- {method}\n{story[:260]}\n")

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Write the LoRA layer's forward pass: given `x` (batch, positions, in), the
# frozen `weight` (out, in), `lora_A` (r, in), `lora_B` (out, r) and `alpha`, return what a
# `LoRALinear` returns. The check runs it against the library on random inputs and names the
# mistake it recognises.

# %%
def lora_forward(x, weight, lora_A, lora_B, alpha):
    ...  # your code here


# %%
ch13.exercise_1(lora_forward)

# %% [markdown]
# **Exercise 2.** Write `merge`: the single weight (out, in) that gives the same outputs as your
# forward pass. Why does merging cost nothing at inference, and why can you not merge two
# different adapters into one weight and still switch between them?

# %%
def merge_weight(weight, lora_A, lora_B, alpha):
    ...  # your code here


# %%
ch13.exercise_2(merge_weight)

# %% [markdown]
# **Exercise 3.** How many parameters does LoRA of rank 4 on the query and value projections
# of the stored model train? Work it out from `model.config` (mind the grouped key/value heads),
# then check it with `add_lora` and `trainable_parameters`.

# %%
rank4_qv_parameters = ...  # a whole number

# %%
ch13.exercise_3(rank4_qv_parameters, model)

# %% [markdown]
# **Exercise 4 (experiment).** Adapt the stored model yourself. Take a fresh
# `book.stored_model().model`, choose a rank and targets, and train the adapters on
# `practice_batch` (below) until the loss on it is clearly lower than the stored model's. Which
# targets get there fastest for the same number of trainable parameters: attention or
# feed-forward? Hand back the adapted model, unmerged; the check recomputes the loss on the
# batch and checks that only the adapters changed.

# %%
practice_batch = torch.from_numpy(
    tasks.encode_texts(task_train[100:108], tokenizer)[:4 * 129]).view(4, 129)
my_adapted_model = ...  # a Transformer with LoRA layers

# %%
ch13.exercise_4(my_adapted_model, book.stored_model().model, practice_batch)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | piece | what it does | library |
# |---|---|---|
# | the words task | headers naming three words a story uses; held-out triples; the score | `data.tasks` (`task_stories`, `held_out_triples`, `score_model`) |
# | the LoRA layer | a frozen weight plus a trainable $\frac{\alpha}{r} B A$; merge and unmerge | `model.lora.LoRALinear`, `add_lora`, `merge_lora`, `unmerge_lora` |
# | adapters on disk | the adapters alone (safetensors, KB), or merged into a plain checkpoint | `save_adapter`, `load_adapter`, `merged_copy` with `training.checkpoint` |
# | fine-tuning from the command line | `tlib-train --init-from DIR [--lora-rank R]`, same trainer, exact resume | `cli.train` |
# | the fine-tuning data | swapped-in header words, the header out of the loss, the words' tokens weighted | `data.tasks` (`swapped_story`, `training_rows`); rows and weights in the trainer (`Trainer(..., train_weights=...)`) |
# | the stored runs | full fine-tuning (plain data, swaps alone, the recipe), LoRA r=1 and r=8 with the recipe (300 steps each) | `book_config/make_adaptation_results.py`, `assets/adaptation/` |
# | the figure | score, parameters, minutes, forgetting | `viz.plot_adaptation_results` |
#
# The solutions to the exercises are in `notebooks/solutions/13_adapting_solutions`.
