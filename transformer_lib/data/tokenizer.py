"""One small tokenizer interface served by tiktoken: GPT-2's encoding, or a byte-level BPE trained here.

Training uses Hugging Face `tokenizers` (fast, ~1 s for vocab 4096 on 2 MB); its learned merges
are turned into tiktoken ranks, so encoding is tiktoken's and gives the same ids as the trained
HF tokenizer. The book teaches BPE from scratch on a toy corpus; this module is the fast path.

Special tokens: by default ``encode`` treats the text "<|endoftext|>" inside user text as
ordinary text (it is never turned into ``eot_id``), so untrusted text cannot inject a document
boundary. The end-of-text id is added on request: ``encode(text, add_eot=True)``, or by the
token cache, which puts ``eot_id`` between stories. Text that does mark its boundaries with
special tokens (a corpus joined by "<|endoftext|>") is encoded with ``allowed_special``, as in
tiktoken: a set of special texts, or "all". ``disallowed_special`` (tiktoken's check, which
tiktoken applies by default and we apply only on request) raises on special text instead.

GPT-2-style files (``vocab.json`` + ``merges.txt``, as GPT-2 and Hugging Face write them) load
with :meth:`Tokenizer.from_gpt2_files`; special tokens may have any ids, 0 included.

Command line (writes the file that :func:`load_tokenizer` reads)::

    tlib-tokenizer train --input PATH --vocab-size 4096 --out bpe4096.json
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import tiktoken

from ..checks import require_int, require_token_ids, texts_of

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
        ranks: token bytes -> id, in merge priority (a merged token with a lower id is merged
            first); must contain all 256 single bytes so that every string can be encoded.
        special_tokens: special text -> id; must contain "<|endoftext|>". Default: it gets id n.
            Ordinary and special ids together are 0..vocab_size-1, each once, so a special
            token may come first (id 0) or anywhere between the ranks.
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
        _check_special_tokens(special_tokens, ranks)
        self.name = name
        self.pattern = pattern
        self._encoding = tiktoken.Encoding(
            name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens
        )
        self._ranks = MappingProxyType(ranks)
        self._special_tokens = MappingProxyType(special_tokens)
        self._special_finders: dict[frozenset[str], re.Pattern] = {}
        self.content_hash = _content_hash(pattern, ranks, special_tokens)

    @classmethod
    def from_gpt2_files(
        cls,
        vocab_json: str | os.PathLike,
        merges_txt: str | os.PathLike,
        special_tokens: Iterable[str] | Mapping[str, int] = (EOT_TEXT,),
        *,
        name: str | None = None,
        pattern: str = GPT2_PATTERN,
    ) -> Tokenizer:
        """Load a byte-level BPE from GPT-2's two files, ``vocab.json`` and ``merges.txt``.

        ``vocab.json`` maps each token, its bytes spelled with GPT-2's bytes-to-unicode table, to
        its id; ``merges.txt`` lists the merges in rank order, one "left right" pair a line
        (after an optional "#version" line). special_tokens names the vocabulary's special
        texts (ids read from vocab.json), or maps special text -> id for ones the file lacks.
        Every other token must be a single byte or the result of a merge, and merged tokens'
        ids must rise in merge order (tiktoken merges by id), as in every file a BPE trainer
        writes. The split pattern is not in the files: GPT-2's by default.
        """
        vocab_path, merges_path = Path(vocab_json).expanduser(), Path(merges_txt).expanduser()
        for kind, path in (("vocab.json", vocab_path), ("merges.txt", merges_path)):
            if not path.is_file():
                raise FileNotFoundError(f"no GPT-2 {kind} file at {str(path)!r} ({kind} and "
                                        f"merges.txt come together, as GPT-2 published them)")
        try:
            vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{str(vocab_path)!r} is not a GPT-2 vocab.json: {err}") from err
        if not isinstance(vocab, dict):
            raise ValueError(f"{str(vocab_path)!r} is not a GPT-2 vocab.json (a JSON object "
                             f"token -> id), found a {type(vocab).__name__}")
        special = _gpt2_special_tokens(special_tokens, vocab, vocab_path)
        ranks = _gpt2_ranks(vocab, special, _read_gpt2_merges(merges_path), vocab_path)
        return cls(name or vocab_path.parent.name or vocab_path.stem, pattern, ranks, special)

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

    def encode(
        self,
        text: str,
        *,
        allowed_special: str | Iterable[str] = frozenset(),
        disallowed_special: str | Iterable[str] = (),
        add_eot: bool = False,
    ) -> list[int]:
        """Encode text to ids; add_eot appends eot_id.

        Special text (such as "<|endoftext|>") inside text is ordinary text unless it is in
        allowed_special, a set of special texts or "all", which encodes it as its id (where two
        special texts overlap, the leftmost wins, then the longest). disallowed_special, a set
        or "all" (all not allowed), raises ValueError if text holds one: tiktoken's default,
        here off by default because the book encodes stories that may quote special text.
        """
        if not isinstance(text, str):
            raise TypeError(
                f"encode expects a str, got {type(text).__name__}; use encode_batch for many texts"
            )
        allowed = self._allowed(allowed_special, disallowed_special, [text])
        ids = self._encode_allowing(text, allowed) if allowed else (
            self._encoding.encode_ordinary(text))
        return ids + [self.eot_id] if add_eot else ids

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: str | Iterable[str] = frozenset(),
        disallowed_special: str | Iterable[str] = (),
        add_eot: bool = False,
        num_threads: int | None = None,
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
        allowed = self._allowed(allowed_special, disallowed_special, texts)
        if allowed:
            # the ordinary stretches of every text in one threaded batch, then special ids between
            split = [self._split_on_special(text, allowed) for text in texts]
            pieces = [piece for stretches, _ in split for piece in stretches]
            encoded = iter(self._encoding.encode_ordinary_batch(pieces, num_threads=num_threads))
            batch = [_interleave([next(encoded) for _ in stretches], special_ids)
                     for stretches, special_ids in split]
        else:
            batch = self._encoding.encode_ordinary_batch(texts, num_threads=num_threads)
        return [ids + [self.eot_id] for ids in batch] if add_eot else batch

    def _allowed(self, allowed_special, disallowed_special, texts: list[str]) -> frozenset[str]:
        """The allowed special texts; raises if a text holds a disallowed one."""
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = frozenset(self._special_tokens) - allowed
        else:
            disallowed = self._special_set(disallowed_special, "disallowed_special")
        if disallowed:
            finder = self._special_finder(disallowed)
            for text in texts:
                if found := finder.search(text):
                    raise ValueError(
                        f"text holds the special token {found.group()!r} (at character "
                        f"{found.start()}), which disallowed_special refuses: pass "
                        f"allowed_special={{{found.group()!r}}} (or 'all') to encode it as its "
                        f"id, or leave disallowed_special empty to encode it as ordinary text"
                    )
        return allowed

    def _special_set(self, names, argument: str) -> frozenset[str]:
        if names == "all":
            return frozenset(self._special_tokens)
        if isinstance(names, str):
            raise TypeError(
                f"{argument} takes a set of special-token strings or 'all', got the string "
                f"{names!r}; write {{{names!r}}}"
            )
        names = frozenset(names)
        unknown = sorted(names - self._special_tokens.keys())
        if unknown:
            raise ValueError(
                f"{argument}: {unknown} is not a special token of this tokenizer; its special "
                f"tokens are {sorted(self._special_tokens)}"
            )
        return names

    def _special_finder(self, names: frozenset[str]) -> re.Pattern:
        """A regex finding the leftmost of names, the longest where several start there."""
        if names not in self._special_finders:
            # alternatives are tried in order at each position: longest first
            ordered = sorted(names, key=lambda name: (-len(name), name))
            self._special_finders[names] = re.compile("|".join(map(re.escape, ordered)))
        return self._special_finders[names]

    def _split_on_special(self, text: str, allowed: frozenset[str]) -> tuple[list[str], list[int]]:
        """The ordinary stretches of text (one more than the specials) and the special ids."""
        stretches, special_ids, start = [], [], 0
        for found in self._special_finder(allowed).finditer(text):
            stretches.append(text[start:found.start()])
            special_ids.append(self._special_tokens[found.group()])
            start = found.end()
        stretches.append(text[start:])
        return stretches, special_ids

    def _encode_allowing(self, text: str, allowed: frozenset[str]) -> list[int]:
        stretches, special_ids = self._split_on_special(text, allowed)
        encoded = [self._encoding.encode_ordinary(stretch) for stretch in stretches]
        return _interleave(encoded, special_ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Decode ids to text; bytes that do not form valid UTF-8 become U+FFFD.

        Accepts lists, numpy arrays and torch tensors. decode(encode(s)) == s for every string
        that is valid Unicode (lone surrogates cannot be UTF-8 and are replaced on encode).
        """
        ids = require_token_ids(ids, self.vocab_size)
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
            "ranks": _ranks_by_id(self._ranks, self.vocab_size),  # position = id
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
        _check_payload_fields(path, payload)
        try:
            ranks = {base64.b64decode(token, validate=True): rank
                     for rank, token in enumerate(payload["ranks"]) if token is not None}
        except ValueError as err:  # binascii.Error: a rank that is not base64
            raise ValueError(f"{str(path)!r}: field 'ranks' holds a token that is not base64 "
                             f"({err}); re-train or re-save the tokenizer") from err
        try:
            tokenizer = cls(payload["name"], payload["pattern"], ranks, payload["special_tokens"])
        except (ValueError, TypeError) as err:
            raise ValueError(f"{str(path)!r} is not a valid tokenizer: {err}; re-train or "
                             f"re-save it") from err
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


