"""Checks for the exercises of chapter 1 (tokens: bytes, BPE training, the end-of-text id).

Exercise 1 checks the reader's BPE training loop against the library's trainer (Hugging Face
``tokenizers``, through :func:`~transformer_lib.data.tokenizer.train_tokenizer`). That trainer
takes the most frequent pair and, on a tie, the *smallest* pair: the lowest left id, then the
lowest right id, in its own numbering of the bytes. The check hands the reader's function
chunks numbered the library's way, so the same rule gives exactly the library's merges.
:func:`reference_train_bpe` is that rule written out (the tests confirm that it reproduces the
library's merges on every corpus here); the known mistakes are variants of it.
"""

from __future__ import annotations

import functools
import math
import operator
import warnings
from collections import Counter
from itertools import pairwise

import regex

from ...data.bpe import merges_from_ranks
from ...data.tokenizer import EOT_TEXT, GPT2_PATTERN, train_tokenizer
from .. import Part, check, check_parts, compare_function, function_answer

# ---- exercise 1: the BPE training loop -------------------------------------------------------

# Small corpora that exercise every rule: ordinary text, runs of one letter (a merge must not
# overlap itself), multi-byte characters, many tied counts, and one that runs out of pairs.
CORPORA = {
    "short story": "Tom saw a big dog. The dog saw Tom. Tom and the dog ran to the park, and the "
                   "dog sat down. Then Tom sat down too.",
    "repeated letters": "aaaa aaa aa aaaaaaa abab ababab baba",
    "accents and emoji": "naïve café 🙂 naïve café 🙂 über Über",
    "many ties": "ab cd ef gh ba dc fe hg",
}
CASES = (("short story", 30), ("repeated letters", 40), ("accents and emoji", 12),
         ("many ties", 6))


def chunk_ids(text: str, byte_ids: dict[int, int] | None = None) -> Counter:
    """Pre-tokenised chunks as tuples of byte ids (``byte_ids`` renumbers bytes), with counts."""
    byte_ids = byte_ids or {byte: byte for byte in range(256)}
    return Counter(tuple(byte_ids[byte] for byte in chunk.encode())
                   for chunk in regex.findall(GPT2_PATTERN, text))


@functools.cache
def _library_tokenizer(text: str, num_merges: int):
    with warnings.catch_warnings():  # a small corpus supports fewer merges: that is the test
        warnings.simplefilter("ignore")
        return train_tokenizer([text], 256 + num_merges + 1)


def library_chunks(name: str) -> Counter:
    """A corpus's chunks, with each byte numbered as the library's tokenizer numbers it."""
    ranks = _library_tokenizer(CORPORA[name], 1).ranks
    return chunk_ids(CORPORA[name], {byte: ranks[bytes([byte])] for byte in range(256)})


def library_merges(name: str, num_merges: int) -> dict[tuple[int, int], int]:
    """The merges the library's trainer learns on a corpus (fewer when it runs out of pairs)."""
    return merges_from_ranks(_library_tokenizer(CORPORA[name], num_merges).ranks)


def _merge(ids: tuple, pair: tuple[int, int], new_id: int, skip: bool = True) -> tuple:
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2 if skip else 1  # skip=False: the second id of the pair stays (a mistake)
        else:
            merged.append(ids[i])
            i += 1
    return tuple(merged)


def reference_train_bpe(chunks: Counter, num_merges: int, *, tie: str = "smallest",
                        weighted: bool = True, recount: bool = True, skip: bool = True,
                        next_id: bool = True, across_chunks: bool = False,
                        inverted: bool = False) -> dict:
    """BPE training as the library does it; each keyword other than its default is a mistake."""
    if across_chunks:  # every chunk glued to the next: pairs across chunk boundaries
        chunks = Counter({tuple(i for ids, n in chunks.items() for _ in range(n) for i in ids): 1})
    chunks = Counter(chunks)
    merges: dict = {}
    counts = None
    for step in range(num_merges):
        if counts is None or recount:
            counts = Counter()
            for ids, n in chunks.items():
                for pair in pairwise(ids):
                    counts[pair] += n if weighted else 1
        if not counts:
            break
        if tie == "smallest":
            pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        elif tie == "largest":
            pair = max(counts, key=lambda p: (counts[p], p))
        else:  # "first": max() keeps the first pair it meets among equals
            pair = max(counts, key=counts.get)
        new_id = 256 + step if next_id else 256
        merges[pair] = new_id
        chunks = Counter({_merge(ids, pair, new_id, skip): n for ids, n in chunks.items()})
    return {v: k for k, v in merges.items()} if inverted else merges


