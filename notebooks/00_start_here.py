# %% [markdown]
# # 0. Start here
#
# This book builds a small modern language model, one piece per chapter, in the style of Meta's
# Llama: a *decoder-only transformer* that reads a sequence of tokens and predicts the next one.
# Chapters 1 to 8 each explain a piece with prose, maths and plots, have you write it in a few
# lines of PyTorch, and check your code against the finished code in the `transformer_lib`
# library, whose version the book uses from then on; chapter 6 assembles your pieces into a
# model that runs real weights. By chapter 7 the pieces train on TinyStories, a data set of
# simple children's stories, and by chapter 8 the model writes its own.
#
# This chapter shows what we will build and why, checks that your machine can run the book, runs
# the finished model, and maps the chapters.

# %% [markdown]
# ## What we build, and what changed since 2017
#
# The Transformer of "Attention Is All You Need" (Vaswani et al., 2017) translated sentences
# with an encoder and a decoder. GPT-2 (Radford et al., 2019) kept only the decoder and trained
# it to predict the next token of web text. Llama (Touvron et al., 2023) kept GPT-2's plan and
# replaced most of its parts with ones found to train better or run faster. Our model is built
# from those parts:
#
# | piece | 2017 Transformer | GPT-2 | our model | chapter |
# |---|---|---|---|---|
# | tokens | subword BPE, about 37k | byte-level BPE, 50,257 | byte-level BPE, 2,048 trained on TinyStories | 1 |
# | normalisation | LayerNorm, after each sub-layer | LayerNorm, before each sub-layer | RMSNorm, before each sub-layer (pre-norm) | 2, 6 |
# | position | fixed sinusoids added to the input | learned vectors added to the input | rotary embeddings (RoPE) on queries and keys | 3 |
# | attention | multi-head | multi-head | grouped-query (4 query heads share 2 key/value heads), through fused Flash/SDPA kernels | 4 |
# | feed-forward | ReLU, 4× wide | GELU, 4× wide | SwiGLU, 3× wide (8/3×, rounded up to a multiple of 64) | 5 |
# | biases | yes | yes | none | 4, 5 |
#
# Why each change:
#
# - **RMSNorm.** Only rescales each vector to unit *root mean square* (so a vector of width $d$
#   ends with length $\sqrt d$), without subtracting the mean or adding a bias: fewer operations
#   and half the parameters of LayerNorm, and in the RMSNorm paper's experiments it trained as
#   well.
# - **Pre-norm blocks.** Each block normalises the input of its attention and feed-forward
#   branches and adds their outputs to an untouched *residual stream*, so gradients reach the
#   first layers of a deep stack and deep stacks train reliably (GPT-2 made this move). A short
#   learning-rate warm-up is still used: chapter 7 ramps the rate up over its first 20 steps.
# - **RoPE.** Encodes position by rotating query and key vectors by angles proportional to the
#   position, so the attention score between two tokens depends on their *distance*; there are no
#   position parameters to learn.
# - **SwiGLU.** A feed-forward layer in which one projection gates another elementwise; in the
#   papers' larger models, at equal parameter count, it trains to a lower *loss* than a ReLU or
#   GELU layer (the loss measures how badly a model predicts the next token; chapter 3 defines
#   it), though on the book's small model chapter 12 measures no difference. It has three matrices
#   instead of two, so Llama makes it 8/3 rather than 4 times as wide as the model, which keeps
#   its parameter count. The library rounds that width up to a multiple of 64: for the book's
#   model, 128 wide, that gives 384, exactly 3 times as wide.
# - **Grouped-query attention (GQA).** Several query heads share one key/value head, which
#   shrinks the cache of keys and values kept during generation, the memory that limits long
#   contexts and large batches.
# - **Flash/SDPA kernels.** PyTorch's `scaled_dot_product_attention` computes the same maths as
#   the textbook formula, but in fused kernels that never store the full $T \times T$ score
#   matrix, so attention is faster and its memory grows linearly with the sequence length.
# - **No biases.** Biases add parameters that large models found unnecessary.
# - **Tied embeddings (our choice, not Llama's).** Our output layer reuses the input embedding
#   matrix, as GPT-2 and the 2017 model did. That saves `vocab_size × d_model` parameters, a
#   large share of a small model: a quarter of the book's model, below. Llama 1 and 2, and
#   Llama 3's 8-billion-parameter and larger models, keep a separate output matrix, a small
#   share of their size.

