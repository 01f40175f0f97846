"""Tests for the words task (transformer_lib.data.tasks): headers, held-out triples, the score."""

import os
import re

import numpy as np
import pytest
import torch

from tests.conftest import ByteTokenizer
from transformer_lib import ModelConfig, Transformer
from transformer_lib.data import tasks

STORY = "The brave dog ran to the tree. The dog saw a red ball under the trees and a Shiny hat."


def test_story_words_in_order_of_first_use_whole_words_only():
    # "trees" is not "tree", "Shiny" is "shiny", "dog" counts once
    assert tasks.story_words(STORY) == ["brave", "dog", "tree", "red", "ball", "shiny", "hat"]
    assert tasks.story_words("The treehouse was dark.") == ["dark"]


def test_choose_words_is_seeded_ordered_and_from_the_story():
    first = tasks.choose_words(STORY, "train:0")
    assert first == tasks.choose_words(STORY, "train:0")
    assert len(set(first)) == 3 and set(first) <= set(tasks.story_words(STORY))
    order = tasks.story_words(STORY)
    assert [order.index(w) for w in first] == sorted(order.index(w) for w in first)
    draws = {tasks.choose_words(STORY, f"train:{i}") for i in range(30)}
    assert len(draws) > 1, "the key must change the draw"
    assert tasks.choose_words("A dog and a cat.", "train:0") is None


def test_header_and_headed_story():
    assert tasks.header(("ball", "tree", "brave")) == "Words: ball, tree, brave"
    text = tasks.headed_story("Once.", ("ball", "tree", "brave"))
    assert text == "Words: ball, tree, brave\nOnce."
    with pytest.raises(ValueError, match="three"):
        tasks.header(("ball", "tree"))
    prompt = tasks.plain_prompt(("ball", "tree", "brave"))
    assert all(word in prompt for word in ("ball", "tree", "brave"))
    assert not prompt.startswith(tasks.HEADER_PREFIX)


def test_task_stories_keep_only_stories_with_three_words():
    stories = [STORY, "A dog and a cat.", "The cold river ran by the green hill."]
    out = tasks.task_stories(stories)
    assert len(out) == 2
    for text in out:
        head, body = text.split("\n", 1)
        words = head.removeprefix(tasks.HEADER_PREFIX).split(", ")
        assert tasks.uses_all(body, words)


def test_uses_all_and_score():
    assert tasks.uses_all("A Ball by the tree; so brave!", ("ball", "tree", "brave"))
    assert not tasks.uses_all("balls by the trees, so brave", ("ball", "tree", "brave"))
    texts = ["ball tree brave", "ball tree", "nothing", "brave tree ball"]
    triples = [("ball", "tree", "brave")] * 4
    assert tasks.words_score(texts, triples) == 0.5
    with pytest.raises(ValueError, match="one text per triple"):
        tasks.words_score(texts[:3], triples)


def test_held_out_triples_are_distinct_and_unseen_in_training():
    train = [STORY, "The cold river ran by the green hill."]
    validation = [STORY, "The cold river ran by the green hill.", "A dark forest, a warm bed "
                  "and a small cat.", "A dark forest, a warm bed and a small cat."]
    seen = tasks.training_triples(train)
    triples = tasks.held_out_triples(validation, train, count=1)
    assert len(triples) == 1 and frozenset(triples[0]) not in seen
    with pytest.raises(ValueError, match="held-out triples"):
        tasks.held_out_triples(validation, train, count=10)


def test_held_out_triples_leave_out_the_headers_of_the_swapped_copies():
    """The fine-tuning data heads swapped copies with new triples: those are seen in training
    too, so none of them may be held out."""
    train = [LONG_STORY]
    swapped_heads = [tasks.swapped_story(LONG_STORY, f"train:0:{copy}").split("\n", 1)[0]
                     for copy in (1, 2)]
    swapped_triples = [tuple(head.removeprefix(tasks.HEADER_PREFIX).split(", "))
                       for head in swapped_heads]
    assert {frozenset(t) for t in swapped_triples} <= tasks.training_triples(train)
    assert not {frozenset(t) for t in swapped_triples} & tasks.training_triples(
        train, swapped_copies=0)
    # validation stories that use exactly a swapped copy's words
    validation = [f"The {' and the '.join(words)}." for words in swapped_triples]
    with pytest.raises(ValueError, match="only 0 held-out triples"):
        tasks.held_out_triples(validation, train, count=1)
    assert len(tasks.held_out_triples(validation, train, count=1, swapped_copies=0)) == 1


def test_a_story_without_an_unused_word_of_a_kind_has_no_swapped_copy():
    story = "They like to jump, run, swim, climb and laugh."  # five of the six verbs
    assert tasks.choose_words(story, "train:0:1") is not None
    assert tasks.swapped_story(story, "train:0:1") is None


@pytest.mark.skipif(not os.environ.get("TINYSTORIES_PATH"), reason="needs the book's extract")
def test_book_extract_gives_enough_training_stories_and_200_held_out_triples():
    from transformer_lib.data import book_stories

    train, validation = book_stories("train"), book_stories("validation")
    assert len(tasks.task_stories(train)) > 1000
    triples = tasks.held_out_triples(validation, train)
    assert len(triples) == tasks.NUM_HELD_OUT == len({frozenset(t) for t in triples})
    assert not {frozenset(t) for t in triples} & tasks.training_triples(train)
    assert triples == tasks.held_out_triples(validation, train)  # fixed


