"""Whole-model properties, clear input errors and a golden output."""

import pytest
import torch
from sync_counting import SyncCounter

from transformer_lib import ModelConfig, Transformer


def test_logits_shape(tiny_model, tiny_config):
    logits = tiny_model(torch.randint(0, tiny_config.vocab_size, (3, 17)))
    assert logits.shape == (3, 17, tiny_config.vocab_size)
    assert logits.dtype == torch.float32


def test_changing_a_future_token_leaves_earlier_logits_unchanged(tiny_model):
    torch.manual_seed(1)
    ids = torch.randint(0, 512, (2, 20))
    changed = ids.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 512
    a, b = tiny_model(ids), tiny_model(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12], atol=0, rtol=0)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_gradients_reach_every_parameter(tiny_config):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset("tiny", tie_embeddings=False))
    ids = torch.randint(0, 512, (2, 16))
    logits = model(ids[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_tied_embeddings_share_storage(tiny_model):
    assert tiny_model.lm_head.weight is tiny_model.embed_tokens.weight
    untied = Transformer(ModelConfig.from_preset("tiny", tie_embeddings=False))
    assert untied.lm_head.weight.data_ptr() != untied.embed_tokens.weight.data_ptr()
    extra = untied.num_parameters() - tiny_model.num_parameters()
    assert extra == 512 * 64


def test_initial_loss_is_near_uniform(tiny_model):
    ids, targets = torch.randint(0, 512, (2, 4, 64))
    logits = tiny_model(ids)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert abs(loss.item() - torch.log(torch.tensor(512.0)).item()) < 0.1


def test_residual_projections_use_scaled_init():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, d_model=256, num_layers=8, num_heads=4))
    std_o = model.layers[0].self_attn.o_proj.weight.std().item()
    std_q = model.layers[0].self_attn.q_proj.weight.std().item()
    assert abs(std_q - 0.02) < 0.001
    assert abs(std_o - 0.02 / 4) < 0.0005  # 0.02 / sqrt(2 * 8)


def test_dropout_acts_in_training_only(tiny_config):
    from dataclasses import replace

    torch.manual_seed(0)
    with_dropout = Transformer(replace(tiny_config, dropout=0.5))
    without = Transformer(tiny_config)
    without.load_state_dict(with_dropout.state_dict())
    ids = torch.randint(0, tiny_config.vocab_size, (2, 12))
    with_dropout.train()
    assert not torch.allclose(with_dropout(ids), with_dropout(ids))  # a fresh mask each call
    with_dropout.eval()
    torch.testing.assert_close(with_dropout(ids), without.eval()(ids), rtol=0, atol=0)


def test_attention_maps_match_the_forward_pass(tiny_model):
    ids = torch.randint(0, 512, (2, 12))
    maps = tiny_model.attention_maps(ids)
    assert len(maps) == 2
    for weights in maps:
        assert weights.shape == (2, 4, 12, 12)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 12))
        assert torch.all(weights.triu(diagonal=1) == 0)


