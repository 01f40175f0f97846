"""Run notebooks under nbval as other machines would: other vector kernels, other thread counts.

Usage: python book_config/check_portability.py [--only NAME ...] [notebooks/NN_x.ipynb ...]
(default: every chapter and solution notebook, every configuration)

A stored output must compare equal on any CPU. This machine cannot become another CPU, but it
can make PyTorch, MKL and oneDNN pick other kernels (other blocking, other summation order) and
other thread counts, which is what changes the last digits between machines:

- ``as-is``: this machine's own kernels and threads.
- ``avx2``: MKL's AVX2 path (what MKL takes on AMD), PyTorch's and oneDNN's AVX2 kernels: on an
  Intel machine with AVX-512 or AMX this is the other vendor's path.
- ``sse``: the oldest vector kernels of all three (SSE4.2 / no ATen vectorisation): on an AVX2
  machine, the stand-in for a machine whose kernels differ from this one's.
- ``1-thread`` and ``3-threads``: other splits of every parallel reduction.

Each configuration gets its own TorchInductor cache: Inductor's disk cache is not keyed by these
variables, and a model compiled under ``ATEN_CPU_CAPABILITY=avx2`` and run without it (or the
other way round) on an AVX-512 CPU gave a heap-corruption abort or NaN logits with torch 2.13.
Prints one line per configuration and exits non-zero if any failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATIONS = {
    "as-is": {},
    "avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "sse": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "default",
            "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "1-thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "3-threads": {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"},
}


def notebooks(paths: list[str]) -> list[str]:
    if paths:
        return paths
    found = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    found += sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))
    return [str(path.relative_to(ROOT)) for path in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: every chapter and solution")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGURATIONS),
                        help="run only these configurations")
    parser.add_argument("--workers", type=int, default=1, help="pytest-xdist workers")
    args = parser.parse_args(argv)
    targets = notebooks(args.notebooks)
    failed = []
    for name in args.only or CONFIGURATIONS:
        with tempfile.TemporaryDirectory(prefix=f"inductor-{name}-") as cache:
            env = dict(os.environ, **CONFIGURATIONS[name], TORCHINDUCTOR_CACHE_DIR=cache)
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets]
            if args.workers > 1:
                command += ["-n", str(args.workers), "--dist", "loadfile"]
            start = time.perf_counter()
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"{name:>10}: {'ok  ' if result.returncode == 0 else 'FAIL'} {summary} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        if result.returncode:
            failed.append(name)
            for line in result.stdout.splitlines():
                if line.startswith("FAILED"):
                    print(f"            {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
