"""Read Andrej Karpathy's llama2.c checkpoints into a :class:`Transformer`.

llama2.c (github.com/karpathy/llama2.c) stores a Llama-2-architecture model as one flat float32
file. Two checkpoint layouts exist:

- version 0 ("legacy"): seven int32 header fields ``dim, hidden_dim, n_layers, n_heads,
  n_kv_heads, vocab_size, seq_len`` (a negative vocab_size means the classifier is not tied to
  the embedding), then the embedding, the per-layer tensors grouped by kind, the final norm, two
  unused RoPE tables (seq_len, head_size/2) and, only when untied, the classifier;
- version 1: a 256-byte header (uint32 magic "ak42", int32 version, the same seven fields, a
  uint8 shared-classifier flag, zero padding), then all norms first, the embedding, the
  per-layer matrices and, only when not shared, the classifier.

Version 2 (int8 Q8_0) is refused. llama2.c rotates *interleaved* RoPE pairs, this library split
halves, so the query/key rows are permuted on loading with :func:`rope.interleaved_to_halves`.
Files and their tokenizers are found by :mod:`transformer_lib.data.llama2c`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.llama2c import Llama2cFormatError, llama2c_file
from ..model.config import ModelConfig
from ..model.rope import interleaved_to_halves
from ..model.transformer import Transformer

__all__ = ["Llama2cFormatError", "Llama2cHeader", "from_llama2c", "read_header"]

MAGIC = 0x616B3432  # "ak42" read as a little-endian uint32
V1_HEADER_BYTES = 256
V0_HEADER_BYTES = 7 * 4
FLOAT_BYTES = 4
HEADER_FIELDS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                 "seq_len")


# ---- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Llama2cHeader:
    """The header of a llama2.c checkpoint, validated against the file's size."""

    version: int  # 0 (legacy) or 1
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int  # always positive here
    seq_len: int
    shared_classifier: bool

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.head_size * self.n_kv_heads

    def weight_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(kind, shape) of every float32 array after the header, in file order."""
        d, h, n, v, kv = self.dim, self.hidden_dim, self.n_layers, self.vocab_size, self.kv_dim
        norms = [("attention_norm", (n, d)), ("ffn_norm", (n, d)), ("final_norm", (d,))]
        matrices = [("wq", (n, d, d)), ("wk", (n, kv, d)), ("wv", (n, kv, d)),
                    ("wo", (n, d, d)), ("w1", (n, h, d)), ("w2", (n, d, h)), ("w3", (n, h, d))]
        classifier = [] if self.shared_classifier else [("classifier", (v, d))]
        if self.version == 1:
            return [*norms, ("embedding", (v, d)), *matrices, *classifier]
        half = self.head_size // 2
        return [("embedding", (v, d)), norms[0], *matrices[:4], norms[1], *matrices[4:],
                norms[2], ("rope_cos", (self.seq_len, half)), ("rope_sin", (self.seq_len, half)),
                *classifier]

    def expected_bytes(self) -> int:
        header = V1_HEADER_BYTES if self.version == 1 else V0_HEADER_BYTES
        return header + FLOAT_BYTES * sum(int(np.prod(shape)) for _, shape in
                                          self.weight_shapes())

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            vocab_size=self.vocab_size, d_model=self.dim, num_layers=self.n_layers,
            num_heads=self.n_heads, num_kv_heads=self.n_kv_heads, ffn_hidden_dim=self.hidden_dim,
            max_seq_len=self.seq_len, norm_eps=1e-5, rope_theta=10000.0,
            tie_embeddings=self.shared_classifier)


_FIX = ("; is it a llama2.c checkpoint? Export one with llama2.c's `python export.py out.bin "
        "--version 1 --checkpoint ckpt.pt` (or version 0)")


def read_header(path: str | os.PathLike) -> Llama2cHeader:
    """Parse and validate a checkpoint's header against the file's size; reads no weights."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(V1_HEADER_BYTES)
    if size < V0_HEADER_BYTES:
        raise Llama2cFormatError(f"{path} is truncated: {size} bytes, shorter than the "
                                 f"{V0_HEADER_BYTES}-byte header of a llama2.c checkpoint{_FIX}")
    if struct.unpack_from("<I", head)[0] == MAGIC:
        if size < V1_HEADER_BYTES:
            raise Llama2cFormatError(f"{path} is truncated: {size} bytes, shorter than the "
                                     f"{V1_HEADER_BYTES}-byte version-1 header")
        version = struct.unpack_from("<i", head, 4)[0]
        if version == 2:
            raise Llama2cFormatError(
                f"{path} is a version-2 (int8 Q8_0 quantised) llama2.c checkpoint, which is not "
                f"supported; export the float32 model instead with `python export.py out.bin "
                f"--version 1` (or 0)")
        if version != 1:
            raise Llama2cFormatError(f"{path} has the llama2.c magic but version {version}; "
                                     f"only versions 0 (legacy) and 1 (float32) can be read")
        fields = struct.unpack_from("<7i", head, 8)
        flag = head[8 + V0_HEADER_BYTES]
        if flag not in (0, 1):
            raise Llama2cFormatError(f"{path}: the shared-classifier flag is {flag}, not 0 or 1"
                                     f"{_FIX}")
        shared = bool(flag)
        if fields[5] <= 0:
            raise Llama2cFormatError(f"{path}: header field vocab_size={fields[5]} must be "
                                     f"positive in a version-1 file{_FIX}")
    else:
        version = 0
        fields = struct.unpack_from("<7i", head)
        shared = fields[5] > 0  # legacy files flag an untied classifier by a negative size
        fields = (*fields[:5], abs(fields[5]), fields[6])
    values = dict(zip(HEADER_FIELDS, fields, strict=True))
    _check_header_values(path, values)
    header = Llama2cHeader(version=version, shared_classifier=shared, **values)
    expected = header.expected_bytes()
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise Llama2cFormatError(
            f"{path} is {what}: the header (version {version}, {values}, "
            f"{'tied' if shared else 'untied'} classifier) needs {expected:,} bytes but the file "
            f"has {size:,}; re-download or re-export it{_FIX}")
    return header


