"""Checks for the exercises of chapter 1 (tokens: bytes, BPE merges, the end-of-text id)."""

from __future__ import annotations

import math

from ...data.tokenizer import EOT_TEXT
from .. import check, function_answer, is_placeholder


def exercise_1(naive_bytes) -> None:
    """UTF-8 bytes of the word "naïve"."""
    check("exercise 1", naive_bytes,
          lambda answer: not isinstance(answer, bool) and answer == len("naïve".encode()),
          hint="look each character up in the table at the top of the chapter (the ASCII "
               "letters are there too) and add up their UTF-8 bytes")


def _one_merge(ids: list[int]) -> tuple[tuple[int, int], list[int]]:
    counts: dict[tuple[int, int], int] = {}
    for pair in zip(ids, ids[1:], strict=False):
        counts[pair] = counts.get(pair, 0) + 1
    best = max(counts, key=counts.get)
    merged, i = [], 0
    while i < len(ids):
        if tuple(ids[i:i + 2]) == best:
            merged.append(256)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return best, merged


def exercise_2(most_frequent_pair, ids_after_merge) -> None:
    """One BPE merge by hand on "abababcab": the winning pair and the ids after merging it."""
    answer = (None if is_placeholder(most_frequent_pair) or is_placeholder(ids_after_merge)
              else (most_frequent_pair, ids_after_merge))
    best, merged = _one_merge(list(b"abababcab"))
    check("exercise 2", answer,
          lambda a: tuple(a[0]) == best and list(a[1]) == merged,
          hint="write down every neighbouring pair of the nine byte ids and count each; then "
               "scan the ids from the left, replacing each occurrence of the winner by 256 (an "
               "id can belong to one merged pair only)")


def exercise_3(minimum_ids) -> None:
    """The fewest ordinary ids a byte-level vocabulary needs to encode every string."""
    check("exercise 3", minimum_ids,
          lambda answer: not isinstance(answer, bool) and answer == 2**8,
          hint="a byte-level tokenizer can always fall back to single bytes: how many different "
               "values can one byte take?")


_STORIES = ["Tom had a red ball.", "", 'Sue said "bye" and wrote ' + EOT_TEXT + " on a card.",
            "The end."]


def _encode_stories_is_right(encode_stories, tokenizer) -> bool:
    expected = [i for story in _STORIES for i in tokenizer.encode(story, add_eot=True)]
    return list(encode_stories(list(_STORIES), tokenizer)) == expected


def exercise_4(encode_stories, tokenizer) -> None:
    """encode_stories(stories, tokenizer): one id list, the end-of-text id after every story."""
    attempt = function_answer(encode_stories, ["A cat."], tokenizer)
    check("exercise 4", attempt, lambda f: _encode_stories_is_right(f, tokenizer),
          hint="encode each story on its own and put the end-of-text id after it, even after an "
               "empty story; never join the stories with the text <|endoftext|>, which a "
               "story may itself contain")


def exercise_5(unfamiliar_bytes_per_token, tokenizer, unfamiliar_text: str) -> None:
    """Bytes per token of the story tokenizer on a text unlike the stories."""
    measured = len(unfamiliar_text.encode()) / len(tokenizer.encode(unfamiliar_text))
    check("exercise 5", unfamiliar_bytes_per_token,
          lambda answer: math.isclose(float(answer), measured, abs_tol=0.01),
          hint="count the UTF-8 bytes of the text and the ids the story tokenizer encodes it "
               "to, and divide, as bytes_per_token does for many texts")
