"""Chapter 1's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint that names the mistake where one is known."""

from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from answer_leaks import leaks
from exercise_checks import assert_cases, printed

from transformer_lib import book
from transformer_lib.book.exercises import ch01
from transformer_lib.data import book_stories
from transformer_lib.data.tokenizer import train_tokenizer

STORIES = ["Once upon a time there was a cat. The cat sat in the sun.",
           "One day a bird sang a song, and the cat listened to the bird."] * 20
UNFAMILIAR = "def play(dog, ball): return dog.run(ball) if ball.is_red else dog.sleep()\n"
CHAPTER = Path(__file__).resolve().parent.parent / "notebooks" / "01_tokens.py"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(STORIES, 300)


# ---- exercise 1: the reader's BPE training loop, and the mistakes a reader makes -------------
# Each function below is written the way a reader would write it (not taken from the check).


def merge(ids, pair, new_id, skip=2):
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += skip
        else:
            merged.append(ids[i])
            i += 1
    return merged


def pair_counts(chunks, weighted=True):
    counts = Counter()
    for ids, n in chunks.items():
        for pair in pairwise(ids):
            counts[pair] += n if weighted else 1
    return counts


def make_train_bpe(choose, weighted=True, recount=True, skip=2, same_id=False):
    def train_bpe(chunks, num_merges):
        merges, counts = {}, pair_counts(chunks, weighted)
        for step in range(num_merges):
            if recount:
                counts = pair_counts(chunks, weighted)
            if not counts:
                break
            pair = choose(counts)
            new_id = 256 if same_id else 256 + step
            merges[pair] = new_id
            chunks = Counter({tuple(merge(list(ids), pair, new_id, skip)): n
                              for ids, n in chunks.items()})
        return merges
    return train_bpe


def smallest(counts):
    top = max(counts.values())
    return min(pair for pair, count in counts.items() if count == top)


right = make_train_bpe(smallest)


def glued_chunks(chunks, num_merges):
    ids = [i for chunk, n in chunks.items() for _ in range(n) for i in chunk]
    return right(Counter({tuple(ids): 1}), num_merges)


def inverted(chunks, num_merges):
    return {new_id: pair for pair, new_id in right(chunks, num_merges).items()}


MISTAKES = [
    (make_train_bpe(lambda counts: counts.most_common(1)[0][0]), "the pair counted first"),
    (make_train_bpe(lambda counts: max(counts, key=counts.get)), "the pair counted first"),
    (make_train_bpe(lambda counts: max(counts, key=lambda p: (counts[p], p))),
     "you took the largest pair"),
    (make_train_bpe(smallest, weighted=False), "weight by the chunk's count"),
    (make_train_bpe(smallest, recount=False), "count the pairs again after every merge"),
    (make_train_bpe(smallest, skip=1), "skip both of its ids"),
    (make_train_bpe(smallest, same_id=True), "the next free id"),
    (glued_chunks, "never across two chunks"),
    (inverted, "the pair as the key"),
]


def test_the_reference_loop_reproduces_the_library_trainer():
    for name, num_merges in ch01.CASES:
        expected = ch01.library_merges(name, num_merges)
        assert ch01.reference_train_bpe(ch01.library_chunks(name), num_merges) == expected
        assert right(ch01.library_chunks(name), num_merges) == expected
    # one corpus runs out of pairs before its number of merges: the loop must stop
    assert len(ch01.library_merges("repeated letters", 40)) < 40


def test_exercise_1_placeholder_and_right(capsys):
    def placeholder(chunks, num_merges):
        ...

    ch01.exercise_1(placeholder)
    assert printed(capsys) == "exercise 1: not attempted yet"
    ch01.exercise_1(right)
    assert printed(capsys) == "exercise 1: correct"


