"""Checkpoints under crashes: `latest` always loads, the log holds each step once, resume is exact."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_trainer import (
    BYTES,
    ROOT,
    Crash,
    crash_at,
    final_weights,
    make_trainer,
    pattern_tokens,
    small_model,
    write_corpus,
)

from transformer_lib.training import checkpoint as ckpt
from transformer_lib.training.trainer import TrainConfig, Trainer


def log_records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def without_clock(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]


def test_resumed_log_holds_each_step_once_with_the_uninterrupted_values(tmp_path):
    straight = make_trainer(tmp_path / "a", max_steps=20, save_every=8, log_every=1)
    straight.fit()
    crashed = make_trainer(tmp_path / "b", max_steps=20, save_every=8, log_every=1)
    crashed.callbacks.append(crash_at(12))  # steps 9-12 are logged, then lost with the crash
    with pytest.raises(Crash):
        crashed.fit()
    resumed = make_trainer(tmp_path / "b", model=small_model(seed=5), max_steps=20,
                           save_every=8, log_every=1)
    resumed.resume(tmp_path / "b")
    resumed.fit()
    records = log_records(tmp_path / "b")
    keys = [(r["kind"], r["step"]) for r in records]
    assert len(keys) == len(set(keys)), "a step is logged twice"
    assert without_clock(records) == without_clock(log_records(tmp_path / "a"))
    assert without_clock(records) == without_clock(resumed.history)


class Killed(BaseException):
    """Stands for SIGKILL at one file-system call of a save."""


def kill_at_call(monkeypatch, k: int) -> None:
    """Make the k-th os.replace / shutil.rmtree / os.rename raise Killed; a killed rmtree
    has already deleted part of its folder (the metadata first)."""
    calls = {"n": 0}
    real_replace, real_rmtree = os.replace, shutil.rmtree

    def tick():
        calls["n"] += 1
        return calls["n"] == k

    def replace(src, dst, *args, **kwargs):
        if tick():
            raise Killed
        return real_replace(src, dst, *args, **kwargs)

    def rmtree(path, *args, **kwargs):
        if tick():
            meta = Path(path) / ckpt.META
            if meta.exists():
                meta.unlink()
            raise Killed
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)


@pytest.mark.parametrize("k", range(1, 12))
def test_resaving_an_existing_step_leaves_a_loadable_latest_after_a_kill_anywhere(
        tmp_path, monkeypatch, k):
    model = small_model()
    ckpt.save_checkpoint(tmp_path, model, 3, {})
    with monkeypatch.context() as patch:
        kill_at_call(patch, k)
        try:
            ckpt.save_checkpoint(tmp_path, small_model(seed=1), 3, {})
        except Killed:
            pass
    loaded, meta = ckpt.load_model_from_checkpoint(tmp_path)  # must not raise
    assert meta["step"] == 3
    ckpt.save_checkpoint(tmp_path, model, 4, {})  # the next save cleans up after the kill
    left = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert left in (["step_00000003", "step_00000004"], ["step_00000004"])  # no leftovers
    for name in left:
        ckpt.load_model_from_checkpoint(tmp_path / "checkpoints" / name)


def test_pruning_keeps_the_checkpoint_just_written_and_named_by_latest(tmp_path):
    model = small_model()
    for step in (10, 15):
        ckpt.save_checkpoint(tmp_path, model, step, {})
    written = ckpt.save_checkpoint(tmp_path, model, 6, {})  # e.g. resumed from an older step
    assert written.is_dir()
    assert ckpt.resolve_checkpoint(tmp_path) == written
    assert len(list((tmp_path / "checkpoints").glob("step_*"))) == 2


def test_stale_temporary_folders_are_removed_by_the_next_save(tmp_path):
    stale = tmp_path / "checkpoints" / ".step_00000002.tmp-99999"
    stale.mkdir(parents=True)
    (stale / ckpt.WEIGHTS).write_bytes(b"half a file")
    ckpt.save_checkpoint(tmp_path, small_model(), 3, {})
    assert not stale.exists()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000003"]


def test_fixed_meta_keys_cannot_be_overridden(tmp_path):
    with pytest.raises(ValueError, match="step"):
        ckpt.save_checkpoint(tmp_path, small_model(), 3, {"step": 99})
    with pytest.raises(ValueError, match="history"):
        _trainer_with_extra_meta(tmp_path, {"history": []})


def _trainer_with_extra_meta(run_dir, extra):
    return Trainer(small_model(), pattern_tokens(), pattern_tokens(seed=1),
                   TrainConfig(batch_size=4, seq_len=16, max_steps=2), BYTES, run_dir=run_dir,
                   progress=False, log=None, extra_meta=extra)


def test_fit_with_no_step_left_neither_evaluates_nor_saves(tmp_path):
    make_trainer(tmp_path, max_steps=4).fit()
    folder = ckpt.resolve_checkpoint(tmp_path)
    before = (folder / ckpt.META).stat().st_mtime_ns, (tmp_path / "log.jsonl").read_text()
    again = make_trainer(tmp_path, max_steps=4)
    again.resume(tmp_path)
    n_records = len(again.history)
    again.evaluate = lambda *a, **k: pytest.fail("evaluated with no step left")
    again.fit()
    assert len(again.history) == n_records
    assert ckpt.resolve_checkpoint(tmp_path) == folder
    assert ((folder / ckpt.META).stat().st_mtime_ns, (tmp_path / "log.jsonl").read_text()) \
        == before


# ---- the hard way: SIGKILL a real training process at random instants --------------------------

# Enough steps that a fast, idle machine cannot finish the run between two kills.
KILL_STEPS = 80
KILL_ARGS = ["-m", "transformer_lib.cli.train", "--preset", "tiny", "--max-steps", str(KILL_STEPS),
             "--save-every", "1", "--log-every", "1", "--eval-every", "8", "--eval-windows", "2",
             "--batch-size", "2", "--warmup-steps", "2", "--vocab-size", "300", "--no-progress",
             "--threads", "1", "--precision", "fp32"]  # no --seq-len: the preset's 128 applies


@pytest.mark.slow
def test_sigkill_at_random_instants_then_resume_reaches_the_uninterrupted_result(tmp_path):
    corpus = write_corpus(tmp_path)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONHASHSEED="0",
               OMP_NUM_THREADS="1")
    common = [sys.executable, *KILL_ARGS, "--data", str(corpus), "--cache-dir",
              str(tmp_path / "cache")]
    straight = subprocess.run([*common, "--out", str(tmp_path / "straight")], env=env, cwd=ROOT,
                              capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    while True:
        before = (run / "latest").read_text() if (run / "latest").exists() else None
        process = subprocess.Popen([*common, "--out", str(run), "--resume"], env=env, cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills < 6:  # wait for this process's first save, then kill it at a random instant
            deadline = time.time() + 60
            while process.poll() is None and time.time() < deadline:
                latest = run / "latest"
                if latest.exists() and latest.read_text() != before:
                    time.sleep(rng.uniform(0.0, 0.1))
                    break
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, stderr
        kills += 1
        model, meta = ckpt.load_model_from_checkpoint(run)  # latest loads after every kill
        ckpt.load_training_state(ckpt.resolve_checkpoint(run))
        assert meta["step"] <= KILL_STEPS
    assert kills >= 3, "too few kills landed during training"
    a, b = final_weights(tmp_path / "straight"), final_weights(run)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)
    records = log_records(run)
    keys = [(r["kind"], r["step"]) for r in records]
    assert len(keys) == len(set(keys)), "a step is logged twice"
    assert without_clock(records) == without_clock(log_records(tmp_path / "straight"))


@pytest.mark.parametrize("content", [b"[]", b'"x"', b"\xa1\xa2 not utf-8",
                                     b'{"format": 1, "train_config": []}'])
def test_damaged_metadata_is_a_checkpoint_error_naming_the_file(tmp_path, content):
    folder = tmp_path / "step_00000001"
    folder.mkdir()
    (folder / ckpt.META).write_bytes(content)
    with pytest.raises(ckpt.CheckpointError, match=str(folder / ckpt.META)):
        ckpt.read_meta(folder)


def test_weights_of_another_shape_are_one_line_naming_the_first_mismatch(tmp_path):
    from transformer_lib import ModelConfig, Transformer

    model = Transformer(ModelConfig.from_preset("tiny"))
    folder = ckpt.save_checkpoint(tmp_path, model, 1, {})
    meta = json.loads((folder / ckpt.META).read_text())
    meta["model_config"]["d_model"] = 128  # edited by hand: the weights are 64 wide
    (folder / ckpt.META).write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError) as error:
        ckpt.load_model_from_checkpoint(tmp_path)
    message = str(error.value)
    assert "\n" not in message and "size mismatch for embed_tokens.weight" in message
    assert "do not match the model_config" in message
