# %% [markdown]
# # 7. Training inside the notebook
#
# Every piece of the model exists now; what it lacks is knowledge. This chapter trains it on
# TinyStories, a corpus of short and simple children's stories, from raw text to a model that
# writes stories of its own. On the way we build the parts of a training pipeline that live
# outside the model:
#
# - loading the stories with the `datasets` library and training a tokenizer on them;
# - a **token cache**: the whole corpus encoded once into a flat file of 16-bit ids;
# - a **batch sampler** that cuts random `(x, y)` windows out of that file;
# - the **loss** and the number it starts from, $\ln V$;
# - **AdamW** with a warm-up and cosine learning-rate schedule;
# - **bits per byte**, the measure of quality that does not depend on the tokenizer.
#
# Each one is written from scratch and checked against `transformer_lib`. Then the library's
# trainer trains the book's model for 300 steps, with a live plot of the loss, and we read the
# stories it writes before and after. Chapters 8 and 10 reuse this model.

# %%
import math
import os

import datasets
import numpy as np
import torch
import torch.nn.functional as F

from transformer_lib import book, data, tokens, trainer, viz
from transformer_lib.book import check
from transformer_lib.config import ModelConfig
from transformer_lib.dashboard import LiveDashboard
from transformer_lib.model import Transformer
from transformer_lib.tokenizer import train_tokenizer

torch.manual_seed(0)
datasets.disable_progress_bars()  # keep the notebook's output free of changing progress text

# %% [markdown]
# ## The data: TinyStories through `datasets`
#
# TinyStories (Eldan and Li, 2023) holds about 2.1 million training stories and 22 thousand
# validation stories, written by GPT-3.5 and GPT-4 in the vocabulary of a three-year-old. It was
# made to answer one question: how small can a language model be and still write coherent
# English? Small enough, it turns out, that we can see the first signs of it on a laptop CPU.
#
# `transformer_lib.data.load_stories(split)` returns one split as a `datasets.Dataset` with a
# single `text` column, one story per row. It chooses where to read from at call time:
#
# 1. the `source=` argument, if you give one;
# 2. otherwise the environment variable `TINYSTORIES_PATH`, a local directory holding
#    `train.txt` and `validation.txt` (or `.jsonl` / `.parquet` files);
# 3. otherwise the Hugging Face hub dataset `roneneldan/TinyStories`, downloaded once (about a
#    gigabyte) and then read from the `datasets` cache. With `limit=N` only the first `N`
#    stories are streamed from the hub, so nothing more is downloaded.
#
# The book's tests set `TINYSTORIES_PATH` to a small extract of the real dataset (the first
# 2,316 training and 1,000 validation stories), which keeps this chapter to a few minutes. On your
# machine, without the variable, the same code uses the full dataset: training the tokenizer and
# building the token cache then take much longer the first time (the cache is reused afterwards),
# while the training run costs the same, since it stops after a fixed number of steps.

# %%
if os.environ.get(data.SOURCE_ENV_VAR):
    print(f"{data.SOURCE_ENV_VAR} is set: reading the local copy it points to")
else:
    print(f"{data.SOURCE_ENV_VAR} is not set: downloading {data.HUB_DATASET} from the hub")

train_stories = data.load_stories("train")
val_stories = data.load_stories("validation")
train_stories

# %% [markdown]
# Every story passes through the same normalisation whatever file it came from: lines are
# stripped and paragraphs are joined by a single newline. Here is the first one.

# %%
print(train_stories[0]["text"])

# %% [markdown]
# How much text is that? We count UTF-8 bytes, the unit in which we will measure the model's
# quality at the end of the chapter.

# %%
def utf8_bytes(stories: datasets.Dataset) -> int:
    """Total UTF-8 bytes of a split's stories."""
    return sum(len(text.encode("utf-8")) for text in stories["text"])


train_bytes, val_bytes = utf8_bytes(train_stories), utf8_bytes(val_stories)
for name, split, size in (("train", train_stories, train_bytes),
                          ("validation", val_stories, val_bytes)):
    print(f"{name:>10}: {split.num_rows:,} stories, {size / 1e6:.2f} MB, "
          f"{size / split.num_rows:,.0f} bytes per story")

