"""llama2.c's files: finding them (locally or on the hub) and its sentencepiece tokenizer.

The tokenizer file is an int32 ``max_token_length`` and, per token, a float32 merge score, an
int32 byte length and the bytes. :class:`Llama2cTokenizer` encodes and decodes as llama2.c's
``run.c`` does. Known names ("stories260K", "tok512", ...) resolve through :func:`llama2c_file`.
The checkpoints themselves are read by :mod:`transformer_lib.interop.llama2c`.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import os
import re
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import MappingProxyType

from ..checks import require_token_ids

ENV_VAR = "LLAMA2C_PATH"  # a directory holding llama2.c files; read at call time
HUB_REPO = "karpathy/tinyllamas"
# Known names -> file path inside HUB_REPO. The larger stories models use llama2.c's own
# 32000-token tokenizer.bin, which lives in the llama2.c GitHub repository, not on the hub.
KNOWN_FILES = MappingProxyType({
    "stories260K": "stories260K/stories260K.bin",
    "tok512": "stories260K/tok512.bin",
    "stories15M": "stories15M.bin",
    "stories42M": "stories42M.bin",
    "stories110M": "stories110M.bin",
})
DEFAULT_TOKENIZER = MappingProxyType({"stories260K": "tok512"})  # others: tokenizer.bin
TOKENIZER_NAMES = ("tok512",)

class Llama2cFormatError(ValueError):
    """A file is not a llama2.c checkpoint or tokenizer this module can read."""


# ---- finding the files ---------------------------------------------------------------------


def llama2c_file(path_or_name: str | os.PathLike) -> Path:
    """The local path of a llama2.c file: an existing path, or a known name.

    A known name ("stories260K", "tok512", "stories15M", ...; a ``llama2c:`` prefix and a
    ``.bin`` suffix are optional) is looked up in the directory named by ``$LLAMA2C_PATH`` and
    otherwise downloaded from the hub repository ``karpathy/tinyllamas`` into the Hugging Face
    cache (offline, a cached copy is used; with none, a ConnectionError names both fixes).
    """
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return path
    name = str(path_or_name).removeprefix("llama2c:").removesuffix(".bin")
    if name not in KNOWN_FILES:
        raise FileNotFoundError(
            f"no llama2.c file {str(path_or_name)!r}: pass the path of a .bin file or one of the "
            f"known names {', '.join(KNOWN_FILES)}")
    hub_path = KNOWN_FILES[name]
    local_dir = os.environ.get(ENV_VAR)
    if local_dir and Path(local_dir).expanduser().is_dir():
        local = Path(local_dir).expanduser() / Path(hub_path).name
        if local.is_file():
            return local
        missing_locally = f"{ENV_VAR}={local_dir} has no {Path(hub_path).name}"
    elif local_dir:
        missing_locally = f"{ENV_VAR}={local_dir} is not a directory"
    else:
        missing_locally = f"{ENV_VAR} is not set"
    return _hub_download(hub_path, missing_locally)


def _hub_download(hub_path: str, missing_locally: str) -> Path:
    """hf_hub_download of one file, failing in seconds when offline with no cached copy."""
    try:
        import huggingface_hub
    except ImportError as err:
        raise ConnectionError(_unavailable(hub_path, f"{missing_locally}, and huggingface_hub "
                                                     f"is not installed")) from err
    from .stories import OFFLINE_ENV_VARS, url_reachable

    offline = any(os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
                  for var in OFFLINE_ENV_VARS)
    cached = huggingface_hub.try_to_load_from_cache(HUB_REPO, hub_path)
    if isinstance(cached, str):
        return Path(cached)
    if offline:
        reason = "offline mode is on and the Hugging Face cache has no copy"
        raise ConnectionError(_unavailable(hub_path, f"{missing_locally}; {reason}"))
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if not url_reachable(endpoint):
        raise ConnectionError(_unavailable(hub_path, f"{missing_locally}; {endpoint} is "
                                                     f"unreachable"))
    try:
        return Path(huggingface_hub.hf_hub_download(HUB_REPO, hub_path))
    except Exception as err:  # HTTP, hub and OS errors all mean "no usable file"
        raise ConnectionError(_unavailable(hub_path, f"{missing_locally}; download failed: "
                                                     f"{type(err).__name__}: {err}")) from err


def _unavailable(hub_path: str, reason: str) -> str:
    return (f"cannot find llama2.c file {Path(hub_path).name} ({reason}). Fix one of: set "
            f"{ENV_VAR} to a directory holding {Path(hub_path).name}; or go online (unset "
            f"HF_HUB_OFFLINE) so {HUB_REPO}/{hub_path} can be downloaded and cached.")


# ---- tokenizer -------------------------------------------------------------------------------

_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{2})>")
JSON_FORMAT = "transformer_lib.llama2c_tokenizer/1"  # what save() writes
BYTE_OFFSET = 3  # ids 0, 1, 2 are <unk>, BOS, EOS; byte b is id b + 3
_NO_MERGE_BELOW = -1e10  # run.c starts its best score here, so lower scores never merge


class Llama2cTokenizer:
    """llama2.c's sentencepiece-BPE tokenizer, encoding and decoding exactly as ``run.c``.

    encode: prepend a space (sentencepiece's dummy prefix), take one piece per UTF-8 character
    (its bytes as ``<0xNN>`` ids where the vocabulary has no such piece), then merge, again and
    again, the adjacent pair whose concatenation is the piece with the highest score (the
    leftmost on ties). decode: a piece that starts the list or follows BOS drops its leading
    space, byte pieces become raw bytes, and the bytes are read as UTF-8. So
    ``decode(encode(s)) == s`` for every valid string. BOS (id 1) separates stories, so it is
    also ``eot_id``; control ids decode to their names ``<unk>``, ``<s>``, ``</s>``.
    """

    bos_id = 1
    eos_id = 2
    eot_id = 1  # llama2.c's stories models begin each story with BOS and emit BOS to end it
    pad_id = None  # sentencepiece's Llama vocabulary has no padding id

    def __init__(self, name: str, pieces: Sequence[bytes], scores: Sequence[float]):
        if len(pieces) != len(scores):
            raise ValueError(f"{len(pieces)} pieces but {len(scores)} scores")
        if len(pieces) < BYTE_OFFSET + 256:
            raise Llama2cFormatError(f"tokenizer {name!r} has {len(pieces)} pieces; a llama2.c "
                                     f"vocabulary has at least {BYTE_OFFSET + 256} (3 control "
                                     f"ids and 256 byte pieces)")
        for byte in range(256):
            if pieces[BYTE_OFFSET + byte] != b"<0x%02X>" % byte:
                raise Llama2cFormatError(
                    f"tokenizer {name!r}: id {BYTE_OFFSET + byte} is "
                    f"{pieces[BYTE_OFFSET + byte]!r}, not the byte piece <0x{byte:02X}>; "
                    f"ids 3..258 must be the 256 byte-fallback pieces")
        self.name = name
        self._pieces = tuple(bytes(p) for p in pieces)
        self._scores = tuple(float(s) for s in scores)
        self._ids: dict[bytes, int] = {}
        for token_id, piece in enumerate(self._pieces):
            self._ids.setdefault(piece, token_id)  # run.c's lookup: duplicates are not expected
        self._pair_cache: dict[tuple[int, int], tuple[float, int] | None] = {}
        self._special_tokens = MappingProxyType({"<unk>": 0, "<s>": 1, "</s>": 2})
        digest = hashlib.sha256()
        for piece, score in zip(self._pieces, self._scores, strict=True):
            digest.update(struct.pack("<fi", score, len(piece)) + piece)
        self.content_hash = digest.hexdigest()

    @classmethod
    def load(cls, path: str | os.PathLike, name: str | None = None) -> Llama2cTokenizer:
        """Read a llama2.c ``tokenizer.bin``/``tok512.bin`` file."""
        path = Path(path)
        data = path.read_bytes()
        pieces, scores = _parse_tokenizer(data, path)
        return cls(name or path.stem, pieces, scores)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary to one JSON file (a run folder's ``tokenizer.json``).

        The pieces are base64 (they are bytes) and the scores exact float32 values; loading
        recomputes the content hash and refuses a file whose hash does not match.
        """
        from ..fileio import write_text_atomically

        payload = {"format": JSON_FORMAT, "name": self.name, "content_hash": self.content_hash,
                   "pieces": [base64.b64encode(piece).decode("ascii") for piece in self._pieces],
                   "scores": list(self._scores)}
        return write_text_atomically(Path(path).expanduser(), json.dumps(payload))

    @classmethod
    def from_json(cls, path: str | os.PathLike, payload: dict) -> Llama2cTokenizer:
        """Rebuild a tokenizer from the JSON of :meth:`save` (``payload``, read from ``path``)."""
        if payload.get("format") != JSON_FORMAT:
            raise ValueError(f"{str(path)!r} is not a {JSON_FORMAT} file "
                             f"(format: {payload.get('format')!r})")
        tokenizer = cls(payload["name"], [base64.b64decode(p) for p in payload["pieces"]],
                        payload["scores"])
        if tokenizer.content_hash != payload["content_hash"]:
            raise ValueError(f"{str(path)!r} is corrupted or was edited: content hash "
                             f"{tokenizer.content_hash} != recorded {payload['content_hash']}")
        return tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    @property
    def special_tokens(self) -> MappingProxyType:
        """Control token name -> id (they never come out of encode)."""
        return self._special_tokens

    @property
    def pieces(self) -> tuple[bytes, ...]:
        """The vocabulary as stored: piece bytes by id (spaces as real spaces)."""
        return self._pieces

    @property
    def scores(self) -> tuple[float, ...]:
        """Merge score by id: a higher score merges first."""
        return self._scores

    def encode(self, text: str, *, add_eot: bool = False) -> list[int]:
        """Ids for text as run.c's encode (no BOS); add_eot appends eot_id (BOS)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = self._merge(self._initial_ids(text)) if text else []
        return ids + [self.eot_id] if add_eot else ids

    def encode_batch(self, texts: Sequence[str], *, add_eot: bool = False,
                     num_threads: int | None = None) -> list[list[int]]:
        """encode for each text (num_threads is accepted for interface parity and unused)."""
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of str, got one str; use encode")
        return [self.encode(text, add_eot=add_eot) for text in texts]

    def _initial_ids(self, text: str) -> list[int]:
        """The dummy-prefix space, then one id per character, or its bytes' fallback ids."""
        ids = []
        for char in " " + text:
            try:
                encoded = char.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
                encoded = "\ufffd".encode()
            token_id = self._ids.get(encoded)
            if token_id is None:
                ids.extend(byte + BYTE_OFFSET for byte in encoded)
            else:
                ids.append(token_id)
        return ids

    def _pair(self, left: int, right: int) -> tuple[float, int] | None:
        """(score, id) of the piece spelled by two adjacent ids' pieces, if it may merge."""
        key = (left, right)
        if key not in self._pair_cache:
            merged = self._ids.get(self._pieces[left] + self._pieces[right])
            ok = merged is not None and self._scores[merged] > _NO_MERGE_BELOW
            self._pair_cache[key] = (self._scores[merged], merged) if ok else None
        return self._pair_cache[key]

    def _merge(self, ids: list[int]) -> list[int]:
        """run.c's merge loop in O(n log n): a heap of candidate pairs over a linked list.

        run.c rescans every adjacent pair and merges the best score, leftmost on ties. The heap
        orders candidates by (-score, position of the left token); positions keep their order
        in the linked list, so the pair popped first is the one run.c would choose. Entries
        made stale by an earlier merge are recognised and skipped.
        """
        n = len(ids)
        tokens = list(ids)
        nxt = list(range(1, n + 1))  # n means "no next token"
        prev = list(range(-1, n - 1))
        alive = [True] * n
        heap: list[tuple[float, int, int, int, int, int]] = []

        def push(i: int) -> None:
            j = nxt[i]
            if j < n:
                candidate = self._pair(tokens[i], tokens[j])
                if candidate is not None:
                    score, merged = candidate
                    heapq.heappush(heap, (-score, i, j, tokens[i], tokens[j], merged))

        for i in range(n - 1):
            push(i)
        while heap:
            _, i, j, left, right, merged = heapq.heappop(heap)
            if not alive[i] or nxt[i] != j or tokens[i] != left or tokens[j] != right:
                continue  # stale: one of the two tokens changed since this pair was pushed
            tokens[i] = merged
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prev[nxt[j]] = i
            if prev[i] >= 0:
                push(prev[i])
            push(i)
        return [tokens[i] for i in range(n) if alive[i]]

    def decode(self, ids: Iterable[int]) -> str:
        """Text for ids; see the class docstring for the leading-space rule."""
        ids = require_token_ids(ids, self.vocab_size)
        out = bytearray()
        previous = self.bos_id  # the first piece drops its dummy-prefix space too
        for token_id in ids:
            piece = self._pieces[token_id]
            if previous == self.bos_id and piece.startswith(b" "):
                piece = piece[1:]
            out += self._piece_bytes(token_id, piece)
            previous = token_id
        return out.decode("utf-8", errors="replace")

    def _piece_bytes(self, token_id: int, piece: bytes) -> bytes:
        if token_id < BYTE_OFFSET:
            return ("<unk>", "<s>", "</s>")[token_id].encode()
        match = _BYTE_PIECE.fullmatch(piece)
        return bytes([int(match.group(1), 16)]) if match else piece

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token, leading space kept (byte pieces give their byte)."""
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} is outside [0, {self.vocab_size})")
        return self._piece_bytes(token_id, self._pieces[token_id])

    def token_bytes_after_bos(self, token_id: int) -> bytes:
        """The bytes one token spells as a text's first piece, right after BOS: decode drops
        the leading space there (it is the dummy prefix, not the text's)."""
        piece = self.token_bytes(token_id)
        return piece[1:] if self._pieces[token_id].startswith(b" ") else piece

    def __repr__(self) -> str:
        return (f"Llama2cTokenizer(name={self.name!r}, vocab_size={self.vocab_size}, "
                f"bos_id={self.bos_id}, eos_id={self.eos_id}, hash={self.content_hash[:12]})")




def _parse_tokenizer(data: bytes, path: Path) -> tuple[list[bytes], list[float]]:
    """(pieces, scores) of a llama2.c tokenizer file; the vocabulary size is what the file holds."""
    if len(data) < 4:
        raise Llama2cFormatError(f"{path} is truncated: {len(data)} bytes, no max_token_length")
    (max_length,) = struct.unpack_from("<i", data)
    if max_length <= 0:
        raise Llama2cFormatError(f"{path}: max_token_length={max_length} must be positive; is "
                                 f"it a llama2.c tokenizer file (tokenizer.bin, tok512.bin)?")
    pieces, scores, offset = [], [], 4
    while offset < len(data):
        if offset + 8 > len(data):
            raise Llama2cFormatError(f"{path} is truncated inside the entry of id {len(pieces)}")
        score, length = struct.unpack_from("<fi", data, offset)
        offset += 8
        if not 0 <= length <= max_length or offset + length > len(data):
            raise Llama2cFormatError(
                f"{path}: id {len(pieces)} claims {length} bytes (max_token_length "
                f"{max_length}, {len(data) - offset} bytes left); the file is truncated or "
                f"not a llama2.c tokenizer")
        pieces.append(data[offset:offset + length])
        scores.append(score)
        offset += length
    return pieces, scores


def is_llama2c_tokenizer(path: str | os.PathLike) -> bool:
    """Whether a file parses as a llama2.c tokenizer (byte pieces at ids 3..258 included)."""
    try:
        pieces, _ = _parse_tokenizer(Path(path).read_bytes(), Path(path))
    except (Llama2cFormatError, OSError):
        return False
    return len(pieces) >= BYTE_OFFSET + 256 and pieces[BYTE_OFFSET] == b"<0x00>"


def load_llama2c_tokenizer(path_or_name: str | os.PathLike = "tok512") -> Llama2cTokenizer:
    """A :class:`Llama2cTokenizer` from a file path or a known name.

    A known tokenizer name ("tok512") or a model name with a known tokenizer ("stories260K")
    resolves through :func:`llama2c_file`.
    """
    path = Path(path_or_name).expanduser()
    if not path.is_file():
        path_or_name = default_tokenizer_name(path_or_name) or path_or_name
    path = llama2c_file(path_or_name)
    return Llama2cTokenizer.load(path)


def default_tokenizer_name(model: str | os.PathLike) -> str | None:
    """The known tokenizer of a known model name or file (stories260K -> tok512), else None."""
    stem = Path(str(model).removeprefix("llama2c:")).stem
    return DEFAULT_TOKENIZER.get(stem)