def test_attention_maps_of_a_model_in_training_mode_are_its_eval_maps(tiny_config):
    from dataclasses import replace

    torch.manual_seed(0)
    model = Transformer(replace(tiny_config, dropout=0.3))  # a fresh model trains: dropout on
    ids = torch.randint(0, tiny_config.vocab_size, (2, 12))
    first, again = model.attention_maps(ids), model.attention_maps(ids)
    assert model.training  # the mode is restored
    model.eval()
    for a, b, c in zip(first, again, model.attention_maps(ids), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_cached_chunks_match_a_full_forward(tiny_model):
    ids = torch.randint(0, 512, (2, 30))
    full = tiny_model(ids)
    caches = tiny_model.make_caches(2)
    pieces = [tiny_model(ids[:, :10], caches), tiny_model(ids[:, 10:11], caches),
              tiny_model(ids[:, 11:30], caches)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_bfloat16_model_on_cpu_caches_in_the_attention_dtype(tiny_model):
    """A bf16 model on a CPU attends in float32, so its cache is float32: no per-step casts,
    and cached decoding sees exactly the keys and values a full forward pass computes."""
    model = tiny_model.to(torch.bfloat16)
    caches = model.make_caches(2)
    assert {c.k_cache.dtype for c in caches} == {c.v_cache.dtype for c in caches} == {
        torch.float32}
    ids = torch.randint(0, 512, (2, 20))
    full = model(ids)
    pieces = [model(ids[:, :12], caches)] + [model(ids[:, t:t + 1], caches) for t in range(12, 20)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize(
    "make_input, error, words",
    [
        (lambda: torch.rand(1, 5), TypeError, "integer token ids"),
        (lambda: torch.zeros(5, dtype=torch.long), ValueError, r"shape \(batch, seq_len\)"),
        (lambda: torch.zeros(1, 2, 3, dtype=torch.long), ValueError, "unsqueeze"),
        (lambda: torch.tensor([[1, 512]]), ValueError, "token id 512 is outside"),
        (lambda: torch.tensor([[-1, 3]]), ValueError, "token id -1"),
        (lambda: torch.zeros(1, 129, dtype=torch.long), ValueError, "max_seq_len is 128"),
        (lambda: [[1, 2, 3]], TypeError, "torch.Tensor"),
        (lambda: torch.tensor([[1, 2]], dtype=torch.uint8), TypeError, r"uint8.*\.long\(\)"),
        (lambda: torch.tensor([[1, 2]], dtype=torch.int16), TypeError, r"int16.*\.long\(\)"),
        (lambda: torch.tensor([[1, 2]], dtype=torch.uint16), TypeError, r"uint16.*\.long\(\)"),
        (lambda: torch.tensor([[True]]), TypeError, r"bool.*\.long\(\)"),
    ],
)
def test_bad_input_ids_raise_clear_errors(tiny_model, make_input, error, words):
    with pytest.raises(error, match=words):
        tiny_model(make_input())


def test_int32_ids_are_accepted(tiny_model):
    ids = torch.randint(0, 512, (2, 6))
    torch.testing.assert_close(tiny_model(ids.int()), tiny_model(ids), atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_rope_tables_stay_float32_in_any_model_dtype(tiny_config, dtype):
    from transformer_lib.model.rope import rope_tables

    cos, sin = rope_tables(tiny_config.head_dim, tiny_config.max_seq_len, tiny_config.rope_theta)
    model = Transformer(tiny_config).to(dtype)
    assert model.embed_tokens.weight.dtype == dtype
    assert model.rope_cos.dtype == model.rope_sin.dtype == torch.float32
    torch.testing.assert_close(model.rope_cos, cos, atol=0, rtol=0)
    torch.testing.assert_close(model.rope_sin, sin, atol=0, rtol=0)


def test_init_weights_rebuilds_the_rope_tables_of_a_model_made_on_the_meta_device(tiny_config):
    from transformer_lib.model.rope import rope_tables

    with torch.device("meta"):
        model = Transformer(tiny_config)
    model.to_empty(device="cpu")
    model.rope_cos.fill_(7.0)  # whatever the empty memory held: init_weights must rebuild it
    model.rope_sin.fill_(7.0)
    torch.manual_seed(0)
    model.init_weights()
    cos, sin = rope_tables(tiny_config.head_dim, tiny_config.max_seq_len, tiny_config.rope_theta)
    torch.testing.assert_close(model.rope_cos, cos, atol=0, rtol=0)
    torch.testing.assert_close(model.rope_sin, sin, atol=0, rtol=0)
    fresh = Transformer(tiny_config)
    torch.manual_seed(0)
    fresh.init_weights()  # the same random stream as the meta model's initialisation
    ids = torch.randint(0, 512, (1, 9))
    torch.testing.assert_close(model(ids), fresh(ids), atol=0, rtol=0)


def test_rejects_non_config():
    with pytest.raises(TypeError, match="ModelConfig"):
        Transformer({"d_model": 8})


# Greedy continuation of a seeded tiny model. If this changes, the model's numerics changed:
# check initialisation, RoPE and attention before updating it.
GOLDEN_PROMPT = [1, 2, 3, 4, 5]
GOLDEN_CONTINUATION = [22, 6, 61, 288, 177, 427, 427, 258, 404, 120, 139, 49]


def test_golden_greedy_output():
    """A regression pin, not evidence of correctness: the stored tokens are what this code
    produced when they were recorded, so the test only says that nothing changed since. The
    independent evidence that the model computes Llama's function is elsewhere: the interop tests
    (logits equal to transformers' LlamaForCausalLM on the same weights) and the llama2.c tests
    (a published checkpoint's output)."""
    torch.manual_seed(1234)
    model = Transformer(ModelConfig.from_preset("tiny"))
    model.init_weights(std=0.5)  # large weights give varied tokens, so the check bites
    out = model.generate(torch.tensor(GOLDEN_PROMPT), max_new_tokens=12, temperature=0)
    assert out[:5].tolist() == GOLDEN_PROMPT
    assert out[5:].tolist() == GOLDEN_CONTINUATION


def test_caches_must_agree_on_their_length(tiny_model):
    caches = tiny_model.make_caches(1)
    tiny_model(torch.tensor([[1, 2, 3]]), caches)
    caches[1].reset()
    with pytest.raises(ValueError, match="length"):
        tiny_model(torch.tensor([[4]]), caches)


def test_kv_cache_rejects_another_batch_size_or_dtype():
    from transformer_lib.model.attention import KVCache

    cache = KVCache(batch_size=2, num_kv_heads=1, max_seq_len=8, head_dim=4)
    with pytest.raises(ValueError, match="batch size 3"):
        cache.update(torch.zeros(3, 1, 1, 4), torch.zeros(3, 1, 1, 4))
    with pytest.raises(ValueError, match="float64"):
        cache.update(torch.zeros(2, 1, 1, 4, dtype=torch.float64),
                     torch.zeros(2, 1, 1, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="head"):
        cache.update(torch.zeros(2, 2, 1, 4), torch.zeros(2, 2, 1, 4))
    assert cache.length == 0


def test_forward_reads_the_device_once_for_the_id_range_check(tiny_model, monkeypatch):
    ids = torch.randint(0, 512, (2, 10))
    counter = SyncCounter(monkeypatch)
    tiny_model(ids)
    assert counter.count == 1


def test_checked_ids_skip_the_range_check(tiny_model, monkeypatch):
    ids = torch.randint(0, 512, (2, 10))
    tiny_model.check_input_ids(ids)
    counter = SyncCounter(monkeypatch)
    tiny_model(ids, check_ids=False)
    assert counter.count == 0
    with pytest.raises(ValueError, match="token id 512"):
        tiny_model.check_input_ids(torch.tensor([[1, 512]]))


def test_training_flops_estimate_counts_matmul_weights_and_attention():
    """6N + 12LTC (PaLM appendix B, nanoGPT): N from the model's own matrices; the attention
    term counted here from the two weightless matmuls, forward and backward."""
    from transformer_lib.analysis.cost import training_flops_per_token

    config = ModelConfig.from_preset("stories15M")
    n = sum(p.numel() for name, p in Transformer(config).named_parameters()
            if p.dim() == 2)  # the matrices, the tied embedding counted once as the head
    T, C, L = 256, config.d_model, config.num_layers
    scores_and_weighted_sum = 2 * (2 * T * C)  # two T x C multiply-adds per token, forward
    attention = L * 3 * scores_and_weighted_sum  # backward costs twice the forward
    assert attention == 12 * L * T * C
    assert training_flops_per_token(config, 256) == 6 * n + attention
    grouped = ModelConfig.from_preset("stories15M", num_kv_heads=2)
    n_grouped = sum(p.numel() for p in Transformer(grouped).parameters() if p.dim() == 2)
    assert training_flops_per_token(grouped, 256) == 6 * n_grouped + attention