# %%
assert train_stories.num_rows > val_stories.num_rows > 0
assert all(text == text.strip() for text in train_stories[:100]["text"])

# %% [markdown]
# ## A tokenizer trained on the stories
#
# GPT-2's tokenizer has 50,257 ids, most of them for words no three-year-old uses. A byte-level
# BPE trained on TinyStories itself needs far fewer: the book's model uses 2,048 ids
# (`book.BOOK_VOCAB_SIZE`), which keeps the embedding table, and the output layer tied to it,
# small. Training it takes a few seconds on this corpus.

# %%
tokenizer = train_tokenizer(train_stories["text"], book.BOOK_VOCAB_SIZE,
                            name=f"bpe-{book.BOOK_VOCAB_SIZE}")
print(tokenizer.name, "with", tokenizer.vocab_size, "ids; end-of-text id:", tokenizer.eot_id)
sentence = "Once upon a time, there was a little girl named Lily."
ids = tokenizer.encode(sentence)
print(len(sentence), "characters ->", len(ids), "tokens:",
      [tokenizer.decode([i]) for i in ids])

# %% [markdown]
# Common words are single tokens, with the space in front of them. The tokenizer round-trips the
# text exactly, and the one special token, `<|endoftext|>`, takes the last id.

# %%
assert tokenizer.decode(ids) == sentence
assert tokenizer.vocab_size == book.BOOK_VOCAB_SIZE
assert tokenizer.eot_id == tokenizer.vocab_size - 1

# %% [markdown]
# ## The token cache
#
# Training reads the same text many times, and encoding it is the slow part, so each split is
# encoded **once** into a cache. `tokens.cache_split(split, tokenizer)` loads the split, encodes
# every story and writes two files to `~/.cache/transformer_lib/tokens/`:
#
# - a `.bin` file: one flat array of token ids laid out as
#   `eot story₁ eot story₂ eot … storyₙ eot`, read back as a memory-mapped numpy array, so a
#   corpus larger than RAM costs nothing to open;
# - a `.json` file beside it saying what the array was built from: the tokenizer's content hash,
#   a hash of the texts, the number of stories, bytes and tokens.
#
# The file name contains a hash of the tokenizer and of the texts, so a second call with the
# same inputs reuses the cache and a changed tokenizer builds a new one. The ids are stored as
# **uint16**, two bytes each, because every id is below $2^{16} = 65{,}536$; GPT-2's 50,257 ids
# fit too, and only a vocabulary larger than 65,536 needs uint32.

# %%
train_cache = tokens.cache_split("train", tokenizer, progress=False)
val_cache = tokens.cache_split("validation", tokenizer, progress=False)
print("file:", train_cache.path.name, "and", train_cache.path.with_suffix(".json").name)
print("dtype:", train_cache.tokens.dtype, "| train tokens:", f"{train_cache.n_tokens:,}",
      "| validation tokens:", f"{val_cache.n_tokens:,}")
print("metadata:", {key: train_cache.meta[key] for key in
                    ("n_stories", "n_bytes", "n_tokens", "dtype", "layout")})
print(f"{val_cache.n_bytes / val_cache.n_targets:.2f} bytes of text per validation token")

# %% [markdown]
# The array starts with an end-of-text token and one follows every story, so the first word of
# each story is always predicted from the same "a story starts here" context. The `.bin` file is
# nothing but the ids, two bytes each.

# %%
print(train_cache.tokens[:12].tolist())
print(repr(tokenizer.decode(train_cache.tokens[:12])))

# %%
assert train_cache.tokens.dtype == np.uint16
assert train_cache.tokens[0] == tokenizer.eot_id
assert train_cache.path.stat().st_size == 2 * train_cache.n_tokens
assert int((train_cache.tokens == tokenizer.eot_id).sum()) == train_stories.num_rows + 1
assert train_cache.n_bytes == train_bytes and val_cache.n_bytes == val_bytes

