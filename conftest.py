"""Test-session environment shared by the unit tests and the notebook kernels nbval starts.

Kernels inherit this process's environment, so only settings that suit both belong here. The
data comes from TINYSTORIES_PATH and LLAMA2C_PATH when set (CI sets both), and otherwise from
the Hugging Face hub, fetched once into the user's cache.
"""

import os

# Offline, the hub libraries fail fast instead of retrying for ~25 s; online users are unaffected
# unless they set these themselves.
if os.environ.get("TINYSTORIES_PATH"):
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Under pytest-xdist each worker, and each notebook kernel a worker starts, would otherwise run
# as many math threads as the machine has cores: on two cores two workers then fight over them
# (four spinning threads), which made the suite slower than running it on one worker. Share the
# cores out instead; an explicit OMP_NUM_THREADS still wins.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
