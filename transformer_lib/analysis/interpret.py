"""Measurements inside a trained model (chapter 11): what the heads attend to, which heads the
loss depends on, what each layer would predict, how RoPE's frequency pairs are used, and a
tokenizer-independent score (bits per byte) for comparing two models on the same text.

Everything here is a pure computation on a :class:`~transformer_lib.model.Transformer` and
token ids: nothing edits the model. Each function runs the model in eval mode (dropout off; the
previous mode is restored) and builds its tensors on the model's device. Head ablation uses a forward pre-hook on ``o_proj`` (whose
input is the heads' outputs side by side), removed again before the function returns; the
logit lens runs the model's own layers one at a time.

Notation: L layers, H query heads, B batch, T positions, C = d_model, D head dimension, V vocab.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.tokens import bits_per_byte
from ..model.transformer import Transformer, eval_mode


def _device(model: Transformer) -> torch.device:
    return next(model.parameters()).device

# ----------------------------------------------------------------------------- attention scores


def _stack_maps(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-layer (B, H, T, T) maps -> one float tensor (L, B, H, T, T)."""
    if isinstance(maps, torch.Tensor):
        maps = [maps]
    maps = torch.stack([m.float() for m in maps])
    if maps.dim() != 5 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"attention maps must be per-layer (B, H, T, T) tensors, got "
                         f"{tuple(maps.shape[1:])}")
    return maps


def previous_token_scores(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """(L, H): each head's mean weight on the previous position, over queries 1..T-1 and the batch.

    ``maps`` is what ``model.attention_maps`` returns. Query 0 has no previous token, so it is
    left out; a head that always looks one step back scores 1.
    """
    maps = _stack_maps(maps)
    if maps.shape[-1] < 2:
        raise ValueError("need at least 2 positions for a previous-token score")
    return maps.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, 3))  # (L, B, H, T-1) -> (L, H)


