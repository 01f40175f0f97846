"""The pre-norm transformer block: x + attn(norm(x)), then x + ffn(norm(x))."""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention, KVCache
from .config import ModelConfig
from .rmsnorm import RMSNorm
from .swiglu import SwiGLU


class Block(nn.Module):
    """One layer. Normalising the branch inputs (not the residual stream) keeps deep stacks stable."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.ffn_hidden_dim)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self._dropout(self.self_attn(self.input_layernorm(x), cos, sin, cache))
        return x + self._dropout(self.mlp(self.post_attention_layernorm(x)))

    def forward_with_weights(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                             cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``forward``, through explicit attention; also returns its weights (B, H, T, S)."""
        attn_out, weights = self.self_attn.forward_with_weights(
            self.input_layernorm(x), cos, sin, cache)
        x = x + self._dropout(attn_out)
        return x + self._dropout(self.mlp(self.post_attention_layernorm(x))), weights

    def _dropout(self, branch: torch.Tensor) -> torch.Tensor:
        # An inactive Dropout still costs a module call: skipping it makes a cached decoding
        # step about 5% faster on a CPU (batch 1, d_model 288, 6 layers).
        return self.resid_dropout(branch) if self.training and self.resid_dropout.p else branch
