# %% [markdown]
# # 7. Training inside the notebook
#
# Every piece of the model exists now; what it lacks is knowledge. This chapter trains it on
# TinyStories, a corpus of short and simple children's stories, from raw text to a model that
# writes stories of its own. On the way we build the parts of a training pipeline that live
# outside the model:
#
# - reading the book's extract of the stories and training a tokenizer on them;
# - a **token cache**: the whole corpus encoded once into a flat file of 16-bit ids;
# - a **batch sampler** that cuts random `(x, y)` windows out of that file;
# - the **loss** and the number it starts from, $\ln V$;
# - **AdamW** with a warm-up and cosine learning-rate schedule;
# - **bits per byte**, the measure of quality that does not depend on the tokenizer;
# - the **training loop** itself, with gradient clipping and periodic evaluation.
#
# Each one is written from scratch and checked against `transformer_lib`. Then the library's
# trainer trains the book's model for 300 steps, with a live plot of the loss, and we read the
# stories it writes before and after. (Chapters 8 onwards study a model of the same shape that
# ships with the library, trained once for longer, on longer windows, by the command line at the
# end of this chapter, so that every reader studies the same weights.)

# %%
import math
import re
import time

import numpy as np
import torch
import torch.nn.functional as F

from transformer_lib import book, data
from transformer_lib.analysis import baselines, interpret
from transformer_lib.book import viz
from transformer_lib.book.dashboard import LiveDashboard, StatusLine
from transformer_lib.book.exercises import ch07
from transformer_lib.data import tokens
from transformer_lib.data.tokenizer import load_tokenizer, train_tokenizer
from transformer_lib.interop import from_llama2c
from transformer_lib.model import Transformer
from transformer_lib.model.config import ModelConfig
from transformer_lib.training import trainer

_ = torch.manual_seed(0)

# %% [markdown]
# ## The data: the book's extract of TinyStories
#
# TinyStories (Eldan and Li, 2023) holds about 2.1 million training stories and 22 thousand
# validation stories, written by GPT-3.5 and GPT-4 in the vocabulary of a three-year-old. It was
# made to answer one question: how small can a language model be and still write coherent
# English? Small enough, it turns out, that we can see the first signs of it on a laptop CPU.
#
# The book reads a fixed extract: the first 2,316 training and the first 1,000 validation
# stories. `data.book_stories(split)` returns them as a list of strings, from one of two places:
#
# 1. the directory named by the environment variable `TINYSTORIES_PATH`, holding `train.txt`
#    and `validation.txt` (or `.jsonl` / `.parquet` files), of which it reads the first stories;
# 2. otherwise a copy in your cache (`~/.cache/transformer_lib/tinystories-book/`), streamed
#    once from the Hugging Face hub dataset `roneneldan/TinyStories` on first use: the 3,316
#    stories and nothing more.
#
# Either way the text is the same, so every reader trains on the same stories and gets
# comparable numbers. (`data.load_stories(split)` reads a whole split, for the full run at the
# end of the chapter.)

# %%
train_stories = data.book_stories("train")
val_stories = data.book_stories("validation")
print(f"{len(train_stories):,} training and {len(val_stories):,} validation stories")

# %% [markdown]
# Every story passes through the same normalisation whatever file it came from: lines are
# stripped and paragraphs are joined by a single newline. Here is the first one.

# %%
print(train_stories[0])

# %% [markdown]
# How much text is that? We count UTF-8 bytes, the unit in which we will measure the model's
# quality at the end of the chapter.

# %%
def utf8_bytes(stories: list[str]) -> int:
    """Total UTF-8 bytes of a split's stories."""
    return sum(len(text.encode("utf-8")) for text in stories)


train_bytes, val_bytes = utf8_bytes(train_stories), utf8_bytes(val_stories)
for name, split, size in (("train", train_stories, train_bytes),
                          ("validation", val_stories, val_bytes)):
    print(f"{name:>10}: {len(split):,} stories, {size / 1e6:.2f} MB, "
          f"{size / len(split):,.0f} bytes per story")

# %%
assert (len(train_stories), len(val_stories)) == (2316, 1000)
assert all(text == text.strip() for text in train_stories[:100])

# %% [markdown]
# ## A tokenizer trained on the stories
#
# GPT-2's tokenizer has 50,257 ids, most of them for words no three-year-old uses. A byte-level
# BPE trained on TinyStories itself needs far fewer: the book's model uses 2,048 ids
# (`book.BOOK_VOCAB_SIZE`), which keeps the embedding table, and the output layer tied to it,
# small. Training it takes a few seconds on this corpus.

