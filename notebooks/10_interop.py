# %% [markdown]
# # 10. Interop and next steps
#
# Our model is a Llama in all but name: RMSNorm before each sub-layer, rotary position
# embeddings, grouped-query attention, a SwiGLU feed-forward layer, no biases. So it can move to
# the Hugging Face `transformers` library, whose `LlamaForCausalLM` runs the same architecture,
# and with it to the tools built around that format (fine-tuning libraries, quantisers, serving
# engines, `llama.cpp` converters). In this chapter we:
#
# - export the book's stored model (the one chapter 8 studied) to `LlamaForCausalLM` with
#   `interop.to_hf`;
# - check that both libraries compute the same logits and generate the same text;
# - save it in the Hugging Face format, load it back, and convert it back to ours with
#   `interop.from_hf`;
# - see why the conversion is only a renaming: the parameter names and the RoPE convention.
#
# The chapter ends with directions to take the model further.

# %% [markdown]
# `transformers` is not a requirement of the book (the library imports it only when a
# conversion is asked for), so this chapter checks for it first.

# %%
try:
    import transformers
except ImportError as err:
    raise ImportError("Chapter 10 needs Hugging Face transformers: pip install transformers "
                      "(the rest of the book runs without it)") from err

import tempfile
from pathlib import Path

import torch

from transformer_lib import book, interop
from transformer_lib.book.exercises import ch10
from transformer_lib.data import book_stories
from transformer_lib.model import rope

_ = torch.manual_seed(0)  # every random draw below is reproducible
transformers.logging.set_verbosity_error()  # keep library notices out of the output
transformers.utils.logging.disable_progress_bar()  # and its save/load progress bars

# %% [markdown]
# ## The trained model
#
# As in chapter 8, `book.stored_model()` loads the model that ships with the library. Its
# configuration shows the grouped-query attention: 4 query heads share 2 key/value heads.

# %%
stored = book.stored_model()
model, tokenizer = stored.model, stored.tokenizer
print(model.config)

# %%
assert model.config.num_kv_heads < model.config.num_heads  # grouped-query attention

# %% [markdown]
# ## Export to `LlamaForCausalLM`
#
# `interop.to_hf` builds a `LlamaConfig` with the same shape and copies every weight across.
# The configuration is a translation of field names:

# %%
hf_model = interop.to_hf(model)
hf_config = hf_model.config
for ours, theirs in (("vocab_size", "vocab_size"), ("d_model", "hidden_size"),
                     ("num_layers", "num_hidden_layers"), ("num_heads", "num_attention_heads"),
                     ("num_kv_heads", "num_key_value_heads"),
                     ("ffn_hidden_dim", "intermediate_size"),
                     ("max_seq_len", "max_position_embeddings"), ("norm_eps", "rms_norm_eps"),
                     ("tie_embeddings", "tie_word_embeddings")):
    print(f"{ours:>15} = {getattr(model.config, ours)!s:>6}   {theirs}")

# %% [markdown]
# The weights need no translation at all. `transformer_lib` named its modules after Hugging
# Face's Llama from the start (`embed_tokens`, `layers.N.self_attn.q_proj`,
# `layers.N.mlp.gate_proj`, `norm`, `lm_head`...), and `LlamaForCausalLM` wraps the stack in a
# `model` attribute. So a name maps by adding the prefix `model.`, except the output head, which
# sits beside the stack. Here is the first layer:

# %%
hf_names = set(hf_model.state_dict())
for name, tensor in model.state_dict().items():
    if name.startswith(("embed_tokens", "layers.0.", "norm", "lm_head")):
        hf_name = name if name.startswith("lm_head") else f"model.{name}"
        print(f"{name:<42} -> {hf_name:<48} {tuple(tensor.shape)}")
        assert hf_name in hf_names

# %% [markdown]
# Every tensor arrives with the same shape and values. The check goes through both state dicts
# by name, so a tensor copied to the wrong place would be caught.

