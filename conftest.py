"""Test-session environment shared by the unit tests and the notebook kernels nbval starts.

Kernels inherit this process's environment, so only settings that suit both belong here.
"""

import os
from pathlib import Path

# Never reach for the network: the hub libraries fail fast instead of retrying for ~25 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Developers' and CI's checkouts sit beside shared/data/tinystories (the real TinyStories
# sample); use it unless the caller points TINYSTORIES_PATH elsewhere.
_SAMPLE = Path(__file__).resolve().parent.parent / "shared" / "data" / "tinystories"
if "TINYSTORIES_PATH" not in os.environ and _SAMPLE.is_dir():
    os.environ["TINYSTORIES_PATH"] = str(_SAMPLE)
