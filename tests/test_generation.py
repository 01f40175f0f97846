"""Sampling filters and generation, with and without the KV cache."""

import copy
import shutil

import pytest
import torch

from transformer_lib import ModelConfig, Transformer
from transformer_lib.model.generation import filter_logits, generate, sample_next_token


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.9]])
    kept = filter_logits(logits, temperature=0)
    assert torch.isfinite(kept).tolist() == [[False, True, False, False]]
    assert sample_next_token(logits, temperature=0).tolist() == [1]


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()
    # shuffled order gives the same set
    shuffled = logits[:, [2, 0, 3, 1]]
    assert torch.isfinite(filter_logits(shuffled, top_p=0.7)).tolist() == [[False, True, False, True]]


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    cold = torch.softmax(filter_logits(logits, temperature=0.5), -1)
    hot = torch.softmax(filter_logits(logits, temperature=2.0), -1)
    assert cold[0, 2] > torch.softmax(logits, -1)[0, 2] > hot[0, 2]


@pytest.mark.parametrize("use_sampling", [False, True])
def test_kv_cache_gives_identical_tokens(tiny_model, use_sampling):
    prompt = torch.randint(0, 512, (3, 7))
    kwargs = dict(temperature=0.9, top_k=50, top_p=0.95) if use_sampling else dict(temperature=0)
    cached = generate(tiny_model, prompt, 40, use_cache=True,
                      generator=torch.Generator().manual_seed(7), **kwargs)
    full = generate(tiny_model, prompt, 40, use_cache=False,
                    generator=torch.Generator().manual_seed(7), **kwargs)
    assert cached.shape == (3, 47)
    assert torch.equal(cached[:, :7], prompt)
    assert torch.equal(cached, full)


def test_seeded_sampling_is_reproducible_and_seed_dependent(tiny_model):
    prompt = torch.tensor([1, 2, 3])
    a = generate(tiny_model, prompt, 20, generator=torch.Generator().manual_seed(1))
    b = generate(tiny_model, prompt, 20, generator=torch.Generator().manual_seed(1))
    c = generate(tiny_model, prompt, 20, generator=torch.Generator().manual_seed(2))
    assert a.dim() == 1 and a.shape == (23,)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_batched_rows_match_single_prompts(tiny_model):
    prompts = torch.randint(0, 512, (2, 6))
    batched = generate(tiny_model, prompts, 15, temperature=0)
    for row in range(2):
        single = generate(tiny_model, prompts[row], 15, temperature=0)
        assert torch.equal(batched[row], single)


def _first(row: torch.Tensor, token: int) -> int | None:
    hits = (row == token).nonzero()
    return int(hits[0]) if len(hits) else None


def test_eos_pads_finished_rows_and_stops_early(tiny_model):
    """Two rows that finish at different steps: the early one is all eos after its stop, the
    other equals its single-prompt run, and generation stops when the late one finishes."""
    tiny_model = Transformer(tiny_model.config).eval()
    tiny_model.init_weights(std=0.5)  # large weights give varied tokens (untrained ones repeat)
    for seed in range(100):  # prompts whose greedy rows share a token, row 0 reaching it first
        torch.manual_seed(seed)
        prompts = torch.randint(0, 512, (2, 3))
        new = generate(tiny_model, prompts, 20, temperature=0)[:, 3:]  # (2, 20), no eos
        # An eos id that row 0 produces first and row 1 produces at least two steps later.
        found = next(((t, _first(new[0], t), _first(new[1], t)) for t in new[0].tolist()
                      if _first(new[1], t) is not None
                      and _first(new[0], t) + 2 <= _first(new[1], t)), None)
        if found:
            break
    eos, early, late = found
    stopped = generate(tiny_model, prompts, 20, temperature=0, eos_id=eos)[:, 3:]
    assert stopped.shape[1] == late + 1  # stops once the last row has produced eos
    assert torch.equal(stopped[0, : early + 1], new[0, : early + 1])
    assert (stopped[0, early:] == eos).all()  # the finished row is all eos after its stop
    single = generate(tiny_model, prompts[1], 20, temperature=0, eos_id=eos)[3:]
    assert torch.equal(stopped[1], single)


