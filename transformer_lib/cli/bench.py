"""tlib-bench: speed of training steps and generation, against transformers.

Also reports model FLOPs utilisation (MFU): training FLOP/s estimated as 6N + 12LTC per token
(PaLM, appendix B; nanoGPT's estimate too) over the median speed of a large float32 matmul
measured on the same device.

Both libraries run the same weights (ours converted with ``interop.to_hf``), interleaved
repetition by repetition so that drifts in machine load hit both alike; figures are medians.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from ..analysis.cost import training_flops_per_token
from ..device import describe, keep_freed_cpu_memory, pick_device
from ..model.config import ModelConfig
from ..model.transformer import Transformer
from . import nonnegative_int, positive_int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def _train_step(forward, optimizer, ids, device) -> float:
    start = time.perf_counter()
    logits = forward(ids[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _sync(device)
    return time.perf_counter() - start


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def peak_matmul_flops(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """Measured float32 FLOP/s of a large square matmul on ``device``: median of ``repeats``."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    times = [_timed(lambda: a @ b, device) for _ in range(repeats)]
    return 2 * size**3 / statistics.median(times)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def model_config(args) -> ModelConfig:
    """The benchmarked model's shape, with room for a training row and for a generation."""
    return ModelConfig(vocab_size=args.vocab_size, d_model=args.d_model,
                       num_layers=args.num_layers, num_heads=args.num_heads,
                       max_seq_len=max(args.seq_len + 1, args.prompt_len + args.new_tokens))