# field of a saved tokenizer -> (the type it must have, what to call that type in an error)
_PAYLOAD_FIELDS = {"name": (str, "a string"), "pattern": (str, "a string"),
                   "special_tokens": (dict, "an object"), "content_hash": (str, "a string"),
                   "ranks": (list, "a list")}


def _check_payload_fields(path: Path, payload: dict) -> None:
    """A ValueError naming the file and the field, for a field missing or of the wrong type:
    a hand-edited file would otherwise fail with a bare KeyError or TypeError."""
    for field, (kind, described) in _PAYLOAD_FIELDS.items():
        if field not in payload:
            raise ValueError(f"{str(path)!r} has no field {field!r}; it is not a complete "
                             f"tokenizer file: re-train or re-save it")
        if not isinstance(payload[field], kind):
            raise ValueError(f"{str(path)!r}: field {field!r} must be {described}, got "
                             f"{type(payload[field]).__name__} {str(payload[field])[:40]!r}; "
                             f"re-train or re-save the tokenizer")
    if not all(token is None or isinstance(token, str) for token in payload["ranks"]):
        raise ValueError(f"{str(path)!r}: field 'ranks' must hold base64 strings (or null); "
                         f"re-train or re-save the tokenizer")
    special = payload["special_tokens"]
    if not all(isinstance(k, str) and type(v) is int for k, v in special.items()):
        raise ValueError(f"{str(path)!r}: field 'special_tokens' must map strings to integer "
                         f"ids; re-train or re-save the tokenizer")


