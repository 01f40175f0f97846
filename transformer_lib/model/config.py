"""Model configuration: one dataclass, derived fields computed in one place, named presets."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field

from ..checks import require_int, require_positive_number, require_real


def _round_up(value: int, multiple: int) -> int:
    return ((value + multiple - 1) // multiple) * multiple


@dataclass(frozen=True)
class ModelConfig:
    """Shape and hyper-parameters of a Llama-style decoder-only transformer.

    Fields left at ``None`` are derived in ``__post_init__`` (the only place that derives them).

    Frozen: a model is built from its config, so changing the config afterwards would leave the
    two disagreeing. A variant is a new config, ``dataclasses.replace(config, num_layers=8)``,
    validated like any other. ``replace`` copies the derived fields as they are; pass
    ``num_kv_heads=None`` or ``ffn_hidden_dim=None`` to derive them again from the new shape.
    """

    vocab_size: int = 50257  # GPT-2's BPE vocabulary; the book's own tokenizers use far fewer
    d_model: int = 768  # width of the residual stream
    num_layers: int = 12  # number of transformer blocks
    num_heads: int = 12  # query heads
    num_kv_heads: int | None = None  # key/value heads (grouped-query attention); None = num_heads
    ffn_hidden_dim: int | None = None  # SwiGLU width; None = 8/3 * d_model rounded up to 64
    max_seq_len: int = 1024  # longest sequence the RoPE tables (and the KV cache) cover
    rope_theta: float = 10000.0  # RoPE base: larger stretches the longest wavelength
    norm_eps: float = 1e-5  # RMSNorm epsilon, as in Llama
    dropout: float = 0.0  # modern LLM pre-training uses none; kept for small-data experiments
    tie_embeddings: bool = True  # share the embedding and output matrices (saves vocab*d params)
    ffn_multiple_of: int = field(default=64, repr=False)  # hardware-friendly rounding of the FFN
    # ---- Alternatives to the Llama choices, for the ablations (tlib-ablate, chapter 12). The
    # defaults are Llama's; each alternative changes one thing.
    norm: str = "rms"  # "rms" (RMSNorm) or "layer" (bias-free LayerNorm: same parameter count)
    positions: str = "rope"  # "rope", "learned" or "sinusoidal" (added to the embedding), "none"
    mlp: str = "swiglu"  # "swiglu" or "gelu" (default width 3/2 x SwiGLU's: equal parameters)
    norm_placement: str = "pre"  # "pre": x + f(norm(x)); "post": norm(x + f(x)), as in 2017
    attention_scale: bool = True  # False drops the 1/sqrt(D) of softmax(QK^T/sqrt(D))
    qk_norm: bool = False  # RMSNorm on each head's queries and keys before RoPE
    zero_init_output: bool = False  # o_proj and down_proj start at zero: each block starts as x
    logit_softcap: float | None = None  # logits -> cap * tanh(logits / cap) (Gemma 2)
    # Two additions from the small-model speed-runs; neither is in Llama, so a model using them
    # converts to no other format (interop refuses it).
    value_embeddings: bool = False  # each layer adds a learned vector per input token to its values
    value_residual: bool = False  # each layer's values averaged with the first layer's (ResFormer)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "max_seq_len"):
            _require_positive_int(name, getattr(self, name))
        _as_python_numbers(self)  # numpy sizes would pass the checks but not json.dumps
        # A frozen dataclass sets its derived fields through object.__setattr__, here only.
        if self.num_kv_heads is None:
            object.__setattr__(self, "num_kv_heads", self.num_heads)
        _require_positive_int("num_kv_heads", self.num_kv_heads)
        for name, allowed in VARIANT_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        _require_positive_int("ffn_multiple_of", self.ffn_multiple_of)
        if self.ffn_hidden_dim is None:
            width = _round_up(int(8 * self.d_model / 3), self.ffn_multiple_of)
            if self.mlp == "gelu":  # two matrices instead of three: 3/2 the width, same parameters
                width = width * 3 // 2
            object.__setattr__(self, "ffn_hidden_dim", width)
        _require_positive_int("ffn_hidden_dim", self.ffn_hidden_dim)
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}; "
                f"pick num_heads from the divisors of d_model or change d_model"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} is not divisible by num_kv_heads={self.num_kv_heads}; "
                f"each key/value head must serve a whole group of query heads"
            )
        if self.head_dim % 2:
            raise ValueError(
                f"head dimension d_model/num_heads = {self.head_dim} is odd; RoPE rotates pairs "
                f"of dimensions (and the model builds its tables whatever positions it uses), so "
                f"choose d_model and num_heads giving an even head dimension"
            )
        require_positive_number("rope_theta", self.rope_theta, " (Llama uses 10000)")
        require_positive_number("norm_eps", self.norm_eps, " (Llama uses 1e-5)")
        require_real("dropout", self.dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must lie in [0, 1)")
        for name in ("tie_embeddings", "attention_scale", "qk_norm", "zero_init_output",
                     "value_embeddings", "value_residual"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}={getattr(self, name)!r} must be True or False")
        if self.logit_softcap is not None:
            require_positive_number("logit_softcap", self.logit_softcap, ", or None for no cap")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def has_value_options(self) -> bool:
        """Whether attention takes the input ids or the first layer's values (the value options);
        a model without them calls its blocks and attention with (x, cos, sin, cache) alone."""
        return self.value_embeddings or self.value_residual

    @property
    def kv_groups(self) -> int:
        """How many query heads share one key/value head."""
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ModelConfig:
        """A named configuration, with any field overridden by keyword."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown ModelConfig field(s) {sorted(unknown)} in overrides")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"config has unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


