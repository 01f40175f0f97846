"""interpret: each measurement checked against an independent computation on tiny models."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from transformer_lib import ModelConfig, Transformer
from transformer_lib.analysis import interpret
from transformer_lib.model.rope import apply_rope


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Transformer(ModelConfig.from_preset("tiny", num_layers=3, max_seq_len=32)).eval()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 512, (2, 20), generator=torch.Generator().manual_seed(1))


def shifted_maps(T, offset, layers=2, heads=3):
    """Causal maps that put all weight on position i - offset (or on 0 when that is < 0)."""
    weights = torch.zeros(1, heads, T, T)
    for i in range(T):
        weights[..., i, max(i - offset, 0)] = 1
    return [weights.clone() for _ in range(layers)]


def test_previous_and_first_token_scores_on_known_maps():
    torch.testing.assert_close(interpret.previous_token_scores(shifted_maps(6, 1)),
                               torch.ones(2, 3))
    torch.testing.assert_close(interpret.first_token_scores(shifted_maps(6, 1)),
                               torch.full((2, 3), 1 / 5))  # only query 1 looks at position 0
    uniform = torch.tril(torch.ones(5, 5))
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]  # (1, 1, 5, 5)
    expected = sum(1 / (i + 1) for i in range(1, 5)) / 4  # query i spreads 1 over i + 1 keys
    assert math.isclose(float(interpret.previous_token_scores([uniform])), expected, rel_tol=1e-6)
    assert math.isclose(float(interpret.first_token_scores([uniform])), expected, rel_tol=1e-6)
    with pytest.raises(ValueError, match="2 positions"):
        interpret.previous_token_scores([torch.ones(1, 1, 1, 1)])


def test_induction_score_finds_the_token_after_the_earlier_copy():
    length, prefix = 4, 1
    T = prefix + 2 * length
    perfect = shifted_maps(T, length - 1)  # query q attends to q - length + 1
    torch.testing.assert_close(interpret.induction_scores(perfect, length), torch.ones(2, 3))
    assert float(interpret.induction_scores(shifted_maps(T, 1), length).max()) == 0
    with pytest.raises(ValueError, match="prefix"):
        interpret.induction_scores(perfect, length + 1)


def test_repeated_random_tokens_repeats_its_first_half():
    ids = interpret.repeated_random_tokens(3, 7, low=10, high=20, start_id=1,
                                           generator=torch.Generator().manual_seed(0))
    assert ids.shape == (3, 15) and (ids[:, 0] == 1).all()
    assert torch.equal(ids[:, 1:8], ids[:, 8:])
    assert int(ids[:, 1:].min()) >= 10 and int(ids[:, 1:].max()) < 20


@torch.no_grad()
def test_copy_losses_average_the_right_positions(tiny):
    ids = interpret.repeated_random_tokens(2, 5, low=3, high=512, start_id=1,
                                           generator=torch.Generator().manual_seed(0))
    losses = torch.stack([F.cross_entropy(tiny(ids)[b, :-1], ids[b, 1:], reduction="none")
                          for b in range(2)])
    first, second = interpret.copy_losses(tiny, ids, 5)
    # targets at positions 2..5 (copy 1 without its first token) and 7..10 (copy 2 likewise)
    assert math.isclose(first, float(losses[:, 1:5].mean()), rel_tol=1e-5)
    assert math.isclose(second, float(losses[:, 6:10].mean()), rel_tol=1e-5)


def zeroed_copy(model, heads):
    """An independent ablation: a copy whose o_proj columns for those heads are zero."""
    clone = copy.deepcopy(model)
    D = model.config.head_dim
    with torch.no_grad():
        for layer, head in heads:
            clone.layers[layer].self_attn.o_proj.weight[:, head * D:(head + 1) * D] = 0
    return clone


def test_ablation_by_hook_equals_zeroed_weights_and_leaves_no_hook(tiny, ids):
    heads = [(0, 1), (2, 3), (2, 0)]
    expected = interpret.mean_loss(zeroed_copy(tiny, heads), ids)
    assert math.isclose(interpret.ablated_loss(tiny, ids, heads), expected, rel_tol=1e-5)
    assert all(not layer.self_attn.o_proj._forward_pre_hooks for layer in tiny.layers)
    assert interpret.ablated_loss(tiny, ids, []) == interpret.mean_loss(tiny, ids)
    with pytest.raises(ValueError, match="does not exist"):
        interpret.ablated_loss(tiny, ids, [(3, 0)])


def test_head_ablation_losses_match_one_ablation_at_a_time(tiny, ids):
    mask = torch.ones(2, 19, dtype=torch.bool)
    mask[1, 10:] = False
    baseline, losses = interpret.head_ablation_losses(tiny, ids, mask)
    assert math.isclose(baseline, interpret.mean_loss(tiny, ids, mask), rel_tol=1e-5)
    assert losses.shape == (3, 4)
    for layer in range(3):
        for head in range(4):
            expected = interpret.mean_loss(zeroed_copy(tiny, [(layer, head)]), ids, mask)
            assert math.isclose(float(losses[layer, head]), expected, rel_tol=1e-5)
    assert all(not layer.self_attn.o_proj._forward_pre_hooks for layer in tiny.layers)


VARIANTS = [{"logit_softcap": 2.0}, {"positions": "learned"}, {"positions": "sinusoidal"},
            {"positions": "none"}, {"value_embeddings": True, "value_residual": True}]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_head_ablation_losses_and_the_lens_follow_the_models_own_forward(variant, ids):
    """Each variant enters the forward pass somewhere the blocks alone do not see: positions
    added to the embedding, no RoPE, the value options' inputs, the soft cap on the logits."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset("tiny", num_layers=2, max_seq_len=32,
                                                **variant)).eval()
    with torch.no_grad():  # let the value options' zero-initialised weights matter
        for name, param in model.named_parameters():
            if "value_embedding" in name:
                param.normal_(std=0.5)
    baseline, losses = interpret.head_ablation_losses(model, ids)
    assert math.isclose(baseline, interpret.mean_loss(model, ids), rel_tol=1e-5)
    for layer, head in ((0, 1), (1, 3)):
        expected = interpret.ablated_loss(model, ids, [(layer, head)])
        assert math.isclose(float(losses[layer, head]), expected, rel_tol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(interpret.logit_lens(model, ids)[-1], model(ids))


def test_logit_lens_ends_with_the_model_logits(tiny, ids):
    lens = interpret.logit_lens(tiny, ids)
    assert lens.shape == (4, 2, 20, 512)
    with torch.no_grad():
        torch.testing.assert_close(lens[-1], tiny(ids))
        torch.testing.assert_close(lens[0], tiny.lm_head(tiny.norm(tiny.embed_tokens(ids))))
        after_first = tiny.layers[0](tiny.embed_tokens(ids), tiny.rope_cos[:20],
                                     tiny.rope_sin[:20])
        torch.testing.assert_close(lens[1], tiny.lm_head(tiny.norm(after_first)))


def test_rope_pair_energy_is_a_share_and_rotation_invariant(tiny, ids):
    energy = interpret.rope_pair_energy(tiny, ids)
    half = tiny.config.head_dim // 2
    assert energy["query"].shape == energy["key"].shape == (3, half)
    torch.testing.assert_close(energy["query"].sum(-1), torch.ones(3))
    # Independent: the rotated queries of layer 0 (what attention uses) give the same shares.
    attn = tiny.layers[0].self_attn
    with torch.no_grad():
        x = tiny.layers[0].input_layernorm(tiny.embed_tokens(ids))
        q, _, _ = attn._project(x, tiny.rope_cos[:20], tiny.rope_sin[:20], None)  # (B, H, T, D)
        rotated = apply_rope(attn.q_proj(x).view(2, 20, 4, -1).transpose(1, 2),
                             tiny.rope_cos[:20], tiny.rope_sin[:20])
    torch.testing.assert_close(q, rotated)
    per_pair = (q[..., :half] ** 2 + q[..., half:] ** 2).sum(dim=(0, 1, 2))
    torch.testing.assert_close(energy["query"][0], per_pair / per_pair.sum())


@pytest.mark.parametrize("length", [5, 32, 33, 50, 97])
def test_windows_score_every_target_once_within_the_context(length):
    ids = list(range(length))
    seen = []
    for window, first in interpret._windows(ids, 32):
        assert 2 <= len(window) <= 32
        start = ids.index(window[0])
        seen += [start + j + 1 for j in range(first, len(window) - 1)]
        if start:  # every later window keeps at least half a context before its first target
            assert first >= 15
    assert seen == list(range(1, length))


def test_windows_of_one_position_are_refused_not_looped_forever():
    assert interpret._windows([0, 1], 2) == [([0, 1], 0)]
    assert [first for _, first in interpret._windows([0, 1, 2, 3], 2)] == [0, 0, 0]
    with pytest.raises(ValueError, match="context of 1 position"):
        interpret._windows([0, 1, 2], 1)


class CharTokenizer:
    """One id per character (codepoint mod 500, + 10), so the bytes differ from the tokens."""

    def encode(self, text):
        return [10 + ord(c) % 500 for c in text]

    def decode(self, ids):
        return "".join(chr(i - 10) for i in ids)


def test_score_texts_counts_text_bytes_and_every_token(tiny):
    texts = ["naïve café", "a" * 40, "xyz"]  # the second needs two windows of 32
    score = interpret.score_texts(tiny, CharTokenizer(), texts, start_id=1, batch_size=2)
    assert score.num_bytes == len("naïve café".encode()) + 40 + 3 == 55
    assert score.num_tokens == 10 + 40 + 3 and score.num_split == 1 and score.num_texts == 3
    # Independent: the short texts in one pass each, the long one by hand in two windows.
    total = 0.0
    with torch.no_grad():
        for text in (texts[0], texts[2]):
            ids = torch.tensor([[1] + CharTokenizer().encode(text)])
            total += float(F.cross_entropy(tiny(ids)[0, :-1], ids[0, 1:], reduction="sum"))
        long_ids = torch.tensor([[1] + CharTokenizer().encode(texts[1])])  # 41 tokens
        first = tiny(long_ids[:, :32])[0, :-1]
        total += float(F.cross_entropy(first, long_ids[0, 1:32], reduction="sum"))
        second = tiny(long_ids[:, 16:41])[0]  # predicts positions 17..41; keep 32..40
        total += float(F.cross_entropy(second[15:-1], long_ids[0, 32:41], reduction="sum"))
    assert math.isclose(score.nll_nats, total, rel_tol=1e-5)
    assert math.isclose(score.bits_per_byte, total / math.log(2) / 55, rel_tol=1e-5)


def test_with_start_token_prepends_and_forwards():
    wrapped = interpret.WithStartToken(CharTokenizer(), 1)
    assert wrapped.encode("ab") == [1, 10 + ord("a"), 10 + ord("b")]
    assert wrapped.decode([10 + ord("a")]) == "a"
    with pytest.raises(AttributeError):
        wrapped.vocab_size  # noqa: B018 - CharTokenizer has none to forward


@pytest.fixture
def dropout_model():
    """A model in training mode whose dropout would change every forward pass."""
    torch.manual_seed(3)
    return Transformer(ModelConfig.from_preset("tiny", num_layers=2, max_seq_len=32,
                                               dropout=0.5)).train()


def _eval_copy(model):
    return copy.deepcopy(model).eval()


def test_token_losses_and_logit_lens_run_in_eval_mode_and_restore_the_mode(dropout_model, ids):
    reference = _eval_copy(dropout_model)
    with torch.no_grad():
        expected_logits = reference(ids)
    expected_losses = F.cross_entropy(expected_logits[:, :-1].transpose(1, 2), ids[:, 1:],
                                      reduction="none")
    torch.testing.assert_close(interpret.token_losses(dropout_model, ids), expected_losses)
    assert dropout_model.training
    lens = interpret.logit_lens(dropout_model, ids)
    torch.testing.assert_close(lens[-1], expected_logits)
    assert dropout_model.training
    baseline, _ = interpret.head_ablation_losses(dropout_model, ids)
    assert baseline == pytest.approx(float(expected_losses.mean()), rel=1e-5)
    assert dropout_model.training
    streams = interpret.residual_streams(dropout_model, ids)
    torch.testing.assert_close(reference.lm_head(reference.norm(streams[-1])).detach(),
                               expected_logits)
    assert dropout_model.training


def test_score_texts_runs_in_eval_mode(dropout_model, tokenizer):
    texts = ["a tiny story", "another one, a little longer than the first"]
    score = interpret.score_texts(dropout_model, tokenizer, texts, start_id=1)
    expected = interpret.score_texts(_eval_copy(dropout_model), tokenizer, texts, start_id=1)
    assert score.nll_nats == pytest.approx(expected.nll_nats, rel=1e-6)
    assert dropout_model.training


def test_one_forward_pass_returns_the_hidden_states(tiny, ids):
    logits, hidden = tiny(ids, return_hidden=True)
    assert len(hidden) == tiny.config.num_layers + 1
    torch.testing.assert_close(logits, tiny(ids))
    torch.testing.assert_close(hidden[0], tiny.embed_tokens(ids))
    x = hidden[0]
    T = ids.shape[1]
    for layer, after in zip(tiny.layers, hidden[1:], strict=True):
        x = layer(x, tiny.rope_cos[:T], tiny.rope_sin[:T])
        torch.testing.assert_close(after, x)


def test_repeated_random_tokens_on_a_device():
    ids = interpret.repeated_random_tokens(2, 5, low=3, high=50, start_id=1, device="meta")
    assert ids.device.type == "meta" and ids.shape == (2, 11) and ids.dtype == torch.long
