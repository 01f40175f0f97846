"""Checks for the exercises of chapter 9 (hardware: number formats, memory, data parallelism).

Exercise 3 runs the reader's function against caches and weights built on the meta device, and
names the known mistake a wrong answer matches; exercise 4 recomputes every error from the seed
the reader drew the matrices from.
"""

from __future__ import annotations

import math

import torch

from ...model.config import ModelConfig
from ...model.transformer import Transformer
from .. import check, function_answer, is_placeholder
from ..checking import say

_FORMATS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _holds_exactly(dtype: torch.dtype, value: float) -> bool:
    return torch.tensor(value, dtype=torch.float64).to(dtype).item() == value


def exercise_1(exact_formats) -> None:
    """The formats (by name) that store 1 + 2^-9 exactly."""
    truly_exact = {name for name, dtype in _FORMATS.items()
                   if _holds_exactly(dtype, 1 + 2**-9)}
    check("exercise 1", exact_formats, lambda answer: set(answer) == truly_exact,
          hint="compare 2^-9 with each format's gap above 1.0 (torch.finfo(dtype).eps); a gap "
               "larger than the step cannot land on it")


# ---- exercise 2: the batch each process sees ------------------------------------------------

DDP_PROCESSES, DDP_GLOBAL_BATCH, DDP_GRAD_ACCUM = 3, 126, 2


def exercise_2(sequences_per_forward) -> None:
    """Sequences per forward pass for torchrun with 3 processes, --batch-size 126 --grad-accum 2."""
    expected = DDP_GLOBAL_BATCH // DDP_PROCESSES // DDP_GRAD_ACCUM

    def is_right(answer) -> bool | str:
        if isinstance(answer, bool) or int(answer) != answer:
            raise TypeError("not a whole number")
        if answer == DDP_GLOBAL_BATCH // DDP_PROCESSES:
            return "that is each process's share of the step; --grad-accum splits it again"
        if answer == DDP_GLOBAL_BATCH // DDP_GRAD_ACCUM:
            return "--batch-size is the global batch: it is shared among the processes first"
        return int(answer) == expected

    check("exercise 2", sequences_per_forward, is_right,
          hint="--batch-size is the global batch: follow it through two splits, first across "
               "processes, then into micro-batches", expects="a whole number")


# ---- exercise 3: how many sequences fit ------------------------------------------------------


def _measured(config: ModelConfig, seq_len: int) -> tuple[int, int]:
    """(bytes of the float32 weights, bytes of one sequence's float32 KV cache), measured."""
    with torch.random.fork_rng(), torch.device("meta"):  # shapes only; the reader's seed kept
        model = Transformer(config)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())  # shared ones once
    cache = sum(buffer.numel() * buffer.element_size()
                for cache in model.make_caches(1, seq_len) for buffer in cache.buffers())
    return weights, cache


