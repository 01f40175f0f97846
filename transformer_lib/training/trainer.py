"""One trainer for the notebooks and the command line.

AdamW without weight decay on norms and embeddings, linear warm-up then cosine decay, gradient
clipping and accumulation, periodic evaluation in bits per byte, stopping by steps or by
wall-clock minutes, atomic checkpoints with exact resume, and data-parallel training on
several processes (``torchrun``) where the global batch is split across ranks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checks import require_int
from ..data.tokens import RandomRows, RandomWindows, ids_to_device
from ..device import pick_device, pick_precision
from ..fileio import write_text_atomically
from ..model.transformer import Transformer
from . import checkpoint as ckpt
from .metrics import (
    AfterSeparator,
    all_reduce,
    as_token_array,
    check_token_ids,
    check_validation_set,
    evaluate_tokens,
    rank_and_world,
    sum_over_processes,
    token_byte_lengths,
)
from .muon import Muon

__all__ = ["CLI_RECIPE", "NEW_MODEL_ONLY", "TrainConfig", "Trainer", "TrainingDiverged",
           "evaluate_tokens", "learning_rate", "make_optimizer", "token_byte_lengths"]

LOG = "log.jsonl"  # one JSON record per line in the run directory
TRAINER_META = ("train_config", "history", "tokens_seen", "tokenizer")  # written by Trainer.save


@dataclass
class TrainConfig:
    """How to train; every field has a default sized for a laptop CPU."""

    batch_size: int = 16  # sequences per optimizer step, over all processes together
    seq_len: int = 256  # tokens per training window
    grad_accum: int = 1  # micro-batches per step on each process (same maths, less memory)
    lr: float = 5e-3  # peak learning rate: best of those tried in 5-minute CPU runs
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 30  # linear warm-up from 0 to the peak lr
    weight_decay: float = 0.1  # on matrices only; norms and embeddings get none
    beta1: float = 0.9
    beta2: float = 0.95  # shorter memory than 0.999: steadier for short, noisy runs
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    max_steps: int | None = None  # stop after this many steps ...
    max_minutes: float | None = None  # ... or after this much wall-clock time, whichever first
    eval_every: int = 100  # steps between evaluations (a last one always runs at the end)
    eval_windows: int | None = 64  # windows per periodic evaluation; None = every token
    save_every: int | None = None  # steps between checkpoints (one is always written at the end)
    log_every: int = 10  # steps between train records sent to callbacks
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto, fp32 or bf16 (see transformer_lib.device)
    compile: bool = False  # torch.compile the model; falls back to eager with a warning
    # ---- Alternatives for the ablations (tlib-ablate, chapter 12); the defaults are the above.
    optimizer: str = "adamw"  # "muon": Muon (training.muon) for the blocks' matrices, AdamW the rest
    schedule: str = "cosine"  # "wsd": warm-up, stable at the peak, linear decay at the end
    decay_fraction: float = 0.2  # the share of the run the "wsd" schedule spends decaying
    z_loss: float = 0.0  # weight of mean(logsumexp(logits)^2) added to the loss (PaLM: 1e-4)

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "grad_accum", "warmup_steps", "eval_every",
                     "log_every"):
            require_int(name, getattr(self, name), 0 if name == "warmup_steps" else 1)
        if self.eval_windows is not None:
            require_int("eval_windows", self.eval_windows, 1,
                        "; leave it unset (None) to score every validation token")
        if self.save_every is not None:  # 0, like None, saves only at the end (as it always has)
            require_int("save_every", self.save_every, 0,
                        "; leave it unset (None) to save only at the end")
        if self.max_steps is None and self.max_minutes is None:
            raise ValueError("give max_steps or max_minutes (or both): the learning-rate schedule "
                             "is planned for the stop that applies")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps} must be >= 1")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise ValueError(f"max_minutes={self.max_minutes} must be a positive number; leave "
                             f"it unset for no time limit")
        if not 0 < self.lr < math.inf or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"lr={self.lr} must be > 0 and min_lr_ratio={self.min_lr_ratio} "
                             f"in [0, 1]")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay={self.weight_decay} must be >= 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1={self.beta1} and beta2={self.beta2} must lie in [0, 1)")
        if not 0 <= self.grad_clip < math.inf:
            raise ValueError(f"grad_clip={self.grad_clip} must be >= 0 (0 turns clipping off)")
        require_int("seed", self.seed, 0)
        if self.optimizer not in ("adamw", "muon") or self.schedule not in ("cosine", "wsd"):
            raise ValueError(f"optimizer={self.optimizer!r} must be 'adamw' or 'muon' and "
                             f"schedule={self.schedule!r} 'cosine' or 'wsd'")
        if not 0 < self.decay_fraction <= 1 or self.z_loss < 0:
            raise ValueError(f"decay_fraction={self.decay_fraction} must lie in (0, 1] and "
                             f"z_loss={self.z_loss} be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The training command's recipe (tlib-train): TrainConfig's defaults, except
# these, each tuned for the best validation bits per byte a 5-minute run on a small CPU buys
# (the runs are in benchmarks/RESULTS.md). Five minutes see the 2 MB local sample many times and
# the model starts to memorise it; strong decoupled weight decay holds that back. A run that sees
# its data once (the full dataset, on a GPU) wants TrainConfig's 0.1. Muon trains the blocks'
# matrices of a new model: at equal wall-clock it beat AdamW by more than the seeds' spread
# (chapter 12 and transformer_lib/assets/five_minute_runs.json); a fine-tuning run (--init-from)
# keeps AdamW, the optimizer its model was trained with. On a CPU the command trains under bf16
# autocast, which reached a lower validation loss per minute than float32 there; the library's
# device policy itself stays float32 on CPU.
# The training window is the smaller of seq_len and the model's max_seq_len (TrainConfig itself
# refuses a window longer than the model's context).
# cpu_precision applies where the CPU has bf16 in hardware (device.cpu_has_native_bf16); other
# CPUs emulate it, many times slower per step than float32 (benchmarks/RESULTS.md), and train
# in float32.
# A new model also trains on batches of 8 windows under the warm-up/stable/decay schedule: more,
# smaller steps from the same tokens measured lower than 16 windows under the cosine, and a step
# of 8 windows costs no more per token on a CPU; 4 windows, or other peak rates, did worse
# (benchmarks/RESULTS.md). On a GPU pass a larger --batch-size: 8 windows leave one idle.
CLI_RECIPE = {"weight_decay": 1.0, "max_minutes": 5.0, "cpu_precision": "bf16",
              "optimizer": "muon", "batch_size": 8, "schedule": "wsd"}
# The fields a fine-tuning run (--init-from) takes from TrainConfig instead: they were measured
# training a model from scratch.
NEW_MODEL_ONLY = ("optimizer", "batch_size", "schedule")


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


def rank_rows(batch: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s share of a global batch: rows rank*B/world .. (rank+1)*B/world.

    The shares of ranks 0..world-1, in order, are the global batch: one process and N processes
    see the same rows, so they compute the same steps.
    """
    if batch.shape[0] % world:
        raise ValueError(f"a global batch of {batch.shape[0]} rows does not split evenly over "
                         f"{world} processes")
    share = batch.shape[0] // world
    return batch[rank * share:(rank + 1) * share]


