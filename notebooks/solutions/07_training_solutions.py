# %% [markdown]
# # Solutions to chapter 7: Training inside the notebook
#
# One answer per exercise of chapter 7, each followed by the same check the chapter calls. The
# causal-mask experiment is run here and its measured result stated beside the output. We
# rebuild what the exercises need: the chapter's tokenizer, its token caches and its settings.

# %%
import math

import numpy as np
import torch
import torch.nn.functional as F

from transformer_lib import book
from transformer_lib.book.exercises import ch07
from transformer_lib.data import book_stories
from transformer_lib.data.tokenizer import train_tokenizer
from transformer_lib.model import Transformer
from transformer_lib.model.attention import Attention
from transformer_lib.model.config import ModelConfig
from transformer_lib.training import trainer

torch.manual_seed(0)
tokenizer = train_tokenizer(book_stories("train"), book.BOOK_VOCAB_SIZE, name=f"bpe-{book.BOOK_VOCAB_SIZE}")
train_cache = book.book_tokens("train", tokenizer)
val_cache = book.book_tokens("validation", tokenizer)
config = trainer.TrainConfig(**book.BOOK_TRAINING)

# %% [markdown]
# ## Exercise 1
#
# Each step predicts `batch_size * seq_len` tokens; the cache holds one prediction per token
# but the first.

# %%
epochs = config.max_steps * config.batch_size * config.seq_len / train_cache.n_targets
print(f"{config.max_steps * config.batch_size * config.seq_len:,} predictions over "
      f"{train_cache.n_targets:,} training targets: {epochs:.2f} passes")

# %%
ch07.exercise_1(epochs, config, train_cache.n_targets)

# %% [markdown]
# A little more than one pass: the 300-step run sees most stories once, so it has little
# chance to memorise them, and its validation loss can follow its training loss.
#
# ## Exercise 2
#
# A uniform guess costs $\log_2 V = 11$ bits for every prediction.

# %%
uniform_bpb = math.log2(tokenizer.vocab_size) * val_cache.n_targets / val_cache.n_bytes
print(f"uniform guess: {uniform_bpb:.2f} bits/byte ({val_cache.n_bytes / val_cache.n_targets:.2f} "
      f"bytes per validation token)")

# %%
ch07.exercise_2(uniform_bpb, tokenizer.vocab_size, val_cache.n_targets, val_cache.n_bytes)

# %% [markdown]
# The chapter's untrained model scored 3.02, within 0.01 of it: its near-uniform logits make it
# almost a uniform guesser.
#
# ## Exercise 3

# %%
windows = [val_cache.tokens[16 * i:16 * i + 17].astype(np.int64) for i in range(4)]
eval_x = torch.stack([torch.from_numpy(w[:-1]) for w in windows])  # (4, 16)
eval_y = torch.stack([torch.from_numpy(w[1:]) for w in windows])  # (4, 16)
first_eval_batch = (eval_x, eval_y)
print("second window:", repr(tokenizer.decode(eval_x[1])))

# %%
ch07.exercise_3(first_eval_batch, val_cache.tokens)

# %% [markdown]
# ## Exercise 4: without the causal mask
#
# The subclass computes queries, keys and values as the library does and calls attention with
# no mask at all. The chapter showed that `train_loop` and the library's `Trainer` train
# identically, so the two runs use `Trainer`, with a record at every step.

# %%
class NoMaskAttention(Attention):
    """Attention in which every position sees every other, later ones included."""

    def forward(self, x, cos, sin, cache=None):
        q, k, v = self._project(x, cos, sin, cache)  # (B, H, T, D), (B, K, S, D) twice
        out = F.scaled_dot_product_attention(q, k, v, enable_gqa=self.num_kv_heads
                                             != self.num_heads)  # (B, H, T, D)
        return self._merge_heads(out)


small = ModelConfig(vocab_size=2048, d_model=64, num_layers=2, num_heads=4, num_kv_heads=2,
                    max_seq_len=64)
settings = trainer.TrainConfig(batch_size=8, seq_len=64, max_steps=150, lr=1e-2, warmup_steps=5,
                               eval_every=150, eval_windows=1, log_every=1, device="cpu",
                               precision="fp32")
byte_lengths = trainer.token_byte_lengths(tokenizer)
models, last_losses = {}, {}
for name in ("causal", "no mask"):
    torch.manual_seed(0)
    models[name] = Transformer(small)
    if name == "no mask":
        for layer in models[name].layers:
            layer.self_attn.__class__ = NoMaskAttention
    history = trainer.Trainer(models[name], train_cache.tokens, val_cache.tokens[:4097], settings,
                              byte_lengths, progress=False, log=None).fit()
    losses = [r["loss"] for r in history if r["kind"] == "train"]
    last_losses[name] = sum(losses[-10:]) / 10
print({name: round(loss, 1) for name, loss in last_losses.items()}, "nats/token, steps 141-150")

# %%
ch07.exercise_4(last_losses)

# %% [markdown]
# Without the mask the training loss falls well below the honest one, and the gap widens with
# every step: every position can see the token it is asked to predict, one place to its right,
# and the model learns to copy it. But that skill is useless for the real task, in which the
# next token is never there to copy. Put the mask back and measure both models honestly, on the
# first 64 validation windows:

# %%
for layer in models["no mask"].layers:
    layer.self_attn.__class__ = Attention  # the causal attention again, same weights
honest = {name: trainer.evaluate_tokens(model, val_cache.tokens, byte_lengths, 64, 8,
                                        max_windows=64)["loss"] for name, model in models.items()}
ln_v = math.log(tokenizer.vocab_size)
print(f"on validation, with the mask: causal model {honest['causal']:.1f} nats/token; model "
      f"trained without the mask {'within' if abs(honest['no mask'] - ln_v) < 0.5 else 'not within'}"
      f" 0.5 of ln V = {ln_v:.2f}")

# %%
assert last_losses["no mask"] < last_losses["causal"] - 0.5
assert honest["no mask"] > honest["causal"] + 1.0
assert abs(honest["no mask"] - ln_v) < 0.5

# %% [markdown]
# The model trained without the mask scores about $\ln V$ on the honest task, no better than a
# uniform guess, and far worse than the causal model trained for the same steps. A training
# loss far below the validation loss of an honest model is the symptom to recognise.
