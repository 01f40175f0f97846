"""Token cache, training batches and bits per byte: each split is encoded once into a flat file.

Layout of a cache: ``eot s1 eot s2 eot ... sN eot`` (``eot`` = the tokenizer's eot_id), one
flat array of uint16 (uint32 if the vocabulary needs it) in a ``.bin`` file, memory-mapped, with
a ``.json`` file beside it recording what it was built from. The leading eot means the first
token of every story is predicted from the same "a story starts here" context.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checks import require_int, require_text_column
from ..fileio import write_atomically, write_text_atomically

DEFAULT_CACHE_DIR = "~/.cache/transformer_lib/tokens"
IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index
CACHE_FORMAT = 1  # bump when the file layout changes, so old caches are rebuilt


@dataclass(frozen=True)
class TextFingerprint:
    """What identifies a list of texts: sha256 over their UTF-8 bytes, and their sizes."""

    sha256: str
    n_texts: int
    n_bytes: int


@dataclass(frozen=True)
class TokenCache:
    """One encoded split: the memory-mapped tokens, their metadata, and whether it was reused."""

    tokens: np.ndarray  # (n_tokens,) np.memmap, uint16 or uint32
    meta: dict[str, Any]
    path: Path  # the .bin file; the metadata is path.with_suffix(".json")
    reused: bool  # True if an existing cache matched and nothing was encoded

    @property
    def n_tokens(self) -> int:
        """Length of the token array, eot separators included."""
        return int(self.meta["n_tokens"])

    @property
    def n_targets(self) -> int:
        """Number of next-token predictions over the whole array: every token but the first."""
        return self.n_tokens - 1

    @property
    def n_bytes(self) -> int:
        """UTF-8 bytes of the (normalised) stories, separators not counted."""
        return int(self.meta["n_bytes"])

    def bits_per_byte(self, mean_loss_nats: float) -> float:
        """bits_per_byte for a mean loss taken over ALL n_targets predictions of this cache."""
        return bits_per_byte(mean_loss_nats, self.n_targets, self.n_bytes)


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype holding every id: uint16 up to 65,536 ids, else uint32."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def fingerprint_texts(texts: Sequence[str], batch_size: int = 4096) -> TextFingerprint:
    """Hash texts in order (length-prefixed, so ["ab", "c"] != ["a", "bc"]) and count bytes."""
    digest = hashlib.sha256()
    n_texts = n_bytes = 0
    for batch in _text_batches(texts, batch_size):
        for text in batch:
            data = text.encode("utf-8")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
            n_bytes += len(data)
        n_texts += len(batch)
    return TextFingerprint(digest.hexdigest(), n_texts, n_bytes)


def build_token_cache(
    texts: Sequence[str],
    tokenizer,
    cache_dir: str | os.PathLike | None = None,
    *,
    name: str = "tokens",
    source: str = "unspecified",
    batch_size: int = 1024,
    progress: bool = True,
) -> TokenCache:
    """Encode texts once into ``cache_dir/{name}-{tokenizer.name}-{key}.bin`` (the names with
    characters other than letters, digits, ``.``, ``_`` and ``-`` made ``_``), or reuse it.

    texts is a sequence of str or a `datasets.Dataset` with a ``text`` column. The key hashes
    the tokenizer's content hash and a fingerprint of the texts, so the cache is reused exactly
    when both match and built anew when either differs. Encoding runs in batches over threads.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of str (one per story), got one str")
    cache_dir = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    fingerprint = fingerprint_texts(texts)
    dtype = token_dtype(tokenizer.vocab_size)
    key_fields = {
        "format": CACHE_FORMAT,
        "tokenizer_hash": tokenizer.content_hash,
        "texts_sha256": fingerprint.sha256,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
    # the names only label the file (the key identifies it): keep them to safe characters
    label = re.sub(r"[^A-Za-z0-9._-]", "_", f"{name}-{tokenizer.name}")
    bin_path = cache_dir / f"{label}-{key}.bin"

    existing = _open_if_valid(bin_path, key_fields)
    if existing is not None:
        return existing

    cache_dir.mkdir(parents=True, exist_ok=True)
    n_tokens = _encode_to_file(texts, tokenizer, bin_path, dtype, batch_size, progress, name)
    meta = {
        **key_fields,
        "tokenizer_name": tokenizer.name,
        "vocab_size": tokenizer.vocab_size,
        "eot_id": tokenizer.eot_id,
        "source": source,
        "n_stories": fingerprint.n_texts,
        "n_bytes": fingerprint.n_bytes,
        "n_tokens": n_tokens,
        "dtype": dtype.name,
        "layout": "eot story eot story ... eot",
    }
    _write_json_atomically(bin_path.with_suffix(".json"), meta)
    return TokenCache(_memmap(bin_path, meta), meta, bin_path, reused=False)


def open_token_cache(path: str | os.PathLike) -> TokenCache:
    """Open an existing cache by its .bin or .json path, checking the file size."""
    bin_path = Path(path).expanduser().with_suffix(".bin")
    meta_path = bin_path.with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"no token cache metadata {str(meta_path)!r}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not _size_matches(bin_path, meta):
        raise ValueError(
            f"token cache {str(bin_path)!r} is missing or truncated; delete it and rebuild"
        )
    return TokenCache(_memmap(bin_path, meta), meta, bin_path, reused=True)


def cache_split(
    split: str,
    tokenizer,
    source: str | os.PathLike | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    datasets_cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> TokenCache:
    """Load a TinyStories split with load_stories and return its token cache (built once)."""
    from .stories import describe_source, load_stories

    stories = load_stories(split, source=source, limit=limit, cache_dir=datasets_cache_dir)
    described = describe_source(split, source)
    if limit is not None:
        described += f" (first {limit} stories)"
    name = f"tinystories-{split}" if limit is None else f"tinystories-{split}-first{limit}"
    return build_token_cache(
        stories, tokenizer, cache_dir, name=name, source=described, progress=progress
    )


# ---- batches --------------------------------------------------------------------------------


class RandomWindows:
    """Endless training batches (x, y) of random windows; y is x shifted left by one token.

    Batch number ``step`` depends only on (seed, step), through its own numpy Generator (no
    global RNG), so ``state_dict()`` is just the step count and resuming is exact.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        batch_size: int,
        seq_len: int,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        _check_positive(batch_size=batch_size, seq_len=seq_len)
        require_int("seed", seed, 0)
        if len(tokens) < seq_len + 1:
            raise ValueError(
                f"a window needs seq_len + 1 = {seq_len + 1} tokens but there are only "
                f"{len(tokens)}; use a shorter seq_len or more text"
            )
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.seed = seed
        self.device = torch.device(device)
        self.step = 0  # index of the next batch

    def __iter__(self) -> RandomWindows:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.batch_at(self.step)
        self.step += 1
        return batch

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number `step`, without moving the sampler: x, y int64 of shape (B, T)."""
        windows = self.windows_at(step)  # (B, T + 1)
        return ids_to_device(windows[:, :-1], self.device), ids_to_device(windows[:, 1:], self.device)

    def windows_at(self, step: int) -> np.ndarray:
        """Batch number `step` as one host array (B, T + 1) of int64: x is [:, :-1], y [:, 1:].

        For callers that check or slice a batch on the host before copying it to a device.
        """
        rng = np.random.default_rng((self.seed, step))
        starts = rng.integers(0, len(self.tokens) - self.seq_len, size=self.batch_size)
        index = starts[:, None] + np.arange(self.seq_len + 1)  # (B, T + 1)
        return self.tokens[index].astype(np.int64)  # (B, T + 1)

    def weights_at(self, step: int) -> None:
        """Every target counts once: None (the interface of :class:`RandomRows`)."""
        return None

    def state_dict(self) -> dict[str, int]:
        """Everything needed to resume the batch stream exactly (save it with the checkpoint)."""
        return {
            "seed": self.seed,
            "step": self.step,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "n_tokens": len(self.tokens),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from state_dict(); refuse a state recorded for other shapes or other tokens."""
        _resume_sampler(self, state, ("batch_size", "seq_len", "n_tokens"))


class RandomRows:
    """Endless training batches of whole rows: for examples that must start at their beginning.

    ``rows`` is (N, seq_len + 1): one example a row (a prompt and its answer, say), padded to
    the common length. Batch number ``step`` is ``batch_size`` rows drawn with replacement by
    (seed, step), as :class:`RandomWindows` draws its starts, so resuming is exact. ``weights``,
    if given, has the rows' shape and says how much each token counts as a *target* (column 0
    is never a target): 0 leaves a prompt or padding out of the loss, more than 1 stresses a
    token. The trainer takes rows wherever it takes a flat token array.
    """

    def __init__(self, rows: np.ndarray, batch_size: int, *, weights: np.ndarray | None = None,
                 seed: int = 0):
        _check_positive(batch_size=batch_size)
        require_int("seed", seed, 0)
        if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] < 2:
            raise ValueError(f"rows must be (N, seq_len + 1) with N >= 1 and seq_len >= 1, got "
                             f"shape {tuple(rows.shape)}")
        if weights is not None:
            if weights.shape != rows.shape:
                raise ValueError(f"weights have shape {tuple(weights.shape)} but rows have "
                                 f"{tuple(rows.shape)}: one weight per token is needed")
            if not np.isfinite(weights).all() or (weights < 0).any():
                raise ValueError("weights must be finite and non-negative")
            if not (weights[:, 1:] > 0).any(axis=1).all():
                raise ValueError("every row needs a target with a positive weight; drop rows "
                                 "whose weights are all zero")
        self.rows, self.weights = rows, weights
        self.batch_size = batch_size
        self.seq_len = rows.shape[1] - 1
        self.seed = seed
        self.step = 0  # index of the next batch

    def _picked(self, step: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, step))
        return rng.integers(0, len(self.rows), size=self.batch_size)

    def windows_at(self, step: int) -> np.ndarray:
        """Batch number ``step`` as one host array (B, T + 1) of int64: x is [:, :-1], y [:, 1:]."""
        return self.rows[self._picked(step)].astype(np.int64)  # (B, T + 1)

    def weights_at(self, step: int) -> np.ndarray | None:
        """The targets' weights of batch ``step``, (B, T) float32, or None without weights."""
        if self.weights is None:
            return None
        return self.weights[self._picked(step)][:, 1:].astype(np.float32)  # (B, T)

    def state_dict(self) -> dict[str, int]:
        """Everything needed to resume the batch stream exactly (save it with the checkpoint)."""
        return {"seed": self.seed, "step": self.step, "batch_size": self.batch_size,
                "seq_len": self.seq_len, "n_rows": len(self.rows)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from state_dict(); refuse a state recorded for other shapes or other rows."""
        _resume_sampler(self, state, ("batch_size", "seq_len", "n_rows"))


def _resume_sampler(sampler, state: dict[str, int], fixed: tuple[str, ...]) -> None:
    """Set a sampler's seed and step from ``state``, refusing one whose ``fixed`` fields differ
    from the sampler's own: resuming would not reproduce the batch stream."""
    mine = sampler.state_dict()
    for field in fixed:
        if state.get(field) != mine[field]:
            raise ValueError(
                f"sampler state has {field}={state.get(field)} but this sampler has "
                f"{mine[field]}; resuming would not reproduce the batch stream"
            )
    sampler.seed = int(state["seed"])
    sampler.step = int(state["step"])


class SequentialWindows:
    """Evaluation batches: non-overlapping windows that predict every token after the first once.

    Window i covers inputs tokens[i*T : i*T+T] and targets one further. The last window may be
    short: its x is padded with pad_id and its y with IGNORE_INDEX (-100), which
    ``F.cross_entropy`` skips by default; the last batch may have fewer rows. Over a full pass
    the non-ignored targets are exactly tokens[1:], i.e. ``n_targets`` of them. Each window
    starts with an empty context, the usual price of non-overlapping evaluation.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        batch_size: int,
        seq_len: int,
        *,
        device: str | torch.device = "cpu",
        pad_id: int = 0,
    ):
        _check_positive(batch_size=batch_size, seq_len=seq_len)
        if len(tokens) < 2:
            raise ValueError(f"need at least 2 tokens to predict one, got {len(tokens)}")
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.device = torch.device(device)
        self.pad_id = pad_id
        self.n_targets = len(tokens) - 1
        self.n_windows = math.ceil(self.n_targets / seq_len)

    def __len__(self) -> int:
        """Number of batches in one pass."""
        return math.ceil(self.n_windows / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for first in range(0, self.n_windows, self.batch_size):
            rows = min(self.batch_size, self.n_windows - first)
            x = np.full((rows, self.seq_len), self.pad_id, dtype=np.int64)  # (B, T)
            y = np.full((rows, self.seq_len), IGNORE_INDEX, dtype=np.int64)  # (B, T)
            for row in range(rows):
                start = (first + row) * self.seq_len
                length = min(self.seq_len, self.n_targets - start)
                x[row, :length] = self.tokens[start : start + length]
                y[row, :length] = self.tokens[start + 1 : start + 1 + length]
            yield ids_to_device(x, self.device), ids_to_device(y, self.device)


# ---- bits per byte --------------------------------------------------------------------------


def bits_per_byte(mean_loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Convert a mean next-token loss (nats per token) over a text to bits per UTF-8 byte.

    bpb = mean_loss_nats * n_tokens / (ln 2 * n_bytes). It compares models across tokenizers,
    because the total information (loss summed over the text) is divided by the text's size.
    Contract: the mean must be over ALL n_tokens predictions of the held-out text (e.g. one
    pass of SequentialWindows over a TokenCache: n_tokens = cache.n_targets, n_bytes =
    cache.n_bytes), not over a random sample of windows, whose token count has no fixed
    relation to n_bytes. Predicting eot separators is counted in the loss, not in the bytes.
    """
    if n_tokens <= 0 or n_bytes <= 0:
        raise ValueError(f"n_tokens and n_bytes must be positive, got {n_tokens} and {n_bytes}")
    if not math.isfinite(mean_loss_nats) or mean_loss_nats < 0:
        raise ValueError(
            f"mean_loss_nats must be a finite, non-negative loss, got {mean_loss_nats}"
        )
    return mean_loss_nats * n_tokens / (math.log(2) * n_bytes)


def nats_to_bits(nats: float) -> float:
    """An amount of information in nats (natural-log units, what cross-entropy returns) in bits."""
    return nats / math.log(2)


# ---- helpers --------------------------------------------------------------------------------


def _text_batches(texts: Sequence[str], batch_size: int) -> Iterator[list[str]]:
    """Yield lists of texts from a sequence of str or a datasets.Dataset with a text column."""
    if hasattr(texts, "column_names"):  # a datasets.Dataset: read Arrow in batches, not rows
        require_text_column(texts)
        for batch in texts.iter(batch_size=batch_size):
            yield batch["text"]
        return
    for first in range(0, len(texts), batch_size):
        batch = list(texts[first : first + batch_size])
        bad = next((text for text in batch if not isinstance(text, str)), None)
        if bad is not None:
            raise TypeError(f"texts must all be str, got {type(bad).__name__}")
        yield batch


def _encode_to_file(
    texts, tokenizer, bin_path: Path, dtype: np.dtype, batch_size: int, progress: bool, name: str
) -> int:
    """Write eot + (story + eot) for every story to bin_path atomically; return the count."""
    eot = tokenizer.eot_id
    n_tokens = 0
    n_texts = len(texts)

    def write(file) -> None:
        nonlocal n_tokens
        with tqdm(total=n_texts, unit="story", desc=f"encoding {name}",
                  disable=not progress) as bar:
            file.write(np.array([eot], dtype=dtype).tobytes())
            n_tokens += 1
            for batch in _text_batches(texts, batch_size):
                encoded = tokenizer.encode_batch(batch, add_eot=True)
                flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=dtype)
                file.write(flat.tobytes())
                n_tokens += flat.size
                bar.update(len(batch))

    write_atomically(bin_path, write)  # a crash mid-way never leaves a cache that looks complete
    return n_tokens


def _open_if_valid(bin_path: Path, key_fields: dict[str, Any]) -> TokenCache | None:
    meta_path = bin_path.with_suffix(".json")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    # Anything but the object this module writes (say a `[]` left by another tool) is stale.
    if not isinstance(meta, dict):
        return None
    if any(meta.get(field) != value for field, value in key_fields.items()):
        return None
    try:
        if not _size_matches(bin_path, meta):
            return None
    except (KeyError, TypeError, ValueError):  # a count or dtype missing or mistyped
        return None
    return TokenCache(_memmap(bin_path, meta), meta, bin_path, reused=True)


def _size_matches(bin_path: Path, meta: dict[str, Any]) -> bool:
    expected = int(meta["n_tokens"]) * np.dtype(meta["dtype"]).itemsize
    return bin_path.is_file() and bin_path.stat().st_size == expected


def _memmap(bin_path: Path, meta: dict[str, Any]) -> np.ndarray:
    return np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(int(meta["n_tokens"]),))


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomically(path, json.dumps(payload, indent=2))


def ids_to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array of token ids as an int64 tensor on ``device``, copied without waiting."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
    if device.type == "cuda":  # pinned memory lets the copy overlap with compute
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _check_positive(**sizes: int) -> None:
    for field, value in sizes.items():
        require_int(field, value, 1)
