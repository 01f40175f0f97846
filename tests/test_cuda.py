"""The CUDA paths: run on a machine with an NVIDIA GPU (`pytest tests/test_cuda.py`); skipped elsewhere.

Each test compares a GPU computation with an independent one (the CPU model with the same
weights, the explicit attention maths, recomputation without a cache, eager execution), so a
wrong kernel choice or a device mix-up fails here rather than in a user's run.
"""

import numpy as np
import pytest
import torch

from transformer_lib import ModelConfig, Transformer
from transformer_lib.device import pick_device, pick_precision
from transformer_lib.model.attention import Attention
from transformer_lib.model.rope import rope_tables
from transformer_lib.training import checkpoint as ckpt
from transformer_lib.training.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (run on a GPU machine)")

CUDA = torch.device("cuda")


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    values = dict(vocab_size=256, d_model=64, num_layers=2, num_heads=4, max_seq_len=128)
    values.update(overrides)
    return Transformer(ModelConfig(**values))


@pytest.fixture(autouse=True)
def exact_float32_matmuls():
    """TF32 would make float32 comparisons with the CPU fail by design, not by a bug."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


def test_policy_picks_cuda_and_bf16_autocast():
    assert pick_device().type == "cuda"
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert pick_precision(CUDA).name == expected


@pytest.mark.parametrize("num_kv_heads", [4, 2])
def test_cuda_logits_match_the_cpu(num_kv_heads):
    cpu_model = tiny(num_kv_heads=num_kv_heads).eval()
    gpu_model = tiny(seed=1, num_kv_heads=num_kv_heads).to(CUDA).eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    ids = torch.randint(0, 256, (3, 100))
    with torch.no_grad():
        expected = cpu_model(ids)
        actual = gpu_model(ids.to(CUDA)).cpu()
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("num_kv_heads", [4, 2], ids=["multi-head", "grouped-query"])
def test_flash_kernel_runs_our_attention_call_and_matches_the_explicit_maths(num_kv_heads):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=16, d_model=128, num_layers=1, num_heads=4,
                         num_kv_heads=num_kv_heads, max_seq_len=256)
    attention = Attention(config).to(CUDA, torch.bfloat16).eval()
    x = torch.randn(2, 200, 128, device=CUDA, dtype=torch.bfloat16)
    cos, sin = (table.to(CUDA) for table in rope_tables(config.head_dim, 200))
    with torch.no_grad():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises if our call cannot use Flash
            fused = attention(x, cos, sin)
        explicit, weights = attention.forward_with_weights(x, cos, sin)
    assert weights.shape == (2, 4, 200, 200)
    torch.testing.assert_close(fused.float(), explicit.float(), atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_kv_cache_generates_what_recomputation_generates(dtype):
    model = tiny(num_kv_heads=2).to(CUDA, dtype)
    prompt = torch.randint(0, 256, (2, 5), device=CUDA)
    cached = model.generate(prompt, 40, temperature=0)
    recomputed = model.generate(prompt, 40, temperature=0, use_cache=False)
    assert cached.device.type == "cuda" and cached.shape == (2, 45)
    if dtype == torch.float32:
        assert torch.equal(cached, recomputed)
    else:
        # Not the whole generation: in bf16 the 1-token (cached) and full-sequence (recomputed)
        # kernels round differently, and once two logits tie within bf16's 3 significant digits
        # greedy decoding may legitimately branch. The start, before any such tie, must agree.
        assert torch.equal(cached[:, :15], recomputed[:, :15])
    sampled = [model.generate(prompt, 30, temperature=1.0, top_k=20,
                              generator=torch.Generator(CUDA).manual_seed(7), use_cache=cache)
               for cache in (True, False)]
    assert all(s.shape == (2, 35) and torch.equal(s[:, :5], prompt) for s in sampled)
    if dtype == torch.float32:
        assert torch.equal(*sampled)
    else:  # the same seed and the same first logits: the first sampled tokens agree
        assert torch.equal(sampled[0][:, :6], sampled[1][:, :6])


def test_sampling_under_bf16_autocast_with_float32_weights():
    """The library's CUDA policy (float32 weights, bf16 autocast) can sample: the KV caches take
    the autocast dtype. Seeded sampling repeats itself, and the cached run's first tokens equal
    recomputation's (same seed, same first logits)."""
    model = tiny(num_kv_heads=2).to(CUDA).eval()
    prompt = torch.randint(0, 256, (2, 5), device=CUDA)
    with torch.autocast("cuda", torch.bfloat16):
        assert model.make_caches(2, 8)[0].k_cache.dtype == torch.bfloat16
        runs = [model.generate(prompt, 30, temperature=0.9, top_p=0.95,
                               generator=torch.Generator(CUDA).manual_seed(3), use_cache=cache)
                for cache in (True, True, False)]
    assert all(run.shape == (2, 35) and torch.equal(run[:, :5], prompt) for run in runs)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0][:, :6], runs[2][:, :6])
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])  # muon: the training command's
def test_bf16_training_on_cuda_learns_and_its_checkpoint_loads_on_the_cpu(tmp_path, optimizer):
    vocab = 64
    stream = (np.arange(20_000) * 7 % vocab).astype(np.uint16)
    model = tiny(vocab_size=vocab, max_seq_len=64)
    trainer = Trainer(model, stream, stream[:4000],
                      TrainConfig(batch_size=16, seq_len=64, max_steps=60, eval_every=30,
                                  eval_windows=8, warmup_steps=5, lr=1e-2, device="cuda",
                                  optimizer=optimizer),
                      np.ones(vocab, dtype=np.int64), run_dir=tmp_path, progress=False, log=None)
    assert trainer.precision.name == pick_precision(CUDA).name
    before = trainer.evaluate()["loss"]
    history = trainer.fit()
    assert history[-1]["val_loss"] < before - 1.0
    assert all(p.dtype == torch.float32 and p.is_cuda for p in trainer.model.parameters())
    loaded, meta = ckpt.load_model_from_checkpoint(tmp_path)  # map_location defaults to the CPU
    assert meta["step"] == 60 and next(loaded.parameters()).device.type == "cpu"
    ids = torch.randint(0, vocab, (2, 64))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids), trainer.model.eval()(ids.to(CUDA)).cpu(),
                                   atol=1e-4, rtol=1e-4)


