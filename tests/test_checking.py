"""The exercise checks' voice: verdicts, wrapped hints, parts, and named mistakes."""

import torch
from exercise_checks import printed

from transformer_lib.book.checking import (
    LINE_WIDTH,
    Part,
    check,
    check_parts,
    compare_function,
    function_answer,
)


def even(answer):
    return answer % 2 == 0


def test_a_long_hint_wraps_under_the_line_width(capsys):
    check("exercise 1", 3, even, "word " * 60)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 2 and all(len(line) <= LINE_WIDTH for line in lines)
    assert lines[0].startswith("exercise 1: not yet - hint: word")
    assert all(line.startswith("    word") for line in lines[1:])


def test_a_named_mistake_replaces_the_hint(capsys):
    check("exercise 2", 3, lambda a: "odd numbers are not even" if a % 2 else True, "parity")
    assert printed(capsys) == "exercise 2: not yet - hint: odd numbers are not even"


def test_an_answer_of_the_wrong_form_is_told_the_form(capsys):
    check("exercise 3", 5, lambda a: a[0] == 1, "look again", expects="a pair (rms, layer_norm)")
    assert printed(capsys) == "exercise 3: not yet - hint: expected a pair (rms, layer_norm)"
    check("exercise 3", (2, 1), lambda a: a[0] == 1, "look again", expects="a pair")
    assert printed(capsys) == "exercise 3: not yet - hint: look again"


def parts(first, second):
    return (Part("rms", first, lambda a: a == 320, "count the norms", "a whole number"),
            Part("layer_norm", second, lambda a: a == 640, "two vectors each", "a whole number"))


def test_parts_say_which_part_is_right(capsys):
    check_parts("exercise 4", *parts(..., ...))
    assert printed(capsys) == "exercise 4: not attempted yet"
    check_parts("exercise 4", *parts(320, 640))
    assert printed(capsys) == "exercise 4: correct"
    check_parts("exercise 4", *parts(320, 320))
    assert printed(capsys) == ("exercise 4: not yet (rms right, layer_norm not yet) - hint: "
                               "layer_norm: two vectors each")
    check_parts("exercise 4", *parts(256, 512))
    assert printed(capsys) == ("exercise 4: not yet (rms not yet, layer_norm not yet) - hint: "
                               "rms: count the norms")
    check_parts("exercise 4", *parts(320, ...))
    assert printed(capsys) == ("exercise 4: not yet (rms right, layer_norm not attempted) - "
                               "hint: answer the remaining parts")


def test_a_part_of_the_wrong_form_is_told_the_form(capsys):
    rms = Part("rms", [320, 640], lambda a: int(a) == 320, "count", "a whole number")
    layer = Part("layer_norm", 640, lambda a: int(a) == 640, "count", "a whole number")
    check_parts("exercise 5", rms, layer)
    assert printed(capsys) == ("exercise 5: not yet (rms not yet, layer_norm right) - hint: "
                               "rms: expected a whole number")


def scale(x, factor):
    return x * factor


def test_compare_function_accepts_the_reference_and_names_a_known_mistake():
    cases = [(torch.randn(2, 3), 2.0), (torch.randn(1, 5), 3.0)]
    mistakes = {"you added the factor instead of multiplying": lambda x, f: x + f}
    assert compare_function(scale, scale, cases, mistakes) is True
    assert compare_function(lambda x, f: x + f, scale, cases, mistakes) == (
        "you added the factor instead of multiplying")


def test_compare_function_reports_shape_dtype_and_errors():
    cases = [(torch.randn(2, 3), 2.0)]
    assert compare_function(lambda x, f: (x * f).sum(0), scale, cases) == (
        "returned shape (3,), expected (2, 3)")
    assert compare_function(lambda x, f: (x * f).double(), scale, cases).startswith(
        "returned torch.float64, expected torch.float32")
    message = compare_function(lambda x, f: x @ x, scale, cases, describe_case=lambda c: "2x3")
    assert message.startswith("your function raised RuntimeError on 2x3")
    assert compare_function(lambda x, f: x * f + 1, scale, cases) == (
        "the values differ from the library's")


def test_compare_function_gives_each_call_its_own_copy_of_the_inputs():
    def in_place(x, f):
        return x.mul_(f)

    cases = [(torch.randn(3), 2.0)]
    assert compare_function(in_place, scale, cases) is True


def test_a_function_that_forgets_its_return_is_attempted_and_told_so():
    def placeholder(x, f):
        """Scale x by f."""
        ...

    def forgot_return(x, f):
        """Scale x by f."""
        y = x * f  # noqa: F841 - the mistake under test

    assert function_answer(placeholder, torch.ones(2), 2.0) is None
    assert function_answer(forgot_return, torch.ones(2), 2.0) is forgot_return
    message = compare_function(forgot_return, scale, [(torch.randn(3), 2.0)])
    assert "returned None" in message and "return" in message


def test_a_function_that_writes_into_nested_inputs_cannot_change_the_cases():
    def add_bias(x, layer):
        return x + layer["bias"]

    def zero_then_add(x, layer):
        layer["bias"].zero_()  # writes into the case's weights
        return x + layer["bias"]

    cases = [(torch.randn(3), {"bias": torch.ones(3)})]
    assert compare_function(zero_then_add, add_bias, cases) is not True
    assert compare_function(zero_then_add, add_bias, cases) is not True  # still caught
    assert torch.equal(cases[0][1]["bias"], torch.ones(3))


def test_named_outputs_say_which_output_differs():
    def with_grad(function):
        def run(x):
            x = x.clone().requires_grad_()
            out = function(x)
            out.sum().backward()
            return out.detach(), x.grad
        return run

    def square(x):
        return x * x

    def square_with_a_detached_factor(x):  # the same values, half the gradient
        return x * x.detach()

    names = ("the output", "the gradient of x")
    cases = [(torch.randn(4),)]
    message = compare_function(with_grad(square_with_a_detached_factor), with_grad(square),
                               cases, output_names=names)
    assert message == "the gradient of x differs from the library's (the output matches)"

    def no_grad_at_all(x):
        return (x * x).detach() + 0 * x.detach()

    def run_without_grad(x):
        out = no_grad_at_all(x)
        return out, None

    message = compare_function(run_without_grad, with_grad(square), cases, output_names=names)
    assert message.startswith("the gradient of x is None")


def test_an_unrecognised_difference_keeps_the_exercises_hint(capsys):
    def double(x):
        return 2 * x

    def triple(x):
        return 3 * x

    check("exercise 9", triple, lambda f: compare_function(f, double, [(torch.ones(2),)]),
          hint="multiply by two")
    assert printed(capsys) == ("exercise 9: not yet - hint: the values differ from the "
                               "library's; multiply by two")
    check("exercise 9", triple, lambda f: compare_function(
        f, double, [(torch.ones(2),)], {"you multiplied by three": triple}), hint="multiply by two")
    assert printed(capsys) == "exercise 9: not yet - hint: you multiplied by three"


def test_a_check_leaves_the_readers_random_stream_alone(capsys):
    def reseeds(answer):
        torch.manual_seed(0)
        return bool(torch.rand(1) < 2)

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check("exercise 9", 1, reseeds, hint="")
    check_parts("exercise 9", Part("a", 1, reseeds, ""))
    assert torch.equal(torch.rand(3), expected)
    assert capsys.readouterr().out.count("exercise 9: correct") == 2
