"""Device and precision policy, with CUDA and MPS availability simulated."""

import sys

import pytest
import torch

from transformer_lib import device as dev


@pytest.fixture
def simulate(monkeypatch):
    def _simulate(cuda=False, mps=False, bf16=True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if cuda else 0)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(dev, "_mps_available", lambda: mps)

    return _simulate


def test_preference_order(simulate):
    simulate(cuda=True, mps=True)
    assert dev.pick_device().type == "cuda"
    simulate(cuda=False, mps=True)
    assert dev.pick_device().type == "mps"
    simulate(cuda=False, mps=False)
    assert dev.pick_device("auto").type == "cpu"


def test_requesting_an_absent_device_is_an_error(simulate):
    simulate(cuda=False, mps=False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        dev.pick_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        dev.pick_device("mps")
    with pytest.raises(ValueError, match="unknown device"):
        dev.pick_device("tpu9")
    simulate(cuda=True)
    with pytest.raises(ValueError, match="only 1 CUDA"):
        dev.pick_device("cuda:3")


def test_precision_policy(simulate):
    simulate(cuda=True, bf16=True)
    assert dev.pick_precision(torch.device("cuda")).autocast_dtype == torch.bfloat16
    simulate(cuda=True, bf16=False)
    assert dev.pick_precision(torch.device("cuda")).name == "fp32"
    with pytest.raises(ValueError, match="does not support bf16"):
        dev.pick_precision(torch.device("cuda"), "bf16")
    assert dev.pick_precision(torch.device("mps")).name == "fp32"
    with pytest.raises(ValueError, match="MPS"):
        dev.pick_precision(torch.device("mps"), "bf16")
    assert dev.pick_precision(torch.device("cpu")).name == "fp32"
    assert dev.pick_precision(torch.device("cpu"), "bf16").autocast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision"):
        dev.pick_precision(torch.device("cpu"), "fp8")


def test_bf16_autocast_on_cpu_changes_matmul_dtype():
    precision = dev.pick_precision(torch.device("cpu"), "bf16")
    a = torch.randn(4, 4)
    with precision.autocast(torch.device("cpu")):
        assert (a @ a).dtype == torch.bfloat16
    with dev.pick_precision(torch.device("cpu")).autocast(torch.device("cpu")):
        assert (a @ a).dtype == torch.float32


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_keep_freed_cpu_memory_settings_are_accepted_by_glibc():
    # mallopt returns 0 for a value it rejects (e.g. an mmap threshold above 32 MiB).
    assert dev.keep_freed_cpu_memory() is True