def _interleave(encoded_stretches: list[list[int]], special_ids: list[int]) -> list[int]:
    """stretch, special, stretch, ..., stretch as one id list (one more stretch than special)."""
    ids = list(encoded_stretches[0])
    for special_id, stretch in zip(special_ids, encoded_stretches[1:], strict=True):
        ids.append(special_id)
        ids += stretch
    return ids




def load_tokenizer(path_or_name: str | os.PathLike):
    """Load a tokenizer by name or file.

    Accepts "gpt2" (tiktoken's GPT-2 encoding; downloaded once, then read from tiktoken's cache,
    see TIKTOKEN_CACHE_DIR), a ``.json`` file written by :meth:`Tokenizer.save` or the CLI, a
    ``.tiktoken`` ranks file (lines "base64-token rank"), used with GPT-2's split pattern and
    <|endoftext|> after the last rank: GPT-2's is ``r50k_base.tiktoken``, the same ranks as "gpt2";
    or a llama2.c tokenizer: a ``.bin`` file (``tok512.bin``, ``tokenizer.bin``) or the name
    "tok512" / "llama2c:tok512", which returns a :class:`~transformer_lib.data.llama2c.Llama2cTokenizer`;
    or a folder holding GPT-2-style ``vocab.json`` and ``merges.txt`` with "<|endoftext|>" as
    its one special token (:meth:`Tokenizer.from_gpt2_files` takes others).
    """
    from . import llama2c

    path = Path(path_or_name).expanduser()
    if str(path_or_name) == "gpt2" and not path.exists():
        return _load_gpt2()
    name = str(path_or_name)
    if not path.exists() and (name.startswith("llama2c:") or name in llama2c.TOKENIZER_NAMES):
        return llama2c.load_llama2c_tokenizer(name)
    if path.is_dir() and (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        return Tokenizer.from_gpt2_files(path / "vocab.json", path / "merges.txt")
    if not path.is_file():
        raise FileNotFoundError(
            f"no tokenizer {str(path_or_name)!r}: pass 'gpt2', a .json file written by "
            f"Tokenizer.save (or `tlib-tokenizer train`), a .tiktoken ranks file, a folder with "
            f"GPT-2's vocab.json and merges.txt, a llama2.c tokenizer .bin file, or 'tok512'"
        )
    if path.suffix == ".tiktoken":
        return Tokenizer(path.stem, GPT2_PATTERN, read_tiktoken_ranks(path))
    if path.suffix == ".bin" or (path.suffix != ".json" and llama2c.is_llama2c_tokenizer(path)):
        return llama2c.Llama2cTokenizer.load(path)
    if path.suffix == ".json" and _json_format(path) == llama2c.JSON_FORMAT:
        return llama2c.Llama2cTokenizer.from_json(path, json.loads(path.read_text("utf-8")))
    return Tokenizer.load(path)


def _json_format(path: Path) -> str | None:
    """The "format" a tokenizer JSON file declares (None if it is not such a file)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return payload.get("format") if isinstance(payload, dict) else None


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
    texts = texts_of(texts)
    hf_tokenizer = HFTokenizer(models.BPE())
    hf_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf_tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
        show_progress=False,
    )
    hf_tokenizer.train_from_iterator(_only_str(texts), trainer)
    return hf_tokenizer


def _only_str(texts: Iterable[str]) -> Iterable[str]:
    """The texts, refusing the first that is not a str (Hugging Face's trainer would train on
    a dict's keys)."""
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must all be str (one per document), got "
                            f"{type(text).__name__}")
        yield text


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


def _read_gpt2_merges(path: Path) -> list[tuple[str, str]]:
    """merges.txt's merges in rank order: "left right" per line, after an optional #version."""
    merges = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for line_number, line in enumerate(lines, 1):
        if not line.strip() or (line_number == 1 and line.startswith("#version")):
            continue
        pair = line.split(" ")
        if len(pair) != 2 or not all(pair):
            raise ValueError(
                f"{str(path)!r} line {line_number} is not a GPT-2 merge 'left right': {line[:60]!r}"
            )
        merges.append((pair[0], pair[1]))
    return merges


def _gpt2_special_tokens(special_tokens, vocab: dict, vocab_path: Path) -> dict[str, int]:
    """special text -> id: names are looked up in vocab.json, a mapping must agree with it."""
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens takes special texts or a text -> id mapping, got the "
                        f"string {special_tokens!r}; write [{special_tokens!r}]")
    if isinstance(special_tokens, Mapping):
        special = dict(special_tokens)
        disagreeing = {text: (i, vocab[text]) for text, i in special.items()
                       if text in vocab and vocab[text] != i}
        if disagreeing:
            raise ValueError(f"special_tokens disagree with {str(vocab_path)!r} (given, file): "
                             f"{disagreeing}")
        return special
    special = {}
    for text in special_tokens:
        if text not in vocab:
            raise ValueError(
                f"special token {text!r} is not in {str(vocab_path)!r}; pass special_tokens as a "
                f"mapping text -> id to give it an id"
            )
        special[text] = vocab[text]
    return special


