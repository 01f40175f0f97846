"""Bad input to the command lines: one clear `error: ...` line (no traceback), found before the
expensive work where it can be, and nothing written where it must not be."""

import json
import os
import shutil
from pathlib import Path

import datasets
import pytest

from transformer_lib.book import STORED_MODEL_DIR
from transformer_lib.cli import ablate, bench, book, data, demo, evaluate, generate, tokenizer

STORY_TEXT = ("Once upon a time, there was a cat named Tom.\nTom liked to play.\n<|endoftext|>\n"
              "Lily saw a big red ball. She was happy.\n<|endoftext|>\n")
LLAMA2C_DIR = Path(os.environ.get("LLAMA2C_PATH", "/nonexistent"))
needs_llama2c = pytest.mark.skipif(
    not (LLAMA2C_DIR / "stories260K.bin").is_file(),
    reason="set LLAMA2C_PATH to a directory holding stories260K.bin and tokenizer.bin")


def refused(main, argv, capsys, *words, code=2) -> str:
    """Run a command that must fail with exit status ``code`` and a one-line error holding
    ``words``; whether it returns the status or raises SystemExit (argparse) is its own affair."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == code, (status, err)
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error: " in last, err
    for word in words:
        assert word in last, (word, last)
    return last


def never(*args, **kwargs):
    raise AssertionError("the expensive work started before the input was checked")


# ---- tlib-evaluate ---------------------------------------------------------------------------


def test_evaluate_says_the_hub_cannot_be_reached(capsys, monkeypatch):
    monkeypatch.delenv("TINYSTORIES_PATH", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # fail at once, not after 25 s
    refused(evaluate.main, ["--checkpoint", str(STORED_MODEL_DIR), "--device", "cpu"], capsys,
            "TINYSTORIES_PATH", "offline")


def test_evaluate_names_the_split_it_evaluated(tmp_path, capsys):
    text = tmp_path / "train-small.txt"
    text.write_text(STORY_TEXT, encoding="utf-8")
    assert evaluate.main(["--checkpoint", str(STORED_MODEL_DIR), "--data", str(text),
                          "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert " on train: " in said and "validation" not in said


def test_evaluate_says_an_empty_file_holds_no_text(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n<|endoftext|>\n\n", encoding="utf-8")
    refused(evaluate.main, ["--checkpoint", str(STORED_MODEL_DIR), "--data", str(empty),
                            "--device", "cpu"], capsys, str(empty), "holds no text")


def test_evaluate_says_a_file_is_not_utf8_without_quoting_it(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(STORY_TEXT.encode() * 200 + "Zoë".encode("latin-1") + b"\n")
    offset = len(STORY_TEXT.encode()) * 200 + 2
    last = refused(evaluate.main, ["--checkpoint", str(STORED_MODEL_DIR), "--data", str(bad),
                                   "--device", "cpu"], capsys,
                   f"{bad} is not UTF-8 text (invalid byte at offset {offset})")
    assert len(last) < 300 and "Tom" not in last


def test_evaluate_says_which_field_of_the_tokenizer_is_broken(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(STORED_MODEL_DIR, run)
    saved = json.loads((run / "tokenizer.json").read_text(encoding="utf-8"))
    for broken, words in (({k: v for k, v in saved.items() if k != "ranks"}, "no field 'ranks'"),
                          ({**saved, "ranks": 5}, "field 'ranks' must be a list"),
                          ({**saved, "special_tokens": []}, "'special_tokens' must be an object")):
        (run / "tokenizer.json").write_text(json.dumps(broken), encoding="utf-8")
        refused(evaluate.main, ["--checkpoint", str(run), "--device", "cpu"], capsys,
                "tokenizer.json", words)
        refused(generate.main, ["--checkpoint", str(run), "--device", "cpu"], capsys, words)


# ---- tlib-tokenizer --------------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "train.txt"
    path.write_text(STORY_TEXT * 3, encoding="utf-8")
    return path


@pytest.mark.parametrize("where", ["folder", "under-a-file"])
def test_tokenizer_checks_the_output_path_before_training(tmp_path, corpus, capsys, monkeypatch,
                                                          where):
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("mine", encoding="utf-8")
    out = tmp_path / ("folder" if where == "folder" else "afile/tok.json")
    monkeypatch.setattr(tokenizer, "load_stories", never)
    refused(tokenizer.main, ["train", "--input", str(corpus), "--vocab-size", "300",
                             "--out", str(out)], capsys, str(out))
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "mine"
    assert list((tmp_path / "folder").iterdir()) == []


def test_tokenizer_refuses_an_input_without_stories(tmp_path, capsys):
    empty = tmp_path / "train.txt"
    empty.write_text("", encoding="utf-8")
    refused(tokenizer.main, ["train", "--input", str(empty), "--vocab-size", "300",
                             "--out", str(tmp_path / "tok.json")], capsys, "holds no stories")
    assert not (tmp_path / "tok.json").exists()


def test_tokenizer_says_an_input_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "train.txt"
    bad.write_bytes(b"abc\xff\xfedef\n")
    refused(tokenizer.main, ["train", "--input", str(bad), "--vocab-size", "300",
                             "--out", str(tmp_path / "tok.json")], capsys,
            "is not UTF-8 text (invalid byte at offset 3)")


def test_tokenizer_warns_in_one_plain_line(tmp_path, corpus, capsys):
    out = tmp_path / "tok.json"
    assert tokenizer.main(["train", "--input", str(corpus), "--vocab-size", "60000",
                           "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "\nwarning: the corpus only supported " in err, err
    assert "UserWarning" not in err and ".py:" not in err and out.is_file()


# ---- tlib-demo -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["--device", "bogus"], "unknown device 'bogus'"),
    (["--seq-len", "0"], "--seq-len: 0 must be an integer >= 1"),
    (["--seq-len", "-5"], "--seq-len: -5 must be an integer >= 1"),
    (["--seq-len", "129"], "exceeds the context of preset 'tiny' (128 tokens)"),
    (["--new-tokens", "200"], "give at most 127"),
    (["--new-tokens", "100000"], "give at most 127"),
    (["--new-tokens", "-3"], "--new-tokens: -3 must be an integer >= 1"),
])
def test_demo_checks_its_arguments_before_building_the_model(argv, words, capsys, monkeypatch):
    monkeypatch.setattr(demo, "Transformer", never)
    refused(demo.main, ["--preset", "tiny", *argv], capsys, words)


# ---- tlib-bench ------------------------------------------------------------------------------

BENCH = ["--d-model", "32", "--num-layers", "1", "--num-heads", "2", "--vocab-size", "64",
         "--seq-len", "16", "--batch-size", "2", "--new-tokens", "4", "--repeats", "1",
         "--warmup", "0", "--generate-repeats", "1", "--matmul-size", "64"]


@pytest.mark.parametrize("argv, words", [
    (["--repeats", "0"], "--repeats: 0 must be"),
    (["--generate-repeats", "0"], "--generate-repeats: 0 must be"),
    (["--new-tokens", "0"], "--new-tokens: 0 must be"),
    (["--batch-size", "0"], "--batch-size: 0 must be"),
    (["--seq-len", "0"], "--seq-len: 0 must be"),
    (["--matmul-size", "0"], "--matmul-size: 0 must be"),
    (["--threads", "-1"], "--threads: -1 must be"),
    (["--warmup", "-1"], "--warmup: -1 must be an integer >= 0"),
    (["--num-heads", "5"], "not divisible by num_heads=5"),
    (["--vocab-size", "0"], "--vocab-size: 0 must be"),
    (["--prompt-len", "0"], "--prompt-len: 0 must be"),
    (["--device", "bogus"], "unknown device 'bogus'"),
])
def test_bench_checks_its_arguments_before_timing(argv, words, capsys, monkeypatch):
    monkeypatch.setattr(bench, "run", never)
    refused(bench.main, [*BENCH, *argv], capsys, words)


def test_bench_llama2c_names_a_missing_or_empty_file(tmp_path, capsys):
    refused(bench.main, ["--llama2c", str(tmp_path / "none.bin")], capsys, "no llama2.c file")
    (tmp_path / "empty.bin").write_bytes(b"")
    refused(bench.main, ["--llama2c", str(tmp_path / "empty.bin")], capsys, "truncated")


def test_bench_llama2c_checks_runc_before_compiling(tmp_path, capsys, monkeypatch):
    from transformer_lib.cli import bench_llama2c

    monkeypatch.setattr(bench_llama2c, "run_llama2c", never)
    refused(bench.main, ["--llama2c", "stories260K", "--runc", str(tmp_path / "run")], capsys,
            "--runc", "no such executable")


@needs_llama2c
def test_bench_llama2c_refuses_a_short_run_and_a_mismatched_tokenizer(capsys):
    model = str(LLAMA2C_DIR / "stories260K.bin")
    refused(bench.main, ["--llama2c", model, "--llama2c-steps", "3"], capsys,
            "--llama2c-steps 3", "give at least")
    refused(bench.main, ["--llama2c", model, "--tokenizer", str(LLAMA2C_DIR / "tokenizer.bin")],
            capsys, "32000 ids", "vocab_size 512", "disagree")


# ---- tlib-ablate -----------------------------------------------------------------------------


def results_file(path: Path, seeds: list[int]) -> Path:
    path.write_text(json.dumps({
        "command": "ablate", "torch": "2", "cpu": "x", "recipe": {"steps": 30, "seeds": seeds},
        "data": {"v": "abc"},
        "variants": {"baseline": {"runs": [{"seed": s, "val_bpb": 2.0} for s in seeds]}}}))
    return path


@pytest.fixture
def no_sweep(monkeypatch):
    monkeypatch.setattr(ablate, "run_ablations", never)


@pytest.mark.parametrize("argv, words", [
    (["--variants", "bogus"], "invalid choice: 'bogus'"),
    (["--eval-tokens", "0"], "--eval-tokens: 0 must be"),
    (["--eval-tokens", "-5"], "--eval-tokens: -5 must be"),
    (["--steps", "2"], "--steps must be >= 5"),
])
def test_ablate_checks_its_arguments_before_training(tmp_path, argv, words, capsys, no_sweep):
    out = tmp_path / "new" / "results.json"
    refused(ablate.main, ["--out", str(out), *argv], capsys, words)
    assert not (tmp_path / "new").exists()


def test_ablate_refuses_an_output_that_cannot_be_written_before_training(tmp_path, capsys,
                                                                         no_sweep):
    refused(ablate.main, ["--out", str(tmp_path)], capsys, "is a folder")
    (tmp_path / "afile").write_text("mine")
    refused(ablate.main, ["--out", str(tmp_path / "afile" / "r.json")], capsys, "is a file")
    assert (tmp_path / "afile").read_text() == "mine"


def test_ablate_merge_names_what_is_wrong_with_a_file(tmp_path, capsys):
    good = results_file(tmp_path / "good.json", [0])
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "list.json").write_text("[]")
    out = tmp_path / "new" / "merged.json"
    cases = [([tmp_path / "none.json"], "no such file"),
             ([tmp_path / "text.json"], "not JSON"),
             ([tmp_path / "empty.json"], "not a tlib-ablate results file"),
             ([tmp_path / "list.json"], "not an object")]
    for files, words in cases:
        refused(ablate.main, ["--out", str(out), "--merge", str(good), *map(str, files)],
                capsys, words)
    refused(ablate.main, ["--out", str(out), "--merge", str(good)], capsys, "at least two")
    twice = results_file(tmp_path / "again.json", [0])
    refused(ablate.main, ["--out", str(out), "--merge", str(good), str(twice)], capsys,
            "a seed appears in two files")
    assert not (tmp_path / "new").exists()
    results_file(tmp_path / "one.json", [1])
    ablate.main(["--out", str(out), "--merge", str(good), str(tmp_path / "one.json")])
    assert json.loads(out.read_text())["recipe"]["seeds"] == [0, 1]


# ---- tlib-data -------------------------------------------------------------------------------


def test_data_download_refuses_a_file_as_its_folder(tmp_path, capsys, fake_hub):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    refused(data.main, ["download", "--out", str(afile)], capsys, "is a file, not a folder")
    refused(data.main, ["download", "--out", str(afile / "sub")], capsys, "which is a file")
    assert afile.read_text() == "mine" and fake_hub == []


def test_data_held_out_creates_its_folder_and_refuses_a_folder_as_its_file(tmp_path, capsys,
                                                                          fake_hub):
    (tmp_path / "adir.txt").mkdir()
    refused(data.main, ["held-out", "--out", str(tmp_path / "adir.txt"), "--count", "2"],
            capsys, "is a folder; give a file name")
    assert fake_hub == []
    out = tmp_path / "new" / "deeper" / "held.txt"
    assert data.main(["held-out", "--out", str(out), "--count", "2"]) == 0
    assert out.read_text(encoding="utf-8").count("<|endoftext|>") == 2


# ---- tlib-book -------------------------------------------------------------------------------


@pytest.fixture
def small_book(tmp_path) -> Path:
    source = tmp_path / "notebooks"
    (source / "solutions").mkdir(parents=True)
    for name in ("00_start_here.py", "00_start_here.ipynb", "solutions/01_x.ipynb",
                 "jupytext.toml"):
        (source / name).write_text(f"the book's {name}\n", encoding="utf-8")
    return source


def test_book_refuses_a_file_as_the_folder(tmp_path, small_book, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    refused(book.main, ["copy", "--from", str(small_book), "--to", str(afile / "sub")], capsys,
            "which is a file, not a folder", code=1)
    refused(book.main, ["copy", "--from", str(small_book), "--to", str(afile)], capsys,
            "is a file, not a folder", "--to", code=1)
    assert afile.read_text() == "mine"


def test_book_never_writes_through_a_link(tmp_path, small_book, capsys):
    target = tmp_path / "work"
    book.copy_book(target, source=small_book)
    precious = tmp_path / "precious.txt"
    precious.write_text("precious", encoding="utf-8")
    (target / "00_start_here.py").unlink()
    (target / "00_start_here.py").symlink_to(precious)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(target / "solutions")
    (target / "solutions").symlink_to(elsewhere, target_is_directory=True)
    (target / "00_start_here.ipynb").unlink()
    (target / "00_start_here.ipynb").symlink_to(tmp_path / "dangling.ipynb")
    refused(book.main, ["copy", "--from", str(small_book), "--to", str(target)], capsys,
            "--force", code=1)
    assert not (tmp_path / "dangling.ipynb").exists()
    assert book.main(["copy", "--from", str(small_book), "--to", str(target), "--force"]) == 0
    assert precious.read_text(encoding="utf-8") == "precious"
    assert not (tmp_path / "dangling.ipynb").exists() and list(elsewhere.iterdir()) == []
    for name in ("00_start_here.py", "00_start_here.ipynb", "solutions/01_x.ipynb"):
        copied = target / name
        assert not copied.is_symlink() and not copied.parent.is_symlink(), name
        assert copied.read_text(encoding="utf-8") == f"the book's {name}\n"


# ---- tlib-generate ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["--num-samples", "0"], "--num-samples: 0 must be"),
    (["--num-samples", "-1"], "--num-samples: -1 must be"),
    (["--repetition-penalty", "inf"], "--repetition-penalty: inf must be a finite number"),
    (["--num-beams", "2", "--length-penalty", "nan"], "--length-penalty: nan must be a finite"),
])
def test_generate_refuses_bad_numbers(argv, words, capsys):
    refused(generate.main, ["--checkpoint", str(STORED_MODEL_DIR), *argv], capsys, words)


def test_generate_says_a_llama2c_file_is_missing(tmp_path, capsys):
    refused(generate.main, ["--llama2c", str(tmp_path / "none.bin")], capsys,
            "no llama2.c file", "none.bin")
