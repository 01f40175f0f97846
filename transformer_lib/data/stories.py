"""Load TinyStories as one normalised story per row, from a local copy or the Hugging Face hub.

The source is chosen per call: the ``source`` argument, else the environment variable
``TINYSTORIES_PATH``, else the hub dataset ``roneneldan/TinyStories``. Every format goes through
the same :func:`normalize_story`, so a story reads the same whether it came from a ``.txt`` file
(paragraphs split by one newline) or a parquet file (paragraphs split by a blank line).

The book reads one fixed *extract* on every machine (:func:`book_stories`): the first 2,316
training and the first 1,000 validation stories. It comes from ``TINYSTORIES_PATH`` when that is
set, else it is streamed from the hub once and kept under the user's cache directory.

Command line (writes the extract for a machine that is offline, and stories beyond it)::

    tlib-data download --out DIR
    tlib-data held-out --out FILE --count 1000
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from ..checks import require_int
from ..fileio import output_path_problem, write_text_atomically

if TYPE_CHECKING:  # imported inside the functions that use it: datasets loads pyarrow (seconds)
    import datasets

HUB_DATASET = "roneneldan/TinyStories"
HUB_SPLITS = ("train", "validation")
SOURCE_ENV_VAR = "TINYSTORIES_PATH"
STORY_SEPARATOR = "<|endoftext|>"  # the line between stories in TinyStories' .txt files
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
HUB_PROBE_TIMEOUT_S = 5.0  # datasets itself retries an unreachable hub for ~25 s; we fail first

# file suffix -> the `datasets` builder that reads it (".txt" is split on STORY_SEPARATOR here)
LOCAL_FORMATS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")
# Bump when normalize_story or the reading of files changes, to invalidate cached Datasets
# (2: a byte-order mark at the start of a file is dropped).
_NORMALIZATION_VERSION = 2

# The book's data: the first stories of each hub split (``train[0:2316]``, ``validation[0:1000]``).
# About 3 MB, so every chapter runs in minutes and prints the same numbers on every machine.
BOOK_EXTRACT_SIZES = {"train": 2316, "validation": 1000}
BOOK_EXTRACT_DIRNAME = "tinystories-book"


def normalize_story(text: str) -> str:
    """Return the canonical form of one story: stripped paragraphs joined by a single "\\n".

    Line endings become "\\n", each line is stripped of surrounding whitespace, blank lines are
    dropped. Whitespace inside a line is kept as is. An empty result means "no story".
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(stripped for line in lines if (stripped := line.strip()))


def resolve_source(source: str | os.PathLike | None = None) -> Path | None:
    """Return the local path to read stories from, or None to use the Hugging Face hub.

    The argument wins; otherwise the environment variable TINYSTORIES_PATH (read here, at call
    time, never at import time); otherwise None.
    """
    origin = "source argument"
    if source is None:
        source = os.environ.get(SOURCE_ENV_VAR) or None
        origin = f"environment variable {SOURCE_ENV_VAR}"
    if source is None:
        return None
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"TinyStories source {str(path)!r} (from the {origin}) does not exist; point it at a "
            f"directory holding train.txt/validation.txt (or .jsonl/.json/.parquet), or at one file"
        )
    return path


