"""What the book's figures compute, without drawing: attention maps of a text, RoPE
rotations and similarities, token spans, the next-token distribution under a sampling setting.

The drawing functions in :mod:`transformer_lib.book.viz` call these; widgets and notebooks may
call them directly to get the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..checks import require_int, require_positive_number
from ..model.generation import filter_logits
from ..model.rope import apply_rope, rope_frequencies, rope_tables
from ..model.transformer import eval_mode


def check_tokenizer(tokenizer) -> None:
    """Raise a TypeError unless ``tokenizer`` has the encode/decode interface the plots use."""
    missing = [name for name in ("encode", "decode") if not callable(getattr(tokenizer, name, None))]
    if missing:
        raise TypeError(f"tokenizer {type(tokenizer).__name__} lacks {', '.join(missing)}(); "
                        f"any object with encode(text) -> list[int] and decode(ids) -> str works")


def decode_piece(tokenizer, token_id: int) -> str:
    """Decode one id on its own; an id the tokenizer cannot decode becomes ``<id>``.

    An ordinary token is read from ``token_bytes`` where the tokenizer has it: a sentencepiece
    tokenizer (llama2.c's) drops the leading space of a lone piece when decoding, but the space
    is part of the token and a label must show it.
    """
    token_id = int(token_id)
    token_bytes = getattr(tokenizer, "token_bytes", None)
    special = set(getattr(tokenizer, "special_tokens", {}).values())
    if callable(token_bytes) and token_id not in special:
        try:
            return token_bytes(token_id).decode("utf-8", errors="replace")
        except Exception:  # an id outside the vocabulary: fall through to the label below
            pass
    try:
        return tokenizer.decode([token_id])
    # Tokenizers raise many different errors for ids outside their vocabulary (the model's
    # vocab_size may exceed the tokenizer's); a plot label must not crash on one.
    except Exception:
        return f"<{int(token_id)}>"


def attention_maps_for_text(model, tokenizer, text: str) -> tuple[list[torch.Tensor], list[int]]:
    """Run ``model.attention_maps`` on ``text``: per-layer (H, T, T) CPU maps and the token ids."""
    check_tokenizer(tokenizer)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    ids = list(tokenizer.encode(text))
    if not ids:
        raise ValueError("the text encodes to no tokens; type at least one character")
    max_len = model.config.max_seq_len
    if len(ids) > max_len:
        raise ValueError(f"the text is {len(ids)} tokens but the model's max_seq_len is "
                         f"{max_len}; shorten it")
    device = next(model.parameters()).device
    with eval_mode(model):  # dropout off: the plot shows the weights used at inference
        maps = model.attention_maps(torch.tensor([ids], dtype=torch.long, device=device))
    return [m[0].float().cpu() for m in maps], ids


def _check_head_dim(head_dim: int) -> int:
    if require_int("head_dim", head_dim, 1) % 2:
        raise ValueError(f"head_dim={head_dim!r} must be a positive even int (RoPE rotates pairs)")
    return head_dim


def _check_theta(theta: float) -> float:
    return require_positive_number("theta", theta, why=" (Llama uses 10000)")


def _check_positions(positions) -> np.ndarray:
    positions = np.asarray(list(positions), dtype=np.int64)
    if positions.ndim != 1 or positions.size == 0:
        raise ValueError("positions must be a non-empty sequence of ints")
    if positions.min() < 0:
        raise ValueError(f"positions must be >= 0, got {int(positions.min())}")
    return positions


def rope_rotated_pairs(head_dim: int, positions, theta: float = 10000.0,
                       vector: tuple[float, float] = (1.0, 0.0)) -> np.ndarray:
    """Every pair (x_i, x_{i+D/2}) of a vector after ``apply_rope`` at each position.

    The same 2-d ``vector`` is placed in every pair, rotated by the library's own tables and
    ``apply_rope``. Returns (len(positions), D/2, 2).
    """
    head_dim, theta = _check_head_dim(head_dim), _check_theta(theta)
    positions = _check_positions(positions)
    half = head_dim // 2
    cos, sin = rope_tables(head_dim, int(positions.max()) + 1, theta)  # (P_max, D)
    index = torch.from_numpy(positions)
    x = torch.zeros(1, 1, len(positions), head_dim)  # (B=1, H=1, T, D)
    x[..., :half], x[..., half:] = float(vector[0]), float(vector[1])
    rotated = apply_rope(x, cos[index], sin[index])[0, 0]  # (T, D)
    return torch.stack([rotated[:, :half], rotated[:, half:]], dim=-1).numpy()  # (T, D/2, 2)


def rope_wavelengths(head_dim: int, theta: float = 10000.0) -> np.ndarray:
    """Tokens per full turn of each pair, 2*pi / inverse frequency, shape (D/2,)."""
    head_dim, theta = _check_head_dim(head_dim), _check_theta(theta)
    return (2 * math.pi / rope_frequencies(head_dim, theta)).numpy()


def rope_similarity(head_dim: int, max_distance: int, theta: float = 10000.0,
                    kind: str = "constant", num_samples: int = 1, seed: int = 0) -> np.ndarray:
    """q·k after RoPE against relative distance 0..max_distance, normalised to 1 at distance 0.

    The same vector serves as query (at position 0) and key (at position d), so the curve shows
    only what the rotation does. ``kind`` is "constant" (all ones, the RoFormer decay plot) or
    "random" (the mean over ``num_samples`` Gaussian vectors). Shape (max_distance + 1,).
    """
    head_dim, theta = _check_head_dim(head_dim), _check_theta(theta)
    require_int("max_distance", max_distance, 1)
    if kind == "constant":
        vectors = torch.ones(1, head_dim)
    elif kind == "random":
        require_int("num_samples", num_samples, 1)
        generator = torch.Generator().manual_seed(seed)
        vectors = torch.randn(num_samples, head_dim, generator=generator)
    else:
        raise ValueError(f"kind={kind!r} must be 'constant' or 'random'")
    count = max_distance + 1
    cos, sin = rope_tables(head_dim, count, theta)  # (T, D)
    x = vectors[:, None, None, :].expand(-1, 1, count, -1)  # (N, 1, T, D): one vector per row
    rotated = apply_rope(x, cos, sin)[:, 0]  # (N, T, D)
    scores = (rotated[:, :1] * rotated).sum(-1).mean(0)  # (T,): q at 0 dotted with k at d
    return (scores / scores[0]).numpy()


@dataclass(frozen=True)
class TokenSpan:
    """A piece of text and the token id(s) it decodes from (several when a character's bytes
    are split across tokens)."""

    text: str
    ids: tuple[int, ...]


_MAX_UTF8_TOKENS = 4  # a character is at most 4 UTF-8 bytes, so at most 4 tokens share one


def token_spans(tokenizer, text: str) -> list[TokenSpan]:
    """Encode ``text`` and decode each id on its own, merging ids that only decode together.

    A byte-level tokenizer may split one character's UTF-8 bytes across tokens; each of those
    decodes to U+FFFD alone. Such runs are merged with the following ids until they decode
    cleanly, so the spans show real characters instead of replacement marks.
    """
    check_tokenizer(tokenizer)
    ids = [int(i) for i in tokenizer.encode(text)]
    spans, start = [], 0
    while start < len(ids):
        end = start + 1
        piece = decode_piece(tokenizer, ids[start])
        if "\ufffd" in piece:
            for candidate in range(start + 2, min(start + _MAX_UTF8_TOKENS, len(ids)) + 1):
                merged = tokenizer.decode(ids[start:candidate])
                if "\ufffd" not in merged:
                    end, piece = candidate, merged
                    break
        spans.append(TokenSpan(piece, tuple(ids[start:end])))
        start = end
    return spans


@dataclass(frozen=True)
class NextTokenChoice:
    """What a sampling setting does to the top of a next-token distribution.

    ``ids``/``probs`` are the most likely tokens and their probabilities after temperature (at
    temperature 0, before it: the untempered softmax). ``cut_by[j]`` is "" for a surviving token
    or the setting that removed it ("top-k", "top-p", "greedy"). ``final_probs`` is the
    renormalised sampling probability (0 for cut tokens). ``num_surviving`` counts survivors over
    the whole vocabulary.
    """

    ids: np.ndarray
    probs: np.ndarray
    cut_by: tuple[str, ...]
    final_probs: np.ndarray
    num_surviving: int
    vocab_size: int
    temperature: float
    top_k: int | None
    top_p: float | None


def next_token_choice(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, num_shown: int = 20) -> NextTokenChoice:
    """Apply ``generation.filter_logits`` to one position's logits (V,) and record what each
    setting cut among the ``num_shown`` most likely tokens."""
    logits = torch.as_tensor(logits).detach().float().cpu()
    if logits.dim() != 1:
        raise ValueError(f"logits must be one position's (vocab_size,) vector, got shape "
                         f"{tuple(logits.shape)}; index the last position with logits[0, -1]")
    vocab_size = logits.shape[0]
    final = filter_logits(logits[None], temperature, top_k, top_p)[0]  # (V,)
    survives = torch.isfinite(final)
    if temperature == 0:
        shown_probs = torch.softmax(logits, -1)
        reason = torch.where(survives, 0, 3)  # 3: cut by greedy decoding
    else:
        shown_probs = torch.softmax(logits / temperature, -1)
        after_k = torch.isfinite(filter_logits(logits[None], temperature, top_k, None)[0])
        reason = torch.where(survives, 0, torch.where(after_k, 2, 1))  # 1: top-k, 2: top-p
    final_probs = torch.softmax(final, -1)
    order = torch.argsort(logits, descending=True)[:min(num_shown, vocab_size)]
    names = ("", "top-k", "top-p", "greedy")
    return NextTokenChoice(
        ids=order.numpy(), probs=shown_probs[order].numpy(),
        cut_by=tuple(names[int(r)] for r in reason[order]),
        final_probs=final_probs[order].numpy(), num_surviving=int(survives.sum()),
        vocab_size=vocab_size, temperature=float(temperature), top_k=top_k, top_p=top_p)


def next_token_logits(model, tokenizer, prompt: str) -> torch.Tensor:
    """The model's logits (V,) for the token after ``prompt``, as a CPU float tensor."""
    check_tokenizer(tokenizer)
    ids = list(tokenizer.encode(prompt))
    if not ids:
        raise ValueError("the prompt encodes to no tokens; type at least one character")
    ids = ids[-model.config.max_seq_len:]  # the model conditions on its context window only
    device = next(model.parameters()).device
    with eval_mode(model), torch.no_grad():
        logits = model(torch.tensor([ids], dtype=torch.long, device=device))
    return logits[0, -1].float().cpu()
