# %% [markdown]
# # 12. What each choice buys
#
# Chapters 2 to 6 built the book's model out of choices: RMSNorm rather than LayerNorm, RoPE
# rather than learned, sinusoidal or no positions, SwiGLU rather than a GELU MLP, the norm before
# each branch rather than after the sum, two key/value heads shared by four query heads, one
# matrix for the embedding and the output head, and the $1/\sqrt{D}$ in attention. Each chapter
# gave a reason, a paper or a toy measurement. None measured the choice on the task this book
# trains. This chapter does: it changes one choice at a time, trains the model with chapter 7's
# recipe, and compares validation bits per byte.
#
# What you will do:
#
# - read a sweep that ships with the library: every variant, three seeds each, the same steps,
#   data and evaluation tokens;
# - draw every seed of every variant, and state only the differences larger than the spread of
#   the seeds;
# - rerun one row yourself and get within a hundredth of the stored figure;
# - compare the two optimizers at equal time, the measure that chose the training command's;
# - measure the tokenizer's vocabulary size at equal time;
# - add a variant of your own and measure it.

# %%
import torch

from transformer_lib import book
from transformer_lib.analysis.ablations import clear_differences, summarise_ablations
from transformer_lib.book import ablations, viz
from transformer_lib.book.exercises import ch12

torch.manual_seed(0)

# %% [markdown]
# ## The sweep
#
# `python -m transformer_lib.ablate --out FILE` (or `tlib-ablate`) runs the sweep and writes one
# JSON file. Each variant is one option of the library's `ModelConfig` or `TrainConfig`, so the
# book, the command line and your own code share them:

# %%
for name, (model_changes, train_changes, description) in ablations.VARIANTS.items():
    option = ", ".join(f"{k}={v!r}" for k, v in {**model_changes, **train_changes}.items())
    print(f"{name:21s} {option:28s} {description}"[:99])

# %% [markdown]
# The last seven come from the small-model speed-runs: QK-norm
# (RMSNorm on each head's queries and keys), output projections that start at zero (each block
# starts as the identity), soft-capped logits ($15\tanh(z/15)$), Muon (it replaces each matrix's
# update by an approximately orthogonal one computed from its momentum, five Newton–Schulz
# steps pushing every singular value towards 1) for the blocks'
# matrices, a schedule that stays at the peak learning rate and decays only over the last
# fifth of the run, and two changes to the values that attention averages. *Value embeddings*
# give each layer a table with one learned vector per token, added to the values it computes
# (modded-nanogpt's speed-run): $v_t = W_v x_t + E[\text{token}_t]$. A *value residual* makes
# each layer average its values with the first layer's, $v^{(l)} \leftarrow
# \tfrac12 (v^{(l)} + v^{(1)})$ (Zhou et al., 2024, ResFormer), so every layer can still read
# what the first one took from the tokens. Neither is in Llama.
#
# Some changes alter the parameter count: a learned position table adds
# `max_seq_len` $\times$ `d_model` numbers, untying adds a second vocabulary matrix, multi-head
# attention adds key and value projections, multi-query removes some. The sweep gives those
# variants a different feed-forward width, the one whose total comes nearest the baseline's, so
# no variant wins by having more weights. The GELU MLP has two matrices where SwiGLU has three,
# so its width is $3/2$ of SwiGLU's and the count is equal exactly. Value embeddings are the
# exception: their extra parameters are lookup tables, which, like the token embedding, cost no
# multiplication per token, so narrowing the feed-forward layers to pay for them would take
# compute away rather than match it; their count is recorded, not matched. The stored file
# records each variant's matching:

# %%
results = book.stored_ablations()
recipe = results["recipe"]
print(f"{recipe['steps']} steps of batch {recipe['train']['batch_size']} x "
      f"{recipe['train']['seq_len']} tokens, seeds {recipe['seeds']}, scored on the first "
      f"{recipe['eval_tokens']:,} validation tokens, {recipe['precision']} on the CPU")
for name, entry in results["variants"].items():
    print(f"{name:21s} feed-forward {entry['ffn_hidden_dim']:4d}: {entry['matched']}")

# %%
summaries = summarise_ablations(results)
base_parameters = summaries["baseline"].parameters
assert all(abs(s.parameters - base_parameters) < 0.01 * base_parameters for s in
           summaries.values() if s.name not in ablations.TABLES_ONLY)  # within 1% of the size
