"""The book's helpers: exercise checks, the book's data, and the stored model it studies."""

import os
from pathlib import Path

import pytest

from transformer_lib import book
from transformer_lib.book import check

needs_real_data = pytest.mark.skipif(
    not os.environ.get("TINYSTORIES_PATH"),
    reason="TINYSTORIES_PATH is unset: no local copy of the book's extract")


@pytest.mark.parametrize("placeholder", [..., None])
def test_check_says_not_attempted_for_a_placeholder(placeholder, capsys):
    def never_called(answer):
        raise AssertionError("a placeholder must not reach the test")

    check("exercise 3", placeholder, never_called, "a hint")
    assert capsys.readouterr().out == "exercise 3: not attempted yet\n"


def test_check_prints_correct_or_the_hint(capsys):
    check("exercise 1", 4, lambda answer: answer % 2 == 0, "think about parity")
    check("exercise 2", 3, lambda answer: answer % 2 == 0, "think about parity")
    assert capsys.readouterr().out.splitlines() == [
        "exercise 1: correct", "exercise 2: not yet - hint: think about parity"]


def test_check_counts_an_answer_that_breaks_the_test_as_wrong(capsys):
    check("exercise 4", "a string", lambda answer: answer.shape == (2, 3), "look at the shape")
    assert capsys.readouterr().out == "exercise 4: not yet - hint: look at the shape\n"


def test_stored_model_is_the_books_grouped_query_model():
    stored = book.stored_model()
    config = stored.model.config
    assert not stored.model.training
    assert config.num_kv_heads < config.num_heads  # grouped-query attention, as Llama
    assert config.vocab_size == stored.tokenizer.vocab_size == book.BOOK_VOCAB_SIZE
    command = stored.meta["recipe"]["command"].split()
    options = command[command.index("--max-steps"):]  # flag, value, flag, value, ...
    flags = dict(zip(options[::2], options[1::2], strict=True))
    # the recorded command is the run that made the weights: its steps, batch and schedule
    trained = stored.meta["train_config"]
    assert stored.meta["step"] == trained["max_steps"] == int(flags["--max-steps"])
    # spelled out, since the command's defaults for a new model have moved on since
    assert trained["batch_size"] == int(flags["--batch-size"])
    assert trained["schedule"] == flags["--schedule"]
    text = "Once upon a time, there was a little cat."
    assert stored.tokenizer.decode(stored.tokenizer.encode(text)) == text


@needs_real_data
def test_stored_model_meta_matches_the_extract_and_its_measured_bits_per_byte():
    from transformer_lib.data import book_stories, stories_fingerprint
    from transformer_lib.training.trainer import evaluate_tokens, token_byte_lengths

    stored = book.stored_model()
    for split in ("train", "validation"):
        assert stored.meta["data"][f"{split}_sha256"] == stories_fingerprint(book_stories(split))
    validation = book.book_tokens("validation", stored.tokenizer)
    result = evaluate_tokens(stored.model, validation.tokens,
                             token_byte_lengths(stored.tokenizer),
                             stored.meta["train_config"]["seq_len"])
    assert result["bytes"] == stored.meta["validation"]["bytes"] == validation.n_bytes
    # Another CPU rounds the float32 sums differently in the last bits only.
    assert result["bits_per_byte"] == pytest.approx(
        stored.meta["validation"]["bits_per_byte"], abs=1e-4)


def test_function_answer_tells_a_placeholder_from_an_attempt():
    from transformer_lib.book import function_answer

    def placeholder(x):
        ...

    def broken(x):
        raise ValueError("wrong shape")

    def answer(x):
        return x + 1

    assert function_answer(placeholder, 1) is None
    assert function_answer(..., 1) is None
    assert function_answer(broken, 1) is broken  # attempted: the check says "not yet"
    assert function_answer(answer, 1) is answer


def test_the_stored_decoding_bench_is_consistent_and_says_where_it_ran():
    """book_config/make_decoding_bench.py's output, which chapter 9 shows."""
    from transformer_lib.book import stored_decoding_bench

    bench = stored_decoding_bench()
    assert {"cpu", "torch", "date", "commit", "runc_build", "command"} <= set(bench["meta"])
    assert len(bench["runs"]) == 2
    for run in bench["runs"].values():
        rates = run["tokens_per_s"]
        assert set(rates) == {"eager", "compiled", "run.c"} and min(rates.values()) > 0
        assert run["threads"] == 1 and run["compiled_equals_eager"] is True
        for way in ("eager", "compiled"):
            assert abs(run["ratio_to_runc"][way] - rates[way] / rates["run.c"]) < 1e-9