# The allowed values of the string-valued alternatives; the first of each is the default.
VARIANT_CHOICES: dict[str, tuple[str, ...]] = {
    "norm": ("rms", "layer"),
    "positions": ("rope", "learned", "sinusoidal", "none"),
    "mlp": ("swiglu", "gelu"),
    "norm_placement": ("pre", "post"),
}


def _as_python_numbers(config: ModelConfig) -> None:
    """Replace numpy (or other) integers and reals among the fields by Python int and float."""
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, numbers.Integral) and type(value) is not int:
            object.__setattr__(config, item.name, int(value))
        elif isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) \
                and type(value) is not float:
            object.__setattr__(config, item.name, float(value))


def _require_positive_int(name: str, value) -> None:
    require_int(name, value, 1)


PRESETS: dict[str, dict] = {
    # The original design's model: 22.5M parameters with GPT-2's vocabulary and tied embeddings.
    # 50257*256 embedding + 12 * 803,328 per block + 256 = 22,505,984.
    "seed-22.5M": dict(
        vocab_size=50257, d_model=256, num_layers=12, num_heads=8, max_seq_len=512
    ),
    # Small enough for unit tests and notebook cells on a laptop CPU.
    "tiny": dict(vocab_size=512, d_model=64, num_layers=2, num_heads=4, num_kv_heads=2,
                 max_seq_len=128),
    # The shape of GPT-2 small (124M with GPT-2's LayerNorm MLP; a SwiGLU model of this shape).
    "gpt2-small": dict(vocab_size=50257, d_model=768, num_layers=12, num_heads=12,
                       max_seq_len=1024),
    # The default of `tlib-train`: tuned for 5 minutes on a 2-core CPU.
    # Grouped-query attention as in Llama 2/3: 4 query heads share 2 key/value heads.
    "tinystories-cpu": dict(vocab_size=2048, d_model=128, num_layers=4, num_heads=4,
                            num_kv_heads=2, max_seq_len=256),
    # The shape `tlib-bench` times (llama2.c's 15M stories model).
    "stories15M": dict(vocab_size=4096, d_model=288, num_layers=6, num_heads=6, max_seq_len=256),
}
