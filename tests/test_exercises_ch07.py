"""Chapter 7's exercise checks: placeholder, right and wrong answers; the training step's known
mistakes, each named; the mask experiment's fabricated answers refused."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from transformer_lib.book.exercises import ch07
from transformer_lib.model import Transformer
from transformer_lib.model.attention import Attention
from transformer_lib.training.trainer import TrainConfig, Trainer

CONFIG = TrainConfig(batch_size=16, seq_len=128, max_steps=300)
TOKENS = np.arange(200, dtype=np.uint16)


def windows(first, length=16, count=4):
    return torch.stack([torch.arange(first + length * i, first + length * (i + 1))
                        for i in range(count)])


@pytest.mark.parametrize("call, placeholder, right, wrongs", [
    (lambda a: ch07.exercise_1(a, CONFIG, 500_000), ..., 300 * 16 * 128 / 500_000,
     [300 * 16 / 500_000, 300 * 16 * 128 / 563_733, "two"]),
    (lambda a: ch07.exercise_2(a, 2048, 1000, 3700), ..., 11 * 1000 / 3700,
     [math.log(2048) * 1000 / 3700, 11 / 3700, 11.0]),
    (lambda a: ch07.exercise_3(a, TOKENS), ..., (windows(0), windows(1)),
     [(windows(0), windows(0)), (windows(0, count=3), windows(1, count=3)),
      (windows(0).int(), windows(1).int()), (windows(0).numpy(), windows(1).numpy()),
      windows(0)]),
])
def test_placeholder_right_and_wrong(capsys, call, placeholder, right, wrongs):
    call(placeholder)
    first = capsys.readouterr().out
    assert first.endswith(": not attempted yet\n")
    number = first.split(":")[0]
    call(right)
    assert capsys.readouterr().out == f"{number}: correct\n"
    for wrong in wrongs:
        call(wrong)
        assert capsys.readouterr().out.startswith(f"{number}: not yet - hint: ")


def test_exercise_2_names_nats_and_bits_per_token(capsys):
    ch07.exercise_2(math.log(2048) * 1000 / 3700, 2048, 1000, 3700)
    assert "log base 2" in capsys.readouterr().out
    ch07.exercise_2(11.0, 2048, 1000, 3700)
    assert "bits per token" in capsys.readouterr().out


# ---- exercise 4: the mask experiment, handed back and recomputed -----------------------------


class Unmasked(Attention):
    """Written as a reader would: the library's projections, attention with no mask."""

    def forward(self, x, cos, sin, cache=None):
        q, k, v = self._project(x, cos, sin, cache)
        out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        return self._merge_heads(out)


@pytest.fixture(scope="module")
def mask_runs():
    """Both runs of the experiment on random tokens: only a model that sees the next token (no
    mask) can do better than a uniform guess."""
    tokens = np.random.default_rng(0).integers(0, 2048, size=20_000).astype(np.uint16)
    settings = TrainConfig(batch_size=8, seq_len=64, max_steps=150, lr=1e-2, warmup_steps=5,
                           eval_every=150, eval_windows=1, log_every=1, device="cpu",
                           precision="fp32")
    runs = {}
    for name in ("causal", "no mask"):
        torch.manual_seed(0)
        model = Transformer(ch07.MASK_MODEL)
        if name == "no mask":
            for layer in model.layers:
                layer.self_attn.__class__ = Unmasked
        history = Trainer(model, tokens, tokens[:65], settings, np.ones(2048, dtype=np.int64),
                          progress=False, log=None).fit()
        runs[name] = {"model": model,
                      "losses": [r["loss"] for r in history if r["kind"] == "train"]}
    return tokens, runs


def test_exercise_4_recomputes_and_refuses_fabrications(capsys, mask_runs):
    tokens, runs = mask_runs
    ch07.exercise_4(..., tokens)
    assert capsys.readouterr().out == "exercise 4: not attempted yet\n"
    ch07.exercise_4(runs, tokens)
    assert capsys.readouterr().out == "exercise 4: correct\n"
    fabricated = [
        ({"causal": 3, "no mask": 1}, "expected a dict"),
        ({name: {**run, "losses": [0.0] * 150} for name, run in runs.items()}, "first loss"),
        ({"causal": runs["causal"], "no mask": {**runs["no mask"], "losses": [
            *runs["no mask"]["losses"][:140], *[v - 2 for v in runs["no mask"]["losses"][140:]]]}},
         "far from the losses you recorded"),
        ({"causal": runs["causal"], "no mask": {**runs["no mask"], "losses": [
            runs["no mask"]["losses"][0] + 0.5, *runs["no mask"]["losses"][1:]]}}, "first loss"),
        ({"causal": runs["causal"], "no mask": runs["causal"]}, "same attention"),
        ({name: {**run, "losses": run["losses"][:100]} for name, run in runs.items()},
         "150 training losses"),
    ]
    for answer, message in fabricated:
        ch07.exercise_4(answer, tokens)
        out = " ".join(line.strip() for line in capsys.readouterr().out.splitlines())
        assert out.startswith("exercise 4: not yet") and message in out, out


# ---- exercise 5: one training step -----------------------------------------------------------


