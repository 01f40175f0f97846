"""The trainer: schedule, optimizer groups, reproducibility, exact resume, checkpoints, DDP."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sync_counting import SyncCounter

from transformer_lib import ModelConfig, Transformer
from transformer_lib.training import checkpoint as ckpt
from transformer_lib.training.trainer import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    evaluate_tokens,
    learning_rate,
    make_optimizer,
)

ROOT = Path(__file__).resolve().parent.parent


def small_model(seed=0, **overrides):
    torch.manual_seed(seed)
    values = dict(vocab_size=64, d_model=32, num_layers=2, num_heads=2, max_seq_len=32)
    values.update(overrides)
    return Transformer(ModelConfig(**values))


def pattern_tokens(n=4000, vocab=64, seed=0):
    """A learnable stream: mostly a repeating cycle, with some noise."""
    rng = np.random.default_rng(seed)
    tokens = (np.arange(n) * 7 % vocab).astype(np.uint16)
    noise = rng.random(n) < 0.1
    tokens[noise] = rng.integers(0, vocab, noise.sum())
    return tokens


BYTES = np.ones(64, dtype=np.int64)


def make_trainer(run_dir=None, model=None, **config):
    values = dict(batch_size=4, seq_len=16, max_steps=20, eval_every=10, eval_windows=4,
                  warmup_steps=3, lr=1e-2)
    values.update(config)
    return Trainer(model or small_model(), pattern_tokens(), pattern_tokens(seed=1),
                   TrainConfig(**values), BYTES, run_dir=run_dir, progress=False, log=None)


def test_schedule_warms_up_then_decays_to_the_floor():
    config = TrainConfig(lr=1.0, min_lr_ratio=0.1, warmup_steps=10, max_steps=100)
    assert learning_rate(config, 0, 0.0) == 0.0  # peak * t / W: the first step only primes AdamW
    assert learning_rate(config, 9, 0.09) == pytest.approx(0.9)
    assert learning_rate(config, 10, 0.1) == pytest.approx(1.0)  # the peak, where warm-up ends
    assert learning_rate(config, 55, 0.55) == pytest.approx(0.55)  # half-way down the cosine
    assert learning_rate(config, 100, 1.0) == pytest.approx(0.1)
    lrs = [learning_rate(config, s, s / 100) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


@pytest.mark.parametrize("warmup, total, floor", [(7, 21, 0.1), (30, 1200, 0.1), (0, 50, 0.0),
                                                  (5, 5, 0.1), (10, 11, 0.3)])
def test_cosine_schedule_equals_transformers(warmup, total, floor):
    """Warm-up to the peak at step W, then a cosine over (t - W) / (T - W), as in transformers'
    get_cosine_with_min_lr_schedule_with_warmup (and nanoGPT): no drop when warm-up ends."""
    transformers = pytest.importorskip("transformers")
    peak = 5e-3
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    reference = transformers.get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup, num_training_steps=total, min_lr_rate=floor)
    config = TrainConfig(lr=peak, min_lr_ratio=floor, warmup_steps=warmup, max_steps=total)
    for step in range(total):
        assert abs(learning_rate(config, step, step / total) - reference.get_last_lr()[0]) < 1e-9
        optimizer.step()
        reference.step()


def test_time_budgeted_schedule_decays_from_where_warm_up_ended():
    """With a time budget the elapsed fraction plays t/T, and the fraction at which warm-up
    ended plays W/T: the rate is continuous there and reaches the floor at the end."""
    config = TrainConfig(lr=1.0, min_lr_ratio=0.1, warmup_steps=10, max_minutes=1.0)
    assert learning_rate(config, 10, 0.25, warmup_progress=0.25) == pytest.approx(1.0)
    assert learning_rate(config, 30, 0.625, warmup_progress=0.25) == pytest.approx(0.55)
    assert learning_rate(config, 50, 1.0, warmup_progress=0.25) == pytest.approx(0.1)


def test_trainer_schedule_under_a_time_budget_starts_the_cosine_at_the_peak():
    trainer = make_trainer(max_steps=None, max_minutes=0.03, warmup_steps=4, log_every=1)
    history = trainer.fit()
    lrs = [record["lr"] for record in history if record["kind"] == "train"]
    assert trainer.warmup_progress is not None and 0 < trainer.warmup_progress < 1
    assert lrs[:4] == pytest.approx([0.0, 2.5e-3, 5e-3, 7.5e-3])
    assert lrs[4] == pytest.approx(1e-2, rel=1e-6)  # the peak, not a step down the cosine
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))


def test_no_weight_decay_on_norms_and_embeddings():
    model = small_model(tie_embeddings=False)
    optimizer = make_optimizer(model, TrainConfig(max_steps=1), torch.device("cpu"))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = [names[id(p)] for p in optimizer.param_groups[0]["params"]]
    plain = [names[id(p)] for p in optimizer.param_groups[1]["params"]]
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    assert "embed_tokens.weight" in plain and "norm.weight" in plain
    assert "layers.0.input_layernorm.weight" in plain
    assert "lm_head.weight" in decayed and "layers.1.mlp.down_proj.weight" in decayed
    assert len(decayed) + len(plain) == len(list(model.parameters()))


@pytest.mark.parametrize("kwargs, words", [
    (dict(), "max_steps or max_minutes"),
    (dict(max_steps=0), "max_steps=0"),
    (dict(max_steps=5, batch_size=0), "batch_size=0"),
    (dict(max_minutes=-1.0), "max_minutes"),
    (dict(max_steps=5, eval_windows=0), "eval_windows=0.*None"),
    (dict(max_steps=5, save_every=-1), "save_every=-1.*None"),
])
def test_bad_train_config(kwargs, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**kwargs)


def test_batch_must_split_evenly_over_accumulation():
    with pytest.raises(ValueError, match="divisible"):
        make_trainer(batch_size=6, grad_accum=4)


def test_training_learns_and_is_reproducible():
    first = make_trainer(max_steps=60)
    before = first.evaluate()["loss"]
    history = first.fit()
    after = history[-1]["val_loss"]
    assert after < before - 1.0
    second = make_trainer(max_steps=60)
    second.fit()
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    kinds = {record["kind"] for record in history}
    assert kinds == {"train", "eval"}


def test_gradient_accumulation_matches_one_big_batch():
    one = make_trainer(max_steps=5, batch_size=8)
    two = make_trainer(max_steps=5, batch_size=8, grad_accum=4)
    one.fit()
    two.fit()
    for a, b in zip(one.model.parameters(), two.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_time_budget_stops_the_run():
    trainer = make_trainer(max_steps=None, max_minutes=0.02)  # 1.2 s
    start = time.perf_counter()
    trainer.fit()
    assert 1.0 < time.perf_counter() - start < 20
    assert trainer.step > 1


class Crash(Exception):
    pass


def crash_at(step):
    def callback(record):
        if record["step"] == step:
            raise Crash(f"simulated crash at step {step}")
    return callback


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_in_process_gives_identical_weights(tmp_path, optimizer):
    straight = make_trainer(tmp_path / "a", model=small_model(dropout=0.1), max_steps=20,
                            optimizer=optimizer)
    straight.fit()
    crashed = make_trainer(tmp_path / "b", model=small_model(dropout=0.1), max_steps=20,
                           save_every=8, log_every=1, optimizer=optimizer)
    crashed.callbacks.append(crash_at(12))
    with pytest.raises(Crash):
        crashed.fit()
    resumed = make_trainer(tmp_path / "b", model=small_model(seed=99, dropout=0.1), max_steps=20,
                           save_every=8, log_every=1, optimizer=optimizer)
    resumed.resume(tmp_path / "b")
    assert resumed.step == 8
    resumed.fit()
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=30, save_every=5)
    original = trainer.model.forward
    calls = {"n": 0}

    def poisoned(input_ids, caches=None, **kwargs):
        calls["n"] += 1
        out = original(input_ids, caches, **kwargs)
        return out * float("nan") if calls["n"] == 8 else out

    trainer._forward = poisoned
    with pytest.raises(TrainingDiverged, match="loss became nan at step 8"):
        trainer.fit()
    assert ckpt.resolve_checkpoint(tmp_path).name == "step_00000005"
    model, _ = ckpt.load_model_from_checkpoint(tmp_path)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=3)
    trainer.fit()
    model, meta = ckpt.load_model_from_checkpoint(tmp_path)
    assert meta["step"] == 3
    for a, b in zip(model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(a, b)
    folder = ckpt.resolve_checkpoint(tmp_path)
    weights = folder / ckpt.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(ckpt.CheckpointError, match="model.safetensors"):
        ckpt.load_model_from_checkpoint(tmp_path)
    (folder / ckpt.STATE).write_bytes(b"not a pickle")
    with pytest.raises(ckpt.CheckpointError, match="state.pt"):
        ckpt.load_training_state(folder)
    with pytest.raises(ckpt.CheckpointError, match="neither a checkpoint"):
        ckpt.resolve_checkpoint(tmp_path / "nowhere")


def test_resume_refuses_a_checkpoint_of_another_shape(tmp_path):
    make_trainer(tmp_path, max_steps=2).fit()
    other = make_trainer(None, model=small_model(d_model=64), max_steps=2)
    with pytest.raises(ckpt.CheckpointError, match="another shape"):
        other.resume(tmp_path)


def test_cli_refuses_a_bad_flag_value_with_an_error_not_a_traceback():
    from transformer_lib.cli.train import build_parser, train_config_from_args
    args = build_parser().parse_args(["--out", "x", "--max-steps", "5", "--eval-windows", "0"])
    with pytest.raises(SystemExit, match="error: eval_windows=0 must be"):
        train_config_from_args(args, None, "cpu")


def test_evaluation_refuses_zero_windows():
    with pytest.raises(ValueError, match="max_windows=0.*None"):
        evaluate_tokens(small_model(), pattern_tokens(100), np.ones(64, dtype=np.int64),
                        seq_len=16, max_windows=0)


def test_evaluation_covers_every_token():
    model = small_model()
    tokens = pattern_tokens(1001)
    byte_lengths = np.arange(64) % 3 + 1
    result = evaluate_tokens(model, tokens, byte_lengths, seq_len=16, batch_size=5)
    assert result["tokens"] == 1000
    assert result["bytes"] == int(byte_lengths[tokens[1:].astype(np.int64)].sum())
    assert result["bits_per_byte"] == pytest.approx(
        result["loss"] * 1000 / (math.log(2) * result["bytes"]))


# ---- the command lines, on a small corpus made here ------------------------------------------

def write_corpus(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    names, things = ["Tom", "Lily", "Sam", "Mia"], ["ball", "cat", "tree", "cake", "boat"]
    for split, count in (("train", 300), ("validation", 60)):
        stories = []
        for _ in range(count):
            name, thing = rng.choice(names), rng.choice(things)
            stories.append(f"Once upon a time, {name} had a {thing}.\n{name} loved the {thing} "
                           f"very much. One day the {thing} was lost, and {name} was sad.")
        text = "".join(f"{story}\n<|endoftext|>\n" for story in stories)
        (folder / f"{split}.txt").write_text(text, encoding="utf-8")
    return folder


TINY_ARGS = ["--d-model", "32", "--num-layers", "1", "--num-heads", "2", "--max-seq-len", "32",
             "--seq-len", "32", "--batch-size", "4", "--vocab-size", "300", "--warmup-steps", "2",
             "--eval-windows", "4", "--eval-every", "10", "--no-progress", "--threads", "1",
             "--precision", "fp32"]  # exact comparisons; bf16 matmuls may block differently


def run_cli(*args, env_extra=None, **kwargs):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONHASHSEED="0")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          cwd=ROOT, **kwargs)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def final_weights(run_dir: Path) -> dict:
    return load_file(ckpt.resolve_checkpoint(run_dir) / ckpt.WEIGHTS)


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(corpus, tmp_path):
    common = ["-m", "transformer_lib.cli.train", "--data", str(corpus), "--max-steps", "40",
              "--save-every", "5", "--cache-dir", str(tmp_path / "cache"), *TINY_ARGS]
    straight = run_cli(*common, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    crashed = tmp_path / "crashed"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    process = subprocess.Popen([sys.executable, *common, "--out", str(crashed)], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once a middle checkpoint exists
        latest = crashed / "latest"
        if latest.exists() and "step_00000015" <= latest.read_text().strip()[-13:] < "step_00000040":
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = ckpt.resolve_checkpoint(crashed).name
    assert killed_at < "step_00000040", "the run finished before it could be killed"

    resumed = run_cli(*common, "--out", str(crashed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = final_weights(tmp_path / "straight"), final_weights(crashed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)


@pytest.mark.slow
def test_two_gloo_processes_match_one(corpus, tmp_path):
    common = ["--data", str(corpus), "--max-steps", "6", "--cache-dir", str(tmp_path / "cache"),
              *TINY_ARGS]
    one = run_cli("-m", "transformer_lib.cli.train", *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = run_cli("-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                  "-m", "transformer_lib.cli.train", *common, "--out", str(tmp_path / "two"),
                  env_extra={"OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr

    def final_val_loss(run_dir):
        records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        return [r for r in records if r["kind"] == "eval"][-1]["val_loss"]

    assert abs(final_val_loss(tmp_path / "one") - final_val_loss(tmp_path / "two")) < 1e-5
    assert "2 process(es)" in two.stdout


@pytest.mark.slow
def test_evaluate_and_generate_command_lines(corpus, tmp_path):
    run = tmp_path / "run"
    trained = run_cli("-m", "transformer_lib.cli.train", "--data", str(corpus), "--out", str(run),
                      "--max-steps", "30", "--cache-dir", str(tmp_path / "cache"), *TINY_ARGS)
    assert trained.returncode == 0, trained.stderr
    again = run_cli("-m", "transformer_lib.cli.train", "--data", str(corpus), "--out", str(run),
                    "--max-steps", "3", *TINY_ARGS)
    assert again.returncode != 0 and "--resume" in again.stderr

    evaluated = run_cli("-m", "transformer_lib.cli.evaluate", "--checkpoint", str(run), "--data",
                        str(corpus / "validation.txt"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert {"loss", "bits_per_byte", "tokens", "bytes"} <= set(result)
    text = (corpus / "validation.txt").read_text(encoding="utf-8")
    stories = [s.strip() for s in text.split("<|endoftext|>") if s.strip()]
    assert result["bytes"] == sum(len(s.encode()) for s in stories)

    generated = run_cli("-m", "transformer_lib.cli.generate", "--checkpoint", str(run), "--prompt",
                        "Once upon a time", "--max-new-tokens", "20", "--seed", "1")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith("Once upon a time")

    broken = run_cli("-m", "transformer_lib.cli.evaluate", "--checkpoint", str(tmp_path / "none"))
    assert broken.returncode == 2 and "neither a checkpoint" in broken.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_fails_before_any_data_work(tmp_path):
    result = run_cli("-m", "transformer_lib.cli.train", "--data", str(tmp_path / "nowhere"),
                     "--out", str(tmp_path / "run"), "--device", "cuda")
    assert result.returncode != 0 and "CUDA is not available" in result.stderr
    assert not (tmp_path / "run").exists()


def test_cli_precision_defaults_and_resume_keeps_the_saved_one(monkeypatch):
    from transformer_lib.cli import train as cli
    from transformer_lib.cli.train import build_parser, train_config_from_args

    args = build_parser().parse_args(["--out", "x", "--max-steps", "5"])
    # bf16 on a CPU only where it is computed in hardware; emulated it is 14x slower than fp32
    monkeypatch.setattr(cli, "cpu_has_native_bf16", lambda: True)
    assert train_config_from_args(args, None, "cpu").precision == "bf16"
    monkeypatch.setattr(cli, "cpu_has_native_bf16", lambda: False)
    assert train_config_from_args(args, None, "cpu").precision == "fp32"
    assert train_config_from_args(args, None, "cuda").precision == "auto"
    saved = TrainConfig(max_steps=5, precision="fp32").to_dict()
    assert train_config_from_args(args, saved, "cpu").precision == "fp32"
    explicit = build_parser().parse_args(["--out", "x", "--precision", "fp32"])
    assert train_config_from_args(explicit, None, "cpu").precision == "fp32"
    assert train_config_from_args(explicit, None, "cpu").max_minutes == 5.0


def test_native_bf16_is_read_from_the_cpus_capabilities():
    from transformer_lib.device import cpu_has_native_bf16

    assert cpu_has_native_bf16({"avx2": True, "avx512_bf16": False, "amx_bf16": False}) is False
    assert cpu_has_native_bf16({"avx2": True, "avx512_bf16": True}) is True  # Zen 4, Cooper Lake
    assert cpu_has_native_bf16({"amx_bf16": True}) is True  # Sapphire Rapids
    assert cpu_has_native_bf16({"num_logical_cores": 8}) is False
    assert isinstance(cpu_has_native_bf16(), bool)  # this machine: whatever it has


def test_cli_weight_decay_default_explicit_flag_and_resume():
    from transformer_lib.cli.train import build_parser, train_config_from_args
    from transformer_lib.training.trainer import CLI_RECIPE

    fresh = build_parser().parse_args(["--out", "x", "--max-steps", "5"])
    assert train_config_from_args(fresh, None, "cpu").weight_decay == CLI_RECIPE[
        "weight_decay"] == 1.0
    assert TrainConfig(max_steps=5).weight_decay == 0.1  # the library's default is unchanged
    explicit = build_parser().parse_args(["--out", "x", "--weight-decay", "0.1"])
    assert train_config_from_args(explicit, None, "cpu").weight_decay == 0.1
    saved = TrainConfig(max_steps=5, weight_decay=0.3).to_dict()
    assert train_config_from_args(fresh, saved, "cpu").weight_decay == 0.3  # resumed: as saved


def test_cli_optimizer_is_muon_for_a_new_model_and_adamw_for_fine_tuning():
    from transformer_lib.cli.train import build_parser, train_config_from_args

    fresh = build_parser().parse_args(["--out", "x", "--max-steps", "5"])
    assert train_config_from_args(fresh, None, "cpu").optimizer == "muon"
    assert TrainConfig(max_steps=5).optimizer == "adamw"  # the library's default is unchanged
    tune = build_parser().parse_args(["--out", "x", "--init-from", "base", "--max-steps", "5"])
    assert train_config_from_args(tune, None, "cpu").optimizer == "adamw"
    explicit = build_parser().parse_args(["--out", "x", "--optimizer", "adamw"])
    assert train_config_from_args(explicit, None, "cpu").optimizer == "adamw"
    saved = TrainConfig(max_steps=5).to_dict()  # a run made before the change: AdamW
    assert train_config_from_args(fresh, saved, "cpu").optimizer == "adamw"


def test_cli_value_options_are_off_unless_asked_for():
    from transformer_lib.cli.train import build_parser, model_config_from_args

    def config(*flags):
        return model_config_from_args(build_parser().parse_args(["--out", "x", *flags]), 2048)

    default = config()
    assert not default.value_embeddings and not default.value_residual
    both = config("--value-embeddings", "--value-residual")
    assert both.value_embeddings and both.value_residual
    assert dataclasses.replace(both, value_embeddings=False, value_residual=False) == default
    assert config("--no-value-embeddings") == default
    assert config("--preset", "seed-22.5M", "--value-residual").value_residual


def test_cli_new_model_trains_on_8_windows_under_wsd_and_fine_tuning_keeps_the_library_defaults():
    from transformer_lib.cli.train import build_parser, train_config_from_args

    fresh = train_config_from_args(build_parser().parse_args(["--out", "x", "--max-steps", "5"]),
                                   None, "cpu")
    assert (fresh.batch_size, fresh.schedule) == (8, "wsd")
    library = TrainConfig(max_steps=5)  # the library's defaults are unchanged
    assert (library.batch_size, library.schedule) == (16, "cosine")
    tune = train_config_from_args(build_parser().parse_args(
        ["--out", "x", "--init-from", "base", "--max-steps", "5"]), None, "cpu")
    assert (tune.batch_size, tune.schedule, tune.weight_decay) == (16, "cosine", 1.0)
    explicit = train_config_from_args(build_parser().parse_args(
        ["--out", "x", "--batch-size", "32", "--schedule", "cosine"]), None, "cpu")
    assert (explicit.batch_size, explicit.schedule) == (32, "cosine")
    saved = TrainConfig(max_steps=5).to_dict()  # a run made before the change: 16, cosine
    resumed = train_config_from_args(build_parser().parse_args(["--out", "x"]), saved, "cpu")
    assert (resumed.batch_size, resumed.schedule) == (16, "cosine")


def test_cli_help_shows_the_defaults_that_apply():
    from transformer_lib.cli.train import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "--weight-decay WEIGHT_DECAY default 1.0" in text
    assert "--lr LR default 0.005" in text
    assert "smaller of 256 and the model's max_seq_len" in text
    assert "(default: None)" not in text  # flags decided later say what applies instead
    assert "--seed SEED default 0" in text and "(default: 0)" not in text
    assert "--device DEVICE auto, cpu, cuda, cuda:N or mps (default: auto)" in text
    assert "in training only (default: 0.0)" in text  # a zero default is still a default


def test_cli_seq_len_defaults_to_the_smaller_of_256_and_the_models_max_seq_len():
    from transformer_lib.cli.train import build_parser, train_config_from_args

    tiny = build_parser().parse_args(["--out", "x", "--preset", "tiny", "--max-steps", "5"])
    assert train_config_from_args(tiny, None, "cpu", max_seq_len=128).seq_len == 128
    assert train_config_from_args(tiny, None, "cpu", max_seq_len=1024).seq_len == 256
    given = build_parser().parse_args(["--out", "x", "--seq-len", "64", "--max-steps", "5"])
    assert train_config_from_args(given, None, "cpu", max_seq_len=128).seq_len == 64
    saved = TrainConfig(max_steps=5, seq_len=32).to_dict()
    assert train_config_from_args(tiny, saved, "cpu", max_seq_len=128).seq_len == 32


@pytest.mark.slow
def test_cli_trains_the_tiny_preset_without_seq_len(corpus, tmp_path):
    result = run_cli("-m", "transformer_lib.cli.train", "--data", str(corpus), "--preset", "tiny",
                     "--out", str(tmp_path / "run"), "--max-steps", "2", "--batch-size", "2",
                     "--vocab-size", "300", "--eval-windows", "1", "--no-progress",
                     "--threads", "1", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    _, meta = ckpt.load_model_from_checkpoint(tmp_path / "run")
    assert meta["train_config"]["seq_len"] == 128


# ---- one helper per job ------------------------------------------------------------------------

LIBRARY = ROOT / "transformer_lib"


def test_one_bits_per_byte_formula_and_one_atomic_write():
    """Each job has one helper: the ln-2 conversion lives in tokens.bits_per_byte, atomic
    replacement in fileio; other modules call those instead of writing their own."""
    # Exercise checks recompute a reader's answer independently, on purpose.
    mine = sorted(path.relative_to(LIBRARY).with_suffix("").as_posix()
                  for path in LIBRARY.rglob("*.py") if "exercises" not in path.parts)
    for needle, home in (("math.log(2)", "data/tokens"), ("os.fsync(", "fileio"),
                         ("was_training", "model/transformer")):
        users = [name for name in mine if needle in (LIBRARY / f"{name}.py").read_text()]
        assert users == [home], f"{needle} appears in {users}"


def test_evaluation_reports_bits_per_byte_through_the_shared_function():
    from transformer_lib.data.tokens import bits_per_byte

    result = evaluate_tokens(small_model(), pattern_tokens(1001), np.arange(64) % 3 + 1,
                             seq_len=16, batch_size=5)
    assert result["bits_per_byte"] == bits_per_byte(result["loss"], result["tokens"],
                                                    result["bytes"])


def test_evaluate_does_not_import_the_trainer():
    code = ("import sys, transformer_lib.cli.evaluate; "
            "assert 'transformer_lib.training.trainer' not in sys.modules, 'evaluate imports trainer'")
    result = run_cli("-c", code)
    assert result.returncode == 0, result.stderr


def test_eval_mode_restores_the_mode_even_after_an_error():
    from transformer_lib.model import eval_mode

    model = small_model().train()
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not model.training
        raise RuntimeError
    assert model.training
    with eval_mode(model.eval()):
        pass
    assert not model.training
    # Mixed modes (a frozen block kept in eval mode while the rest trains) come back as they
    # were, each submodule its own, and inside the block every submodule is in eval mode.
    model.train()
    model.layers[0].eval()
    before = {name: sub.training for name, sub in model.named_modules()}
    with eval_mode(model):
        assert not any(sub.training for sub in model.modules())
    assert {name: sub.training for name, sub in model.named_modules()} == before
    assert model.training and not model.layers[0].training


def test_training_steps_between_log_steps_read_nothing_from_the_device(monkeypatch):
    """With grad_accum=4, a step's losses stay on the device; they are read once per log step
    (and the evaluation once per call), so the host never waits for the device in between."""
    trainer = make_trainer(max_steps=12, batch_size=8, grad_accum=4, log_every=4,
                           eval_every=100, eval_windows=4)
    counter = SyncCounter(monkeypatch)
    reads_per_step = []
    train_step = trainer._train_step

    def counted_step(lr):
        before = counter.count
        loss = train_step(lr)
        reads_per_step.append(counter.count - before)
        return loss

    trainer._train_step = counted_step
    history = trainer.fit()
    assert reads_per_step == [0] * 12
    logs = [r for r in history if r["kind"] == "train"]
    assert [r["step"] for r in logs] == [4, 8, 12]
    assert all(math.isfinite(r["loss"]) for r in logs)
    evaluations = sum(r["kind"] == "eval" for r in history)
    assert counter.count == len(logs) + evaluations  # one read per log step, one per evaluation


def test_logged_loss_is_the_mean_over_micro_batches_of_that_step():
    trainer = make_trainer(max_steps=2, batch_size=8, grad_accum=4, log_every=1)
    model = small_model()
    model.load_state_dict(trainer.model.state_dict())
    windows = trainer.sampler.windows_at(0)
    x, y = torch.from_numpy(windows[:, :-1]), torch.from_numpy(windows[:, 1:])
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
    history = trainer.fit()
    torch.testing.assert_close(history[0]["loss"], expected.item(), atol=1e-5, rtol=1e-5)


def test_evaluation_reads_the_device_once_per_call(monkeypatch):
    model = small_model()
    counter = SyncCounter(monkeypatch)
    result = evaluate_tokens(model, pattern_tokens(1001), BYTES, seq_len=16, batch_size=4)
    assert counter.count == 1
    assert result["tokens"] == 1000


def test_bad_token_ids_are_refused_on_the_host_before_any_step():
    tokens = pattern_tokens()
    tokens[100:3000] = 64  # outside the model's vocabulary of 64
    trainer = Trainer(small_model(), tokens, pattern_tokens(seed=1),
                      TrainConfig(batch_size=4, seq_len=16, max_steps=2), BYTES, progress=False,
                      log=None)
    with pytest.raises(ValueError, match="token id 64 is outside"):
        trainer.fit()
    assert trainer.step == 0
    with pytest.raises(ValueError, match="token id 64 is outside"):
        evaluate_tokens(small_model(), tokens, BYTES, seq_len=16)


@pytest.mark.parametrize("val, table, match", [
    (pattern_tokens(1), BYTES, "at least 2 ids"),
    (pattern_tokens(50), np.ones(10, dtype=np.int64), "no entry in byte_lengths"),
    (pattern_tokens(50), np.zeros(64, dtype=np.int64), "spell no bytes"),
    (pattern_tokens(50).reshape(2, 25), BYTES, "flat array"),
    (np.array([1, 2, 64], dtype=np.uint16), BYTES, "token id 64 is outside"),
])
def test_a_bad_validation_set_is_refused_before_any_step(val, table, match, tmp_path):
    """Found at the final evaluation, it used to cost the whole run: the last checkpoint is
    written after that evaluation."""
    with pytest.raises(ValueError, match=match):
        Trainer(small_model(), pattern_tokens(), val, TrainConfig(batch_size=4, seq_len=16,
                max_steps=2), table, run_dir=tmp_path, progress=False, log=None)


def test_the_final_checkpoint_is_written_even_if_the_final_evaluation_fails(tmp_path,
                                                                             monkeypatch):
    trainer = make_trainer(tmp_path, max_steps=4, eval_every=100)

    def fail(max_windows=None):
        raise MemoryError("out of memory in the final evaluation")

    monkeypatch.setattr(trainer, "evaluate", fail)
    with pytest.raises(MemoryError):
        trainer.fit()
    saved = ckpt.resolve_checkpoint(tmp_path)
    assert saved.name == "step_00000004"
    assert torch.equal(load_file(saved / "model.safetensors")["embed_tokens.weight"],
                       trainer.model.embed_tokens.weight.detach())


def test_tensors_of_token_ids_train_as_their_numpy_arrays():
    runs = []
    for as_tensor in (False, True):
        train, val = pattern_tokens().astype(np.int64), pattern_tokens(seed=1).astype(np.int64)
        if as_tensor:
            train, val = torch.from_numpy(train), torch.from_numpy(val)
        trainer = Trainer(small_model(), train, val, TrainConfig(batch_size=4, seq_len=16,
                          max_steps=3, precision="fp32"), BYTES, progress=False, log=None)
        runs.append(trainer.fit()[-1]["val_loss"])
    assert runs[0] == runs[1]


def test_float_token_arrays_are_refused_with_a_fix():
    with pytest.raises(TypeError, match=r"astype\(np.int64\)"):
        Trainer(small_model(), pattern_tokens().astype(np.float32), pattern_tokens(seed=1),
                TrainConfig(batch_size=4, seq_len=16, max_steps=2), BYTES, progress=False,
                log=None)


def test_each_rank_copies_only_its_own_rows_of_the_global_batch(monkeypatch):
    from transformer_lib.training import trainer as trainer_module
    from transformer_lib.training.trainer import rank_rows

    batch = np.arange(8 * 5).reshape(8, 5)
    shares = [rank_rows(batch, rank, 4) for rank in range(4)]
    assert all(share.shape == (2, 5) for share in shares)
    np.testing.assert_array_equal(np.concatenate(shares), batch)
    with pytest.raises(ValueError, match="evenly"):
        rank_rows(batch, 0, 3)

    trainer = make_trainer(batch_size=8)
    copied = []
    original = trainer_module.ids_to_device

    def recording(array, device):
        copied.append(np.array(array))
        return original(array, device)

    monkeypatch.setattr(trainer_module, "ids_to_device", recording)
    trainer.rank, trainer.world = 1, 2  # as rank 1 of 2 would, without a process group
    x, y, weighted = trainer._local_batch(3)
    assert weighted is None  # random windows carry no weights
    windows = trainer.sampler.windows_at(3)  # the global batch every rank draws
    assert [a.shape for a in copied] == [(4, 16), (4, 16)]  # half the rows, nothing more
    np.testing.assert_array_equal(x.numpy(), windows[4:, :-1])
    np.testing.assert_array_equal(y.numpy(), windows[4:, 1:])


# ---- rows of whole examples, with per-token weights (fine-tuning; chapter 13) ---------------


def example_rows(n=40, width=17, seed=0):
    """Rows of the pattern stream, each starting at a random offset, and random weights."""
    rng = np.random.default_rng(seed)
    stream = pattern_tokens().astype(np.int64)
    starts = rng.integers(0, len(stream) - width, n)
    rows = stream[starts[:, None] + np.arange(width)]  # (n, width)
    weights = rng.choice([0.0, 1.0, 5.0], size=rows.shape).astype(np.float32)
    weights[:, 1] = 1.0  # every row keeps a target
    return rows, weights


def rows_trainer(rows, weights=None, model=None, **config):
    values = dict(batch_size=4, seq_len=rows.shape[1] - 1, max_steps=5, eval_every=5,
                  eval_windows=2, warmup_steps=0, lr=1e-2)
    values.update(config)
    return Trainer(model or small_model(), rows, pattern_tokens(seed=1), TrainConfig(**values),
                   BYTES, train_weights=weights, progress=False, log=None)


def test_rows_train_on_whole_rows_and_weights_make_the_weighted_mean():
    rows, weights = example_rows()
    trainer = rows_trainer(rows, weights)
    x, y, (local_weights, total) = trainer._local_batch(2)
    picked = trainer.sampler.windows_at(2)
    index = [int(np.flatnonzero((rows == row).all(axis=1))[0]) for row in picked]
    np.testing.assert_array_equal(x.numpy(), rows[index, :-1])  # whole rows, from the start
    np.testing.assert_array_equal(local_weights.numpy(), weights[index, 1:])  # the same rows
    assert total == pytest.approx(weights[index, 1:].sum())

    # The step's loss is the weighted mean of the targets' cross-entropies.
    model = trainer.model
    with torch.no_grad():
        logits = model(x)
    per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(),
                                                  reduction="none").view(y.shape)
    expected = (per_token * local_weights).sum() / local_weights.sum()
    trainer.step = 2
    trainer.sampler.step = 2
    got = trainer._train_step(lr=0.0)  # lr 0: the weights stay, the loss is this batch's
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_weighted_rows_with_accumulation_match_one_big_batch():
    rows, weights = example_rows()
    one = rows_trainer(rows, weights, batch_size=8)
    four = rows_trainer(rows, weights, batch_size=8, grad_accum=4)
    one.fit()
    four.fit()
    for a, b in zip(one.model.parameters(), four.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_zero_weight_targets_do_not_train():
    rows, weights = example_rows()
    # The last column is only ever a target: changing it where its weight is 0 changes nothing,
    last_hidden = weights[:, -1] == 0
    assert last_hidden.any() and not last_hidden.all()
    hidden_changed, counted_changed = rows.copy(), rows.copy()
    hidden_changed[last_hidden, -1] = (rows[last_hidden, -1] + 1) % 64
    counted_changed[~last_hidden, -1] = (rows[~last_hidden, -1] + 1) % 64
    first, second = rows_trainer(rows, weights), rows_trainer(hidden_changed, weights)
    third = rows_trainer(counted_changed, weights)
    for trainer in (first, second, third):
        trainer.fit()
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    # ... while changing it where it counts does change training.
    assert any(not torch.equal(a, b) for a, b in
               zip(first.model.parameters(), third.model.parameters(), strict=True))


def test_rows_and_weights_are_checked():
    rows, weights = example_rows()
    with pytest.raises(ValueError, match="seq_len \\+ 1"):
        rows_trainer(rows, weights, seq_len=8)
    with pytest.raises(ValueError, match="rows"):
        Trainer(small_model(), pattern_tokens(), pattern_tokens(seed=1),
                TrainConfig(batch_size=4, seq_len=16, max_steps=2), BYTES,
                train_weights=np.ones(100, dtype=np.float32), progress=False, log=None)
    with pytest.raises(ValueError, match="shape"):
        rows_trainer(rows, weights[:, :-1])
    bad = weights.copy()
    bad[0, 3] = -1
    with pytest.raises(ValueError, match="non-negative"):
        rows_trainer(rows, bad)
    empty = weights.copy()
    empty[5, 1:] = 0
    with pytest.raises(ValueError, match="positive weight"):
        rows_trainer(rows, empty)


def test_rows_resume_in_process_gives_identical_weights(tmp_path):
    rows, weights = example_rows()
    straight = rows_trainer(rows, weights, max_steps=12)
    straight.fit()

    def trainer(run_dir, seed):
        config = TrainConfig(batch_size=4, seq_len=16, max_steps=12, eval_every=5,
                             eval_windows=2, warmup_steps=0, lr=1e-2, save_every=4, log_every=1)
        return Trainer(small_model(seed), rows, pattern_tokens(seed=1), config, BYTES,
                       train_weights=weights, run_dir=run_dir, progress=False, log=None,
                       callbacks=[crash_at(7)] if seed == 0 else [])

    with pytest.raises(Crash):
        trainer(tmp_path / "run", 0).fit()
    resumed = trainer(tmp_path / "run", 99)
    resumed.resume(tmp_path / "run")
    assert resumed.step == 4
    resumed.fit()
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
