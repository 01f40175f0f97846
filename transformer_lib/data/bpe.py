"""The merges of a byte-level BPE, recovered from its rank table.

A :class:`~transformer_lib.data.tokenizer.Tokenizer` stores tiktoken *ranks* (token bytes ->
id), not the merges its trainer learned. Each multi-byte token was made by one merge of two
tokens ranked below it, and those two parts are what BPE leaves when it encodes the token's
own bytes with only the lower-ranked tokens (tiktoken's rule: repeatedly join the neighbouring
pair whose joined bytes have the lowest rank). Chapter 1 encodes with these merges from
scratch and checks its ids against the library's.
"""

from __future__ import annotations

from collections.abc import Mapping


def bpe_parts(token: bytes, ranks: Mapping[bytes, int], below: int) -> list[bytes]:
    """Encode ``token`` with tiktoken's rule, using only the tokens ranked below ``below``."""
    parts = [bytes([byte]) for byte in token]
    while len(parts) > 1:
        joined = [ranks.get(left + right, below) for left, right in zip(parts, parts[1:],
                                                                           strict=False)]
        best = min(range(len(joined)), key=joined.__getitem__)
        if joined[best] >= below:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts


def merges_from_ranks(ranks: Mapping[bytes, int]) -> dict[tuple[int, int], int]:
    """The merge that made each multi-byte token: ``{(left id, right id): token id}``.

    In increasing id order, which is the order the trainer learned them in. Raises ValueError
    for a rank table that no sequence of merges can have produced.
    """
    merges = {}
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = bpe_parts(token, ranks, below=rank)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (id {rank}) is not the merge of two tokens ranked "
                             f"below it (BPE leaves {len(parts)} parts): not a BPE rank table")
        merges[(ranks[parts[0]], ranks[parts[1]])] = rank
    return merges
