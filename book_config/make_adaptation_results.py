"""Make the stored results of chapter 13: full fine-tuning and LoRA on the words task.

Usage (about 3 minutes of CPU per run; run it under ``nice`` on a shared machine)::

    TINYSTORIES_PATH=/path/to/the/extract nice -n 10 python book_config/make_adaptation_results.py

From the stored model (``transformer_lib/assets/tinystories-1M``) it trains three adaptations
on the words task (``transformer_lib.data.tasks``) with the library's trainer, the same data,
steps and seed each: full fine-tuning, then LoRA at two ranks on every projection. For each, and
for the base model, it records the task's score on the 200 held-out triples, the trainable
parameters, the training minutes, and bits per byte on the ordinary validation stories (no
headers) before and after. It writes ``transformer_lib/assets/adaptation/results.json`` and the
two LoRA adapters (safetensors, a few hundred KB together), which chapter 13 loads.
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
STEPS = 100
TRAINING = dict(batch_size=8, seq_len=256, max_steps=STEPS, warmup_steps=20, weight_decay=0.0,
                eval_every=STEPS, eval_windows=32, log_every=50, seed=0, device="cpu",
                precision="fp32")
BPB_WINDOWS = 100
MAX_NEW_TOKENS = 120
RUNS = {  # name -> (LoRA config or None for full fine-tuning, peak learning rate)
    "lora_r1": (LoRAConfig(rank=1, alpha=2.0, targets=tuple(("q", "k", "v", "o", "gate", "up",
                                                              "down"))), 1e-2),
    "lora_r8": (LoRAConfig(rank=8, alpha=16.0, targets=("q", "k", "v", "o", "gate", "up",
                                                        "down")), 1e-2),
    "full": (None, 1e-3),
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
    triples = tasks.held_out_triples(validation, train)
    stored = book.stored_model()
    tokenizer = stored.tokenizer
    byte_lengths = token_byte_lengths(tokenizer)
    task_train = tasks.task_stories(train, "train")
    n_task = len(task_train)
    train_ids = tasks.encode_texts(task_train, tokenizer)
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
        lora_config, lr = RUNS[name]
        model = book.stored_model().model
        if lora_config is not None:
            add_lora(model, lora_config)
        config = TrainConfig(**{**TRAINING, "max_steps": args.steps, "lr": lr})
        trainer = Trainer(model, train_ids, task_val_ids, config, byte_lengths, progress=False,
                          log=None)
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
            "task_val_bpb": history[-1]["val_bpb"], "lr": lr,
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
        "generation": {"temperature": 0.8, "max_new_tokens": MAX_NEW_TOKENS, "seed": tasks.TASK_SEED},
        "command": "nice -n 10 python book_config/make_adaptation_results.py",
        "torch": torch.__version__, "cpu": cpu_name(), "threads": torch.get_num_threads(),
        "note": "minutes: wall-clock on a 2-core machine shared with other jobs, run under "
                "nice; cpu_minutes: the CPU time the training used (on 2 free cores the "
                "wall-clock would be about half of it)",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
