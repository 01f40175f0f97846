"""LoRA (Hu et al., 2021): fine-tune a frozen model through small low-rank corrections.

A chosen projection ``y = x W^T`` (W is out x in) becomes ``y = x W^T + s * dropout(x) A^T B^T``
with A (r x in), B (out x r) and the scale s = alpha / r. Only A and B train: r * (in + out)
numbers per projection instead of in * out. B starts at zero, so the adapted model starts as
exactly the base model; A starts as nn.Linear would (Kaiming-uniform), as in ``peft``.

``merge()`` adds s * B A into W once, so inference costs nothing extra; ``unmerge()`` takes it
out again. Parameter names follow ``peft`` (``lora_A``, ``lora_B``; the base weight keeps its
name ``weight``), so a LoRA model's state dict is the base model's plus the adapters, and
``tests/test_lora.py`` checks the layer against ``peft`` on the model exported with ``to_hf``.

Usage::

    add_lora(model, LoRAConfig(rank=4, alpha=8, targets=("q", "v")))  # freezes everything else
    ...train...
    save_adapter("adapter.safetensors", model)        # only A and B: kilobytes
    plain = merged_copy(model)                         # a plain Transformer, for checkpoints
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import require_int, require_positive_number, require_real
from .config import ModelConfig
from .transformer import Transformer

# Short target names -> the projection's path inside a Block (Hugging Face's names).
TARGETS = {
    "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj",
}
ADAPTER_FORMAT = 1


@dataclass(frozen=True)
class LoRAConfig:
    """Which projections get adapters, and their rank, scale and dropout."""

    rank: int = 8  # r: the inner dimension of B A
    alpha: float = 16.0  # the update is scaled by alpha / rank, so changing r keeps its size
    dropout: float = 0.0  # on the adapter's input only (the base path is unchanged)
    targets: tuple[str, ...] = ("q", "v")  # any of TARGETS' keys

    def __post_init__(self) -> None:
        require_int("rank", self.rank, 1)
        # numpy numbers become floats, as in ModelConfig, so the config saves as JSON
        object.__setattr__(self, "alpha", require_positive_number("alpha", self.alpha))
        object.__setattr__(self, "dropout", require_real("dropout", self.dropout))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.targets, str):  # tuple("qv") would be ("q", "v") by accident
            raise TypeError(f"targets must be a list of names such as ('q', 'v'), got the "
                            f"string {self.targets!r}")
        targets = tuple(self.targets)
        unknown = sorted(set(targets) - set(TARGETS))
        if unknown or not targets:
            raise ValueError(f"targets must be a non-empty subset of {list(TARGETS)}, got "
                             f"{list(targets)}")
        object.__setattr__(self, "targets", tuple(t for t in TARGETS if t in targets))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, data: dict) -> LoRAConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown LoRA config fields {unknown}; known: {sorted(fields)}")
        return cls(**{**data, "targets": tuple(data.get("targets", cls.targets))})


class LoRALinear(nn.Module):
    """A bias-free linear layer with a frozen weight and a trainable low-rank correction."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if base.bias is not None:
            raise ValueError("LoRALinear wraps bias-free projections (the model has no biases)")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # the same tensor: frozen below, not copied
        self.weight.requires_grad_(False)
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, rank, **factory))
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        self.lora_dropout = nn.Dropout(dropout)
        self.merged = False
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        # A as nn.Linear initialises its weight (peft does the same); B = 0, so B A = 0.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def delta_weight(self) -> torch.Tensor:
        """The correction s * B A, shaped like the weight (out, in)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out)."""
        out = F.linear(x, self.weight)
        if self.merged:
            return out
        if self.training and self.lora_dropout.p:
            x = self.lora_dropout(x)
        # Two thin products, never the (out, in) matrix B A: r * (in + out) work per token.
        return out + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold s * B A into the weight; forward then costs what the base layer costs."""
        if self.merged:
            raise RuntimeError("this LoRA layer is already merged; unmerge() it first")
        self.weight += self.delta_weight().to(self.weight.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take s * B A out of the weight again (up to rounding)."""
        if not self.merged:
            raise RuntimeError("this LoRA layer is not merged")
        self.weight -= self.delta_weight().to(self.weight.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, alpha={self.alpha}, merged={self.merged}")


def _parent_and_name(block: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, name = path.rsplit(".", 1)
    return block.get_submodule(parent_path), name


def add_lora(model: Transformer, config: LoRAConfig) -> Transformer:
    """Put LoRA layers on ``config.targets`` in every block and freeze every other parameter.

    In place; returns the model. The adapters are created on the model's device and dtype.
    """
    if not isinstance(config, LoRAConfig):
        raise TypeError(f"add_lora takes a LoRAConfig, got {type(config).__name__}")
    if lora_layers(model):
        raise ValueError("the model already has LoRA layers; merged_copy() or remove them first")
    # Every target is found before anything changes, so a missing one leaves the model as it was.
    places = []
    for index, block in enumerate(model.layers):
        for target in config.targets:
            try:
                parent, name = _parent_and_name(block, TARGETS[target])
                base = getattr(parent, name)
            except AttributeError:
                base = None
            if base is None:
                raise ValueError(f"layer {index} has no {TARGETS[target]} linear layer for the "
                                 f"LoRA target {target!r} (a GELU MLP has no gate, say); choose "
                                 f"targets the model has")
            places.append((parent, name, base))
    for param in model.parameters():
        param.requires_grad_(False)
    for parent, name, base in places:
        setattr(parent, name, LoRALinear(base, config.rank, config.alpha, config.dropout))
    model.lora_config = config  # a plain attribute: what save_adapter and checkpoints record
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's LoRA layers by module name."""
    return {name: module for name, module in model.named_modules()
            if isinstance(module, LoRALinear)}


def lora_config_of(model: nn.Module) -> LoRAConfig:
    config = getattr(model, "lora_config", None)
    if config is None or not lora_layers(model):
        raise ValueError("the model has no LoRA layers; call add_lora(model, LoRAConfig(...))")
    return config


def merge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.unmerge()


def trainable_parameters(model: nn.Module) -> int:
    """Parameters that receive gradients (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merged_copy(model: Transformer) -> Transformer:
    """A plain ``Transformer`` whose weights are the base weights plus every s * B A.

    The LoRA model is left as it was; the copy has its device and dtype, every parameter
    trainable, like a fresh model, and saves and loads with the ordinary checkpoint code.
    """
    weight = model.embed_tokens.weight
    plain = Transformer(model.config).to(device=weight.device, dtype=weight.dtype)
    state = {}
    layers = lora_layers(model)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if ".lora_" in name:
                continue
            module_name = name.rsplit(".", 1)[0]
            layer = layers.get(module_name)
            if layer is not None and not layer.merged:
                tensor = tensor + layer.delta_weight().to(tensor.dtype)
            state[name] = tensor
    plain.load_state_dict(state)
    return plain.train(model.training)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters: ``layers.N.self_attn.q_proj.lora_A`` and so on."""
    return {name: tensor for name, tensor in model.state_dict().items() if ".lora_" in name}


def save_adapter(path: str | os.PathLike, model: Transformer) -> None:
    """Write the adapters alone to a safetensors file, with the LoRA and model configs in its
    metadata (a few hundred KB at most for the book's model)."""
    from safetensors.torch import save_file

    config = lora_config_of(model)
    if any(layer.merged for layer in lora_layers(model).values()):
        raise ValueError("unmerge the model before saving its adapters (merged weights would "
                         "be saved as if they were the base)")
    tensors = {name: t.detach().contiguous().cpu() for name, t in lora_state_dict(model).items()}
    metadata = {"format": str(ADAPTER_FORMAT), "lora_config": json.dumps(config.to_dict()),
                "model_config": json.dumps(model.config.to_dict())}
    save_file(tensors, str(path), metadata=metadata)


def load_adapter(path: str | os.PathLike, model: Transformer) -> Transformer:
    """Put the adapters of a file written by :func:`save_adapter` on a base model (in place).

    The base model must have the shape the adapters were trained on; it gets LoRA layers if it
    has none (those it has must have the same config).
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    if metadata.get("format") != str(ADAPTER_FORMAT) or "lora_config" not in metadata:
        raise ValueError(f"{path} is not a LoRA adapter file written by save_adapter")
    config = LoRAConfig.from_dict(json.loads(metadata["lora_config"]))
    saved_shape = ModelConfig.from_dict(json.loads(metadata["model_config"]))
    if saved_shape != model.config:
        raise ValueError(f"{path} adapts a model of another shape: {saved_shape} vs the given "
                         f"{model.config}; load the base model it was trained on")
    if any(layer.merged for layer in lora_layers(model).values()):
        raise ValueError("unmerge_lora(model) before loading adapters: the merged weights hold "
                         "the current adapters, which new ones would not replace")
    if lora_layers(model):
        if lora_config_of(model) != config:
            raise ValueError(f"the model's LoRA config {lora_config_of(model)} differs from the "
                             f"file's {config}")
    else:
        add_lora(model, config)
    expected = lora_state_dict(model)
    if set(expected) != set(tensors):
        raise ValueError(f"{path} holds adapters {sorted(set(tensors) ^ set(expected))[:4]} that "
                         f"do not match the model's")
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(tensors[name])
    return model


def copy_with_lora(model: Transformer, config: LoRAConfig) -> Transformer:
    """A deep copy of model with LoRA added (the original is left trainable and unchanged)."""
    return add_lora(copy.deepcopy(model), config)
