"""TensorList methods equal the same tensor methods applied to each tensor."""

import pytest
import torch

from course_lib.optim._tensorlist import TensorList


def _tensors():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in [(3,), (2, 2)]]


@pytest.mark.parametrize("other", ["tensors", 0.5], ids=["TensorList", "scalar"])
def test_add_honours_alpha_as_tensor_add_does(other):
    xs, ys = _tensors(), [2 * t for t in _tensors()]
    operand = TensorList(ys) if other == "tensors" else other
    pairs = ys if other == "tensors" else [other] * len(xs)
    for result in (
        TensorList(xs).add(operand, alpha=-3),
        TensorList([x.clone() for x in xs]).add_(operand, alpha=-3),
    ):
        for got, x, y in zip(result, xs, pairs, strict=True):
            torch.testing.assert_close(got, x.add(y, alpha=-3), rtol=0, atol=0)


def test_div_is_elementwise():
    xs, ys = _tensors(), [t.exp() for t in _tensors()]
    for got, x, y in zip(TensorList(xs).div(TensorList(ys)), xs, ys, strict=True):
        torch.testing.assert_close(got, x / y, rtol=0, atol=0)
