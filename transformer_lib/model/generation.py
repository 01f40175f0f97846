"""Sampling and autoregressive generation, with or without a KV cache."""

from __future__ import annotations

import functools
import math
import tempfile
import warnings
from pathlib import Path

import torch

from ..checks import require_int
from .attention import attention_dtype
from .rmsnorm import rms_norm
from .rope import apply_rope
from .swiglu import silu_mul
from .transformer import eval_mode, projection_dtype


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None,
                        min_p: float | None = None) -> None:
    """Raise a ValueError naming the bad sampling setting."""
    if not 0 <= temperature < math.inf:  # also refuses NaN
        raise ValueError(f"temperature={temperature} must be a finite number >= 0 (0 means "
                         f"greedy decoding)")
    if top_k is not None:
        require_int("top_k", top_k, 1, why=", or None to keep every token")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p} must lie in (0, 1], or be None to keep every token")
    if min_p is not None and not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p={min_p} must lie in [0, 1], or be None to keep every token")


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None) -> torch.Tensor:
    """Temperature-scale logits (..., V) and set the tokens that top-k / top-p / min-p cut to -inf.

    Temperature 0 keeps only the argmax (greedy). Top-p keeps the smallest set of most likely
    tokens whose probability reaches top_p; the most likely token always survives. Min-p (Nguyen
    et al., 2024) keeps the tokens whose probability is at least ``min_p`` times the most likely
    one's. They apply in this order, after temperature, as in transformers' ``generate``.
    """
    check_sampling_args(temperature, top_k, top_p, min_p)
    logits = logits.float()
    if temperature == 0:
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep.scatter_(-1, logits.argmax(dim=-1, keepdim=True), True)
        return logits.masked_fill(~keep, float("-inf"))
    scaled = logits / temperature
    # A temperature so small that a logit overflows leaves only the argmax, as 0 does; the
    # choice is made per row on the device (no host read).
    overflow = torch.isposinf(scaled).any(dim=-1, keepdim=True)
    greedy = torch.where(logits == logits.amax(dim=-1, keepdim=True), 0.0, float("-inf"))
    logits = torch.where(overflow, greedy, scaled)
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
    if min_p is not None and min_p > 0.0:
        probs = torch.softmax(logits, dim=-1)
        # The argmax always survives: its probability is the threshold's own scale.
        drop = probs < min_p * probs.amax(dim=-1, keepdim=True)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def apply_repetition_penalty(scores: torch.Tensor, seen: torch.Tensor,
                             penalty: float) -> torch.Tensor:
    """Make the tokens already in the sequence less likely; scores (B, V), seen (B, V) bool.

    transformers' convention (Keskar et al., 2019, CTRL): a seen token's score is divided by
    ``penalty`` where positive and multiplied by it where negative, so it always moves down.
    Every token of the sequence counts, the prompt's included, however often it occurred.
    """
    penalized = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalized, scores)