# %%
tokenizer = train_tokenizer(train_stories, book.BOOK_VOCAB_SIZE,
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
# encoded **once** into a cache. `book.book_tokens(split, tokenizer)` reads the split of the
# extract, encodes every story and writes two files to `~/.cache/transformer_lib/tokens/` (it
# calls `tokens.cache_split`, which does the same for any split and source):
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
train_cache = book.book_tokens("train", tokenizer)
val_cache = book.book_tokens("validation", tokenizer)
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
assert int((train_cache.tokens == tokenizer.eot_id).sum()) == len(train_stories) + 1
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
# the first `warmup_steps` ($s_w = 20$ here), from 0 at step 0 (a step that only primes Adam's
# averages) to the peak $\eta = 3\times10^{-3}$ at step $s_w$. Then it **decays** along half a
# cosine to $0.1\,\eta$ at the last step, so the final steps make small, careful moves:
#
# $$\eta_s = \begin{cases} \eta\,\dfrac{s}{s_w} & s < s_w \\[1ex]
#   \eta\left(r + (1-r)\,\tfrac12\left(1+\cos \pi \dfrac{s - s_w}{s_{\max} - s_w}\right)\right)
#   & \text{otherwise,} \end{cases}$$
#
# where $r$ is `min_lr_ratio`. The cosine starts where the warm-up ends, so the rate stays at the
# peak for a moment instead of dropping there (nanoGPT and Hugging Face's
# `get_cosine_with_min_lr_schedule_with_warmup` do the same). When a run is given a time budget
# instead of steps (`--max-minutes`), the trainer puts the elapsed fraction of the budget in place
# of $s / s_{\max}$, so the decay always ends where the run does.

# %%
def warmup_cosine(step: int, max_steps: int, peak_lr: float, warmup_steps: int,
                  min_lr_ratio: float) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to peak_lr * min_lr_ratio."""
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    progress = min((step - warmup_steps) / (max_steps - warmup_steps), 1.0)  # of the decay
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
assert schedule[0] == 0 and schedule[config.warmup_steps] == config.lr
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
print(f"evaluating the untrained model on all {val_cache.n_targets:,} validation predictions...",
      flush=True)  # a status line: this takes several seconds
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
# The untrained model is close to a uniform guesser (exercise 2 computes what a uniform guess
# scores). Plain ASCII text spends 8 bits per byte, and a general-purpose compressor such as `xz` brings English prose to about 2.
# A trained language model is a better compressor still: it predicts the next byte better.

# %% [markdown]
# ## The training loop
#
# Every piece is ready, and the loop that uses them is short. One **step**:
#
# 1. set this step's learning rate from the schedule,
# 2. draw batch number `step`,
# 3. forward pass and cross-entropy loss,
# 4. backward pass: the gradient of the loss for every weight,
# 5. **clip** the gradients (below),
# 6. one AdamW update, then forget the gradients,
#
# and every `eval_every` steps, plus once at the end, an **evaluation** on held-out text: the
# first `eval_windows` windows during the run, for speed, and every validation token at the end.
#
# **Gradient clipping.** Now and then a batch produces a gradient far larger than usual (an odd
# batch, a sharp region of the loss surface), and one full-size step along it can undo many
# steps of progress. Clipping measures the *global* norm of the gradient, all weights together
# as one long vector, $\|g\| = \sqrt{\sum_i g_i^2}$, and when it exceeds a threshold $c$ (the
# trainer's `grad_clip`, 1.0) scales every gradient by $c / \|g\|$: the direction is kept, only
# the length is capped.

# %%
def clip_gradients(parameters, max_norm: float) -> float:
    """Scale all gradients by one factor so that their global norm is at most max_norm (0: no
    clipping). Returns the norm measured before clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if max_norm > 0:
        scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)  # 1 when the norm is under the cap
        for g in grads:
            g.mul_(scale)
    return norm.item()


