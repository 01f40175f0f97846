"""Each architecture and training option of the ablations does what its name says."""

import dataclasses
import math

import pytest
import torch

from transformer_lib.model.attention import Attention
from transformer_lib.model.block import Block
from transformer_lib.model.config import ModelConfig
from transformer_lib.model.transformer import Transformer
from transformer_lib.training import trainer

TINY = ModelConfig.from_preset("tiny")


def model_of(**changes) -> Transformer:
    torch.manual_seed(0)
    # from the preset, not dataclasses.replace(TINY, ...): replace would carry TINY's derived
    # ffn_hidden_dim over to a GELU MLP
    return Transformer(ModelConfig.from_preset("tiny", **changes))


def test_defaults_are_the_llama_choices():
    assert (TINY.norm, TINY.positions, TINY.mlp, TINY.norm_placement) == (
        "rms", "rope", "swiglu", "pre")
    assert TINY.attention_scale and not TINY.qk_norm and not TINY.zero_init_output
    assert TINY.logit_softcap is None


@pytest.mark.parametrize("field,value", [("norm", "batch"), ("positions", "alibi"),
                                         ("mlp", "relu"), ("norm_placement", "sandwich")])
def test_unknown_choice_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **{field: value})


def test_layer_norm_subtracts_the_mean():
    block = model_of(norm="layer").layers[0]
    x = torch.randn(2, 5, TINY.d_model)
    shifted = x + 3.0  # LayerNorm removes a constant shift; RMSNorm does not
    norm = block.input_layernorm
    torch.testing.assert_close(norm(shifted), norm(x), atol=1e-4, rtol=1e-4)
    assert norm(x).mean(-1).abs().max() < 1e-5
    rms = model_of().layers[0].input_layernorm
    assert not torch.allclose(rms(shifted), rms(x), atol=1e-2)
    # bias-free: the same parameters as RMSNorm
    assert model_of(norm="layer").num_parameters() == model_of().num_parameters()


def _scores_of_repeated_token(positions: str) -> torch.Tensor:
    """Attention of the last query to positions 0 and 5, which hold the same token."""
    model = model_of(positions=positions).eval()
    ids = torch.tensor([[7, 1, 2, 3, 4, 7, 9]])
    weights = model.attention_maps(ids)[0]  # (1, H, T, T)
    return weights[0, :, -1, [0, 5]]


def test_no_positions_attention_ignores_position():
    same = _scores_of_repeated_token("none")
    torch.testing.assert_close(same[:, 0], same[:, 1])
    rope = _scores_of_repeated_token("rope")
    assert not torch.allclose(rope[:, 0], rope[:, 1])


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_absolute_positions_are_added_to_the_embedding(positions):
    model = model_of(positions=positions).eval()
    ids = torch.tensor([[7, 7, 7]])
    weights = model.attention_maps(ids)[0]
    # Without RoPE the only source of position is the added table, so equal tokens at different
    # positions must still be told apart.
    assert not torch.allclose(weights[0, :, -1, 0], weights[0, :, -1, 1])
    extra = model.num_parameters() - model_of().num_parameters()
    assert extra == (TINY.max_seq_len * TINY.d_model if positions == "learned" else 0)


def test_sinusoidal_table_is_the_transformer_papers():
    """The 2017 table, divided by sqrt(d_model): the paper scaled the embeddings up instead."""
    model = model_of(positions="sinusoidal")
    table = model.position_table * math.sqrt(TINY.d_model)  # (max_seq_len, C)
    pos, i = 3, 5
    assert math.isclose(table[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / TINY.d_model)),
                        rel_tol=1e-5)
    assert math.isclose(table[pos, 2 * i + 1].item(),
                        math.cos(pos / 10000 ** (2 * i / TINY.d_model)), rel_tol=1e-5)


def test_gelu_mlp_of_equal_parameters():
    gelu = model_of(mlp="gelu")
    assert gelu.config.ffn_hidden_dim == TINY.ffn_hidden_dim * 3 // 2
    assert gelu.num_parameters() == model_of().num_parameters()
    mlp = gelu.layers[0].mlp
    x = torch.randn(3, TINY.d_model)
    expected = mlp.down_proj(torch.nn.functional.gelu(mlp.up_proj(x)))
    torch.testing.assert_close(mlp(x), expected)


def test_post_norm_normalises_after_the_residual_sum():
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, norm_placement="post")
    block = Block(config)
    model = Transformer(config)
    cos, sin = model.rope_cos[:5], model.rope_sin[:5]
    x = torch.randn(2, 5, TINY.d_model) * 10
    h = block.input_layernorm(x + block.self_attn(x, cos, sin))
    expected = block.post_attention_layernorm(h + block.mlp(h))
    torch.testing.assert_close(block(x, cos, sin), expected)
    rms = block(x, cos, sin).pow(2).mean(-1).sqrt()  # the output is normalised (gain 1)
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("kv_heads", [1, 4])
def test_multi_query_and_multi_head(kv_heads):
    attention = Attention(dataclasses.replace(TINY, num_kv_heads=kv_heads))
    assert attention.k_proj.out_features == kv_heads * TINY.head_dim
    assert attention.v_proj.out_features == kv_heads * TINY.head_dim