BPE_MISTAKES = {
    "on a tie you kept the pair counted first; the library takes the smallest pair (the lowest "
    "left id, then the lowest right id)": functools.partial(reference_train_bpe, tie="first"),
    "on a tie you took the largest pair; the library takes the smallest (the lowest left id, "
    "then the lowest right id)": functools.partial(reference_train_bpe, tie="largest"),
    "count a pair once for every time its chunk occurs (weight by the chunk's count), not once "
    "per distinct chunk": functools.partial(reference_train_bpe, weighted=False),
    "count the pairs again after every merge: a merge changes the pairs around it, and the "
    "pair just merged is gone": functools.partial(reference_train_bpe, recount=False),
    "after merging a pair, skip both of its ids: in a a a the pair (a, a) merges once, "
    "leaving [aa, a]": functools.partial(reference_train_bpe, skip=False),
    "give each merge the next free id: 256, then 257, ...":
        functools.partial(reference_train_bpe, next_id=False),
    "count pairs inside each chunk only, never across two chunks":
        functools.partial(reference_train_bpe, across_chunks=True),
    "return {(left, right): new_id}, the pair as the key":
        functools.partial(reference_train_bpe, inverted=True),
}


def _on_library_chunks(train_bpe):
    """``train_bpe`` run on a named corpus's chunks (a fresh copy each call)."""
    def run(name: str, num_merges: int):
        merges = train_bpe(library_chunks(name), num_merges)
        if not isinstance(merges, dict):
            raise TypeError(f"return a dict {{(left, right): new_id}}, not a "
                            f"{type(merges).__name__}")
        return {_as_ints(pair): _as_ints(new_id) for pair, new_id in merges.items()}
    return run


def _as_ints(value):
    """Ids as plain ints (a numpy or tensor integer compares like one), tuples kept tuples."""
    if isinstance(value, (tuple, list)):
        return tuple(_as_ints(v) for v in value)
    try:
        return operator.index(value)
    except TypeError:
        return value


def _describe_bpe_case(case) -> str:
    name, num_merges = case
    return f"the {name!r} corpus with {num_merges} merges"


def exercise_1(train_bpe) -> None:
    """train_bpe(chunks, num_merges): the library's merges, tie rule included."""
    attempt = function_answer(train_bpe, Counter({(1, 2, 1, 2): 1}), 1)
    check("exercise 1", attempt,
          lambda f: compare_function(
              _on_library_chunks(f), library_merges, CASES,
              {message: _on_library_chunks(wrong) for message, wrong in BPE_MISTAKES.items()},
              describe_case=_describe_bpe_case),
          hint="count the pairs, take the most frequent (the smallest pair on a tie), record "
               "it with the next free id, merge it in every chunk, and repeat; stop early when "
               "no pair is left")


# ---- exercises 2 to 5 ------------------------------------------------------------------------

NAIVE = "naïve"


def _is_count(answer, expected: int) -> bool:
    return not isinstance(answer, bool) and int(answer) == answer and int(answer) == expected


def exercise_2(naive_bytes) -> None:
    """UTF-8 bytes of the word "naïve"."""
    check("exercise 2", naive_bytes, lambda answer: _is_count(answer, len(NAIVE.encode())),
          hint="look each character up in the table at the top of the chapter (the ASCII "
               "letters are there too) and add up their UTF-8 bytes",
          expects="a whole number")


