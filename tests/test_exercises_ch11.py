"""The checks of chapter 11's exercises: placeholder, right answer, wrong and fabricated ones."""

import os
from pathlib import Path

import pytest
import torch
from answer_leaks import leaks
from exercise_checks import assert_cases, printed

from transformer_lib.analysis import interpret
from transformer_lib.book.exercises import ch11
from transformer_lib.data import book_stories
from transformer_lib.data.tokenizer import load_tokenizer
from transformer_lib.interop import from_llama2c


def _expect(capsys, number, verdict):
    line = printed(capsys)
    if verdict == "not yet":
        assert line.startswith(f"exercise {number}: not yet - hint:"), line
    else:
        assert line == f"exercise {number}: {verdict}", line


def test_exercise_1_induction_score(capsys):
    def placeholder(weights, length):
        ...

    def right(weights, length):  # written independently: loop over the second copy's queries
        T = weights.shape[0]
        return sum(float(weights[i, i - length + 1]) for i in range(1 + length, T)) / length

    def same_token(weights, length):
        return float(weights.diagonal(offset=-length)[-length:].mean())

    def every_query(weights, length):
        return float(weights.diagonal(offset=-(length - 1)).mean())

    def previous_token(weights, length):
        return float(weights.diagonal(offset=-1).mean())

    ch11.exercise_1(placeholder)
    _expect(capsys, 1, "not attempted yet")
    ch11.exercise_1(right)
    _expect(capsys, 1, "correct")
    for wrong, message in ((same_token, "earlier copy of the same token"),
                           (every_query, "second copy only"),
                           (previous_token, "previous-token score")):
        ch11.exercise_1(wrong)
        said = printed(capsys)
        assert said.startswith("exercise 1: not yet - hint:") and message in said, said
    ch11.exercise_1(lambda weights, length: 0.0)
    _expect(capsys, 1, "not yet")


def test_exercise_2_pair_energy(capsys):
    def placeholder(vectors):
        ...

    def right(vectors):  # written independently: pair by pair, in float64
        v = vectors.double().reshape(-1, vectors.shape[-1])
        half = v.shape[1] // 2
        energy = torch.stack([(v[:, i] ** 2 + v[:, i + half] ** 2).sum() for i in range(half)])
        return (energy / energy.sum()).float()

    def interleaved(vectors):
        v = vectors.reshape(-1, vectors.shape[-1])
        energy = (v[:, 0::2] ** 2 + v[:, 1::2] ** 2).sum(0)
        return energy / energy.sum()

    def uniform(vectors):
        return torch.full((vectors.shape[-1] // 2,), 2 / vectors.shape[-1])

    ch11.exercise_2(placeholder)
    _expect(capsys, 2, "not attempted yet")
    ch11.exercise_2(right)
    _expect(capsys, 2, "correct")
    ch11.exercise_2(interleaved)
    assert "interleaved pairs" in printed(capsys)
    for wrong in (uniform, lambda v: torch.zeros(v.shape[-1] // 2), lambda v: right(v)[:-1]):
        ch11.exercise_2(wrong)
        _expect(capsys, 2, "not yet")


def test_exercise_3_settled_layer(capsys):
    def placeholder(logits):
        ...

    def right(logits):
        top = logits.argmax(-1)
        layer = len(top) - 1
        while layer > 0 and top[layer - 1] == top[-1]:
            layer -= 1
        return layer

    def first_agreement(logits):  # the first stream that agrees, even if a later one does not
        top = logits.argmax(-1)
        return int((top == top[-1]).nonzero()[0])

    ch11.exercise_3(placeholder)
    _expect(capsys, 3, "not attempted yet")
    ch11.exercise_3(right)
    _expect(capsys, 3, "correct")
    for wrong in (first_agreement, lambda logits: len(logits) - 1):
        ch11.exercise_3(wrong)
        _expect(capsys, 3, "not yet")


LOCAL_DIR = os.environ.get("LLAMA2C_PATH")
needs_stories260k = pytest.mark.skipif(
    not LOCAL_DIR or not (Path(LOCAL_DIR) / "stories260K.bin").is_file(),
    reason="set LLAMA2C_PATH to a directory holding stories260K.bin and tok512.bin")


@pytest.fixture(scope="module")
def ablations():
    """(single increases, losses, ratios) measured here the way the solutions do."""
    model, tokenizer = from_llama2c("stories260K"), load_tokenizer("tok512")
    rows = [[tokenizer.bos_id] + tokenizer.encode(text)[:255]
            for text in book_stories("validation")[:16]]
    windows = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    targets = torch.zeros(len(rows), windows.shape[1] - 1, dtype=torch.bool)
    for row, ids in enumerate(rows):
        windows[row, :len(ids)] = torch.tensor(ids)
        targets[row, :len(ids) - 1] = True
    baseline, ablated = interpret.head_ablation_losses(model, windows, targets)
    increases = ablated - baseline
    order = increases.flatten().argsort(descending=True).tolist()
    heads = {"top3": [divmod(i, increases.shape[1]) for i in order[:3]],
             "bottom3": [divmod(i, increases.shape[1]) for i in order[::-1][:3]]}
    losses = {"baseline": baseline, **{name: interpret.ablated_loss(model, windows, h, targets)
                                       for name, h in heads.items()}}
    ratios = tuple((losses[name] - baseline) / sum(float(increases[l_, h_]) for l_, h_ in h)
                   for name, h in heads.items())
    return increases, losses, ratios


@needs_stories260k
def test_exercise_4_is_measured_again(capsys, ablations):
    increases, losses, ratios = ablations
    assert losses["top3"] > losses["bottom3"] > losses["baseline"]
    zeros = torch.zeros_like(increases)
    made_up = {"baseline": 1.20, "top3": 1.32, "bottom3": 1.22}  # the right direction
    one_changed = {**losses, "bottom3": losses["bottom3"] + 0.01}
    changed_increases = increases.clone()
    changed_increases.view(-1)[increases.argmax()] += 0.05
    assert_cases(capsys, 4, ch11.exercise_4, [..., ..., ...], [increases, losses, ratios],
                 [[zeros, {"baseline": 0.0, "top3": 0.0, "bottom3": 0.0}, (0.0, 0.0)],
                  [increases, made_up, ratios], [increases, one_changed, ratios],
                  [changed_increases, losses, ratios], [increases, losses, (1.0, 1.0)],
                  [increases, losses, (ratios[0], ratios[1] * 1.01)]])
    ch11.exercise_4(increases, losses, (1.0, 1.0))
    assert printed(capsys).startswith("exercise 4: not yet (single_increases right, "
                                      "ablation_losses right, together_over_sum not yet)")
    for bad in (..., increases[:4], [1.0, 2.0], increases * float("nan")):
        ch11.exercise_4(bad, losses, ratios)
        assert "pass single_increases as the 5 x 8 tensor" in printed(capsys)


@needs_stories260k
def test_the_chapter_shows_no_answer():
    values = ch11.expected_values()
    assert values["exercise 4 top3"] > values["exercise 4 bottom3"]
    assert leaks("11_inside_a_trained_model", values.values()) == []