def test_the_stored_weight_decay_sweep_is_paired_and_says_where_it_ran():
    """book_config/make_weight_decay_sweep.py's output, which chapter 7 draws."""
    from transformer_lib.book import stored_weight_decay_sweep

    sweep = stored_weight_decay_sweep()
    assert {"command", "cpu", "torch", "date", "made_by"} <= set(sweep["meta"])
    assert "--seed 0" in sweep["meta"]["command"]  # one seed for all: a paired comparison
    runs = sweep["runs"]
    assert [run["weight_decay"] for run in runs] == sorted(run["weight_decay"] for run in runs)
    assert len(runs) >= 3 and len({run["steps"] for run in runs}) == 1
    for run in runs:
        assert 0.5 < run["val_bpb"] < 3 and run["late_train_loss"] > 0
        assert abs(run["val_loss"] / run["val_bpb"] - runs[0]["val_loss"] / runs[0]["val_bpb"]) < 1e-6


def test_answer_leak_search_finds_whole_numbers_but_not_times_of_day(monkeypatch):
    import answer_leaks

    monkeypatch.setattr(answer_leaks, "chapter_text",
                        lambda stem: "log 10:13:21 start\nanswer: 1,152 and 62.83 tokens\n")
    assert answer_leaks.leaks("any", [21]) == []  # inside a time of day
    assert answer_leaks.leaks("any", [1152, 62.8317]) == ["1,152", "62.83"]
    assert answer_leaks.leaks("any", [13, 152]) == []


def test_the_stored_value_option_runs_are_equal_steps_and_differ_only_in_the_options():
    """book_config/make_value_option_runs.py's output, which chapter 12 draws and which chose
    the training command's value options."""
    from transformer_lib.book import stored_value_option_runs

    stored = stored_value_option_runs()
    assert {"command", "cpu", "torch", "threads", "date", "made_by"} <= set(stored["meta"])
    assert "--max-steps 1300 --precision fp32" in stored["meta"]["command"]
    for name, on in (("plain", False), ("values", True)):
        mine = [run for run in stored["runs"] if run["name"] == name]
        assert sorted(run["seed"] for run in mine) == [0, 1, 2]
        assert all(run["value_embeddings"] is on and run["value_residual"] is on for run in mine)
    for run in stored["runs"]:
        assert run["steps"] == 1300 and 0.5 < run["val_bpb"] < 3
        steps = [e["step"] for e in run["evals"]]
        assert steps == sorted(steps) and steps[-1] < run["steps"]


def test_the_stored_vocabulary_runs_are_at_equal_time_and_differ_only_in_the_vocabulary(
        monkeypatch):
    """book_config/make_vocabulary_runs.py's output, which chapter 12 draws and which backs the
    book's 2,048 ids."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "book_config"))
    import make_vocabulary_runs as script

    from transformer_lib.book import stored_vocabulary_runs
    from transformer_lib.model import ModelConfig, Transformer

    stored = stored_vocabulary_runs()
    assert {"command", "cpu", "torch", "threads", "date", "made_by"} <= set(stored["meta"])
    assert "--precision fp32" in stored["meta"]["command"]
    by_vocab = {}
    for run in stored["runs"]:
        by_vocab.setdefault(run["vocab_size"], []).append(run)
        # equal time: the 2,048-id model's steps, scaled by the measured step-time ratio
        assert run["steps"] == script.STEPS[run["vocab_size"]]
        assert abs(run["steps"] * script.STEP_TIME_RATIO[run["vocab_size"]] - 1300) < 1
        shape = ModelConfig.from_preset("tinystories-cpu", vocab_size=run["vocab_size"])
        assert run["parameters"] == Transformer(shape).num_parameters()
        assert 0.5 < run["val_bpb"] < 3 and 2 < run["bytes_per_token"] < 6
        steps = [e["step"] for e in run["evals"]]
        assert steps == sorted(steps) and steps[-1] < run["steps"]
    assert sorted(by_vocab) == sorted(script.STEP_TIME_RATIO)
    assert all(sorted(r["seed"] for r in runs) == [0, 1, 2] for runs in by_vocab.values())
    # more ids, more text in each token
    bytes_per_token = [by_vocab[v][0]["bytes_per_token"] for v in sorted(by_vocab)]
    assert bytes_per_token == sorted(bytes_per_token)


def test_the_stored_five_minute_runs_are_equal_time_and_seeded():
    """book_config/make_five_minute_runs.py's output, which chapter 12 draws and which chose the
    training command's optimizer."""
    from transformer_lib.book import stored_five_minute_runs

    stored = stored_five_minute_runs()
    assert {"command", "cpu", "torch", "threads", "date", "made_by"} <= set(stored["meta"])
    assert "--max-minutes 5" in stored["meta"]["command"]
    runs = stored["runs"]
    for name in ("adamw", "muon"):
        mine = [run for run in runs if run["name"] == name]
        assert len({run["seed"] for run in mine}) == len(mine) >= 2
        assert all(run["optimizer"] == name for run in mine)
    for run in runs:
        assert 295 < run["train_seconds"] < 310  # the five minutes, not a step budget
        steps = [e["step"] for e in run["evals"]]
        assert steps == sorted(steps) and steps[-1] < run["steps"]
        assert 0.5 < run["val_bpb"] < 3
    # the runs differ only in optimizer and seed
    assert len({(r["lr"], r["weight_decay"], r["precision"]) for r in runs}) == 1