def test_untied_embeddings_are_separate_weights():
    model = model_of(tie_embeddings=False)
    assert model.lm_head.weight is not model.embed_tokens.weight
    assert model.num_parameters() - model_of().num_parameters() == TINY.vocab_size * TINY.d_model


def test_attention_without_scale_multiplies_scores_by_sqrt_d():
    torch.manual_seed(0)
    scaled = Attention(TINY)
    unscaled = Attention(dataclasses.replace(TINY, attention_scale=False))
    unscaled.load_state_dict(scaled.state_dict())
    model = Transformer(TINY)
    x = torch.randn(1, 6, TINY.d_model)
    cos, sin = model.rope_cos[:6], model.rope_sin[:6]
    # Without the scale the scores are sqrt(D) times larger: same weights as a scaled attention
    # whose queries are multiplied by sqrt(D).
    with torch.no_grad():
        scaled.q_proj.weight.mul_(math.sqrt(TINY.head_dim))
    out_u, w_u = unscaled.forward_with_weights(x, cos, sin)
    out_s, w_s = scaled.forward_with_weights(x, cos, sin)
    torch.testing.assert_close(w_u, w_s)
    torch.testing.assert_close(unscaled(x, cos, sin), out_u, atol=1e-5, rtol=1e-5)


def test_qk_norm_gives_unit_rms_queries_and_keys():
    attention = Attention(dataclasses.replace(TINY, qk_norm=True, positions="none"))
    x = torch.randn(2, 5, TINY.d_model) * 7
    q, k, _ = attention._project(x, None, None, None)
    for t in (q, k):
        rms = t.pow(2).mean(-1).sqrt()
        torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=1e-3)
    # fused and explicit paths agree with the norms in place
    model = model_of(qk_norm=True)
    ids = torch.tensor([[1, 2, 3, 4]])
    assert model(ids).isfinite().all()


def test_zero_init_output_projections():
    model = model_of(zero_init_output=True)
    for layer in model.layers:
        assert layer.self_attn.o_proj.weight.abs().max() == 0
        assert layer.mlp.down_proj.weight.abs().max() == 0
    # at initialisation every block is the identity
    x = torch.randn(1, 4, TINY.d_model)
    model.eval()
    cos, sin = model.rope_cos[:4], model.rope_sin[:4]
    torch.testing.assert_close(model.layers[0](x, cos, sin), x)


def test_logit_soft_cap_bounds_the_logits():
    model = model_of(logit_softcap=2.0)
    with torch.no_grad():
        model.lm_head.weight.mul_(1000)
    logits = model(torch.tensor([[1, 2, 3]]))
    assert logits.abs().max() <= 2.0
    assert logits.abs().max() > 1.9  # large logits saturate at the cap


def test_value_embeddings_add_a_learned_vector_per_token():
    model = model_of(value_embeddings=True)
    attention = model.layers[1].self_attn
    assert attention.value_embedding.weight.abs().max() == 0  # each layer starts as a plain one
    table = torch.randn_like(attention.value_embedding.weight)
    with torch.no_grad():
        attention.value_embedding.weight.copy_(table)
    x = torch.randn(2, 5, TINY.d_model)
    ids = torch.randint(0, TINY.vocab_size, (2, 5))
    added = attention.values(x, ids) - attention.v_proj(x).view(2, 5, TINY.num_kv_heads, -1
                                                                 ).transpose(1, 2)
    expected = table[ids].view(2, 5, TINY.num_kv_heads, -1).transpose(1, 2)  # (B, K, T, D)
    torch.testing.assert_close(added, expected)
    extra = TINY.num_layers * TINY.vocab_size * TINY.num_kv_heads * TINY.head_dim
    assert model.num_parameters() == model_of().num_parameters() + extra
    with pytest.raises(ValueError, match="input_ids"):
        attention.values(x)