# %% [markdown]
# ## Batches of `(x, y)` windows
#
# A language model learns to predict each token from the ones before it. A training example is
# therefore a window of $T + 1$ consecutive tokens: the first $T$ are the input `x` and the last
# $T$ are the targets `y`, so `y[t]` is the token that follows `x[0..t]`. One window gives $T$
# predictions at once, thanks to the causal mask.
#
# Windows start at random positions and may cross story boundaries; the `eot` tokens tell the
# model where a new story begins. To make a run reproducible and resumable, batch number `step`
# is drawn by its own random generator, seeded with `(seed, step)`: batch 200 is the same
# whether the run got there in one go or resumed from a checkpoint at step 150.

# %%
def sample_windows(token_array: np.ndarray, batch_size: int, seq_len: int, seed: int,
                   step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch number `step`: random windows of seq_len + 1 tokens, split into x and y (B, T)."""
    rng = np.random.default_rng((seed, step))
    starts = rng.integers(0, len(token_array) - seq_len, size=batch_size)
    windows = torch.stack([torch.from_numpy(token_array[s:s + seq_len + 1].astype(np.int64))
                           for s in starts])  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # x, y: (B, T) each


SEQ_LEN, BATCH_SIZE = book.BOOK_TRAINING["seq_len"], book.BOOK_TRAINING["batch_size"]
x, y = sample_windows(train_cache.tokens, BATCH_SIZE, SEQ_LEN, seed=0, step=0)
print("x:", tuple(x.shape), x.dtype, "| y:", tuple(y.shape))
for position in range(6):
    print(f"  from {tokenizer.decode(x[0, :position + 1])!r:45} predict "
          f"{tokenizer.decode(y[0, position:position + 1])!r}")

# %% [markdown]
# The library's sampler, `tokens.RandomWindows`, draws the same batches, so from here on we use
# it.

# %%
sampler = tokens.RandomWindows(train_cache.tokens, BATCH_SIZE, SEQ_LEN, seed=0)
for step in (0, 1, 299):
    mine, library = sample_windows(train_cache.tokens, BATCH_SIZE, SEQ_LEN, 0, step), \
        sampler.batch_at(step)
    assert torch.equal(mine[0], library[0]) and torch.equal(mine[1], library[1])
assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted left by one token
print("sample_windows matches RandomWindows.batch_at")

# %% [markdown]
# ## The loss, and where it starts
#
# The model outputs logits $z \in \mathbb{R}^V$ at every position; softmax turns them into a
# distribution over the next token. The loss is the **cross-entropy**: the negative log
# probability of the token that really came next, averaged over all $B \times T$ positions,
#
# $$\mathcal{L} = -\frac{1}{BT}\sum_{b,t} \log \frac{e^{z_{b,t,y_{b,t}}}}{\sum_{j} e^{z_{b,t,j}}}.$$
#
# It is measured in *nats* per token. A model that knows nothing spreads its probability evenly
# over the $V$ ids and pays $\ln V$ for every token: $\ln 2048 \approx 7.62$. Our initialisation
# (small weights, standard deviation 0.02) gives almost-equal logits, so an untrained model
# should start right there.

# %%
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-probability of the targets; logits (B, T, V), targets (B, T)."""
    log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)  # (B, T, V)
    return -log_probs.gather(-1, targets.unsqueeze(-1)).mean()


torch.manual_seed(0)
untrained = Transformer(ModelConfig(vocab_size=tokenizer.vocab_size, **book.BOOK_MODEL)).eval()
with torch.no_grad():
    logits = untrained(x)  # (B, T, V)
initial_loss = cross_entropy(logits, y)
print(f"loss of the untrained model: {initial_loss:.2f} nats/token; "
      f"ln(V) = {math.log(tokenizer.vocab_size):.2f}")

# %%
torch.testing.assert_close(initial_loss, F.cross_entropy(logits.flatten(0, 1), y.flatten()))
assert abs(initial_loss.item() - math.log(tokenizer.vocab_size)) < 0.05

# %% [markdown]
# ## AdamW
#
# Plain gradient descent moves every weight by the same multiple of its gradient. Adam keeps two
# running averages per weight, of the gradient $g$ and of its square, and divides one by the
# square root of the other, so every weight moves by about the learning rate $\eta$ whatever the
# scale of its gradient. AdamW adds *decoupled* weight decay: a pull of every weight towards zero
# that does not pass through those averages. For one weight $\theta$ at step $t$:
#
# $$m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2,$$
# $$\theta_t = \theta_{t-1} - \eta\,\lambda\,\theta_{t-1}
#   - \eta\,\frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}.$$
#
# The divisions by $1-\beta^t$ undo the bias of averages that start at zero. Here is one weight
# tensor updated three times by hand and by `torch.optim.AdamW`, with the trainer's settings.