@pytest.mark.parametrize(("wrong", "message"), MISTAKES)
def test_exercise_1_names_each_mistake(capsys, wrong, message):
    ch01.exercise_1(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 1: not yet - hint: ") and message in said, said


def test_exercise_1_other_wrong_answers(capsys):
    def returns_a_list(chunks, num_merges):
        return list(right(chunks, num_merges))

    def never_stops(chunks, num_merges):
        merges = {}
        for step in range(num_merges):
            counts = pair_counts(chunks)
            pair = max(counts, key=counts.get)  # fails once no pair is left
            merges[pair] = 256 + step
            chunks = Counter({tuple(merge(list(ids), pair, 256 + step)): n
                              for ids, n in chunks.items()})
        return merges

    ch01.exercise_1(returns_a_list)
    assert "return a dict" in printed(capsys)
    ch01.exercise_1(never_stops)
    said = printed(capsys)
    assert said.startswith("exercise 1: not yet") and "'repeated letters' corpus" in said, said


# ---- exercises 2 to 5 ------------------------------------------------------------------------


def test_exercise_2_naive_bytes(capsys):
    # "naïve": four ASCII letters and ï (two bytes)
    assert_cases(capsys, 2, ch01.exercise_2, [...], [6], [[5], [7], [True]])
    ch01.exercise_2("six")
    assert printed(capsys) == "exercise 2: not yet - hint: expected a whole number"


def test_exercise_3_one_merge_by_hand(capsys):
    # abababcab: (a, b) = (97, 98) occurs 4 times
    pair, merged = (97, 98), [256, 256, 256, 99, 256]
    assert_cases(capsys, 3, ch01.exercise_3, [..., ...], [pair, merged],
                 [[(98, 97), [97, 256, 256, 98, 99, 97, 98]], [pair, [256]]])
    ch01.exercise_3(pair, [256, 256, 256, 99, 97, 98])  # half right: the last (a, b) unmerged
    said = printed(capsys)
    assert said.startswith("exercise 3: not yet (most_frequent_pair right, ids_after_merge "
                           "not yet) - hint: ids_after_merge: "), said
    ch01.exercise_3(97, merged)  # one number where a pair is expected
    assert printed(capsys) == ("exercise 3: not yet (most_frequent_pair not yet, ids_after_merge "
                               "right) - hint: most_frequent_pair: expected a pair of ids "
                               "(left, right)")
    ch01.exercise_3((98, 97), merged)
    assert "the other order" in printed(capsys)
    ch01.exercise_3(pair, ...)
    assert printed(capsys).startswith("exercise 3: not yet (most_frequent_pair right, "
                                      "ids_after_merge not attempted)")


def test_exercise_4_encode_stories(tokenizer, capsys):
    def placeholder(stories, tokenizer):
        ...

    def right(stories, tokenizer):
        return [i for story in stories for i in tokenizer.encode(story, add_eot=True)]

    def typed_separator(stories, tokenizer):
        return tokenizer.encode("<|endoftext|>".join(stories) + "<|endoftext|>")

    def skips_empty(stories, tokenizer):
        return [i for story in stories if story for i in tokenizer.encode(story, add_eot=True)]

    def crashes(stories, tokenizer):
        raise ValueError("oops")

    assert_cases(capsys, 4, ch01.exercise_4, [placeholder, tokenizer], [right, tokenizer],
                 [[typed_separator, tokenizer], [skips_empty, tokenizer], [crashes, tokenizer]])


def test_exercise_5_bytes_per_token_and_words(tokenizer, capsys):
    text = "The cat sat. import numpy as np  # the sun\n"
    measured = len(text.encode()) / len(tokenizer.encode(text))
    words = ch01.unfamiliar_words(tokenizer, text)
    # worked out independently: the letter chunks whose encoding is one id
    assert " cat" in words and "import" not in words
    assert words == [w for w in dict.fromkeys(["The", " cat", " sat", "import", " numpy", " as",
                                                " np", " the", " sun"])
                     if len(tokenizer.encode(w)) == 1]
    assert_cases(capsys, 5, ch01.exercise_5, [..., ..., tokenizer, text],
                 [round(measured, 3), list(reversed(words)), tokenizer, text],
                 [[measured + 0.5, words, tokenizer, text], [0.0, [], tokenizer, text]])
    ch01.exercise_5(measured, words + [" np"], tokenizer, text)  # half right
    assert printed(capsys).startswith("exercise 5: not yet (unfamiliar_bytes_per_token right, "
                                      "single_token_words not yet)")
    ch01.exercise_5(measured, [w.strip() for w in words], tokenizer, text)
    assert "keep the space in front of a word" in printed(capsys)
    ch01.exercise_5(measured, " cat", tokenizer, text)  # one string, not a list
    assert printed(capsys).endswith("single_token_words: expected a list of strings")
    ch01.exercise_5("many", words, tokenizer, text)
    assert printed(capsys).endswith("unfamiliar_bytes_per_token: expected a number")


def test_the_chapter_shows_no_answer():
    story_tokenizer = train_tokenizer(book_stories("train"), book.BOOK_VOCAB_SIZE)
    assert f'unfamiliar_text = "{UNFAMILIAR[:-1]}\\n"' in CHAPTER.read_text(encoding="utf-8")
    values = ch01.expected_values(story_tokenizer, UNFAMILIAR)
    assert set(values) == {"exercise 2", "exercise 3 pair", "exercise 3 ids", "exercise 5"}
    assert leaks("01_tokens", values.values()) == []
