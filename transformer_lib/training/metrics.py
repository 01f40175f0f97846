"""Evaluation shared by the trainer and the evaluate command: loss and bits per byte of a text.

Below both in the layering: ``trainer`` and ``evaluate`` import it, it imports neither.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.tokens import IGNORE_INDEX, SequentialWindows, bits_per_byte
from ..device import Precision
from ..model.transformer import Transformer, eval_mode


def token_byte_lengths(tokenizer) -> np.ndarray:
    """UTF-8 bytes each token id stands for (0 for special tokens), to count bytes of targets."""
    special = set(tokenizer.special_tokens.values()) if hasattr(tokenizer, "special_tokens") \
        else {tokenizer.eot_id}
    return np.array([0 if i in special else len(tokenizer.token_bytes(i))
                     for i in range(tokenizer.vocab_size)], dtype=np.int64)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the process group, or (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce(values: list[float], device: torch.device, op=None) -> list[float]:
    """Sum (or ``op``) a few numbers over all processes; unchanged in a single process."""
    if rank_and_world()[1] == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM)
    return tensor.tolist()


@torch.no_grad()
def evaluate_tokens(model: Transformer, tokens: np.ndarray, byte_lengths: np.ndarray,
                    seq_len: int, batch_size: int = 16, device: torch.device | str = "cpu",
                    precision: Precision | None = None, max_windows: int | None = None,
                    progress: bool = False) -> dict:
    """Mean loss per token and bits per byte over a token array (every token, or a prefix).

    Windows are split across processes when running distributed; sums are all-reduced, so
    every rank returns the same figures.
    """
    device = torch.device(device)
    precision = precision or Precision("fp32", None)
    rank, world = rank_and_world()
    if max_windows is not None:
        tokens = tokens[: max_windows * seq_len + 1]
    windows = SequentialWindows(tokens, batch_size, seq_len, device=device)
    loss_sum, n_tokens, n_bytes = 0.0, 0, 0
    table = torch.from_numpy(byte_lengths).to(device)
    mine = (batch for i, batch in enumerate(windows) if i % world == rank)
    with eval_mode(model):
        for x, y in tqdm(mine, total=math.ceil(len(windows) / world), desc="evaluate",
                         disable=not progress or rank != 0, leave=False):
            with precision.autocast(device):
                logits = model(x)
            loss_sum += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(),
                                        reduction="sum").item()
            valid = y != IGNORE_INDEX
            n_tokens += int(valid.sum())
            n_bytes += int(table[y[valid]].sum())
    loss_sum, n_tokens, n_bytes = all_reduce([loss_sum, n_tokens, n_bytes], device)
    loss = loss_sum / n_tokens
    return {"loss": loss, "bits_per_byte": bits_per_byte(loss, int(n_tokens), int(n_bytes)),
            "tokens": int(n_tokens), "bytes": int(n_bytes)}
