"""The shared argument validators: the right exception, a message that names the argument."""

import numpy as np
import pytest

from transformer_lib.checks import is_int, require_int, require_positive_number


def test_require_int_accepts_integers_at_or_above_the_minimum():
    assert require_int("steps", 3) == 3
    assert require_int("seed", 0, minimum=0) == 0
    assert require_int("size", np.int64(7)) == 7 and type(require_int("size", np.int64(7))) is int


@pytest.mark.parametrize("value", [2.0, "3", None, True])
def test_require_int_refuses_other_types_with_a_type_error(value):
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        require_int("batch_size", value)


def test_require_int_refuses_a_value_below_the_minimum_naming_it():
    with pytest.raises(ValueError, match=r"top_k=0 must be an integer >= 1, or None"):
        require_int("top_k", 0, 1, why=", or None")
    assert not is_int(False) and is_int(np.int32(1))


def test_require_positive_number():
    assert require_positive_number("theta", 10000) == 10000.0
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="theta"):
            require_positive_number("theta", bad)
    with pytest.raises(TypeError, match="theta must be a number"):
        require_positive_number("theta", "1e4")
