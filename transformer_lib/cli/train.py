"""tlib-train: train on TinyStories from the command line (or torchrun)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ..device import cpu_has_native_bf16, keep_freed_cpu_memory, pick_device, pick_precision
from ..model.config import PRESETS, ModelConfig
from ..model.lora import TARGETS, LoRAConfig, add_lora, trainable_parameters
from ..model.transformer import INIT_STD, Transformer
from ..training import checkpoint as ckpt
from ..training.metrics import byte_lengths_after_eot
from ..training.trainer import (
    CLI_RECIPE,
    NEW_MODEL_ONLY,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    check_fits,
    check_run_dir,
    token_byte_lengths,
)
from . import positive_float

# The model and tokenizer the command trains by default (tuned with trainer.CLI_RECIPE, which
# holds the training defaults that differ from TrainConfig's, and why).
DEFAULT_PRESET = "tinystories-cpu"
DEFAULT_VOCAB_SIZE = PRESETS[DEFAULT_PRESET]["vocab_size"]  # the BPE the preset expects
# Chapter 12's value options, off unless asked for: at the command's 1,300 float32 steps they
# measured lower on average but not beyond the seeds' spread, and no lower in five bf16 minutes
# (benchmarks/RESULTS.md). Neither is Llama's, so a model with them converts to no other format.
VALUE_OPTIONS = {"value_embeddings": "a learned vector per token added to each layer's values",
                 "value_residual": "each layer's values averaged with the first layer's"}


def requested_vocab_size(args) -> int:
    """The BPE vocabulary a new run trains: --vocab-size, or the default preset's
    (DEFAULT_VOCAB_SIZE, whatever --preset says: the model takes its vocabulary from the
    tokenizer). The flag's default is None, so that --resume and --init-from can tell a given
    size from the default."""
    return DEFAULT_VOCAB_SIZE if args.vocab_size is None else args.vocab_size


def prepare_tokenizer(run_dir: Path, data, tokenizer_arg: str | None, vocab_size: int,
                      is_main: bool, new_run: bool = True):
    """The run's tokenizer file: given, already in the run directory, or trained on ``data``.

    A new run finds one in the run directory only after an attempt killed before its first
    checkpoint; it is kept if it is the tokenizer the flags ask for, and refused otherwise."""
    from ..data.stories import load_stories
    from ..data.tokenizer import load_tokenizer, train_tokenizer

    path = run_dir / ckpt.TOKENIZER
    if is_main and path.exists() and new_run:
        # left by an attempt killed before its first checkpoint: reused only if it is the same
        kept = load_tokenizer(path)
        if tokenizer_arg is not None:
            if kept.content_hash != load_tokenizer(tokenizer_arg).content_hash:
                raise SystemExit(f"error: {path} (from an earlier attempt at this run) differs "
                                 f"from --tokenizer {tokenizer_arg}; choose another --out, or drop "
                                 f"--tokenizer to keep it")
        elif kept.vocab_size != vocab_size:
            raise SystemExit(f"error: {path} (from an earlier attempt at this run) has "
                             f"{kept.vocab_size} ids but this run asks for {vocab_size} "
                             f"(--vocab-size); choose another --out, or pass --vocab-size "
                             f"{kept.vocab_size}")
    if is_main and not path.exists():
        if tokenizer_arg is not None:
            load_tokenizer(tokenizer_arg).save(path)
        else:
            stories = load_stories("train", source=data)
            train_tokenizer(stories["text"], vocab_size, name=f"bpe-{vocab_size}").save(path)
    _barrier()
    return load_tokenizer(path), path


def prepare_tokens(data, tokenizer, cache_dir, is_main: bool):
    """Token caches of the train and validation splits (rank 0 builds, the others reuse)."""
    from ..data.tokens import cache_split

    caches = {}
    for turn in (True, False):  # rank 0 first, then everybody else opens what it built
        if is_main == turn:
            for split in ("train", "validation"):
                caches[split] = cache_split(split, tokenizer, source=data, cache_dir=cache_dir,
                                            progress=is_main)
        _barrier()
    return caches["train"], caches["validation"]


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _init_distributed() -> tuple[int, int]:
    """Join the process group that torchrun describes in the environment; (rank, world)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return dist.get_rank(), world


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where the help text does not already say what applies and
    the default says something: None means "decided later" (by CLI_RECIPE, the model or a
    resumed run), and False is a switch left off."""

    def _get_help_string(self, action):
        # identity, not ==: a default of 0 or 0.0 equals False and must still be shown
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlib-train",
        description="Train a Llama-style model on TinyStories. With only --data and --out it "
                    "trains a vocab-2048 BPE and the 'tinystories-cpu' model for 5 minutes. "
                    "Runs under torchrun --nproc_per_node=N for data-parallel training.",
        formatter_class=_HelpFormatter)
    parser.add_argument("--data", default=None,
                        help="TinyStories source: a directory with train/validation files, "
                             "(default: $TINYSTORIES_PATH, else the Hugging Face hub)")
    parser.add_argument("--out", required=True, help="run directory for checkpoints and logs")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help="model shape")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its latest checkpoint (starts "
                             "fresh if it has none)")
    tune = parser.add_argument_group("fine-tuning (start from trained weights, same trainer)")
    tune.add_argument("--init-from", default=None,
                      help="a checkpoint or run directory (its tokenizer is used), or a "
                           "llama2.c .bin model (give --tokenizer)")
    tune.add_argument("--lora-rank", type=int, default=None,
                      help="train LoRA adapters of this rank instead of every weight")
    tune.add_argument("--lora-alpha", type=float, default=None,
                      help="LoRA scale numerator (default: 2 x rank)")
    tune.add_argument("--lora-dropout", type=float, default=0.0,
                      help="dropout on the adapters' input, in training only")
    tune.add_argument("--lora-targets", default="q,v",
                      help=f"comma-separated projections among {','.join(TARGETS)}")
    stop = parser.add_argument_group("when to stop (the schedule ends where the run does)")
    stop.add_argument("--max-steps", type=int, default=None)
    stop.add_argument("--max-minutes", type=float, default=None,
                      help=f"wall-clock budget; {CLI_RECIPE['max_minutes']:g} if no stop is "
                           f"given")
    model = parser.add_argument_group("model overrides (default: the preset's)")
    for flag in ("d-model", "num-layers", "num-heads", "num-kv-heads", "ffn-hidden-dim",
                 "max-seq-len"):
        model.add_argument(f"--{flag}", type=int, default=None)
    model.add_argument("--dropout", type=float, default=None)
    model.add_argument("--untied", action="store_true", help="separate output head")
    model.add_argument("--qk-norm", action="store_true",
                       help="RMSNorm on each head's queries and keys (chapter 12)")
    model.add_argument("--zero-init-output", action="store_true",
                       help="o_proj and down_proj start at zero (chapter 12)")
    model.add_argument("--init-std", type=positive_float, default=None,
                       help="standard deviation of a new model's initial weights (default "
                            "0.02, GPT-2's; benchmarks/RESULTS.md measures 0.01)")
    for name, what in VALUE_OPTIONS.items():
        model.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                           default=None, help=f"{what} (chapter 12; default off)")
    tok = parser.add_argument_group("tokens")
    tok.add_argument("--tokenizer", default=None,
                     help="tokenizer file or 'gpt2' (default: train a BPE on the train split)")
    tok.add_argument("--vocab-size", type=int, default=None,
                     help="vocabulary of the BPE trained when --tokenizer is not given "
                          f"(default {DEFAULT_VOCAB_SIZE})")
    tok.add_argument("--cache-dir", default=None,
                     help="token cache directory (default ~/.cache/transformer_lib/tokens)")
    opt = parser.add_argument_group("optimisation (defaults: TrainConfig's, except weight "
                                    "decay, optimizer, batch size and schedule: see "
                                    "trainer.CLI_RECIPE)")
    defaults = TrainConfig(max_steps=1)
    for field in ("batch_size", "seq_len", "grad_accum", "lr", "min_lr_ratio", "warmup_steps",
                  "weight_decay", "grad_clip", "eval_every", "eval_windows", "save_every",
                  "log_every", "seed"):
        value = CLI_RECIPE.get(field, getattr(defaults, field))
        kind = float if isinstance(value, float) else int
        help_text = {"batch_size": f"global sequences per optimizer step (default {value} for a "
                                   f"new model, {defaults.batch_size} with --init-from; on a "
                                   f"GPU pass more)",
                     "seq_len": f"tokens per training window (default: the smaller of {value} "
                                f"and the model's max_seq_len)"}.get(field, f"default {value}")
        opt.add_argument(f"--{field.replace('_', '-')}", type=kind, default=None, help=help_text)
    opt.add_argument("--optimizer", default=None, choices=["adamw", "muon"],
                     help="muon: Muon (training.muon) for the blocks' matrices, AdamW for the rest "
                          f"(default: {CLI_RECIPE['optimizer']} for a new model, "
                          f"{defaults.optimizer} with --init-from; chapter 12)")
    opt.add_argument("--schedule", default=None, choices=["cosine", "wsd"],
                     help="wsd: warm-up, stable at the peak, then a linear decay over the last "
                          f"--decay-fraction (default: {CLI_RECIPE['schedule']} for a new model, "
                          f"{defaults.schedule} with --init-from)")
    opt.add_argument("--decay-fraction", type=float, default=None,
                     help=f"the share of the run the wsd schedule spends decaying (default "
                          f"{defaults.decay_fraction})")
    opt.add_argument("--z-loss", type=float, default=None, help="default 0")
    run = parser.add_argument_group("hardware")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    run.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                     help="auto: bf16 autocast on CUDA, and on a CPU with bf16 in hardware "
                          "(AMX, AVX-512 BF16), where it measured better per minute; fp32 on "
                          "other CPUs (emulated bf16 is many times slower) and on Apple MPS")
    run.add_argument("--compile", action="store_true", help="torch.compile the model")
    run.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def train_config_from_args(args, saved: dict | None = None, device_type: str = "cpu",
                           max_seq_len: int | None = None) -> TrainConfig:
    """TrainConfig from the saved run (when resuming), overridden by flags given explicitly.

    A new run starts from TrainConfig's defaults and ``CLI_RECIPE`` (a fine-tuning run keeps
    TrainConfig's optimizer, batch size and schedule, ``NEW_MODEL_ONLY``, unless flags say
    otherwise); its training window is the
    smaller of the default seq_len and the model's ``max_seq_len`` unless --seq-len is given.
    """
    values = dict(saved or {})
    for field in dataclasses.fields(TrainConfig):
        value = getattr(args, field.name, None)
        if value is not None and field.name not in ("compile", "precision", "device"):
            values[field.name] = value
    values["device"] = args.device
    if args.precision != "auto":
        values["precision"] = args.precision
    elif saved is None:  # a resumed run keeps the precision it started with
        if device_type != "cpu":
            values["precision"] = "auto"
        else:  # bf16 only where the CPU computes it in hardware: emulated, it is slow
            values["precision"] = CLI_RECIPE["cpu_precision"] if cpu_has_native_bf16() else "fp32"
    if saved is None:  # a resumed run keeps what it started with
        fine_tuning = getattr(args, "init_from", None) is not None
        for name in ("weight_decay", *NEW_MODEL_ONLY):
            if getattr(args, name, None) is None and not (fine_tuning and name in NEW_MODEL_ONLY):
                values[name] = CLI_RECIPE[name]
        if getattr(args, "seq_len", None) is None and max_seq_len is not None:
            values["seq_len"] = min(TrainConfig.seq_len, max_seq_len)
    values["compile"] = args.compile or values.get("compile", False)
    if values.get("max_steps") is None and values.get("max_minutes") is None:
        values["max_minutes"] = CLI_RECIPE["max_minutes"]
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as err:  # a bad flag value: say which, with no traceback
        raise SystemExit(f"error: {err}") from err


def model_config_from_args(args, vocab_size: int) -> ModelConfig:
    overrides = {"vocab_size": vocab_size}
    for name in ("d_model", "num_layers", "num_heads", "num_kv_heads", "ffn_hidden_dim",
                 "max_seq_len", "dropout"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.untied:
        overrides["tie_embeddings"] = False
    if args.qk_norm:
        overrides["qk_norm"] = True
    if args.zero_init_output:
        overrides["zero_init_output"] = True
    for name in VALUE_OPTIONS:
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return ModelConfig.from_preset(args.preset, **overrides)


MODEL_FLAGS = ("d_model", "num_layers", "num_heads", "num_kv_heads", "ffn_hidden_dim",
               "max_seq_len", "dropout")


def load_init(path: str):
    """(model, tokenizer file or None) of --init-from: a checkpoint/run dir or a llama2.c file."""
    source = Path(path)
    if source.is_dir():
        model, _ = ckpt.load_model_from_checkpoint(source)
        if getattr(model, "lora_config", None) is not None:
            raise SystemExit(f"error: {path} is a LoRA run; fine-tune from a plain model (save "
                             f"merged_copy(model)) or --resume that run")
        tokenizer_file = ckpt.resolve_checkpoint(source) / ckpt.TOKENIZER
        return model, tokenizer_file if tokenizer_file.is_file() else None
    if source.is_file():
        from ..interop.llama2c import from_llama2c

        return from_llama2c(source), None
    raise SystemExit(f"error: --init-from {path}: no such checkpoint directory or llama2.c file")


def check_init_matches(args, init_model, tokenizer, init_tokenizer_file) -> None:
    """Refuse a model-shape flag that contradicts the initial model, or another tokenizer."""
    config = init_model.config
    wrong = [f"--{name.replace('_', '-')} {getattr(args, name)} (the model has "
             f"{getattr(config, name)})" for name in MODEL_FLAGS + ("vocab_size",)
             if getattr(args, name) is not None and getattr(args, name) != getattr(config, name)]
    for flag in ("zero_init_output", "init_std"):
        if getattr(args, flag, None) not in (None, False):
            raise SystemExit(f"error: --{flag.replace('_', '-')} sets how a new model starts; a "
                             f"model from --init-from already has its weights: drop the flag")
    if getattr(args, "qk_norm", False) and not config.qk_norm:
        wrong.append("--qk-norm (the model has no query/key norms)")
    for name in VALUE_OPTIONS:
        asked = getattr(args, name, None)
        if asked is not None and asked != getattr(config, name):
            flag = ("--" if asked else "--no-") + name.replace("_", "-")
            wrong.append(f"{flag} (the model has {name}={getattr(config, name)})")
    if wrong or args.untied and config.tie_embeddings:
        raise SystemExit(f"error: shape mismatch with --init-from {args.init_from}: "
                         f"{', '.join(wrong) or '--untied'}; drop those flags to keep its shape")
    if tokenizer.vocab_size != config.vocab_size:
        raise SystemExit(f"error: tokenizer mismatch: the tokenizer has {tokenizer.vocab_size} "
                         f"ids but the model of --init-from {args.init_from} has vocab_size "
                         f"{config.vocab_size}; use the tokenizer the model was trained with")
    if init_tokenizer_file is not None:
        from ..data.tokenizer import load_tokenizer

        own = load_tokenizer(init_tokenizer_file)
        if getattr(own, "content_hash", None) != getattr(tokenizer, "content_hash", None):
            raise SystemExit(f"error: tokenizer mismatch: {init_tokenizer_file} (the model's) "
                             f"differs from --tokenizer {args.tokenizer}; drop --tokenizer")


def lora_config_from_args(args) -> LoRAConfig | None:
    if args.lora_rank is None:
        return None
    try:
        return LoRAConfig(rank=args.lora_rank,
                          alpha=args.lora_alpha if args.lora_alpha is not None
                          else 2.0 * args.lora_rank,
                          dropout=args.lora_dropout,
                          targets=tuple(t.strip() for t in args.lora_targets.split(",")))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err


def resume_conflicts(args, meta: dict, checkpoint_dir: Path) -> list[str]:
    """The flags given that contradict the saved run: --resume keeps its model, its starting
    weights, its tokenizer and its adapters (the same flags again are fine)."""
    config, wrong = meta.get("model_config", {}), []
    started_from = meta.get("init_from")
    if args.init_from is not None and not _same_path(args.init_from, started_from):
        wrong.append(f"--init-from {args.init_from} (the run started from "
                     f"{started_from or 'a new model'})")
    wrong += [f"--{name.replace('_', '-')} {getattr(args, name)} (the run has "
              f"{config.get(name)})" for name in MODEL_FLAGS + ("vocab_size",)
              if getattr(args, name) is not None and getattr(args, name) != config.get(name)]
    flags = {"untied": not config.get("tie_embeddings", True), "qk_norm": config.get("qk_norm"),
             "zero_init_output": config.get("zero_init_output")}
    wrong += [f"--{name.replace('_', '-')} (the run has {name}={value})"
              for name, value in flags.items() if getattr(args, name) and not value]
    for name in VALUE_OPTIONS:
        asked = getattr(args, name, None)
        if asked is not None and asked != config.get(name, False):
            wrong.append(("--" if asked else "--no-") + name.replace("_", "-")
                         + f" (the run has {name}={config.get(name, False)})")
    started_with = meta.get("init_std", INIT_STD)
    if args.init_std is not None and args.init_std != started_with:
        wrong.append(f"--init-std {args.init_std:g} (the run started with {started_with:g})")
    if args.lora_rank is not None:
        asked = lora_config_from_args(args).to_dict()
        if asked != meta.get("lora"):
            wrong.append(f"--lora-rank {args.lora_rank} and its options (the run has "
                         f"{meta.get('lora') or 'no adapters'})")
    if args.tokenizer is not None:
        from ..data.tokenizer import load_tokenizer

        kept = load_tokenizer(checkpoint_dir / ckpt.TOKENIZER)
        if load_tokenizer(args.tokenizer).content_hash != kept.content_hash:
            wrong.append(f"--tokenizer {args.tokenizer} (the run has its own, "
                         f"{kept.name})")
    return wrong


def _same_path(given: str, recorded: str | None) -> bool:
    """Whether two spellings name one file (the run may have recorded a relative path)."""
    return recorded is not None and (str(given) == recorded
                                     or Path(given).resolve() == Path(recorded).resolve())


def check_new_run_flags(args, device_type: str, world: int) -> None:
    """Build the model and training configs a new run's flags ask for, and check that they fit
    together, before any folder is made or data is read (the tokenizer may take minutes)."""
    from ..data.tokenizer import check_vocab_size, load_tokenizer

    if args.tokenizer is not None and args.vocab_size is not None:
        given = load_tokenizer(args.tokenizer).vocab_size
        if given != args.vocab_size:
            raise SystemExit(f"error: --tokenizer {args.tokenizer} has {given} ids but "
                             f"--vocab-size is {args.vocab_size} (the size of the BPE a run "
                             f"trains without --tokenizer): drop --vocab-size")
    vocab_size = requested_vocab_size(args)
    if args.tokenizer is None and args.init_from is None:
        check_vocab_size(vocab_size)
    if args.init_from is not None:
        return  # the shape comes from the initial model; check_init_matches checks the flags
    model_config = model_config_from_args(args, vocab_size)
    train_config = train_config_from_args(args, None, device_type, model_config.max_seq_len)
    check_fits(train_config, model_config, world)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return train_from_args(args)
    except KeyboardInterrupt:
        print("interrupted: any checkpoint already saved is kept; continue with --resume",
              file=sys.stderr)
        return 130


def train_from_args(args) -> int:
    keep_freed_cpu_memory()  # no page faults for reused activations on CPU
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"error: --threads {args.threads}: give 1 or more CPU threads")
        torch.set_num_threads(args.threads)
    if not args.out:
        raise SystemExit("error: --out is empty; name the run directory")
    run_dir = Path(args.out)
    try:  # a bad device or precision fails now, not after the data is tokenized
        device = pick_device(args.device)
        pick_precision(device, args.precision)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    rank, world = _init_distributed()
    is_main = rank == 0
    try:
        setup = _prepare_run(args, run_dir, device, world, is_main)
    except (ValueError, OSError, ConnectionError) as err:  # bad input, before any step
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        raise SystemExit(f"error: {err}") from err
    try:
        return _fit(setup, run_dir, is_main)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _prepare_run(args, run_dir: Path, device, world: int, is_main: bool):
    """Everything before the first step: checks, tokenizer, token caches, model and trainer."""
    check_run_dir(run_dir)
    saved_checkpoint = None
    if (run_dir / "latest").exists():
        if not args.resume:
            raise SystemExit(f"error: {run_dir} already holds a run; pass --resume to "
                             f"continue it, or choose another --out (nothing was changed)")
        saved_checkpoint = ckpt.resolve_checkpoint(run_dir)
        saved_meta = ckpt.read_meta(saved_checkpoint)
        missing = [key for key in ("model_config", "train_config") if key not in saved_meta]
        if missing:
            raise ckpt.CheckpointError(f"{saved_checkpoint / ckpt.META} has no {missing}: the "
                                       f"checkpoint is damaged and cannot be resumed")
        conflicts = resume_conflicts(args, saved_meta, saved_checkpoint)
        if conflicts:
            raise SystemExit(f"error: --resume continues {run_dir} as it was saved, but "
                             f"{'; '.join(conflicts)}: drop those flags, or start a new run in "
                             f"another --out")
    else:
        if args.resume and is_main:
            print(f"no checkpoint in {run_dir} yet: starting a new run", file=sys.stderr)
        check_new_run_flags(args, device.type, world)
    lora_config = lora_config_from_args(args)
    if lora_config is not None and args.init_from is None and saved_checkpoint is None:
        raise SystemExit("error: --lora-rank adapts a trained model: give --init-from")
    init_model, init_tokenizer_file = None, None
    if args.init_from is not None and saved_checkpoint is None:
        init_model, init_tokenizer_file = load_init(args.init_from)
    tokenizer_arg = args.tokenizer
    if tokenizer_arg is None and init_tokenizer_file is not None:
        tokenizer_arg = str(init_tokenizer_file)
    if init_model is not None:  # checked before the run directory is made
        if tokenizer_arg is None:
            raise SystemExit(f"error: --init-from {args.init_from} has no tokenizer: give the "
                             f"one it was trained with as --tokenizer")
        from ..data.tokenizer import load_tokenizer

        check_init_matches(args, init_model, load_tokenizer(tokenizer_arg), init_tokenizer_file)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer, tokenizer_file = prepare_tokenizer(run_dir, args.data, tokenizer_arg,
                                                  requested_vocab_size(args), is_main,
                                                  new_run=saved_checkpoint is None)
    train_cache, val_cache = prepare_tokens(args.data, tokenizer, args.cache_dir, is_main)
    saved_lora, init_meta = None, {}
    if saved_checkpoint is not None:
        model_config = ModelConfig.from_dict(saved_meta["model_config"])
        train_config = train_config_from_args(args, saved_meta["train_config"], device.type)
        saved_lora = saved_meta.get("lora")
        # how the run started, recorded again in every checkpoint it writes
        init_meta = {key: saved_meta[key] for key in ("init_from", "init_std")
                     if saved_meta.get(key)}
    elif init_model is not None:
        model_config = init_model.config
        train_config = train_config_from_args(args, None, device.type,
                                              model_config.max_seq_len)
    else:
        model_config = model_config_from_args(args, tokenizer.vocab_size)
        train_config = train_config_from_args(args, None, device.type,
                                              model_config.max_seq_len)
    if model_config.vocab_size != tokenizer.vocab_size:
        raise SystemExit(f"error: the model's vocab_size {model_config.vocab_size} differs "
                         f"from the tokenizer's {tokenizer.vocab_size}")
    torch.manual_seed(train_config.seed)
    model = init_model if init_model is not None else Transformer(model_config)
    if saved_lora is not None:  # a LoRA run resumed: the checkpoint holds base + adapters
        add_lora(model, LoRAConfig.from_dict(saved_lora))
    elif lora_config is not None and saved_checkpoint is None:
        add_lora(model, lora_config)
    if init_model is not None:  # recorded only where those weights really were the start
        init_meta = {"init_from": str(args.init_from)}
    elif saved_checkpoint is None and args.init_std is not None:
        model.init_weights(std=args.init_std)  # a second draw from the seeded generator
        init_meta = {"init_std": args.init_std}
    trainer = Trainer(model, train_cache.tokens, val_cache.tokens, train_config,
                      token_byte_lengths(tokenizer), run_dir=run_dir,
                      tokenizer_file=tokenizer_file, progress=not args.no_progress,
                      after_eot=byte_lengths_after_eot(tokenizer),
                      extra_meta={"data": str(args.data or os.environ.get(
                          "TINYSTORIES_PATH", "hub")), "world_size": world, **init_meta})
    if saved_checkpoint is not None:
        trainer.resume(saved_checkpoint)
    if is_main:
        print(f"model: {model.num_parameters():,} parameters "
              f"({trainable_parameters(model):,} trainable), {model_config}; "
              f"training on {trainer.device} in {trainer.precision.name}, "
              f"{world} process(es); {train_cache.n_tokens:,} train tokens")
    return trainer


def _fit(trainer, run_dir: Path, is_main: bool) -> int:
    try:
        trainer.fit()
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if is_main:
        print(f"saved {ckpt.resolve_checkpoint(run_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