# %% [markdown]
# ## Running the book
#
# Install the library and everything the notebooks use, then open the notebooks folder
# (Python 3.10 or newer):
#
# ```bash
# pip install -r requirements.txt
# jupyter lab notebooks/
# ```
#
# Each chapter is a pair of files: `NN_name.py` is the source (plain Python in "percent"
# format, which JupyterLab opens as a notebook through jupytext) and `NN_name.ipynb` holds the
# same cells with their outputs. Run the cells top to bottom.
#
# Where the code runs:
#
# - **CPU.** Every chapter runs on a laptop CPU; the whole book takes a few minutes, most of it
#   in chapter 7, which trains a small model for about two minutes.
# - **NVIDIA GPU (CUDA).** The `torch` wheel from PyPI for Linux includes CUDA, so
#   `requirements.txt` is enough on a machine with an NVIDIA driver. The library then trains under
#   bfloat16 autocast where the GPU supports it. (On a Linux machine without a GPU, install the
#   much smaller CPU wheel first:
#   `pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu`.)
# - **Apple GPU (MPS).** On an Apple-silicon Mac the same install uses the GPU through Metal
#   (the "mps" device), in float32.
#
# The data is a fixed extract of TinyStories: its first 2,316 training and 1,000 validation
# stories (about 3 MB), which every chapter reads through `data.book_stories(split)`. If the
# environment variable `TINYSTORIES_PATH` names a directory holding `train.txt` and
# `validation.txt`, they are read from there; otherwise the first chapter that needs them
# streams just those stories once from the Hugging Face hub into your cache
# (`~/.cache/transformer_lib/`), and every later run reads the cached copy.

# %% [markdown]
# ### Device check
#
# `pick_device()` chooses CUDA if present, else MPS, else the CPU; `pick_precision` says in which
# number format the library will compute there. This cell prints your machine's answer (the
# stored output comes from the CPU machine the book is built on).

# %%
import torch

from transformer_lib import ModelConfig, Transformer, book, parameter_counts
from transformer_lib.book import viz
from transformer_lib.book.exercises import ch00
from transformer_lib.cli.demo import main as run_demo
from transformer_lib.device import describe, pick_device, pick_precision

device = pick_device()
precision = pick_precision(device)
print(f"device: {describe(device)}")
print(f"precision: {precision.name}")

# %% [markdown]
# A matrix product on that device confirms it works (on a GPU this is also where the first
# kernel launch happens, so it can take a moment):

# %%
ones = torch.ones(2, 3, device=device)
product = ones @ ones.T  # (2, 3) @ (3, 2) -> (2, 2), every entry 1 + 1 + 1
print(f"on {product.device.type}: {product.tolist()}")

# %%
assert torch.equal(product.cpu(), torch.full((2, 2), 3.0))

# %% [markdown]
# ## The finished model at work
#
# `tlib-demo` (the module `transformer_lib.cli.demo`) builds a model from a named *preset*, prints its configuration, its
# modules and their parameter counts, then runs one forward pass and a short greedy generation.
# The weights are random (training comes in chapter 7), so the generated ids mean nothing yet,
# but every piece of the book is exercised. We use the `tiny` preset, which runs in a second;
# the timings depend on your machine.

# %%
run_demo(["--preset", "tiny"])

