"""The pre-norm transformer block: x + attn(norm(x)), then x + ffn(norm(x)).

The config's ablation options swap single pieces: LayerNorm for RMSNorm, a GELU MLP for SwiGLU,
post-norm (norm(x + f(x)), the 2017 Transformer's order) for pre-norm.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention, KVCache
from .config import ModelConfig
from .rmsnorm import RMSNorm
from .swiglu import SwiGLU


class GeluMLP(nn.Module):
    """down(gelu(up(x))): the GPT-2 feed-forward, bias-free like the rest of the model."""

    def __init__(self, d_model: int, hidden_dim: int):
        super().__init__()
        self.up_proj = nn.Linear(d_model, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.gelu(self.up_proj(x)))


def make_norm(config: ModelConfig, dim: int) -> nn.Module:
    """The config's normalisation: RMSNorm, or LayerNorm without bias (the same parameters)."""
    if config.norm == "layer":
        return nn.LayerNorm(dim, eps=config.norm_eps, bias=False)
    return RMSNorm(dim, config.norm_eps)


def make_mlp(config: ModelConfig) -> nn.Module:
    if config.mlp == "gelu":
        return GeluMLP(config.d_model, config.ffn_hidden_dim)
    return SwiGLU(config.d_model, config.ffn_hidden_dim)


class Block(nn.Module):
    """One layer. Normalising the branch inputs (not the residual stream) keeps deep stacks stable."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = make_norm(config, config.d_model)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = make_norm(config, config.d_model)
        self.mlp = make_mlp(config)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.post_norm = config.norm_placement == "post"
        # A Llama block calls attention as (x, cos, sin, cache), so a replacement attention
        # module written for that call (a reader's, say) keeps working.
        self.value_options = config.has_value_options

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None, input_ids: torch.Tensor | None = None,
                first_values: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). ``input_ids`` and ``first_values`` feed the value options
        (see Attention.forward); a Llama block ignores them."""
        values = (input_ids, first_values) if self.value_options else ()
        if self.post_norm:
            x = self.input_layernorm(x + self._dropout(self.self_attn(x, cos, sin, cache, *values)))
            return self.post_attention_layernorm(x + self._dropout(self.mlp(x)))
        x = x + self._dropout(self.self_attn(self.input_layernorm(x), cos, sin, cache, *values))
        return x + self._dropout(self.mlp(self.post_attention_layernorm(x)))

    def forward_with_weights(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                             cache: KVCache | None = None, input_ids: torch.Tensor | None = None,
                             first_values: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``forward``, through explicit attention; also returns its weights (B, H, T, S)."""
        values = (input_ids, first_values) if self.value_options else ()
        if self.post_norm:
            attn_out, weights = self.self_attn.forward_with_weights(x, cos, sin, cache, *values)
            x = self.input_layernorm(x + self._dropout(attn_out))
            return self.post_attention_layernorm(x + self._dropout(self.mlp(x))), weights
        attn_out, weights = self.self_attn.forward_with_weights(
            self.input_layernorm(x), cos, sin, cache, *values)
        x = x + self._dropout(attn_out)
        return x + self._dropout(self.mlp(self.post_attention_layernorm(x))), weights

    def attention_input(self, x: torch.Tensor) -> torch.Tensor:
        """What this block's attention reads from the stream x: norm(x) in pre-norm, else x."""
        return x if self.post_norm else self.input_layernorm(x)

    def _dropout(self, branch: torch.Tensor) -> torch.Tensor:
        # An inactive Dropout still costs a module call: skipping it makes a cached decoding
        # step about 5% faster on a CPU (batch 1, d_model 288, 6 layers).
        return self.resid_dropout(branch) if self.training and self.resid_dropout.p else branch