# %%
hf_state = hf_model.state_dict()
for name, tensor in model.state_dict().items():
    hf_name = name if name.startswith("lm_head") else f"model.{name}"
    assert torch.equal(tensor, hf_state[hf_name]), name
assert len(hf_state) == len(model.state_dict())
print(f"all {len(hf_state)} tensors identical")

# %% [markdown]
# ## The RoPE convention
#
# Same weights do not yet mean same model: the two implementations must also rotate queries and
# keys the same way. RoPE rotates pairs of dimensions, and there are two conventions for which
# dimensions form a pair:
#
# - **split halves**: dimension $i$ pairs with $i + D/2$. Hugging Face's Llama does this, with
#   `rotate_half`; so does `transformer_lib.model.rope`.
# - **interleaved**: dimension $2i$ pairs with $2i+1$. Meta's original Llama code (with
#   complex numbers) and `llama2.c` (with real pairs) do this.
#
# Both are the same rotation applied to differently ordered coordinates. Converting Meta's
# checkpoints to Hugging Face's format therefore permutes the rows of every query and key
# projection, within each head (`rope.interleaved_to_halves`). Between our library and
# `transformers` no permutation is needed, because both use split halves. We can check this
# directly: Hugging Face's rotary module produces the same cos and sin tables as ours.

# %%
positions = torch.arange(model.config.max_seq_len)[None]  # (1, T)
dummy = torch.zeros(1, model.config.max_seq_len, model.config.head_dim)
hf_cos, hf_sin = hf_model.model.rotary_emb(dummy, positions)  # each (1, T, D)
torch.testing.assert_close(hf_cos[0], model.rope_cos)
torch.testing.assert_close(hf_sin[0], model.rope_sin)
print("cos/sin tables agree for all", model.config.max_seq_len, "positions")

# %% [markdown]
# Had we trained with interleaved pairs, exporting would permute the query and key rows. The
# library keeps that permutation in one place, and we can watch what it does to the rows of one
# head of size 8: the even rows (first members of the pairs) move to the first half, the odd ones
# to the second.

# %%
rows = torch.arange(8)[:, None]  # row i holds the value i
print(rope.interleaved_to_halves(rows, num_heads=1).flatten().tolist())

# %% [markdown]
# ## Same logits
#
# Now run both models on the same tokens: the first validation story of the book's extract,
# 91 tokens after the end-of-text token that starts it. Both compute in float32 with the same operations, so the only possible
# difference is the rounding of a few operations done in another order: $10^{-5}$ or less.

# %%
story_ids = tokenizer.encode(book_stories("validation")[0])
assert len(story_ids) < model.config.max_seq_len  # fits the context
input_ids = torch.tensor([[tokenizer.eot_id] + story_ids])
with torch.no_grad():
    ours = model(input_ids)
    theirs = hf_model(input_ids).logits
max_difference = (ours - theirs).abs().max().item()
print(f"logits {tuple(ours.shape)}; max |ours - transformers| below 1e-5: "
      f"{max_difference < 1e-5}")

# %%
assert max_difference < 1e-5  # the property printed above
assert torch.equal(ours.argmax(-1), theirs.argmax(-1))

# %% [markdown]
# ## Same text
#
# Greedy decoding is the strictest test of generation: a single different token would change
# everything after it. `transformers`' `generate` stops at the model's end-of-sequence id and
# wants a padding id; we turn the first off (`eos_token_id=None`) and give our end-of-text id as
# the second, so both generate exactly 80 tokens.

# %%
prompt = torch.tensor([[tokenizer.eot_id] + tokenizer.encode("Once upon a time")])
ours_greedy = model.generate(prompt, 80, temperature=0.0)
hf_greedy = hf_model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=80,
                              do_sample=False, eos_token_id=None,
                              pad_token_id=tokenizer.eot_id)
print(tokenizer.decode(ours_greedy[0, 1:]))

# %%
assert torch.equal(ours_greedy, hf_greedy)