tabled = ablations.variant_config("value-embeddings", book.BOOK_VOCAB_SIZE)[0]
tables = tabled.num_layers * tabled.vocab_size * tabled.num_kv_heads * tabled.head_dim
assert summaries["value-embeddings"].parameters == base_parameters + tables  # only the tables
assert all(len(s.bits_per_byte) == len(recipe["seeds"]) >= 3 for s in summaries.values())

# %% [markdown]
# ## Every seed of every variant
#
# A seed fixes the initial weights and the order of the training windows. Different seeds of
# the same variant end at different bits per byte, and that spread is the noise any comparison
# must beat. The table gives each variant's mean and half the range of its seeds; the figure
# shows every seed, with the baseline's range shaded.

# %%
base = summaries["baseline"]
print(f"{'variant':21s} {'bits/byte':>15s} {'vs baseline':>12s} {'parameters':>11s}")
for s in sorted(summaries.values(), key=lambda s: s.mean):
    print(f"{s.name:21s} {s.mean:8.3f} ± {s.spread:.3f} {s.mean - base.mean:+12.3f} "
          f"{s.parameters:11,d}")

# %%
viz.plot_ablations(summaries, title=f"Validation bits per byte after {recipe['steps']} steps, "
                                    f"every seed")

# %% [markdown]
# We call a difference real only when every seed of the variant lies on one side of every seed
# of the baseline: no seed of one inside the other's range. With three seeds each that is a
# strict test, and the rows that pass it are these (positive: more bits per byte, worse):

# %%
differences = clear_differences(summaries)
for name, gap in sorted(differences.items(), key=lambda item: item[1]):
    print(f"{name:21s} {gap:+.3f} bits per byte ({'worse' if gap > 0 else 'better'})")
within_noise = sorted(set(summaries) - set(differences) - {"baseline"})
print("within the seeds' noise:", ", ".join(within_noise))

# %%
for name, gap in differences.items():
    seeds = summaries[name].bits_per_byte
    assert (min(seeds) > base.high) if gap > 0 else (max(seeds) < base.low), name

# %% [markdown]
# Each earlier chapter argued for one of these choices. Here is what this sweep measured for
# each, against the book's model, in bits per byte: a positive figure means the alternative did
# worse, so the book's choice bought that much. A figure within the seeds' noise says only that
# a run of this length cannot tell the two apart.

# %%
CHAPTER_CHOICES = {
    "2 (RMSNorm)": ["layernorm"],
    "3 (RoPE)": ["learned-positions", "sinusoidal-positions", "no-positions"],
    "4 (attention)": ["no-attention-scale", "multi-head", "multi-query"],
    "5 (SwiGLU)": ["gelu-mlp"],
    "6 (the block and the model)": ["post-norm", "untied"],
    "speed-run changes": ["qk-norm", "zero-init-output", "logit-softcap", "muon", "wsd",
                          "value-embeddings", "value-residual"],
}
verdicts = {}
for chapter, names in CHAPTER_CHOICES.items():
    print(f"chapter {chapter}:" if chapter[0].isdigit() else f"{chapter}:")
    for name in names:
        gap = summaries[name].mean - base.mean
        verdicts[name] = ("within noise" if name not in differences
                          else "alternative worse" if gap > 0 else "alternative better")
        print(f"    {name:21s} {gap:+.3f} bits per byte, {verdicts[name]}")

# %%
assert {n for ns in CHAPTER_CHOICES.values() for n in ns} == set(summaries) - {"baseline"}
for name, verdict in verdicts.items():
    gap = summaries[name].mean - base.mean
    assert verdict == "within noise" or (verdict == "alternative worse") == (gap > 0)

# %% [markdown]
# Two rows stand out. Both position schemes that add a table to the embedding did far worse
# than RoPE, and worse even than no positions at all. The table is added to every token's vector
# before the first block; a causal model without positions can still count them from its mask,
# and within 300 steps that served it better than either table. And post-norm
# did worst of all, with its three seeds within a thousandth of each other. So close an
# agreement suggests that the seeds ended at the same trivial model; the obvious candidate is
# the unigram model, which predicts each token's frequency in the training split whatever came
# before. Here it is, scored on the same validation tokens:

# %%
import numpy as np

from transformer_lib.analysis.baselines import NgramModel
from transformer_lib.data.tokens import bits_per_byte
from transformer_lib.training.trainer import token_byte_lengths