def _gpt2_ranks(vocab: dict, special: dict[str, int], merges: list[tuple[str, str]],
                vocab_path: Path) -> dict[bytes, int]:
    """tiktoken ranks from vocab.json and the merges: the file's ids, checked against merges."""
    char_to_byte = {char: byte for byte, char in _bytes_to_unicode().items()}

    def to_bytes(token: str) -> bytes:
        try:
            return bytes(char_to_byte[char] for char in token)
        except KeyError as err:
            raise ValueError(
                f"{str(vocab_path)!r}: token {token!r} is not spelled in GPT-2's bytes-to-unicode "
                f"table (is this a byte-level BPE?), and it is not among special_tokens"
            ) from err

    ranks = {to_bytes(token): i for token, i in vocab.items() if token not in special}
    merged = [to_bytes(left) + to_bytes(right) for left, right in merges]
    missing = [token for token in merged if token not in ranks]
    if missing:
        raise ValueError(f"merges.txt makes {missing[0]!r} (and {len(missing) - 1} more), which "
                         f"{str(vocab_path)!r} lacks: the two files do not belong together")
    merged_ids = [ranks[token] for token in merged]
    out_of_order = next((k for k in range(1, len(merged_ids))
                         if merged_ids[k] <= merged_ids[k - 1]), None)
    if out_of_order is not None:
        raise ValueError(
            f"merges.txt line {out_of_order + 1} ({merges[out_of_order]}) has a lower id in "
            f"{str(vocab_path)!r} than the merge before it: tiktoken merges by id, so the ids "
            f"must follow the merge order"
        )
    merged_set = set(merged)
    stray = [token for token, i in vocab.items() if token not in special
             and len(to_bytes(token)) > 1 and to_bytes(token) not in merged_set]
    if stray:
        raise ValueError(
            f"{str(vocab_path)!r} has tokens that are neither bytes nor made by a merge: "
            f"{stray[:5]}; if they are special tokens, add them to special_tokens"
        )
    return ranks


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
    if len(set(ranks.values())) != len(ranks):
        raise ValueError("ranks must give each token a distinct id")
    missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
    if missing:
        raise ValueError(
            f"ranks lack {len(missing)} single-byte tokens (e.g. byte {missing[0]}); a byte-level "
            f"BPE needs all 256 so that every string can be encoded"
        )