def learning_rate(config: TrainConfig, step: int, progress: float,
                  warmup_progress: float | None = None) -> float:
    """The learning rate of the step that follows ``step`` finished steps.

    Linear warm-up, ``lr * step / warmup_steps`` for step < warmup_steps (so the first step only
    primes AdamW's averages), reaching the peak where warm-up ends; then a cosine from the peak
    down to ``lr * min_lr_ratio`` over what is left of the run. For a run of T steps with W of
    warm-up this is the cosine over (t - W) / (T - W), exactly transformers'
    ``get_cosine_with_min_lr_schedule_with_warmup`` and nanoGPT's schedule.

    ``progress`` is the fraction of the run done: steps over max_steps, or elapsed over
    max_minutes, whichever is further along, so the decay ends where the run does; it plays the
    role of t / T. ``warmup_progress`` is the fraction at which warm-up ended (W / T); a
    step-budgeted run knows it in advance (the default), a time-budgeted one records it when it
    gets there (the trainer does).
    """
    if step < config.warmup_steps:
        return config.lr * step / config.warmup_steps
    if warmup_progress is None:
        if config.max_steps is None:
            raise ValueError("a time-budgeted run's schedule needs warmup_progress, the fraction "
                             "of the run done when warm-up ended")
        warmup_progress = config.warmup_steps / config.max_steps
    if config.schedule == "wsd":  # flat at the peak, then linear to the floor at the end
        decayed = (progress - (1.0 - config.decay_fraction)) / config.decay_fraction
        linear = 1.0 - min(max(decayed, 0.0), 1.0)
        return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * linear)
    decayed = (progress - warmup_progress) / max(1.0 - warmup_progress, 1e-12)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(decayed, 0.0), 1.0)))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


