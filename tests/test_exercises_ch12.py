"""The checks of chapter 12's exercises: placeholder, right answer, wrong answers."""

import os

import pytest
import torch
from exercise_checks import assert_cases, printed

from transformer_lib.book import BOOK_MODEL, stored_model
from transformer_lib.book.exercises import ch12
from transformer_lib.model.config import ModelConfig
from transformer_lib.model.transformer import Transformer
from transformer_lib.training.metrics import evaluate_tokens, token_byte_lengths

needs_real_data = pytest.mark.skipif(
    not os.environ.get("TINYSTORIES_PATH"),
    reason="TINYSTORIES_PATH is unset: no local copy of the book's extract")


def test_exercise_1_gpt2_width_against_swiglu(capsys):
    # C = 128: 2 * C * 4C - 3 * C * 384
    assert_cases(capsys, 1, ch12.exercise_1, (..., 384), (-16384, 384),
                 [(16384, 384), (32768, 384), (49152, 384), (-16384 + 640, 384),
                  (-65536, 384), (-16000, 384), ("many", 384), (-16384.5, 384)])
    for wrong, words in ((16384, "the sign"), (32768, "three matrices"), (49152, "no gate"),
                         (-15744, "no biases"), (-65536, "one block")):
        ch12.exercise_1(wrong, 384)
        assert words in printed(capsys)
    ch12.exercise_1(-4096, 352)  # another SwiGLU width, another answer: nothing is hard-coded
    assert printed(capsys) == "exercise 1: correct"


def _results(**values):
    return {"variants": {name: {"runs": [{"seed": s, "val_bpb": v, "parameters": 1,
                                          "tokens_per_s": 1.0} for s, v in enumerate(seeds)]}
                         for name, seeds in values.items()}}


def test_exercise_2_directions_of_seeds_0_and_2_recomputed_from_the_results(capsys):
    # seed 1 of "close" sits inside the baseline's range: only without it is "close" worse
    results = _results(baseline=[2.0, 2.02, 2.01], worse=[2.2, 2.3, 2.25],
                       better=[1.8, 1.85, 1.9], noise=[1.99, 1.98, 2.1],
                       close=[2.05, 2.015, 2.04])
    right = {"worse": "worse", "better": "better", "close": "worse"}
    three_seeds = {"worse": "worse", "better": "better"}
    assert_cases(capsys, 2, ch12.exercise_2, (..., results), (right, results),
                 [({"worse": "better", "better": "worse", "close": "worse"}, results),
                  ({**right, "noise": "worse"}, results), (three_seeds, results),
                  ({**right, "worse": "bad"}, results), (["worse"], results)])
    ch12.exercise_2(three_seeds, results)
    assert "verdict of all three seeds" in printed(capsys)
    # a different file gives a different answer: nothing is hard-coded
    other = _results(baseline=[2.0, 2.02, 2.01], worse=[2.0, 2.3, 2.25])
    ch12.exercise_2({}, other)
    assert printed(capsys) == "exercise 2: correct"


def test_the_chapter_shows_no_answer():
    from answer_leaks import leaks

    from transformer_lib import book

    results = book.stored_ablations()
    answers = [-16384, *sorted(set(ch12._directions(ch12._only_seeds(results, (0, 2))))
                               - set(ch12._directions(results)))]
    assert answers[1:], "dropping seed 1 must change the verdict, or exercise 2 shows its answer"
    assert leaks("12_what_each_choice_buys", answers[:1]) == []


@needs_real_data
def test_exercise_3_own_variant_scored_again(capsys):
    stored = stored_model()
    tokenizer = stored.tokenizer
    changes = {"dropout": 0.1}  # a changed choice that leaves the stored weights usable
    model = Transformer(ModelConfig(vocab_size=tokenizer.vocab_size, **{**BOOK_MODEL, **changes}))
    model.load_state_dict(stored.model.state_dict())
    from transformer_lib.book import book_tokens

    val = book_tokens("validation", tokenizer).tokens[:1024]
    bits = evaluate_tokens(model.eval(), val, token_byte_lengths(tokenizer), 128, 16)[
        "bits_per_byte"]
    right = {"changes": changes, "model": model, "bits_per_byte": bits, "eval_tokens": 1024}
    torch.manual_seed(0)
    untrained = Transformer(model.config)
    untrained_bits = evaluate_tokens(untrained.eval(), val, token_byte_lengths(tokenizer), 128,
                                     16)["bits_per_byte"]
    wrongs = [
        ({**right, "bits_per_byte": bits - 0.05}, tokenizer),  # a figure not from this model
        ({**right, "changes": {}}, tokenizer),
        ({**right, "changes": {"num_heads": 4}}, tokenizer),  # the book's own value
        ({**right, "changes": {"colour": "red"}}, tokenizer),
        ({**right, "changes": {"dropout": 0.2}}, tokenizer),  # not what the model was built with
        ({**right, "model": untrained, "bits_per_byte": untrained_bits}, tokenizer),
        ({**right, "eval_tokens": 100}, tokenizer),
        ({"changes": changes}, tokenizer),
    ]
    assert_cases(capsys, 3, ch12.exercise_3, (..., tokenizer), (right, tokenizer), wrongs)