# %% [markdown]
# ## Save, load, and convert back
#
# `save_pretrained` writes a directory in the Hugging Face format: `config.json` for the shape,
# `model.safetensors` for the weights and `generation_config.json` for the decoding defaults.
# Any `transformers` user can load it with `from_pretrained`, or push it to the hub. (The
# tokenizer is ours, not a Hugging Face one; it would travel as its own JSON file.)

# %%
with tempfile.TemporaryDirectory() as directory:
    hf_model.save_pretrained(directory)
    print(sorted(path.name for path in Path(directory).iterdir()))
    reloaded_hf = transformers.LlamaForCausalLM.from_pretrained(directory).eval()

# %% [markdown]
# `interop.from_hf` goes the other way: it reads a `LlamaConfig` into a `ModelConfig` (refusing
# features we do not have, such as biases or RoPE scaling) and copies the weights. The round
# trip must give back our model exactly: same configuration, same tensors, same logits.

# %%
round_trip = interop.from_hf(reloaded_hf).eval()
assert round_trip.config == model.config
for name, tensor in model.state_dict().items():
    assert torch.equal(tensor, round_trip.state_dict()[name]), name
with torch.no_grad():
    assert torch.equal(round_trip(input_ids), ours)
    torch.testing.assert_close(reloaded_hf(input_ids).logits, theirs)
print("ours -> transformers -> disk -> transformers -> ours: identical")

# %% [markdown]
# ## Where to go next
#
# The model in this book is small on purpose, so that every step runs on a laptop in seconds.
# Everything in it scales, and each direction below is a modest change to code you now know.
#
# **Train bigger, on more data.** Without `TINYSTORIES_PATH` the training command reads all 2.1
# million stories from the Hugging Face hub. The library's `seed-22.5M` preset (d_model 256, 12
# layers, GPT-2's 50,257-token vocabulary, 512-token context) is close to the size at which the
# TinyStories paper's models write stories that stay consistent from start to end. On one CUDA
# GPU, for an hour:
#
# ```bash
# tlib-train --out runs/seed --preset seed-22.5M --tokenizer gpt2 \
#     --batch-size 64 --seq-len 512 --weight-decay 0.1 --max-minutes 60 --device cuda
# ```
#
# and the same on the 8 GPUs of one machine, data-parallel, where `--batch-size` is the global
# batch split across the processes:
#
# ```bash
# torchrun --nproc_per_node=8 -m transformer_lib.cli.train --out runs/seed --preset seed-22.5M \
#     --tokenizer gpt2 --batch-size 512 --seq-len 512 --weight-decay 0.1 --max-minutes 60
# ```
#
# On CUDA the trainer uses bfloat16 autocast, and `--compile` adds `torch.compile`. On an Apple
# GPU use `--device mps` (float32). Beyond TinyStories, corpora of web text such as FineWeb-Edu
# are the usual next step; the token cache already handles files larger than memory.
#
# **Longer context.** The RoPE tables are built for `max_seq_len` positions; a model trained on
# 256 tokens has never seen the angles beyond. *RoPE scaling* stretches the tables so that a
# longer context maps onto angles the model knows: position interpolation divides positions by
# a factor, NTK-aware scaling raises the base $\theta$, and YaRN mixes the two per frequency,
# followed by a short fine-tuning at the new length. `transformers` configures these through
# `rope_scaling`; `interop.from_hf` refuses such models today, so supporting one means
# generalising `rope.rope_tables`. At long lengths the KV cache dominates memory, which is what
# grouped-query attention (`num_kv_heads`) reduces.
#
# **Mixture of experts.** Replace the SwiGLU layer with several of them (the experts) and a
# small router that sends each token to the top one or two. Parameters grow with the number of
# experts while the compute per token stays that of one or two; Mixtral is this model with 8
# experts. The block's `mlp` attribute is the only place to change.
#
# **Quantisation.** Weights stored in 8 or 4 bits instead of 32 shrink the model four to eight
# times and speed up memory-bound generation. Because the model exports to `LlamaForCausalLM`,
# the existing tools apply directly: `torchao` or `bitsandbytes` in Python, or `llama.cpp`'s
# converter to GGUF for CPU inference.
#
# **Fine-tuning.** The Hugging Face copy plugs into `peft` for LoRA adapters or `trl` for
# instruction tuning; `interop.from_hf` brings the result back to read it with this book's
# tools, attention plots included.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, which starts as a placeholder (`...`, or a function
# whose body is `...`), and a check cell that prints whether the answer is right, with a hint if
# it is not. The answers are in the solutions notebook for this chapter.
#
# **Exercise 1.** Our names are Hugging Face's, but many checkpoints use Meta's original names
# (Meta's Llama code, and llama2.c's `model.py`, which `interop.from_llama2c` reads). There,
# one block's parameters are
#
# ```
# layers.0.attention_norm.weight   layers.0.attention.wq.weight   layers.0.attention.wk.weight
# layers.0.attention.wv.weight     layers.0.attention.wo.weight   layers.0.ffn_norm.weight
# layers.0.feed_forward.w1.weight  layers.0.feed_forward.w2.weight  layers.0.feed_forward.w3.weight
# ```
#
# and outside the blocks `tok_embeddings.weight`, `norm.weight` and `output.weight`. In Meta's
# code the attention reads `attention_norm(x)` and the feed-forward reads `ffn_norm(h)`, and
# the feed-forward computes `w2(F.silu(w1(x)) * w3(x))`. Write the mapping from a Meta name to
# ours. (Converting such a checkpoint also needs the RoPE permutation of the rows of `wq` and
# `wk`, below; this exercise is about the names only.) The check feeds it every name of a
# 12-layer model and looks at what comes back.