def training_loss(logits: torch.Tensor, targets: torch.Tensor, z_loss: float,
                  weights: torch.Tensor | None = None,
                  total_weight: float | None = None) -> torch.Tensor:
    """Cross-entropy of logits (B, T, V) against targets (B, T), plus z_loss times the mean squared
    log-normaliser, which keeps the logits from drifting upwards together (PaLM's z-loss).

    With ``weights`` (B, T) the cross-entropy is the weighted sum divided by ``total_weight``
    (default: the weights' sum); passing the whole batch's total lets micro-batches and
    processes add up to the batch's weighted mean.
    """
    flat = logits.flatten(0, 1).float()  # (B*T, V)
    if weights is None:
        loss = F.cross_entropy(flat, targets.flatten())
    else:
        per_token = F.cross_entropy(flat, targets.flatten(), reduction="none")  # (B*T,)
        weights = weights.flatten().to(per_token.dtype)
        divisor = weights.sum() if total_weight is None else total_weight
        loss = (per_token * weights).sum() / divisor
    if z_loss:
        loss = loss + z_loss * torch.logsumexp(flat, dim=-1).pow(2).mean()
    return loss


class MuonWithAdamW:
    """Muon for the blocks' weight matrices, AdamW for embeddings, output head and gains; one
    optimizer to the trainer (param_groups, step, zero_grad, state_dict)."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer):
        self.muon, self.adamw = muon, adamw
        self.muon_params = [p for group in muon.param_groups for p in group["params"]]

    @property
    def param_groups(self) -> list[dict]:
        return self.muon.param_groups + self.adamw.param_groups

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def is_embedding_table(name: str) -> bool:
    """Whether parameter ``name`` is a lookup table (the token embedding, or a layer's value
    embedding): rows indexed by token, trained by AdamW without decay, never by Muon."""
    return "embed_tokens" in name or name.endswith("value_embedding.weight")


def make_optimizer(model: torch.nn.Module, config: TrainConfig,
                   device: torch.device) -> torch.optim.AdamW | MuonWithAdamW:
    """AdamW with decay on weight matrices only (not on norms or the embedding tables).

    ``config.optimizer == "muon"``: the blocks' matrices go to the library's ``Muon`` instead
    (torch.optim.Muon's rule, its update rescaled to AdamW's RMS so that the same learning rate
    applies; see training.muon for why not torch's own), the rest stays on AdamW. Muon's
    orthogonalisation runs in float32 when the run computes in float32, else in its device's
    default (bfloat16 where the hardware has it).
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():  # a tied output head is the embedding
        (no_decay if param.dim() < 2 or is_embedding_table(name) else decay).append(param)
    if config.optimizer == "muon":
        names = {id(p): name for name, p in model.named_parameters()}
        matrices = [p for p in decay if names[id(p)].startswith("layers.")]
        # A float32 run keeps Muon's iteration in float32 too (in bfloat16 it would round the
        # update, and one process and several would part in the last bits of their gradients);
        # under bf16 autocast the iteration takes its device default (muon.default_iteration_dtype).
        in_float32 = pick_precision(device, config.precision).autocast_dtype is None
        muon = Muon(matrices, lr=config.lr, weight_decay=config.weight_decay,
                    iteration_dtype=torch.float32 if in_float32 else None)
        decay = [p for p in decay if not names[id(p)].startswith("layers.")]
        adamw = make_optimizer(_Only(decay + no_decay, names), dataclasses.replace(
            config, optimizer="adamw"), device)
        return MuonWithAdamW(muon, adamw)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = device.type in ("cuda", "cpu")  # one kernel per step where PyTorch has one
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2),
                             fused=fused, foreach=None if fused else True)