def _fit(weights: int, per_sequence: int, memory_bytes: int) -> int:
    return max(0, (memory_bytes - weights) // per_sequence)


def sequences_that_fit(config: ModelConfig, seq_len: int, memory_bytes: int) -> int:
    """The most sequences of seq_len tokens whose float32 KV cache fits in memory_bytes next to
    the model's float32 weights (0 when not even one does): measured on real buffers."""
    return _fit(*_measured(config, seq_len), memory_bytes)


GiB = 2**30
FIT_CASES = (("tiny", 64, 2**20), ("tinystories-cpu", 256, 100 * 2**20),
             ("tinystories-cpu", 200, 5 * 2**20), ("seed-22.5M", 512, 24 * GiB),
             ("seed-22.5M", 512, 50 * 2**20), ("gpt2-small", 1024, 80 * GiB),
             ("gpt2-small", 1024, 2**20))
EXAMPLE_FIT = ("seed-22.5M", 512, 24 * GiB)  # the case the exercise names

# message -> the answer that mistake gives, from (config, weights, one sequence's cache, memory)
FIT_MISTAKES = {
    "the weights need room too: subtract the float32 weights first":
        lambda config, weights, cache, memory: memory // cache,
    "with grouped-query attention the cache holds num_kv_heads heads, not num_heads":
        lambda config, weights, cache, memory: _fit(
            weights, cache * config.num_heads // config.num_kv_heads, memory),
    "a sequence whose cache does not fit completely does not fit: round down":
        lambda config, weights, cache, memory: max(0, -(-(memory - weights) // cache)),
    "each layer stores keys and values, two tensors":
        lambda config, weights, cache, memory: _fit(weights, cache // 2, memory),
}


def exercise_3(max_sequences) -> None:
    """A function (config, seq_len, memory_bytes) -> the most sequences whose float32 KV cache
    fits beside the float32 weights."""
    answer = function_answer(max_sequences, ModelConfig.from_preset("tiny"), 64, 2**20)

    def is_right(function) -> bool | str:
        cases = [(ModelConfig.from_preset(preset), seq_len, memory)
                 for preset, seq_len, memory in FIT_CASES]
        got = [function(*case) for case in cases]
        if any(isinstance(g, bool) or int(g) != g for g in got):
            return "return a whole number of sequences"
        measured = [(config, *_measured(config, seq_len), memory)
                    for config, seq_len, memory in cases]
        if all(int(g) == _fit(*m[1:]) for g, m in zip(got, measured, strict=True)):
            return True
        for message, wrong in FIT_MISTAKES.items():
            if all(int(g) == wrong(*m) for g, m in zip(got, measured, strict=True)):
                return message
        return False

    check("exercise 3", answer, is_right,
          hint="the weights take 4 bytes per parameter (count_parameters above); each sequence "
               "then needs one layer's keys and values per layer (look at the shapes of "
               "model.make_caches(1)[0].named_buffers()); a memory too small for the weights "
               "holds 0 sequences")


# ---- exercise 4 (experiment): the error of a bf16 product ------------------------------------

MAX_MATMUL_SIZE = 512  # the check multiplies again: keep it quick without native bf16


def matmul_errors_for(n: int, seed: int) -> tuple[float, float]:
    """(fp32, bf16-autocast) relative error of the n x n product of the matrices that
    ``torch.Generator().manual_seed(seed)`` draws (a, then b), against their float64 product."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=generator)
    b = torch.randn(n, n, generator=generator)
    exact = a.double() @ b.double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = a @ b
    return tuple(float((c.double() - exact).norm() / exact.norm()) for c in (a @ b, low))


def _errors_are_right(errors, seed) -> bool | str:
    if not isinstance(errors, dict):
        raise TypeError("not a dict")
    sizes = sorted(int(n) for n in errors)
    if len(sizes) < 3 or sizes[-1] < 16 * sizes[0]:
        return "use at least three sizes n, the largest at least 16 times the smallest"
    if sizes[0] < 2 or sizes[-1] > MAX_MATMUL_SIZE:
        return f"keep n between 2 and {MAX_MATMUL_SIZE:,}"
    for n in sizes:
        fp32, bf16 = (float(e) for e in errors[n])
        want_fp32, want_bf16 = matmul_errors_for(n, int(seed))
        # bf16's error comes from rounding the inputs and the result, the same on any CPU; the
        # fp32 error's digits depend on the kernel's summation order (up to ~40% across CPUs)
        if not math.isclose(bf16, want_bf16, rel_tol=0.02):
            return (f"the bf16 error for n = {n} is not what seed {seed} gives: draw a, then b, "
                    f"from torch.Generator().manual_seed(seed), for every n")
        if not want_fp32 / 2 <= fp32 <= 2 * want_fp32:
            return f"the fp32 error for n = {n} is not what seed {seed} gives"
    return True


def exercise_4(matmul_errors, seed) -> None:
    """{n: (fp32 relative error, bf16 relative error)} of an n x n matmul against float64, for
    the matrices drawn from ``seed``: recomputed here."""
    if not is_placeholder(matmul_errors) and (isinstance(seed, bool)
                                               or not isinstance(seed, int)):
        say("exercise 4: not yet - hint: pass the seed (an int) your matrices were drawn from")
        return
    check("exercise 4", matmul_errors, lambda errors: _errors_are_right(errors, seed),
          hint="compare both products with the product of the float64 copies, as "
               "||approx - exact|| / ||exact||, and run the bf16 one under "
               "torch.autocast('cpu', dtype=torch.bfloat16)",
          expects="a dict {n: (fp32_error, bf16_error)}")


def expected_values() -> dict[str, object]:
    """The numbers right answers give (for the test that the chapter shows none of them)."""
    config = ModelConfig.from_preset(EXAMPLE_FIT[0])
    return {"exercise 2": DDP_GLOBAL_BATCH // DDP_PROCESSES // DDP_GRAD_ACCUM,
            "exercise 3 example": sequences_that_fit(config, *EXAMPLE_FIT[1:])}
