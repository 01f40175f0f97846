"""Checks for the exercises of chapter 7 (training inside the notebook).

Exercise 4 (the causal-mask experiment) takes back what the reader computed from: both trained
models and their per-step losses. The check recomputes the first loss from a fresh seeded model
of the reader's own attention, and the last ten from the reader's trained weights, before it
looks at the direction of the effect. Exercise 5 runs the reader's ``training_step`` against the
library's (``trainer.Trainer``'s own step) on a small seeded model for a few steps, compares the
losses and every weight afterwards, and names the known mistake a wrong step matches. Exercise 6
(halving the data) takes back both trained models with their losses and scores: the check
recomputes the first and last losses as for exercise 4, and each bits-per-byte figure from the
reader's model, before it compares the two gaps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...data.tokens import RandomWindows, SequentialWindows
from ...model import Transformer
from ...model.config import ModelConfig
from ...training import trainer
from .. import BOOK_TRAINING, BOOK_VOCAB_SIZE, check, compare_function, function_answer


def exercise_1(epochs, config, n_targets: int) -> None:
    """Passes over the training cache in a run of ``config`` (n_targets predictions in it)."""
    expected = config.max_steps * config.batch_size * config.seq_len / n_targets
    check("exercise 1", epochs, lambda answer: math.isclose(float(answer), expected, rel_tol=1e-6),
          hint="count the tokens the run predicts (per step, then in all), and divide by the "
               "number of predictions the cache holds", expects="a number")


def _uniform_is_right(answer, vocab_size: int, n_targets: int, n_bytes: int) -> bool | str:
    answer = float(answer)
    expected = math.log2(vocab_size) * n_targets / n_bytes
    if math.isclose(answer, expected, rel_tol=1e-6):
        return True
    if math.isclose(answer, math.log(vocab_size) * n_targets / n_bytes, rel_tol=1e-6):
        return "that is in nats: bits per byte needs log base 2"
    if math.isclose(answer, math.log2(vocab_size), rel_tol=1e-6):
        return "that is bits per token: spread the total over the bytes of the text"
    return False


def exercise_2(uniform_bpb, vocab_size: int, n_targets: int, n_bytes: int) -> None:
    """Bits per byte of the uniform guess over vocab_size ids, on the training text."""
    check("exercise 2", uniform_bpb,
          lambda answer: _uniform_is_right(answer, vocab_size, n_targets, n_bytes),
          hint="first the cost of one uniform guess in bits, then the total over every "
               "prediction of the training text, spread over its bytes", expects="a number")


def _first_batch_is_right(answer, tokens: np.ndarray) -> bool:
    eval_x, eval_y = answer
    expected_x, expected_y = next(iter(SequentialWindows(tokens, 4, 16)))
    return (isinstance(eval_x, torch.Tensor) and isinstance(eval_y, torch.Tensor)
            and eval_x.shape == eval_y.shape == (4, 16) and eval_x.dtype == torch.int64
            and torch.equal(eval_x, expected_x) and torch.equal(eval_y, expected_y))


def exercise_3(first_eval_batch, tokens: np.ndarray) -> None:
    """(eval_x, eval_y): the first 4 non-overlapping windows of 16 tokens and their targets."""
    check("exercise 3", first_eval_batch, lambda answer: _first_batch_is_right(answer, tokens),
          hint="window i covers 16 tokens starting at 16 * i, so consecutive windows touch but "
               "do not overlap; the targets are the same slices moved one token on, and the "
               "ids must become int64 tensors", expects="a pair (eval_x, eval_y)")


# ---- exercise 4: the causal-mask experiment, recomputed from what the reader hands back ------

MASK_MODEL = ModelConfig(vocab_size=2048, d_model=64, num_layers=2, num_heads=4, num_kv_heads=2,
                         max_seq_len=64)
MASK_STEPS, MASK_BATCH, MASK_SEQ_LEN, MASK_SEED = 150, 8, 64, 0


def _batch_loss(model: Transformer, tokens: np.ndarray, step: int) -> float:
    x, y = RandomWindows(tokens, MASK_BATCH, MASK_SEQ_LEN, seed=MASK_SEED).batch_at(step)
    with torch.no_grad():
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()


def _attention_class(model: Transformer) -> type:
    return type(model.layers[0].self_attn)


def _mask_run_problem(name: str, run, tokens: np.ndarray) -> str | None:
    """What is wrong with one run handed back as {"model", "losses"}, or None."""
    model, losses = run["model"], [float(loss) for loss in run["losses"]]
    if not isinstance(model, Transformer) or model.config != MASK_MODEL:
        return f"'{name}': 'model' must be the Transformer you trained, with the given config"
    if len(losses) != MASK_STEPS or not all(math.isfinite(loss) for loss in losses):
        return f"'{name}': 'losses' must hold the {MASK_STEPS} training losses, one per step"
    torch.manual_seed(MASK_SEED)
    fresh = Transformer(MASK_MODEL).eval()  # the run's starting point, with the run's attention
    for layer in fresh.layers:
        layer.self_attn.__class__ = _attention_class(model)
    if abs(_batch_loss(fresh, tokens, 0) - losses[0]) > 1e-3:
        return (f"'{name}': the first loss is not what a model seeded with {MASK_SEED} scores on "
                "batch 0: train from torch.manual_seed(0) with the given settings")
    was_training = model.training
    model.eval()
    last = [_batch_loss(model, tokens, step) for step in range(MASK_STEPS - 10, MASK_STEPS)]
    model.train(was_training)
    if abs(sum(last) / 10 - sum(losses[-10:]) / 10) > 0.5:
        return (f"'{name}': the trained model's losses on the last 10 batches are far from the "
                "losses you recorded; hand back the model you trained and its own losses")
    return None


def _mask_experiment_is_right(runs, tokens: np.ndarray) -> bool | str:
    for name in ("causal", "no mask"):
        problem = _mask_run_problem(name, runs[name], tokens)
        if problem:
            return problem
    if _attention_class(runs["causal"]["model"]) is _attention_class(runs["no mask"]["model"]):
        return "both models use the same attention: put your mask-free class into the second"
    mean = {name: sum(float(v) for v in runs[name]["losses"][-10:]) / 10 for name in runs}
    if not mean["no mask"] < mean["causal"] - 0.5:
        return ("the model without the mask should train to a much lower loss: check that its "
                "attention really sees later positions (no mask, is_causal=False)")
    return True


def exercise_4(runs, train_tokens: np.ndarray) -> None:
    """{"causal": {"model", "losses"}, "no mask": {...}}: two 150-step runs and their losses."""
    check("exercise 4", runs, lambda answer: _mask_experiment_is_right(answer, train_tokens),
          hint="both models start from torch.manual_seed(0), see the same batches, and only "
               "the attention of the second may look at later positions",
          expects='a dict {"causal": {"model": ..., "losses": [...]}, "no mask": {...}}')


# ---- exercise 5: one training step -----------------------------------------------------------

STEP_MODEL = ModelConfig(vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                         max_seq_len=16)
STEPS_RUN = 4  # steps 0..3: warm-up, the peak, the decay


def _step_config(grad_accum: int, grad_clip: float, seq_len: int) -> trainer.TrainConfig:
    return trainer.TrainConfig(batch_size=4, seq_len=seq_len, max_steps=6, lr=2e-2,
                               warmup_steps=2, grad_accum=grad_accum, grad_clip=grad_clip,
                               weight_decay=0.1, eval_every=100, log_every=1, device="cpu",
                               precision="fp32")


def _step_tokens(seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return generator.integers(0, STEP_MODEL.vocab_size, size=400).astype(np.uint16)


def _library_run(seed: int, grad_accum: int, grad_clip: float, seq_len: int):
    """The library's Trainer stepping STEPS_RUN times: (losses, every weight), both tensors."""
    config = _step_config(grad_accum, grad_clip, seq_len)
    torch.manual_seed(seed)
    model = Transformer(STEP_MODEL)
    run = trainer.Trainer(model, _step_tokens(seed), _step_tokens(seed + 1)[:seq_len + 1],
                          config, np.ones(STEP_MODEL.vocab_size, dtype=np.int64),
                          progress=False, log=None)
    losses = []
    for step in range(STEPS_RUN):
        lr = trainer.learning_rate(config, step, step / config.max_steps)
        losses.append(run._train_step(lr))  # the library's own step
    return _outcome(losses, model)


