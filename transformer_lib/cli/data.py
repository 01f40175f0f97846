"""tlib-data (python -m transformer_lib.cli.data): write the book's TinyStories extract."""

from __future__ import annotations

import argparse
import sys

from ..data import stories as _stories  # its extract sizes are read when used, not bound here
from ..data.stories import (
    SOURCE_ENV_VAR,
    download_book_extract,
    download_held_out_stories,
    load_stories,
    stories_fingerprint,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tlib-data",
        description="The book's TinyStories extract (first 2,316 train and 1,000 validation "
                    "stories), and stories beyond it.")
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser(
        "download", help="stream the extract from the Hugging Face hub into a directory",
        description="Write DIR/train.txt and DIR/validation.txt; then set TINYSTORIES_PATH=DIR "
                    "to read them offline.")
    download.add_argument("--out", required=True, help="directory to write the two files into")
    held_out = commands.add_parser(
        "held-out", help="stream validation stories beyond the extract into one file",
        description="Write COUNT stories of a split that come after the book's extract "
                    "(validation: stories 1,000 onwards), to check on stories that no book "
                    "model was measured on: tlib-evaluate --checkpoint DIR --data FILE.")
    held_out.add_argument("--out", required=True, help="the .txt file to write")
    held_out.add_argument("--count", type=int, default=1000,
                          help="how many stories (default 1000, as many as validation.txt)")
    held_out.add_argument("--split", default="validation",
                          choices=sorted(_stories.BOOK_EXTRACT_SIZES),
                          help="the hub split to read past the extract (default validation)")
    args = parser.parse_args(argv)
    try:
        if args.command == "held-out":
            path = download_held_out_stories(args.out, args.count, args.split)
            stories = list(load_stories(args.split, source=path)["text"])
            print(f"{path}: {len(stories):,} {args.split} stories after the book's first "
                  f"{_stories.BOOK_EXTRACT_SIZES[args.split]:,}, sha256 of the text "
                  f"{stories_fingerprint(stories)[:16]}")
            print(f"score a model on them: tlib-evaluate --checkpoint DIR --data {path}")
            return 0
        folder = download_book_extract(args.out)
    except ValueError as err:  # a bad --out or --count, found before any download
        parser.error(str(err))
    except ConnectionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the folder could not be created or written, e.g. no permission
        print(f"error: cannot write {args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    for split in _stories.BOOK_EXTRACT_SIZES:
        stories = list(load_stories(split, source=folder)["text"])
        print(f"{folder / (split + '.txt')}: {len(stories):,} stories, "
              f"sha256 of the text {stories_fingerprint(stories)[:16]}")
    print(f"export {SOURCE_ENV_VAR}={folder.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
