"""tlib-train with bad or conflicting input: a one-line error before any work, and nothing lost.

Each case once lost data or trained something other than what was asked: a new run pruned step
folders it had not written, a tokenizer left in --out overrode --tokenizer, --resume ignored
flags that contradicted the saved run (and recorded an --init-from it never used), a
checkpoint folder given as --out got a fresh run inside it, and a new run appended to the log
of an attempt killed before its first checkpoint.
"""

import json

import pytest
import torch

from tests.test_trainer import TINY_ARGS, make_trainer, write_corpus
from transformer_lib.cli import train as cli
from transformer_lib.data.tokenizer import load_tokenizer, train_tokenizer
from transformer_lib.training import checkpoint as ckpt
from transformer_lib.training.trainer import LOG, Trainer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def train(corpus, tmp_path):
    """Run tlib-train in this process on the tiny corpus; returns its exit status."""

    def run(*flags, steps=("--max-steps", "4")):
        return cli.main(["--data", str(corpus), "--cache-dir", str(tmp_path / "cache"),
                         *TINY_ARGS, *steps, *flags])

    return run


def error_of(capsys, call) -> str:
    """The one-line error of a refused command (SystemExit, no traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        call()
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.mark.parametrize("flags, words", [
    (["--num-heads", "3"], "not divisible by num_heads=3"),
    (["--seq-len", "64"], "exceeds the model's max_seq_len=32"),
    (["--grad-accum", "3"], "divisible by processes x grad_accum"),
    (["--weight-decay", "-1"], "weight_decay=-1.0 must be >= 0"),
    (["--seed", "-1"], "seed=-1"),
    (["--grad-clip", "nan"], "grad_clip=nan"),
    (["--vocab-size", "10"], "vocab_size=10"),
    (["--threads", "-1"], "--threads -1"),
])
def test_bad_flags_are_refused_before_the_run_directory_or_the_tokenizer(train, tmp_path,
                                                                          capsys, flags, words):
    out = tmp_path / "run"
    assert words in error_of(capsys, lambda: train("--out", str(out), *flags))
    assert not out.exists()


def test_an_empty_out_is_refused(train, capsys):
    assert "--out is empty" in error_of(capsys, lambda: train("--out", ""))


def test_a_missing_data_folder_is_an_error_not_a_traceback(tmp_path, capsys):
    message = error_of(capsys, lambda: cli.main(["--data", str(tmp_path / "nowhere"), "--out",
                                                 str(tmp_path / "run"), *TINY_ARGS]))
    assert "nowhere" in message


def test_step_folders_without_latest_are_never_pruned(train, tmp_path, capsys):
    out = tmp_path / "run"
    for name in ("step_00005000", "step_00004000"):
        (out / "checkpoints" / name).mkdir(parents=True)
        (out / "checkpoints" / name / "meta.json").write_text("precious")
    message = error_of(capsys, lambda: train("--out", str(out), "--save-every", "2"))
    assert "no 'latest' file" in message
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00004000",
                                                                        "step_00005000"]
    assert (out / "checkpoints" / "step_00004000" / "meta.json").read_text() == "precious"
    with pytest.raises(ValueError, match="no 'latest' file"):  # the library refuses too
        make_trainer(out)


def test_a_first_save_killed_before_latest_named_it_does_not_block_the_restart(tmp_path):
    make_trainer(tmp_path, max_steps=2).fit()
    (tmp_path / "latest").unlink()  # the instant between the folder's rename and latest
    make_trainer(tmp_path, max_steps=2).fit()
    assert ckpt.resolve_checkpoint(tmp_path).name == "step_00000002"


def test_a_checkpoint_folder_is_not_a_run_directory(train, tmp_path, capsys):
    assert train("--out", str(tmp_path / "run")) == 0
    checkpoint = ckpt.resolve_checkpoint(tmp_path / "run")
    before = sorted(p.name for p in checkpoint.iterdir())
    message = error_of(capsys, lambda: train("--out", str(checkpoint), "--resume"))
    assert "is a checkpoint, not a run directory" in message
    assert sorted(p.name for p in checkpoint.iterdir()) == before


def test_a_kept_tokenizer_that_differs_from_the_flags_is_refused(train, corpus, tmp_path,
                                                                 capsys):
    out = tmp_path / "run"
    out.mkdir()
    other = train_tokenizer([corpus.joinpath("train.txt").read_text()[:20000]], 280,
                            name="bpe-280")
    other.save(out / ckpt.TOKENIZER)  # what an attempt killed before its first save leaves
    assert "has 280 ids but this run asks for 300 (--vocab-size)" in error_of(
        capsys, lambda: train("--out", str(out)))
    given = tmp_path / "given.json"
    train_tokenizer([corpus.joinpath("train.txt").read_text()[:20000]], 300).save(given)
    assert "differs from --tokenizer" in error_of(
        capsys, lambda: train("--out", str(out), "--tokenizer", str(given)))
    assert load_tokenizer(out / ckpt.TOKENIZER).vocab_size == 280  # left as it was


def test_a_vocab_size_that_contradicts_the_given_tokenizer_is_refused(train, corpus, tmp_path,
                                                                     capsys):
    given = tmp_path / "given.json"
    train_tokenizer([corpus.joinpath("train.txt").read_text()[:20000]], 280).save(given)
    out = tmp_path / "run"
    message = error_of(capsys, lambda: train("--out", str(out), "--tokenizer", str(given)))
    assert "--tokenizer " + str(given) + " has 280 ids but --vocab-size is 300" in message
    assert not out.exists()
    assert cli.main(["--data", str(corpus), "--cache-dir", str(tmp_path / "cache"),
                     *[arg for arg in TINY_ARGS if arg not in ("--vocab-size", "300")],
                     "--max-steps", "2", "--out", str(out), "--tokenizer", str(given)]) == 0


def test_resume_refuses_flags_that_contradict_the_saved_run(train, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("--out", str(out)) == 0
    saved = sorted((out / "checkpoints").iterdir())
    for flags, words in ((["--d-model", "64"], "--d-model 64 (the run has 32)"),
                         (["--vocab-size", "280"], "--vocab-size 280 (the run has 300)"),
                         (["--init-from", str(out)], "the run started from a new model"),
                         (["--qk-norm"], "--qk-norm (the run has qk_norm=False)")):
        message = error_of(capsys, lambda flags=flags: train(
            "--out", str(out), "--resume", *flags, steps=("--max-steps", "6")))
        assert words in message
    assert sorted((out / "checkpoints").iterdir()) == saved
    # the same flags again are what --resume expects: the run continues
    assert train("--out", str(out), "--resume", steps=("--max-steps", "6")) == 0
    meta = json.loads((ckpt.resolve_checkpoint(out) / "meta.json").read_text())
    assert meta["step"] == 6 and "init_from" not in meta


def test_init_std_starts_a_new_model_from_that_draw_and_is_kept_on_resume(train, tmp_path,
                                                                         capsys, monkeypatch):
    from transformer_lib.model.transformer import Transformer

    stds = []
    original = Transformer.init_weights

    def recording(self, std=0.02):
        stds.append(std)
        return original(self, std)

    monkeypatch.setattr(Transformer, "init_weights", recording)
    out = tmp_path / "run"
    assert train("--out", str(out), "--init-std", "0.01") == 0
    assert stds[-1] == 0.01
    meta = json.loads((ckpt.resolve_checkpoint(out) / "meta.json").read_text())
    assert meta["init_std"] == 0.01
    message = error_of(capsys, lambda: train("--out", str(out), "--resume", "--init-std", "0.02",
                                             steps=("--max-steps", "6")))
    assert "--init-std 0.02 (the run started with 0.01)" in message
    assert train("--out", str(out), "--resume", "--init-std", "0.01",
                 steps=("--max-steps", "6")) == 0
    assert json.loads((ckpt.resolve_checkpoint(out) / "meta.json").read_text())["init_std"] == 0.01
    tuned = ["--out", str(tmp_path / "tuned"), "--init-from", str(out), "--init-std", "0.01"]
    assert "--init-std sets how a new model starts" in error_of(capsys, lambda: train(*tuned))
    with pytest.raises(SystemExit):  # argparse: exit status 2
        train("--out", str(tmp_path / "bad"), "--init-std", "0")
    assert "must be a positive number" in capsys.readouterr().err


def test_resume_keeps_the_recorded_start_of_a_fine_tuning_run(train, tmp_path):
    assert train("--out", str(tmp_path / "base")) == 0
    tuned = ["--out", str(tmp_path / "tuned"), "--init-from", str(tmp_path / "base")]
    assert train(*tuned) == 0
    respelled = ["--out", str(tmp_path / "tuned"), "--init-from", str(tmp_path / "." / "base")]
    assert train(*respelled, "--resume", steps=("--max-steps", "6")) == 0  # the same folder
    meta = json.loads((ckpt.resolve_checkpoint(tmp_path / "tuned") / "meta.json").read_text())
    assert meta["step"] == 6 and meta["init_from"] == str(tmp_path / "base")


def test_a_new_run_starts_a_fresh_log(tmp_path):
    (tmp_path / LOG).write_text('{"kind": "train", "step": 29, "loss": 9.0}\n')
    make_trainer(tmp_path, max_steps=4, log_every=1).fit()
    steps = [json.loads(line)["step"] for line in (tmp_path / LOG).read_text().splitlines()]
    assert steps[0] == 1 and 29 not in steps


def test_a_fresh_trainer_does_not_overwrite_a_run_it_did_not_resume(tmp_path):
    make_trainer(tmp_path, max_steps=4).fit()
    saved = ckpt.resolve_checkpoint(tmp_path)
    weights = (saved / ckpt.WEIGHTS).read_bytes()
    with pytest.raises(ValueError, match="already holds a run: call resume"):
        make_trainer(tmp_path, max_steps=4).fit()
    assert (saved / ckpt.WEIGHTS).read_bytes() == weights
    again = make_trainer(tmp_path, max_steps=6)
    again.resume(tmp_path)
    again.fit()
    assert ckpt.resolve_checkpoint(tmp_path).name == "step_00000006"


def test_ctrl_c_keeps_the_checkpoints_and_says_how_to_continue(train, tmp_path, capsys,
                                                              monkeypatch):
    original = Trainer._train_step

    def step(self, lr):
        if self.step == 3:
            raise KeyboardInterrupt
        return original(self, lr)

    monkeypatch.setattr(Trainer, "_train_step", step)
    out = tmp_path / "run"
    assert train("--out", str(out), "--save-every", "2") == 130
    assert "continue with --resume" in capsys.readouterr().err
    assert ckpt.resolve_checkpoint(out).name == "step_00000002"
    monkeypatch.setattr(Trainer, "_train_step", original)
    assert train("--out", str(out), "--resume") == 0
    assert torch.isfinite(torch.tensor(json.loads(
        (ckpt.resolve_checkpoint(out) / "meta.json").read_text())["history"][-1]["val_loss"]))
