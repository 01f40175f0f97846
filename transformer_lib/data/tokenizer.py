"""One small tokenizer interface served by tiktoken: GPT-2's encoding, or a byte-level BPE trained here.

Training uses Hugging Face `tokenizers` (fast, ~1 s for vocab 4096 on 2 MB); its learned merges
are turned into tiktoken ranks, so encoding is tiktoken's and gives the same ids as the trained
HF tokenizer. The book teaches BPE from scratch on a toy corpus; this module is the fast path.

Special tokens: ``encode`` treats the text "<|endoftext|>" inside user text as ordinary text
(it is never turned into ``eot_id``), so untrusted text cannot inject a document boundary. The
end-of-text id is added only on request: ``encode(text, add_eot=True)``, or by the token cache,
which puts ``eot_id`` between stories.

Command line (writes the file that :func:`load_tokenizer` reads)::

    tlib-tokenizer train --input PATH --vocab-size 4096 --out bpe4096.json
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import tiktoken

from ..checks import require_int

EOT_TEXT = "<|endoftext|>"
# GPT-2's pre-tokenisation regex as tiktoken writes it (r50k_base/gpt2); it splits text exactly
# like the Hugging Face ByteLevel pre-tokenizer's GPT-2 regex, so trained ids match HF's.
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
FILE_FORMAT = "transformer_lib.tokenizer/1"
GPT2_HOST = "https://openaipublic.blob.core.windows.net"
GPT2_CACHED_URLS = (  # the files tiktoken.get_encoding("gpt2") downloads and caches
    f"{GPT2_HOST}/gpt-2/encodings/main/vocab.bpe",
    f"{GPT2_HOST}/gpt-2/encodings/main/encoder.json",
)


class Tokenizer:
    """A byte-level BPE: tiktoken ranks plus a split pattern, with <|endoftext|> as special token.

    Args:
        name: a label for humans and cache file names (not part of ``content_hash``).
        pattern: the pre-tokenisation regex (tiktoken syntax).
        ranks: token bytes -> id, ids 0..n-1 in merge priority; must contain all 256 single bytes
            so that every string can be encoded.
        special_tokens: special text -> id; must contain "<|endoftext|>". Default: it gets id n.
    """

    def __init__(
        self,
        name: str,
        pattern: str,
        ranks: Mapping[bytes, int],
        special_tokens: Mapping[str, int] | None = None,
    ):
        ranks = dict(ranks)
        special_tokens = dict(special_tokens or {EOT_TEXT: len(ranks)})
        _check_ranks(ranks)
        _check_special_tokens(special_tokens, n_ranks=len(ranks))
        self.name = name
        self.pattern = pattern
        self._encoding = tiktoken.Encoding(
            name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens
        )
        self._ranks = MappingProxyType(ranks)
        self._special_tokens = MappingProxyType(special_tokens)
        self.content_hash = _content_hash(pattern, ranks, special_tokens)

    @property
    def vocab_size(self) -> int:
        """Number of ids (ordinary and special): the model's embedding table size."""
        return self._encoding.n_vocab

    @property
    def eot_id(self) -> int:
        """Id of <|endoftext|>, the separator between stories."""
        return self._special_tokens[EOT_TEXT]

    @property
    def ranks(self) -> Mapping[bytes, int]:
        """Read-only view of token bytes -> id for the ordinary (mergeable) tokens."""
        return self._ranks

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """Read-only view of special text -> id."""
        return self._special_tokens

    def encode(self, text: str, *, add_eot: bool = False) -> list[int]:
        """Encode text to ids; "<|endoftext|>" in text stays plain text; add_eot appends eot_id."""
        if not isinstance(text, str):
            raise TypeError(
                f"encode expects a str, got {type(text).__name__}; use encode_batch for many texts"
            )
        ids = self._encoding.encode_ordinary(text)
        return ids + [self.eot_id] if add_eot else ids

    def encode_batch(
        self, texts: Sequence[str], *, add_eot: bool = False, num_threads: int | None = None
    ) -> list[list[int]]:
        """Encode many texts in parallel threads (tiktoken releases the GIL), same rules as encode.

        num_threads defaults to the CPU count, at most 8; more threads than cores only adds
        switching.
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of str, got one str; use encode")
        texts = list(texts)
        bad = next((t for t in texts if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"encode_batch expects str items, got {type(bad).__name__}")
        num_threads = num_threads or min(8, os.cpu_count() or 1)
        batch = self._encoding.encode_ordinary_batch(texts, num_threads=num_threads)
        return [ids + [self.eot_id] for ids in batch] if add_eot else batch

    def decode(self, ids: Iterable[int]) -> str:
        """Decode ids to text; bytes that do not form valid UTF-8 become U+FFFD.

        Accepts lists, numpy arrays and torch tensors. decode(encode(s)) == s for every string
        that is valid Unicode (lone surrogates cannot be UTF-8 and are replaced on encode).
        """
        ids = ids.tolist() if hasattr(ids, "tolist") else [_as_index(i) for i in ids]
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(
                f"cannot decode ids {bad[:5]}: ids must be ints in [0, {self.vocab_size})"
            )
        return self._encoding.decode(ids)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (a token may hold part of a multi-byte character)."""
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} is outside [0, {self.vocab_size})")
        return self._encoding.decode_single_token_bytes(token_id)

    def save(self, path: str | os.PathLike) -> Path:
        """Write everything needed to rebuild this tokenizer to one JSON file; return its path."""
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FILE_FORMAT,
            "name": self.name,
            "pattern": self.pattern,
            "special_tokens": dict(self._special_tokens),
            "content_hash": self.content_hash,
            "ranks": _ranks_to_base64(self._ranks),  # list position = id
        }
        from ..fileio import write_text_atomically

        # Atomic and fsynced: a crash never leaves half a tokenizer file.
        return write_text_atomically(path, json.dumps(payload))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a file written by save(); refuse it if its content hash does not match."""
        path = Path(path).expanduser()
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{str(path)!r} is not a tokenizer JSON file: {err}") from err
        if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise ValueError(
                f"{str(path)!r} is not a {FILE_FORMAT} file (format: {found!r}); "
                f"write one with Tokenizer.save or `tlib-tokenizer train`"
            )
        ranks = {base64.b64decode(token): rank for rank, token in enumerate(payload["ranks"])}
        tokenizer = cls(payload["name"], payload["pattern"], ranks, payload["special_tokens"])
        if tokenizer.content_hash != payload["content_hash"]:
            raise ValueError(
                f"{str(path)!r} is corrupted or was edited: content hash {tokenizer.content_hash} "
                f"!= recorded {payload['content_hash']}; re-train or re-save it"
            )
        return tokenizer

    def __reduce__(self):
        # rebuild from the constructor's arguments: tiktoken's core object cannot be pickled
        ranks, special = dict(self._ranks), dict(self._special_tokens)
        return (type(self), (self.name, self.pattern, ranks, special))

    def __repr__(self) -> str:
        return (
            f"Tokenizer(name={self.name!r}, vocab_size={self.vocab_size}, eot_id={self.eot_id}, "
            f"hash={self.content_hash[:12]})"
        )


def _as_index(value):
    """An int from an int-like id (a numpy integer or a 0-dim tensor); other values unchanged."""
    try:
        return operator.index(value)
    except TypeError:
        return value


def load_tokenizer(path_or_name: str | os.PathLike):
    """Load a tokenizer by name or file.

    Accepts "gpt2" (tiktoken's GPT-2 encoding; downloaded once, then read from tiktoken's cache,
    see TIKTOKEN_CACHE_DIR), a ``.json`` file written by :meth:`Tokenizer.save` or the CLI, a
    ``.tiktoken`` ranks file (lines "base64-token rank"), used with GPT-2's split pattern and
    <|endoftext|> after the last rank: GPT-2's is ``r50k_base.tiktoken``, the same ranks as "gpt2";
    or a llama2.c tokenizer: a ``.bin`` file (``tok512.bin``, ``tokenizer.bin``) or the name
    "tok512" / "llama2c:tok512", which returns a :class:`~transformer_lib.data.llama2c.Llama2cTokenizer`.
    """
    from . import llama2c

    path = Path(path_or_name).expanduser()
    if str(path_or_name) == "gpt2" and not path.exists():
        return _load_gpt2()
    name = str(path_or_name)
    if not path.exists() and (name.startswith("llama2c:") or name in llama2c.TOKENIZER_NAMES):
        return llama2c.load_llama2c_tokenizer(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"no tokenizer {str(path_or_name)!r}: pass 'gpt2', a .json file written by "
            f"Tokenizer.save (or `tlib-tokenizer train`), a .tiktoken "
            f"ranks file, a llama2.c tokenizer .bin file, or 'tok512'"
        )
    if path.suffix == ".tiktoken":
        return Tokenizer(path.stem, GPT2_PATTERN, read_tiktoken_ranks(path))
    if path.suffix == ".bin" or (path.suffix != ".json" and llama2c.is_llama2c_tokenizer(path)):
        return llama2c.Llama2cTokenizer.load(path)
    return Tokenizer.load(path)


def read_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Parse a tiktoken ranks file: one "base64-token rank" pair per line."""
    ranks = {}
    for line_number, line in enumerate(Path(path).read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as err:
            raise ValueError(
                f"{str(path)!r} line {line_number} is not 'base64-token rank': {line[:60]!r}"
            ) from err
    return ranks


def train_tokenizer(texts: Iterable[str], vocab_size: int, name: str | None = None) -> Tokenizer:
    """Train a byte-level BPE with `vocab_size` ids (including <|endoftext|>) on texts.

    A corpus too small to learn that many merges gives a smaller vocabulary, with a warning;
    the returned tokenizer's vocab_size is always the truth.
    """
    hf_tokenizer = train_hf_bpe(texts, vocab_size)
    ranks = hf_bpe_ranks(hf_tokenizer)
    if len(ranks) + 1 < vocab_size:
        warnings.warn(
            f"the corpus only supported {len(ranks) + 1} ids, fewer than vocab_size={vocab_size}",
            stacklevel=2,
        )
    return Tokenizer(name or f"bpe-{vocab_size}", GPT2_PATTERN, ranks)


def train_hf_bpe(texts: Iterable[str], vocab_size: int):
    """Train a Hugging Face ByteLevel BPE (GPT-2 regex, no prefix space) with vocab_size - 1 ids.

    One id is left for <|endoftext|>, which the tiktoken side adds as a special token.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    check_vocab_size(vocab_size)
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of str (one per document), got one str")
    hf_tokenizer = HFTokenizer(models.BPE())
    hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf_tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
        show_progress=False,
    )
    hf_tokenizer.train_from_iterator(texts, trainer)
    return hf_tokenizer


def hf_bpe_ranks(hf_tokenizer) -> dict[bytes, int]:
    """Turn a trained HF ByteLevel BPE vocab into tiktoken ranks, keeping HF's ids.

    HF gives merged tokens increasing ids in merge order, and tiktoken merges the pair whose
    result has the lowest rank, so using the ids as ranks reproduces HF's merges.
    """
    char_to_byte = {char: byte for byte, char in _bytes_to_unicode().items()}
    vocab = hf_tokenizer.get_vocab(with_added_tokens=False)
    return {bytes(char_to_byte[char] for char in token): idx for token, idx in vocab.items()}


def check_vocab_size(vocab_size: int) -> None:
    """Raise unless vocab_size leaves room for the 256 bytes, <|endoftext|> and one merge."""
    require_int("vocab_size", vocab_size, 256 + 1 + 1,
                why=": a byte-level BPE needs 256 byte tokens, 1 special token (<|endoftext|>) "
                    "and at least one merge")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which HF ByteLevel tokens are spelled in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {byte: chr(byte) for byte in printable}
    others = (byte for byte in range(256) if byte not in table)
    table.update({byte: chr(256 + offset) for offset, byte in enumerate(others)})
    return table


def _load_gpt2() -> Tokenizer:
    """GPT-2 via tiktoken, failing in seconds (not a TCP timeout) when it cannot be downloaded."""
    from tiktoken_ext import openai_public

    from .stories import url_reachable

    if not all(_tiktoken_cached(url) for url in GPT2_CACHED_URLS) and not url_reachable(GPT2_HOST):
        raise ConnectionError(_gpt2_unavailable(f"{GPT2_HOST} is unreachable"))
    try:
        spec = openai_public.gpt2()
    except Exception as err:  # requests/OSError/hash errors all mean "no usable GPT-2 files"
        raise ConnectionError(_gpt2_unavailable(f"{type(err).__name__}: {err}")) from err
    return Tokenizer("gpt2", spec["pat_str"], spec["mergeable_ranks"], spec["special_tokens"])


def _tiktoken_cached(url: str) -> bool:
    """Whether tiktoken's own download cache already holds url (its key is the URL's sha1)."""
    import tempfile

    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if cache_dir == "":
        return False  # caching disabled
    return os.path.exists(os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest()))


def _gpt2_unavailable(reason: str) -> str:
    return (
        f"cannot load the GPT-2 encoding ({reason}). Fix one of: go online once so tiktoken can "
        f"download and cache it (TIKTOKEN_CACHE_DIR sets where); or pass the path of a local "
        f"ranks file instead of 'gpt2', e.g. load_tokenizer('r50k_base.tiktoken') (same ranks "
        f"as GPT-2); or train one: tlib-tokenizer train --help"
    )


def _check_ranks(ranks: dict[bytes, int]) -> None:
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError("ranks must give each token a distinct id 0..n-1 with no gaps")
    missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
    if missing:
        raise ValueError(
            f"ranks lack {len(missing)} single-byte tokens (e.g. byte {missing[0]}); a byte-level "
            f"BPE needs all 256 so that every string can be encoded"
        )


def _check_special_tokens(special_tokens: dict[str, int], n_ranks: int) -> None:
    if EOT_TEXT not in special_tokens:
        raise ValueError(f"special_tokens must contain {EOT_TEXT!r}, got {list(special_tokens)}")
    clashing = {text: i for text, i in special_tokens.items() if i < n_ranks}
    if clashing:
        raise ValueError(f"special token ids {clashing} collide with ordinary ids 0..{n_ranks - 1}")


def _ranks_to_base64(ranks: Mapping[bytes, int]) -> list[str]:
    ordered = sorted(ranks, key=ranks.__getitem__)
    return [base64.b64encode(token).decode("ascii") for token in ordered]


def _content_hash(pattern: str, ranks: Mapping[bytes, int], special: Mapping[str, int]) -> str:
    """sha256 over everything that decides the ids, so caches can tell tokenizers apart."""
    payload = {
        "pattern": pattern,
        "ranks": _ranks_to_base64(ranks),
        "special": sorted(special.items()),
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


# ---- command line ---------------------------------------------------------------------------
