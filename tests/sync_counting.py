"""A counter of device-to-host reads, shared by the tests of the sync-free paths."""

import torch

READS = ("__int__", "__float__", "__bool__", "__index__", "item", "tolist", "numpy", "cpu")


class SyncCounter:
    """Counts reads of tensor values by the host (int(), float(), bool(), .item(), .tolist(),
    .numpy(), .cpu()): each one makes the host wait for the device."""

    def __init__(self, monkeypatch):
        self.count = 0
        for name in READS:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _original=original, **kwargs):
                self.count += 1
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)
