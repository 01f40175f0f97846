"""Chapter 2's exercise checks: a placeholder is 'not attempted yet', a right answer 'correct',
a wrong one 'not yet' with a hint."""

from exercise_checks import assert_cases, printed

from transformer_lib.book.exercises import ch02


def test_exercise_1_rms_norm_by_hand(capsys):
    # RMS of [3, 4] = sqrt((9 + 16) / 2) = sqrt(12.5) = 3.5355
    assert_cases(capsys, 1, ch02.exercise_1, [...], [[0.849, 1.131]],
                 [[[0.6, 0.8]], [[0.849]], [[0.849, 1.131, 0.0]], ["abc"]])


def test_exercise_2_norm_parameters(capsys):
    # tiny: 2 blocks x 2 norms + 1 final = 5 norms of width 64
    assert_cases(capsys, 2, ch02.exercise_2, [..., ...], [320, 640],
                 [[320, 320], [192, 384], [640, 1280]])
    ch02.exercise_2(320, ...)
    assert printed(capsys) == "exercise 2: not attempted yet"


def test_exercise_3_shift(capsys):
    assert_cases(capsys, 3, ch02.exercise_3, [..., ...], [0.4, 1e-6],
                 [[1e-6, 0.4], [0.4, 0.4], [0.0, 0.0]])


def test_exercise_4_scaled_init(capsys):
    assert_cases(capsys, 4, ch02.exercise_4, [...], [1.29],
                 [[4017.0], [0.9], [float("nan")], ["big"]])


def test_exercise_5_constant_vector(capsys):
    assert_cases(capsys, 5, ch02.exercise_5, [..., ...], [[-1.0] * 4, [0.0] * 4],
                 [[[1.0] * 4, [0.0] * 4], [[-1.0] * 4, [-1.0] * 4], [[-1.0] * 3, [0.0] * 4]])