def test_compiled_model_matches_eager_on_cuda():
    model = tiny().to(CUDA).eval()
    compiled = torch.compile(model)
    ids = torch.randint(0, 256, (2, 64), device=CUDA)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids), model(ids), atol=1e-4, rtol=1e-4)
    model.train()
    loss = compiled(ids).float().logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_analysis_on_cuda_matches_the_cpu_and_stays_on_the_device(tokenizer):
    """The analysis tools build their tensors on the model's device and switch it to eval mode
    themselves (the GPU model is left in training mode here, and must stay in it)."""
    from transformer_lib.analysis import interpret

    cpu_model = tiny().eval()
    gpu_model = tiny(seed=1).to(CUDA)
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.train()
    ids = interpret.repeated_random_tokens(2, 10, low=3, high=200, start_id=1,
                                           generator=torch.Generator().manual_seed(0))
    gpu_losses = interpret.token_losses(gpu_model, ids)  # CPU ids: moved to the model
    assert gpu_losses.device.type == "cuda"
    torch.testing.assert_close(gpu_losses.cpu(), interpret.token_losses(cpu_model, ids),
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(interpret.logit_lens(gpu_model, ids).cpu(),
                               interpret.logit_lens(cpu_model, ids), atol=1e-4, rtol=1e-4)
    gpu_base, gpu_ablated = interpret.head_ablation_losses(gpu_model, ids)
    cpu_base, cpu_ablated = interpret.head_ablation_losses(cpu_model, ids)
    assert gpu_base == pytest.approx(cpu_base, rel=1e-4)
    torch.testing.assert_close(gpu_ablated, cpu_ablated, atol=1e-4, rtol=1e-4)
    texts = ["a tiny story", "and another, a little longer than the first one"]
    gpu_score = interpret.score_texts(gpu_model, tokenizer, texts, start_id=1)
    cpu_score = interpret.score_texts(cpu_model, tokenizer, texts, start_id=1)
    assert gpu_score.nll_nats == pytest.approx(cpu_score.nll_nats, rel=1e-4)
    on_device = interpret.repeated_random_tokens(2, 4, low=3, high=9, start_id=1, device=CUDA)
    assert on_device.device.type == "cuda"
    assert gpu_model.training


def test_training_steps_between_log_steps_never_wait_for_the_gpu():
    """Under CUDA's sync debug mode "error", any host read of device memory raises: the steps
    between log steps (grad_accum=4) must run without one."""
    tokens = (np.arange(4000) * 7 % 256).astype(np.uint16)
    trainer = Trainer(tiny(), tokens, tokens, TrainConfig(batch_size=8, seq_len=32, grad_accum=4,
                                                          max_steps=6, log_every=100,
                                                          eval_every=100),
                      np.ones(256, dtype=np.int64), progress=False, log=None)
    assert trainer.device.type == "cuda"
    trainer._train_step(1e-3)  # first step: lazy initialisation (optimizer state, kernels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [trainer._train_step(1e-3) for _ in range(3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(loss.device.type == "cuda" for loss in losses)
    assert all(np.isfinite([loss.item() for loss in losses]))