def _outcome(losses, model: Transformer):
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return torch.tensor(losses, dtype=torch.float64), weights


def _run_with(step_function, seed: int, grad_accum: int, grad_clip: float, seq_len: int):
    """Run a reader-style step function STEPS_RUN times on the same model, optimizer, batches."""
    config = _step_config(grad_accum, grad_clip, seq_len)
    torch.manual_seed(seed)
    model = Transformer(STEP_MODEL)
    model.train()
    optimizer = trainer.make_optimizer(model, config, torch.device("cpu"))
    sampler = RandomWindows(_step_tokens(seed), config.batch_size, seq_len, seed=config.seed)
    losses = []
    for step in range(STEPS_RUN):
        x, y = sampler.batch_at(step)  # (B, T) each
        micro = config.batch_size // grad_accum
        micro_batches = [(x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro])
                         for i in range(grad_accum)]
        loss = step_function(model, optimizer, micro_batches, step, config)
        losses.append(float(loss))
    return _outcome(losses, model)


def _schedule(config, step: int) -> float:
    return trainer.learning_rate(config, step, step / config.max_steps)


def _wrong_step(*, clip: str = "before", zero_grad: bool = True, lr_at: str = "step",
                scale: bool = True, report: str = "mean"):
    """A training step with one known mistake (the defaults make the right step)."""

    def step_function(model, optimizer, micro_batches, step, config):
        def set_lr(value):
            for group in optimizer.param_groups:
                group["lr"] = value

        if lr_at == "step":
            set_lr(_schedule(config, step))
        elif lr_at == "step + 1":
            set_lr(_schedule(config, step + 1))
        elif lr_at == "constant":
            set_lr(config.lr)
        losses = []
        for x, y in micro_batches:
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            (loss / len(micro_batches) if scale else loss).backward()
            losses.append(loss.item())
        if clip == "before" and config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if clip == "after" and config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        if lr_at == "after the step":
            set_lr(_schedule(config, step))
        if zero_grad:
            optimizer.zero_grad(set_to_none=True)
        return sum(losses) / len(losses) if report == "mean" else losses[-1]

    return step_function