def seen_tokens(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, V) bool: which ids occur in each row of ``ids`` (B, T)."""
    seen = torch.zeros(ids.shape[0], vocab_size, dtype=torch.bool, device=ids.device)
    return seen.scatter_(1, ids, True)


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None,
                      generator: torch.Generator | None = None, *,
                      min_p: float | None = None) -> torch.Tensor:
    """Pick one token per row of logits (B, V); returns ids (B,)."""
    if temperature == 0:
        check_sampling_args(temperature, top_k, top_p, min_p)
        return logits.argmax(dim=-1)
    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p, min_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _check_decoding_args(temperature, top_k, top_p, min_p, num_beams, length_penalty,
                         repetition_penalty) -> None:
    check_sampling_args(temperature, top_k, top_p, min_p)
    require_int("num_beams", num_beams, 1, why=" (1 means no beam search)")
    if not 0 < repetition_penalty < math.inf:  # also refuses NaN
        raise ValueError(f"repetition_penalty={repetition_penalty} must be a finite number > 0 "
                         f"(1 means none; above 1 discourages repeats)")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty={length_penalty} must be a finite number (1 divides a "
                         f"beam's log-probability by its length)")
    if num_beams > 1:
        cut = {name: value for name, value in
               dict(top_k=top_k, top_p=top_p, min_p=min_p).items() if value is not None}
        if cut or temperature not in (0.0, 1.0):
            settings = ", ".join(f"{k}={v}" for k, v in
                                 {**cut, "temperature": temperature}.items())
            raise ValueError(f"beam search (num_beams={num_beams}) is deterministic; the sampling "
                             f"settings ({settings}) would have no effect: leave them at their "
                             f"defaults, or use num_beams=1 to sample")
    elif length_penalty != 1.0:
        raise ValueError(f"length_penalty={length_penalty} only affects beam search; set "
                         f"num_beams > 1 or leave it at 1.0")


def generate(model, prompt_ids, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
             use_cache: bool = True, generator: torch.Generator | None = None, *,
             min_p: float | None = None, repetition_penalty: float = 1.0, num_beams: int = 1,
             length_penalty: float = 1.0, compile: bool = False) -> torch.Tensor:
    """Return the prompt followed by up to ``max_new_tokens`` new tokens.

    ``prompt_ids`` is (B, T) for a batch of equal-length prompts, or (T,) / a list of ints for
    one prompt (the result then has the same rank). Rows that produce ``eos_id`` are padded with
    it; generation stops early once every row has. Policy for long requests: prompt plus new
    tokens must fit in ``max_seq_len`` (an error otherwise, raised before any work) -- a sliding
    window would silently change what the model conditions on.

    Decoding, with transformers' ``generate`` conventions (tests check token-for-token parity):

    - ``temperature`` 0 is greedy; otherwise sampling, with ``top_k``, ``top_p`` and ``min_p``
      cutting the tail (see :func:`filter_logits`).
    - ``repetition_penalty`` > 1 lowers the score of every token already in the row (see
      :func:`apply_repetition_penalty`); applied to the logits before temperature.
    - ``num_beams`` > 1 is beam search (see :func:`_beam_search_loop`): deterministic, so the
      sampling settings must stay at their defaults; ``length_penalty`` divides a finished
      beam's log-probability by its number of new tokens to that power (above 0 favours longer
      outputs). Returns each row's best beam.

    ``compile=True`` decodes with one compiled step function over a static KV cache (see
    :func:`_compiled_loop`): the first call per model and batch size compiles (seconds to a
    minute), later ones reuse it. Greedy tokens equal the eager path's for a float32 or
    float64 model; a bfloat16 model's step rounds in another order, so where two tokens are
    within its rounding the choice can differ. Not with beam search, nor inside autocast.
    """
    device = model.embed_tokens.weight.device
    squeeze = False
    if not isinstance(prompt_ids, torch.Tensor):
        prompt_ids = torch.tensor(prompt_ids, dtype=torch.long)
    if prompt_ids.dim() == 1:
        prompt_ids, squeeze = prompt_ids.unsqueeze(0), True
    if prompt_ids.dim() != 2 or prompt_ids.shape[0] == 0:
        raise ValueError(f"prompt_ids must be one prompt (T,) or a batch (B, T) with B >= 1, got "
                         f"shape {tuple(prompt_ids.shape)}")
    require_int("max_new_tokens", max_new_tokens, 0)
    _check_decoding_args(temperature, top_k, top_p, min_p, num_beams, length_penalty,
                         repetition_penalty)
    if compile and (num_beams > 1 or not use_cache):
        raise ValueError("compile=True decodes one token at a time with a static KV cache: it "
                         "needs use_cache=True and num_beams=1")
    if compile and torch.is_autocast_enabled(device.type):
        raise ValueError("compile=True decodes in the model's own dtype, which autocast does not "
                         "reach inside the compiled step: call generate outside torch.autocast, "
                         "on a model converted with .to(torch.bfloat16) if that is the aim")
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
        if num_beams > 1:
            tokens = _beam_search_loop(model, prompt_ids.to(device), max_new_tokens, total,
                                       num_beams, length_penalty, repetition_penalty, eos_id,
                                       use_cache)
        else:
            choose = _TokenChooser(temperature, top_k, top_p, min_p, repetition_penalty,
                                   generator, model.config.vocab_size)
            loop = _compiled_loop if compile else _sampling_loop
            tokens = loop(model, prompt_ids.to(device), max_new_tokens, total, choose, eos_id,
                          use_cache)
    tokens = tokens.clone()  # an ordinary tensor, which callers may modify in place
    return tokens.squeeze(0) if squeeze else tokens


class _TokenChooser:
    """One step's choice of the next token from logits (B, V), tracking the tokens seen so far
    when a repetition penalty needs them."""

    def __init__(self, temperature, top_k, top_p, min_p, repetition_penalty, generator,
                 vocab_size):
        self.settings = (temperature, top_k, top_p)
        self.min_p, self.generator = min_p, generator
        self.penalty, self.vocab_size = repetition_penalty, vocab_size
        self.seen = None

    def start(self, prompt: torch.Tensor) -> None:
        if self.penalty != 1.0:
            self.seen = seen_tokens(prompt, self.vocab_size)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.seen is not None:
            logits = apply_repetition_penalty(logits.float(), self.seen, self.penalty)
        next_token = sample_next_token(logits, *self.settings, self.generator, min_p=self.min_p)
        if self.seen is not None:
            self.seen.scatter_(1, next_token.unsqueeze(1), True)
        return next_token


def _sampling_loop(model, prompt, max_new_tokens, total, choose, eos_id,
                   use_cache) -> torch.Tensor:
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
    choose.start(prompt)
    next_input = prompt
    for _ in range(max_new_tokens):
        logits = model(next_input if use_cache else tokens[:, :end], caches, last_only=True,
                       check_ids=False)[:, -1, :]  # (B, V)
        next_token = choose(logits)
        if eos_id is not None:
            next_token = next_token.masked_fill(finished, eos_id)
            finished |= next_token == eos_id
        tokens[:, end] = next_token
        end += 1
        next_input = tokens[:, end - 1:end]  # (B, 1)
        if eos_id is not None and bool(finished.all()):  # the step's one device-to-host read
            break
    return tokens[:, :end]


def _beam_search_loop(model, prompt, max_new_tokens, total, num_beams, length_penalty,
                      repetition_penalty, eos_id, use_cache) -> torch.Tensor:
    """Beam search with transformers' conventions (its ``early_stopping=False`` default).

    Each row keeps ``num_beams`` running beams, scored by their summed log-probabilities. A step
    extends every beam by every token and keeps the 2 * num_beams best candidates (so that at
    least num_beams of them do not end with eos). A candidate among the first num_beams that
    ends with eos, or reaches the last step, is *finished*: it enters the row's num_beams best
    finished hypotheses with score sum / new_tokens ** length_penalty. The best num_beams
    unfinished candidates run on. A row is done once it holds num_beams finished hypotheses
    and its best running beam, scored at its current length, cannot beat the worst of them.
    Returns each row's best finished hypothesis, padded with eos to the longest row.
    """
    B, T = prompt.shape
    K, V = num_beams, model.config.vocab_size
    device = prompt.device
    n_candidates = 2 * K
    # Running beams, (B, K, total); beam 0 alone starts live, so step 1 does not pick K copies
    # of the same continuation (the others start at -1e9, as in transformers).
    pad = eos_id if eos_id is not None else 0  # what follows a hypothesis's end
    running = prompt.new_full((B, K, total), pad)
    running[:, :, :T] = prompt.unsqueeze(1)
    running_scores = torch.zeros(B, K, device=device)
    running_scores[:, 1:] = -1e9
    finished = running.clone()
    finished_scores = torch.full((B, K), -1e9, device=device)
    finished_real = torch.zeros(B, K, dtype=torch.bool, device=device)  # not a placeholder
    finished_length = torch.zeros(B, K, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    rows = torch.arange(B, device=device).unsqueeze(1)  # (B, 1)
    in_first_k = torch.arange(n_candidates, device=device) < K  # (2K,)
    seen = seen_tokens(prompt, V).repeat_interleave(K, 0) if repetition_penalty != 1.0 else None
    caches = model.make_caches(B * K, total) if use_cache else None
    next_input = prompt.repeat_interleave(K, 0)  # (B*K, T): every beam's prefill
    for step in range(max_new_tokens):
        end = T + step  # positions filled so far
        logits = model(next_input if use_cache else running.view(B * K, total)[:, :end], caches,
                       last_only=True, check_ids=False)[:, -1, :]  # (B*K, V)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        if seen is not None:
            log_probs = apply_repetition_penalty(log_probs, seen, repetition_penalty)
        scores = (log_probs.view(B, K, V) + running_scores.unsqueeze(-1)).view(B, K * V)
        top_scores, top_index = scores.topk(n_candidates, dim=-1)  # (B, 2K), best first
        source_beam, new_token = top_index // V, top_index % V  # (B, 2K) each
        candidates = running[rows, source_beam]  # (B, 2K, total)
        candidates[:, :, end] = new_token
        ends = (new_token == eos_id if eos_id is not None
                else torch.zeros_like(new_token, dtype=torch.bool))
        if step == max_new_tokens - 1:
            ends = torch.ones_like(ends)  # the last step finishes every candidate

        # Finished hypotheses: merge this step's (first K candidates only) with the kept ones.
        new_length = step + 1
        entering = ends & in_first_k & ~done.unsqueeze(1)  # (B, 2K)
        entering_scores = (top_scores / new_length**length_penalty).masked_fill(~entering, -2e9)
        merged_scores = torch.cat([finished_scores, entering_scores], dim=1)  # (B, 3K)
        best_scores, pick = merged_scores.topk(K, dim=-1)  # (B, K)
        finished = torch.cat([finished, candidates], dim=1)[rows, pick]
        finished_real = torch.cat([finished_real, entering], dim=1)[rows, pick]
        finished_length = torch.cat(
            [finished_length, torch.full_like(entering, new_length, dtype=torch.long)],
            dim=1)[rows, pick]
        finished_scores = best_scores

        # Running beams: the K best candidates that did not just finish.
        live_scores, keep = top_scores.masked_fill(ends, -1e9 - 1e9).topk(K, dim=-1)  # (B, K)
        running = candidates[rows, keep]
        running_scores = live_scores
        chosen_source = source_beam.gather(1, keep)  # (B, K): the beam each one extends
        flat_source = (chosen_source + rows * K).view(-1)  # (B*K,) rows of the caches
        if caches is not None:
            for cache in caches:  # move each kept beam's past into its new slot
                for buffer in (cache.k_cache, cache.v_cache):
                    past = buffer.narrow(2, 0, cache.length)
                    past.copy_(past.index_select(0, flat_source))
        if seen is not None:
            seen = seen.index_select(0, flat_source)
            seen.scatter_(1, running[:, :, end].reshape(-1, 1), True)
        next_input = running[:, :, end].reshape(B * K, 1)

        # A row is done when nothing running can beat its worst finished hypothesis.
        best_possible = running_scores[:, 0] / new_length**length_penalty  # (B,)
        full = finished_real.all(dim=1)
        worst = finished_scores.min(dim=1).values
        done |= full & ~(best_possible > worst)
        if eos_id is not None and step < max_new_tokens - 1 and bool(done.all()):
            break  # the step's one device-to-host read
    lengths = finished_length[:, 0]  # (B,) new tokens of each row's best hypothesis
    longest = int(lengths.max())
    return finished[:, 0, :T + longest]


def decoding_weights(model) -> tuple:
    """The model's weights laid out for decoding steps, as :func:`static_cache_step` takes them.

    Returns ``(embedding (V, C), final norm gain (C,), head (C, V), layers)``, each layer a
    tuple ``(attention norm gain, qkv (C, (H + 2K) D), o (C, C), MLP norm gain,
    gate_up (C, 2F), down (F, C), q-norm gain or None, k-norm gain or None)``. Every matrix is
    transposed to (in, out) and made contiguous, and q/k/v and gate/up are concatenated, so one
    decoding step is 4 matrix products a layer. The transposed layout is what makes batch-1
    decoding fast: a row vector times an (in, out) matrix streams the matrix row by row, and
    ``F.linear``'s (out, in) layout measured several times slower for a large output head
    (benchmarks/RESULTS.md). An unmerged LoRA layer contributes its base weight plus its
    correction. A copy: the model's own parameters are not touched.

    Covers the Llama architecture the library defaults to (RMSNorm, RoPE, SwiGLU, pre-norm)
    with or without QK-norm, the attention scale and logit soft-capping; the ablation variants
    and the value options (value embeddings, value residual) raise a ValueError naming the
    setting.
    """
    from .lora import LoRALinear  # not at import time: lora imports this package's modules

    cfg = model.config
    unsupported = {name: getattr(cfg, name) for name, value in
                   (("norm", "rms"), ("positions", "rope"), ("mlp", "swiglu"),
                    ("norm_placement", "pre"), ("value_embeddings", False),
                    ("value_residual", False)) if getattr(cfg, name) != value}
    if unsupported:
        settings = ", ".join(f"{k}={v!r}" for k, v in unsupported.items())
        raise ValueError(f"compile=True decodes the Llama architecture (norm='rms', "
                         f"positions='rope', mlp='swiglu', norm_placement='pre', no value "
                         f"embeddings or value residual); this model has {settings}: use "
                         f"compile=False")

    def matrix(linear) -> torch.Tensor:  # (out, in), with an unmerged LoRA correction added
        weight = linear.weight
        if isinstance(linear, LoRALinear) and not linear.merged:
            weight = weight + linear.delta_weight().to(weight.dtype)
        return weight

    def in_out(*linears) -> torch.Tensor:  # (in, sum of outs), contiguous
        return torch.cat([matrix(linear) for linear in linears]).t().contiguous()

    layers = []
    for layer in model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        layers.append((
            layer.input_layernorm.weight, in_out(attn.q_proj, attn.k_proj, attn.v_proj),
            in_out(attn.o_proj), layer.post_attention_layernorm.weight,
            in_out(mlp.gate_proj, mlp.up_proj), in_out(mlp.down_proj),
            attn.q_norm.weight if attn.q_norm is not None else None,
            attn.k_norm.weight if attn.k_norm is not None else None,
        ))
    return (model.embed_tokens.weight, model.norm.weight, in_out(model.lm_head), tuple(layers))


def _decoding_weights_of(model) -> tuple:
    """:func:`decoding_weights` of ``model``, kept on the model and remade once a parameter
    changes: an in-place update bumps its version counter (and nearly always changes its sum,
    which also catches most writes through ``.data``), ``.to()`` gives it new storage, and a
    replaced parameter is a new object. Preparing them copies every weight, a noticeable part
    of a short request's time (benchmarks/RESULTS.md), so calls reuse it; the price is that
    copy's memory while the model lives."""
    parameters = list(model.parameters())
    key = tuple((id(p), p.data_ptr(), p._version, p.dtype, p.device) for p in parameters)
    # Writes through .data (older EMA or averaging code) leave the version counter alone: a sum
    # of each parameter (one read of the weights, far cheaper than the copies) catches nearly
    # all of them (not one that keeps every sum, such as a permutation). Float32 works on every
    # device (MPS has no float64); NaN, never equal to itself, would never match.
    sums = torch.stack([p.detach().sum(dtype=torch.float32) for p in parameters])
    key += (sums.nan_to_num(nan=0.0).tolist(),)
    kept = model.__dict__.get("_decoding_weights")
    if kept is not None and kept[0] == key:
        return kept[1]
    weights = decoding_weights(model)
    model.__dict__["_decoding_weights"] = (key, weights)  # not a parameter or buffer
    return weights


