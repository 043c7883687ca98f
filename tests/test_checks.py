"""The student-facing checks: silent when right, a precise AssertionError when wrong."""

import numpy as np
import pytest
import torch

from course_lib.checks import (
    check_close,
    check_dtype,
    check_function,
    check_shape,
    check_true,
    withheld,
)


def message_of(call, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_check_close_accepts_within_tolerance_like_numpy_allclose():
    rng = np.random.default_rng(0)
    expected = rng.normal(size=(4, 3))
    for scale in (1e-9, 1e-6, 1e-4, 1e-2):
        got = expected + scale * rng.normal(size=expected.shape)
        agrees = np.allclose(got, expected, rtol=1e-5, atol=1e-8)
        if agrees:
            check_close(got, expected, rtol=1e-5, atol=1e-8)
        else:
            message_of(check_close, got, expected, rtol=1e-5, atol=1e-8)


def test_check_close_accepts_tensors_lists_and_numbers():
    check_close(torch.tensor([1.0, 2.0], dtype=torch.float32), [1.0, 2.0])
    check_close(torch.tensor(3.0, requires_grad=True) * 1, 3)
    check_close(0.1 + 0.2, 0.3)
    check_close(torch.tensor([float("inf")]), [float("inf")])


def test_check_close_names_worst_entry_expected_got_and_hint():
    expected = torch.zeros(2, 3)
    got = expected.clone()
    got[1, 2] = 0.5
    got[0, 0] = 0.01
    text = message_of(check_close, got, expected, name="grad", hint="check the sign")
    assert text.startswith("grad: 2 of 6 entries differ; worst at index (1, 2)")
    assert "expected 0.0, got 0.5" in text
    assert text.endswith("Hint: check the sign")


def test_check_close_scalar_message():
    text = message_of(check_close, 2.5, 2.0, name="slope")
    assert text.startswith("slope: expected 2.0, got 2.5 (difference 0.5")


def test_check_close_reports_shape_none_nan_and_non_numbers():
    assert "expected shape (3,), got shape (2,)" in message_of(check_close, [1, 2], [1, 2, 3])
    assert "forget to `return`" in message_of(check_close, None, 1.0)
    assert "non-finite value nan" in message_of(check_close, [1.0, float("nan")], [1.0, 2.0])
    assert "expected numbers, got str" in message_of(check_close, "abc", 1.0)


def test_check_close_rejects_negative_tolerances():
    with pytest.raises(ValueError, match="rtol"):
        check_close(1.0, 1.0, rtol=-1)
    with pytest.raises(ValueError, match="atol"):
        check_close(1.0, 1.0, atol=-1)


def test_check_shape():
    check_shape(torch.zeros(2, 3), (2, 3))
    check_shape([[1, 2, 3]], [1, 3])
    text = message_of(check_shape, np.zeros((3, 2)), (2, 3), name="W", hint="transpose?")
    assert text == "W: expected shape (2, 3), got shape (3, 2)\nHint: transpose?"


def test_check_dtype_for_torch_and_numpy():
    check_dtype(torch.zeros(1, dtype=torch.float64), torch.float64)
    check_dtype(np.zeros(1, dtype=np.float32), np.float32)
    check_dtype(np.zeros(1), "float64")
    assert "expected dtype torch.float64, got dtype torch.float32" in message_of(
        check_dtype, torch.zeros(1), torch.float64
    )
    assert "got list" in message_of(check_dtype, [1.0], torch.float64)


def test_check_function_reports_first_failing_case_and_not_implemented():
    def square(x):
        return x * x if x < 3 else x * x + 1

    check_function(square, [((1.0,), 1.0), ((2.0,), 4.0)])
    text = message_of(check_function, square, [((2.0,), 4.0), ((3.0,), 9.0)])
    assert text.startswith("square(3.0): expected 9.0, got 10.0")

    def blank(x):
        raise NotImplementedError()

    assert "not implemented yet" in message_of(check_function, blank, [((1.0,), 1.0)])
    assert "expected a function" in message_of(check_function, 3, [])


def test_check_true():
    check_true(True, "never shown")
    assert message_of(check_true, False, "x was modified", hint="clone it") == (
        "check: x was modified\nHint: clone it"
    )


def test_withheld_makes_the_reference_raise_everywhere_and_restores_it():
    import course_lib.optim as optim
    from course_lib.autograd import Value
    from course_lib.optim.adam import Adam, AdamW, adam_update_

    namespace = {"imported": adam_update_, "other": len}
    tanh = Value.tanh
    with withheld(
        "course_lib.optim.adam.adam_update_",
        "course_lib.autograd.Value.tanh",
        "course_lib.optim.adam.AdamW.step",  # inherited from Adam
        namespace=namespace,
    ):
        for call in (
            lambda: namespace["imported"](),
            lambda: __import__("course_lib.optim.adam").optim.adam.adam_update_(),
            lambda: Value(0.5).tanh(),
            lambda: AdamW([torch.zeros(1, requires_grad=True)]).step(),
        ):
            with pytest.raises(RuntimeError, match="withheld while this answer is graded"):
                call()
        assert namespace["other"] is len
        assert Adam.step is not AdamW.step  # only the named class loses its method
    assert namespace["imported"] is adam_update_ and Value.tanh is tanh
    assert "step" not in vars(AdamW) and optim.AdamW is AdamW
    assert Value(0.5).tanh().data == pytest.approx(np.tanh(0.5))


def test_withheld_restores_after_an_error_and_rejects_a_module_path():
    from course_lib import schedules

    original = schedules.warmup_cosine
    with pytest.raises(ZeroDivisionError), withheld("course_lib.schedules.warmup_cosine"):
        schedules.constant(1 // 0, lr=1.0)
    assert schedules.warmup_cosine is original
    with pytest.raises(ValueError, match="not a dotted path"), withheld("course_lib"):
        pass
