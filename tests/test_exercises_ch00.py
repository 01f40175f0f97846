"""Chapter 0's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint; several-part answers say which part is right."""

import pytest
from answer_leaks import leaks
from exercise_checks import assert_cases, printed

from transformer_lib.book.exercises import ch00

# Right answers worked out by hand from the presets. The book's model: 4 blocks of width 128,
# 4 query heads and 2 key/value heads of 32, SwiGLU width 384, a context of 256 tokens.
ATTENTION = 4 * (2 * 128 * 128 + 2 * 128 * 2 * 32)  # q, o full width; k, v two heads
FEED_FORWARD = 4 * 3 * 128 * 384  # gate, up and down
UNTIED = 50_257 * 256  # seed-22.5M: a second vocab_size x d_model matrix
CACHE = 2 * 4 * 2 * 32 * 256 * 4  # key and value, 4 layers, 2 heads of 32, 256 tokens, float32
CACHE_WITHOUT_GQA = 2 * 4 * 4 * 32 * 256 * 4


def test_exercise_1_attention_and_feed_forward(capsys):
    assert_cases(capsys, 1, ch00.exercise_1, [..., ...], [ATTENTION, FEED_FORWARD],
                 [[FEED_FORWARD, ATTENTION], [ATTENTION + 1, FEED_FORWARD]])
    ch00.exercise_1(ATTENTION, 4 * 2 * 128 * 384)  # half right: two matrices in the SwiGLU
    assert printed(capsys) == ("exercise 1: not yet (book_attention_parameters right, "
                               "book_feed_forward_parameters not yet) - hint: "
                               "book_feed_forward_parameters: SwiGLU has three matrices, not "
                               "two: gate_proj, up_proj and down_proj")
    ch00.exercise_1(4 * 4 * 128 * 128, FEED_FORWARD)  # k and v as wide as q
    assert "k_proj and v_proj are narrower" in printed(capsys)
    ch00.exercise_1((ATTENTION, FEED_FORWARD), ...)  # a pair where one number is expected
    assert printed(capsys) == ("exercise 1: not yet (book_attention_parameters not yet, "
                               "book_feed_forward_parameters not attempted) - hint: "
                               "book_attention_parameters: expected a whole number")


def test_exercise_2_untied_output_layer(capsys):
    assert_cases(capsys, 2, ch00.exercise_2, [...], [UNTIED],
                 [[UNTIED * 2], [22_505_984], [True]])
    ch00.exercise_2("a lot")
    assert printed(capsys) == "exercise 2: not yet - hint: expected a whole number"


def test_exercise_3_count_parameters(capsys):
    def placeholder(model):
        ...

    def right(model):
        return sum(p.numel() for p in model.parameters())

    def counts_shared_twice(model):
        return sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))

    def crashes(model):
        raise RuntimeError("oops")

    ch00.exercise_3(placeholder)
    assert printed(capsys) == "exercise 3: not attempted yet"
    ch00.exercise_3(right)
    assert printed(capsys) == "exercise 3: correct"
    for wrong in (counts_shared_twice, crashes):
        ch00.exercise_3(wrong)
        assert printed(capsys).startswith("exercise 3: not yet - hint: ")


def test_exercise_4_kv_cache(capsys):
    assert_cases(capsys, 4, ch00.exercise_4, [..., ...], [CACHE, CACHE_WITHOUT_GQA],
                 [[CACHE_WITHOUT_GQA, CACHE], [CACHE, CACHE]])
    ch00.exercise_4(CACHE, CACHE)  # half right
    assert printed(capsys).startswith("exercise 4: not yet (kv_cache_bytes_gqa right, "
                                      "kv_cache_bytes_without_gqa not yet)")
    ch00.exercise_4(CACHE // 4, CACHE_WITHOUT_GQA)  # numbers, not bytes
    assert "a float32 number takes 4 bytes" in printed(capsys)
    ch00.exercise_4(CACHE // 256, CACHE_WITHOUT_GQA)  # one token only
    assert "one token's share" in printed(capsys)
    ch00.exercise_4([CACHE, CACHE_WITHOUT_GQA], ...)  # both numbers in one part
    assert printed(capsys).endswith("kv_cache_bytes_gqa: expected a whole number")


@pytest.mark.parametrize(("name", "value"), [
    ("exercise 1 attention", ATTENTION), ("exercise 1 feed-forward", FEED_FORWARD),
    ("exercise 2", UNTIED), ("exercise 4 gqa", CACHE), ("exercise 4 without", CACHE_WITHOUT_GQA)])
def test_expected_values_are_the_hand_counts(name, value):
    assert ch00.expected_values()[name] == value


def test_the_chapter_shows_no_answer():
    assert leaks("00_start_here", ch00.expected_values().values()) == []