HAND_MERGE_TEXT = b"abababcab"


def _one_merge(ids: list[int]) -> tuple[tuple[int, int], list[int]]:
    counts = Counter(pairwise(ids))
    best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
    return best, list(_merge(tuple(ids), best, 256))


def _pair_is_right(answer) -> bool | str:
    best, _ = _one_merge(list(HAND_MERGE_TEXT))
    pair = tuple(int(i) for i in answer)
    if len(pair) != 2:
        raise ValueError("not a pair")
    if pair == best[::-1]:
        return "that pair in the other order: which id comes first in the text?"
    return pair == best


def _ids_are_right(answer) -> bool:
    _, merged = _one_merge(list(HAND_MERGE_TEXT))
    return [int(i) for i in answer] == merged


def exercise_3(most_frequent_pair, ids_after_merge) -> None:
    """One BPE merge by hand on "abababcab": the winning pair and the ids after merging it."""
    check_parts("exercise 3",
                Part("most_frequent_pair", most_frequent_pair, _pair_is_right,
                     "write down every neighbouring pair of the nine byte ids and count each",
                     expects="a pair of ids (left, right)"),
                Part("ids_after_merge", ids_after_merge, _ids_are_right,
                     "scan the ids from the left, replacing each occurrence of the winning pair "
                     "by 256 (an id can belong to one merged pair only)",
                     expects="a list of ids"))


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


def unfamiliar_words(tokenizer, text: str) -> list[str]:
    """The words of ``text`` (letter runs as the pre-tokeniser cuts them, leading space kept)
    that ``tokenizer`` encodes as a single token, each once, in order."""
    words = [chunk for chunk in regex.findall(GPT2_PATTERN, text) if chunk.strip().isalpha()]
    return list(dict.fromkeys(word for word in words if len(tokenizer.encode(word)) == 1))


def _words_are_right(answer, tokenizer, text: str) -> bool | str:
    if isinstance(answer, str):
        raise TypeError("one string")
    given, expected = {str(word) for word in answer}, set(unfamiliar_words(tokenizer, text))
    if given == expected:
        return True
    if {word.strip() for word in given} == {word.strip() for word in expected}:
        return ("keep the space in front of a word as the pre-tokeniser does: ' dog' and 'dog' "
                "are different chunks, and only one of them is a single token")
    return False


def exercise_5(unfamiliar_bytes_per_token, single_token_words, tokenizer,
               unfamiliar_text: str) -> None:
    """Bytes per token of the story tokenizer on a line of code, and its single-token words."""
    measured = len(unfamiliar_text.encode()) / len(tokenizer.encode(unfamiliar_text))
    check_parts("exercise 5",
                Part("unfamiliar_bytes_per_token", unfamiliar_bytes_per_token,
                     lambda answer: math.isclose(float(answer), measured, abs_tol=0.01),
                     "count the UTF-8 bytes of the text and the ids the story tokenizer encodes "
                     "it to, and divide, as bytes_per_token does for many texts",
                     expects="a number"),
                Part("single_token_words", single_token_words,
                     lambda answer: _words_are_right(answer, tokenizer, unfamiliar_text),
                     "cut the line with the pre-tokeniser's regex, keep the runs of letters, and "
                     "encode each one on its own: which give exactly one id?",
                     expects="a list of strings"))


def expected_values(tokenizer=None, unfamiliar_text: str | None = None) -> dict[str, object]:
    """The numbers right answers give (for the test that the chapter shows none of them).

    Exercise 5's figure needs the chapter's story tokenizer and line; without them it is left
    out.
    """
    pair, merged = _one_merge(list(HAND_MERGE_TEXT))
    values = {"exercise 2": len(NAIVE.encode()), "exercise 3 pair": pair,
              "exercise 3 ids": merged}
    if tokenizer is not None and unfamiliar_text is not None:
        values["exercise 5"] = (len(unfamiliar_text.encode())
                                / len(tokenizer.encode(unfamiliar_text)))
    return values