def test_value_residual_averages_each_layers_values_with_the_first_layers():
    attention = Attention(dataclasses.replace(TINY, value_residual=True, positions="none"))
    x = torch.randn(2, 5, TINY.d_model)
    first = torch.randn(2, TINY.num_kv_heads, 5, TINY.head_dim)
    _, _, v = attention._project(x, None, None, None, None, first)
    torch.testing.assert_close(v, 0.5 * (attention.values(x) + first))
    with pytest.raises(ValueError, match="first_values"):
        attention._project(x, None, None, None)
    # The model hands every layer the first layer's own values, so its first layer is plain.
    model = model_of(value_residual=True).eval()
    ids = torch.randint(0, TINY.vocab_size, (1, 6))
    stream, cos, sin = model.embed(ids, 0)
    block = model.layers[0]
    plain = Block(dataclasses.replace(TINY)).eval()
    plain.load_state_dict(block.state_dict())
    _, hidden = model(ids, return_hidden=True)
    torch.testing.assert_close(hidden[1], plain(stream, cos, sin), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(hidden[2], model_of().eval()(ids, return_hidden=True)[1][2])


@pytest.mark.parametrize("changes", [dict(value_embeddings=True), dict(value_residual=True),
                                     dict(value_embeddings=True, value_residual=True)])
def test_value_options_decode_with_the_cache_as_without(changes):
    model = model_of(**changes).eval()
    with torch.no_grad():  # trained-looking tables, so that they matter
        for layer in model.layers:
            if layer.self_attn.value_embedding is not None:
                layer.self_attn.value_embedding.weight.normal_(std=0.5)
    ids = torch.randint(0, TINY.vocab_size, (2, 9))
    with torch.no_grad():
        full = model(ids)
        caches = model.make_caches(2)
        steps = [model(ids[:, :4], caches)] + [model(ids[:, t:t + 1], caches)
                                                for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    maps_model = model.attention_maps(ids)  # the explicit path takes the same inputs
    assert len(maps_model) == TINY.num_layers


def test_a_llama_model_calls_attention_with_x_cos_sin_cache_alone():
    """A replacement attention written for Llama's call (a reader's piece) keeps working."""

    class FourArguments(Attention):
        def forward(self, x, cos, sin, cache=None):
            return super().forward(x, cos, sin, cache)

    model = model_of().eval()
    ids = torch.randint(0, TINY.vocab_size, (2, 7))
    with torch.no_grad():
        expected = model(ids)
        for layer in model.layers:
            layer.self_attn.__class__ = FourArguments
        torch.testing.assert_close(model(ids), expected)
        caches = model.make_caches(2)
        torch.testing.assert_close(model(ids, caches), expected, atol=1e-5, rtol=1e-5)


def test_value_embeddings_train_with_adamw_without_decay():
    model = model_of(value_embeddings=True)
    config = trainer.TrainConfig(max_steps=5, optimizer="muon", weight_decay=1.0)
    optimizer = trainer.make_optimizer(model, config, torch.device("cpu"))
    tables = {id(layer.self_attn.value_embedding.weight) for layer in model.layers}
    muon = {id(p) for group in optimizer.muon.param_groups for p in group["params"]}
    assert not tables & muon
    undecayed = {id(p) for group in optimizer.adamw.param_groups
                 if group["weight_decay"] == 0 for p in group["params"]}
    assert tables <= undecayed


def test_boolean_options_refuse_other_values():
    with pytest.raises(TypeError, match="value_embeddings"):
        ModelConfig.from_preset("tiny", value_embeddings=1)


def test_wsd_schedule_is_flat_then_decays_linearly():
    config = trainer.TrainConfig(max_steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.0,
                                 schedule="wsd", decay_fraction=0.2)
    lr = [trainer.learning_rate(config, s, s / 100) for s in range(100)]
    assert lr[5] == 0.5
    assert all(value == 1.0 for value in lr[10:81])
    assert math.isclose(lr[90], 0.5)
    with pytest.raises(ValueError, match="schedule"):
        trainer.TrainConfig(max_steps=10, schedule="step")


def test_z_loss_adds_the_squared_log_normaliser():
    logits = torch.randn(4, 6, 10) * 3
    targets = torch.randint(0, 10, (4, 6))
    plain = trainer.training_loss(logits, targets, 0.0)
    with_z = trainer.training_loss(logits, targets, 1e-2)
    expected = 1e-2 * torch.logsumexp(logits.float(), -1).pow(2).mean()
    torch.testing.assert_close(with_z - plain, expected)


def test_export_to_transformers_refuses_the_non_llama_options():
    pytest.importorskip("transformers")
    from transformer_lib.interop.hf import to_hf_config

    with pytest.raises(ValueError, match="positions='none'"):
        to_hf_config(ModelConfig.from_preset("tiny", positions="none"))
    assert to_hf_config(ModelConfig.from_preset("tiny", zero_init_output=True)).hidden_size == 64
    for option in ("value_embeddings", "value_residual"):
        with pytest.raises(ValueError, match=f"{option}=True"):
            to_hf_config(ModelConfig.from_preset("tiny", **{option: True}))


@pytest.mark.parametrize("option", ["value_embeddings", "value_residual"])
def test_compiled_decoding_refuses_the_value_options(option):
    from transformer_lib.model.generation import decoding_weights

    with pytest.raises(ValueError, match=f"{option}=True.*compile=False"):
        decoding_weights(model_of(**{option: True}))
