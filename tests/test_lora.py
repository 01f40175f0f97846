"""LoRA (transformer_lib.model.lora): the layer, merge/unmerge, saving, and parity with peft.

The peft side is the same model exported with ``to_hf`` and wrapped by ``peft.get_peft_model``;
the adapters' initial values are copied from ours into peft's (B set non-zero first, so the
adapters change the output), never the other way round.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from transformer_lib import ModelConfig, Transformer
from transformer_lib.interop import to_hf
from transformer_lib.model.lora import (
    TARGETS,
    LoRAConfig,
    LoRALinear,
    add_lora,
    load_adapter,
    lora_layers,
    lora_state_dict,
    merge_lora,
    merged_copy,
    save_adapter,
    trainable_parameters,
    unmerge_lora,
)
from transformer_lib.training import checkpoint as ckpt

peft = pytest.importorskip("peft")

HF_NAMES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj",
            "up": "up_proj", "down": "down_proj"}
ATTENTION_AND_FFN = ("q", "k", "v", "o", "gate", "up", "down")


def base_model(seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(ModelConfig.from_preset("tiny", num_layers=2, **overrides)).eval()


def lora_model(config: LoRAConfig, seed: int = 0, **overrides) -> Transformer:
    model = add_lora(base_model(seed, **overrides), config)
    torch.manual_seed(seed + 1)
    with torch.no_grad():  # B = 0 would make every adapter invisible: give it values
        for layer in lora_layers(model).values():
            layer.lora_B.normal_(std=0.05)
    return model


def peft_twin(model: Transformer, config: LoRAConfig):
    """The model exported to transformers, wrapped by peft, with our adapters copied in."""
    base = Transformer(model.config)
    base.load_state_dict({k: v for k, v in model.state_dict().items() if ".lora_" not in k})
    hf = to_hf(base)
    peft_config = peft.LoraConfig(r=config.rank, lora_alpha=config.alpha,
                                  lora_dropout=config.dropout, bias="none",
                                  target_modules=[HF_NAMES[t] for t in config.targets])
    twin = peft.get_peft_model(hf, peft_config)
    copied = 0
    with torch.no_grad():
        for name, layer in lora_layers(model).items():
            peft_layer = twin.base_model.model.model.get_submodule(name)
            peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
            copied += 1
    assert copied == len(model.layers) * len(config.targets)
    return twin.eval()


def peft_adapters(twin, model: Transformer) -> dict[str, torch.Tensor]:
    out = {}
    for name in lora_layers(model):
        peft_layer = twin.base_model.model.model.get_submodule(name)
        out[f"{name}.lora_A"] = peft_layer.lora_A["default"].weight.detach().clone()
        out[f"{name}.lora_B"] = peft_layer.lora_B["default"].weight.detach().clone()
    return out


CONFIGS = [
    LoRAConfig(rank=4, alpha=8.0, targets=("q", "v")),
    LoRAConfig(rank=2, alpha=3.0, targets=ATTENTION_AND_FFN),
    LoRAConfig(rank=8, alpha=8.0, targets=("k", "o", "down")),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"r{c.rank}-{'+'.join(c.targets)}")
def test_logits_and_trainable_counts_match_peft(config):
    model = lora_model(config)
    twin = peft_twin(model, config)
    ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=torch.Generator()
                        .manual_seed(3))
    with torch.no_grad():
        ours, theirs = model(ids), twin(input_ids=ids).logits
        plain = base_model()(ids)
    assert (ours - plain).abs().max() > 1e-3, "the adapters must change the output"
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    peft_trainable = sum(p.numel() for p in twin.parameters() if p.requires_grad)
    assert trainable_parameters(model) == peft_trainable
    per_layer = sum(config.rank * (layer.in_features + layer.out_features)
                    for layer in lora_layers(model).values())
    assert trainable_parameters(model) == per_layer


def causal_lm_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


@pytest.mark.parametrize("config", CONFIGS[:2], ids=lambda c: f"r{c.rank}")
def test_one_adamw_step_matches_peft(config):
    model = lora_model(config)
    twin = peft_twin(model, config)
    model.train(), twin.train()
    ids = torch.randint(0, model.config.vocab_size, (4, 32), generator=torch.Generator()
                        .manual_seed(5))
    before = {k: v.clone() for k, v in lora_state_dict(model).items()}
    for net, logits_of in ((model, lambda m: m(ids)), (twin, lambda m: m(input_ids=ids).logits)):
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
        causal_lm_loss(logits_of(net), ids).backward()
        optimizer.step()
    after, theirs = lora_state_dict(model), peft_adapters(twin, model)
    assert set(after) == set(theirs)
    for name in after:
        assert not torch.equal(after[name], before[name]), f"{name} did not train"
        torch.testing.assert_close(after[name], theirs[name], atol=1e-5, rtol=0)
    frozen = [name for name, p in model.named_parameters() if p.requires_grad
              and ".lora_" not in name]
    assert frozen == [], "only the adapters train"


def test_merge_gives_the_unmerged_logits_and_unmerge_restores_the_weights():
    config = LoRAConfig(rank=4, alpha=6.0, targets=ATTENTION_AND_FFN)
    model = lora_model(config)
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        unmerged = model(ids)
        merge_lora(model)
        assert all(layer.merged for layer in lora_layers(model).values())
        torch.testing.assert_close(model(ids), unmerged, atol=1e-5, rtol=0)
        plain = merged_copy(model)  # of a merged model: the weights as they are
        torch.testing.assert_close(plain(ids), unmerged, atol=1e-5, rtol=0)
        unmerge_lora(model)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, weights[name], atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError, match="not merged"):
        lora_layers(model)["layers.0.self_attn.q_proj"].unmerge()


def test_merged_weights_match_peft_merge():
    config = LoRAConfig(rank=4, alpha=8.0, targets=("q", "up"))
    model = lora_model(config)
    twin = peft_twin(model, config)
    merged_hf = twin.merge_and_unload()
    plain = merged_copy(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(plain(ids), merged_hf(input_ids=ids).logits, atol=1e-5,
                                   rtol=0)
        torch.testing.assert_close(plain(ids), model(ids), atol=1e-5, rtol=0)


def test_layer_starts_as_the_base_and_counts_r_times_in_plus_out():
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 5, bias=False)
    layer = LoRALinear(base, rank=2, alpha=4.0)
    x = torch.randn(3, 6)
    torch.testing.assert_close(layer(x), base(x))  # B = 0 at the start
    assert layer.weight is base.weight and not layer.weight.requires_grad
    assert layer.lora_A.shape == (2, 6) and layer.lora_B.shape == (5, 2)
    with torch.no_grad():
        layer.lora_B.normal_()
    want = base(x) + 2.0 * (x @ layer.lora_A.T @ layer.lora_B.T)  # alpha / r = 2
    torch.testing.assert_close(layer(x), want)
    torch.testing.assert_close(layer.delta_weight(), 2.0 * layer.lora_B @ layer.lora_A)


def test_dropout_acts_on_the_adapter_path_only_in_training():
    torch.manual_seed(0)
    layer = LoRALinear(torch.nn.Linear(8, 8, bias=False), rank=2, alpha=2.0, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 8)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    assert not torch.equal(layer(x), layer(x))


def test_config_validation_and_target_order():
    assert LoRAConfig(targets=("v", "q")).targets == ("q", "v")
    assert set(TARGETS) == set(ATTENTION_AND_FFN)
    for bad in (dict(rank=0), dict(alpha=0), dict(alpha=float("inf")), dict(dropout=1.0),
                dict(targets=("q", "lm_head")), dict(targets=())):
        with pytest.raises(ValueError):
            LoRAConfig(**bad)
    for bad in (dict(alpha=True), dict(dropout=None), dict(alpha="16")):
        with pytest.raises(TypeError, match="must be a number"):
            LoRAConfig(**bad)
    with pytest.raises(TypeError, match="got the string 'qv'"):
        LoRAConfig(targets="qv")
    from_numpy = LoRAConfig(alpha=np.float32(2.0), dropout=np.float64(0.1))
    assert type(from_numpy.alpha) is float and from_numpy.to_dict()["alpha"] == 2.0
    assert LoRAConfig.from_dict(LoRAConfig(rank=3).to_dict()) == LoRAConfig(rank=3)
    model = add_lora(base_model(), LoRAConfig())
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, LoRAConfig())


def test_a_target_the_model_lacks_is_refused_before_anything_changes():
    model = base_model(mlp="gelu")  # a GELU MLP has up and down projections, no gate
    before = {name: param.requires_grad for name, param in model.named_parameters()}
    with pytest.raises(ValueError, match="LoRA target 'gate'"):
        add_lora(model, LoRAConfig(targets=("q", "gate")))
    assert not lora_layers(model) and not hasattr(model, "lora_config")
    assert {name: param.requires_grad for name, param in model.named_parameters()} == before
    assert len(lora_layers(add_lora(model, LoRAConfig(targets=("q", "up"))))) == 2 * len(
        model.layers)


def test_export_of_a_lora_model_points_to_merged_copy():
    model = lora_model(LoRAConfig(rank=2))
    with pytest.raises(ValueError, match=r"merged_copy\(model\)"):
        to_hf(model)
    ids = torch.randint(0, model.config.vocab_size, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(to_hf(merged_copy(model))(ids).logits, model.eval()(ids),
                                   atol=1e-5, rtol=0)


def test_adapter_file_round_trip_is_small_and_checks_the_shape(tmp_path):
    config = LoRAConfig(rank=4, alpha=8.0, targets=("q", "v", "o"))
    model = lora_model(config)
    path = tmp_path / "adapter.safetensors"
    save_adapter(path, model)
    assert path.stat().st_size < 64 * 1024
    fresh = load_adapter(path, base_model())  # the same base, adapters from the file
    ids = torch.randint(0, model.config.vocab_size, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids), model(ids), atol=0, rtol=0)
    with pytest.raises(ValueError, match="another shape"):
        load_adapter(path, base_model(d_model=32))
    (tmp_path / "junk.safetensors").write_bytes(path.read_bytes()[:20])
    with pytest.raises(Exception):  # noqa: B017  (safetensors' own error for a broken header)
        load_adapter(tmp_path / "junk.safetensors", base_model())


def test_adapters_are_not_loaded_into_a_merged_model(tmp_path):
    """Loading would replace A and B while the old correction stays in the weight: the logits
    would be neither adapter's, and unmerging would then corrupt the base for good."""
    config = LoRAConfig(rank=2, alpha=4.0, targets=("q", "v"))
    model = lora_model(config)
    save_adapter(tmp_path / "adapter.safetensors", model)
    merge_lora(model)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    with pytest.raises(ValueError, match="unmerge_lora"):
        load_adapter(tmp_path / "adapter.safetensors", model)
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())