# %%
def adamw_steps(weight: torch.Tensor, grads: list[torch.Tensor], lr: float, betas, eps: float,
                weight_decay: float) -> torch.Tensor:
    """Apply AdamW for each gradient in turn; return the final weight."""
    weight, m, v = weight.clone(), torch.zeros_like(weight), torch.zeros_like(weight)
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g**2
        m_hat, v_hat = m / (1 - betas[0]**t), v / (1 - betas[1]**t)
        weight = weight - lr * weight_decay * weight - lr * m_hat / (v_hat.sqrt() + eps)
    return weight


config = trainer.TrainConfig(**book.BOOK_TRAINING)
generator = torch.Generator().manual_seed(0)
start = torch.randn(4, 3, generator=generator)
gradients = [torch.randn(4, 3, generator=generator) for _ in range(3)]

reference = torch.nn.Parameter(start.clone())
optimizer = torch.optim.AdamW([reference], lr=config.lr, betas=(config.beta1, config.beta2),
                              weight_decay=config.weight_decay)
for g in gradients:
    reference.grad = g.clone()
    optimizer.step()
torch.testing.assert_close(adamw_steps(start, gradients, config.lr, (config.beta1, config.beta2),
                                       1e-8, config.weight_decay), reference.detach())
print("AdamW by hand matches torch.optim.AdamW")

# %% [markdown]
# Weight decay is not for every parameter. The trainer's `make_optimizer` puts the weight
# matrices of attention and feed-forward layers in a group with decay (0.1), and gives **no**
# decay to the RMSNorm gains, which should stay near 1 rather than shrink towards 0, or to the
# embedding table, whose rows for rare tokens get few gradient updates and would otherwise decay
# away between them. Because the output head is tied to the embedding, it shares the
# embedding's setting. The rule: a tensor with fewer than two dimensions, or the embedding.

# %%
lib_optimizer = trainer.make_optimizer(untrained, config, torch.device("cpu"))
names = {id(param): name for name, param in untrained.named_parameters()}
for group in lib_optimizer.param_groups:
    group_names = [names[id(param)] for param in group["params"]]
    count = sum(param.numel() for param in group["params"])
    print(f"weight_decay={group['weight_decay']}: {len(group_names)} tensors, {count:,} weights, "
          f"e.g. {group_names[:3]}")

# %%
no_decay_rule = {name for name, param in untrained.named_parameters()
                 if param.dim() < 2 or "embed_tokens" in name}
library_no_decay = {names[id(param)] for group in lib_optimizer.param_groups
                    if group["weight_decay"] == 0.0 for param in group["params"]}
assert no_decay_rule == library_no_decay
assert "embed_tokens.weight" in library_no_decay and "norm.weight" in library_no_decay

# %% [markdown]
# ## The learning-rate schedule: warm-up, then cosine
#
# At step 0 Adam's averages know nothing, and a full-size step in a random direction can throw
# the model into a bad region it never leaves. So the learning rate **warms up** linearly over
# the first `warmup_steps` (20 here), from $\eta/20$ to the peak $\eta = 3\times10^{-3}$. Then it
# **decays** along half a cosine to $0.1\,\eta$ at the last step, so the final steps make small,
# careful moves:
#
# $$\eta_s = \begin{cases} \eta\,\dfrac{s+1}{s_w} & s < s_w \\[1ex]
#   \eta\left(r + (1-r)\,\tfrac12\left(1+\cos \pi p\right)\right) & \text{otherwise,}
#   \end{cases}$$
#
# where $r$ is `min_lr_ratio` and $p = s / s_{\max}$ is the fraction of the run done. The
# trainer computes $p$ from the step count here, or from the elapsed minutes when a run is given
# a time budget instead (`--max-minutes`), so the decay always ends where the run does. Since
# $p$ counts from step 0, the cosine has already moved a little when the warm-up ends.

