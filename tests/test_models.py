import pytest
import torch

from course_lib.models import mlp


def _by_hand(sizes, activation, seed):
    torch.manual_seed(seed)
    layers = []
    for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [torch.nn.Linear(fan_in, fan_out), activation()]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize(
    "kwargs, sizes, activation",
    [
        (dict(), [64, 64, 10], torch.nn.ReLU),
        (
            dict(width=32, depth=2, activation=torch.nn.Tanh, seed=3),
            [64, 32, 32, 10],
            torch.nn.Tanh,
        ),
        (dict(depth=0, inputs=5, outputs=1), [5, 1], torch.nn.ReLU),
    ],
)
def test_mlp_is_the_hand_written_sequential_with_the_same_seed(kwargs, sizes, activation):
    model, reference = mlp(**kwargs), _by_hand(sizes, activation, kwargs.get("seed", 0))
    assert str(model) == str(reference)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)


def test_dtype_moves_the_same_weights():
    low, high = mlp(width=8, dtype=torch.float64), mlp(width=8)
    for p, q in zip(low.parameters(), high.parameters(), strict=True):
        assert p.dtype == torch.float64 and torch.equal(p, q.double())


def test_seed_none_draws_from_the_current_generator():
    torch.manual_seed(5)
    model = mlp(width=4, seed=None)
    reference = _by_hand([64, 4, 10], torch.nn.ReLU, 5)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(width=0), "width"), (dict(depth=True), "depth"), (dict(outputs=2.0), "outputs")],
)
def test_invalid_sizes_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        mlp(**kwargs)