# %% [markdown]
# Read the module tree from the top: an embedding table (`embed_tokens`), two `Block`s, each
# with an RMSNorm, grouped-query attention (4 query heads, 2 key/value heads: `k_proj` and
# `v_proj` are half as wide as `q_proj`), a second RMSNorm and a SwiGLU feed-forward layer
# (`gate_proj`, `up_proj`, `down_proj`), then a final RMSNorm and the output layer `lm_head`,
# which counts 0 parameters because it shares the embedding's matrix. Every name is the one
# Hugging Face's Llama uses, so checkpoints convert one to one (chapter 10).
#
# Using the library yourself takes three lines: a config, a model, and a call on a batch of
# token ids, which returns one score (*logit*) per vocabulary entry at every position.

# %%
torch.manual_seed(0)
tiny_config = ModelConfig.from_preset("tiny")
tiny_model = Transformer(tiny_config)
token_ids = torch.randint(0, tiny_config.vocab_size, (2, 10))  # (batch B, positions T)
logits = tiny_model(token_ids)
print(f"token ids {tuple(token_ids.shape)} -> logits {tuple(logits.shape)}  (B, T, vocab_size)")

# %%
assert logits.shape == (2, 10, tiny_config.vocab_size)

# %% [markdown]
# ### Where the parameters are
#
# The `seed-22.5M` preset is the design this library started from: 12 blocks of width 256 with
# GPT-2's 50,257-token vocabulary, 22.5 million parameters in all. Counting them by component
# shows where a small model's size goes:

# %%
seed_config = ModelConfig.from_preset("seed-22.5M")
seed_counts = parameter_counts(Transformer(seed_config))
print(f"total: {seed_counts['total']:,} parameters")
viz.plot_parameter_counts(seed_counts, title="Parameters of the seed-22.5M preset")

# %% [markdown]
# More than half of the model is its embedding table: with a 50,257-token vocabulary and vectors
# of width 256, the lookup table outweighs all twelve blocks of attention and feed-forward
# layers. This is one reason the book trains its own 2,048-token vocabulary on TinyStories
# (chapter 1), and a reason the output layer shares that table instead of adding a second one.

# %%
assert seed_counts["total"] == 22_505_984
assert seed_counts["embedding"] > seed_counts["total"] / 2

# %% [markdown]
# ### The book's model
#
# The model that chapter 7 trains, and that chapters 8 onwards study in its stored, fully
# trained form, is smaller still: `book.BOOK_MODEL` with the 2,048-token vocabulary
# `book.BOOK_VOCAB_SIZE`. Its configuration shows every choice of the table above: 4 blocks of
# width 128, grouped-query attention with 4 query heads sharing 2 key/value heads, and a tied
# output layer.

# %%
book_config = ModelConfig(vocab_size=book.BOOK_VOCAB_SIZE, **book.BOOK_MODEL)
book_counts = parameter_counts(Transformer(book_config))
print(book_config)
print(f"{book_counts['total']:,} parameters; the embedding table holds "
      f"{book_counts['embedding']:,} of them ({book_counts['embedding'] / book_counts['total']:.0%})"
      f" and the tied output layer {book_counts['lm_head']}")

# %%
assert (book_config.vocab_size, book_config.num_heads, book_config.num_kv_heads) == (2048, 4, 2)
assert book_config.tie_embeddings and book_counts["lm_head"] == 0
assert round(100 * book_counts["embedding"] / book_counts["total"]) == 25  # a quarter

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, which starts out holding a placeholder (`...`), and
# a check cell that prints one line: `not attempted yet`, `correct`, or `not yet` with a hint
# (for an answer in several parts, it says which parts are right). The checks live in
# `transformer_lib.book.exercises`, so no expected value appears here; the worked answers are in
# `notebooks/solutions/00_start_here_solutions.ipynb`.

# %% [markdown]
# **Exercise 1.** From the configuration alone, compute how many parameters the attention
# layers and the feed-forward layers of the book's model hold, over all its blocks
# (`book_config` above has every size you need: read `ffn_hidden_dim` there). The demo's table
# counted both for the `tiny` preset, so you can try your method there first.

# %%
book_attention_parameters = ...  # your answer: a whole number
book_feed_forward_parameters = ...  # your answer: a whole number