def test_merged_copy_keeps_the_models_dtype():
    model = lora_model(LoRAConfig(rank=2, alpha=4.0, targets=("q", "gate"))).to(torch.bfloat16)
    copy = merged_copy(model)
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert copy.rope_cos.dtype == torch.float32  # the tables stay float32, as in any model


def test_merged_checkpoint_loads_as_a_plain_model(tmp_path):
    model = lora_model(LoRAConfig(rank=2, alpha=4.0, targets=("q", "gate")))
    ckpt.save_checkpoint(tmp_path / "run", merged_copy(model), step=7, meta={})
    loaded, meta = ckpt.load_model_from_checkpoint(tmp_path / "run")
    assert meta["step"] == 7 and not lora_layers(loaded)
    ids = torch.randint(0, model.config.vocab_size, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids), model(ids), atol=1e-5, rtol=0)


def test_a_lora_checkpoint_reloads_with_its_adapters(tmp_path):
    config = LoRAConfig(rank=2, alpha=4.0, targets=("v", "down"))
    model = lora_model(config)
    ckpt.save_checkpoint(tmp_path / "run", model, step=3, meta={})
    loaded, meta = ckpt.load_model_from_checkpoint(tmp_path / "run")
    assert meta["lora"] == config.to_dict() and set(lora_layers(loaded)) == set(lora_layers(model))
    assert trainable_parameters(loaded) == trainable_parameters(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids), model(ids), atol=0, rtol=0)
    merge_lora(model)
    with pytest.raises(ValueError, match="merged"):
        ckpt.save_checkpoint(tmp_path / "run", model, step=4, meta={})
    with pytest.raises(ValueError, match="written by save_checkpoint"):
        ckpt.save_checkpoint(tmp_path / "run", base_model(), step=5, meta={"lora": {}})
