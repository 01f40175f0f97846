"""tlib-train --init-from (and --lora-rank): fine-tuning from a checkpoint with the same trainer.

The "kill" is in-process: the training step raises once the run has saved a middle checkpoint,
so the process loses everything after it exactly as a SIGKILL between two saves would
(tests/test_trainer.py kills real processes for the plain run).
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.test_trainer import TINY_ARGS, write_corpus
from transformer_lib.cli import train as cli
from transformer_lib.data.tokenizer import train_tokenizer
from transformer_lib.model.lora import lora_layers
from transformer_lib.training import checkpoint as ckpt
from transformer_lib.training.trainer import Trainer


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    corpus = write_corpus(root)
    common = ["--data", str(corpus), "--cache-dir", str(root / "cache"), *TINY_ARGS]
    assert cli.main([*common, "--max-steps", "6", "--out", str(root / "base")]) == 0
    return root, common


def weights(run) -> dict:
    return load_file(ckpt.resolve_checkpoint(run) / ckpt.WEIGHTS)


class Killed(Exception):
    pass


def run_until_killed(argv, monkeypatch, kill_at: int) -> None:
    original = Trainer._train_step

    def step(self, lr):
        if self.step == kill_at:
            raise Killed
        return original(self, lr)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_step", step)
        with pytest.raises(Killed):
            cli.main(argv)


@pytest.mark.parametrize("lora", [[], ["--lora-rank", "2", "--lora-targets", "q,v,down"]],
                         ids=["full", "lora"])
def test_fine_tune_resumes_exactly_after_a_kill(base_run, tmp_path, monkeypatch, lora):
    root, common = base_run
    args = [*common, "--init-from", str(root / "base"), "--max-steps", "12", "--save-every",
            "4", *lora]
    assert cli.main([*args, "--out", str(tmp_path / "straight")]) == 0
    run_until_killed([*args, "--out", str(tmp_path / "killed")], monkeypatch, kill_at=9)
    assert ckpt.resolve_checkpoint(tmp_path / "killed").name == "step_00000008"
    assert cli.main([*args, "--out", str(tmp_path / "killed"), "--resume"]) == 0
    straight, resumed, base = (weights(tmp_path / "straight"), weights(tmp_path / "killed"),
                               weights(root / "base"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], atol=1e-6, rtol=0, msg=name)
    model, meta = ckpt.load_model_from_checkpoint(tmp_path / "straight")
    assert meta["init_from"] == str(root / "base") and meta["step"] == 12
    changed = {name for name in base if not torch.equal(base[name], straight[name])}
    if lora:
        adapters = {name for name in straight if ".lora_" in name}
        assert len(adapters) == 2 * 3 and set(lora_layers(model))  # 3 targets x 1 layer
        assert changed == set(), "LoRA must leave the base weights frozen"
        assert any(not torch.all(straight[n] == 0) for n in adapters if "lora_B" in n)
    else:
        assert changed == set(base), "full fine-tuning trains every weight"


def test_refuses_a_shape_or_tokenizer_mismatch(base_run, tmp_path, capsys):
    root, common = base_run
    args = [*common, "--init-from", str(root / "base"), "--max-steps", "2"]
    with pytest.raises(SystemExit, match="shape mismatch.*--d-model 48"):
        cli.main([*args, "--d-model", "48",
                  "--out", str(tmp_path / "a")])
    texts = [f"Another story {i}, with other words: zebra {i * 7} quantum." for i in range(300)]
    same_size = train_tokenizer(texts, 300)
    same_size.save(tmp_path / "other.json")
    with pytest.raises(SystemExit, match="tokenizer mismatch"):
        cli.main([*args, "--tokenizer", str(tmp_path / "other.json"), "--out",
                  str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()  # refused before the run folder: nothing to clear
    train_tokenizer(texts, 280).save(tmp_path / "smaller.json")
    with pytest.raises(SystemExit, match="has 280 ids but --vocab-size is 300"):
        cli.main([*args, "--tokenizer", str(tmp_path / "smaller.json"), "--out",
                  str(tmp_path / "c")])
    no_vocab_size = [arg for arg in args if arg not in ("--vocab-size", "300")]
    with pytest.raises(SystemExit, match="tokenizer mismatch.*280 ids"):
        cli.main([*no_vocab_size, "--tokenizer", str(tmp_path / "smaller.json"), "--out",
                  str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="--vocab-size 280 \\(the model has 300\\)"):
        cli.main([*no_vocab_size, "--vocab-size", "280", "--out", str(tmp_path / "c")])
    assert cli.main([*args, "--out", str(tmp_path / "c")]) == 0  # the refusals left no trace
    with pytest.raises(SystemExit, match="give --init-from"):
        cli.main([*common, "--lora-rank", "2", "--max-steps", "2", "--out", str(tmp_path / "d")])
    with pytest.raises(SystemExit, match="targets"):
        cli.main([*args, "--lora-rank", "2", "--lora-targets", "q,lm_head", "--out",
                  str(tmp_path / "e")])


def test_fine_tunes_a_llama2c_file_with_its_own_tokenizer(tmp_path, monkeypatch):
    """llama2.c's stories260K and tok512.bin: the run folder keeps the sentencepiece vocabulary
    (as JSON), so the run resumes after a kill and its checkpoint reloads with that tokenizer."""
    from transformer_lib.data.llama2c import Llama2cTokenizer, llama2c_file

    try:
        model_file, tokenizer_file = llama2c_file("stories260K"), llama2c_file("tok512")
    except (FileNotFoundError, ConnectionError) as err:
        pytest.skip(f"llama2.c's files are not available offline: {err}")
    corpus = write_corpus(tmp_path)
    args = ["--data", str(corpus), "--cache-dir", str(tmp_path / "cache"), "--init-from",
            str(model_file), "--tokenizer", str(tokenizer_file), "--seq-len", "32",
            "--batch-size", "2", "--warmup-steps", "1", "--eval-windows", "2", "--eval-every",
            "10", "--no-progress", "--threads", "1", "--precision", "fp32", "--max-steps", "4",
            "--save-every", "2", "--lora-rank", "2"]
    assert cli.main([*args, "--out", str(tmp_path / "straight")]) == 0
    run_until_killed([*args, "--out", str(tmp_path / "killed")], monkeypatch, kill_at=3)
    assert cli.main([*args, "--out", str(tmp_path / "killed"), "--resume"]) == 0
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], atol=1e-6, rtol=0, msg=name)
    model, _ = ckpt.load_model_from_checkpoint(tmp_path / "straight")
    from transformer_lib.data.tokenizer import load_tokenizer

    saved = load_tokenizer(ckpt.resolve_checkpoint(tmp_path / "straight") / ckpt.TOKENIZER)
    original = Llama2cTokenizer.load(tokenizer_file)
    assert isinstance(saved, Llama2cTokenizer) and saved.content_hash == original.content_hash
    assert model.config.vocab_size == saved.vocab_size == 512
    # Bits per byte count the text's bytes, not sentencepiece's dummy space before each story:
    # the command's evaluation checks its byte count against the text's, and the run's own
    # final figure is the same one.
    from transformer_lib.cli.evaluate import evaluate_checkpoint

    scored = evaluate_checkpoint(str(tmp_path / "straight"), str(corpus), progress=False,
                                 cache_dir=str(tmp_path / "eval-cache"))
    final = json.loads((ckpt.resolve_checkpoint(tmp_path / "straight") / "meta.json")
                       .read_text())["history"][-1]
    assert final["kind"] == "eval"
    assert final["val_bpb"] == pytest.approx(scored["bits_per_byte"], rel=1e-5)


def test_speed_run_options_reach_the_model_and_trainer(tmp_path):
    """--optimizer/--schedule/--decay-fraction/--z-loss reach TrainConfig and
    --qk-norm/--zero-init-output the model: the options of chapter 12 are the command line's too."""
    from tests.test_trainer import write_corpus as corpus_of

    corpus = corpus_of(tmp_path)
    out = tmp_path / "run"
    assert cli.main(["--data", str(corpus), "--cache-dir", str(tmp_path / "cache"), *TINY_ARGS,
                     "--max-steps", "3", "--optimizer", "muon", "--schedule", "wsd",
                     "--decay-fraction", "0.4", "--z-loss", "1e-4", "--qk-norm",
                     "--zero-init-output",
                     "--out", str(out)]) == 0
    model, meta = ckpt.load_model_from_checkpoint(out)
    assert model.config.qk_norm and model.config.zero_init_output
    assert meta["train_config"]["optimizer"] == "muon"
    assert meta["train_config"]["schedule"] == "wsd" and meta["train_config"]["z_loss"] == 1e-4
    assert meta["train_config"]["decay_fraction"] == 0.4
    with pytest.raises(SystemExit, match="--zero-init-output sets how a new model starts"):
        cli.main(["--data", str(corpus), "--cache-dir", str(tmp_path / "cache"), *TINY_ARGS,
                  "--init-from", str(out), "--zero-init-output", "--max-steps", "2",
                  "--out", str(tmp_path / "b")])


def test_a_value_option_the_model_lacks_is_a_shape_mismatch(base_run, tmp_path):
    root, common = base_run
    with pytest.raises(SystemExit, match="shape mismatch.*--value-residual"):
        cli.main([*common, "--init-from", str(root / "base"), "--value-residual",
                  "--max-steps", "2", "--out", str(tmp_path / "a")])
    # saying what the model already is, is no mismatch
    assert cli.main([*common, "--init-from", str(root / "base"), "--no-value-embeddings",
                     "--max-steps", "2", "--out", str(tmp_path / "b")]) == 0


def test_qk_norm_on_a_model_without_it_is_a_shape_mismatch(base_run, tmp_path):
    root, common = base_run
    with pytest.raises(SystemExit, match="shape mismatch.*--qk-norm"):
        cli.main([*common, "--init-from", str(root / "base"), "--qk-norm", "--max-steps", "2",
                  "--out", str(tmp_path / "a")])