class _Only(torch.nn.Module):
    """A stand-in module whose named_parameters are a given subset (for make_optimizer)."""

    def __init__(self, params: list[torch.nn.Parameter], names: dict[int, str]):
        super().__init__()
        self._subset = [(names[id(p)], p) for p in params]

    def named_parameters(self, *args, **kwargs):
        return iter(self._subset)


def check_fits(config: TrainConfig, model_config, world: int = 1) -> None:
    """Raise ValueError unless the batch splits evenly over ``world`` processes and their
    micro-batches, and the training window fits the model's context."""
    if config.batch_size % (world * config.grad_accum):
        raise ValueError(
            f"batch_size={config.batch_size} must be divisible by processes x grad_accum = "
            f"{world} x {config.grad_accum}; each process takes an equal share")
    if config.seq_len > model_config.max_seq_len:
        raise ValueError(f"seq_len={config.seq_len} exceeds the model's max_seq_len="
                         f"{model_config.max_seq_len}")


def check_run_dir(run_dir: Path | None) -> None:
    """Raise ValueError unless ``run_dir`` can hold a run: absent, a folder without checkpoints,
    or one whose checkpoints folder a run wrote (``latest`` names one of them). Step folders
    without ``latest`` belong to something else, and saving would prune them."""
    if run_dir is None:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file; the run directory must be a folder")
    if (run_dir / ckpt.META).is_file():
        raise ValueError(f"{run_dir} is a checkpoint, not a run directory; give the run "
                         f"directory that holds it ({run_dir.parent.parent})")
    checkpoints = run_dir / "checkpoints"
    if (run_dir / "latest").exists() or not checkpoints.is_dir():
        return
    # What a first save killed part-way leaves: hidden folders, and at most one complete step
    # folder (killed after its rename, before ``latest`` named it). The next save tidies both.
    foreign = sorted(p.name for p in checkpoints.iterdir() if not p.name.startswith("."))
    if len(foreign) == 1 and foreign[0].startswith("step_"):
        try:
            ckpt.read_meta(checkpoints / foreign[0])
            return
        except ckpt.CheckpointError:
            pass
    if foreign:
        raise ValueError(f"{checkpoints} already holds {foreign[:3]} but {run_dir} has no "
                         f"'latest' file, so they are not a run to continue; choose another run "
                         f"directory (nothing was changed)")


