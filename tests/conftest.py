"""Fixtures for the unit tests."""

import matplotlib
import pytest
import torch

from transformer_lib import ModelConfig, Transformer

matplotlib.use("Agg")  # in-process only: notebook kernels keep their inline backend
# The unit tests use tiny tensors, for which one thread is fastest and a second only waits
# for a busy core.
torch.set_num_threads(1)


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig.from_preset("tiny")


@pytest.fixture
def tiny_model(tiny_config) -> Transformer:
    torch.manual_seed(0)
    return Transformer(tiny_config).eval()


class ByteTokenizer:
    """A tiny byte-level tokenizer, so plot and widget tests do not depend on the real one."""

    name = "bytes"
    vocab_size = 257
    eot_id = 256

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(i for i in ids if i < 256).decode(errors="replace")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Transformer(ModelConfig.from_preset("tiny", num_layers=2)).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return ByteTokenizer()


HUB_ROWS = [  # as the hub's parquet rows hold them: paragraphs split by a blank line
    "Lily saw a bird.\n\nThe bird sang. “Hello!” she said.",
    "Max had a big red 🚒 truck.\n\nHe drove it  to the park.\n\nThe end.",
    "A short one.",
    "Sam and Mia played.\n\nThey were happy.",
    "One more story.",
]


@pytest.fixture
def fake_hub(monkeypatch):
    """A hub that streams HUB_ROWS for every split and counts how often it was asked; the
    book's extract is 4 training and 2 validation stories of it."""
    import datasets  # here, not at the top: most tests never need it, and it is slow to import

    from transformer_lib.data import stories

    calls = []

    def load_dataset(name, split, streaming=False, **kwargs):
        assert name == stories.HUB_DATASET and streaming, "the extract must be streamed"
        calls.append(split)
        return iter([{"text": text} for text in HUB_ROWS])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(stories, "url_reachable", lambda url, timeout=5.0: True)
    monkeypatch.setattr(stories, "BOOK_EXTRACT_SIZES", {"train": 4, "validation": 2})
    for name in ("TINYSTORIES_PATH", *stories.OFFLINE_ENV_VARS):
        monkeypatch.delenv(name, raising=False)
    return calls