def test_generate_for_prompts_batches_like_one_by_one():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset("tiny", vocab_size=257, num_layers=2)).eval()
    tokenizer = ByteTokenizer()
    prompts = ["Words: a, b, c\n", "Words: x, y, z\n", "Hi\n"]  # two share a length
    batched = tasks.generate_for_prompts(model, tokenizer, prompts, max_new_tokens=12,
                                         temperature=0.0)
    alone = [tasks.generate_for_prompts(model, tokenizer, [p], max_new_tokens=12,
                                        temperature=0.0)[0] for p in prompts]
    assert batched == alone and len(batched) == 3
    score, texts = tasks.score_model(model, tokenizer, [("a", "b", "c")], max_new_tokens=5)
    assert 0.0 <= score <= 1.0 and len(texts) == 1
    with pytest.raises(ValueError, match="prompt must be"):
        tasks.score_model(model, tokenizer, [("a", "b", "c")], prompt="chat")


def test_encode_texts_lays_out_like_the_token_cache():
    class Tok(ByteTokenizer):
        def encode_batch(self, texts, add_eot=False):
            return [self.encode(t) + ([self.eot_id] if add_eot else []) for t in texts]

    ids = tasks.encode_texts(["ab", "c"], Tok())
    assert ids.tolist() == [256, 97, 98, 256, 99, 256]


LONG_STORY = ("Ball games were fun. The brave dog ran to the tree with his ball. "
              "Under the tree, the dog was brave again.")


def test_swapped_story_replaces_the_header_words_by_unused_words_of_the_same_kind():
    swapped = tasks.swapped_story(LONG_STORY, "train:0:1")
    assert swapped == tasks.swapped_story(LONG_STORY, "train:0:1")  # fixed by the key
    head, story = swapped.split("\n", 1)
    new_words = head.removeprefix(tasks.HEADER_PREFIX).split(", ")
    old_words = tasks.choose_words(LONG_STORY, "train:0:1")
    assert tasks.uses_all(story, new_words)
    assert not set(tasks.story_words(story)) & set(old_words)  # every use replaced
    assert not set(new_words) & set(tasks.story_words(LONG_STORY))  # words the story lacked
    for old, new in zip(old_words, new_words, strict=True):
        for kind in (tasks.NOUNS, tasks.ADJECTIVES, tasks.VERBS):
            assert (old in kind) == (new in kind)
    if "ball" in old_words:  # the capital of "Ball games" is kept
        assert story.startswith(new_words[old_words.index("ball")].capitalize())
    # only the three words change: the rest of the story is untouched
    pattern = r"\b(" + "|".join(new_words) + r")\b"
    assert (re.sub(pattern, "_", story, flags=re.IGNORECASE)
            == re.sub(r"\b(" + "|".join(old_words) + r")\b", "_", LONG_STORY,
                      flags=re.IGNORECASE))
    assert tasks.swapped_story("A dog and a cat.", "train:0:1") is None
    keys = {tasks.swapped_story(LONG_STORY, f"train:0:{i}") for i in range(10)}
    assert len(keys) > 1  # other copies, other swaps


class WordTokenizer:
    """Words (with their leading space) and punctuation as tokens; ids made up on first use."""

    eot_id = 0

    def __init__(self):
        self.ids = {"<eot>": 0}

    def encode(self, text):
        return [self.ids.setdefault(piece, len(self.ids))
                for piece in re.findall(r" ?\w+|\s|[^\w\s]", text)]


def test_training_rows_weigh_the_header_words_in_the_story_and_nothing_of_the_header():
    tokenizer = WordTokenizer()
    stories = [LONG_STORY, "A dog and a cat.", "The red bird sang to the kind cat in the sun."]
    rows, weights = tasks.training_rows(stories, tokenizer, seq_len=40, swapped_copies=2,
                                        word_weight=5.0)
    assert rows.shape == weights.shape and rows.shape[1] == 41
    assert len(rows) == 2 * 3  # two stories have three list words, in three copies each
    assert rows.dtype == np.int64 and weights.dtype == np.float32
    by_id = {i: piece for piece, i in tokenizer.ids.items()}
    for row, weight in zip(rows, weights, strict=True):
        assert row[0] == tokenizer.eot_id
        text = "".join(by_id[i] for i in row[1:] if i != tokenizer.eot_id)
        head = text.split("\n", 1)[0]
        words = head.removeprefix(tasks.HEADER_PREFIX).split(", ")
        header_end = 1 + len(tokenizer.encode(head + "\n"))
        assert not weight[:header_end].any()  # the prompt is not a target
        story_ids = row[header_end:]
        counted = weight[header_end:]
        for token, w in zip(story_ids, counted, strict=True):
            piece = by_id[int(token)]
            if token == tokenizer.eot_id:
                assert w == 0  # padding
            elif piece.strip().lower() in words:
                assert w == 5.0
            else:
                assert w == 1.0
        assert (counted == 5.0).sum() >= 3  # every header word is used at least once
    with pytest.raises(ValueError, match="word_weight"):
        tasks.training_rows(stories, tokenizer, seq_len=40, word_weight=0.5)
