import pytest
import torch

from transformer_lib import PRESETS, ModelConfig, SOTAConfig, SOTATransformer, Transformer
from transformer_lib.model import parameter_counts


def test_derived_fields():
    config = ModelConfig(vocab_size=100, d_model=96, num_layers=2, num_heads=6)
    assert config.num_kv_heads == 6
    assert config.head_dim == 16
    assert config.ffn_hidden_dim == 256  # 8/3 * 96 = 256, already a multiple of 64
    assert ModelConfig(d_model=100, num_heads=2).ffn_hidden_dim == 320  # 266 rounded up to 64
    assert ModelConfig(num_heads=12, num_kv_heads=4).kv_groups == 3


def closed_form_parameter_count(c: ModelConfig) -> int:
    """Parameters of a Llama-style model from its config fields alone."""
    kv_dim = c.num_kv_heads * (c.d_model // c.num_heads)
    attention = 2 * c.d_model * c.d_model + 2 * c.d_model * kv_dim  # q, o; k, v
    feed_forward = 3 * c.d_model * c.ffn_hidden_dim  # gate, up, down
    norms = 2 * c.d_model  # two RMSNorm gains per block
    head = 0 if c.tie_embeddings else c.vocab_size * c.d_model
    return c.vocab_size * c.d_model + c.num_layers * (attention + feed_forward + norms) \
        + c.d_model + head  # + final norm


def test_seed_preset_has_22_5m_parameters():
    config = ModelConfig.from_preset("seed-22.5M")
    assert closed_form_parameter_count(config) == 22_505_984
    model = Transformer(config)
    assert model.num_parameters() == 22_505_984
    assert parameter_counts(model)["total"] == 22_505_984


@pytest.mark.parametrize("overrides", [dict(num_kv_heads=2), dict(tie_embeddings=False)])
def test_parameter_count_matches_the_closed_form(overrides):
    model = Transformer(ModelConfig.from_preset("tiny", **overrides))
    assert model.num_parameters() == closed_form_parameter_count(model.config)
    assert parameter_counts(model)["total"] == closed_form_parameter_count(model.config)


def test_the_learned_position_table_counts_as_embedding_not_as_norms():
    plain = parameter_counts(Transformer(ModelConfig.from_preset("tiny")))
    learned = parameter_counts(Transformer(ModelConfig.from_preset("tiny", positions="learned")))
    config = ModelConfig.from_preset("tiny")
    assert learned["norms"] == plain["norms"]
    assert learned["embedding"] - plain["embedding"] == config.max_seq_len * config.d_model


def test_presets_and_overrides():
    assert {"seed-22.5M", "tiny", "gpt2-small"} <= set(PRESETS)
    gpt2 = ModelConfig.from_preset("gpt2-small")
    assert (gpt2.d_model, gpt2.num_layers, gpt2.num_heads) == (768, 12, 12)
    assert ModelConfig.from_preset("tiny", num_layers=3).num_layers == 3


def test_dict_round_trip():
    config = ModelConfig.from_preset("tiny")
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_original_design_names_still_work():
    import torch

    config = SOTAConfig(vocab_size=50257, d_model=768, num_heads=12, num_layers=12)
    assert SOTAConfig is ModelConfig and SOTATransformer is Transformer
    model = SOTATransformer(config)
    input_ids = torch.randint(0, 50257, (1, 8))
    logits = model(input_ids)
    assert logits.shape == (1, 8, 50257)
    generated = model.generate(input_ids, max_new_tokens=3)
    assert generated.shape == (1, 11)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(d_model=100, num_heads=3), ValueError, "d_model=100 is not divisible by num_heads=3"),
        (dict(num_heads=12, num_kv_heads=5), ValueError, "num_kv_heads=5"),
        (dict(d_model=36, num_heads=4), ValueError, "odd"),
        (dict(d_model=0), ValueError, "d_model=0"),
        (dict(num_layers=-1), ValueError, "num_layers=-1"),
        (dict(vocab_size=2.5), TypeError, "vocab_size"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(rope_theta=0.0), ValueError, "rope_theta"),
        (dict(ffn_multiple_of=0), ValueError, "ffn_multiple_of=0"),
        (dict(ffn_multiple_of=-64), ValueError, "ffn_multiple_of=-64"),
        (dict(logit_softcap=float("inf")), ValueError, "logit_softcap=inf"),
        (dict(logit_softcap=float("nan")), ValueError, "logit_softcap=nan"),
        (dict(norm_eps=float("inf")), ValueError, "norm_eps=inf"),  # every logit alike
        (dict(rope_theta=True), TypeError, "rope_theta must be a number, got bool"),  # not 1
        (dict(logit_softcap=True), TypeError, "logit_softcap must be a number, got bool"),
        (dict(rope_theta="10000"), TypeError, "rope_theta must be a number, got str"),
        # a tensor, which json cannot save
        (dict(rope_theta=torch.tensor(1e4)), TypeError, "rope_theta must be a number, got Tensor"),
        (dict(dropout=None), TypeError, "dropout must be a number, got NoneType"),
    ],
)
def test_bad_config_names_the_field(kwargs, error, words):
    with pytest.raises(error, match=words):
        ModelConfig(**kwargs)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(KeyError, match="tiny"):
        ModelConfig.from_preset("huge")
    with pytest.raises(TypeError, match="d_modle"):
        ModelConfig.from_preset("tiny", d_modle=3)


def test_config_is_frozen_so_a_built_model_cannot_disagree_with_it():
    import dataclasses

    config = ModelConfig.from_preset("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_heads = 5
    assert config.num_heads == 4


def test_variants_come_from_replace_which_validates():
    import dataclasses

    config = ModelConfig.from_preset("tiny")
    wider = dataclasses.replace(config, d_model=128, ffn_hidden_dim=None)
    assert (wider.d_model, wider.num_heads, wider.ffn_hidden_dim) == (128, 4, 384)
    assert config.d_model == 64  # the original is untouched
    with pytest.raises(ValueError, match="d_model=64 is not divisible by num_heads=5"):
        dataclasses.replace(config, num_heads=5)
    with pytest.raises(ValueError, match="num_kv_heads=3"):
        dataclasses.replace(config, num_kv_heads=3)


def test_numpy_sizes_become_python_numbers_so_the_config_saves():
    import json

    import numpy as np

    config = ModelConfig(vocab_size=np.int64(64), d_model=np.int32(32), num_heads=2,
                         num_layers=np.int64(1), num_kv_heads=np.int64(1),
                         rope_theta=np.float32(500.0))
    values = config.to_dict()
    assert type(values["vocab_size"]) is int and type(values["rope_theta"]) is float
    assert ModelConfig.from_dict(json.loads(json.dumps(values))) == config