def train_loop(model, train_tokens, val_tokens, byte_lengths, config,
               progress: StatusLine | None = None) -> list[dict]:
    """Train with AdamW, warm-up + cosine, clipping and periodic evaluation; return records.
    `progress`, if given, is told the number of steps done after each step."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed_tokens" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr,
                                  betas=(config.beta1, config.beta2), fused=True)
    records = []
    model.train()
    for step in range(config.max_steps):
        lr = warmup_cosine(step, config.max_steps, config.lr, config.warmup_steps,
                           config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = sample_windows(train_tokens, config.batch_size, config.seq_len, config.seed, step)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())  # (B*T, V) vs (B*T,)
        loss.backward()
        grad_norm = clip_gradients(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        records.append({"kind": "train", "step": step + 1, "loss": loss.item(), "lr": lr,
                        "grad_norm": grad_norm})
        if progress is not None:
            progress.update(step + 1)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.max_steps:
            windows = None if step + 1 == config.max_steps else config.eval_windows
            result = trainer.evaluate_tokens(model, val_tokens, byte_lengths, config.seq_len,
                                             config.batch_size, max_windows=windows)
            records.append({"kind": "eval", "step": step + 1, "val_loss": result["loss"],
                            "val_bpb": result["bits_per_byte"]})
    return records


# %% [markdown]
# (`fused=True` asks PyTorch for its one-kernel AdamW, the one the library's trainer uses, and
# `StatusLine` is one line of text, replaced in place, that says how far a loop has got.) Now
# the check: the library's `Trainer` and `train_loop` train two copies of the book's model, the
# library's initial weights copied *into* ours, with the same seed and data, for 40 short steps
# (batches of 8 windows of 64 tokens, to keep it quick), evaluating on a prefix of the
# validation tokens. Every loss, and every final weight, must agree to $10^{-6}$.

# %%
short = trainer.TrainConfig(**{**book.BOOK_TRAINING, "batch_size": 8, "seq_len": 64,
                               "max_steps": 40, "warmup_steps": 5, "eval_every": 20,
                               "eval_windows": 8, "log_every": 1},
                            device="cpu", precision="fp32")
val_prefix = val_cache.tokens[:64 * 64 + 1]  # 64 windows: a quick, fixed validation set
model_config = ModelConfig(vocab_size=tokenizer.vocab_size, **book.BOOK_MODEL)
torch.manual_seed(0)
library_model = Transformer(model_config)
our_model = Transformer(model_config)
our_model.load_state_dict(library_model.state_dict())  # library -> ours (a copy)

library_history = trainer.Trainer(library_model, train_cache.tokens, val_prefix, short,
                                  byte_lengths, progress=False, log=None,
                                  callbacks=[StatusLine("trainer.Trainer", short.max_steps)]).fit()
our_history = train_loop(our_model, train_cache.tokens, val_prefix, byte_lengths, short,
                         progress=StatusLine("train_loop", short.max_steps))
ours = {kind: [r for r in our_history if r["kind"] == kind] for kind in ("train", "eval")}
theirs = {kind: [r for r in library_history if r["kind"] == kind] for kind in ("train", "eval")}
print(f"{len(ours['train'])} steps: loss {ours['train'][0]['loss']:.3f} -> "
      f"{ours['train'][-1]['loss']:.2f}; validation loss at steps "
      f"{[r['step'] for r in ours['eval']]}: {[round(r['val_loss'], 2) for r in ours['eval']]}")

# %%
for mine, library in zip(ours["train"], theirs["train"], strict=True):
    assert mine["step"] == library["step"] and math.isclose(mine["lr"], library["lr"])
    assert abs(mine["loss"] - library["loss"]) < 1e-6
for mine, library in zip(ours["eval"], theirs["eval"], strict=True):
    assert mine["step"] == library["step"] and abs(mine["val_loss"] - library["val_loss"]) < 1e-6
for (name, mine), library in zip(our_model.named_parameters(), library_model.parameters(),
                                 strict=True):
    torch.testing.assert_close(mine, library, atol=1e-6, rtol=0, msg=name)
print("train_loop matches trainer.Trainer: every loss and every weight within 1e-6")

# %% [markdown]
# Did clipping do anything? `train_loop` records the norm *before* clipping at every step. We
# train the same short run once more with clipping switched off (`grad_clip=0`) and draw both,
# with a cross wherever the norm exceeded the threshold: in the clipped run, those are the
# steps where clipping engaged.

# %%
torch.manual_seed(0)
unclipped_model = Transformer(model_config)  # the same initial weights: the same seed, first draw
unclipped_history = train_loop(unclipped_model, train_cache.tokens, val_prefix, byte_lengths,
                               trainer.TrainConfig(**{**short.to_dict(), "grad_clip": 0.0}),
                               progress=StatusLine("train_loop, no clipping", short.max_steps))
grad_norms = {"clipped at 1.0": [r["grad_norm"] for r in ours["train"]],
              "not clipped": [r["grad_norm"] for r in unclipped_history if r["kind"] == "train"]}
clipped_steps = [step for step, norm in enumerate(grad_norms["clipped at 1.0"], 1) if norm > 1]
print(f"clipping engaged at {len(clipped_steps)} of {short.max_steps} steps: {clipped_steps}")
print(f"final validation loss: clipped {ours['eval'][-1]['val_loss']:.2f}, not clipped "
      f"{[r for r in unclipped_history if r['kind'] == 'eval'][-1]['val_loss']:.2f}")

# %%
viz.plot_gradient_norms(range(1, short.max_steps + 1), grad_norms, threshold=short.grad_clip,
                        title="Gradient norm before clipping, 40 short steps")

# %% [markdown]
# Both runs start from the same weights and the same first batch, so their first norms are
# equal; the curves part as soon as a clipped step has moved the weights differently. In the
# first steps, while the loss falls steeply from $\ln V$, the gradient is large and clipping caps
# every step; later the norm settles under the threshold and clipping engages only on the
# occasional spike. With Adam, capping the early steps changes little, because Adam divides each
# step by the gradient's own running scale; what clipping really prevents is one spike, after a
# calm stretch, turning into one large step.

# %%
assert grad_norms["clipped at 1.0"][0] == grad_norms["not clipped"][0]  # the same first batch
assert clipped_steps[:3] == [1, 2, 3]  # the first steps are capped
late = grad_norms["clipped at 1.0"][20:]
assert sorted(late)[len(late) // 2] < short.grad_clip  # later, most steps are under the cap

# %% [markdown]
# ## Training the book's model
#
# `book.book_model()` puts all of this together: it trains the tokenizer on the extract, builds
# both token caches, and runs `trainer.Trainer` (the loop above, plus checkpoints, logging and
# callbacks) with the settings in `book.BOOK_MODEL` and `book.BOOK_TRAINING`:

# %%
print("model:", book.BOOK_MODEL)
print("training:", book.BOOK_TRAINING)
tokens_per_run = config.max_steps * config.batch_size * config.seq_len
print(f"{tokens_per_run:,} training tokens in {config.max_steps} steps")

# %% [markdown]
# It saves the run under `runs/book/<recipe hash>/` (beside this notebook) and reloads it when
# the same recipe is asked for again, without `retrain=True`, which starts afresh. (Chapters 8
# onwards do not use this run: they load the stored model with `book.stored_model()`.) The run is seeded and stops after a fixed number of steps, so on a given machine it
# ends with the same weights every time; we set the global seed right before, because the
# model's initial weights are drawn from it.
#
# `LiveDashboard` shows the run as it goes: a plot of the curves that appears as soon as the cell
# starts and redraws in place every few seconds, with a title that says the step, the time
# elapsed and an estimate of the time left (before the first step, the tokenizer and the token
# caches are prepared), the training loss every 5 steps, the validation loss and bits per byte every
# 100 steps (on the first 64 windows of the validation tokens, for speed) and over every
# validation token at the end. The trainer's text progress bar is switched off here
# (`progress=False`): a notebook keeps only the bar's first state, so a saved copy of the book
# would show it stuck at 0 of 300; the summary printed after the run replaces it. Expect about
# two minutes on a laptop CPU. On a CUDA or Apple GPU the command line below is the way to go
# (`--device cuda` or `--device mps`); `book_model` trains on the CPU in float32 so that every
# reader trains the same way. (Another CPU rounds differently, and after 300 steps that shows in
# the second decimal of the losses, so the book does not compare the numbers printed by this
# cell and the one after the plot; the cells after them assert what holds on every machine.)

# %%
# NBVAL_IGNORE_OUTPUT
dashboard = LiveDashboard(total_steps=book.BOOK_TRAINING["max_steps"])
torch.manual_seed(book.BOOK_TRAINING["seed"])
trained = book.book_model(retrain=True, callbacks=[dashboard], progress=False, log=None)
model, history = trained.model, trained.history
train_records = [r for r in history if r["kind"] == "train"]
eval_records = [r for r in history if r["kind"] == "eval"]
print(f"trained {train_records[-1]['step']} steps; training loss {train_records[0]['loss']:.2f} "
      f"(step {train_records[0]['step']}) -> {train_records[-1]['loss']:.2f}")
for record in eval_records:
    print(f"step {record['step']}: validation loss {record['val_loss']:.2f} nats/token, "
          f"{record['val_bpb']:.2f} bits/byte, on {record['val_tokens']:,} tokens")

# %% [markdown]
# The dashboard keeps every record, so the curves can be drawn again at any time.

# %%
viz.plot_training_curves(history)

# %% [markdown]
# The training loss falls fast for the first hundred steps, while the model learns which tokens
# are common and how words are spelled, then more slowly as it learns grammar and the shape of a
# story. The validation points are two different measurements, drawn apart: the dots at steps
# 100 and 200 are estimates on the first 64 windows of the validation tokens (8,192 tokens), the
# star at step 300 is the evaluation over every validation token. The star cannot be compared
# with the dots, because they measure different tokens: measured on the same first 64 windows,
# the final model scores below its step-200 estimate, and below its own score over every token
# (below), so those first 8,192 tokens are easier than the validation text as a whole. Compare
# dots with dots.

# %%
# NBVAL_IGNORE_OUTPUT
final = history[-1]
first_windows = trainer.evaluate_tokens(model, val_cache.tokens, byte_lengths, SEQ_LEN,
                                        BATCH_SIZE, max_windows=config.eval_windows)
print(f"after {final['step']} steps ({final['tokens']:,} tokens): validation loss "
      f"{final['val_loss']:.2f} nats/token, {final['val_bpb']:.2f} bits/byte "
      f"over all {final['val_tokens']:,} validation predictions (untrained: {untrained_bpb:.2f})")
print(f"on the first {first_windows['tokens']:,} validation tokens: "
      f"{first_windows['bits_per_byte']:.2f} bits/byte (step-200 estimate: "
      f"{eval_records[1]['val_bpb']:.2f})")

# %%
assert eval_records[1]["step"] == 200 and eval_records[1]["val_tokens"] == first_windows["tokens"]
assert first_windows["bits_per_byte"] < eval_records[1]["val_bpb"]  # better on the same tokens
assert first_windows["bits_per_byte"] < final["val_bpb"] - 0.03  # the first tokens are easier

# %% [markdown]
# Training is seeded and stopped by steps, but a different CPU, thread count or PyTorch build
# rounds the arithmetic differently, and after 300 steps such differences show in the second or
# third decimal. What does not change is the outcome, which the next cell checks: a final
# bits per byte within 0.03 of the 1.51 measured when the book was built.

# %%
assert final["kind"] == "eval" and final["step"] == config.max_steps
assert final["val_tokens"] == val_cache.n_targets  # the final evaluation covers every token
assert abs(final["val_bpb"] - 1.51) < 0.03
assert trained.tokenizer.content_hash == tokenizer.content_hash  # the same tokenizer as ours

# %% [markdown]
# ## Stories, before and after
#
# Now the model can write. We start it the way every training story starts, with an end-of-text
# token, followed by "Once upon a time", and sample up to 100 tokens with temperature 0.8 and top-k
# 50 (chapter 8 explains both). A seeded `torch.Generator` fixes the random draws. First, the
# untrained model:

# %%
prompt = [tokenizer.eot_id] + tokenizer.encode("Once upon a time")


def write_story(language_model: Transformer, seed: int, max_new_tokens: int = 100) -> str:
    """Sample a continuation of the prompt and decode everything after the eot token."""
    out = language_model.generate(prompt, max_new_tokens, temperature=0.8, top_k=50,
                                  eos_id=tokenizer.eot_id,
                                  generator=torch.Generator().manual_seed(seed))
    return tokenizer.decode([i for i in out.tolist()[1:] if i != tokenizer.eot_id])


untrained_story = write_story(untrained, seed=1)
print(untrained_story)

# %% [markdown]
# Nearly random tokens, with one habit: the untrained model often repeats the token it just read
# ("yummy yummy", "block block"), because its output head is its embedding (tied, chapter 6),
# so a token's vector scores highest against itself. The `�` marks are no fault of the printing.
# The tokenizer works on bytes, and a character outside ASCII (a curly quote, an accented letter,
# an emoji in the stories) takes two to four UTF-8 bytes, which BPE may split over several ids.
# An id that holds only part of such a character is no text on its own; where a random sequence
# puts it next to an unrelated id, the bytes form no valid character and decoding shows the
# replacement character `�` (U+FFFD) in its place. A trained model emits the pieces in order.

# %%
partial = [i for i in range(tokenizer.vocab_size) if i != tokenizer.eot_id
           and "\ufffd" in tokenizer.token_bytes(i).decode("utf-8", errors="replace")]
print(f"{len(partial)} of {tokenizer.vocab_size} ids hold part of a character, e.g. "
      f"{tokenizer.token_bytes(partial[0])!r} -> {tokenizer.decode([partial[0]])!r}")
assert "\ufffd" in untrained_story and partial

# %% [markdown]
# And after 300 steps (the seeded draws are the same everywhere, but the trained weights differ in their last digits from one machine to
# another, and one different token changes the rest of the story, so your stories will differ
# from the ones stored in the book):

# %%
# NBVAL_IGNORE_OUTPUT
stories = [write_story(model, seed) for seed in (1, 2)]
for story in stories:
    print(story, end="\n\n")

# %% [markdown]
# After about two minutes of training on two thousand stories, the model has learned the
# vocabulary, punctuation, the names and the opening moves of a TinyStories story, and short
# stretches of grammatical English. It has not learned to keep a plot together: that takes more
# data, more steps and a larger model. What holds on every machine: each story begins with the
# prompt, and almost every word in it (at least 90%) is a word of the training stories.

# %%
training_words = set(re.findall(r"[A-Za-z]+", " ".join(train_stories)))
for story in stories:
    assert story.startswith("Once upon a time")
    words = re.findall(r"[A-Za-z]+", story)
    assert len(words) > 20 and sum(w in training_words for w in words) >= 0.9 * len(words)

# %% [markdown]
# ## The full run, from the command line
#
# The notebook trains for 300 steps so that the book builds in a few minutes. The command line
# trains the same model shape (the `tinystories-cpu` preset, with a 2,048-id tokenizer) with the
# settings that did best in runs of the same length on a 2-core CPU: a peak learning rate of
# 0.005, weight decay 1.0, the Muon optimizer for the blocks' matrices (AdamW for the embedding
# and the gains; chapter 12 measures the two against each other), batches of 8 windows under a
# warm-up/stable/decay schedule (the rate stays at its peak until the last fifth of the run,
# then falls linearly), and bf16 autocast on a CPU that computes bf16 in hardware (float32 on
# others, where bf16 is emulated and slow: chapter 9). It writes checkpoints you can evaluate
# and sample from.
# The stored model that chapters 8 onwards study (`book_config/make_stored_model.py` runs its
# recipe and records the result) is this recipe stopped by steps, 2,400 of them: the first
# command below repeats it (the two flags spell out the batch and schedule it was made with,
# in case the defaults move on), and the cell after the commands reads from the stored model's
# own record how long it took:
#
# ```bash
# tlib-train --data $TINYSTORIES_PATH --out runs/tinystories --max-steps 2400 \
#     --batch-size 8 --schedule wsd
# tlib-evaluate --checkpoint runs/tinystories \
#     --data $TINYSTORIES_PATH/validation.txt
# tlib-generate --checkpoint runs/tinystories --prompt "Once upon a time"
# ```
#
# `--max-minutes 5` instead of `--max-steps` stops by wall-clock time, with the schedule
# planned for the time budget. `--data` names a directory of stories; with `TINYSTORIES_PATH`
# pointing at the book's extract, the run above reads those 3,316 stories. Point it at a full
# copy of TinyStories (or leave out
# `--data` with the variable unset, which downloads the dataset from the hub, about a gigabyte)
# to train on all 2.1 million. `train` picks a CUDA or Apple GPU when it finds one (`--device
# auto`; pass a larger `--batch-size` there, where 8 windows leave most of a GPU idle),
# checkpoints the run so that `--resume` continues it exactly after an interruption, and runs
# data-parallel under `torchrun`; each command has `--help`.

# %%
stored_meta = book.stored_model().meta
stored_train = stored_meta["train_config"]
run_minutes = stored_meta["history"][-1]["elapsed_s"] / 60
print(f"stored model: {stored_meta['step']:,} steps of {stored_train['batch_size']} windows of "
      f"{stored_train['seq_len']} tokens, {run_minutes:.0f} minutes on "
      f"{stored_meta['recipe']['cpu']} (torch {stored_meta['recipe']['torch']}); validation: "
      f"{stored_meta['validation']['bits_per_byte']:.3f} bits/byte")

# %% [markdown]
# A fixed number of steps takes as long as the machine needs, here more than five minutes.
# `--max-minutes 5` instead trains for five minutes on any machine, with the schedule planned
# for that budget, and gets as far as the machine allows.

# %% [markdown]
# The stored model's record also holds its whole history, so we can draw its curves as we drew
# ours. Its run is much longer than the notebook's: how many times did it see each training
# token?

# %%
stored_passes = stored_meta["tokens_seen"] / train_cache.n_targets
stored_train_losses = [r["loss"] for r in stored_meta["history"] if r["kind"] == "train"]
late_train_loss = sum(stored_train_losses[-10:]) / 10
print(f"{stored_meta['tokens_seen']:,} training tokens over {train_cache.n_targets:,} in the cache: "
      f"{stored_passes:.1f} passes")
print(f"last 100 steps (every 10th): training loss {late_train_loss:.2f} nats/token; validation "
      f"{stored_meta['validation']['loss']:.2f} on every validation token")
viz.plot_training_curves(stored_meta["history"], title="The stored model's run, from its record")

# %% [markdown]
# The stored model saw every training story about nine times, and it shows: late in the run its
# training loss sits well below its validation loss. It has begun to learn these particular
# stories, not only how stories go, which is **overfitting**; the cure is more data, and the
# strong weight decay of its recipe (1.0) is there to slow it down.

# %%
assert stored_passes > 8
assert late_train_loss < stored_meta["validation"]["loss"] - 0.3

# %% [markdown]
# How much has it learned these particular stories? The same measure on text it trained on
# says it directly: the stored model's bits per byte on the first 1,000 *training* stories,
# against the 1,000 validation stories (each story scored on its own, from its end-of-text
# token, by `interpret.score_texts`; this takes about half a minute).

# %%
stored = book.stored_model()
print("scoring the stored model on 1,000 training and 1,000 validation stories...", flush=True)
seen_score = interpret.score_texts(stored.model, stored.tokenizer, train_stories[:1000],
                                   start_id=stored.tokenizer.eot_id)
unseen_score = interpret.score_texts(stored.model, stored.tokenizer, val_stories,
                                     start_id=stored.tokenizer.eot_id)
print(f"stored model: {seen_score.bits_per_byte:.2f} bits/byte on training stories, "
      f"{unseen_score.bits_per_byte:.2f} on validation stories")

# %% [markdown]
# Could the training stories simply be easier than the validation ones? A model that cannot
# have learned these particular stories settles it: llama2.c's **stories260K** (260K
# parameters, a 512-id tokenizer, trained on all 2.1 million TinyStories stories, far too many
# for it to learn any one of them) scores the same two sets.

# %%
stories260k, tok512 = from_llama2c("stories260K"), load_tokenizer("tok512")
control_score = {
    split: interpret.score_texts(stories260k, tok512, stories, start_id=tok512.bos_id)
    for split, stories in (("training", train_stories[:1000]), ("validation", val_stories))}
print(f"stories260K: {control_score['training'].bits_per_byte:.2f} bits/byte on training "
      f"stories, {control_score['validation'].bits_per_byte:.2f} on validation stories")

# %% [markdown]
# To stories260K the training stories are, if anything, a little harder. So the stored model's
# gap between text it has seen and text it has not is the measured face of overfitting: part of
# what the stored model knows is these 2,316 stories.

# %%
assert control_score["training"].bits_per_byte >= control_score["validation"].bits_per_byte
assert seen_score.bits_per_byte < unseen_score.bits_per_byte - 0.1

# %% [markdown]
# ### Weight decay, the brake on memorising
#
# AdamW's decoupled weight decay (above) pulls every matrix weight toward zero at each step, so
# a weight keeps its size only while the gradient keeps paying for it. The training command's
# recipe uses 1.0, far more than the usual 0.1 (Muon, which the command now uses for the blocks'
# matrices, applies the same decoupled decay). What does the value change? The recipe, with the
# AdamW it had when 1.0 was chosen, was run at four decays, 600 steps each (about four passes
# over the training stories) with the same seed, so the data order and the initial weights are
# the same and the decay is the only difference (`book_config/make_weight_decay_sweep.py`;
# stored with the machine it ran on, like the stored model).

# %%
sweep = book.stored_weight_decay_sweep()
print(f"{sweep['meta']['command']}  ({sweep['meta']['cpu']}, torch {sweep['meta']['torch']})")
for run in sweep["runs"]:
    print(f"weight decay {run['weight_decay']:>3}: validation {run['val_bpb']:.3f} bits/byte; "
          f"loss {run['late_train_loss']:.2f} training (last 100 steps, every 10th), "
          f"{run['val_loss']:.2f} validation nats/token; gap {run['val_loss'] - run['late_train_loss']:.2f}")

# %%
decays = [run["weight_decay"] for run in sweep["runs"]]
viz.plot_lines(decays, {"training loss (last 100 steps, every 10th)": [r["late_train_loss"] for r in sweep["runs"]],
                        "validation loss": [r["val_loss"] for r in sweep["runs"]]},
               title="The training command's recipe at four weight decays (600 steps, seed 0)",
               xlabel="weight decay (log scale)", ylabel="loss (nats per token)", logx=True,
               markers=True)

# %% [markdown]
# The decay works on the gap. From 0.1 to 3.0 the training loss rises by 0.1 nats, and the gap
# between validation and training shrinks at every value of the sweep, to not much more than half:
# the stronger the pull, the less of these particular stories the weights can hold. Validation
# itself moves much less: all four decays lie within 0.012 bits per byte of each other, less
# than two seeds of the same recipe differ (about 0.02 in five-minute runs), so this sweep
# cannot rank them on validation; 1.0 is at the bottom of it and was kept. The decay earns its
# place in longer runs, where the gap keeps growing: the stored model, at nine passes, is the
# case it is there for.

# %%
gaps = [run["val_loss"] - run["late_train_loss"] for run in sweep["runs"]]
assert decays == sorted(decays) and all(a > b for a, b in zip(gaps[:-1], gaps[1:], strict=True))
assert gaps[-1] < 0.6 * gaps[0]
assert 0.05 < sweep["runs"][-1]["late_train_loss"] - sweep["runs"][0]["late_train_loss"] < 0.15
val_bpbs = [run["val_bpb"] for run in sweep["runs"]]
assert max(val_bpbs) - min(val_bpbs) < 0.02
assert min(sweep["runs"], key=lambda run: run["val_bpb"])["weight_decay"] == 1.0

# %% [markdown]
# ## A ladder: what 1.5 bits per byte means
#
# Is 1.51 bits per byte good? A number means little without the simpler things it has to
# beat. Here is a ladder of them, each scoring the same 1,000 validation stories (their 788,101
# bytes), from the crudest up:
#
# - **uniform**: every one of the 2,048 ids equally likely: what a model that learned nothing
#   knows (the untrained model above is close to it);
# - **unigram counts**: how often each id occurs in the training tokens; it knows which tokens
#   are common, nothing about order;
# - **bigram counts**: how often each id follows each other id in the training tokens, falling
#   back on the unigram for pairs it never saw (Witten-Bell smoothing, in
#   `analysis.baselines.NgramModel`; counting takes seconds, not minutes);
# - **gzip, bz2, xz**: general-purpose compressors at their strongest settings, which find
#   repeated strings and, for bz2, sort the text's contexts;
# - **this chapter's model** (300 steps), **the stored model** (the same shape, 2,400 steps on
#   longer windows), and **stories260K**, trained on all 2.1 million stories (chapter 11 looks
#   inside it).
#
# Bits per byte is what makes this one ladder: it divides total information by the size of the
# text, so a compressor's file size, a count table's probabilities and a transformer's loss
# with any tokenizer all land on the same scale. The transformers score each story on its own,
# from its start token, as in the cell above (so this chapter's model gets a slightly different
# figure than the 1.51 of windows that run across stories).

# %%
MODELS = ("this chapter's model, 300 steps", "the stored model, 2,400 steps",
          "llama2.c's stories260K")
start_time = time.perf_counter()
ladder = {"uniform over 2,048 ids": baselines.uniform_score(
    tokenizer, val_stories, start_id=tokenizer.eot_id).bits_per_byte}
for order, name in ((1, "unigram counts"), (2, "bigram counts")):
    counts = baselines.NgramModel(train_cache.tokens, tokenizer.vocab_size, order=order)
    ladder[name] = counts.score(tokenizer, val_stories, start_id=tokenizer.eot_id).bits_per_byte
counting_s = time.perf_counter() - start_time
for method in baselines.COMPRESSORS:
    ladder[method] = baselines.compressed_bits_per_byte(val_stories, method)
print("scoring this chapter's model on the same stories (the other two were scored above)...",
      flush=True)
ladder["this chapter's model, 300 steps"] = interpret.score_texts(
    model, tokenizer, val_stories, start_id=tokenizer.eot_id).bits_per_byte
ladder["the stored model, 2,400 steps"] = unseen_score.bits_per_byte
ladder["llama2.c's stories260K"] = control_score["validation"].bits_per_byte  # scored above
for name, value in ladder.items():
    digits = 1 if name.startswith("this chapter") else 3 if name in MODELS else 2
    print(f"{name:34s} {value:5.{digits}f} bits/byte")

# %% [markdown]
# (This chapter's model is printed to one decimal: its weights, and so its second decimal,
# differ from one machine to another. The two stored models get three, since they are close.
# Everything but this chapter's model is the same everywhere.)

# %%
viz.plot_bits_per_byte_ladder(ladder, models=MODELS)

# %% [markdown]
# Read it from the top. Knowing which tokens are common (unigram) saves 0.6 bits per byte
# over knowing nothing, and gzip, which finds repeated strings, gets about as far. Knowing which
# token follows which (bigram) is worth almost a full bit more, and beats every compressor:
# TinyStories is very predictable text. **This chapter's 300-step model does no better than
# the bigram counts**: in two minutes it has learned about as much as a table of which token
# follows which, and it beats bz2. The stored model, eight times the tokens (eight times the
# steps, of half as many windows twice as long), is the first rung that clearly uses more than
# the previous token: about half a bit per byte below the bigram. And stories260K, with a
# quarter of its parameters but trained on about a thousand times more stories, lands on the
# same rung, 0.004 bits per byte from it: four times the parameters, reading our 2,316 stories
# about nine times over, buy about what far more data buys a much smaller model.

# %%
ours = ladder["this chapter's model, 300 steps"]
stored_rung = ladder["the stored model, 2,400 steps"]
stories260k_rung = ladder["llama2.c's stories260K"]
assert (ladder["uniform over 2,048 ids"] > ladder["unigram counts"] > ladder["bigram counts"]
        > max(stored_rung, stories260k_rung))
assert abs(stored_rung - stories260k_rung) < 0.02
assert abs(ladder["gzip"] - ladder["unigram counts"]) < 0.1
assert ladder["bigram counts"] < min(ladder[m] for m in baselines.COMPRESSORS)
assert abs(ours - ladder["bigram counts"]) < 0.1 and ours < ladder["bz2"]
assert ladder["bigram counts"] - 0.6 < stored_rung < ladder["bigram counts"] - 0.4
assert counting_s < 30

# %% [markdown]
# ## Exercises
#
# Each check prints `not attempted yet` until you replace the placeholder, then `correct` or a
# hint. The answers are in the solutions part of the book.
#
# **Exercise 1.** How many times does the book's 300-step run see each training token, on
# average? Compute the number of passes (epochs) over the training cache from `config` and
# `train_cache`. (More than one pass means the model sees the same stories again, which is when
# a model can start to memorise them.)

# %%
epochs = ...  # passes over the training text

# %%
ch07.exercise_1(epochs, config, train_cache.n_targets)

# %% [markdown]
# **Exercise 2.** What bits per byte would a model score on the *training* text if it gave every
# id the same probability? Use only $V$, `train_cache.n_targets` and `train_cache.n_bytes`. Is
# it close to the untrained model's figure on the validation text above, and why?

# %%
uniform_bpb = ...

# %%
ch07.exercise_2(uniform_bpb, tokenizer.vocab_size, train_cache.n_targets, train_cache.n_bytes)

# %% [markdown]
# **Exercise 3.** Evaluation does not sample windows at random: it cuts the token array into
# consecutive, non-overlapping windows, so that every token is predicted exactly once. Build the
# first evaluation batch of 4 windows of 16 tokens over `val_cache.tokens`, as two int64 tensors
# `(eval_x, eval_y)` of shape (4, 16): the inputs and, one position later, the targets.

# %%
first_eval_batch = ...  # (eval_x, eval_y)

# %%
ch07.exercise_3(first_eval_batch, val_cache.tokens)

# %% [markdown]
# **Exercise 4 (experiment).** The causal mask is what makes the task honest: position $t$ may
# not look at token $t+1$, the one it must predict. Remove it and measure what happens. Write an
# attention module without the mask (a subclass of `transformer_lib.model.attention.Attention`
# whose `forward` calls `F.scaled_dot_product_attention` with no mask, put into every block
# with `layer.self_attn.__class__ = ...`), then train two small models with `train_loop`, one
# with the mask and one without: `ModelConfig(vocab_size=2048, d_model=64, num_layers=2, num_heads=4,
# num_kv_heads=2, max_seq_len=64)`, the same seed, 150 steps of 8 windows of 64 tokens,
# learning rate 0.01 with 5 warm-up steps (`trainer.TrainConfig(batch_size=8, seq_len=64,
# max_steps=150, lr=1e-2, warmup_steps=5, eval_every=150, eval_windows=1)`), on
# `train_cache.tokens`. Hand back both trained models and their 150 training losses, one per
# step: the check recomputes the first loss from a fresh model with your attention, and the last
# ten from your trained weights, before it compares the two runs.

# %%
mask_runs = ...  # {"causal": {"model": ..., "losses": [...]}, "no mask": {"model": ..., ...}}

# %%
ch07.exercise_4(mask_runs, train_cache.tokens)

# %% [markdown]
# **Exercise 5.** Write one training step, the core of `train_loop`, for a batch that arrives in
# `micro_batches` pieces (gradient accumulation: the library's `grad_accum`, for a batch too
# large to fit in memory at once). In order: set every parameter group's learning rate for this
# step from the schedule, then for each `(x, y)` piece a forward pass, its cross-entropy loss and
# a backward pass of that loss divided by the number of pieces (so the gradients add up to the
# whole batch's mean), then clip the gradients to `config.grad_clip` (0: no clipping), one
# optimizer step, and forget the gradients. Return the batch's mean loss as a float. The check
# runs four steps of your function and of the library's `Trainer` on a small seeded model, with
# 1, 2 and 4 pieces and with clipping on and off, and compares every loss and every weight.

# %%
def training_step(model, optimizer, micro_batches, step: int, config) -> float:
    """One optimizer step. micro_batches: a list of (x, y), each (b, T) int64; step: the number
    of steps done before this one; config: a trainer.TrainConfig. Returns the mean loss."""
    ...


# %%
ch07.exercise_5(training_step)

# %% [markdown]
# **Exercise 6 (experiment).** Halve the data and watch the gap grow. The stored model's
# training stories score well below its validation stories, because it saw each of them about
# nine times. Make that happen on purpose, twice: train two models of exercise 4's shape (with
# the causal mask) with your `train_loop`, each from `torch.manual_seed(0)`, with
# `ch07.gap_config()` (300 steps of 8 windows of 64 tokens, learning rate 0.01, weight decay
# 0.1), one on the first 40,000 training tokens (`train_cache.tokens[:40_000]`) and one on the
# first 20,000; pass `val_prefix` as their validation tokens. Then measure each model's bits
# per byte on the first 64 windows of the tokens it trained on and of `val_cache.tokens`
# (`trainer.evaluate_tokens(model, tokens, byte_lengths, 64, 8, max_windows=64)`). What
# happens to the gap between the two figures when the data is halved? Hand back, for each, the
# model, its number of training tokens, its 300 training losses and both figures: the check
# recomputes them from your models.

# %%
gap_runs = ...  # {"40,000 tokens": {"model": ..., "n_tokens": 40_000, "losses": [...],
#                                   "train_bpb": ..., "val_bpb": ...}, "20,000 tokens": {...}}

# %%
ch07.exercise_6(gap_runs, train_cache.tokens, val_cache.tokens, byte_lengths)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | piece | from scratch here | library |
# |---|---|---|
# | the book's extract, from a local copy or the hub | | `data.book_stories`, `data.load_stories` |
# | tokenizer trained on the stories | | `tokenizer.train_tokenizer` |
# | token cache (`.bin` of uint16 + `.json`) | | `book.book_tokens`, `tokens.cache_split`, `tokens.build_token_cache` |
# | random `(x, y)` training windows | `sample_windows` | `tokens.RandomWindows` |
# | cross-entropy loss | `cross_entropy` | `torch.nn.functional.cross_entropy` |
# | AdamW, no decay on norms and embeddings | `adamw_steps` | `trainer.make_optimizer` |
# | warm-up + cosine schedule | `warmup_cosine` | `trainer.learning_rate` |
# | bits per byte over every validation token | `bits_per_byte` | `tokens.bits_per_byte`, `trainer.evaluate_tokens` |
# | gradient clipping | `clip_gradients` | `torch.nn.utils.clip_grad_norm_` (in `Trainer`) |
# | the training loop with periodic evaluation | `train_loop` | `trainer.Trainer` |
# | one step, in micro-batches (exercise 5) | `training_step` | `Trainer._train_step` |
# | checkpoints, callbacks, live curves, a status line | | `trainer.Trainer`, `book.book_model`, `dashboard.LiveDashboard`, `dashboard.StatusLine` |
#
# The trained model now sits in `runs/book/`. Chapter 8 turns to the stored model, trained by
# the command-line recipe, to study how text is generated from it: sampling settings, the KV
# cache, and what its attention heads look at.
