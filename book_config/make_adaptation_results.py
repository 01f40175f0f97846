"""Make the stored results of chapter 13: full fine-tuning and LoRA on the words task.

Usage (about 3 minutes per run on 2 cores, 15 in all; run it on an otherwise idle machine)::

    TINYSTORIES_PATH=/path/to/the/extract python book_config/make_adaptation_results.py

From the stored model (``transformer_lib/assets/tinystories-1M``) it trains five adaptations
on the words task (``transformer_lib.data.tasks``) with the library's trainer, the same steps
and seed each:

- ``full_plain``: full fine-tuning on the headed stories as ordinary text (random windows), the
  first thing one would try;
- ``full_swaps``: full fine-tuning on whole headed stories, with two more copies whose header
  words were swapped in (``tasks.swapped_story``), the header left out of the loss;
- ``full``: the same with the header words' tokens in the story weighted 5 (``tasks.training_rows``):
  the chapter's recipe;
- ``lora_r1`` and ``lora_r8``: LoRA at two ranks on every projection, with that recipe.

For each, and for the base model, it records the task's score on the 200 held-out triples, the
trainable parameters, the training minutes, and bits per byte on the ordinary validation
stories (no headers) before and after. It writes ``transformer_lib/assets/adaptation/results.json``
and the two LoRA adapters (safetensors, a few hundred KB together), which chapter 13 loads.
Training runs in float32 so that the adapters load the same on every machine; the scores of
sampled stories still depend on the CPU's rounding, which is why they are stored, not recomputed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from transformer_lib import book
from transformer_lib.data import book_stories, tasks
from transformer_lib.device import cpu_name
from transformer_lib.model.lora import LoRAConfig, add_lora, save_adapter, trainable_parameters
from transformer_lib.training.trainer import (
    TrainConfig,
    Trainer,
    evaluate_tokens,
    token_byte_lengths,
)

OUT = Path(book.STORED_MODEL_DIR).parent / "adaptation"
STEPS = 300
TRAINING = dict(batch_size=8, seq_len=256, max_steps=STEPS, warmup_steps=20, weight_decay=0.0,
                eval_every=STEPS, eval_windows=32, log_every=50, seed=0, device="cpu",
                precision="fp32")
BPB_WINDOWS = 100
MAX_NEW_TOKENS = 240  # the model's 256 positions less the prompt (13 to 16 tokens)
SWAPPED_COPIES, WORD_WEIGHT = 2, 5.0
ALL_PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")
RUNS = {  # name -> (data, LoRA config or None for full fine-tuning, peak learning rate)
    "full_plain": ("plain", None, 1e-3),
    "full_swaps": ("swaps", None, 1e-3),
    "full": ("recipe", None, 1e-3),
    "lora_r1": ("recipe", LoRAConfig(rank=1, alpha=2.0, targets=ALL_PROJECTIONS), 1e-2),
    "lora_r8": ("recipe", LoRAConfig(rank=8, alpha=16.0, targets=ALL_PROJECTIONS), 1e-2),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--runs", nargs="*", default=list(RUNS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-base", action="store_true", help="do not score the base model")
    parser.add_argument("--output", default=str(OUT / "results.json"))
    parser.add_argument("--combine", nargs="*", default=None,
                        help="merge partial results files (of runs made in parallel) into "
                             "--output, then stop")
    args = parser.parse_args(argv)
    if args.combine:
        combined: dict = {"runs": {}}
        for part in args.combine:
            data = json.loads(Path(part).read_text(encoding="utf-8"))
            combined["runs"].update(data["runs"])
            combined["triples"], combined["meta"] = data["triples"], data["meta"]
        order = ["base_header", "base_plain", *RUNS]
        combined["runs"] = {name: combined["runs"][name] for name in order
                            if name in combined["runs"]}
        Path(args.output).write_text(json.dumps(combined, indent=1) + "\n", encoding="utf-8")
        return 0
    torch.set_num_threads(args.threads)
    train, validation = book_stories("train"), book_stories("validation")
    triples = tasks.held_out_triples(validation, train, swapped_copies=SWAPPED_COPIES)
    stored = book.stored_model()
    tokenizer = stored.tokenizer
    byte_lengths = token_byte_lengths(tokenizer)
    task_train = tasks.task_stories(train, "train")
    n_task = len(task_train)
    seq_len = TRAINING["seq_len"]
    data = {  # name -> (train_tokens, train_weights) for the Trainer
        "plain": (tasks.encode_texts(task_train, tokenizer), None),
        "swaps": tasks.training_rows(train, tokenizer, seq_len, swapped_copies=SWAPPED_COPIES,
                                     word_weight=1.0),
        "recipe": tasks.training_rows(train, tokenizer, seq_len, swapped_copies=SWAPPED_COPIES,
                                      word_weight=WORD_WEIGHT),
    }
    task_val_ids = tasks.encode_texts(tasks.task_stories(validation, "validation"), tokenizer)
    plain_val_ids = book.book_tokens("validation", tokenizer).tokens

    def ordinary_bpb(model) -> float:
        # the first 100 windows of 256 tokens (about 110 stories): enough to see forgetting
        return evaluate_tokens(model, plain_val_ids, byte_lengths, 256,
                               max_windows=BPB_WINDOWS)["bits_per_byte"]

    results: dict = {"runs": {}}
    base_bpb = ordinary_bpb(stored.model)
    for prompt in () if args.skip_base else ("header", "plain"):
        score, stories = tasks.score_model(stored.model, tokenizer, triples, prompt=prompt,
                                            max_new_tokens=MAX_NEW_TOKENS)
        results["runs"][f"base_{prompt}"] = {
            "score": score, "trainable_parameters": 0, "minutes": 0.0,
            "bpb_before": base_bpb, "bpb_after": base_bpb, "example": stories[0]}
        print(f"base, {prompt} prompt: score {score:.3f}", flush=True)
    for name in args.runs:
        data_name, lora_config, lr = RUNS[name]
        train_tokens, train_weights = data[data_name]
        model = book.stored_model().model
        if lora_config is not None:
            add_lora(model, lora_config)
        config = TrainConfig(**{**TRAINING, "max_steps": args.steps, "lr": lr})
        trainer = Trainer(model, train_tokens, task_val_ids, config, byte_lengths,
                          train_weights=train_weights, progress=False, log=None)
        start, cpu_start = time.perf_counter(), time.process_time()
        history = trainer.fit()
        minutes = (time.perf_counter() - start) / 60
        cpu_minutes = (time.process_time() - cpu_start) / 60  # all threads' CPU time
        model.eval()
        score, stories = tasks.score_model(model, tokenizer, triples, prompt="header",
                                          max_new_tokens=MAX_NEW_TOKENS)
        results["runs"][name] = {
            "score": score, "trainable_parameters": trainable_parameters(model),
            "minutes": minutes, "cpu_minutes": cpu_minutes, "bpb_before": base_bpb, "bpb_after": ordinary_bpb(model),
            "task_val_bpb": history[-1]["val_bpb"], "lr": lr, "data": data_name,
            "training_rows": None if train_weights is None else len(train_tokens),
            "lora": lora_config.to_dict() if lora_config else None,
            "loss_curve": [[r["step"], r["loss"]] for r in history if r["kind"] == "train"],
            "example": stories[0]}
        if lora_config is not None:
            OUT.mkdir(parents=True, exist_ok=True)
            save_adapter(OUT / f"{name}.safetensors", model)
        write(results, triples, args, n_task)
        print(f"{name}: score {score:.3f}, {trainable_parameters(model):,} trainable, "
              f"{minutes:.1f} min, bpb {base_bpb:.4f} -> {results['runs'][name]['bpb_after']:.4f}",
              flush=True)
    write(results, triples, args, n_task)
    print(f"wrote {args.output}")
    return 0


def write(results: dict, triples, args, n_task: int) -> None:
    results["triples"] = [list(t) for t in triples]
    results["meta"] = {
        "training": {**TRAINING, "max_steps": args.steps},
        "task_training_stories": n_task,
        "bpb_windows": BPB_WINDOWS,
        "recipe": {"swapped_copies": SWAPPED_COPIES, "word_weight": WORD_WEIGHT},
        "generation": {"temperature": 0.8, "max_new_tokens": MAX_NEW_TOKENS, "seed": tasks.TASK_SEED},
        "command": "python book_config/make_adaptation_results.py",
        "torch": torch.__version__, "cpu": cpu_name(), "threads": torch.get_num_threads(),
        "note": "minutes: wall-clock on an otherwise idle machine; cpu_minutes: the CPU time "
                "the training used, all threads together",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
