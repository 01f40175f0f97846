"""Chapter 13's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint that names the mistake where one is known."""

import copy

import pytest
import torch
import torch.nn.functional as F
from answer_leaks import chapter_text, leaks
from exercise_checks import printed

from transformer_lib import ModelConfig, Transformer
from transformer_lib.book.exercises import ch13
from transformer_lib.model.lora import LoRAConfig, add_lora, merge_lora


def placeholder_function(*args):
    ...


# ---- exercises 1 and 2, written the way a reader would write them -----------------------------


def forward(x, weight, lora_A, lora_B, alpha, scale="alpha/r", base=True, order="AB"):
    r = lora_A.shape[0]
    s = {"alpha/r": alpha / r, "none": 1.0, "alpha": alpha, "r/alpha": r / alpha}[scale]
    if order == "AB":
        correction = torch.einsum("btr,or->bto", torch.einsum("bti,ri->btr", x, lora_A), lora_B)
    else:
        correction = x @ (lora_B @ lora_A)
    return (x @ weight.T if base else 0) + s * correction


def merge(weight, lora_A, lora_B, alpha, scale="alpha/r", transpose=False, sign=1, whole=True):
    r = lora_A.shape[0]
    s = {"alpha/r": alpha / r, "none": 1.0, "alpha": alpha, "r/alpha": r / alpha}[scale]
    delta = (lora_A.T @ lora_B.T) if transpose else (lora_B @ lora_A)
    return (weight if whole else 0) + sign * s * delta


FORWARD_MISTAKES = [
    (lambda *a: forward(*a, scale="none"), "yours has no scale"),
    (lambda *a: forward(*a, scale="alpha"), "not alpha"),
    (lambda *a: forward(*a, scale="r/alpha"), "not r / alpha"),
    (lambda *a: forward(*a, base=False), "keep the frozen layer's own output"),
    (lambda *a: forward(*a, order="BA"), "x goes through A first"),
]
MERGE_MISTAKES = [
    (lambda *a: merge(*a, scale="none"), "yours has no scale"),
    (lambda *a: merge(*a, scale="alpha"), "not alpha"),
    (lambda *a: merge(*a, scale="r/alpha"), "not r / alpha"),
    (lambda *a: merge(*a, transpose=True), "yours is transposed"),
    (lambda *a: merge(*a, sign=-1), "subtracting it is unmerge"),
    (lambda *a: merge(*a, whole=False), "not only the correction"),
]


def test_exercise_1_placeholder_and_right(capsys):
    ch13.exercise_1(placeholder_function)
    assert printed(capsys) == "exercise 1: not attempted yet"
    ch13.exercise_1(forward)
    assert printed(capsys) == "exercise 1: correct"


@pytest.mark.parametrize(("wrong", "message"), FORWARD_MISTAKES)
def test_exercise_1_names_each_mistake(capsys, wrong, message):
    ch13.exercise_1(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 1: not yet - hint: ") and message in said, said


def test_exercise_1_an_answer_right_only_on_square_weights_is_not_right(capsys):
    def transposed_weight(x, weight, lora_A, lora_B, alpha):  # x W instead of x W^T
        return x @ weight + (alpha / lora_A.shape[0]) * (x @ lora_A.T @ lora_B.T)

    ch13.exercise_1(transposed_weight)
    assert printed(capsys).startswith("exercise 1: not yet")


def test_exercise_2_placeholder_and_right(capsys):
    ch13.exercise_2(placeholder_function)
    assert printed(capsys) == "exercise 2: not attempted yet"
    ch13.exercise_2(merge)
    assert printed(capsys) == "exercise 2: correct"


@pytest.mark.parametrize(("wrong", "message"), MERGE_MISTAKES)
def test_exercise_2_names_each_mistake(capsys, wrong, message):
    ch13.exercise_2(wrong)
    said = printed(capsys)
    assert said.startswith("exercise 2: not yet - hint: ") and message in said, said


# ---- exercise 3 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return Transformer(ModelConfig.from_preset("tiny", num_layers=2)).eval()


def test_exercise_3_counts_from_the_model(capsys, small_model):
    config = small_model.config
    kv = config.num_kv_heads * config.head_dim
    right = config.num_layers * 4 * ((config.d_model * 2) + (config.d_model + kv))
    ch13.exercise_3(..., small_model)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch13.exercise_3(right, small_model)
    assert printed(capsys) == "exercise 3: correct"
    as_if_square = config.num_layers * 4 * 2 * (config.d_model * 2)
    for wrong in (as_if_square, right // config.num_layers, right + 0.5, "many"):
        ch13.exercise_3(wrong, small_model)
        assert printed(capsys).startswith("exercise 3: not yet")


# ---- exercise 4: the check recomputes from the model handed back -----------------------------------


@pytest.fixture(scope="module")
def practice_batch():
    return torch.randint(0, 512, (4, 33), generator=torch.Generator().manual_seed(1))


def trained_lora(base, batch, steps=40):
    adapted = add_lora(copy.deepcopy(base), LoRAConfig(rank=4, alpha=8.0))
    optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad],
                                  lr=3e-2)
    adapted.train()
    for _ in range(steps):
        logits = adapted(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return adapted.eval()


def test_exercise_4_recomputes_the_loss_and_checks_the_base(capsys, small_model, practice_batch):
    ch13.exercise_4(..., small_model, practice_batch)
    assert printed(capsys) == "exercise 4: not attempted yet"
    adapted = trained_lora(small_model, practice_batch)
    ch13.exercise_4(adapted, small_model, practice_batch)
    assert printed(capsys) == "exercise 4: correct"

    untrained = add_lora(copy.deepcopy(small_model), LoRAConfig(rank=4))  # B = 0: no change
    ch13.exercise_4(untrained, small_model, practice_batch)
    assert "train longer" in printed(capsys)

    merged = copy.deepcopy(adapted)
    merge_lora(merged)
    ch13.exercise_4(merged, small_model, practice_batch)
    assert "unmerge" in printed(capsys)

    moved_base = copy.deepcopy(adapted)
    with torch.no_grad():
        moved_base.norm.weight.add_(0.01)
    ch13.exercise_4(moved_base, small_model, practice_batch)
    assert "only the adapters may change" in printed(capsys)

    full = copy.deepcopy(small_model)  # a fabricated answer: a plain model
    ch13.exercise_4(full, small_model, practice_batch)
    assert "LoRA layers" in printed(capsys)

    thawed = copy.deepcopy(adapted)
    thawed.norm.weight.requires_grad_(True)
    ch13.exercise_4(thawed, small_model, practice_batch)
    assert "require gradients" in printed(capsys)


# ---- the chapter shows no answer -------------------------------------------------------------------


def test_the_chapter_shows_no_answer():
    from transformer_lib import book

    stored = book.stored_model().model
    count = ch13.adapter_parameters(stored, 4, ("q", "v"))
    assert leaks("13_adapting", [count]) == []
    text = chapter_text("13_adapting")
    for name in ("lora_forward", "merge_weight"):
        assert f"def {name}(" in text
        body = text.split(f"def {name}(", 1)[1].split("\n# %%", 1)[0]
        assert "...  # your code here" in body and "return" not in body, name
