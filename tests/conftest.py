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
