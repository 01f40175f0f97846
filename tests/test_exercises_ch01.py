"""Chapter 1's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint."""

import pytest
from exercise_checks import assert_cases, printed

from transformer_lib.book.exercises import ch01
from transformer_lib.data.tokenizer import train_tokenizer

STORIES = ["Once upon a time there was a cat. The cat sat in the sun.",
           "One day a bird sang a song, and the cat listened to the bird."] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(STORIES, 300)






def test_exercises_1_to_3(capsys):
    # "naïve": four ASCII letters and ï (two bytes); abababcab: (a, b) occurs 4 times.
    assert_cases(capsys, 1, ch01.exercise_1, [...], [6], [[5], ["6"]])
    assert_cases(capsys, 2, ch01.exercise_2, [..., ...], [(97, 98), [256, 256, 256, 99, 256]],
                 [[(97, 98), [256, 256, 256, 99, 97, 98]],  # the last (a, b) left unmerged
                  [(98, 97), [97, 256, 256, 98, 99, 97, 98]], [(97, 98), [256]]])
    assert_cases(capsys, 3, ch01.exercise_3, [...], [256], [[255], [257], [True]])
    ch01.exercise_2((97, 98), ...)  # half an answer is not an answer yet
    assert printed(capsys) == "exercise 2: not attempted yet"


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


def test_exercise_5_bytes_per_token(tokenizer, capsys):
    text = "import numpy as np  # a line unlike the stories\n"
    measured = len(text.encode()) / len(tokenizer.encode(text))
    assert_cases(capsys, 5, ch01.exercise_5, [..., tokenizer, text],
                 [round(measured, 3), tokenizer, text],
                 [[measured + 0.5, tokenizer, text], ["many", tokenizer, text]])