# %%
def from_meta_name(name: str) -> str:
    """Meta's (and llama2.c's) parameter name -> the name of the same tensor in our model."""
    ...  # your answer


# %%
ch10.exercise_1(from_meta_name)

# %% [markdown]
# **Exercise 2.** The permutation above converts a checkpoint with interleaved RoPE pairs to our
# layout. Now the way back, for a model you want to run in `llama2.c`: for one head of size 8,
# in which order must our (split-halves) rows be taken to get the interleaved layout? Give the
# list of our row indices; the check applies RoPE both ways and compares.

# %%
order = ...  # your answer: a list of the 8 row indices

# %%
ch10.exercise_2(order)

# %% [markdown]
# **Exercise 3 (experiment).** What if a converter gets the RoPE convention wrong? Export the
# model again with `interop.to_hf`, then, in every layer of the copy, permute the rows of the
# query and key projections with `rope.interleaved_to_halves`, as a converter would do if it
# wrongly believed our model used interleaved pairs (the key projection has `num_kv_heads`
# heads). The weights are all still there, only paired differently. Run both models on
# `input_ids` and measure the largest absolute difference between the logits, and the fraction
# of positions where both still predict the same next token. One position is not affected at
# all: which, and why? Hand back the broken copy and the ids too: the check runs them again.

# %%
wrong_model = ...  # your answer: the exported copy with permuted q_proj and k_proj rows
drift = ...  # your answer: (max |logit difference|, fraction of positions with the same argmax)
unaffected_position = ...  # your answer: the position whose logits do not change at all

# %%
ch10.exercise_3(wrong_model, input_ids, drift, unaffected_position)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | piece | here | library |
# |---|---|---|
# | config translation | field table | `interop.to_hf_config`, `interop.from_hf_config` |
# | weight renaming (`model.` prefix; Meta's names) | name table, exercise 1 | `interop.to_hf`, `interop.from_hf`, `interop.from_llama2c` |
# | RoPE pairing conventions | cos/sin check, exercises 2 and 3 | `rope.interleaved_to_halves`, `rope.halves_to_interleaved` |
# | equivalence checks | logits, greedy text, round trip | `tests/test_interop.py` |
#
# From a single RMSNorm, the book has now built a trained Llama-style model that generates
# stories and runs in the ecosystem's standard format. Chapter 11 goes the other way: it loads a
# model someone else trained (llama2.c's stories260K) into our `Transformer` and looks inside it.