class Trainer:
    """Trains a Transformer on a flat token array; call :meth:`fit`.

    ``train_tokens`` is either a flat array, cut into random windows, or rows (N, seq_len + 1)
    of whole examples, each drawn from its start (fine-tuning on prompts and answers), with
    optional ``train_weights`` of the same shape: how much each target token counts in the
    loss (see :class:`~transformer_lib.data.tokens.RandomRows`).

    ``callbacks`` receive dict records: ``{"kind": "train", "step", "tokens", "elapsed_s",
    "loss", "lr"}`` every ``log_every`` steps and ``{"kind": "eval", "step", "tokens",
    "elapsed_s", "val_loss", "val_bpb"}`` at each evaluation. With ``run_dir`` the run is
    checkpointed there (rank 0 only) and ``resume=True`` continues its latest checkpoint.

    Between log steps a step never waits for the device: token ids are checked on the host
    before the copy, and losses stay on the device until the next log, evaluation or save step,
    which reads them at once and raises :class:`TrainingDiverged` at the first non-finite one
    (before anything is saved, so the last checkpoint is a good one; the weights in memory then
    include the steps after the divergence).
    """

    def __init__(self, model: Transformer, train_tokens: np.ndarray, val_tokens: np.ndarray,
                 config: TrainConfig, byte_lengths: np.ndarray, *,
                 train_weights: np.ndarray | None = None,
                 run_dir: str | Path | None = None, tokenizer_file: str | Path | None = None,
                 callbacks: Sequence[Callable[[dict], None]] = (), progress: bool = True,
                 log: Callable[[str], None] | None = tqdm.write, extra_meta: dict | None = None,
                 after_eot: AfterSeparator | None = None):
        self.config = config
        self.rank, self.world = rank_and_world()
        check_fits(config, model.config, self.world)
        train_tokens = as_token_array("train_tokens", train_tokens)
        val_tokens = as_token_array("val_tokens", val_tokens)
        if train_weights is not None and isinstance(train_weights, torch.Tensor):
            train_weights = train_weights.detach().cpu().numpy()
        # Checked now, not at the final evaluation: a bad validation set found there would
        # cost the whole run, since the final checkpoint is written after it.
        byte_lengths = check_validation_set(val_tokens, byte_lengths, model.config.vocab_size)
        self.device = pick_device(config.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.precision = pick_precision(self.device, config.precision)
        self.model = model.to(self.device)
        self.train_tokens, self.val_tokens = train_tokens, val_tokens
        self.byte_lengths, self.after_eot = byte_lengths, after_eot
        self.run_dir = Path(run_dir) if run_dir is not None else None
        check_run_dir(self.run_dir)
        # A run directory that already holds a run is only ever continued (see resume): a
        # fresh start there would prune that run's checkpoints and append to its log.
        self._holds_another_run = self.run_dir is not None and (self.run_dir / "latest").exists()
        self.tokenizer_file = tokenizer_file
        self.callbacks = list(callbacks)
        self.progress = progress and self.rank == 0
        self.log = log if self.rank == 0 else None
        self.extra_meta = dict(extra_meta or {})
        fixed = sorted(set(self.extra_meta) & {*ckpt.RESERVED_META, *TRAINER_META})
        if fixed:
            raise ValueError(f"extra_meta may not set {fixed}: the trainer writes those keys")
        # Batches are drawn on the host: each rank checks and copies only its own rows.
        if train_tokens.ndim == 2:  # whole examples, each from its start (data.tokens.RandomRows)
            if train_tokens.shape[1] != config.seq_len + 1:
                raise ValueError(f"train_tokens rows have {train_tokens.shape[1]} tokens; "
                                 f"seq_len={config.seq_len} needs seq_len + 1 = "
                                 f"{config.seq_len + 1} (inputs and the shifted targets)")
            self.sampler = RandomRows(train_tokens, config.batch_size, weights=train_weights,
                                      seed=config.seed)
        elif train_weights is not None:
            raise ValueError("train_weights need train_tokens as rows (N, seq_len + 1): "
                             "random windows of a flat array cut examples anywhere")
        else:
            self.sampler = RandomWindows(train_tokens, config.batch_size, config.seq_len,
                                         seed=config.seed)
        self.optimizer = make_optimizer(self.model, config, self.device)
        self.step = 0
        self.elapsed_before = 0.0  # seconds trained before a resume
        # The fraction of the run done when warm-up ended: where the decay starts (W / T).
        self.warmup_progress: float | None = 0.0 if config.warmup_steps == 0 else None
        self.history: list[dict] = []
        # Losses of the steps since the last check, as device scalars: reading each step's loss
        # would make the host wait for the device every step. They are read at log steps.
        self._unread_losses: list[tuple[int, torch.Tensor]] = []
        self._forward = self._build_forward()

    # ---- set-up -----------------------------------------------------------------------------

    def _build_forward(self):
        module: torch.nn.Module = self.model
        if self.config.compile:
            module = torch.compile(module)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            module = DistributedDataParallel(
                module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return module

    def _fall_back_to_eager(self, err: Exception) -> None:
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                      f"training without compilation", stacklevel=2)
        self.config = dataclasses.replace(self.config, compile=False)
        self._forward = self._build_forward()

    def resume(self, checkpoint_dir: str | Path) -> None:
        """Restore weights, optimizer, RNG and data position from a checkpoint."""
        checkpoint_dir = ckpt.resolve_checkpoint(checkpoint_dir)
        model, meta = ckpt.load_model_from_checkpoint(checkpoint_dir)
        if model.config != self.model.config:
            raise ckpt.CheckpointError(f"{checkpoint_dir} holds a model of another shape: "
                                       f"{model.config} vs {self.model.config}")
        state = ckpt.load_training_state(checkpoint_dir)
        with torch.no_grad():
            for target, source in zip(self.model.parameters(), model.parameters(), strict=True):
                target.copy_(source)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.sampler.load_state_dict(state["sampler"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise ckpt.CheckpointError(f"{checkpoint_dir / ckpt.STATE} does not match this run: "
                                       f"{err}") from err
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step = int(state["step"])
        self.elapsed_before = float(state["elapsed_s"])
        self.warmup_progress = state.get("warmup_progress", self.warmup_progress)
        if self.warmup_progress is None and self.step >= self.config.warmup_steps:
            # A checkpoint from before the fraction was saved: assume an even pace so far.
            self.warmup_progress = (self._progress_fraction(self.elapsed_before)
                                    * self.config.warmup_steps / self.step)
        self.history = list(meta.get("history", []))
        if self.run_dir is not None and checkpoint_dir.parent.parent.resolve() == \
                self.run_dir.resolve():
            self._holds_another_run = False  # its own run, continued
        if self.run_dir is not None and self.rank == 0:
            # Steps after the checkpoint were logged by the lost run and will be logged again:
            # the log restarts from the restored history, replaced in one atomic write.
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.run_dir / LOG,
                                  "".join(json.dumps(record) + "\n" for record in self.history))

    # ---- the loop ---------------------------------------------------------------------------

    def _progress_fraction(self, elapsed: float) -> float:
        fractions = []
        if self.config.max_steps is not None:
            fractions.append(self.step / self.config.max_steps)
        if self.config.max_minutes is not None:
            fractions.append(elapsed / (60.0 * self.config.max_minutes))
        fraction = max(fractions)
        if self.world > 1 and self.config.max_minutes is not None:
            # Every rank follows rank 0's clock, so all stop at the same step. (A step budget is
            # the same on every rank: no collective, no device read.)
            fraction = all_reduce([fraction if self.rank == 0 else 0.0], self.device)[0]
        return fraction

    def _local_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor,
                                                tuple[torch.Tensor, float] | None]:
        """This rank's share of global batch ``step``, ids checked on the host, on the device:
        x, y and, with weighted rows, (this share's target weights, the global batch's total).

        The global batch is drawn on the host (every rank draws the same one); each rank then
        copies only its own rows, so the copy shrinks with the number of processes.
        """
        windows = self.sampler.windows_at(step)  # the global batch, (B, T + 1)
        windows = rank_rows(windows, self.rank, self.world)  # (B / world, T + 1)
        # Checked here, on the host, so the forward pass needs no device read to check them.
        check_token_ids(windows, self.model.config.vocab_size)
        x = ids_to_device(windows[:, :-1], self.device)
        y = ids_to_device(windows[:, 1:], self.device)
        weights = self.sampler.weights_at(step)  # (B, T) or None
        if weights is None:
            return x, y, None
        total = float(weights.sum())  # known on the host: no device read
        local = rank_rows(weights, self.rank, self.world)  # (B / world, T)
        return x, y, (torch.from_numpy(local).to(self.device), total)

    def _train_step(self, lr: float) -> torch.Tensor:
        """One optimizer step; returns its mean loss as a device scalar (not read: no sync)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y, weighted = self._local_batch(self.step)  # (B / world, T) each
        micro = x.shape[0] // self.config.grad_accum
        total = None
        for i in range(self.config.grad_accum):
            part = slice(i * micro, (i + 1) * micro)
            last = i == self.config.grad_accum - 1
            sync = self._forward.no_sync() if self.world > 1 and not last else nullcontext()
            with sync, self.precision.autocast(self.device):
                logits = self._forward(x[part], check_ids=False)
                if weighted is None:
                    loss = training_loss(logits, y[part], self.config.z_loss)
                else:
                    # Divided by the global batch's weight over (processes x micro-batches):
                    # after the division by grad_accum below and DDP's average over
                    # processes, the shares add up to the batch's weighted mean.
                    weights, total_weight = weighted
                    loss = training_loss(
                        logits, y[part], self.config.z_loss, weights[part],
                        total_weight / (self.world * self.config.grad_accum))
            (loss / self.config.grad_accum).backward()
            share = loss.detach() / self.config.grad_accum
            total = share if total is None else total + share  # accumulated on the device
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.sampler.step = self.step + 1
        self.step += 1
        return total

    def _read_losses(self, lr: float) -> float | None:
        """Read the losses of the steps since the last read (one device read), averaged over
        processes; raise TrainingDiverged at the first that is not finite. Returns the latest
        step's loss, or None when no step ran since the last read."""
        if not self._unread_losses:
            return None
        steps = [step for step, _ in self._unread_losses]
        losses = sum_over_processes(torch.stack([loss for _, loss in self._unread_losses]))
        values = (losses / self.world).tolist()  # the one device-to-host read
        self._unread_losses.clear()
        for step, value in zip(steps, values, strict=True):
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"loss became {value} at step {step}; stopping without saving, so the last "
                    f"good checkpoint stays. Lower the learning rate (now {lr:g}) or use fp32")
        return values[-1]

    def evaluate(self, max_windows: int | None = None) -> dict:
        """Validation loss and bits per byte (every token, or the first max_windows windows)."""
        return evaluate_tokens(self.model, self.val_tokens, self.byte_lengths,
                               self.config.seq_len, self.config.batch_size, self.device,
                               self.precision, max_windows, after_eot=self.after_eot)

    def _emit(self, record: dict) -> None:
        self.history.append(record)
        if self.rank == 0:
            for callback in self.callbacks:
                callback(record)
            if self.run_dir is not None:
                with open(self.run_dir / LOG, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")

    def save(self, elapsed: float) -> Path | None:
        if self.run_dir is None or self.rank != 0:
            return None
        state = {"optimizer": self.optimizer.state_dict(), "sampler": self.sampler.state_dict(),
                 "torch_rng": torch.get_rng_state(), "step": self.step, "elapsed_s": elapsed,
                 "warmup_progress": self.warmup_progress}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        meta = {**self.extra_meta, "train_config": self.config.to_dict(), "history": self.history,
                "tokens_seen": self.step * self.config.batch_size * self.config.seq_len,
                "tokenizer": ckpt.TOKENIZER if self.tokenizer_file else None}
        return ckpt.save_checkpoint(self.run_dir, self.model, self.step, meta, state,
                                    self.tokenizer_file)

    def fit(self) -> list[dict]:
        """Train until the step or time budget is spent; return the history of records."""
        config = self.config
        if self._holds_another_run:
            raise ValueError(f"{self.run_dir} already holds a run: call resume({self.run_dir}) "
                             f"to continue it, or choose another run_dir (nothing was changed)")
        if self.run_dir is not None and self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.step == 0:  # records of an attempt killed before its first checkpoint
                (self.run_dir / LOG).unlink(missing_ok=True)
        if self.step > 0 and self._progress_fraction(self.elapsed_before) >= 1.0:
            return self.history  # a finished run, resumed: already evaluated and saved
        if self.step == 0:
            torch.manual_seed(config.seed)  # dropout; resumes restore the RNG state instead
        tokens_per_step = config.batch_size * config.seq_len
        start = time.perf_counter() - self.elapsed_before
        elapsed = self.elapsed_before
        bar = tqdm(total=config.max_steps, initial=self.step, desc="train", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        window_start, window_steps = time.perf_counter(), 0
        self.model.train()
        # Once per step: under torchrun each evaluation is an all-reduce of rank 0's clock.
        progress = self._progress_fraction(elapsed)
        lr, loss = config.lr, None
        try:
            while progress < 1.0:
                if self.step == config.warmup_steps and self.warmup_progress is None:
                    self.warmup_progress = progress
                lr = learning_rate(config, self.step, progress, self.warmup_progress)
                try:
                    step_loss = self._train_step(lr)
                except Exception as err:  # compilation errors surface at the first call
                    if not config.compile or self.step > 0:
                        raise
                    self._fall_back_to_eager(err)
                    config = self.config
                    step_loss = self._train_step(lr)
                self._unread_losses.append((self.step, step_loss))
                elapsed = time.perf_counter() - start
                progress = self._progress_fraction(elapsed)
                window_steps += 1
                bar.update(1)
                if config.max_steps is None:  # time budget: let the bar show the projected end
                    bar.total = max(self.step, int(self.step / max(progress, 1e-9)))
                done = progress >= 1.0
                evaluate = self.step % config.eval_every == 0 and not done
                save = bool(config.save_every) and self.step % config.save_every == 0 and not done
                if self.step % config.log_every == 0 or evaluate or save:
                    # The only device read between steps: losses checked before anything is
                    # logged, evaluated or saved, so a diverged run never overwrites a checkpoint.
                    loss = self._read_losses(lr)
                    rate = window_steps * tokens_per_step / max(
                        time.perf_counter() - window_start, 1e-9)
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
                if self.step % config.log_every == 0:
                    self._emit({"kind": "train", "step": self.step,
                                "tokens": self.step * tokens_per_step, "elapsed_s": elapsed,
                                "loss": loss, "lr": lr})
                    window_start, window_steps = time.perf_counter(), 0
                if evaluate:
                    self._evaluate_and_log(config.eval_windows, elapsed)
                if save:
                    self.save(elapsed)
        finally:
            bar.close()
        self._read_losses(lr)  # the steps since the last log: a diverged end is not saved
        try:
            self._evaluate_and_log(None, elapsed)
        finally:  # the trained weights are kept even if the final evaluation fails
            self.save(elapsed)
        for callback in self.callbacks if self.rank == 0 else ():
            if hasattr(callback, "close"):  # e.g. a LiveDashboard draws its final state
                callback.close()
        return self.history

    def _evaluate_and_log(self, max_windows: int | None, elapsed: float) -> None:
        result = self.evaluate(max_windows)
        self._emit({"kind": "eval", "step": self.step,
                    "tokens": self.step * self.config.batch_size * self.config.seq_len,
                    "elapsed_s": elapsed, "val_loss": result["loss"],
                    "val_bpb": result["bits_per_byte"], "val_tokens": result["tokens"]})
        if self.log is not None:
            scope = "all" if max_windows is None else f"{result['tokens']:,}"
            self.log(f"step {self.step}: val loss {result['loss']:.4f}, "
                     f"{result['bits_per_byte']:.4f} bits/byte ({scope} tokens), "
                     f"{elapsed / 60:.1f} min")