# %%
def warmup_cosine(step: int, max_steps: int, peak_lr: float, warmup_steps: int,
                  min_lr_ratio: float) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to peak_lr * min_lr_ratio."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = min(step / max_steps, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)


steps = np.arange(config.max_steps)
schedule = [warmup_cosine(int(s), config.max_steps, config.lr, config.warmup_steps,
                          config.min_lr_ratio) for s in steps]
print(f"step 0: {schedule[0]:.2e}, step 19: {schedule[19]:.2e}, step 20: {schedule[20]:.2e}, "
      f"step 299: {schedule[-1]:.2e}")

# %%
for s, lr in zip(steps, schedule, strict=True):
    assert math.isclose(lr, trainer.learning_rate(config, int(s), s / config.max_steps),
                        rel_tol=1e-12)
assert schedule[config.warmup_steps - 1] == config.lr
assert math.isclose(schedule[-1], config.lr * config.min_lr_ratio, rel_tol=0.01)

# %%
viz.plot_lines(steps, {"warm-up + cosine (this run)": schedule},
               title="Learning rate of the book's 300-step run", xlabel="optimizer step",
               ylabel="learning rate")

# %% [markdown]
# ## Bits per byte
#
# The loss in nats per token cannot compare two tokenizers: a tokenizer with longer tokens has
# fewer, harder predictions to make. Dividing the *total* information by the size of the text
# removes the tokenizer from the measure. Over a held-out text of $N$ predicted tokens and $n$
# bytes, with mean loss $\bar{\mathcal L}$ in nats,
#
# $$\text{bits per byte} = \frac{N\,\bar{\mathcal L}}{n \ln 2}.$$
#
# The conversion is only right if $\bar{\mathcal L}$ is the mean over **every** prediction of
# that text, so we evaluate on every validation token: non-overlapping windows, each token
# predicted once (`trainer.evaluate_tokens`). The bytes are counted per target token, from the
# bytes each id stands for (`trainer.token_byte_lengths`; 0 for `eot`, which is not text), and
# must add up to the size of the validation stories.

# %%
def bits_per_byte(mean_loss_nats: float, n_predictions: int, n_bytes: int) -> float:
    """Total information of the text, in bits, per UTF-8 byte."""
    return mean_loss_nats * n_predictions / (math.log(2) * n_bytes)


byte_lengths = trainer.token_byte_lengths(tokenizer)
untrained_eval = trainer.evaluate_tokens(untrained, val_cache.tokens, byte_lengths, SEQ_LEN)
untrained_bpb = bits_per_byte(untrained_eval["loss"], untrained_eval["tokens"],
                              untrained_eval["bytes"])
print(f"untrained model on all {untrained_eval['tokens']:,} validation predictions: "
      f"{untrained_eval['loss']:.2f} nats/token, {untrained_bpb:.2f} bits/byte")

# %%
assert untrained_eval["tokens"] == val_cache.n_targets
assert untrained_eval["bytes"] == val_cache.n_bytes == val_bytes
assert math.isclose(untrained_bpb, tokens.bits_per_byte(untrained_eval["loss"],
                                                        val_cache.n_targets, val_cache.n_bytes))
assert math.isclose(untrained_bpb, untrained_eval["bits_per_byte"])

# %% [markdown]
# A model that guesses uniformly pays $\log_2 2048 = 11$ bits per token, and a validation token
# covers about 3.7 bytes, hence the figure above: about 3 bits per byte. Plain ASCII text spends
# 8 bits per byte, and a general-purpose compressor such as `xz` brings English prose to about 2.
# A trained language model is a better compressor still: it predicts the next byte better.

# %% [markdown]
# ## Training the book's model
#
# `book.book_model()` puts all of this together: it trains the tokenizer, builds both token
# caches, and runs `trainer.Trainer` with the settings in `book.BOOK_MODEL` and
# `book.BOOK_TRAINING`:

# %%
print("model:", book.BOOK_MODEL)
print("training:", book.BOOK_TRAINING)
tokens_per_run = config.max_steps * config.batch_size * config.seq_len
print(f"{tokens_per_run:,} training tokens in {config.max_steps} steps")