def load_stories(
    split: str,
    source: str | os.PathLike | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """Load one split of TinyStories as a Dataset with a single ``text`` column, one story a row.

    Args:
        split: "train" or "validation" (a local directory may hold other splits, e.g. "test").
        source: a local directory with files named by split (``train.txt``, ``validation.jsonl``,
            ``train.parquet`` or shards ``train-00000-of-00004.parquet``), or one local file
            (``.txt`` with ``<|endoftext|>`` separator lines, ``.jsonl``/``.json`` or
            ``.parquet`` with a ``text`` column), taken as the requested split. None means the
            environment variable TINYSTORIES_PATH, and if that is unset the Hugging Face hub.
        limit: read only the first ``limit`` stories (streamed, so nothing more is read or
            downloaded); None reads the whole split.
        cache_dir: where `datasets` keeps its Arrow cache (default ``~/.cache/huggingface``).

    Every story is passed through :func:`normalize_story` (paragraphs joined by one "\\n",
    each stripped) and empty stories are dropped, identically for every format.
    """
    _check_split_name(split)
    if limit is not None:
        require_int("limit", limit, 1, why=" (or None for every story)")
    path = resolve_source(source)
    if path is None:
        return _load_hub(split, limit, cache_dir)
    files = _local_split_files(path, split)
    if limit is not None:
        return _first_stories(_stream_local(files, split), limit)
    return _normalize_dataset(_load_local(files, split, cache_dir))


def describe_source(split: str, source: str | os.PathLike | None = None) -> str:
    """Describe where load_stories(split, source) reads from, for cache metadata and logs."""
    path = resolve_source(source)
    if path is None:
        return f"hub:{HUB_DATASET}[{split}]"
    return "local:" + ",".join(str(file.resolve()) for file in _local_split_files(path, split))


def url_reachable(url: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Return True if an HTTP server answers at url within timeout seconds (any status counts)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # the server answered, just not with 2xx
    except (urllib.error.URLError, OSError, ValueError):
        return False


# ---- the book's extract -------------------------------------------------------------------


def book_data_dir(cache_root: str | os.PathLike | None = None) -> Path:
    """The directory holding the book's extract as ``train.txt`` and ``validation.txt``.

    ``TINYSTORIES_PATH`` when it is set; otherwise ``<cache>/transformer_lib/tinystories-book``,
    filled from the hub on first use (3,316 stories streamed, nothing else downloaded).
    """
    local = resolve_source(None)
    if local is not None:
        return local
    target = Path(cache_root) if cache_root is not None else _user_cache() / BOOK_EXTRACT_DIRNAME
    if not all((target / f"{split}.txt").is_file() for split in BOOK_EXTRACT_SIZES):
        download_book_extract(target)
    return target


def book_stories(split: str, cache_root: str | os.PathLike | None = None) -> list[str]:
    """The book's stories of ``split`` ("train" or "validation"), normalised, in dataset order."""
    if split not in BOOK_EXTRACT_SIZES:
        raise ValueError(f"the book's extract has splits {tuple(BOOK_EXTRACT_SIZES)}, "
                         f"not {split!r}")
    wanted = BOOK_EXTRACT_SIZES[split]
    folder = book_data_dir(cache_root)
    stories = list(load_stories(split, source=folder, limit=wanted)["text"])
    if len(stories) < wanted:
        raise ValueError(
            f"{folder} holds {len(stories)} {split} stories, but the book reads the first "
            f"{wanted:,}; point {SOURCE_ENV_VAR} at a copy of the whole extract (see "
            f"`tlib-data download --help`)")
    return stories


def stories_fingerprint(stories: Iterable[str]) -> str:
    """sha256 of normalised stories in order: equal for equal text, whatever file it came from."""
    digest = hashlib.sha256()
    for story in stories:
        digest.update(normalize_story(story).encode("utf-8") + b"\0")
    return digest.hexdigest()


def download_book_extract(out_dir: str | os.PathLike) -> Path:
    """Stream the book's extract from the hub and write ``train.txt``/``validation.txt``.

    Each file is written whole to a temporary name and then renamed, so an interrupted download
    never leaves a file that looks complete. Offline, it fails within seconds.
    """
    out = Path(out_dir).expanduser()
    fixes = (f"set {SOURCE_ENV_VAR} to a directory holding the extract's train.txt and "
             f"validation.txt (on a machine that is online, `tlib-data "
             f"download --out DIR` writes them), or go online so the "
             f"{sum(BOOK_EXTRACT_SIZES.values()):,} stories can be streamed from {HUB_DATASET} "
             f"once")
    _refuse_unwritable(out, "out_dir", folder=True)  # before the hub: a typo fails at once
    _require_hub("the book's TinyStories extract", fixes)
    out.mkdir(parents=True, exist_ok=True)
    for split, count in BOOK_EXTRACT_SIZES.items():
        write_stories_txt(out / f"{split}.txt", _stream_hub_stories(split, 0, count))
    return out


def download_held_out_stories(out_file: str | os.PathLike, count: int,
                              split: str = "validation") -> Path:
    """Stream ``count`` stories of a hub split that come after the book's extract (``validation``:
    stories 1,000 onwards) and write them to ``out_file`` in the txt layout, atomically.

    They are stories no book model has been tuned or measured on, to check that a figure
    measured on the extract's ``validation.txt`` holds beyond it (``tlib-evaluate --data FILE``).
    """
    require_int("count", count, minimum=1)
    out = Path(out_file).expanduser()
    if out.suffix != ".txt":
        raise ValueError(f"out_file={str(out_file)!r}: give a .txt file name (the stories are "
                         f"written in TinyStories' txt layout)")
    if split not in BOOK_EXTRACT_SIZES:
        raise ValueError(f"split={split!r}: the hub dataset {HUB_DATASET} has splits "
                         f"{tuple(BOOK_EXTRACT_SIZES)}")
    _refuse_unwritable(out, "out_file", folder=False)
    _require_hub(f"{count:,} {split} stories beyond the book's extract",
                 f"go online (unset {'/'.join(OFFLINE_ENV_VARS)}) so that {HUB_DATASET} can be "
                 f"streamed")
    start = BOOK_EXTRACT_SIZES[split]
    stories = _stream_hub_stories(split, start, start + count)
    out.parent.mkdir(parents=True, exist_ok=True)  # only now: a failed stream leaves no folder
    return write_stories_txt(out, stories)


def _refuse_unwritable(path: Path, name: str, folder: bool) -> None:
    problem = output_path_problem(path, name, folder=folder)
    if problem:
        raise ValueError(problem)


def _require_hub(what: str, fixes: str) -> None:
    """Fail within seconds, saying why and how to fix it, when the hub cannot be streamed."""
    import datasets
    offline_vars = [name for name in OFFLINE_ENV_VARS if _env_flag(name)]
    if offline_vars:
        raise ConnectionError(f"cannot fetch {what}: offline mode is on "
                              f"({', '.join(offline_vars)}). Fix: {fixes}.")
    endpoint = datasets.config.HF_ENDPOINT
    if not url_reachable(endpoint):
        raise ConnectionError(f"cannot fetch {what}: {endpoint} is unreachable. Fix: {fixes}.")


def _stream_hub_stories(split: str, start: int, stop: int) -> list[str]:
    """The hub split's rows [start, stop), streamed; an error if the split is shorter."""
    import datasets
    stream = datasets.load_dataset(HUB_DATASET, split=split, streaming=True)
    rows = [row["text"] for row in islice(stream, start, stop)]
    if len(rows) < stop - start:
        raise ConnectionError(f"the hub's {split} split ended after {start + len(rows)} stories "
                              f"(expected at least {stop})")
    return rows


def write_stories_txt(path: str | os.PathLike, stories: Iterable[str]) -> Path:
    """Write stories in TinyStories' txt layout (each followed by a ``<|endoftext|>`` line)."""
    body = "".join(f"{normalize_story(story)}\n{STORY_SEPARATOR}\n" for story in stories)
    return write_text_atomically(path, body)


def _user_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "transformer_lib"


# ---- local files ---------------------------------------------------------------------------


def _check_split_name(split: str) -> None:
    if not isinstance(split, str) or not _SPLIT_NAME.match(split):
        raise ValueError(
            f"split must be a plain name such as 'train' or 'validation', got {split!r} "
            f"(slices like 'train[:100]' are not supported: use limit=100)"
        )


def _local_split_files(path: Path, split: str) -> list[Path]:
    """Return the files holding split: the file itself, or `{split}.*`/`{split}-*.*` in a dir."""
    if path.is_file():
        _check_file_matches_split(path, split)
        _suffix_format(path)
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_file())
    matches = [
        p
        for p in found
        if p.suffix in LOCAL_FORMATS and (p.stem == split or p.stem.startswith(f"{split}-"))
    ]
    if not matches:
        names = ", ".join(p.name for p in found) or "no files"
        raise FileNotFoundError(
            f"no file for split {split!r} in {str(path)!r} (found: {names}); expected "
            f"{split}.txt, {split}.jsonl, {split}.json or {split}.parquet (or shards {split}-*.parquet)"
        )
    suffixes = {LOCAL_FORMATS[p.suffix] for p in matches}
    if len(suffixes) > 1:
        names = ", ".join(p.name for p in matches)
        raise ValueError(
            f"split {split!r} in {str(path)!r} has files in several formats ({names}); keep one "
            f"format per split"
        )
    return matches


def _check_file_matches_split(path: Path, split: str) -> None:
    """Refuse e.g. train.txt as the validation split: almost always a train/test leak."""
    for other in ("train", "validation", "valid", "test"):
        named_other = path.stem == other or path.stem.startswith(f"{other}-")
        if named_other and not (split == other or (other == "valid" and split == "validation")):
            raise ValueError(
                f"source file {str(path)!r} looks like the {other!r} split but split={split!r} "
                f"was requested; pass the directory instead, or the right file"
            )


def _suffix_format(path: Path) -> str:
    if path.suffix not in LOCAL_FORMATS:
        raise ValueError(
            f"unsupported file {str(path)!r}: expected one of {', '.join(LOCAL_FORMATS)}"
        )
    return LOCAL_FORMATS[path.suffix]


def _iter_txt_stories(paths: list[str], stamp: str = "") -> Iterator[dict[str, str]]:
    """Yield {"text": raw story} from .txt files whose stories are separated by STORY_SEPARATOR.

    Reads line by line, so a 2 GB file never sits in memory; `stamp` only keys the cache.
    """
    del stamp
    for path in paths:
        try:
            yield from _txt_file_stories(path)
        except UnicodeDecodeError:
            # The error's repr holds the whole undecodable chunk (kilobytes of the user's text)
            # and an offset within that chunk; say where in the file instead.
            raise NotUtf8Error(path, *_first_invalid_utf8(path)) from None


def _txt_file_stories(path: str) -> Iterator[dict[str, str]]:
    # universal newlines (\r\n becomes \n); "utf-8-sig" drops the byte-order mark some
    # editors write at the start, which would otherwise open the first story
    with open(path, encoding="utf-8-sig") as file:
        lines: list[str] = []
        for line in file:
            *finished, rest = line.split(STORY_SEPARATOR)
            for piece in finished:  # each separator closes the story in progress
                lines.append(piece)
                yield {"text": "".join(lines)}
                lines = []
            lines.append(rest)
        yield {"text": "".join(lines)}  # text after the last separator (usually empty)


class NotUtf8Error(ValueError):
    """A text file that is not valid UTF-8, with the byte offset of the first bad byte."""

    def __init__(self, path: str | os.PathLike, offset: int | None, reason: str = ""):
        where = f" (invalid byte at offset {offset})" if offset is not None else ""
        why = f" (UnicodeDecodeError: {reason})" if reason else ""
        super().__init__(f"{path} is not UTF-8 text{where}; save it as UTF-8{why}")


def _first_invalid_utf8(path: str | os.PathLike,
                        chunk_size: int = 1 << 20) -> tuple[int | None, str]:
    """The byte offset of the first byte that breaks UTF-8 in the file, and why; read in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    fed = 0
    with open(path, "rb") as file:
        while True:
            chunk = file.read(chunk_size)
            pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                return fed - pending + err.start, err.reason
            if not chunk:
                return None, ""
            fed += len(chunk)


def _files_stamp(files: list[Path], split: str) -> str:
    """Fingerprint paths, sizes and mtimes, so an edited file is not served from a stale cache."""
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    payload = json.dumps([stamp, split, _NORMALIZATION_VERSION]).encode()
    return hashlib.sha256(payload).hexdigest()


def _load_local(
    files: list[Path], split: str, cache_dir: str | os.PathLike | None
) -> datasets.Dataset:
    import datasets
    builder = _suffix_format(files[0])
    cache = str(cache_dir) if cache_dir is not None else None
    if builder == "text":
        stamp = _files_stamp(files, split)
        try:
            return datasets.Dataset.from_generator(
                _iter_txt_stories,
                gen_kwargs={"paths": [str(p) for p in files], "stamp": stamp},
                features=datasets.Features({"text": datasets.Value("string")}),
                cache_dir=cache,
                split=datasets.NamedSplit(split),
                fingerprint=stamp,
            )
        except datasets.exceptions.DatasetGenerationError as err:
            if isinstance(err.__cause__, NotUtf8Error):  # already names the file and the byte
                raise err.__cause__ from None
            names = ", ".join(str(p) for p in files)  # the wrapper hides which file and why
            raise ValueError(f"cannot read stories from {names}: {err.__cause__!r}") from err
    dataset = datasets.load_dataset(
        builder, data_files={split: [str(p) for p in files]}, split=split, cache_dir=cache
    )
    return _text_column_only(dataset, files)


def _stream_local(files: list[Path], split: str) -> Iterator[str]:
    """Yield raw story texts one at a time, reading no more of the files than is consumed."""
    import datasets
    builder = _suffix_format(files[0])
    if builder == "text":
        yield from (row["text"] for row in _iter_txt_stories([str(p) for p in files]))
        return
    stream = datasets.load_dataset(
        builder, data_files={split: [str(p) for p in files]}, split=split, streaming=True
    )
    for row in stream:
        if "text" not in row:
            raise KeyError(_no_text_column_message(list(row), files))
        yield row["text"]


def _text_column_only(dataset: datasets.Dataset, files: list[Path]) -> datasets.Dataset:
    if "text" not in dataset.column_names:
        raise KeyError(_no_text_column_message(dataset.column_names, files))
    return dataset.select_columns(["text"])


def _no_text_column_message(columns: list[str], files: list[Path]) -> str:
    names = ", ".join(str(p) for p in files)
    return f"no 'text' column in {names} (columns: {columns}); stories must be in a 'text' field"


# ---- shared by every format ----------------------------------------------------------------


def _normalize_batch(batch: dict[str, list]) -> dict[str, list[str]]:
    stories = (normalize_story(text) for text in batch["text"] if text is not None)
    return {"text": [story for story in stories if story]}


def _normalize_dataset(dataset: datasets.Dataset) -> datasets.Dataset:
    """Normalise every story and drop empty ones (a batched map may return fewer rows)."""
    return dataset.map(
        _normalize_batch, batched=True, remove_columns=dataset.column_names, desc="normalising"
    )


def _first_stories(raw_texts: Iterable[str | None], limit: int) -> datasets.Dataset:
    """Materialise the first `limit` non-empty normalised stories of a stream."""
    import datasets
    stories = (normalize_story(text) for text in raw_texts if text is not None)
    kept = list(islice((story for story in stories if story), limit))
    return datasets.Dataset.from_dict(
        {"text": kept}, features=datasets.Features({"text": datasets.Value("string")})
    )


# ---- the Hugging Face hub ------------------------------------------------------------------


def _load_hub(
    split: str, limit: int | None, cache_dir: str | os.PathLike | None
) -> datasets.Dataset:
    import datasets
    if split not in HUB_SPLITS:
        raise ValueError(f"the hub dataset {HUB_DATASET} has splits {HUB_SPLITS}, not {split!r}")
    cache = str(cache_dir) if cache_dir is not None else None
    offline_vars = [name for name in OFFLINE_ENV_VARS if _env_flag(name)]
    if offline_vars:
        # datasets reads the offline flag at import; if it agrees, a cached copy can still load
        if not datasets.config.HF_HUB_OFFLINE:
            raise _hub_unavailable(split, f"offline mode is on ({', '.join(offline_vars)})")
        try:
            dataset = datasets.load_dataset(HUB_DATASET, split=split, cache_dir=cache)
        except (ConnectionError, FileNotFoundError) as err:
            raise _hub_unavailable(split, "offline mode is on and no cached copy") from err
        if limit is not None:
            return _first_stories(dataset["text"], limit)
        return _normalize_dataset(dataset)

    endpoint = datasets.config.HF_ENDPOINT
    if not url_reachable(endpoint):
        raise _hub_unavailable(split, f"{endpoint} is unreachable")
    try:
        if limit is not None:
            stream = datasets.load_dataset(HUB_DATASET, split=split, streaming=True)
            return _first_stories((row["text"] for row in stream), limit)
        dataset = datasets.load_dataset(HUB_DATASET, split=split, cache_dir=cache)
    except ConnectionError as err:
        raise _hub_unavailable(split, str(err)) from err
    return _normalize_dataset(dataset)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_unavailable(split: str, reason: str) -> ConnectionError:
    return ConnectionError(
        f"cannot load TinyStories split {split!r}: no local source is configured and the "
        f"Hugging Face hub cannot be used ({reason}). Fix one of: set {SOURCE_ENV_VAR} to a "
        f"local copy (a directory with train.txt and validation.txt, or .jsonl/.parquet files), "
        f"or pass source=...; or go online (unset HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) so "
        f"{HUB_DATASET} can be downloaded."
    )


# ---- command line --------------------------------------------------------------------------