# (seed, micro-batches per step, grad_clip, seq_len): clipping on and off, odd lengths
# AdamW nearly ignores a gradient's scale, so a loss not divided by the micro-batches shows
# only where nothing is clipped: two such cases.
STEP_CASES = ((0, 1, 0.5, 8), (1, 2, 0.5, 7), (2, 4, 1.0, 5), (3, 2, 0.0, 16), (4, 4, 0.0, 8))
STEP_MISTAKES = {
    "clip between backward() and optimizer.step(): clipping after the step, or not at all, "
    "lets the full gradient through": _wrong_step(clip="after"),
    "forget the gradients after each step (optimizer.zero_grad()): otherwise the next step's "
    "backward() adds to them": _wrong_step(zero_grad=False),
    "set this step's rate, warmup_cosine(step, ...), before the update, not the next step's":
        _wrong_step(lr_at="step + 1"),
    "set the learning rate before optimizer.step(): set after it, each step uses the previous "
    "step's rate": _wrong_step(lr_at="after the step"),
    "use the schedule: set every param group's 'lr' to warmup_cosine(step, ...) each step":
        _wrong_step(lr_at="constant"),
    "return the mean loss over the micro-batches, not the last one's": _wrong_step(report="last"),
    "divide each micro-batch's loss by the number of micro-batches before backward(): the "
    "gradients add up over them, so the step's gradient comes out that many times too large":
        _wrong_step(scale=False),
}


def _step_is_right(step_function) -> bool | str:
    return compare_function(
        lambda *case: _run_with(step_function, *case), _library_run, STEP_CASES,
        {message: (lambda *case, wrong=wrong: _run_with(wrong, *case))
         for message, wrong in STEP_MISTAKES.items()},
        atol=1e-5, rtol=1e-4,
        describe_case=lambda case: f"{case[1]} micro-batch(es), grad_clip={case[2]}")


def exercise_5(training_step) -> None:
    """training_step(model, optimizer, micro_batches, step, config) -> mean loss (a float)."""
    attempted = None
    if not (training_step is None or training_step is Ellipsis):  # run it once on a probe
        config = _step_config(1, 1.0, 8)
        with torch.random.fork_rng(devices=[]):  # the reader's random stream stays as it was
            torch.manual_seed(0)
            model = Transformer(STEP_MODEL)
        x = torch.zeros(4, 8, dtype=torch.int64)  # (B, T)
        optimizer = trainer.make_optimizer(model, config, torch.device("cpu"))
        attempted = function_answer(training_step, model, optimizer, [(x, x)], 0, config)
    check("exercise 5", attempted, _step_is_right,
          hint="in order: set this step's learning rate, forward and loss per micro-batch, "
               "backward of the loss divided by the number of micro-batches, clip, step, "
               "zero the gradients")


# ---- exercise 6: halve the data, watch the generalisation gap grow -------------------------

GAP_STEPS, GAP_WINDOWS = 300, 64
GAP_RUNS = {"40,000 tokens": 40_000, "20,000 tokens": 20_000}


def gap_config() -> trainer.TrainConfig:
    """The settings of both runs of exercise 6."""
    return trainer.TrainConfig(batch_size=MASK_BATCH, seq_len=MASK_SEQ_LEN, max_steps=GAP_STEPS,
                               lr=1e-2, warmup_steps=5, weight_decay=0.1, eval_every=GAP_STEPS,
                               eval_windows=1, seed=MASK_SEED)


