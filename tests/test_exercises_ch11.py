"""The checks of chapter 11's exercises: placeholder, right answer, wrong answer."""

import math

from exercise_checks import printed

from transformer_lib.book.exercises import ch11


def _expect(capsys, number, verdict):
    line = printed(capsys)
    if verdict == "not yet":
        assert line.startswith(f"exercise {number}: not yet - hint:"), line
    else:
        assert line == f"exercise {number}: {verdict}", line


def test_exercise_1_previous_token_score(capsys):
    def placeholder(weights):
        ...

    def right(weights):
        return weights.diagonal(offset=-1).mean()

    def with_query_zero(weights):  # averages over every query, counting 0 for query 0
        return weights.diagonal(offset=-1).sum() / weights.shape[0]

    def main_diagonal(weights):
        return weights.diagonal().mean()

    ch11.exercise_1(placeholder)
    _expect(capsys, 1, "not attempted yet")
    ch11.exercise_1(right)
    _expect(capsys, 1, "correct")
    for wrong in (with_query_zero, main_diagonal, lambda w: w[5, 5, 5]):
        ch11.exercise_1(wrong)
        _expect(capsys, 1, "not yet")


def test_exercise_2_bits_per_byte(capsys):
    def placeholder(nats, text):
        ...

    def right(nats, text):
        return nats / math.log(2) / len(text.encode("utf-8"))

    def characters(nats, text):
        return nats / math.log(2) / len(text)

    def nats_per_byte(nats, text):
        return nats / len(text.encode("utf-8"))

    ch11.exercise_2(placeholder)
    _expect(capsys, 2, "not attempted yet")
    ch11.exercise_2(right)
    _expect(capsys, 2, "correct")
    for wrong in (characters, nats_per_byte):
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


def test_exercise_4_ablation_experiment(capsys):
    ch11.exercise_4(...)
    _expect(capsys, 4, "not attempted yet")
    ch11.exercise_4({"baseline": 1.20, "top3": 1.32, "bottom3": 1.22})  # chapter 11's figures
    _expect(capsys, 4, "correct")
    for wrong in ({"baseline": 1.20, "top3": 1.22, "bottom3": 1.32},  # swapped
                  {"baseline": 1.20, "top3": 1.21, "bottom3": 1.20},  # too small to be the top
                  {"baseline": 0.12, "top3": 0.3, "bottom3": 0.12},  # not losses in nats
                  {"top3": 1.32}):  # missing keys
        ch11.exercise_4(wrong)
        _expect(capsys, 4, "not yet")