tokenizer = book.stored_model().tokenizer
train_ids = np.asarray(book.book_tokens("train", tokenizer).tokens)
scored = np.asarray(book.book_tokens("validation", tokenizer).tokens[:recipe["eval_tokens"]])
unigram = NgramModel(train_ids, tokenizer.vocab_size, order=1)
nats = -unigram.log_probs(scored[:-1], scored[1:]).sum()
unigram_bpb = bits_per_byte(nats / (len(scored) - 1), len(scored) - 1,
                            int(np.asarray(token_byte_lengths(tokenizer))[scored[1:]].sum()))
print(f"unigram model: {unigram_bpb:.3f} bits per byte; post-norm's seeds: "
      + ", ".join(f"{b:.3f}" for b in summaries["post-norm"].bits_per_byte))

# %% [markdown]
# Post-norm learned how often each token occurs and nothing about context. Post-norm
# Transformers are known to need a long, gentle warm-up (Xiong et al., 2020, trace it to large
# gradients near the output at initialisation), and chapter 7's recipe reaches
# $3\times10^{-3}$ after 20 steps. The sweep keeps one recipe for every variant, so this row
# measures post-norm *under the book's recipe*, not post-norm tuned.

# %%
assert all(abs(b - unigram_bpb) < 0.01 for b in summaries["post-norm"].bits_per_byte)
assert min(summaries[n].low for n in ("learned-positions", "sinusoidal-positions")) > (
    summaries["no-positions"].high)

# %% [markdown]
# ## One row, live
#
# The stored figures come from one machine. `ablations.train_variant` is what the command runs
# for each row: it builds the variant, trains it with chapter 7's recipe for the sweep's steps,
# and scores it on the same validation tokens. Here is the baseline at seed 0 again (its speed
# depends on your CPU, so the printout is not compared):

# %%
# NBVAL_IGNORE_OUTPUT
live_model, live = ablations.train_variant("baseline", tokenizer, recipe["steps"], seed=0,
                                           eval_tokens=recipe["eval_tokens"])
stored_seed0 = summaries["baseline"].bits_per_byte[0]
print(f"live: {live['val_bpb']:.4f} bits per byte, stored: {stored_seed0:.4f}; "
      f"{live['tokens_per_s']:,.0f} tokens/s")

# %% [markdown]
# Training is seeded and deterministic on one machine; on another CPU the sums round
# differently, but the figure stays within a hundredth of a bit of the stored one, closer than
# the seeds are to each other:

# %%
assert abs(live["val_bpb"] - stored_seed0) < 0.01
assert live["parameters"] == summaries["baseline"].parameters

# %% [markdown]
# ## Muon at equal time
#
# The sweep compares the variants at equal steps. A user of the training command cares about
# equal time: what five minutes buy on their machine. Muon's five Newton–Schulz steps cost extra
# matrix products, and how much depends on where they run. `torch.optim.Muon` always iterates in
# bfloat16, which a CPU without bfloat16 arithmetic (the AVX2 machine that made the sweep, like
# most laptops) emulates many times slower than float32: on this book's model that made a Muon
# step two to three times as long as an AdamW one (`benchmarks/RESULTS.md` has the timings). The
# library's `Muon` (`transformer_lib.training.muon`, the same update rule) iterates in bfloat16
# only where the hardware has it and in float32 elsewhere, and then a Muon step costs about what
# an AdamW step does.
#
# `book_config/make_five_minute_runs.py` ran the training command, `tlib-train --max-minutes 5`,
# with each optimizer from two seeds, one run at a time, alternating. Every run had the same
# five minutes, so a slower step would have cost it steps:

# %%
def print_runs(stored: dict, label: str) -> None:
    """A stored file of training-command runs: its command, machine, and each run's result."""
    meta = stored["meta"]
    print(f"{meta['command']}\n({meta['cpu']}, {meta['threads']} threads, torch {meta['torch']})")
    print(f"{label:10s} {'seed':>4s} {'steps':>6s} {'bits/byte':>10s}")
    for run in stored["runs"]:
        print(f"{run['name']:10s} {run['seed']:4d} {run['steps']:6d} {run['val_bpb']:10.3f}")


equal_time = book.stored_five_minute_runs()
print_runs(equal_time, "optimizer")

# %%
viz.plot_equal_time_runs(equal_time["runs"],
                         title="The training command's five minutes, AdamW against Muon")

# %% [markdown]
# The lines are the evaluations every 100 steps on the split's first 64 windows, the stars each
# run's final figure over every validation token. Those first windows score lower than the whole
# split, so every star sits above the end of its line. By the rule above, with two seeds a side:

# %%
final = {name: sorted(r["val_bpb"] for r in equal_time["runs"] if r["name"] == name)
         for name in ("adamw", "muon")}
gap = sum(final["adamw"]) / len(final["adamw"]) - sum(final["muon"]) / len(final["muon"])
spread = max(final["adamw"][-1] - final["adamw"][0], final["muon"][-1] - final["muon"][0])
print(f"AdamW's seeds {final['adamw'][0]:.3f} to {final['adamw'][-1]:.3f}, Muon's "
      f"{final['muon'][0]:.3f} to {final['muon'][-1]:.3f}: Muon lower by {gap:.3f} bits per "
      f"byte on average, {gap / spread:.0f} times the widest seed spread")

# %%
assert final["muon"][-1] < final["adamw"][0]  # every Muon seed below every AdamW seed
steps = {name: [r["steps"] for r in equal_time["runs"] if r["name"] == name] for name in final}
assert min(steps["muon"]) > 0.9 * max(steps["adamw"])  # at about the same number of steps
assert all(r["val_bpb"] > r["evals"][-1]["val_bpb"] for r in equal_time["runs"])

# %% [markdown]
# That is beyond the seeds' noise, so the training command now trains a new model with Muon for
# the blocks' matrices and AdamW for the embedding and the gains (`trainer.CLI_RECIPE`; a
# fine-tuning run, `--init-from`, keeps AdamW), and the stored model that chapters 8 onwards
# study was trained that way. Runs of equal length made since moved two more of the command's
# defaults: batches of 8 windows instead of 16 and the warm-up/stable/decay schedule (the
# `wsd` row above) instead of the cosine: together 0.023 bits per byte lower at the same number
# of tokens (two seeds), and 0.012 lower in five-minute runs (three seeds; more, smaller steps
# in the same time, `benchmarks/RESULTS.md`). The runs above were made before that change, so
# their command spells out the batch and schedule they used; the stored model was remade with
# the new two.

# %% [markdown]
# ## The value options at the command's length
#
# The two value rows of the sweep sit within the seeds' noise: after 300 steps of chapter 7's
# recipe, neither bought anything measurable. The speed-runs that introduced them train far
# longer, and so does the training command: its five minutes reach about 1,300 float32 steps
# on a 2-core CPU without bf16 arithmetic (an AVX2 AMD EPYC, the slowest machine it was tuned
# on), under its own recipe (Muon, batches of 8, the warm-up/stable/decay schedule).
# `book_config/make_value_option_runs.py` trained the command's model for exactly those 1,300
# steps, from three seeds, with both options (`values`) and without (`plain`), one run at a
# time; stopping by steps keeps the machine's speed out of the comparison:

# %%
value_runs = book.stored_value_option_runs()
print_runs(value_runs, "model")

# %%
viz.plot_equal_time_runs(value_runs["runs"], x="step",
                         title="The command's model for 1,300 steps, with and without the "
                               "value options")

# %% [markdown]
# The curves part after a few hundred steps and stay apart, by about 0.05 on the sampled windows,
# while the learning rate holds at its peak; the decay over the last fifth brings them most of
# the way together (at step 800, every seed with the options is below every seed without):

# %%
def sampled_at(step: int, name: str) -> list[float]:
    return [e["val_bpb"] for r in value_runs["runs"] if r["name"] == name
            for e in r["evals"] if e["step"] == step]


assert max(sampled_at(800, "values")) < min(sampled_at(800, "plain"))

# %% [markdown]
# The final figures, over every validation token, are what counts. By the rule above, three
# seeds a side:

# %%
by_name = {name: sorted(r["val_bpb"] for r in value_runs["runs"] if r["name"] == name)
           for name in ("plain", "values")}
value_gap = (sum(by_name["plain"]) - sum(by_name["values"])) / 3
print(f"plain {by_name['plain'][0]:.3f} to {by_name['plain'][-1]:.3f}, with the value options "
      f"{by_name['values'][0]:.3f} to {by_name['values'][-1]:.3f}: {value_gap:.3f} bits per byte "
      f"lower on average")

# %%
assert value_gap > 0  # lower on average...
assert by_name["values"][-1] > by_name["plain"][0]  # ...but the seeds' ranges overlap

