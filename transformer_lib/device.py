"""Device and precision policy: which accelerator to use and which dtype to compute in.

Order of preference: CUDA, then Apple MPS, then CPU. Precision: bf16 autocast on CUDA GPUs that
support it (float16 without loss scaling is not offered: it needs a GradScaler and rarely pays on
cards that have bf16), float32 on MPS (mixed dtypes failed on MPS in the original design, and
autocast there is still incomplete), float32 on CPU unless bf16 autocast is asked for.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The requested device, or the best one present; a request for an absent device is an error."""
    if requested is None or str(requested) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as err:
        raise ValueError(f"unknown device {requested!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' "
                         f"or 'mps'") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was requested but CUDA is not available "
                             f"(torch {torch.__version__}); use --device cpu or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {requested!r} was requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not _mps_available():
        raise ValueError(f"device {requested!r} was requested but Apple MPS is not available; "
                         f"use --device cpu or 'auto'")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device type {device.type!r}; use cpu, cuda or mps")
    return device


@dataclass(frozen=True)
class Precision:
    """How to compute: parameters stay float32; ``autocast_dtype`` (if any) is used for matmuls."""

    name: str  # "fp32" or "bf16"
    autocast_dtype: torch.dtype | None

    def autocast(self, device: torch.device):
        """A context manager that applies this precision on ``device`` (a no-op for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)


def pick_precision(device: torch.device, requested: str = "auto") -> Precision:
    """The precision policy for ``device``; ``requested`` is 'auto', 'fp32' or 'bf16'."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Precision("fp32", None)
    if device.type == "mps":
        if requested == "bf16":
            raise ValueError("bf16 autocast is not supported on MPS by this library (mixed "
                             "dtypes fail there); use --precision fp32 or auto")
        return Precision("fp32", None)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", torch.bfloat16)
        if requested == "bf16":
            raise ValueError("this CUDA GPU does not support bf16; use --precision fp32")
        return Precision("fp32", None)
    # CPU: float32 unless bf16 is asked for explicitly.
    return Precision("bf16", torch.bfloat16) if requested == "bf16" else Precision("fp32", None)


def cpu_has_native_bf16(capabilities: dict | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (x86: AMX or AVX-512 BF16; Arm: BF16).

    Elsewhere bf16 autocast is emulated and many times slower than float32
    (benchmarks/RESULTS.md), so ``train`` picks bf16 on a CPU only where this is true. ``capabilities`` is ``torch.cpu.get_capabilities()``'s dict
    (for tests); a torch without that function counts as no.
    """
    if capabilities is None:
        get = getattr(torch.cpu, "get_capabilities", None)
        if get is None:
            return False
        capabilities = get()
    return any(value is True for key, value in capabilities.items()
               if key in ("amx_bf16", "avx512_bf16", "bf16", "sve_bf16"))


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` knows: for the meta
    of stored results, which record the machine that measured them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> str:
    """One line naming the device, for logs and the book's device check."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_cpu_memory() -> bool:
    """Stop glibc from handing freed tensor memory back to the kernel; True if applied.

    PyTorch's CPU allocator is plain ``malloc``. By default glibc serves large blocks with fresh
    ``mmap`` pages and trims the heap after frees, so every training step faults in its
    activations again. Raising the mmap and trim thresholds keeps that memory in the process for
    reuse, for peak memory that is reached anyway (measured in benchmarks/RESULTS.md). It
    changes the whole process, so the command lines call it at start-up (the library never does
    on import); elsewhere than Linux with glibc it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, 32 << 20),  # glibc's maximum: larger blocks still use mmap
                (_M_TRIM_THRESHOLD, 1 << 30),
                (_M_TOP_PAD, 64 << 20))
    return all(mallopt(param, value) == 1 for param, value in settings)
