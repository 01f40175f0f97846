"""Checks for the exercises of chapter 12 (what each choice buys)."""

from __future__ import annotations

import math

import torch

from ...analysis.ablations import clear_differences, summarise_ablations
from ...model.config import ModelConfig
from ...model.transformer import Transformer
from ...training.metrics import evaluate_tokens, token_byte_lengths
from .. import BOOK_MODEL, BOOK_TRAINING, book_tokens, check


def exercise_1(difference, swiglu_width: int) -> None:
    """How many parameters a GELU MLP of GPT-2's width, 4 x d_model, holds more (positive) or
    fewer (negative) than the book's SwiGLU MLP of width ``swiglu_width``, in one block."""
    d_model = BOOK_MODEL["d_model"]
    gelu, swiglu = 2 * d_model * 4 * d_model, 3 * d_model * swiglu_width
    expected = gelu - swiglu

    def is_right(answer) -> bool | str:
        count = int(answer)
        if count != answer:
            return "a count of parameters is a whole number"
        if count == -expected:
            return "the sign: positive when the GELU MLP holds more, negative when fewer"
        if count == gelu - 2 * d_model * swiglu_width:
            return "SwiGLU has three matrices (gate, up and down), the GELU MLP two"
        if count == 3 * d_model * 4 * d_model - swiglu:
            return "the GELU MLP has two matrices, up and down: no gate"
        if count == expected + 4 * d_model + d_model:  # GPT-2's two bias vectors
            return "the book's model has no biases"
        if count == expected * BOOK_MODEL["num_layers"]:
            return "one block's MLP, not the whole model's"
        return count == expected

    check("exercise 1", difference, is_right, expects="a whole number",
          hint="count each MLP's parameters: every matrix maps d_model to the hidden width or "
               "back")


# The seeds exercise 2 keeps: the first and the last of the sweep's three.
EXERCISE_2_SEEDS = (0, 2)


def _only_seeds(results: dict, seeds) -> dict:
    """``results`` with each variant's runs of ``seeds`` alone."""
    return {**results, "variants": {
        name: {**entry, "runs": [run for run in entry["runs"] if run["seed"] in seeds]}
        for name, entry in results["variants"].items()}}


def _directions(results: dict) -> dict[str, str]:
    return {name: "worse" if gap > 0 else "better"
            for name, gap in clear_differences(summarise_ablations(results)).items()}


def exercise_2(directions, results: dict) -> None:
    """{variant: "better" or "worse"} for every variant beyond the seeds' noise, by the chapter's
    rule, had the sweep run only seeds 0 and 2."""
    expected = _directions(_only_seeds(results, EXERCISE_2_SEEDS))
    all_seeds = _directions(results)

    def is_right(answer) -> bool | str:
        given = {str(name): str(word) for name, word in dict(answer).items()}
        if any(word not in ("better", "worse") for word in given.values()):
            return "say 'better' (fewer bits per byte than the baseline) or 'worse' for each"
        if given == all_seeds != expected:
            return "that is the verdict of all three seeds; keep only the runs of seeds 0 and 2"
        missing, extra = set(expected) - set(given), set(given) - set(expected)
        if extra:
            return (f"{len(extra)} of your variants have a seed inside the baseline's seed range "
                    f"(or the baseline one inside theirs): those are within noise")
        if missing:
            return f"{len(missing)} variant(s) beyond the noise are missing"
        return "a direction is the wrong way round" if given != expected else True

    check("exercise 2", directions, is_right, expects="a dict {variant name: 'better'/'worse'}",
          hint="keep each variant's runs of seeds 0 and 2; a variant differs beyond noise when "
               "all its seeds lie on one side of all the baseline's seeds")


def exercise_3(my_variant, tokenizer) -> None:
    """The reader's own variant: a dict with "changes" (ModelConfig fields), "model" (trained
    with them), "bits_per_byte" and "eval_tokens" (its score on that many validation tokens)."""

    def is_right(answer) -> bool | str:
        changes, model = dict(answer["changes"]), answer["model"]
        bits, eval_tokens = float(answer["bits_per_byte"]), int(answer["eval_tokens"])
        known = {f for f in ModelConfig(vocab_size=tokenizer.vocab_size).to_dict()}
        if not changes or set(changes) - known:
            return f"'changes' must name ModelConfig fields, from: {', '.join(sorted(known))}"
        baseline = ModelConfig(vocab_size=tokenizer.vocab_size, **BOOK_MODEL).to_dict()
        if all(baseline.get(name) == value for name, value in changes.items()):
            return "your changes leave the book's model as it is: change at least one choice"
        if not isinstance(model, Transformer):
            return "'model' must be the Transformer you trained"
        config = model.config.to_dict()
        if any(config[name] != value for name, value in changes.items()):
            return "the model was not built with your changes"
        if eval_tokens < 2 * BOOK_TRAINING["seq_len"] + 1:
            return "score at least two windows of validation tokens"
        # Score it again, on the same validation tokens.
        val = book_tokens("validation", tokenizer).tokens[:eval_tokens]
        with torch.no_grad():
            again = evaluate_tokens(model.eval(), val, token_byte_lengths(tokenizer),
                                    BOOK_TRAINING["seq_len"], BOOK_TRAINING["batch_size"])
        if not math.isclose(again["bits_per_byte"], bits, abs_tol=2e-3):
            return (f"scored again on the first {eval_tokens:,} validation tokens, the model "
                    f"gives another figure than your bits_per_byte")
        # A uniform guess costs log2(V) bits per token; bits per byte scale with the loss.
        uniform = math.log2(tokenizer.vocab_size) * math.log(2) / again["loss"] * bits
        if not bits < 0.9 * uniform:
            return "the model scores like a uniform guess: train it before scoring"
        return True

    check("exercise 3", my_variant, is_right,
          expects='a dict with "changes", "model", "bits_per_byte" and "eval_tokens"',
          hint="train with ablations.train_variant((changes, {}), tokenizer, steps) and hand "
               "back what it returns")