# %% [markdown]
# It saves the run under `runs/book/<recipe hash>/` (beside this notebook) and reloads it when
# the same recipe is asked for again, which is what chapters 8 and 10 do. `retrain=True` starts
# afresh. The run is seeded and stops after a fixed number of steps, so on a given machine it
# ends with the same weights every time; we set the global seed right before, because the
# model's initial weights are drawn from it.
#
# Two callbacks show the run as it goes: a `tqdm.auto` progress bar with the current loss and
# throughput, and `LiveDashboard`, a plot of the curves that redraws in place every few
# seconds: training loss every 5 steps, validation loss and bits per byte every 100 steps (on
# 64 windows, for speed) and over every validation token at the end. Expect about two minutes on
# a laptop CPU. On a CUDA or Apple GPU the command line below is the way to go
# (`--device cuda` or `--device mps`); `book_model` trains on the CPU in float32 so that every
# reader gets the same model.

# %%
dashboard = LiveDashboard()
torch.manual_seed(book.BOOK_TRAINING["seed"])
trained = book.book_model(retrain=True, callbacks=[dashboard], progress=True, log=None)
model, history = trained.model, trained.history

# %% [markdown]
# The dashboard keeps every record, so the curves can be drawn again at any time.

# %%
viz.plot_training_curves(history)

# %% [markdown]
# The training loss falls fast for the first hundred steps, while the model learns which tokens
# are common and how words are spelled, then more slowly as it learns grammar and the shape of a
# story; the validation loss follows it closely, so the model is not memorising the training
# text. The last point is the evaluation over every validation token.

# %%
final = history[-1]
print(f"after {final['step']} steps ({final['tokens']:,} tokens): validation loss "
      f"{final['val_loss']:.2f} nats/token, {final['val_bpb']:.2f} bits/byte "
      f"over all {final['val_tokens']:,} validation predictions (untrained: {untrained_bpb:.2f})")

# %%
assert final["kind"] == "eval" and final["step"] == config.max_steps
assert final["val_tokens"] == val_cache.n_targets  # the final evaluation covers every token
assert final["val_bpb"] < untrained_bpb - 1.0
assert trained.tokenizer.content_hash == tokenizer.content_hash  # the same tokenizer as ours

# %% [markdown]
# ## Stories, before and after
#
# Now the model can write. We start it the way every training story starts, with an
# end-of-text token, followed by "Once upon a time", and sample 100 tokens with temperature 0.8
# and top-k 50 (chapter 8 explains both). A seeded `torch.Generator` makes the sample the same
# on every run. First, the untrained model:

# %%
prompt = [tokenizer.eot_id] + tokenizer.encode("Once upon a time")


def write_story(language_model: Transformer, seed: int, max_new_tokens: int = 100) -> str:
    """Sample a continuation of the prompt and decode everything after the eot token."""
    out = language_model.generate(prompt, max_new_tokens, temperature=0.8, top_k=50,
                                  eos_id=tokenizer.eot_id,
                                  generator=torch.Generator().manual_seed(seed))
    return tokenizer.decode([i for i in out.tolist()[1:] if i != tokenizer.eot_id])


print(write_story(untrained, seed=1))

# %% [markdown]
# Random tokens: each one is as likely as any other. And after 300 steps:

# %%
for seed in (1, 2):
    print(write_story(model, seed), end="\n\n")

# %% [markdown]
# After about two minutes of training on two thousand stories, the model has learned the
# vocabulary, punctuation, the names and the opening moves of a TinyStories story, and short
# stretches of grammatical English. It has not learned to keep a plot together: that takes more
# data, more steps and a larger model, which is what the full command-line run is for.