def run(args) -> dict:
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    config = model_config(args)
    ours = Transformer(config).to(device)
    results: dict = {"device": describe(device), "torch": torch.__version__,
                     "config": config.to_dict(), "batch_size": args.batch_size,
                     "seq_len": args.seq_len, "repeats": args.repeats}
    models = {"transformer_lib": (ours, lambda x: ours(x))}
    try:
        from ..interop import to_hf

        hf = to_hf(ours).to(device)
        hf.config.use_cache = True
        models["transformers"] = (hf, lambda x: hf(x).logits)
        import transformers

        results["transformers"] = transformers.__version__
    except ImportError:
        print("transformers is not installed: timing transformer_lib alone", file=sys.stderr)

    ids = torch.randint(0, config.vocab_size, (args.batch_size, args.seq_len + 1), device=device)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
                  for name, (model, _) in models.items()}
    train_times = {name: [] for name in models}
    for repeat in range(args.warmup + args.repeats):
        for name, (model, forward) in models.items():
            model.train()
            elapsed = _train_step(forward, optimizers[name], ids, device)
            if repeat >= args.warmup:
                train_times[name].append(elapsed)
    tokens_per_step = args.batch_size * args.seq_len
    results["train_tokens_per_s"] = {
        name: tokens_per_step / statistics.median(times) for name, times in train_times.items()}
    # Model FLOPs utilisation: achieved training FLOP/s over a measured float32 matmul peak.
    flops_per_token = training_flops_per_token(config, args.seq_len)
    peak = peak_matmul_flops(device, args.matmul_size)
    results["flops_estimate"] = "6N + 12LTC per token (PaLM appendix B)"
    results["train_flops_per_token"] = flops_per_token
    results["peak_matmul_flops"] = peak
    results["mfu"] = {name: rate * flops_per_token / peak
                      for name, rate in results["train_tokens_per_s"].items()}

    prompt = torch.randint(0, config.vocab_size, (1, args.prompt_len), device=device)
    generators = {"transformer_lib (KV cache)":
                  lambda: ours.generate(prompt, args.new_tokens, temperature=0),
                  "transformer_lib (no cache)":
                  lambda: ours.generate(prompt, args.new_tokens, temperature=0, use_cache=False)}
    if "transformers" in models:
        generators["transformers"] = lambda: hf.generate(
            prompt, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
            do_sample=False, pad_token_id=0)
    ours.eval()
    if "transformers" in models:
        hf.eval()
    generate_times = {name: [] for name in generators}
    with torch.no_grad():
        for repeat in range(1 + args.generate_repeats):
            for name, fn in generators.items():
                elapsed = _timed(fn, device)
                if repeat >= 1:
                    generate_times[name].append(elapsed)
    results["generate_tokens_per_s"] = {
        name: args.new_tokens / statistics.median(times) for name, times in generate_times.items()}
    gen = results["generate_tokens_per_s"]
    results["kv_cache_speedup"] = gen["transformer_lib (KV cache)"] / gen[
        "transformer_lib (no cache)"]
    if "transformers" in models:
        train = results["train_tokens_per_s"]
        results["train_ratio_vs_transformers"] = train["transformer_lib"] / train["transformers"]
        results["generate_ratio_vs_transformers"] = gen["transformer_lib (KV cache)"] / gen[
            "transformers"]
    results["peak_rss_mib"] = peak_rss_mib()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="tlib-bench",
        description="Time training steps (forward, backward, AdamW) and batch-1 greedy generation "
                    "for transformer_lib and transformers' LlamaForCausalLM on the same weights.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--d-model", type=positive_int, default=288)
    parser.add_argument("--num-layers", type=positive_int, default=6)
    parser.add_argument("--num-heads", type=positive_int, default=6)
    parser.add_argument("--vocab-size", type=positive_int, default=4096)
    parser.add_argument("--seq-len", type=positive_int, default=256)
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--prompt-len", type=positive_int, default=8)
    parser.add_argument("--new-tokens", type=positive_int, default=200)
    parser.add_argument("--warmup", type=nonnegative_int, default=2,
                        help="untimed training steps per library")
    parser.add_argument("--repeats", type=positive_int, default=7,
                        help="timed training steps per library")
    parser.add_argument("--generate-repeats", type=positive_int, default=5)
    parser.add_argument("--matmul-size", type=positive_int, default=2048,
                        help="side of the float32 matmul whose speed is the MFU's peak")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--llama2c", metavar="PATH",
                        help="instead: batch-1 greedy decoding tokens/s on this llama2.c "
                             "checkpoint, eager against compiled, one thread")
    parser.add_argument("--tokenizer", metavar="PATH", help="with --llama2c: its tokenizer")
    parser.add_argument("--runc", metavar="BINARY",
                        help="with --llama2c: a compiled llama2.c run.c to time on the same "
                             "file and thread count, and print the ratio")
    parser.add_argument("--llama2c-steps", type=positive_int, default=256,
                        help="with --llama2c: positions to decode to, prompt included")
    args = parser.parse_args(argv)
    if args.llama2c:
        from .bench_llama2c import print_llama2c, run_llama2c

        # Checked first: otherwise a wrong path fails only after compiling and timing.
        if args.runc and shutil.which(args.runc) is None:
            parser.error(f"--runc {args.runc}: no such executable; give the path of a compiled "
                         f"llama2.c run (gcc -Ofast -march=native -o run run.c -lm)")
        try:
            results = run_llama2c(args.llama2c, args.tokenizer, args.runc, args.llama2c_steps,
                                  args.generate_repeats)
        except (ValueError, OSError) as err:  # OSError: a missing file, or no hub to fetch it
            parser.error(str(err))
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print_llama2c(results)
        return
    if args.runc or args.tokenizer:
        parser.error("--runc and --tokenizer go with --llama2c")
    try:  # both cheap, and both fail before any model is built or timed
        pick_device(args.device)
        model_config(args)
    except ValueError as err:
        parser.error(str(err))
    keep_freed_cpu_memory()  # one process, so both libraries get the same allocator settings
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"device: {results['device']}, torch {results['torch']}, "
          f"d_model {args.d_model}, {args.num_layers} layers, {args.num_heads} heads, "
          f"vocab {args.vocab_size}, batch {args.batch_size} x seq {args.seq_len}")
    print("training (forward + backward + AdamW), tokens/s, median of "
          f"{args.repeats}:")
    for name, value in results["train_tokens_per_s"].items():
        print(f"  {name:<28}{value:>12,.0f}")
    print(f"model FLOPs utilisation ({results['flops_estimate']}; peak = median float32 "
          f"{args.matmul_size}^2 matmul, {results['peak_matmul_flops'] / 1e9:,.1f} GFLOP/s):")
    for name, value in results["mfu"].items():
        print(f"  {name:<28}{value:>12.1%}")
    print(f"batch-1 greedy generation of {args.new_tokens} tokens, tokens/s:")
    for name, value in results["generate_tokens_per_s"].items():
        print(f"  {name:<28}{value:>12,.1f}")
    if "train_ratio_vs_transformers" in results:
        print(f"training ratio vs transformers:   {results['train_ratio_vs_transformers']:.2f}x")
        print(f"generation ratio vs transformers: {results['generate_ratio_vs_transformers']:.2f}x")
    print(f"KV cache speed-up over recomputation: {results['kv_cache_speedup']:.2f}x")
    print(f"peak resident memory: {results['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