def _prefix_bpb(model: Transformer, tokens: np.ndarray, byte_lengths) -> float:
    """Bits per byte on the first GAP_WINDOWS windows of 64 tokens of ``tokens``."""
    return trainer.evaluate_tokens(model, tokens, byte_lengths, MASK_SEQ_LEN, MASK_BATCH,
                                   max_windows=GAP_WINDOWS)["bits_per_byte"]


def _gap_run_problem(name: str, run, train_tokens: np.ndarray, val_tokens: np.ndarray,
                     byte_lengths) -> str | None:
    """What is wrong with one run handed back for exercise 6, or None."""
    model, losses = run["model"], [float(loss) for loss in run["losses"]]
    if not isinstance(model, Transformer) or model.config != MASK_MODEL:
        return f"'{name}': 'model' must be the Transformer you trained, with the given config"
    if run["n_tokens"] != GAP_RUNS[name]:
        return f"'{name}': 'n_tokens' must be {GAP_RUNS[name]:,}, the tokens it trained on"
    if len(losses) != GAP_STEPS or not all(math.isfinite(loss) for loss in losses):
        return f"'{name}': 'losses' must hold the {GAP_STEPS} training losses, one per step"
    seen = train_tokens[:GAP_RUNS[name]]
    torch.manual_seed(MASK_SEED)
    fresh = Transformer(MASK_MODEL).eval()
    if abs(_batch_loss(fresh, seen, 0) - losses[0]) > 1e-3:
        return (f"'{name}': the first loss is not what a model seeded with {MASK_SEED} scores on "
                f"the first batch of the first {GAP_RUNS[name]:,} training tokens: train from "
                "torch.manual_seed(0) on train_cache.tokens[:n_tokens]")
    was_training = model.training
    model.eval()
    last = [_batch_loss(model, seen, step) for step in range(GAP_STEPS - 10, GAP_STEPS)]
    measured = {"train_bpb": _prefix_bpb(model, seen, byte_lengths),
                "val_bpb": _prefix_bpb(model, val_tokens, byte_lengths)}
    model.train(was_training)
    if abs(sum(last) / 10 - sum(losses[-10:]) / 10) > 0.5:
        return (f"'{name}': the trained model's losses on the last 10 batches are far from the "
                "losses you recorded; hand back the model you trained and its own losses")
    for key, value in measured.items():
        if abs(float(run[key]) - value) > 0.01:
            where = "the tokens it trained on" if key == "train_bpb" else "the validation tokens"
            return (f"'{name}': '{key}' is not what the model scores on the first "
                    f"{GAP_WINDOWS} windows of {where}")
    return None


def _gap_experiment_is_right(runs, train_tokens, val_tokens, byte_lengths) -> bool | str:
    for name in GAP_RUNS:
        problem = _gap_run_problem(name, runs[name], train_tokens, val_tokens, byte_lengths)
        if problem:
            return problem
    gaps = {name: float(runs[name]["val_bpb"]) - float(runs[name]["train_bpb"])
            for name in GAP_RUNS}
    if not gaps["20,000 tokens"] > gaps["40,000 tokens"] + 0.03:
        return ("with half the data each token is seen twice as often, so the model should fit "
                "its own tokens better than the validation ones by more")
    return True


def exercise_6(runs, train_tokens: np.ndarray, val_tokens: np.ndarray, byte_lengths) -> None:
    """{"40,000 tokens": {"model", "n_tokens", "losses", "train_bpb", "val_bpb"},
    "20,000 tokens": {...}}: two seeded runs and what each scores on its own and unseen text."""
    check("exercise 6", runs,
          lambda answer: _gap_experiment_is_right(answer, train_tokens, val_tokens,
                                                  byte_lengths),
          hint="both models start from torch.manual_seed(0) with the same settings; only the "
               "number of training tokens differs, and each is measured on its own tokens",
          expects='a dict {"40,000 tokens": {"model": ..., "n_tokens": ..., "losses": [...], '
                  '"train_bpb": ..., "val_bpb": ...}, "20,000 tokens": {...}}')


def expected_values(train_n_targets: int, train_n_bytes: int) -> dict[str, float]:
    """The numbers right answers to exercises 1 and 2 give with the chapter's recipe and its
    training cache (for the test that the chapter shows neither)."""
    config = trainer.TrainConfig(**BOOK_TRAINING)
    return {"exercise 1": config.max_steps * config.batch_size * config.seq_len / train_n_targets,
            "exercise 2": math.log2(BOOK_VOCAB_SIZE) * train_n_targets / train_n_bytes}