# %% [markdown]
# ## The full run, from the command line
#
# The notebook trains for 300 steps so that the book builds in a few minutes. The command line
# trains the same kind of model, with a 2,048-id tokenizer, the `tinystories-cpu` preset, a peak
# learning rate of 0.005 and bf16 autocast on the CPU (the settings that did best in five-minute
# runs on a 2-core CPU), for five minutes of wall-clock time (the cosine schedule is planned for
# the time budget), and writes checkpoints you can evaluate and sample from:
#
# ```bash
# python -m transformer_lib.train --data $TINYSTORIES_PATH --out runs/tinystories --max-minutes 5
# python -m transformer_lib.evaluate --checkpoint runs/tinystories \
#     --data $TINYSTORIES_PATH/validation.txt
# python -m transformer_lib.generate --checkpoint runs/tinystories --prompt "Once upon a time"
# ```
#
# Leave out `--data` (with `TINYSTORIES_PATH` unset) to train on the full dataset from the hub.
# `train` picks a CUDA or Apple GPU when it finds one (`--device auto`), checkpoints the run so
# that `--resume` continues it exactly after an interruption, and runs data-parallel under
# `torchrun`; each command has `--help`.

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** How many times does the book's run see each training token, on average? Compute
# the number of passes (epochs) over the training cache from `config` and `train_cache`.

# %%
# Replace this with your own answer.
epochs = config.max_steps * config.batch_size * config.seq_len / train_cache.n_targets

# %%
check("exercise 1", math.isclose(epochs, tokens_per_run / (train_cache.n_tokens - 1)),
      hint="tokens per step = batch_size * seq_len; divide the run's tokens by the "
           "number of predictions in the cache")
print(f"{epochs:.2f} passes over the training text")

# %% [markdown]
# **Exercise 2.** What bits per byte would a model that assigns every id the same probability
# score on the validation text? Use only $V$, `val_cache.n_targets` and `val_cache.n_bytes`,
# then compare with the untrained model's figure.

# %%
# Replace this with your own answer.
uniform_bpb = math.log2(tokenizer.vocab_size) * val_cache.n_targets / val_cache.n_bytes

# %%
check("exercise 2", math.isclose(uniform_bpb, tokens.bits_per_byte(
    math.log(tokenizer.vocab_size), val_cache.n_targets, val_cache.n_bytes)),
      hint="the loss of a uniform guess is ln V nats per token")
print(f"uniform: {uniform_bpb:.2f} bits/byte, untrained model: {untrained_bpb:.2f}")

# %% [markdown]
# **Exercise 3.** Evaluation does not sample windows at random: it cuts the token array into
# consecutive, non-overlapping windows, so that every token is predicted exactly once. Build the
# first evaluation batch of 4 windows of 16 tokens over `val_cache.tokens`: window $i$ has inputs
# `tokens[16 i : 16 i + 16]` and targets one position later.

# %%
# Replace this with your own answer.
eval_x = torch.stack([torch.from_numpy(val_cache.tokens[16 * i:16 * i + 16].astype(np.int64))
                      for i in range(4)])
eval_y = torch.stack([torch.from_numpy(val_cache.tokens[16 * i + 1:16 * i + 17].astype(np.int64))
                      for i in range(4)])

# %%
first_x, first_y = next(iter(tokens.SequentialWindows(val_cache.tokens, 4, 16)))
check("exercise 3", torch.equal(eval_x, first_x) and torch.equal(eval_y, first_y),
      hint="window i starts at 16 * i; its targets start one token later")
print("second window:", repr(tokenizer.decode(first_x[1])))

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | piece | from scratch here | library |
# |---|---|---|
# | stories from a local copy or the hub | | `data.load_stories` |
# | tokenizer trained on the stories | | `tokenizer.train_tokenizer` |
# | token cache (`.bin` of uint16 + `.json`) | | `tokens.cache_split`, `tokens.build_token_cache` |
# | random `(x, y)` training windows | `sample_windows` | `tokens.RandomWindows` |
# | cross-entropy loss | `cross_entropy` | `torch.nn.functional.cross_entropy` |
# | AdamW, no decay on norms and embeddings | `adamw_steps` | `trainer.make_optimizer` |
# | warm-up + cosine schedule | `warmup_cosine` | `trainer.learning_rate` |
# | bits per byte over every validation token | `bits_per_byte` | `tokens.bits_per_byte`, `trainer.evaluate_tokens` |
# | the training loop, checkpoints, live curves | | `trainer.Trainer`, `book.book_model`, `dashboard.LiveDashboard` |
#
# The trained model now sits in `runs/book/`. Chapter 8 reloads it to study how text is
# generated from it: sampling settings, the KV cache, and what its attention heads look at.
