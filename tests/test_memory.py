"""course_lib.memory: bytes of parameters, gradients and optimizer state, from the tensors."""

import pytest
import torch
from torch import nn

import course_lib.optim as co
from course_lib.memory import (
    gradient_bytes,
    memory_breakdown,
    optimizer_state_bytes,
    parameter_bytes,
    state_bytes_per_parameter_byte,
    tensor_bytes,
)


def model_with_grads(dtype=torch.float32):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)
    model(torch.randn(5, 12, dtype=dtype)).square().sum().backward()
    return model


N_PARAMS = 12 * 16 + 16 + 16 * 3 + 3  # counted by hand from the layer sizes


def stepped(optimizer):
    optimizer.step()
    return optimizer


@pytest.mark.parametrize(("dtype", "itemsize"), [(torch.float32, 4), (torch.bfloat16, 2)])
def test_parameter_and_gradient_bytes(dtype, itemsize):
    model = model_with_grads(dtype)
    assert parameter_bytes(model) == N_PARAMS * itemsize
    assert gradient_bytes(model) == N_PARAMS * itemsize
    model.zero_grad(set_to_none=True)
    assert gradient_bytes(model) == 0


def test_shared_storage_is_counted_once():
    weight = torch.zeros(10, 10)
    assert tensor_bytes([weight, weight, weight[0], weight.T, None]) == 400
    tied = nn.Linear(10, 10, bias=False)
    other = nn.Linear(10, 10, bias=False)
    other.weight = tied.weight
    assert parameter_bytes(nn.ModuleList([tied, other])) == 400


@pytest.mark.parametrize(
    ("make", "ratio"),
    [
        (lambda p: co.SGD(p), 0),
        (lambda p: co.SGD(p, momentum=0.9), 1),
        (lambda p: co.Adagrad(p), 1),
        (lambda p: co.RMSprop(p, centered=True, momentum=0.9), 3),
        (lambda p: co.Adam(p), 2),
        (lambda p: co.Adam(p, amsgrad=True), 3),
        (lambda p: co.AdamW(p), 2),
        (lambda p: co.Lion(p), 1),
    ],
    ids=[
        "SGD",
        "momentum",
        "Adagrad",
        "RMSprop-centered-momentum",
        "Adam",
        "AMSGrad",
        "AdamW",
        "Lion",
    ],
)
def test_state_bytes_per_parameter_byte(make, ratio):
    model = model_with_grads()
    optimizer = make(list(model.parameters()))
    assert optimizer_state_bytes(optimizer) == 0  # state is created lazily, at the first step
    optimizer.step()
    assert optimizer_state_bytes(optimizer) == ratio * N_PARAMS * 4
    assert state_bytes_per_parameter_byte(optimizer) == ratio


def test_counts_torch_optim_state_too():
    """torch.optim.Adam: exp_avg + exp_avg_sq per parameter, and a float32 step tensor each."""
    model = model_with_grads()
    optimizer = stepped(torch.optim.Adam(model.parameters()))
    assert optimizer_state_bytes(optimizer) == 2 * N_PARAMS * 4 + 4 * 4
    ours = stepped(co.Adam(model_with_grads().parameters()))
    assert optimizer_state_bytes(ours) == 2 * N_PARAMS * 4


def test_lion_state_is_half_of_adamw():
    lion = stepped(co.Lion(model_with_grads().parameters()))
    adamw = stepped(co.AdamW(model_with_grads().parameters()))
    assert optimizer_state_bytes(lion) * 2 == optimizer_state_bytes(adamw)


def test_adafactor_state_is_sublinear():
    """A 1024 x 4096 matrix keeps 1024 + 4096 numbers, not 4M; a vector keeps all of its."""
    matrix = torch.zeros(1024, 4096, requires_grad=True)
    vector = torch.zeros(100, requires_grad=True)
    matrix.grad = torch.ones_like(matrix)
    vector.grad = torch.ones_like(vector)
    optimizer = stepped(co.Adafactor([matrix, vector]))
    assert optimizer_state_bytes(optimizer) == (1024 + 4096 + 100) * 4
    optimizer = stepped(co.Adafactor([matrix]))
    assert state_bytes_per_parameter_byte(optimizer) == (1024 + 4096) / (1024 * 4096)
    assert state_bytes_per_parameter_byte(optimizer) < 0.01


def test_memory_breakdown():
    model = model_with_grads()
    optimizer = stepped(co.Adam(model.parameters()))
    breakdown = memory_breakdown(model, optimizer)
    assert breakdown == {
        "parameters": N_PARAMS * 4,
        "gradients": N_PARAMS * 4,
        "optimizer_state": 2 * N_PARAMS * 4,
        "total": 4 * N_PARAMS * 4,
    }
    assert memory_breakdown(model)["optimizer_state"] == 0
