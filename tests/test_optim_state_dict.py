"""state_dict()/load_state_dict(): 50 steps, save, load into a new optimizer, 50 more steps
equals 100 uninterrupted steps bit for bit, in float32, float64 and bfloat16."""

import io

import pytest
import torch
from optim_problem import make_problem, param_groups, train

import course_lib.optim as co

CONFIGS = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(lr=0.05)),
    ("Adafactor", dict(lr=0.05, weight_decay=0.01)),
    ("Adafactor", dict(lr=0.05, beta1=0.9)),
    ("Lion", dict(lr=0.01, weight_decay=0.1)),
    ("RAdam", dict(lr=0.05, weight_decay=0.01)),
    ("NAdam", dict(lr=0.05, weight_decay=0.01, decoupled_weight_decay=True)),
]
DTYPES = [torch.float32, torch.float64, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS)
def test_resume_is_bit_identical(name, kwargs, dtype):
    def make(a, b):
        return getattr(co, name)(param_groups(kwargs, dict(lr=kwargs["lr"] / 2))(a, b))

    expected, uninterrupted = train(make, steps=100, dtype=dtype)

    params, groups, set_grads = make_problem(dtype, steps=100)
    optimizer = make(*groups)
    for step in range(50):
        set_grads(step)
        optimizer.step()
    file = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optim": optimizer.state_dict()}, file)
    del optimizer, params, groups, set_grads

    file.seek(0)
    saved = torch.load(file)
    params, groups, set_grads = make_problem(dtype, steps=100)
    with torch.no_grad():
        for p, value in zip(params, saved["params"], strict=True):
            p.copy_(value)
    resumed = make(*groups)
    resumed.load_state_dict(saved["optim"])
    for step in range(50, 100):
        set_grads(step)
        resumed.step()

    assert all(p.dtype == dtype for p in params)
    for p, p_ref in zip(params, expected, strict=True):
        assert torch.equal(p, p_ref)
        state, ref_state = resumed.state.get(p, {}), uninterrupted.state.get(p_ref, {})
        assert state.keys() == ref_state.keys()
        for key, value in ref_state.items():
            if isinstance(value, torch.Tensor):
                # NAdam's product of momenta is a float32 scalar, as in torch.optim.NAdam
                assert value.dtype == (torch.float32 if key == "mu_product" else dtype)
                assert state[key].dtype == value.dtype
                assert torch.equal(state[key], value)
            else:
                assert state[key] == value
    # the run moved the parameters (the comparison is not between two untouched copies)
    assert not torch.equal(expected[3], make_problem(dtype)[0][3])


@pytest.mark.parametrize("name", ["RAdam", "NAdam"])
@pytest.mark.parametrize("direction", ["torch-to-course", "course-to-torch"])
def test_state_dict_moves_between_torch_and_course(name, direction):
    """50 steps of one implementation, its state_dict loaded into the other, 50 more steps:
    the same as 100 steps of torch.optim (float64, rtol 1e-10)."""
    first, second = getattr(torch.optim, name), getattr(co, name)
    if direction == "course-to-torch":
        first, second = second, first
    kwargs = dict(lr=0.05, weight_decay=0.01)
    expected, _ = train(
        lambda a, b: getattr(torch.optim, name)(param_groups(kwargs, dict(lr=0.02))(a, b)),
        steps=100,
    )
    params, groups, set_grads = make_problem(steps=100)
    optimizer = first(param_groups(kwargs, dict(lr=0.02))(*groups))
    for step in range(50):
        set_grads(step)
        optimizer.step()
    resumed = second(param_groups(kwargs, dict(lr=0.02))(*groups))
    resumed.load_state_dict(optimizer.state_dict())
    for step in range(50, 100):
        set_grads(step)
        resumed.step()
    for p, p_ref in zip(params, expected, strict=True):
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=0)