def reader_step(model, optimizer, micro_batches, step, config, divide=True):
    """Written as a reader would, from the chapter's pieces (not the check's own variants);
    ``divide=False`` forgets to divide each micro-batch's loss by their number."""
    lr = ch07.trainer.learning_rate(config, step, step / config.max_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    total = 0.0
    for x, y in micro_batches:
        loss = F.cross_entropy(model(x).reshape(-1, model.config.vocab_size), y.reshape(-1))
        (loss / len(micro_batches) if divide else loss).backward()
        total += loss.item()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad()
    return total / len(micro_batches)


def test_exercise_5_placeholder_right_and_each_named_mistake(capsys):
    def placeholder(model, optimizer, micro_batches, step, config):
        ...

    ch07.exercise_5(placeholder)
    assert capsys.readouterr().out == "exercise 5: not attempted yet\n"
    ch07.exercise_5(reader_step)
    assert capsys.readouterr().out == "exercise 5: correct\n"

    def clip_after(model, optimizer, micro_batches, step, config):
        for group in optimizer.param_groups:
            group["lr"] = ch07.trainer.learning_rate(config, step, step / config.max_steps)
        losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()) for x, y in micro_batches]
        (sum(losses) / len(losses)).backward()
        optimizer.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or 1e9)
        optimizer.zero_grad()
        return sum(v.item() for v in losses) / len(losses)

    for wrong, message in [(clip_after, "clip between backward() and optimizer.step()"),
                           (lambda *a: reader_step(*a, divide=False),
                            "divide each micro-batch's loss")] + [
            (variant, message[:30]) for message, variant in ch07.STEP_MISTAKES.items()]:
        ch07.exercise_5(wrong)
        out = " ".join(line.strip() for line in capsys.readouterr().out.splitlines())
        assert out.startswith("exercise 5: not yet - hint: ") and message in out, out


def test_the_chapter_shows_no_answer_to_exercises_1_and_2():
    from answer_leaks import leaks

    from transformer_lib import book
    from transformer_lib.data import book_stories
    from transformer_lib.data.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(book_stories("train"), book.BOOK_VOCAB_SIZE,
                                name=f"bpe-{book.BOOK_VOCAB_SIZE}")
    cache = book.book_tokens("train", tokenizer)
    values = ch07.expected_values(cache.n_targets, cache.n_bytes)
    assert 0.5 < values["exercise 1"] < 5 and 2 < values["exercise 2"] < 6  # sane, not leaked
    assert leaks("07_training", list(values.values())) == []


# ---- exercise 6: halve the data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gap_runs():
    """Both runs of exercise 6 on the book's own tokens, as a reader would make them."""
    import os

    from transformer_lib import book
    from transformer_lib.training.trainer import evaluate_tokens, token_byte_lengths

    if not os.environ.get("TINYSTORIES_PATH"):
        pytest.skip("set TINYSTORIES_PATH to the book's extract")
    tokenizer = book.stored_model().tokenizer
    train = book.book_tokens("train", tokenizer).tokens
    val = book.book_tokens("validation", tokenizer).tokens
    byte_lengths = token_byte_lengths(tokenizer)
    runs = {}
    for name, n_tokens in ch07.GAP_RUNS.items():
        torch.manual_seed(0)
        model = Transformer(ch07.MASK_MODEL)
        settings = TrainConfig(**{**ch07.gap_config().to_dict(), "device": "cpu",
                                  "precision": "fp32", "log_every": 1})
        history = Trainer(model, train[:n_tokens], val[:65], settings, byte_lengths,
                          progress=False, log=None).fit()
        scores = [evaluate_tokens(model, tokens, byte_lengths, 64, 8, max_windows=64)
                  ["bits_per_byte"] for tokens in (train[:n_tokens], val)]
        runs[name] = {"model": model, "n_tokens": n_tokens,
                      "losses": [r["loss"] for r in history if r["kind"] == "train"],
                      "train_bpb": scores[0], "val_bpb": scores[1]}
    return (train, val, byte_lengths), runs


def test_exercise_6_recomputes_every_figure_and_refuses_fabrications(capsys, gap_runs):
    data, runs = gap_runs
    ch07.exercise_6(..., *data)
    assert capsys.readouterr().out == "exercise 6: not attempted yet\n"
    ch07.exercise_6(runs, *data)
    assert capsys.readouterr().out == "exercise 6: correct\n"
    full, half = runs["40,000 tokens"], runs["20,000 tokens"]

    def with_half(**changes):
        return {"40,000 tokens": full, "20,000 tokens": {**half, **changes}}

    fabricated = [
        ({"40,000 tokens": 0.09, "20,000 tokens": 0.21}, "expected a dict"),
        ({name: {**run, "losses": [0.0] * 300} for name, run in runs.items()}, "first loss"),
        # the right direction, with made-up sizes
        (with_half(train_bpb=1.0, val_bpb=2.0), "'train_bpb' is not what the model scores"),
        (with_half(val_bpb=half["val_bpb"] + 0.2), "'val_bpb' is not what the model scores"),
        # a real answer with one entry changed
        (with_half(n_tokens=40_000), "'n_tokens' must be 20,000"),
        (with_half(losses=[half["losses"][0] + 0.5, *half["losses"][1:]]), "first loss"),
        ({"40,000 tokens": full, "20,000 tokens": {**full, "n_tokens": 20_000}}, "first loss"),
        (with_half(losses=half["losses"][:200]), "300 training losses"),
    ]
    for answer, message in fabricated:
        ch07.exercise_6(answer, *data)
        out = " ".join(line.strip() for line in capsys.readouterr().out.splitlines())
        assert out.startswith("exercise 6: not yet") and message in out, out