# %%
ch00.exercise_1(book_attention_parameters, book_feed_forward_parameters)

# %% [markdown]
# **Exercise 2.** The `seed-22.5M` preset ties its output layer to the embedding table. How
# many parameters would it gain if the output layer had a matrix of its own, as in Llama 2?
# (`seed_config` holds its fields.)

# %%
untied_extra_parameters = ...  # your answer: a whole number

# %%
ch00.exercise_2(untied_extra_parameters)

# %% [markdown]
# **Exercise 3.** Write `count_parameters(model)`, the number of learned numbers in a model,
# counting a tensor that two layers share only once. The check runs it on a tied and an untied
# `tiny` model and on the book's model, and compares with `parameter_counts(model)["total"]`.

# %%
def count_parameters(model: torch.nn.Module) -> int:
    ...  # your code here

# %%
ch00.exercise_3(count_parameters)

# %% [markdown]
# **Exercise 4.** While the model generates, every layer keeps the keys and values of all the
# tokens so far (the *KV cache* of chapter 8), so the cache grows with every token. How many
# bytes does the book's model's cache take once it holds a full context of `max_seq_len`
# tokens of one sequence, in float32 (4 bytes a number)? And how many would it take with one
# key/value head per query head, as in the original Transformer? The difference is what
# grouped-query attention saves.

# %%
kv_cache_bytes_gqa = ...  # your answer: a whole number of bytes
kv_cache_bytes_without_gqa = ...  # your answer: a whole number of bytes

# %%
ch00.exercise_4(kv_cache_bytes_gqa, kv_cache_bytes_without_gqa)

# %% [markdown]
# ## Map of the book
#
# | chapter | title | what you build and check |
# |---|---|---|
# | 0 | Start here | the plan, the device check, the finished model at work |
# | 1 | Tokens | byte-pair encoding: you write the training loop, checked against the library's trainer; a 2,048-token vocabulary for TinyStories |
# | 2 | Embeddings and RMSNorm | embedding lookups, LayerNorm from scratch, your own RMSNorm; why and where we normalise |
# | 3 | Rotary position embeddings | rotation speeds, your own cos/sin tables and rotation, scores that depend only on distance, the two pairing conventions |
# | 4 | Attention | scaled dot-product attention, the causal mask, grouped-query attention; explicit maths against fused Flash/SDPA kernels; attention maps |
# | 5 | The SwiGLU feed-forward | the gated feed-forward layer, compared with GPT-2's GELU MLP |
# | 6 | The block and the model | the residual stream, pre-norm against post-norm, the block and the whole model, initialisation and parameter counts |
# | 7 | Training inside the notebook | token cache and batches, the loss, AdamW with warm-up and cosine schedule, bits per byte; training on TinyStories with a live plot; overfitting measured; a ladder of baselines (counts, compressors, three models) that says what the bits per byte mean |
# | 8 | Generation | temperature, top-k and top-p sampling; the KV cache that makes generation fast |
# | 9 | Hardware: CPU, CUDA and Apple GPUs | CPU, CUDA and MPS; bfloat16 autocast, `torch.compile`; where the time goes: a profile of one training step and one decoding step, and a roofline of four model sizes |
# | 10 | Interop and next steps | converting weights to and from Hugging Face's `LlamaForCausalLM`, and checking they agree |
# | 11 | Inside a trained model | attention patterns, head ablation, the logit lens and RoPE pair use measured in llama2.c's stories260K; bits per byte against the book's stored model |
# | 12 | What each choice buys | each design choice of chapters 2 to 6 and the speed-run changes (Muon, QK-norm, ...) swapped out one at a time, trained from three seeds, and measured in bits per byte |
# | 13 | Adapting a trained model | a words task the stored model cannot do; full fine-tuning and LoRA (written from scratch, checked against peft) compared on score, parameters, minutes and forgetting; beam search, a repetition penalty and min-p against greedy decoding and sampling |
#
# Chapters 1 to 6 each take under a minute on a CPU; start with chapter 1.