def _check_special_tokens(special_tokens: dict[str, int], ranks: dict[bytes, int]) -> None:
    if EOT_TEXT not in special_tokens:
        raise ValueError(f"special_tokens must contain {EOT_TEXT!r}, got {list(special_tokens)}")
    if "" in special_tokens:
        raise ValueError("a special token cannot be the empty string")
    rank_ids = set(ranks.values())
    clashing = {text: i for text, i in special_tokens.items() if i in rank_ids}
    if clashing or len(set(special_tokens.values())) != len(special_tokens):
        raise ValueError(f"special token ids {dict(special_tokens)} collide with each other or "
                         f"with ordinary ids")
    all_ids = rank_ids | set(special_tokens.values())
    gaps = sorted(set(range(max(all_ids) + 1)) - all_ids)
    if gaps or min(all_ids) < 0:
        raise ValueError(
            f"ordinary and special ids together must be 0..n-1 with no gaps (each id is a row of "
            f"the model's embedding table); unused: {gaps[:5]}, negative: {min(all_ids) < 0}"
        )


def _ranks_by_id(ranks: Mapping[bytes, int], vocab_size: int) -> list[str | None]:
    """base64 tokens at their ids, None at special ids (the file format; load reverses it)."""
    by_id: list[str | None] = [None] * vocab_size
    for token, rank in ranks.items():
        by_id[rank] = base64.b64encode(token).decode("ascii")
    while by_id and by_id[-1] is None:  # specials after the last rank, as files always had
        by_id.pop()
    return by_id


def _ranks_to_base64(ranks: Mapping[bytes, int]) -> list[str]:
    ordered = sorted(ranks, key=ranks.__getitem__)
    return [base64.b64encode(token).decode("ascii") for token in ordered]


def _content_hash(pattern: str, ranks: Mapping[bytes, int], special: Mapping[str, int]) -> str:
    """sha256 over everything that decides the ids, so caches can tell tokenizers apart.

    The ranks enter in id order without their ids: with the special ids known and all ids
    0..n-1, that order fixes every id (and keeps the hashes of tokenizers made before special
    tokens could come first).
    """
    payload = {
        "pattern": pattern,
        "ranks": _ranks_to_base64(ranks),
        "special": sorted(special.items()),
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


# ---- command line ---------------------------------------------------------------------------
