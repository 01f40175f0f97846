"""The full model: token embedding, a stack of pre-norm blocks, a final RMSNorm, the output head.

Module names follow Hugging Face's ``LlamaForCausalLM`` (``embed_tokens``, ``layers.N.self_attn
.q_proj``, ``norm``, ``lm_head``...), so checkpoints map one to one (see ``interop``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .attention import KVCache, attention_dtype
from .block import Block, make_norm
from .config import ModelConfig
from .rope import rope_tables


def projection_dtype(param: torch.Tensor) -> torch.dtype:
    """The dtype a linear layer whose weight is ``param`` outputs here: the autocast dtype when
    autocast is on for the weight's device type, else its own. Autocast leaves float64 alone.
    """
    device_type = param.device.type
    # Devices without autocast (meta, used to build models without memory) keep their dtype.
    if (param.dtype != torch.float64 and torch.amp.is_autocast_available(device_type)
            and torch.is_autocast_enabled(device_type)):
        return torch.get_autocast_dtype(device_type)
    return param.dtype


def sinusoidal_positions(max_seq_len: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The 2017 Transformer's table (max_seq_len, d_model): sin at even columns, cos at odd."""
    positions = torch.arange(max_seq_len, dtype=torch.float64).unsqueeze(1)  # (T, 1)
    speeds = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (C/2,)
    table = torch.zeros(max_seq_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(positions * speeds)
    table[:, 1::2] = torch.cos(positions * speeds)
    return table.float()


INIT_STD = 0.02  # the initial weights' standard deviation: GPT-2's


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``module`` in eval mode (dropout off), then restore every submodule's
    previous mode. A module already in eval mode throughout is left alone: switching walks every
    submodule twice, a noticeable part of a short generate call."""
    was_training = {sub: sub.training for sub in module.modules()}
    if not any(was_training.values()):
        yield module
        return
    module.eval()
    try:
        yield module
    finally:
        for sub, training in was_training.items():
            sub.training = training


class Transformer(nn.Module):
    """A Llama-style decoder-only language model."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"Transformer takes a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = make_norm(config, config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # Derived from the config, so not saved with the weights, and always float32: rounding
        # angles to bfloat16 would misplace late positions (see _apply).
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)  # (max_seq_len, D)
        self.register_buffer("rope_sin", sin, persistent=False)  # (max_seq_len, D)
        # Absolute positions (ablations only): a table added to the token embeddings.
        self.position_embedding = None
        if config.positions == "learned":
            self.position_embedding = nn.Embedding(config.max_seq_len, config.d_model)
        # The 2017 Transformer multiplied its embeddings by sqrt(d_model) before adding this
        # table; dividing the table instead keeps that ratio of position to token signal (about
        # 3 : 1) with the library's embeddings. Added as it is, entries of size 1 onto
        # embeddings of std 0.02, it drowned the tokens (0.7 bits per byte worse after 300 steps).
        table = (sinusoidal_positions(config.max_seq_len, config.d_model) / math.sqrt(config.d_model)
                 if config.positions == "sinusoidal" else None)
        self.register_buffer("position_table", table, persistent=False)  # (max_seq_len, C)
        self.init_weights()

    def _rebuild_rope_tables(self) -> None:
        """Recompute the float32 RoPE tables from the config, on the device of the weights."""
        device = self.embed_tokens.weight.device
        cos, sin = rope_tables(self.config.head_dim, self.config.max_seq_len,
                               self.config.rope_theta)
        if device.type != "meta":  # computed on the CPU, so every device gets the same numbers
            cos, sin = cos.to(device), sin.to(device)
        else:
            cos, sin = torch.empty_like(cos, device=device), torch.empty_like(sin, device=device)
        self.rope_cos, self.rope_sin = cos, sin

    def _apply(self, fn, recurse: bool = True):
        # Every .to(), .cuda(), .half(), .to_empty() goes through _apply, which would also cast
        # the tables to the model's dtype (or leave them uninitialised after to_empty). Rebuild
        # them instead: float32, on the weights' new device. to_empty also replaces the tied
        # output head by a separate tensor, so tie it again.
        super()._apply(fn, recurse)
        if self.config.tie_embeddings and self.lm_head.weight is not self.embed_tokens.weight:
            self.lm_head.weight = self.embed_tokens.weight
        self._rebuild_rope_tables()
        return self

    def init_weights(self, std: float = INIT_STD) -> None:
        """Normal(0, std) weights; the two projections that write into the residual stream get
        std / sqrt(2 * num_layers) (GPT-2's scaled init), so the stream's variance does not grow
        with depth at initialisation."""
        residual_std = std / math.sqrt(2 * self.config.num_layers)
        self._rebuild_rope_tables()  # a model made on the meta device has none yet
        nn.init.normal_(self.embed_tokens.weight, std=std)
        if not self.config.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, std=std)
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding.weight, std=std)
        for layer in self.layers:
            attn, mlp = layer.self_attn, layer.mlp
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj, getattr(mlp, "gate_proj", None),
                         mlp.up_proj):
                if proj is not None:  # a GELU MLP has no gate
                    nn.init.normal_(proj.weight, std=std)
            for proj in (attn.o_proj, mlp.down_proj):
                if self.config.zero_init_output:
                    nn.init.zeros_(proj.weight)
                else:
                    nn.init.normal_(proj.weight, std=residual_std)
            if attn.value_embedding is not None:  # each layer starts as a plain one
                nn.init.zeros_(attn.value_embedding.weight)
            for norm in (layer.input_layernorm, layer.post_attention_layernorm, attn.q_norm,
                         attn.k_norm):
                if norm is not None:
                    norm.reset_parameters()
        self.norm.reset_parameters()

    def embed(self, input_ids: torch.Tensor, start: int = 0):
        """The blocks' first input: token embeddings (B, T, C), plus absolute positions if the
        model uses them, and the RoPE tables (T, D) for positions start..start+T (None, None
        without RoPE). With :meth:`value_inputs` and :meth:`output_logits`, the pieces of
        ``forward`` that analysis code running the blocks one by one needs."""
        T = input_ids.shape[1]
        x = self.embed_tokens(input_ids)  # (B, T, C)
        if self.position_embedding is not None:
            x = x + self.position_embedding.weight[start:start + T]
        elif self.position_table is not None:
            x = x + self.position_table[start:start + T].to(x.dtype)
        if self.config.positions != "rope":
            return x, None, None
        return x, self.rope_cos[start:start + T], self.rope_sin[start:start + T]

    def first_values(self, x: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor | None:
        """The first layer's values (B, K, T, D) for the embedded stream x (B, T, C), which a
        model with ``value_residual`` averages into every layer's; None for other models.

        Computed once here, at the cost of repeating the first layer's value projection, so
        that a block keeps returning only its output."""
        if not self.config.value_residual:
            return None
        first = self.layers[0]
        return first.self_attn.values(first.attention_input(x), input_ids)

    def value_inputs(self, x: torch.Tensor, input_ids: torch.Tensor) -> tuple:
        """What the blocks take beyond (x, cos, sin, cache): (input_ids, first values) for a
        model with the value options, nothing for a Llama (whose blocks a reader may replace)."""
        if not self.config.has_value_options:
            return ()
        return input_ids, self.first_values(x, input_ids)

    def check_input_ids(self, input_ids: torch.Tensor, start: int = 0,
                        check_ids: bool = True) -> None:
        """Raise a clear error unless input_ids is an integer (B, T) tensor whose positions
        start..start+T fit in max_seq_len and (with ``check_ids``) whose ids lie in the vocabulary.

        The id range check reads the device once (one aminmax); ids checked before, or sampled
        from the model, can skip it with ``check_ids=False``.
        """
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"input_ids must be a torch.Tensor of token ids, got "
                            f"{type(input_ids).__name__}; wrap lists with torch.tensor([ids])")
        if input_ids.dtype not in (torch.int64, torch.int32):
            # The embedding takes int32 and int64 only; narrower types would fail later, inside
            # the id range check or the lookup, with a less helpful message.
            raise TypeError(f"input_ids must hold integer token ids as int64 or int32, got dtype "
                            f"{input_ids.dtype}; convert with input_ids.long()")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got "
                             f"{tuple(input_ids.shape)}; add a batch dimension with "
                             f"input_ids.unsqueeze(0)")
        end = start + input_ids.shape[1]
        if end > self.config.max_seq_len:
            raise ValueError(f"sequence reaches position {end} but max_seq_len is "
                             f"{self.config.max_seq_len}; shorten the input or build the model "
                             f"with a larger max_seq_len")
        if check_ids and input_ids.numel() and not torch.compiler.is_compiling():
            low, high = torch.stack(torch.aminmax(input_ids)).tolist()  # one device-host read
            if low < 0 or high >= self.config.vocab_size:
                bad = low if low < 0 else high
                raise ValueError(f"token id {bad} is outside [0, vocab_size={self.config.vocab_size})"
                                 f"; the tokenizer and the model's vocab_size disagree")

    def forward(self, input_ids: torch.Tensor, caches: list[KVCache] | None = None, *,
                last_only: bool = False, check_ids: bool = True, return_hidden: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, T, vocab_size) for input_ids (B, T); (B, 1, vocab_size) with ``last_only``.

        With ``return_hidden``, returns (logits, hidden states): the L + 1 residual streams
        (B, T, C) after the embedding and after each layer, from the same pass (the analysis
        tools read them).

        With ``caches`` (one KVCache per layer, from :meth:`make_caches`), input_ids continue the
        cached sequence: their positions start at the caches' length. ``last_only`` computes the
        output head for the last position alone (what sampling needs: llama2.c and Meta's code
        do the same). ``check_ids=False`` skips the id range check, for ids already checked with
        :meth:`check_input_ids` or sampled from the model.
        """
        start = 0
        if caches is not None:
            start = caches[0].length
            if any(cache.length != start for cache in caches):
                raise ValueError(f"the KV caches disagree on their length "
                                 f"({[cache.length for cache in caches]}); make them together "
                                 f"with make_caches and reset them together")
        self.check_input_ids(input_ids, start, check_ids)
        x, cos, sin = self.embed(input_ids, start)  # (B, T, C), (T, D), (T, D)
        if self.training and self.dropout.p:  # as in Block: no call when it would do nothing
            x = self.dropout(x)
        hidden = [x] if return_hidden else None
        values = self.value_inputs(x, input_ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, caches[i] if caches is not None else None, *values)
            if hidden is not None:
                hidden.append(x)
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        logits = self.output_logits(x)  # (B, T, V)
        return (logits, hidden) if hidden is not None else logits

    def output_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (..., V) for residual streams x (..., C): the final norm, the output head and
        the soft cap if the model has one."""
        logits = self.lm_head(self.norm(x))
        cap = self.config.logit_softcap
        if cap is not None:
            logits = cap * torch.tanh(logits / cap)
        return logits

    @torch.no_grad()
    def attention_maps(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer, each (B, num_heads, T, T), via the explicit path,
        in eval mode (dropout off, so the maps are the model's, the same at every call)."""
        self.check_input_ids(input_ids, 0)
        with eval_mode(self):
            x, cos, sin = self.embed(input_ids, 0)
            values = self.value_inputs(x, input_ids)
            maps = []
            for layer in self.layers:
                x, weights = layer.forward_with_weights(x, cos, sin, None, *values)
                maps.append(weights.float())
        return maps

    def make_caches(self, batch_size: int, max_seq_len: int | None = None) -> nn.ModuleList:
        """One empty KVCache per layer, on the model's device, in the dtype attention runs in.

        That is the dtype the key/value projections produce -- the model's, or the autocast
        dtype when autocast is on for the model's device type at the time of the call -- except
        float32 for bfloat16 on a CPU (see ``attention_dtype``). So make the caches inside the
        same autocast block (or none) that runs the model, as :func:`generate` does.
        """
        param = self.embed_tokens.weight
        dtype = attention_dtype(projection_dtype(param), param.device)
        return nn.ModuleList(
            KVCache(batch_size, self.config.num_kv_heads, max_seq_len or self.config.max_seq_len,
                    self.config.head_dim, dtype=dtype, device=param.device)
            for _ in self.layers
        )

    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
                 use_cache: bool = True, generator: torch.Generator | None = None,
                 **decoding) -> torch.Tensor:
        """Continue prompt_ids; see :func:`transformer_lib.model.generation.generate` (which
        also takes ``decoding`` options such as ``num_beams``, ``min_p`` and
        ``repetition_penalty``)."""
        from .generation import generate

        return generate(self, prompt_ids, max_new_tokens, temperature=temperature, top_k=top_k,
                        top_p=top_p, eos_id=eos_id, use_cache=use_cache, generator=generator,
                        **decoding)

    def num_parameters(self) -> int:
        """Trainable parameters, each shared tensor counted once."""
        return sum(p.numel() for p in self.parameters())


def parameter_counts(model: Transformer) -> dict[str, int]:
    """Parameters by component; a tied output head counts 0 (it is the embedding). The
    embedding counts the token table and, in a model with learned positions, the position table."""
    counts = dict(embedding=0, attention=0, feed_forward=0, norms=0, lm_head=0)
    for name, param in model.named_parameters():  # shared tensors are listed once
        if name.startswith(("embed_tokens", "position_embedding")):
            counts["embedding"] += param.numel()
        elif name.startswith("lm_head"):
            counts["lm_head"] += param.numel()
        elif ".self_attn." in name:
            counts["attention"] += param.numel()
        elif ".mlp." in name:
            counts["feed_forward"] += param.numel()
        else:
            counts["norms"] += param.numel()
    counts["total"] = sum(counts.values())
    return counts
