"""``tlib-bench --llama2c PATH [--runc BINARY]``: batch-1 greedy decoding speed on a llama2.c
checkpoint, eager against compiled (``generate(..., compile=True)``), and against llama2.c's own
``run.c`` when a compiled one is given.

Everything runs on one thread: PyTorch with ``torch.set_num_threads(1)``, ``run.c`` built
without OpenMP (``gcc -Ofast -march=native -o run run.c -lm``; its multi-threaded build reads
``OMP_NUM_THREADS``, set to 1 here too). Both decode the same prompt greedily to the same total
length. ``run.c`` reports tokens/s excluding its first step and stops early if the model emits
BOS; ours counts every new token. Figures are medians over repetitions, interleaved so that
drifts in machine load hit all three alike.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from pathlib import Path

import torch


def _runc_tokens_per_s(binary: str, model_path: str, tokenizer_path: str, steps: int,
                       prompt: str) -> float:
    command = [binary, model_path, "-z", tokenizer_path, "-t", "0", "-n", str(steps), "-i", prompt]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    match = re.search(r"achieved tok/s: ([0-9.]+)", done.stderr)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}) or printed no "
                           f"'achieved tok/s': {done.stderr[-500:]!r}")
    return float(match.group(1))


def run_llama2c(model_path: str, tokenizer: str | None = None, runc: str | None = None,
                steps: int = 256, repeats: int = 5, prompt: str = "Once upon a time",
                compiled: bool = True) -> dict:
    """Tokens/s of batch-1 greedy decoding to ``steps`` positions: eager, compiled, run.c."""
    from ..data.llama2c import default_tokenizer_name, llama2c_file, load_llama2c_tokenizer
    from ..interop.llama2c import from_llama2c

    torch.set_num_threads(1)
    llama2c_file(model_path)  # a missing file is named as such, before any tokenizer question
    model = from_llama2c(model_path).eval()
    tokenizer_name = tokenizer or default_tokenizer_name(model_path)
    if tokenizer_name is None:
        raise ValueError(f"no known tokenizer for {model_path!r}: pass --tokenizer PATH")
    tok = load_llama2c_tokenizer(tokenizer_name)
    if tok.vocab_size != model.config.vocab_size:
        raise ValueError(f"the tokenizer {tokenizer_name!r} ({tok.vocab_size} ids) and the model "
                         f"{model_path!r} (vocab_size {model.config.vocab_size}) disagree; pass "
                         f"the model's own tokenizer with --tokenizer")
    ids = [tok.bos_id] + tok.encode(prompt)  # as run.c: BOS, then the prompt
    steps = min(steps, model.config.max_seq_len)
    new_tokens = steps - len(ids)
    if new_tokens < 2:
        raise ValueError(f"--llama2c-steps {steps} leaves no room after the {len(ids)}-token "
                         f"prompt; give at least {len(ids) + 2}")
    prompt_ids = torch.tensor([ids])
    results: dict = {"model": str(model_path), "threads": torch.get_num_threads(),
                     "steps": steps, "new_tokens": new_tokens, "torch": torch.__version__}

    def timed(**options) -> float:
        start = time.perf_counter()
        model.generate(prompt_ids, new_tokens, temperature=0, **options)
        return new_tokens / (time.perf_counter() - start)

    runners = {"eager": lambda: timed()}
    if compiled:
        start = time.perf_counter()
        first = model.generate(prompt_ids, new_tokens, temperature=0, compile=True)
        results["compile_s"] = time.perf_counter() - start
        results["compiled_equals_eager"] = bool(
            torch.equal(first, model.generate(prompt_ids, new_tokens, temperature=0)))
        runners["compiled"] = lambda: timed(compile=True)
    if runc:
        tokenizer_path = str(Path(tokenizer_name) if Path(tokenizer_name).is_file()
                             else llama2c_file(tokenizer_name))
        model_file = str(Path(model_path) if Path(model_path).is_file()
                         else llama2c_file(model_path))
        runners["run.c"] = lambda: _runc_tokens_per_s(runc, model_file, tokenizer_path, steps,
                                                      prompt)
    timed()  # warm-up of the eager path
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            rates[name].append(runner())
    results["tokens_per_s"] = {name: statistics.median(values) for name, values in rates.items()}
    if runc:
        reference = results["tokens_per_s"]["run.c"]
        results["ratio_to_runc"] = {name: value / reference
                                    for name, value in results["tokens_per_s"].items()
                                    if name != "run.c"}
    return results


def print_llama2c(results: dict) -> None:
    print(f"{results['model']}: batch-1 greedy decoding to {results['steps']} positions "
          f"({results['new_tokens']} new tokens), {results['threads']} thread, torch "
          f"{results['torch']}")
    if "compile_s" in results:
        print(f"  compiling took {results['compile_s']:.1f} s; compiled tokens equal eager's: "
              f"{results['compiled_equals_eager']}")
    for name, value in results["tokens_per_s"].items():
        ratio = results.get("ratio_to_runc", {}).get(name)
        extra = f"   {ratio:.3f}x run.c" if ratio is not None else ""
        print(f"  {name:<10}{value:>10,.0f} tokens/s{extra}")
