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