def first_token_scores(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """(L, H): each head's mean weight on position 0 (the BOS or separator token), the "sink".

    Query 0 can only attend to itself (weight 1 on position 0), so it is left out.
    """
    maps = _stack_maps(maps)
    if maps.shape[-1] < 2:
        raise ValueError("need at least 2 positions for a first-token score")
    return maps[..., 1:, 0].mean(dim=(1, 3))  # (L, B, H, T-1) -> (L, H)


def repeated_random_tokens(batch: int, length: int, *, low: int, high: int, start_id: int,
                           generator: torch.Generator | None = None,
                           device: torch.device | str | None = None) -> torch.Tensor:
    """(B, 1 + 2 * length) ids: ``start_id``, then ``length`` random ids in [low, high), repeated.

    Random tokens make the second copy predictable only by looking back at the first: the test
    bed for induction heads. The ids are drawn on the generator's device (the CPU by default, so
    a seed gives the same ids everywhere) and returned on ``device`` (pass the model's).
    """
    if length < 2 or batch < 1 or not 0 <= low < high:
        raise ValueError(f"need batch >= 1, length >= 2 and 0 <= low < high; got batch={batch}, "
                         f"length={length}, low={low}, high={high}")
    draw_on = generator.device if generator is not None else torch.device("cpu")
    half = torch.randint(low, high, (batch, length), generator=generator, device=draw_on)
    half = half.to(device if device is not None else draw_on)
    start = torch.full((batch, 1), start_id, dtype=torch.long, device=half.device)
    return torch.cat([start, half, half], dim=1)


def induction_scores(maps: Sequence[torch.Tensor], length: int, prefix: int = 1) -> torch.Tensor:
    """(L, H): on a sequence whose ``length`` tokens after ``prefix`` ones are repeated once, the
    mean weight a query in the second copy puts on the token *after* the same token's earlier
    occurrence (position q - length + 1): what an induction head attends to.
    """
    maps = _stack_maps(maps)
    T = maps.shape[-1]
    if T != prefix + 2 * length:
        raise ValueError(f"maps cover {T} positions, not prefix + 2 * length = "
                         f"{prefix + 2 * length}")
    queries = torch.arange(prefix + length, T)
    keys = queries - length + 1
    return maps[..., queries, keys].mean(dim=(1, 3))  # (L, B, H, length) -> (L, H)


# ----------------------------------------------------------------------------- losses


def token_losses(model: Transformer, ids: torch.Tensor) -> torch.Tensor:
    """(B, T-1) cross-entropy in nats of each next-token prediction ids[:, t] -> ids[:, t+1],
    on the model's device."""
    ids = ids.to(_device(model))
    with eval_mode(model), torch.no_grad():
        logits = model(ids)[:, :-1].float()  # (B, T-1, V)
        return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")


def copy_losses(model: Transformer, ids: torch.Tensor, length: int,
                prefix: int = 1) -> tuple[float, float]:
    """Mean loss (nats/token) on the first and on the second copy of a repeated sequence.

    The first token of each copy is left out: nothing earlier predicts it in the first copy.
    """
    losses = token_losses(model, ids)  # target t + 1 at column t
    first = losses[:, prefix:prefix + length - 1]  # targets prefix+1 .. prefix+length-1
    second = losses[:, prefix + length:prefix + 2 * length - 1]
    return float(first.mean()), float(second.mean())


def _check_heads(model: Transformer, heads: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    config = model.config
    heads = [(int(layer), int(head)) for layer, head in heads]
    for layer, head in heads:
        if not (0 <= layer < config.num_layers and 0 <= head < config.num_heads):
            raise ValueError(f"head ({layer}, {head}) does not exist: the model has "
                             f"{config.num_layers} layers of {config.num_heads} heads")
    return heads


@contextmanager
def heads_zeroed(model: Transformer, heads: Iterable[tuple[int, int]]):
    """Within the block, the listed (layer, head) pairs output zeros (their o_proj input slice)."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in _check_heads(model, heads):
        by_layer.setdefault(layer, []).append(head)
    D = model.config.head_dim

    def hook_for(layer_heads):
        def zero_heads(module, args):
            (x,) = args  # (B, T, H*D): the heads' outputs side by side, before mixing
            x = x.clone()
            for head in layer_heads:
                x[..., head * D:(head + 1) * D] = 0
            return (x,)
        return zero_heads

    handles = [model.layers[layer].self_attn.o_proj.register_forward_pre_hook(hook_for(hs))
               for layer, hs in by_layer.items()]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


def mean_loss(model: Transformer, windows: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean next-token loss (nats) over windows (B, T); ``mask`` (B, T-1) selects the targets."""
    losses = token_losses(model, windows)
    return float(losses.mean() if mask is None else losses[mask.to(losses.device)].mean())


def ablated_loss(model: Transformer, windows: torch.Tensor, heads: Iterable[tuple[int, int]],
                 mask: torch.Tensor | None = None) -> float:
    """:func:`mean_loss` with the listed (layer, head) outputs set to zero."""
    with heads_zeroed(model, heads):
        return mean_loss(model, windows, mask)


def head_ablation_losses(model: Transformer, windows: torch.Tensor,
                         mask: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """(baseline loss, (L, H) loss with each single head zeroed), in nats/token.

    Equal to calling :func:`ablated_loss` once per head, but faster: the residual stream before
    layer l is computed once, and the H ablations of layer l run as one batch from there on.
    """
    config = model.config
    H, D = config.num_heads, config.head_dim
    device = _device(model)
    model.check_input_ids(windows, 0)
    windows = windows.to(device)
    targets = windows[:, 1:]
    keep = torch.ones_like(targets, dtype=torch.bool) if mask is None else mask.to(device)

    def loss_of(x: torch.Tensor, start: int, replicas: int) -> torch.Tensor:
        extra = tuple(None if value is None else value.repeat(replicas, *[1] * (value.dim() - 1))
                      for value in values)  # the value options' inputs, one copy per replica
        for layer in model.layers[start:]:
            x = layer(x, cos, sin, None, *extra)
        logits = model.output_logits(x)[:, :-1].float()  # (R*B, T-1, V)
        losses = F.cross_entropy(logits.transpose(1, 2), targets.repeat(replicas, 1),
                                 reduction="none").view(replicas, *targets.shape)
        return (losses * keep).sum(dim=(1, 2)) / keep.sum()  # (R,)

    with eval_mode(model), torch.no_grad():
        x, cos, sin = model.embed(windows)  # (B, T, C); the RoPE tables, or None
        values = model.value_inputs(x, windows)
        baseline = loss_of(x, 0, 1)[0]
        ablated = torch.empty(config.num_layers, H, device=device)
        for index, layer in enumerate(model.layers):
            head_mask = torch.ones(H, 1, 1, H, D, device=device)  # replica r zeroes head r
            head_mask[torch.arange(H), :, :, torch.arange(H)] = 0

            def zero_one_head(module, args, head_mask=head_mask):
                (y,) = args  # (H*B, T, H*D)
                shaped = y.view(H, -1, y.shape[1], H, D) * head_mask  # (R, B, T, H, D)
                return (shaped.view_as(y),)

            handle = layer.self_attn.o_proj.register_forward_pre_hook(zero_one_head)
            try:
                ablated[index] = loss_of(x.repeat(H, 1, 1), index, H)
            finally:
                handle.remove()
            x = layer(x, cos, sin, None, *values)
    return float(baseline), ablated.cpu()  # (L, H): small, and ready to plot


# ----------------------------------------------------------------------------- logit lens


def residual_streams(model: Transformer, ids: torch.Tensor) -> list[torch.Tensor]:
    """L + 1 tensors (B, T, C): the residual stream after the embedding and after each layer."""
    with eval_mode(model), torch.no_grad():
        # The model's own forward pass; the output head runs for the last position only.
        _, streams = model(ids.to(_device(model)), last_only=True, return_hidden=True)
    return streams


def logit_lens(model: Transformer, ids: torch.Tensor) -> torch.Tensor:
    """(L + 1, B, T, V) logits read off each residual stream with the final norm and output head
    (and the soft cap, for a model that has one: :meth:`Transformer.output_logits`).

    Entry 0 reads the embedding itself; entry L equals the model's own logits.
    """
    streams = residual_streams(model, ids)
    with torch.no_grad():
        return torch.stack([model.output_logits(x).float() for x in streams])


# ----------------------------------------------------------------------------- RoPE


def rope_pair_energy(model: Transformer, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Share of the queries' and keys' squared norm carried by each RoPE pair, per layer.

    Returns {"query": (L, D/2), "key": (L, D/2)}, each row summing to 1, over every head,
    position and batch element. Pair i is dimensions (i, i + D/2) (the split-halves
    convention); a rotation does not change a pair's norm, so this is measured before RoPE.
    """
    config = model.config
    D, half = config.head_dim, config.head_dim // 2
    energy = {"query": [], "key": []}
    with torch.no_grad():
        for layer, x in zip(model.layers, residual_streams(model, ids)[:-1], strict=True):
            normed = layer.input_layernorm(x)  # (B, T, C): what the attention reads
            for name, proj in (("query", layer.self_attn.q_proj), ("key", layer.self_attn.k_proj)):
                v = proj(normed).view(*normed.shape[:2], -1, D).float()  # (B, T, heads, D)
                squares = v.square()
                per_pair = (squares[..., :half] + squares[..., half:]).sum(dim=(0, 1, 2))  # (D/2,)
                energy[name].append(per_pair / per_pair.sum())
    return {name: torch.stack(rows) for name, rows in energy.items()}


# ----------------------------------------------------------------------------- bits per byte


@dataclass(frozen=True)
class TextScore:
    """A model's total loss on some texts, and what it is divided by."""

    nll_nats: float  # total negative log-likelihood of every token of the texts
    num_bytes: int  # UTF-8 bytes of the texts themselves
    num_tokens: int  # tokens predicted (the start token of each text is not)
    num_texts: int
    num_split: int  # texts longer than the context, scored in overlapping windows

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.nll_nats / self.num_tokens, self.num_tokens, self.num_bytes)

    @property
    def bits_per_token(self) -> float:
        return self.bits_per_byte * self.num_bytes / self.num_tokens


def _windows(ids: list[int], context: int) -> list[tuple[list[int], int]]:
    """(window, first scored target) pairs that score every target of ``ids`` exactly once.

    A sequence that fits is one window. A longer one is cut into windows of ``context`` tokens
    that advance by half a context, each scoring only targets the earlier ones did not, so every
    prediction after the first window still sees at least context/2 tokens before it.
    """
    if len(ids) <= context:
        return [(ids, 0)]
    if context < 2:
        raise ValueError(f"a context of {context} position cannot score a text of {len(ids)} "
                         f"tokens: each window must hold a token and its target")
    stride, out, scored_to = context // 2, [], 0  # targets ids[1..scored_to] are done
    start = 0
    while scored_to < len(ids) - 1:
        window = ids[start:start + context]
        first_target = scored_to - start  # index within window of the first new target - 1
        out.append((window, first_target))
        scored_to = start + len(window) - 1
        start += stride
    return out


def score_texts(model: Transformer, tokenizer, texts: Sequence[str], *, start_id: int,
                batch_size: int = 16) -> TextScore:
    """Total loss of ``model`` on ``texts``, each read as ``[start_id] + tokenizer.encode(text)``.

    Every token of the text is predicted once (the end-of-text token is not: it has no bytes).
    The divisor is the UTF-8 length of the texts themselves, not the bytes the tokens spell:
    a sentencepiece tokenizer adds a space before each text that is not part of it, so the
    number is the same whatever the tokenizer does.
    """
    context = model.config.max_seq_len
    pieces, num_split, num_tokens = [], 0, 0
    for text in texts:
        ids = [start_id] + list(tokenizer.encode(text))
        windows = _windows(ids, context)
        num_split += len(windows) > 1
        num_tokens += len(ids) - 1
        pieces.extend(windows)
    pieces.sort(key=lambda item: len(item[0]))  # similar lengths together: little padding
    device = _device(model)
    total = torch.zeros((), dtype=torch.float64, device=device)  # read once, at the end
    with torch.no_grad():
        for begin in range(0, len(pieces), batch_size):
            group = pieces[begin:begin + batch_size]
            width = max(len(window) for window, _ in group)
            # Built on the host from Python lists, then copied once per batch.
            rows = [window + [0] * (width - len(window)) for window, _ in group]
            keep_rows = [[first <= t < len(window) - 1 for t in range(width - 1)]
                         for window, first in group]  # right padding is never a target
            ids = torch.tensor(rows, dtype=torch.long).to(device)
            keep = torch.tensor(keep_rows, dtype=torch.bool).to(device)
            losses = token_losses(model, ids)
            total += (losses.double() * keep).sum()
    num_bytes = sum(len(text.encode("utf-8")) for text in texts)
    return TextScore(nll_nats=float(total), num_bytes=num_bytes, num_tokens=num_tokens,
                     num_texts=len(texts), num_split=num_split)


# ----------------------------------------------------------------------------- helpers


class WithStartToken:
    """A tokenizer whose ``encode`` puts ``start_id`` first: for tools (the explorers) that
    encode text themselves, so a model trained with a BOS at every story start gets one."""

    def __init__(self, tokenizer, start_id: int):
        self.tokenizer, self.start_id = tokenizer, int(start_id)

    def encode(self, text: str) -> list[int]:
        return [self.start_id] + list(self.tokenizer.encode(text))

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids)

    def __getattr__(self, name):  # vocab_size, token_bytes, ... of the wrapped tokenizer
        return getattr(self.tokenizer, name)
