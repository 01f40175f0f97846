"""Tests for transformer_lib.data: every format gives the same normalised stories, errors are clear."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import datasets
import pytest

from conftest import HUB_ROWS
from transformer_lib.data import describe_source, load_stories, normalize_story
from transformer_lib.data import stories as data

STORIES = [
    "Once upon a time, there was a cat.\nThe cat liked milk.",
    "Tom had a red ball. “Look!” he said.\nHe threw it — far away. 🎈",
    "The end.",
]
REAL_DATA = os.environ.get("TINYSTORIES_PATH")
needs_real_data = pytest.mark.skipif(
    not REAL_DATA, reason="TINYSTORIES_PATH is unset: no local TinyStories sample to test on"
)


def write_txt(path: Path, stories: list[str], paragraph_sep: str = "\n") -> Path:
    """Write stories the way TinyStories' .txt files do: each followed by a separator line."""
    body = "".join(s.replace("\n", paragraph_sep) + "\n<|endoftext|>\n" for s in stories)
    path.write_text(body, encoding="utf-8")
    return path


def write_jsonl(path: Path, stories: list[str]) -> Path:
    """Write stories parquet-style: paragraphs split by a blank line, extra whitespace around."""
    rows = [
        json.dumps({"text": "  " + s.replace("\n", "\n\n") + "\n", "id": i})
        for i, s in enumerate(stories)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_normalize_story_gives_one_form_for_both_paragraph_styles():
    one_newline = "First para.\nSecond para.\n"
    blank_line = "\n  First para.  \r\n\r\n\nSecond para.\n\n"
    assert normalize_story(one_newline) == "First para.\nSecond para."
    assert normalize_story(blank_line) == "First para.\nSecond para."
    assert normalize_story("a  b\tc") == "a  b\tc"  # whitespace inside a line is kept
    assert normalize_story(" \n\t\n") == ""


def test_txt_jsonl_and_parquet_give_identical_stories(tmp_path):
    (tmp_path / "txt").mkdir()
    (tmp_path / "jsonl").mkdir()
    (tmp_path / "parquet").mkdir()
    write_txt(tmp_path / "txt" / "train.txt", STORIES)
    write_jsonl(tmp_path / "jsonl" / "train.jsonl", STORIES)
    raw = [{"text": s.replace("\n", "\n\n")} for s in STORIES]
    datasets.Dataset.from_list(raw).to_parquet(str(tmp_path / "parquet" / "train.parquet"))

    loaded = {
        kind: load_stories("train", tmp_path / kind, cache_dir=tmp_path / "hf")
        for kind in ("txt", "jsonl", "parquet")
    }
    for kind, dataset in loaded.items():
        assert dataset.column_names == ["text"], kind
        assert list(dataset["text"]) == STORIES, kind


def test_edited_txt_file_is_not_served_from_a_stale_cache(tmp_path):
    path = write_txt(tmp_path / "train.txt", STORIES[:2])
    assert list(load_stories("train", path, cache_dir=tmp_path / "hf")["text"]) == STORIES[:2]
    write_txt(path, STORIES[1:])
    assert list(load_stories("train", path, cache_dir=tmp_path / "hf")["text"]) == STORIES[1:]


def test_one_file_serves_any_split_name_from_one_cache(tmp_path):
    path = write_txt(tmp_path / "stories.txt", STORIES)
    for split in ("train", "validation", "train"):
        stories = load_stories(split, path, cache_dir=tmp_path / "hf")
        assert (str(stories.split), list(stories["text"])) == (split, STORIES)


def test_txt_drops_empty_stories_and_splits_on_separator_inside_a_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(
        "First story.\n<|endoftext|>\n\n  \n<|endoftext|>\nSecond.<|endoftext|>Third.\n",
        encoding="utf-8",
    )
    stories = load_stories("train", path, cache_dir=tmp_path / "hf")
    assert list(stories["text"]) == ["First story.", "Second.", "Third."]


def test_a_byte_order_mark_does_not_open_the_first_story(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"\xef\xbb\xbfOnce upon a time.\n<|endoftext|>\nThe end.\n")
    expected = ["Once upon a time.", "The end."]
    assert list(load_stories("train", path, cache_dir=tmp_path / "hf")["text"]) == expected
    assert list(load_stories("train", path, limit=1)["text"]) == expected[:1]


def test_limit_reads_only_what_it_needs(tmp_path):
    # Bytes that are not UTF-8 ~100 kB in: a full read must fail, a read of 2 stories must not.
    fillers = [f"Filler story number {i}." for i in range(4000)]
    path = write_txt(tmp_path / "train.txt", STORIES[:2] + fillers)
    with open(path, "ab") as file:
        file.write(b"broken \xff\xfe story\n<|endoftext|>\n")
    assert list(load_stories("train", path, limit=2)["text"]) == STORIES[:2]
    with pytest.raises(ValueError, match="train.txt.*UnicodeDecodeError"):
        load_stories("train", path, cache_dir=tmp_path / "hf")


def test_limit_on_jsonl_normalises_and_skips_empty_rows(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", ["", *STORIES])
    assert list(load_stories("train", path, limit=2)["text"]) == STORIES[:2]


@pytest.mark.parametrize("limit, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                          (True, TypeError)])
def test_bad_limit_is_refused(tmp_path, limit, error):
    write_txt(tmp_path / "train.txt", STORIES)
    with pytest.raises(error, match="limit"):
        load_stories("train", tmp_path, limit=limit)


def test_env_var_is_read_at_call_time_and_argument_wins(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_txt(tmp_path / "a" / "validation.txt", STORIES[:1])
    write_txt(tmp_path / "b" / "validation.txt", STORIES[1:])
    monkeypatch.setenv("TINYSTORIES_PATH", str(tmp_path / "a"))
    assert list(load_stories("validation", limit=5)["text"]) == STORIES[:1]
    assert list(load_stories("validation", tmp_path / "b", limit=5)["text"]) == STORIES[1:]
    assert describe_source("validation").endswith(
        str((tmp_path / "a" / "validation.txt").resolve())
    )


def test_missing_split_file_names_the_directory_and_the_files_found(tmp_path):
    write_txt(tmp_path / "train.txt", STORIES)
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(FileNotFoundError) as error:
        load_stories("validation", tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "train.txt" in message and "notes.md" in message


def test_missing_source_path_names_where_it_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYSTORIES_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="TINYSTORIES_PATH"):
        load_stories("train")


@pytest.mark.parametrize("split", ["train[:10]", "", "../train"])
def test_malformed_split_name_is_refused(tmp_path, split):
    with pytest.raises(ValueError, match="split"):
        load_stories(split, tmp_path)


def test_unknown_hub_split_is_refused_without_touching_the_network(monkeypatch):
    monkeypatch.delenv("TINYSTORIES_PATH", raising=False)
    monkeypatch.setattr(data, "url_reachable", lambda *args, **kwargs: pytest.fail("probed"))
    with pytest.raises(ValueError, match="validation"):
        load_stories("test")


def test_file_named_for_another_split_is_refused(tmp_path):
    path = write_txt(tmp_path / "train.txt", STORIES)
    with pytest.raises(ValueError, match="looks like the 'train' split"):
        load_stories("validation", path)


def test_mixed_formats_for_one_split_are_refused(tmp_path):
    write_txt(tmp_path / "train.txt", STORIES)
    write_jsonl(tmp_path / "train.jsonl", STORIES)
    with pytest.raises(ValueError, match="several formats"):
        load_stories("train", tmp_path)


def test_json_without_text_column_names_the_columns(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"story": "hi"}\n', encoding="utf-8")
    with pytest.raises(KeyError, match="story"):
        load_stories("train", path, cache_dir=tmp_path / "hf")


def test_offline_without_source_fails_fast_naming_both_fixes(tmp_path):
    # A fresh interpreter, so datasets sees the offline flags at import as a user's would.
    env = {k: v for k, v in os.environ.items() if k != "TINYSTORIES_PATH"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    script = textwrap.dedent(
        """
        import time
        from transformer_lib.data import load_stories
        started = time.perf_counter()
        try:
            load_stories("train")
        except ConnectionError as err:
            print(f"{time.perf_counter() - started:.3f}", err)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    seconds, _, message = result.stdout.partition(" ")
    assert message, result.stderr
    assert float(seconds) < 5.0  # the call itself; the interpreter's imports are not counted
    assert "TINYSTORIES_PATH" in message and "online" in message


def test_unreachable_hub_fails_fast_naming_both_fixes(monkeypatch):
    for name in ("TINYSTORIES_PATH", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(data, "url_reachable", lambda *args, **kwargs: False)
    started = time.perf_counter()
    with pytest.raises(ConnectionError, match="TINYSTORIES_PATH") as error:
        load_stories("validation", limit=3)
    assert time.perf_counter() - started < 5.0
    assert "online" in str(error.value)


def test_url_reachable_gives_up_quickly_on_a_closed_port():
    started = time.perf_counter()
    assert not data.url_reachable("http://127.0.0.1:9", timeout=2.0)
    assert time.perf_counter() - started < 3.0


@needs_real_data
def test_real_sample_loads_one_canonical_story_per_row(tmp_path):
    train = load_stories("train", cache_dir=tmp_path / "hf")
    validation = load_stories("validation", cache_dir=tmp_path / "hf")
    assert (len(train), len(validation)) == (2316, 1000)  # as the sample's README says
    for story in [*train["text"], *validation["text"]]:
        assert story == story.strip() and "\n\n" not in story and "<|endoftext|>" not in story
    assert validation[0]["text"].startswith("Spot. Spot saw the shiny car")
    # validation.txt uses blank lines between paragraphs; normalised, it must use single ones
    assert sum("\n" in story for story in validation["text"]) > 500


@needs_real_data
def test_real_sample_reads_the_same_from_txt_and_parquet_style_jsonl(tmp_path):
    from_txt = list(load_stories("validation", cache_dir=tmp_path / "hf")["text"])
    write_jsonl(tmp_path / "validation.jsonl", from_txt)
    from_jsonl = list(load_stories("validation", tmp_path, cache_dir=tmp_path / "hf")["text"])
    assert from_jsonl == from_txt
    assert list(load_stories("validation", limit=7)["text"]) == from_txt[:7]


# ---- the book's extract ----------------------------------------------------------------------

def test_book_extract_is_the_same_from_the_hub_and_from_local_txt(tmp_path, monkeypatch,
                                                                  fake_hub):
    from_hub = {split: data.book_stories(split, cache_root=tmp_path / "cache")
                for split in ("train", "validation")}
    assert from_hub["train"] == [normalize_story(t) for t in HUB_ROWS[:4]]
    assert from_hub["validation"] == [normalize_story(t) for t in HUB_ROWS[:2]]
    # A local copy in both txt layouts of TinyStories (one newline / a blank line between
    # paragraphs, as the shared train.txt and validation.txt have) reads the same.
    local = tmp_path / "local"
    local.mkdir()
    stories = [text.replace("\n\n", "\n") for text in HUB_ROWS]
    write_txt(local / "train.txt", stories[:4], paragraph_sep="\n")
    write_txt(local / "validation.txt", stories[:2], paragraph_sep="\n\n")
    monkeypatch.setenv("TINYSTORIES_PATH", str(local))
    for split, stories_from_hub in from_hub.items():
        from_local = data.book_stories(split)
        assert from_local == stories_from_hub
        assert data.stories_fingerprint(from_local) == data.stories_fingerprint(stories_from_hub)


def test_book_extract_is_streamed_once_then_read_from_the_cache(tmp_path, fake_hub):
    cache = tmp_path / "cache"
    first = data.book_stories("train", cache_root=cache)
    assert sorted(fake_hub) == ["train", "validation"]
    assert sorted(p.name for p in cache.iterdir()) == ["train.txt", "validation.txt"]
    assert data.book_stories("train", cache_root=cache) == first
    assert len(fake_hub) == 2, "the second read went back to the hub"


def test_book_extract_offline_without_a_copy_fails_fast_naming_both_fixes(tmp_path,
                                                                         monkeypatch):
    monkeypatch.delenv("TINYSTORIES_PATH", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ConnectionError) as error:
        data.book_stories("train", cache_root=tmp_path / "nothing")
    assert time.perf_counter() - start < 2
    message = str(error.value)
    assert "TINYSTORIES_PATH" in message and "tlib-data download" in message
    assert not (tmp_path / "nothing").exists(), "a failed download left a folder behind"


def test_book_stories_refuses_a_copy_smaller_than_the_extract(tmp_path, monkeypatch):
    write_txt(tmp_path / "train.txt", STORIES)
    monkeypatch.setenv("TINYSTORIES_PATH", str(tmp_path))
    with pytest.raises(ValueError, match="first 2,316"):
        data.book_stories("train")
    with pytest.raises(ValueError, match="splits"):
        data.book_stories("test")


def test_download_command_writes_the_extract(tmp_path, capsys, fake_hub):
    from transformer_lib.cli.data import main

    assert main(["download", "--out", str(tmp_path / "extract")]) == 0
    out = capsys.readouterr().out
    assert "4 stories" in out and "2 stories" in out and "export TINYSTORIES_PATH=" in out
    text = (tmp_path / "extract" / "train.txt").read_text(encoding="utf-8")
    assert text.count("<|endoftext|>") == 4 and "🚒" in text


def test_held_out_stories_are_the_ones_after_the_extract(tmp_path, fake_hub):
    extract = data.book_stories("validation", cache_root=tmp_path / "cache")
    path = data.download_held_out_stories(tmp_path / "beyond.txt", 2)
    held_out = data.book_stories("validation", cache_root=tmp_path / "cache")
    beyond = list(data.load_stories("validation", source=path)["text"])
    assert beyond == [normalize_story(t) for t in HUB_ROWS[2:4]]  # the fake extract holds 2
    assert not set(beyond) & set(extract) and held_out == extract


def test_held_out_stories_fail_cleanly(tmp_path, monkeypatch, fake_hub):
    with pytest.raises(ConnectionError, match="ended after 5 stories"):  # 3 remain past 2
        data.download_held_out_stories(tmp_path / "beyond.txt", 4)
    with pytest.raises(ValueError, match=r"\.txt"):
        data.download_held_out_stories(tmp_path / "beyond.parquet", 2)
    with pytest.raises(ValueError, match="count=0"):
        data.download_held_out_stories(tmp_path / "beyond.txt", 0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="offline mode is on"):
        data.download_held_out_stories(tmp_path / "beyond.txt", 2)
    assert list(tmp_path.iterdir()) == [], "a failed download left a file behind"


def test_held_out_command_writes_the_stories_and_says_how_to_score_them(tmp_path, capsys,
                                                                      fake_hub):
    from transformer_lib.cli.data import main

    out = tmp_path / "beyond.txt"
    assert main(["held-out", "--out", str(out), "--count", "3"]) == 0
    printed = capsys.readouterr().out
    assert "3 validation stories after the book's first 2" in printed
    assert f"tlib-evaluate --checkpoint DIR --data {out}" in printed
    assert out.read_text(encoding="utf-8").count("<|endoftext|>") == 3
    assert fake_hub == ["validation"]
    for bad, message in ((["--count", "0"], "count=0 must be an integer >= 1"),
                         (["--out", str(tmp_path / "beyond.parquet")], "give a .txt file name")):
        with pytest.raises(SystemExit) as exit_code:
            main(["held-out", "--out", str(out), *bad])
        assert exit_code.value.code == 2 and message in capsys.readouterr().err


@needs_real_data
def test_real_extract_has_the_books_story_counts():
    assert len(data.book_stories("train")) == 2316
    assert len(data.book_stories("validation")) == 1000
