"""Chapter 7's exercise checks: placeholder, right and wrong answers."""

import math

import numpy as np
import pytest
import torch

from transformer_lib.book.exercises import ch07
from transformer_lib.training.trainer import TrainConfig

CONFIG = TrainConfig(batch_size=16, seq_len=128, max_steps=300)
TOKENS = np.arange(200, dtype=np.uint16)


def windows(first, length=16, count=4):
    return torch.stack([torch.arange(first + length * i, first + length * (i + 1))
                        for i in range(count)])


@pytest.mark.parametrize("call, placeholder, right, wrongs", [
    (lambda a: ch07.exercise_1(a, CONFIG, 500_000), ..., 300 * 16 * 128 / 500_000,
     [300 * 16 / 500_000, 300 * 16 * 128 / 563_733, "two"]),
    (lambda a: ch07.exercise_2(a, 2048, 1000, 3700), ..., 11 * 1000 / 3700,
     [math.log(2048) * 1000 / 3700, 11 / 3700]),
    (lambda a: ch07.exercise_3(a, TOKENS), None, (windows(0), windows(1)),
     [(windows(0), windows(0)), (windows(0, count=3), windows(1, count=3)),
      (windows(0).int(), windows(1).int()), (windows(0).numpy(), windows(1).numpy()),
      windows(0)]),
    (ch07.exercise_4, None, {"causal": 6.1, "no mask": 2.3},
     [{"causal": 6.1, "no mask": 5.9}, {"causal": 2.3, "no mask": 6.1},
      {"causal": 6.1, "no mask": float("nan")}, {"causal": 6.1}]),
])
def test_placeholder_right_and_wrong(capsys, call, placeholder, right, wrongs):
    call(placeholder)
    first = capsys.readouterr().out
    assert first.endswith(": not attempted yet\n")
    number = first.split(":")[0]
    call(right)
    assert capsys.readouterr().out == f"{number}: correct\n"
    for wrong in wrongs:
        call(wrong)
        assert capsys.readouterr().out.startswith(f"{number}: not yet - hint: ")