# %% [markdown]
# Lower on average, but the worst seed with the options lies above the best seed without: by
# the rule above, not a difference the seeds can vouch for. In the command's five minutes on a
# CPU with bf16 arithmetic (2,100 to 2,400 bf16 steps) they measured no lower at all: 1.059,
# 1.068 and 1.066 bits per byte with them against 1.066, 1.061 and 1.061 without
# (`benchmarks/RESULTS.md`). So the training command leaves them off; `--value-embeddings
# --value-residual` turn them on, for a reader who wants to run more seeds. They would also
# have had a price beyond a step about 2% longer (2.5% in float32, 1.4% in bf16): neither is in
# Llama, so a model with them cannot be converted to Hugging Face's `LlamaForCausalLM`
# (chapter 10).

# %% [markdown]
# ## How many token ids
#
# Chapter 1 stopped the book's tokenizer at 2,048 ids and argued that a model this small spends
# its parameters better on its blocks than on a larger table. That is a claim about training,
# so it can be measured like the rest. A larger vocabulary packs more text into each token: a
# step of 8 windows of 256 tokens reads more bytes, and each window reaches further back. But
# the output layer scores every id at every position, so each step takes longer, and what
# counts is the model after the same time. `book_config/make_vocabulary_runs.py` trained the
# command's model with BPE vocabularies of 1,024, 2,048, 3,072 and 4,096 ids, three seeds each,
# for the AVX2 EPYC's 1,300 float32 steps divided by each size's step time relative to 2,048
# ids (timed on one CPU, steps interleaved):

# %%
vocab_runs = book.stored_vocabulary_runs()
print(vocab_runs["meta"]["command"])
print(f"{'ids':>6s} {'bytes/token':>11s} {'step time':>9s} {'steps':>6s}   bits per byte by seed")
for vocab in sorted({r["vocab_size"] for r in vocab_runs["runs"]}):
    mine = sorted((r for r in vocab_runs["runs"] if r["vocab_size"] == vocab),
                  key=lambda r: r["seed"])
    print(f"{vocab:6,d} {mine[0]['bytes_per_token']:11.2f} {mine[0]['step_time_ratio']:8.2f}x "
          f"{mine[0]['steps']:6,d}   " + "  ".join(f"{r['val_bpb']:.3f}" for r in mine))

# %% [markdown]
# The same summaries as the sweep's, with 2,048 ids as the baseline, and the same figure:

# %%
by_vocabulary = {"variants": {}}
for run in vocab_runs["runs"]:
    name = f"{run['vocab_size']:,} ids"
    by_vocabulary["variants"].setdefault(name, {"runs": []})["runs"].append(run)
vocab_summaries = summarise_ablations(by_vocabulary)
viz.plot_ablations(vocab_summaries, baseline="2,048 ids",
                   title="The command's model at equal time, by vocabulary size")

# %%
vocab_differences = clear_differences(vocab_summaries, baseline="2,048 ids")
for name, summary in vocab_summaries.items():
    gap = summary.mean - vocab_summaries["2,048 ids"].mean
    verdict = ("the baseline" if name == "2,048 ids" else "beyond the seeds' noise"
               if name in vocab_differences else "within the noise")
    print(f"{name:9s} {summary.mean:.3f} ± {summary.spread:.3f}  {gap:+.3f}  {verdict}")

# %% [markdown]
# Halving the vocabulary costs more than any seed can explain: at 1,024 ids a token carries
# about 3.1 bytes instead of 3.7, so the model makes 18% more predictions for the same text, and
# the time its smaller output layer saves (a step 9% shorter) does not pay for them. Above 2,048
# the trade evens out. 3,072 and 4,096 ids carry 6% and 9% more text a token, but their steps
# take 14% and 32% longer, and the ranges of their seeds overlap the 2,048-id range: neither
# differs beyond the noise.

# %%
assert set(vocab_differences) == {"1,024 ids"} and vocab_differences["1,024 ids"] > 0
per_token = {r["vocab_size"]: r["bytes_per_token"] for r in vocab_runs["runs"]}
assert (round(per_token[1024], 1), round(per_token[2048], 1)) == (3.1, 3.7)
assert round(per_token[2048] / per_token[1024] - 1, 2) == 0.18  # 18% more tokens
assert [round(per_token[v] / per_token[2048] - 1, 2) for v in (3072, 4096)] == [0.06, 0.09]
step_time = {r["vocab_size"]: r["step_time_ratio"] for r in vocab_runs["runs"]}
assert [round(step_time[v] - 1, 2) for v in (1024, 3072, 4096)] == [-0.09, 0.14, 0.32]