def static_cache_step(weights: tuple, config, input_ids: torch.Tensor, positions: torch.Tensor,
                      caches: list[tuple[torch.Tensor, torch.Tensor]], rope_cos: torch.Tensor,
                      rope_sin: torch.Tensor, span: torch.Tensor | None = None,
                      products_up_to: int = 0) -> torch.Tensor:
    """Logits (B, V) of the last of ``input_ids`` (B, T) at ``positions`` (T,), a tensor.

    The forward pass of :class:`Transformer` for decoding with a *static* cache (gpt-fast's
    design), on ``weights`` from :func:`decoding_weights` and the model's ``config`` and RoPE
    tables: each layer's keys and values, (B, K, max_len, D) tensors allocated once, are written
    at ``positions`` with ``index_copy_``, and attention reads the whole cache through a mask
    (key position <= query position). Every shape is fixed and the position is data, not a
    Python int, so one compiled graph serves every decoding step. The eager forward
    (:meth:`Transformer.forward`) is the reference: a test keeps the logits equal.

    ``span``, if given, limits attention to the cache's first ``len(span)`` positions (those
    filled so far): only its length is read, so that an exported step can take the filled
    length as a dynamic size rather than attend over the whole cache at every token.

    Matrices of at most ``products_up_to`` elements are applied as elementwise products and a
    sum rather than a matrix product: the same arithmetic, which a compiler fuses with the
    operations around it, where a matrix product is a call into the BLAS library. For a small
    model's matrices the call costs more than its arithmetic; for large ones the library's
    kernel is faster (benchmarks/RESULTS.md).
    """
    def times(rows: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:  # (..., in) @ (in, out)
        if matrix.numel() <= products_up_to:
            return (rows.unsqueeze(-1) * matrix).sum(-2)  # (..., in, 1) * (in, out), summed
        return rows @ matrix

    embedding, final_norm, head, layers = weights
    B, T = input_ids.shape
    H, K, D, eps = config.num_heads, config.num_kv_heads, config.head_dim, config.norm_eps
    groups = H // K
    scale = D**-0.5 if config.attention_scale else 1.0
    x = embedding[input_ids]  # (B, T, C)
    cos, sin = rope_cos[positions], rope_sin[positions]  # (T, D)
    max_len = caches[0][0].shape[2] if span is None else span.shape[0]
    visible = torch.arange(max_len, device=positions.device) <= positions.unsqueeze(1)  # (T, S)
    for (attn_norm, qkv, o, mlp_norm, gate_up, down, q_norm, k_norm), (k_cache, v_cache) in zip(
            layers, caches, strict=True):
        q, k, v = times(rms_norm(x, attn_norm, eps), qkv).split([H * D, K * D, K * D], dim=-1)
        # (B, T, H*D) -> (B, T, H, D) -> (B, H, T, D); K heads for keys and values
        q = q.view(B, T, H, D).transpose(1, 2).to(k_cache.dtype)
        k = k.view(B, T, K, D).transpose(1, 2).to(k_cache.dtype)
        v = v.view(B, T, K, D).transpose(1, 2).to(k_cache.dtype)
        if q_norm is not None:
            q, k = rms_norm(q, q_norm, eps).to(q.dtype), rms_norm(k, k_norm, eps).to(k.dtype)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k_cache.index_copy_(2, positions, k)
        v_cache.index_copy_(2, positions, v)
        # Each key/value head serves its G query heads: (B, H, T, D) -> (B, K, G*T, D), row
        # g*T + t, so that no key or value is copied G times. Products and sums rather than
        # matmuls: the compiler fuses them with the mask and softmax into one loop, where two
        # tiny matmul calls a layer cost more than their arithmetic.
        q = q.reshape(B, K, groups * T, D)
        keys, values = k_cache[:, :, :max_len], v_cache[:, :, :max_len]  # (B, K, S, D)
        scores = (q.unsqueeze(3) * keys.unsqueeze(2)).sum(-1).float() * scale  # (B, K, G*T, S)
        scores = scores.masked_fill(~visible.repeat(groups, 1), float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(v_cache.dtype)
        out = (probs.unsqueeze(-1) * values.unsqueeze(2)).sum(3)  # (B, K, G*T, D)
        # (B, K, G*T, D) -> (B, H, T, D) -> (B, T, H*D)
        out = out.view(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)
        x = x + times(out.to(x.dtype), o)
        gate, up = times(rms_norm(x, mlp_norm, eps), gate_up).chunk(2, dim=-1)
        x = x + times(silu_mul(gate, up), down)
    logits = times(rms_norm(x[:, -1], final_norm, eps), head)  # (B, V)
    if config.logit_softcap is not None:
        logits = config.logit_softcap * torch.tanh(logits / config.logit_softcap)
    return logits


# A model whose decoding matrices all have at most this many elements (stories260K's largest
# has 32,768) decodes on a CPU with every matrix product written as products and sums, so that
# its compiled step is one generated kernel with its buffers on the stack; larger models keep
# the BLAS library's matrix products (see static_cache_step's products_up_to).
_SMALL_MATRIX = 65536


@functools.cache
def _compiled_step():
    """One compiled step for all models: the weights are inputs, so models of one shape share a
    graph. ``cpp_wrapper`` makes Inductor call its kernels from C++ rather than Python (a
    decoding step of stories260K launches about 60). Built on first use, so that importing the
    library does not load the compiler (seconds)."""
    return torch.compile(static_cache_step, fullgraph=True, dynamic=False,
                         options={"cpp_wrapper": True})


class _StepModule(torch.nn.Module):
    """:func:`static_cache_step` with every tensor a positional input, as ``torch.export``
    wants it: the weights' tree structure and the config are fixed attributes."""

    def __init__(self, config, structure, absent: tuple[bool, ...], products_up_to: int):
        super().__init__()
        self.config, self.structure, self.absent = config, structure, absent
        self.products_up_to = products_up_to

    def forward(self, input_ids, positions, span, rope_cos, rope_sin, *tensors):
        present = sum(not gone for gone in self.absent)
        weights, caches = iter(tensors[:present]), tensors[present:]
        leaves = [None if gone else next(weights) for gone in self.absent]
        layered = [(caches[2 * i], caches[2 * i + 1]) for i in range(self.config.num_layers)]
        return static_cache_step(torch.utils._pytree.tree_unflatten(leaves, self.structure),
                                 self.config, input_ids, positions, layered, rope_cos, rope_sin,
                                 span, self.products_up_to)


@functools.cache
def _ahead_of_time_step(config, shapes: tuple, dtypes: tuple, absent: tuple[bool, ...],
                        structure, products_up_to: int = 0) -> object:
    """:func:`static_cache_step` compiled ahead of time by AOTInductor for one CPU model shape
    and batch size (the key), called with (input_ids (B, 1), position (1,), span (filled
    length,), cos, sin, the decoding weights present, every layer's key and value caches) and
    writing the caches in place.

    Against ``torch.compile``'s graph it skips Dynamo's guards and the Python wrapper around
    the kernels, which for a small model are most of a decoding step (benchmarks/RESULTS.md).
    The span's length is a dynamic size, so that attention covers the filled positions only;
    it must stay below the caches' capacity (export cannot prove a slice of a size's full
    length to be the same graph), which is why the caches get one spare slot.
    ``products_up_to`` is :func:`static_cache_step`'s; where it covers every matrix, no BLAS
    call is left and AOTInductor keeps the fixed-size buffers on the stack (its
    ``allow_stack_allocation``; any extern call turns that off). Built once per process and
    key."""
    module = _StepModule(config, structure, absent, products_up_to)
    # Export traces ordinary tensors: generate() runs under inference mode, so step out of it.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # torch's export and packaging warn about their own internals; nothing for a caller.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        examples = tuple(torch.zeros(shape, dtype=dtype)
                         for shape, dtype in zip(shapes, dtypes, strict=True))
        capacity = shapes[-1][2]  # (B, K, capacity, D) caches
        filled = torch.export.Dim("filled", min=2, max=capacity - 1)
        dynamic = (None, None, {0: filled}, *(None,) * 2, (None,) * (len(examples) - 5))
        exported = torch.export.export(module, examples, dynamic_shapes=dynamic)
        with tempfile.TemporaryDirectory(prefix="tlib-decoding-") as folder:
            package = torch._inductor.aoti_compile_and_package(
                exported, package_path=str(Path(folder) / "step.pt2"),
                inductor_configs={"aot_inductor.allow_stack_allocation": True})
            return torch._inductor.aoti_load_package(package)


def _step_function(model, weights, caches, tables):
    """The compiled decoding step for ``model``: step(input_ids (B, 1), position (1,), filled)
    -> logits (B, V), writing ``caches`` and attending over their first ``filled`` positions.
    On a CPU, AOTInductor's (:func:`_ahead_of_time_step`); elsewhere ``torch.compile``'s (which
    attends over the whole cache, masked), whose per-call overheads matter less on a GPU."""
    if model.embed_tokens.weight.device.type != "cpu":
        compiled = _compiled_step()
        return lambda ids, position, filled: compiled(weights, model.config, ids, position,
                                                      caches, *tables)
    leaves, structure = torch.utils._pytree.tree_flatten(weights)
    present = [leaf for leaf in leaves if leaf is not None]
    flat_caches = [buffer for pair in caches for buffer in pair]
    # (input_ids, position, span, cos, sin, weights..., caches...): the runner's inputs
    fixed = (*tables, *present, *flat_caches)
    batch, capacity = caches[0][0].shape[0], caches[0][0].shape[2]
    spans = torch.empty(capacity)  # its prefixes' lengths are the filled lengths
    shapes = ((batch, 1), (1,), (2,), *(tuple(t.shape) for t in fixed))
    dtypes = (torch.long, torch.long, spans.dtype, *(t.dtype for t in fixed))
    _, _, head, layers = weights
    largest = max(matrix.numel() for matrix in (head, *(t for layer in layers for t in layer))
                  if matrix is not None and matrix.dim() == 2)
    runner = _ahead_of_time_step(model.config, shapes, dtypes,
                                 tuple(leaf is None for leaf in leaves), structure,
                                 _SMALL_MATRIX if largest <= _SMALL_MATRIX else 0)
    # The package's C++ entry point, on the flat inputs: the runner's own __call__ parses its
    # input and output specs from JSON and flattens the arguments at every call, about a third
    # of a small model's step (benchmarks/RESULTS.md).
    run = runner.loader.run
    return lambda ids, position, filled: run([ids, position, spans[:filled], *fixed])[0]


def _compiled_loop(model, prompt, max_new_tokens, total, choose, eos_id,
                   use_cache) -> torch.Tensor:
    """:func:`_sampling_loop` with a static cache: the prompt runs eagerly through
    :func:`static_cache_step`, each new token through its compiled version."""
    B, T = prompt.shape
    tokens = prompt.new_empty(B, total)
    tokens[:, :T] = prompt
    finished = torch.zeros(B, dtype=torch.bool, device=prompt.device)
    param = model.embed_tokens.weight
    dtype = attention_dtype(projection_dtype(param), param.device)  # as make_caches
    # A fixed capacity, so that requests of any length share the compiled graph: max_seq_len,
    # plus the spare slot the CPU's step needs (see _ahead_of_time_step).
    capacity = model.config.max_seq_len + (param.device.type == "cpu")
    shape = (B, model.config.num_kv_heads, capacity, model.config.head_dim)
    caches = [(torch.zeros(shape, dtype=dtype, device=param.device),
               torch.zeros(shape, dtype=dtype, device=param.device)) for _ in model.layers]
    choose.start(prompt)
    weights = _decoding_weights_of(model)
    tables = (model.rope_cos, model.rope_sin)
    # The prompt attends over its own T positions: the whole cache's would be mostly masked.
    logits = static_cache_step(weights, model.config, prompt,
                               torch.arange(T, device=prompt.device), caches, *tables,
                               span=torch.empty(T, device=prompt.device))
    position = torch.tensor([T], device=prompt.device)  # (1,), advanced in place
    step = None  # built when first needed: a request of one new token compiles nothing
    end = T
    for index in range(max_new_tokens):
        next_token = choose(logits)
        if eos_id is not None:
            next_token = next_token.masked_fill(finished, eos_id)
            finished |= next_token == eos_id
        tokens[:, end] = next_token
        end += 1
        if eos_id is not None and bool(finished.all()):
            break
        if index < max_new_tokens - 1:
            if step is None:
                step = _step_function(model, weights, caches, tables)
            # The new token as its own (B, 1) tensor: a view into `tokens` would move its
            # storage offset every step, which the compiled graph would have to guard on.
            logits = step(next_token.view(B, 1), position, end)  # attends over `end` positions
            position += 1
    return tokens[:, :end]
