"""Sampling and autoregressive generation, with or without a KV cache."""

from __future__ import annotations

import torch

from ..checks import require_int
from .transformer import eval_mode


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise a ValueError naming the bad sampling setting."""
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 means greedy decoding)")
    if top_k is not None:
        require_int("top_k", top_k, 1, why=", or None to keep every token")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p} must lie in (0, 1], or be None to keep every token")


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Temperature-scale logits (..., V) and set the tokens that top-k / top-p cut to -inf.

    Temperature 0 keeps only the argmax (greedy). Top-p keeps the smallest set of most likely
    tokens whose probability reaches top_p; the most likely token always survives.
    """
    check_sampling_args(temperature, top_k, top_p)
    logits = logits.float()
    if temperature == 0:
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep.scatter_(-1, logits.argmax(dim=-1, keepdim=True), True)
        return logits.masked_fill(~keep, float("-inf"))
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs  # probability of strictly likelier tokens
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row of logits (B, V); returns ids (B,)."""
    if temperature == 0:
        check_sampling_args(temperature, top_k, top_p)
        return logits.argmax(dim=-1)
    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def generate(model, prompt_ids, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
             use_cache: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return the prompt followed by up to ``max_new_tokens`` sampled tokens.

    ``prompt_ids`` is (B, T) for a batch of equal-length prompts, or (T,) / a list of ints for
    one prompt (the result then has the same rank). Rows that produce ``eos_id`` are padded with
    it; generation stops early once every row has. Policy for long requests: prompt plus new
    tokens must fit in ``max_seq_len`` (an error otherwise, raised before any work) -- a sliding
    window would silently change what the model conditions on.
    """
    device = model.embed_tokens.weight.device
    squeeze = False
    if not isinstance(prompt_ids, torch.Tensor):
        prompt_ids = torch.tensor(prompt_ids, dtype=torch.long)
    if prompt_ids.dim() == 1:
        prompt_ids, squeeze = prompt_ids.unsqueeze(0), True
    require_int("max_new_tokens", max_new_tokens, 0)
    check_sampling_args(temperature, top_k, top_p)
    if prompt_ids.shape[-1] == 0:
        raise ValueError("the prompt is empty; give at least one token (e.g. the end-of-text id)")
    total = prompt_ids.shape[1] + max_new_tokens
    if total > model.config.max_seq_len:
        raise ValueError(
            f"prompt ({prompt_ids.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) = {total} "
            f"exceeds max_seq_len={model.config.max_seq_len}; shorten the prompt, ask for fewer "
            f"tokens, or use a model with a longer context")
    model.check_input_ids(prompt_ids, 0)  # once: the sampled ids are in range by construction

    # Nothing here is differentiated, so inference_mode rather than no_grad: it also skips
    # autograd's version counters and view tracking (measured in benchmarks/RESULTS.md).
    with eval_mode(model), torch.inference_mode():
        tokens = _sampling_loop(model, prompt_ids.to(device), max_new_tokens, total,
                                temperature, top_k, top_p, eos_id, use_cache, generator)
    tokens = tokens.clone()  # an ordinary tensor, which callers may modify in place
    return tokens.squeeze(0) if squeeze else tokens


def _sampling_loop(model, prompt, max_new_tokens, total, temperature, top_k, top_p, eos_id,
                   use_cache, generator) -> torch.Tensor:
    """The sampling loop of :func:`generate`, on validated arguments; prompt (B, T) -> (B, T').

    The output is allocated once, at its largest size, and filled in place: growing it with
    ``torch.cat`` would copy every earlier token at every step. With ``eos_id`` the loop reads
    the device once per step (has every row finished?); without it, never.
    """
    B, T = prompt.shape
    tokens = prompt.new_empty(B, total)  # (B, T + max_new_tokens), filled up to `end`
    tokens[:, :T] = prompt
    end = T
    finished = torch.zeros(B, dtype=torch.bool, device=prompt.device)
    caches = model.make_caches(B, total) if use_cache else None
    next_input = prompt
    for _ in range(max_new_tokens):
        logits = model(next_input if use_cache else tokens[:, :end], caches, last_only=True,
                       check_ids=False)[:, -1, :]  # (B, V)
        next_token = sample_next_token(logits, temperature, top_k, top_p, generator)
        if eos_id is not None:
            next_token = next_token.masked_fill(finished, eos_id)
            finished |= next_token == eos_id
        tokens[:, end] = next_token
        end += 1
        next_input = tokens[:, end - 1:end]  # (B, 1)
        if eos_id is not None and bool(finished.all()):  # the step's one device-to-host read
            break
    return tokens[:, :end]
