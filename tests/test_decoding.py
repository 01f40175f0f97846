"""Beam search, the repetition penalty and min-p, against transformers' ``generate`` and its
logits processors, on the stored model exported with ``to_hf`` (weights copied, not shared)."""

import os
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip(
    "transformers", reason="transformers is a test dependency: pip install -r requirements-test.txt"
)

from transformers.generation.logits_process import (  # noqa: E402
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from transformer_lib import ModelConfig, Transformer, book  # noqa: E402
from transformer_lib.interop import to_hf  # noqa: E402
from transformer_lib.model.generation import (  # noqa: E402
    apply_repetition_penalty,
    filter_logits,
    generate,
    seen_tokens,
)

# The third prompt ends a story, so some beams finish with end-of-text early.
PROMPTS = ["Once upon a time", "Tom and his dog went to the", "The end. Lily smiled and said"]


@pytest.fixture(scope="module")
def stored():
    model_and_tokenizer = book.stored_model()
    hf = to_hf(model_and_tokenizer.model, model_and_tokenizer.tokenizer)
    return model_and_tokenizer.model, hf, model_and_tokenizer.tokenizer


def _prompt(tokenizer, text):
    return torch.tensor([[tokenizer.eot_id] + tokenizer.encode(text)])


@pytest.mark.parametrize("settings", [
    dict(num_beams=1),
    dict(num_beams=1, repetition_penalty=1.2),
    dict(num_beams=4),
    dict(num_beams=4, length_penalty=0.5),
    dict(num_beams=4, length_penalty=0.0),
    dict(num_beams=4, length_penalty=2.0),
    dict(num_beams=4, repetition_penalty=1.2),
], ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_greedy_and_beam_search_give_transformers_tokens(stored, settings):
    model, hf, tokenizer = stored
    lengths = []
    for text in PROMPTS:
        prompt = _prompt(tokenizer, text)
        ours = generate(model, prompt, 100, temperature=0, eos_id=tokenizer.eot_id, **settings)
        with torch.no_grad():
            theirs = hf.generate(prompt, max_new_tokens=100, do_sample=False, **settings)
        assert torch.equal(ours, theirs), text
        lengths.append(ours.shape[1] - prompt.shape[1])
    if settings == dict(num_beams=4, length_penalty=0.0):  # no bonus for length: short wins
        assert min(lengths) < 100  # a beam that ended with end-of-text won: eos handling counts


@pytest.mark.parametrize("length_penalty", [1.0, 0.0, -1.0])
def test_beam_search_with_frequent_eos_in_a_batch_matches_transformers(length_penalty):
    """A random model, three prompts, and as eos the token greedy decoding produces most often,
    so that beams end at varied steps and rows finish at different lengths (padding)."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=48, d_model=32, num_layers=2, num_heads=4,
                                    num_kv_heads=2, max_seq_len=64)).eval()
    model.init_weights(std=0.4)
    prompts = torch.randint(0, 48, (3, 5))
    eos = int(generate(model, prompts, 30, temperature=0)[:, 5:].flatten().mode().values)
    hf = to_hf(model)
    ours = generate(model, prompts, 30, temperature=0, eos_id=eos, num_beams=3,
                    length_penalty=length_penalty)
    with torch.no_grad():
        theirs = hf.generate(prompts, max_new_tokens=30, do_sample=False, num_beams=3,
                             length_penalty=length_penalty, eos_token_id=eos, pad_token_id=eos)
    assert torch.equal(ours, theirs)
    assert (ours[:, 5:] == eos).any()  # some row ended with eos


def test_beam_search_without_cache_equals_with_cache(stored):
    model, _, tokenizer = stored
    prompt = _prompt(tokenizer, PROMPTS[1])
    cached = generate(model, prompt, 30, num_beams=3, eos_id=tokenizer.eot_id)
    recomputed = generate(model, prompt, 30, num_beams=3, eos_id=tokenizer.eot_id,
                          use_cache=False)
    assert torch.equal(cached, recomputed)


def test_one_beam_is_greedy(stored):
    model, _, tokenizer = stored
    prompt = _prompt(tokenizer, PROMPTS[0])
    assert torch.equal(generate(model, prompt, 40, temperature=0),
                       generate(model, prompt, 40, num_beams=1, temperature=0))


def test_repetition_penalty_gives_transformers_logits(stored):
    """Our model and penalty against transformers' model and RepetitionPenaltyLogitsProcessor,
    at every position of a story (each position's seen set is the ids before it)."""
    model, hf, tokenizer = stored
    ids = _prompt(tokenizer, "Lily had a red ball. Lily liked the ball. The ball was red and "
                             "Lily threw the ball to Tom.")
    processor = RepetitionPenaltyLogitsProcessor(penalty=1.2)
    with torch.no_grad():
        ours_logits = model(ids)[0]  # (T, V)
        hf_logits = hf(ids).logits[0]
    worst = 0.0
    for t in range(1, ids.shape[1]):
        prefix = ids[:, : t + 1]
        ours = apply_repetition_penalty(ours_logits[t:t + 1], seen_tokens(prefix, 2048), 1.2)
        theirs = processor(prefix, hf_logits[t:t + 1].clone())
        worst = max(worst, (ours - theirs).abs().max().item())
        assert not torch.equal(ours, ours_logits[t:t + 1])  # the penalty did something
    assert worst < 1e-6, worst


@pytest.mark.parametrize("settings", [
    dict(temperature=1.0, min_p=0.1),
    dict(temperature=0.7, min_p=0.05),
    dict(temperature=1.3, min_p=0.2, top_k=40),
    dict(temperature=1.0, min_p=0.1, top_p=0.9),
    dict(temperature=1.0, min_p=1.0),
    dict(temperature=1.0, min_p=0.0),
], ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_min_p_keeps_what_transformers_keeps(stored, settings):
    model, _, tokenizer = stored
    ids = _prompt(tokenizer, "Once upon a time there was a little dog. The dog liked to")
    with torch.no_grad():
        logits = model(ids)[0]  # (T, V): many positions, peaked and flat ones
    chain = [TemperatureLogitsWarper(settings["temperature"])]
    if "top_k" in settings:
        chain.append(TopKLogitsWarper(settings["top_k"]))
    if "top_p" in settings:
        chain.append(TopPLogitsWarper(settings["top_p"]))
    chain.append(MinPLogitsWarper(settings["min_p"]))
    theirs = LogitsProcessorList(chain)(ids, logits.clone())
    ours = filter_logits(logits, **settings)
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    kept = torch.isfinite(ours).sum(-1)
    if settings["min_p"] == 1.0:
        assert (kept == 1).all()
    elif settings["min_p"] > 0:
        assert (kept > 1).any() and (kept < 2048).all()


@pytest.mark.parametrize("kwargs, words", [
    (dict(num_beams=0), "num_beams=0"),
    (dict(num_beams=2, top_k=5), "beam search"),
    (dict(num_beams=2, temperature=0.7), "beam search"),
    (dict(length_penalty=0.5), "length_penalty"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(min_p=1.5), "min_p=1.5"),
])
def test_bad_decoding_settings_are_refused(kwargs, words):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset("tiny")).eval()
    with pytest.raises(ValueError, match=words):
        generate(model, torch.tensor([1, 2, 3]), 5, **kwargs)


def test_repetition_penalty_lowers_repeats_when_sampling(stored):
    model, _, tokenizer = stored
    prompt = _prompt(tokenizer, PROMPTS[0]).repeat(8, 1)
    runs = {}
    for penalty in (1.0, 1.5):
        out = generate(model, prompt, 60, temperature=0.8, repetition_penalty=penalty,
                       generator=torch.Generator().manual_seed(0))[:, prompt.shape[1]:]
        runs[penalty] = sum(len(set(row.tolist())) for row in out)  # distinct tokens per row
    assert runs[1.5] > runs[1.0]


def test_generate_command_line_runs_beam_search_and_the_penalties(stored, capsys):
    from transformer_lib.book import STORED_MODEL_DIR
    from transformer_lib.cli.generate import main

    model, _, tokenizer = stored
    prompt = "Tom and his dog went to the"
    assert main(["--checkpoint", str(STORED_MODEL_DIR), "--prompt", prompt, "--device", "cpu",
                 "--max-new-tokens", "40", "--num-beams", "4", "--length-penalty", "0.8",
                 "--repetition-penalty", "1.1"]) == 0
    expected = generate(model, _prompt(tokenizer, prompt), 40, num_beams=4, length_penalty=0.8,
                        repetition_penalty=1.1, eos_id=tokenizer.eot_id)[0, 1:].tolist()
    if tokenizer.eot_id in expected:
        expected = expected[:expected.index(tokenizer.eot_id)]
    assert capsys.readouterr().out.strip() == tokenizer.decode(expected).strip()
    assert main(["--checkpoint", str(STORED_MODEL_DIR), "--prompt", prompt, "--device", "cpu",
                 "--max-new-tokens", "20", "--min-p", "0.1", "--temperature", "0.9"]) == 0
    assert capsys.readouterr().out.startswith(prompt)
    assert main(["--checkpoint", str(STORED_MODEL_DIR), "--num-beams", "2", "--top-k", "5"]) == 2
    assert "beam search" in capsys.readouterr().err


@pytest.mark.skipif(not (Path(os.environ.get("LLAMA2C_PATH", "/nonexistent")) /
                         "stories260K.bin").is_file(),
                    reason="set LLAMA2C_PATH to a directory holding stories260K.bin and tok512.bin")
def test_bench_llama2c_times_eager_and_runs_a_runc_binary(tmp_path, capsys):
    """The --llama2c mode, without compiling (slow): a stand-in run.c that checks its arguments
    and reports a fixed speed, so the ratio is known."""
    from transformer_lib.cli.bench import main

    directory = Path(os.environ["LLAMA2C_PATH"])
    fake = tmp_path / "run"
    fake.write_text('#!/bin/sh\n[ "$OMP_NUM_THREADS" = 1 ] && [ "$2" = "-z" ] && [ "$4" = "-t" ] '
                    '&& [ "$5" = 0 ] && [ "$7" = 40 ] || exit 3\n'
                    'echo "achieved tok/s: 1000.0" >&2\n')
    fake.chmod(0o755)
    from transformer_lib.cli.bench_llama2c import run_llama2c

    results = run_llama2c(str(directory / "stories260K.bin"), str(directory / "tok512.bin"),
                          str(fake), steps=40, repeats=1, compiled=False)
    assert results["tokens_per_s"]["run.c"] == 1000.0 and results["threads"] == 1
    assert results["ratio_to_runc"]["eager"] == results["tokens_per_s"]["eager"] / 1000.0
    fake.write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(RuntimeError, match="achieved tok/s"):
        run_llama2c(str(directory / "stories260K.bin"), None, str(fake), steps=40, repeats=1,
                    compiled=False)
    with pytest.raises(SystemExit):
        main(["--runc", str(fake)])  # --runc without --llama2c
    assert "go with --llama2c" in capsys.readouterr().err
