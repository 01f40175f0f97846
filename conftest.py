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
