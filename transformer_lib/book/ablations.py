"""The ablation variants of chapter 12 and ``tlib-ablate``: each changes one choice of the book's
model or its training, and :func:`train_variant` trains one with chapter 7's recipe.

Where a change alters the parameter count, the feed-forward width is re-chosen so the total is as
close as it can be to the baseline's (parameters are linear in that width).
"""

from __future__ import annotations

import torch

from ..model.config import ModelConfig
from ..model.transformer import Transformer
from ..training.trainer import TrainConfig, Trainer, token_byte_lengths
from . import BOOK_MODEL, BOOK_TRAINING, book_tokens

# name: (ModelConfig changes, TrainConfig changes, what it tests). "baseline" is the book's model.
VARIANTS: dict[str, tuple[dict, dict, str]] = {
    "baseline": ({}, {}, "the book's model: RMSNorm, RoPE, SwiGLU, pre-norm, 4 query / 2 kv heads"),
    "layernorm": ({"norm": "layer"}, {}, "LayerNorm (bias-free) for RMSNorm"),
    "learned-positions": ({"positions": "learned"}, {}, "learned absolute positions for RoPE"),
    "sinusoidal-positions": ({"positions": "sinusoidal"}, {}, "sinusoidal positions for RoPE"),
    "no-positions": ({"positions": "none"}, {}, "no positions at all (NoPE) for RoPE"),
    "gelu-mlp": ({"mlp": "gelu"}, {}, "a GELU MLP (3/2 the width) for SwiGLU"),
    "post-norm": ({"norm_placement": "post"}, {}, "post-norm for pre-norm"),
    "multi-head": ({"num_kv_heads": 4}, {}, "multi-head attention (K = H = 4) for K = 2"),
    "multi-query": ({"num_kv_heads": 1}, {}, "multi-query attention (K = 1) for K = 2"),
    "untied": ({"tie_embeddings": False}, {}, "separate input and output embeddings"),
    "no-attention-scale": ({"attention_scale": False}, {}, "no 1/sqrt(D) in the attention"),
    "qk-norm": ({"qk_norm": True}, {}, "RMSNorm on queries and keys"),
    "zero-init-output": ({"zero_init_output": True}, {}, "output projections start at zero"),
    "logit-softcap": ({"logit_softcap": 15.0}, {}, "logits soft-capped at 15 (tanh)"),
    "muon": ({}, {"optimizer": "muon"}, "Muon for the blocks' matrices, AdamW for the rest"),
    "wsd": ({}, {"schedule": "wsd"}, "warm-up / stable / decay (last 20%) for the cosine"),
    "value-embeddings": ({"value_embeddings": True}, {},
                         "a learned vector per token added to each layer's values"),
    "value-residual": ({"value_residual": True}, {},
                       "each layer's values averaged with the first layer's"),
}
# Variants whose extra parameters are lookup tables: a table row costs no multiplication per
# token, like the token embedding, so narrowing the feed-forward layers to pay for it would
# take compute away instead of matching it. Their count is recorded, not matched.
TABLES_ONLY = ("value-embeddings",)


def variant_config(name: str, vocab_size: int, match: bool = True) -> tuple[ModelConfig, str]:
    """The variant's ModelConfig and how its parameter count was matched to the baseline's.

    With ``match``, a variant whose change alters the parameter count gets the feed-forward width
    whose total comes closest to the baseline's (parameters are linear in that width), except
    one whose extra parameters are lookup tables (``TABLES_ONLY``).
    """
    model_changes = VARIANTS[name][0]
    baseline = ModelConfig(vocab_size=vocab_size, **BOOK_MODEL)
    config = ModelConfig(vocab_size=vocab_size, **{**BOOK_MODEL, **model_changes})
    target, count = parameter_count(baseline), parameter_count(config)
    if count == target:
        return config, "equal"
    if not match or name in TABLES_ONLY:
        tables = " in lookup tables, not matched" if match else ""
        return config, f"{count - target:+d} parameters{tables}"
    wider = ModelConfig(vocab_size=vocab_size, **{**BOOK_MODEL, **model_changes,
                                                  "ffn_hidden_dim": config.ffn_hidden_dim + 1})
    per_unit = parameter_count(wider) - count
    width = config.ffn_hidden_dim + round((target - count) / per_unit)
    if width < 1:
        raise ValueError(f"variant {name} cannot be matched by the feed-forward width")
    matched = ModelConfig(vocab_size=vocab_size, **{**BOOK_MODEL, **model_changes,
                                                    "ffn_hidden_dim": width})
    gap = parameter_count(matched) - target
    return matched, (f"feed-forward width {config.ffn_hidden_dim} -> {width} "
                     f"({count - target:+d} parameters before, {gap:+d} after)")


def parameter_count(config: ModelConfig) -> int:
    with torch.device("meta"):
        return Transformer(config).num_parameters()


def recipe_training(steps: int) -> dict:
    """Chapter 7's training settings for a run of ``steps`` steps: warm-up at most a fifth of
    the run, one evaluation (at the end)."""
    return {**BOOK_TRAINING, "max_steps": steps,
            "warmup_steps": min(BOOK_TRAINING["warmup_steps"], steps // 5),
            "eval_every": steps + 1, "log_every": steps}


def train_variant(variant: str | tuple[dict, dict], tokenizer, steps: int, seed: int = 0,
                  eval_tokens: int = 16384, match: bool = True,
                  cache_dir=None) -> tuple[Transformer, dict]:
    """Train a variant (a name from VARIANTS, or a pair (model changes, training changes)) for
    ``steps`` steps of chapter 7's recipe on the CPU in float32, and score it on the first
    ``eval_tokens`` validation tokens. Returns the model and a record: seed, val_bpb, val_loss,
    train_loss, parameters, tokens_per_s."""
    if isinstance(variant, str):
        config, _ = variant_config(variant, tokenizer.vocab_size, match)
        train_changes = VARIANTS[variant][1]
    else:
        model_changes, train_changes = variant
        config = ModelConfig(vocab_size=tokenizer.vocab_size, **{**BOOK_MODEL, **model_changes})
    train = book_tokens("train", tokenizer, cache_dir).tokens
    val = book_tokens("validation", tokenizer, cache_dir).tokens[:eval_tokens]
    settings = {**recipe_training(steps), **train_changes, "seed": seed}
    torch.manual_seed(seed)  # the initial weights
    model = Transformer(config)
    trainer = Trainer(model, train, val, TrainConfig(device="cpu", precision="fp32", **settings),
                      token_byte_lengths(tokenizer), progress=False, log=None)
    history = trainer.fit()
    last_train = [r for r in history if r["kind"] == "train"][-1]
    final = [r for r in history if r["kind"] == "eval"][-1]
    tokens = steps * settings["batch_size"] * settings["seq_len"]
    return model.eval(), {"seed": seed, "val_bpb": final["val_bpb"], "val_loss": final["val_loss"],
                          "train_loss": last_train["loss"], "parameters": model.num_parameters(),
                          "tokens_per_s": tokens / last_train["elapsed_s"]}