# %% [markdown]
# So the book keeps 2,048 ids: neither larger vocabulary did better beyond the noise, and 2,048
# has the smaller table. In the command's five minutes on a CPU with bf16 arithmetic the answer
# was the same: 3,072 ids scored 1.0560, 1.0530 and 1.0545 bits per byte against 1.0572, 1.0546
# and 1.0619 for 2,048 ids on the same machine (`benchmarks/RESULTS.md`), overlapping again.

# %% [markdown]
# ## What this does and does not say
#
# The sweep is short: chapter 7's 300 steps, about one pass over the training split, so it measures
# where each model is after a short run, not where it ends after the 2,400 steps of the stored
# model (about nine passes) or after days on a GPU. Several choices exist for reasons these runs
# cannot see: RoPE has no position table to run out of, and with rescaled angles and a short
# fine-tuning it stretches to longer contexts (chapters 3 and 10), which a learned table cannot;
# grouped-query attention shrinks the KV cache of chapter 8 (its price here is measured, its gain
# is memory); pre-norm matters most in deep stacks, and ours has four blocks; the speed-run changes
# were tuned for larger models and longer runs. Muon was also measured at equal time, the value
# options at the command's length and the vocabulary at equal time, above.
#
# ## Exercises
#
# **Exercise 1.** GPT-2's MLP is four times as wide as the stream, 4 $\times$ `d_model`, with
# two matrices (one up, one down). The sweep matched its GELU variant to SwiGLU instead. In the
# book's model (`d_model` 128, a SwiGLU width of 384), how many parameters more does a GELU MLP
# of GPT-2's width, without biases, hold than the SwiGLU MLP of one block? Give a negative
# number if it holds fewer.

# %%
more_parameters = ...  # GELU MLP of width 4 x d_model minus the book's SwiGLU MLP, one block

# %%
ch12.exercise_1(more_parameters, ablations.variant_config("baseline", 2048)[0].ffn_hidden_dim)

# %% [markdown]
# **Exercise 2.** Three seeds make the rule strict. Suppose the sweep had run only the seeds
# numbered 0 and 2. From `results` (not from the figure by eye), keep those runs of every
# variant and list each variant that would then differ from the baseline beyond the seeds'
# noise, by the rule above, with `"better"` or `"worse"`. Compare your list with the three-seed
# one: what did adding seed 1 change?

# %%
directions = ...  # {variant name: "better" or "worse"}

# %%
ch12.exercise_2(directions, results)

# %% [markdown]
# **Exercise 3 (experiment).** Add a variant of your own: any change of `ModelConfig` fields
# (`rope_theta`, `num_layers`, `d_model`, `num_heads`, `dropout`, `norm_eps`, a combination of the
# options above...). Train it with `ablations.train_variant((changes, {}), tokenizer, steps,
# seed=0, eval_tokens=recipe["eval_tokens"])`, which returns the model and its record, with the
# sweep's number of steps, and compare its bits per byte with the baseline's seeds. Is your
# difference larger than the spread? Hand back your changes, the trained model, its
# `val_bpb` and the number of validation tokens it was scored on; the check scores the model
# again.

# %%
my_variant = ...  # {"changes": {...}, "model": model, "bits_per_byte": x, "eval_tokens": n}

# %%
ch12.exercise_3(my_variant, tokenizer)

# %% [markdown]
# ## What we measured, and where it lives in the library
#
# | in this chapter | in `transformer_lib` |
# |---|---|
# | the variants | `ModelConfig` fields `norm`, `positions`, `mlp`, `norm_placement`, `num_kv_heads`, `tie_embeddings`, `attention_scale`, `qk_norm`, `zero_init_output`, `logit_softcap`, `value_embeddings`, `value_residual`; `TrainConfig` fields `optimizer`, `schedule`, `z_loss` |
# | the list and the parameter matching | `book.ablations.VARIANTS`, `variant_config` |
# | one run of one variant | `book.ablations.train_variant` |
# | the sweep | `python -m transformer_lib.ablate` (`tlib-ablate`), stored as `book.stored_ablations()` |
# | mean, spread, differences beyond noise | `analysis.ablations.summarise_ablations`, `clear_differences` |
# | the figure | `viz.plot_ablations` |
# | runs of the training command at equal time or steps | `book.stored_five_minute_runs()`, `stored_value_option_runs()`, `stored_vocabulary_runs()` (made by `book_config/make_*_runs.py`); `tlib-train --vocab-size` |
