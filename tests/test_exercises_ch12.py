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


def test_exercise_1_matched_gelu_width(capsys):
    assert_cases(capsys, 1, ch12.exercise_1, (..., 384), (576, 384),
                 [(384, 384), (512, 384), (575, 384), ("wide", 384), (576.5, 384)])
    ch12.exercise_1(384, 384)
    assert "two matrices" in printed(capsys)


def _results(**values):
    return {"variants": {name: {"runs": [{"seed": s, "val_bpb": v, "parameters": 1,
                                          "tokens_per_s": 1.0} for s, v in enumerate(seeds)]}
                         for name, seeds in values.items()}}


def test_exercise_2_directions_recomputed_from_the_results(capsys):
    results = _results(baseline=[2.0, 2.02, 2.01], worse=[2.2, 2.3, 2.25],
                       better=[1.8, 1.85, 1.9], noise=[2.03, 1.98, 2.1])
    right = {"worse": "worse", "better": "better"}
    assert_cases(capsys, 2, ch12.exercise_2, (..., results), (right, results),
                 [({"worse": "better", "better": "worse"}, results),
                  ({**right, "noise": "worse"}, results), ({"worse": "worse"}, results),
                  ({"worse": "bad", "better": "better"}, results), (["worse"], results)])
    # a different file gives a different answer: nothing is hard-coded
    other = _results(baseline=[2.0, 2.02, 2.01], worse=[2.0, 2.3, 2.25])
    ch12.exercise_2({}, other)
    assert printed(capsys) == "exercise 2: correct"


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