def test_generate_restores_training_mode(tiny_model):
    tiny_model.train()
    generate(tiny_model, torch.tensor([1]), 2)
    assert tiny_model.training


def test_generated_tokens_are_an_ordinary_tensor(tiny_model):
    """Decoding runs under inference_mode; what it returns must not carry that restriction."""
    out = tiny_model.generate([1, 2, 3], 4, temperature=0)
    assert not out.is_inference() and torch.is_grad_enabled()
    out[0] = 7  # in place, outside inference mode: raises for an inference tensor
    embedded = tiny_model.embed_tokens(out)  # usable in an autograd graph
    embedded.sum().backward()
    assert tiny_model.embed_tokens.weight.grad is not None


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(temperature=-0.1), "temperature=-0.1"),
        (dict(temperature=float("nan")), "temperature=nan"),
        (dict(temperature=float("inf")), "temperature=inf"),
        (dict(top_k=0), "top_k=0"),
        (dict(top_p=0.0), "top_p=0.0"),
        (dict(top_p=1.5), "top_p=1.5"),
        (dict(max_new_tokens=-1), "max_new_tokens=-1"),
        (dict(max_new_tokens=200), "exceeds max_seq_len=128"),
        (dict(repetition_penalty=float("inf")), "repetition_penalty=inf"),
        (dict(repetition_penalty=float("nan")), "repetition_penalty=nan"),
        (dict(num_beams=2, temperature=0, length_penalty=float("nan")), "length_penalty=nan"),
        (dict(num_beams=2, temperature=0, length_penalty=float("-inf")), "length_penalty=-inf"),
    ],
)
def test_bad_generation_arguments(tiny_model, kwargs, words):
    args = dict(max_new_tokens=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        generate(tiny_model, torch.tensor([1, 2, 3]), **args)


def test_empty_prompt_is_an_error(tiny_model):
    with pytest.raises(ValueError, match="empty"):
        generate(tiny_model, torch.tensor([], dtype=torch.long), 3)
    for shape_less in (torch.tensor(5), torch.zeros(0, 5, dtype=torch.long)):
        with pytest.raises(ValueError, match=r"one prompt \(T,\) or a batch \(B, T\)"):
            generate(tiny_model, shape_less, 3)


def test_a_temperature_too_small_to_divide_by_decodes_greedily(tiny_model):
    """Logits over 1e-45 overflow to inf: sampling from them gave NaN probabilities."""
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    greedy = generate(tiny_model, prompt, 6, temperature=0)
    assert torch.equal(generate(tiny_model, prompt, 6, temperature=1e-45), greedy)


def test_generation_checks_the_prompt_once_not_per_step(tiny_model, monkeypatch):
    from test_model import SyncCounter

    prompt = torch.randint(0, 512, (1, 5))
    counter = SyncCounter(monkeypatch)
    generate(tiny_model, prompt, 12, temperature=0)  # no eos_id: nothing else reads the device
    assert counter.count == 1


@pytest.mark.parametrize("use_cache", [True, False])
def test_prefill_computes_the_output_head_for_the_last_position_only(tiny_model, use_cache):
    shapes = []
    hook = tiny_model.lm_head.register_forward_hook(
        lambda module, args, out: shapes.append(tuple(args[0].shape)))
    try:
        out = generate(tiny_model, torch.randint(0, 512, (2, 6)), 3, temperature=0,
                       use_cache=use_cache)
    finally:
        hook.remove()
    assert [shape[1] for shape in shapes] == [1, 1, 1]
    full = tiny_model(out[:, :-1])
    assert torch.equal(full[:, 5:].argmax(-1), out[:, 6:])


def _clear_margin_model():
    """A random model (vocab 32, weights of std 0.3, seed 10: picked by a search over seeds for
    the margin property asserted below) and a prompt whose 15 greedy tokens are varied."""
    torch.manual_seed(10)
    model = Transformer(ModelConfig.from_preset("tiny", vocab_size=32)).eval()
    model.init_weights(std=0.3)
    prompt = torch.randint(0, 32, (1, 4))
    return model, prompt


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_generation_under_autocast_equals_the_model_cast_to_that_dtype(dtype):
    """Caches take the autocast dtype, so generate runs under autocast; its greedy tokens equal
    those of the same model cast to ``dtype``.

    Why equality is a fair demand: along the float32 greedy path, at every step the gap between
    the best and the second-best logit exceeds twice the largest logit error of either low
    precision run (asserted below), so neither rounding can change any argmax.
    """
    model, prompt = _clear_margin_model()
    cast = copy.deepcopy(model).to(dtype)
    reference = generate(model, prompt, 15, temperature=0)  # float32
    with torch.no_grad():
        logits = model(reference[:, :-1])[:, 3:]  # (1, 15, V): the logits of the 15 choices
        with torch.autocast("cpu", dtype):
            autocast_error = (model(reference[:, :-1])[:, 3:].float() - logits).abs().amax(-1)
        cast_error = (cast(reference[:, :-1])[:, 3:].float() - logits).abs().amax(-1)
    best_two = logits.topk(2, dim=-1).values
    gap = best_two[..., 0] - best_two[..., 1]
    assert (gap > 2 * torch.maximum(autocast_error, cast_error)).all(), "pick another model"
    assert len(set(reference[0, 4:].tolist())) >= 5  # not a constant run of one token

    with torch.autocast("cpu", dtype):
        under_autocast = generate(model, prompt, 15, temperature=0)
    assert torch.equal(under_autocast, generate(cast, prompt, 15, temperature=0))
    assert torch.equal(under_autocast, reference)


def test_caches_take_the_autocast_dtype_and_a_mismatch_says_how_to_fix_it(tiny_model):
    with torch.autocast("cpu", torch.float16):
        caches = tiny_model.make_caches(1, 8)
    assert caches[0].k_cache.dtype == torch.float16
    assert tiny_model.make_caches(1, 8)[0].k_cache.dtype == torch.float32
    with torch.no_grad(), pytest.raises(ValueError, match="inside the same torch.autocast"):
        tiny_model(torch.tensor([[1, 2]]), caches)  # float32 keys into float16 caches


def test_decoding_with_eos_reads_once_per_step_into_one_output_buffer(tiny_model, monkeypatch):
    """At most one device-to-host read per step (plus the prompt's id check), and no growing
    of the output by concatenation: each torch.cat would copy all earlier tokens again."""
    from test_model import SyncCounter

    cats = []
    original_cat = torch.cat

    def counted_cat(*args, **kwargs):
        result = original_cat(*args, **kwargs)
        if not result.is_floating_point():  # token ids; RoPE's own concatenations are floats
            cats.append(tuple(result.shape))
        return result

    prompt = torch.randint(0, 512, (2, 5))
    steps = 12
    monkeypatch.setattr(torch, "cat", counted_cat)
    counter = SyncCounter(monkeypatch)
    out = generate(tiny_model, prompt, steps, temperature=0.8, eos_id=511,
                   generator=torch.Generator().manual_seed(0))
    assert counter.count <= 1 + (out.shape[1] - 5)
    assert counter.count >= 2  # the check and at least one step: the counter does count
    assert cats == []  # the output is not grown by concatenation


def _static_cache_logits(model, ids, prefill, spans=False, products_up_to=0):
    """Logits of positions prefill-1 .. T-1 of ids (B, T) from static_cache_step, uncompiled:
    the prompt in one call, then one token a call (with ``spans``, each attending over the
    filled positions only, as the CPU's compiled step does; ``products_up_to`` as it passes
    it). The caches start as noise, which the mask, or the span, must keep out."""
    from transformer_lib.model.generation import decoding_weights, static_cache_step

    cfg = model.config
    B, T = ids.shape
    shape = (B, cfg.num_kv_heads, cfg.max_seq_len, cfg.head_dim)
    caches = [(torch.randn(shape), torch.randn(shape)) for _ in model.layers]
    weights, tables = decoding_weights(model), (model.rope_cos, model.rope_sin)
    with torch.no_grad():
        logits = [static_cache_step(weights, cfg, ids[:, :prefill], torch.arange(prefill),
                                    caches, *tables, products_up_to=products_up_to)]
        logits += [static_cache_step(weights, cfg, ids[:, t:t + 1], torch.tensor([t]), caches,
                                     *tables, span=torch.empty(t + 1) if spans else None,
                                     products_up_to=products_up_to)
                   for t in range(prefill, T)]
    return torch.stack(logits, dim=1)  # (B, T - prefill + 1, V)


@pytest.mark.parametrize("variant", [{}, {"qk_norm": True}, {"logit_softcap": 3.0},
                                     {"attention_scale": False}, {"num_kv_heads": 4}],
                         ids=["default", "qk_norm", "softcap", "no_scale", "mha"])
def test_static_cache_step_gives_the_eager_logits(tiny_config, variant):
    """The forward pass the compiled path runs, uncompiled, against Transformer.forward, for
    every setting it covers (random gains, so that a dropped QK-norm would show)."""
    import dataclasses

    torch.manual_seed(0)
    model = Transformer(dataclasses.replace(tiny_config, **variant)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
    ids = torch.randint(0, tiny_config.vocab_size, (2, 9))
    with torch.no_grad():
        expected = model(ids)[:, 5:]  # (2, 4, V)
    torch.testing.assert_close(_static_cache_logits(model, ids, 6), expected,
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_static_cache_logits(model, ids, 6, spans=True), expected,
                               atol=1e-5, rtol=1e-5)
    # Every matrix as products and sums (the CPU's compiled step for a small model), and only
    # the smaller ones (the tiny preset's head has 64 x 512 elements, the rest fewer).
    for limit in (10**9, 64 * 512 - 1):
        torch.testing.assert_close(_static_cache_logits(model, ids, 6, True, limit), expected,
                                   atol=1e-5, rtol=1e-5)


def test_static_cache_step_adds_unmerged_lora_corrections(tiny_model):
    from transformer_lib.model.lora import LoRAConfig, add_lora, lora_layers

    model = add_lora(copy.deepcopy(tiny_model), LoRAConfig(rank=2, targets=("q", "v", "down")))
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.normal_(std=0.5)  # B = 0 at initialisation would hide a dropped term
        expected = model(torch.arange(8).view(1, 8))[:, 4:]
        assert (expected - tiny_model(torch.arange(8).view(1, 8))[:, 4:]).abs().max() > 1e-2
    torch.testing.assert_close(_static_cache_logits(model, torch.arange(8).view(1, 8), 5),
                               expected, atol=1e-5, rtol=1e-5)


def test_decoding_weights_are_kept_until_a_parameter_changes(tiny_model):
    from transformer_lib.model.generation import _decoding_weights_of, decoding_weights

    model = copy.deepcopy(tiny_model)
    first = _decoding_weights_of(model)
    assert _decoding_weights_of(model) is first  # reused
    with torch.no_grad():
        model.layers[1].mlp.down_proj.weight.mul_(2)  # an in-place update, as an optimizer's
    second = _decoding_weights_of(model)
    assert second is not first
    torch.testing.assert_close(second[3][1][5], 2 * first[3][1][5])  # layer 1's down, (F, C)
    third = _decoding_weights_of(model)
    model.layers[0].self_attn.q_proj.weight.data.add_(1.0)  # through .data: no version bump
    assert _decoding_weights_of(model) is not third
    model.to(torch.float64)
    assert _decoding_weights_of(model)[2].dtype == torch.float64
    fresh = decoding_weights(model)
    for kept, made in zip(torch.utils._pytree.tree_leaves(_decoding_weights_of(model)),
                          torch.utils._pytree.tree_leaves(fresh), strict=True):
        assert kept is made is None or torch.equal(kept, made)  # None: no QK-norm gains
    with torch.no_grad():
        model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    with_nan = _decoding_weights_of(model)
    assert _decoding_weights_of(model) is with_nan  # NaN != NaN must not defeat the reuse


@pytest.mark.parametrize("variant", [{"norm": "layer"}, {"positions": "learned"},
                                     {"mlp": "gelu"}, {"norm_placement": "post"}])
def test_compiled_decoding_refuses_the_ablation_architectures(tiny_config, variant):
    import dataclasses

    model = Transformer(dataclasses.replace(tiny_config, **variant)).eval()
    setting = next(iter(variant))
    with pytest.raises(ValueError, match=f"{setting}=.*compile=False"):
        generate(model, torch.tensor([1, 2]), 3, temperature=0, compile=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="torch.compile's CPU backend (Inductor) needs a C compiler")
@pytest.mark.parametrize("small_matrix", [None, 0], ids=["products", "blas"])
def test_compiled_decoding_gives_the_eager_greedy_tokens(monkeypatch, small_matrix):
    """compile=True (a static cache, one compiled step reused for every token) against the
    eager path, on a model whose greedy tokens vary; a second call reuses the graph. Both
    ways of multiplying by a matrix in the CPU's step: the tiny model's matrices are small, so
    by default as products and sums; with the limit at 0, by the BLAS library, as a larger
    model's are."""
    from transformer_lib.model import generation
    from transformer_lib.model.generation import _ahead_of_time_step

    if small_matrix is not None:
        monkeypatch.setattr(generation, "_SMALL_MATRIX", small_matrix)
    built_with = []
    original = generation._StepModule.__init__

    def recording_init(self, *args):
        original(self, *args)
        built_with.append(self.products_up_to)

    monkeypatch.setattr(generation._StepModule, "__init__", recording_init)
    model, prompt = _clear_margin_model()
    prompt = prompt.repeat(2, 1)
    eager = generate(model, prompt, 40, temperature=0)
    built = _ahead_of_time_step.cache_info().misses
    compiled = generate(model, prompt, 40, temperature=0, compile=True)
    assert torch.equal(compiled, eager)
    # On a CPU the step was compiled ahead of time, once for this shape and batch size ...
    assert _ahead_of_time_step.cache_info().misses == built + 1
    again = generate(model, prompt[:, :3], 20, temperature=0, compile=True, eos_id=int(eager[0, 6]))
    assert torch.equal(again, generate(model, prompt[:, :3], 20, temperature=0,
                                       eos_id=int(eager[0, 6])))
    assert _ahead_of_time_step.cache_info().misses == built + 1  # ... and reused
    assert built_with == [generation._SMALL_MATRIX]  # products for a small model, else 0


def test_compiled_decoding_refuses_beams_and_no_cache(tiny_model):
    for kwargs in (dict(num_beams=2), dict(use_cache=False)):
        with pytest.raises(ValueError, match="compile=True"):
            generate(tiny_model, torch.tensor([1, 2]), 3, compile=True, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16), \
            pytest.raises(ValueError, match="outside torch.autocast"):
        generate(tiny_model, torch.tensor([1, 2]), 3, compile=True)


def test_compiled_decoding_of_one_token_compiles_nothing(monkeypatch):
    """The first new token comes from the eager prompt pass; only later ones need the step,
    whose build also failed for a context of two positions."""
    from transformer_lib.model import generation

    monkeypatch.setattr(generation, "_step_function",
                        lambda *args: pytest.fail("built a step that no token needs"))
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=32, d_model=16, num_layers=1, num_heads=2,
                                    max_seq_len=2)).eval()
    prompt = torch.tensor([[1]])
    assert torch.equal(generate(model, prompt, 1, temperature=0, compile=True),
                       generate(model, prompt, 1, temperature=0))


def test_importing_generation_does_not_load_the_compiler():
    """compile=True builds its compiled step on first use; importing must stay cheap."""
    import subprocess
    import sys

    code = ("import sys, transformer_lib.model.generation\n"
            "assert 'torch._dynamo' not in sys.modules and 'torch._inductor' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_caches_of_a_model_on_the_meta_device_have_the_weights_dtype():
    # Memory planning builds models on the meta device, where autocast does not exist.
    with torch.device("meta"):
        model = Transformer(ModelConfig.from_preset("tiny"))
    caches = model.make_caches(2, 16)
    buffers = [buffer for cache in caches for buffer in cache.buffers()]
    assert buffers and all(b.device.type == "meta" and b.dtype == torch.float32 for b in buffers)
