"""Checks for the exercises of chapter 9 (hardware: number formats, memory, data parallelism)."""

from __future__ import annotations

import torch

from ...model.config import ModelConfig
from ...model.transformer import Transformer
from .. import check

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


def exercise_2(sequences_per_forward) -> None:
    """Sequences per forward pass for torchrun with 4 processes, --batch-size 64 --grad-accum 2."""
    check("exercise 2", sequences_per_forward,
          lambda answer: int(answer) == answer and answer == 64 // 4 // 2,
          hint="--batch-size is the global batch: follow it through two splits, first across "
               "processes, then into micro-batches")


def _measured_cache_bytes(config: ModelConfig, batch_size: int, seq_len: int) -> int:
    with torch.random.fork_rng(), torch.device("meta"):  # shapes only; the reader's seed kept
        model = Transformer(config)
    caches = model.make_caches(batch_size, seq_len)
    return sum(buffer.numel() * buffer.element_size()
               for cache in caches for buffer in cache.buffers())


_CACHE_CASES = (("tiny", 1, 64), ("tinystories-cpu", 1, 256), ("tinystories-cpu", 8, 100),
                ("seed-22.5M", 2, 512))


def exercise_3(kv_cache_bytes) -> None:
    """A function (config, batch_size, seq_len) -> bytes of the float32 KV cache."""
    answer = None
    if callable(kv_cache_bytes):
        try:
            answer = kv_cache_bytes(ModelConfig.from_preset("tiny"), 1, 64)
        except Exception:  # noqa: BLE001 - a failing answer is "not yet", not a crash
            answer = "raised"

    def is_right(_) -> bool:
        return all(
            kv_cache_bytes(ModelConfig.from_preset(preset), batch, seq)
            == _measured_cache_bytes(ModelConfig.from_preset(preset), batch, seq)
            for preset, batch, seq in _CACHE_CASES)

    check("exercise 3", answer, is_right,
          hint="look at the shapes of one layer's cache buffers "
               "(model.make_caches(1)[0].named_buffers()) and count what every layer stores")


def exercise_4(matmul_errors) -> None:
    """{n: (fp32 relative error, bf16 relative error)} of an n x n matmul against float64."""

    def is_right(errors) -> bool:
        sizes = sorted(errors)
        if len(sizes) < 3 or sizes[-1] < 16 * sizes[0]:
            return False  # too few sizes, or too narrow a range to see a trend
        fp32 = [float(errors[n][0]) for n in sizes]
        bf16 = [float(errors[n][1]) for n in sizes]
        return (all(1e-3 < e < 1e-2 for e in bf16)  # about 2^-8: the rounding of bf16 itself
                and all(0 < f < 1e-5 and b > 100 * f for f, b in zip(fp32, bf16, strict=True))
                and max(bf16) < 1.5 * min(bf16))  # flat: the sums are accumulated in fp32

    check("exercise 4", matmul_errors, is_right,
          hint="use at least three sizes spanning a factor of 16 or more; compare both products "
               "with the product of the float64 copies, as ||approx - exact|| / ||exact||, and "
               "run the bf16 one under torch.autocast('cpu', dtype=torch.bfloat16)")
