"""tlib-data (python -m transformer_lib.cli.data): write the book's TinyStories extract."""

from __future__ import annotations

import argparse
import sys

from ..data.stories import (
    BOOK_EXTRACT_SIZES,
    SOURCE_ENV_VAR,
    download_book_extract,
    load_stories,
    stories_fingerprint,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tlib-data",
        description="The book's TinyStories extract (first 2,316 train and 1,000 validation "
                    "stories).")
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser(
        "download", help="stream the extract from the Hugging Face hub into a directory",
        description="Write DIR/train.txt and DIR/validation.txt; then set TINYSTORIES_PATH=DIR "
                    "to read them offline.")
    download.add_argument("--out", required=True, help="directory to write the two files into")
    args = parser.parse_args(argv)
    try:
        folder = download_book_extract(args.out)
    except ConnectionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for split in BOOK_EXTRACT_SIZES:
        stories = list(load_stories(split, source=folder)["text"])
        print(f"{folder / (split + '.txt')}: {len(stories):,} stories, "
              f"sha256 of the text {stories_fingerprint(stories)[:16]}")
    print(f"export {SOURCE_ENV_VAR}={folder.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
