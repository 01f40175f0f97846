"""Tests for the words task (transformer_lib.data.tasks): headers, held-out triples, the score."""

import os

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
