"""Evaluation shared by the trainer and the evaluate command: loss and bits per byte of a text.

Below both in the layering: ``trainer`` and ``evaluate`` import it, it imports neither.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checks import require_int
from ..data.tokens import IGNORE_INDEX, SequentialWindows, bits_per_byte
from ..device import Precision
from ..model.transformer import Transformer, eval_mode


def token_byte_lengths(tokenizer) -> np.ndarray:
    """UTF-8 bytes each token id stands for (0 for special tokens), to count bytes of targets."""
    special = set(tokenizer.special_tokens.values()) if hasattr(tokenizer, "special_tokens") \
        else {tokenizer.eot_id}
    return np.array([0 if i in special else len(tokenizer.token_bytes(i))
                     for i in range(tokenizer.vocab_size)], dtype=np.int64)


class AfterSeparator(NamedTuple):
    """The bytes each token id spells right after the separator ``eot_id``, for a tokenizer whose
    texts begin with a dummy space that decoding drops (see :func:`byte_lengths_after_eot`)."""

    eot_id: int
    byte_lengths: np.ndarray  # (vocab_size,)


def byte_lengths_after_eot(tokenizer) -> AfterSeparator | None:
    """Where a token after the eot separator spells fewer bytes than ``token_byte_lengths`` says.

    A sentencepiece-style tokenizer (llama2.c's, which has ``token_bytes_after_bos``) encodes
    each text with a space in front that is not part of it, and its decoder drops that space
    from the first piece after BOS, its separator. Counting it would add one byte a text, so
    bits per byte would come out a little low. None for a tokenizer without a dummy prefix (the
    book's BPE).
    """
    if not hasattr(tokenizer, "token_bytes_after_bos"):
        return None
    if tokenizer.eot_id != tokenizer.bos_id:
        raise ValueError(f"{tokenizer!r} separates texts with {tokenizer.eot_id}, not with BOS "
                         f"({tokenizer.bos_id}), after which its decoder drops the dummy space")
    lengths = token_byte_lengths(tokenizer)
    for token_id in range(tokenizer.vocab_size):
        if lengths[token_id]:  # special tokens spell nothing anywhere
            lengths[token_id] = len(tokenizer.token_bytes_after_bos(token_id))
    return AfterSeparator(int(tokenizer.eot_id), lengths)


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


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over all processes, on its device (no host read); itself in one."""
    if rank_and_world()[1] == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor


def check_token_array(name: str, tokens) -> None:
    """Raise TypeError unless ``tokens`` holds integers (a numpy array, memmap or tensor)."""
    dtype = getattr(tokens, "dtype", None)
    if isinstance(dtype, torch.dtype):
        integer = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
    else:
        integer = dtype is not None and np.issubdtype(dtype, np.integer)
    if not integer:
        raise TypeError(f"{name} must be an array of integer token ids, got "
                        f"{type(tokens).__name__} of dtype {dtype}; convert with "
                        f".astype(np.int64) (numpy) or .long() (torch)")


def as_token_array(name: str, tokens) -> np.ndarray:
    """``tokens`` checked to hold integer ids (see :func:`check_token_array`), as a numpy array:
    a tensor is copied to the host, an array or memmap is returned as it is."""
    check_token_array(name, tokens)
    if isinstance(tokens, torch.Tensor):
        return tokens.detach().cpu().numpy()
    return tokens


def check_token_ids(ids: np.ndarray, vocab_size: int) -> None:
    """Raise ValueError unless every id of a host array lies in [0, vocab_size). No device read:
    the trainer checks a batch here before copying it to the device."""
    if ids.size == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(f"token id {bad} is outside [0, vocab_size={vocab_size}); the "
                         f"tokenizer and the model's vocab_size disagree")


def check_validation_set(tokens: np.ndarray, byte_lengths, vocab_size: int) -> np.ndarray:
    """Raise ValueError unless a flat array of ids can be scored in bits per byte: at least two
    ids, each inside the model's vocabulary and the byte table, whose targets spell some bytes.
    Returns the table as an int64 array. Reads the ids in chunks: a large memmap is not copied.
    """
    table = np.asarray(byte_lengths)
    if table.ndim != 1 or not np.issubdtype(table.dtype, np.integer):
        raise TypeError(f"byte_lengths must be a flat integer array (token_byte_lengths("
                        f"tokenizer)), got shape {table.shape} of dtype {table.dtype}")
    table = table.astype(np.int64, copy=False)
    if tokens.ndim != 1 or len(tokens) < 2:
        raise ValueError(f"validation tokens must be a flat array of at least 2 ids (one to read, "
                         f"one to predict), got shape {tuple(tokens.shape)}")
    spelled = 0
    for start in range(0, len(tokens), 1 << 20):
        chunk = np.asarray(tokens[start:start + (1 << 20) + 1])
        check_token_ids(chunk, vocab_size)
        if int(chunk.max()) >= len(table):
            raise ValueError(f"validation token id {int(chunk.max())} has no entry in "
                             f"byte_lengths ({len(table)} entries); pass token_byte_lengths() "
                             f"of the tokenizer that made the tokens")
        spelled += int(table[chunk[1:]].sum())
    if spelled <= 0:
        raise ValueError("the validation targets spell no bytes (only special tokens, or a "
                         "byte table of zeros), so bits per byte is undefined; pass more text "
                         "or token_byte_lengths() of the tokenizer that made the tokens")
    return table


@torch.no_grad()
def evaluate_tokens(model: Transformer, tokens: np.ndarray, byte_lengths: np.ndarray,
                    seq_len: int, batch_size: int = 16, device: torch.device | str = "cpu",
                    precision: Precision | None = None, max_windows: int | None = None,
                    progress: bool = False, after_eot: AfterSeparator | None = None) -> dict:
    """Mean loss per token and bits per byte over a token array (every token, or a prefix).

    ``byte_lengths[id]`` is the bytes a target id spells (``token_byte_lengths``); ``after_eot``,
    for a tokenizer with a dummy prefix, what it spells right after the separator instead
    (``byte_lengths_after_eot``). Windows are split across processes when running distributed;
    sums are all-reduced, so every rank returns the same figures.
    """
    device = torch.device(device)
    precision = precision or Precision("fp32", None)
    tokens = as_token_array("tokens", tokens)
    rank, world = rank_and_world()
    if max_windows is not None:
        require_int("max_windows", max_windows, 1, "; pass None to score every token")
        tokens = tokens[: max_windows * seq_len + 1]
    # Checked once on the host, so the batches need no device read (pads are id 0).
    check_token_ids(np.asarray(tokens), model.config.vocab_size)
    windows = SequentialWindows(tokens, batch_size, seq_len, device=device)
    # Sums stay on the device and are read once at the end: reading them per batch would make
    # the host wait for the device at every batch.
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, tokens, bytes
    table = torch.from_numpy(np.asarray(byte_lengths, dtype=np.int64)).to(device)
    if after_eot is not None:
        eot_id = after_eot.eot_id
        table_after_eot = torch.from_numpy(
            np.asarray(after_eot.byte_lengths, dtype=np.int64)).to(device)
    mine = (batch for i, batch in enumerate(windows) if i % world == rank)
    with eval_mode(model):
        for x, y in tqdm(mine, total=math.ceil(len(windows) / world), desc="evaluate",
                         disable=not progress or rank != 0, leave=False):
            with precision.autocast(device):
                logits = model(x, check_ids=False)
            loss_sum = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(),
                                       reduction="sum")
            valid = y != IGNORE_INDEX
            # Masking by multiplication, not by y[valid]: boolean indexing waits for the device
            # to count the selected elements.
            targets = y.clamp(min=0)
            spelled = table[targets]  # (B, T) bytes of each target
            if after_eot is not None:
                spelled = torch.where(x == eot_id, table_after_eot[targets], spelled)
            n_bytes = (spelled * valid).sum()
            sums += torch.stack([loss_sum.double(), valid.sum().double(), n_bytes.double()])
    loss_sum, n_tokens, n_bytes = sum_over_processes(sums).tolist()  # the one device read
    loss = loss_sum / n_tokens
    return {"loss": loss, "bits_per_byte": bits_per_byte(loss, int(n_tokens), int(n_bytes)),
            "tokens": int(n_tokens), "bytes": int(n_bytes)}
