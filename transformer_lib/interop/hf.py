"""Conversion to and from Hugging Face ``transformers``' ``LlamaForCausalLM``.

Our parameter names are HF Llama's without the ``model.`` prefix, and both use the split-halves
RoPE pairing, so conversion is a renaming plus a shape check; no permutation is needed.
``transformers`` is imported lazily: it is a test dependency, not a requirement of the book.
"""

from __future__ import annotations

import torch

from ..model.config import ModelConfig
from ..model.lora import lora_layers
from ..model.rope import rope_frequencies
from ..model.transformer import Transformer

__all__ = ["from_hf", "from_hf_config", "from_hf_state_dict", "to_hf", "to_hf_config",
           "special_token_ids"]


def _transformers():
    try:
        import transformers
    except ImportError as err:
        raise ImportError("transformer_lib.interop needs the `transformers` package: "
                          "pip install transformers") from err
    return transformers


def special_token_ids(tokenizer=None) -> dict[str, int | None]:
    """bos/eos/pad ids for a ``LlamaConfig``: all None without a tokenizer.

    A tokenizer's own ``bos_id``/``eos_id``/``pad_id`` are used where it has them (llama2.c's:
    1, 2, None); otherwise its ``eot_id``, which the book's tokenizers put between stories, serves
    as all three.
    """
    if tokenizer is None:
        return {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    eot = tokenizer.eot_id
    return {"bos_token_id": getattr(tokenizer, "bos_id", eot),
            "eos_token_id": getattr(tokenizer, "eos_id", eot),
            "pad_token_id": getattr(tokenizer, "pad_id", eot)}


def to_hf_config(config: ModelConfig, tokenizer=None):
    """The ``LlamaConfig`` describing the same architecture as ``config``.

    The special-token ids are set explicitly (see :func:`special_token_ids`): LlamaConfig's
    defaults (bos 1, eos 2) would make ``generate`` stop at an ordinary token of our vocabularies.
    """
    # The ablation options (chapter 12) have no LlamaConfig equivalent: refuse, not mis-export.
    llama = ModelConfig(vocab_size=config.vocab_size)
    different = [name for name in ("norm", "positions", "mlp", "norm_placement",
                                   "attention_scale", "qk_norm", "logit_softcap",
                                   "value_embeddings", "value_residual")
                 if getattr(config, name) != getattr(llama, name)]
    if different:
        raise ValueError(f"a LlamaForCausalLM cannot hold this model: its config sets "
                         f"{', '.join(f'{n}={getattr(config, n)!r}' for n in different)}, "
                         f"which Llama does not have")
    transformers = _transformers()
    return transformers.LlamaConfig(
        **special_token_ids(tokenizer),
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.ffn_hidden_dim,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.max_seq_len,
        rope_theta=config.rope_theta,
        rms_norm_eps=config.norm_eps,
        tie_word_embeddings=config.tie_embeddings,
        attention_dropout=config.dropout,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
    )


def _rope_theta(hf_config) -> float:
    params = getattr(hf_config, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", "default")
    scaling = getattr(hf_config, "rope_scaling", None) or {}
    rope_type = scaling.get("rope_type", scaling.get("type", rope_type))
    if rope_type not in ("default", None):
        raise ValueError(f"RoPE scaling {rope_type!r} is not supported; only plain RoPE converts")
    theta = params.get("rope_theta", getattr(hf_config, "rope_theta", None))
    if theta is None:
        raise ValueError("the Llama config names no rope_theta")
    return float(theta)


# Families whose checkpoints are Llama's architecture under another name (Mistral: when its
# sliding window, the one difference, covers the whole context). Others that share Llama's
# weight names compute something else (Gemma scales the embedding, uses 1 + w norms and GELU).
LLAMA_ARCHITECTURES = ("llama", "mistral")


def from_hf_config(hf_config) -> ModelConfig:
    """The ``ModelConfig`` of a ``LlamaConfig``; unsupported features raise a ValueError."""
    model_type = getattr(hf_config, "model_type", "llama")
    if model_type not in LLAMA_ARCHITECTURES:
        raise ValueError(f"model_type={model_type!r} is not Llama's architecture; only "
                         f"{', '.join(LLAMA_ARCHITECTURES)} checkpoints convert")
    window = getattr(hf_config, "sliding_window", None)
    if window is not None and window < hf_config.max_position_embeddings:
        raise ValueError(f"sliding_window={window} limits attention to the last {window} "
                         f"positions; transformer_lib attends to the whole context (set "
                         f"sliding_window=None if the model was trained without it)")
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(hf_config, flag, False):
            raise ValueError(f"Llama config has {flag}=True; transformer_lib models have no biases")
    if getattr(hf_config, "hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act={hf_config.hidden_act!r} is not supported; SwiGLU uses silu")
    head_dim = getattr(hf_config, "head_dim", None)
    if head_dim not in (None, hf_config.hidden_size // hf_config.num_attention_heads):
        raise ValueError(f"head_dim={head_dim} differs from hidden_size/num_attention_heads; "
                         f"transformer_lib derives the head size from d_model")
    return ModelConfig(
        vocab_size=hf_config.vocab_size,
        d_model=hf_config.hidden_size,
        num_layers=hf_config.num_hidden_layers,
        num_heads=hf_config.num_attention_heads,
        num_kv_heads=hf_config.num_key_value_heads or hf_config.num_attention_heads,
        ffn_hidden_dim=hf_config.intermediate_size,
        max_seq_len=hf_config.max_position_embeddings,
        rope_theta=_rope_theta(hf_config),
        norm_eps=hf_config.rms_norm_eps,
        dropout=float(getattr(hf_config, "attention_dropout", 0.0) or 0.0),
        tie_embeddings=bool(hf_config.tie_word_embeddings),
    )


def _hf_name(name: str) -> str:
    return name if name.startswith("lm_head") else f"model.{name}"


def _copy_weights(source: dict[str, torch.Tensor], target: torch.nn.Module, rename) -> None:
    """Copy every target weight from ``source[rename(name)]``; every source weight must be used."""
    target_state = target.state_dict()
    used = {rename(name) for name in target_state}
    unused = sorted(set(source) - used)
    for name, tensor in target_state.items():
        source_name = rename(name)
        if source_name not in source:
            hint = f"; the source has unused weights {unused[:5]}" if unused else ""
            raise KeyError(f"weight {source_name!r} (for {name!r}) is missing from the source "
                           f"model{hint}")
        if source[source_name].shape != tensor.shape:
            raise ValueError(f"shape mismatch for {name!r}: source {tuple(source[source_name].shape)}"
                             f" vs target {tuple(tensor.shape)}")
    if unused:
        raise ValueError(f"the source model has {len(unused)} weight(s) the conversion would drop: "
                         f"{unused[:5]}; a misspelled name, or a feature (e.g. biases) that "
                         f"transformer_lib does not have")
    with torch.no_grad():
        for name, tensor in target_state.items():
            tensor.copy_(source[rename(name)])


def from_hf(hf_model) -> Transformer:
    """A ``Transformer`` with the weights of a ``LlamaForCausalLM`` (copied, on the CPU, float32),
    in eval mode like the model it came from usually is."""
    return from_hf_state_dict(hf_model.state_dict(), hf_model.config)


def from_hf_state_dict(state_dict: dict[str, torch.Tensor], hf_config) -> Transformer:
    """A ``Transformer`` (in eval mode) from a ``LlamaForCausalLM`` state dict and its
    ``LlamaConfig``: ``model.state_dict()``, or the tensors of its saved safetensors files.

    Every weight of the state dict must be used: an unknown or misspelled name raises a
    ValueError instead of being dropped silently. A tied model's files may leave out
    ``lm_head.weight`` (``save_pretrained`` does): the embedding stands for it.
    """
    model = Transformer(from_hf_config(hf_config))
    source = {k: v.detach().float().cpu() for k, v in state_dict.items()}
    _drop_rotary_frequencies(source, model.config)
    if model.config.tie_embeddings and "model.embed_tokens.weight" in source:
        head = source.setdefault("lm_head.weight", source["model.embed_tokens.weight"])
        if not torch.equal(head, source["model.embed_tokens.weight"]):
            raise ValueError("the config ties the output head to the embedding "
                             "(tie_word_embeddings=True) but lm_head.weight differs from "
                             "model.embed_tokens.weight; set tie_word_embeddings=False")
    _copy_weights(source, model, _hf_name)
    return model.eval()


def _drop_rotary_frequencies(source: dict[str, torch.Tensor], config: ModelConfig) -> None:
    """Remove the ``rotary_emb.inv_freq`` buffers that older transformers versions saved with
    every layer (transformers itself ignores them), once they agree with the config's
    rope_theta: frequencies that do not (a scaled RoPE) would give a model with other logits.
    They were saved in the checkpoint's dtype, so the comparison allows bfloat16's rounding
    (4e-3); a scaled RoPE differs by whole factors."""
    expected = rope_frequencies(config.head_dim, config.rope_theta)
    for name in [name for name in source if name.endswith("rotary_emb.inv_freq")]:
        saved = source.pop(name)
        if saved.shape != expected.shape or not torch.allclose(saved, expected, rtol=1e-2):
            raise ValueError(f"{name} holds rotary frequencies other than those of "
                             f"rope_theta={config.rope_theta:g} (a scaled RoPE?), which "
                             f"transformer_lib does not support")


def to_hf(model: Transformer, tokenizer=None):
    """A ``LlamaForCausalLM`` with the weights of ``model`` (copied, on the CPU, float32).

    Its config's bos/eos/pad ids are None, or ``tokenizer``'s (see :func:`special_token_ids`).
    """
    if lora_layers(model):
        raise ValueError("the model has LoRA layers, which Llama's format has no place for; "
                         "convert lora.merged_copy(model), a plain model with the adapters "
                         "folded into its weights")
    transformers = _transformers()
    hf_model = transformers.LlamaForCausalLM(to_hf_config(model.config, tokenizer)).float()
    names = {_hf_name(name): name for name in model.state_dict()}
    source = {_hf_name(k): v.detach().float().cpu() for k, v in model.state_dict().items()}

    def rename(hf_name: str) -> str:
        if hf_name not in names:
            raise KeyError(f"transformers' model has a weight {hf_name!r} that transformer_lib "
                           f"does not know")
        return hf_name

    _copy_weights(source, hf_model, rename)
    return hf_model.eval()