def _check_header_values(path: Path, values: dict[str, int]) -> None:
    bad = [f"{name}={value}" for name, value in values.items() if value <= 0]
    if bad:
        raise Llama2cFormatError(f"{path}: header field(s) {', '.join(bad)} must be positive"
                                 f"{_FIX}")
    dim, n_heads, n_kv_heads = values["dim"], values["n_heads"], values["n_kv_heads"]
    if dim % n_heads or (dim // n_heads) % 2:
        raise Llama2cFormatError(f"{path}: dim={dim} must split into n_heads={n_heads} heads of "
                                 f"an even size (RoPE rotates pairs){_FIX}")
    if n_heads % n_kv_heads:
        raise Llama2cFormatError(f"{path}: n_heads={n_heads} is not a multiple of "
                                 f"n_kv_heads={n_kv_heads}{_FIX}")


def from_llama2c(path_or_name: str | os.PathLike) -> Transformer:
    """A ``Transformer`` (eval mode, CPU, float32) with the weights of a llama2.c checkpoint.

    ``path_or_name`` is a ``.bin`` path or a known name such as "stories260K" (see
    :func:`llama2c_file`). The header is validated against the file's size before any weight
    is read, and a bad file raises :class:`Llama2cFormatError`.
    """
    path = llama2c_file(path_or_name)
    header = read_header(path)
    offset = V1_HEADER_BYTES if header.version == 1 else V0_HEADER_BYTES
    arrays = {}
    with path.open("rb") as file:
        file.seek(offset)
        for kind, shape in header.weight_shapes():
            count = int(np.prod(shape))
            data = np.fromfile(file, dtype="<f4", count=count)
            if data.size != count:  # the file shrank after read_header checked its size
                raise Llama2cFormatError(f"{path} ended inside {kind}; re-download it")
            arrays[kind] = torch.from_numpy(data.astype(np.float32)).view(shape)
    model = Transformer(header.model_config())
    model.load_state_dict(_state_dict(header, arrays), strict=True)
    return model.eval()


def _state_dict(header: Llama2cHeader, arrays: dict[str, torch.Tensor]) -> dict:
    """llama2.c's arrays under this library's names, q/k rows permuted to split-halves RoPE."""
    state = {"embed_tokens.weight": arrays["embedding"], "norm.weight": arrays["final_norm"]}
    state["lm_head.weight"] = arrays.get("classifier", arrays["embedding"])
    names = {"attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "wq": "self_attn.q_proj", "wk": "self_attn.k_proj", "wv": "self_attn.v_proj",
             "wo": "self_attn.o_proj", "w1": "mlp.gate_proj", "w2": "mlp.down_proj",
             "w3": "mlp.up_proj"}
    for layer in range(header.n_layers):
        for kind, name in names.items():
            weight = arrays[kind][layer]
            if kind == "wq":
                weight = interleaved_to_halves(weight, header.n_heads)
            elif kind == "wk":
                weight = interleaved_to_halves(weight, header.n_kv_heads)
            state[f"layers.{layer}.{name}.weight"] = weight
    return state
