"""A small, deterministic optimization problem shared by the tests of course_lib.optim.

Parameters of shape (), (n,), (n, m) and a 4-D tensor, split into two parameter groups; one
extra parameter that never gets a gradient, and one that gets a gradient only on even steps
(its step count lags behind the others). The gradients are written in closed form (no
autograd, to keep the tests fast) for the smooth, non-quadratic loss

    sum_i  s_i * (p_i - t_i)^2 + 0.05 * p_i^4 + noise_i(step) . p_i   [+ tanh(q)^2 on even steps]

where noise_i(step) plays the minibatch noise and depends only on the step.
"""

import torch

SHAPES = [(), (5,), (4, 3), (2, 3, 2, 4)]


def make_problem(dtype=torch.float64, steps=200):
    """Return (all parameters, (group A, group B), set_grads(step))."""
    gen = torch.Generator().manual_seed(0)

    def draw(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    params = [draw(s).to(dtype).requires_grad_() for s in SHAPES]
    targets = [draw(s).to(dtype) for s in SHAPES]
    scales = [(draw(s).abs() * 2 + 0.1).to(dtype) for s in SHAPES]
    unused = draw(3).to(dtype).requires_grad_()
    sometimes = draw((2, 2)).to(dtype).requires_grad_()
    noise = [[(0.1 * draw(s)).to(dtype) for s in SHAPES] for _ in range(steps)]

    def set_grads(step):
        with torch.no_grad():
            for p, t, s, n in zip(params, targets, scales, noise[step], strict=True):
                p.grad = 2 * s * (p - t) + 0.2 * p**3 + n
            if step % 2 == 0:
                th = torch.tanh(sometimes)
                sometimes.grad = 2 * th * (1 - th**2)
            else:
                sometimes.grad = None

    groups = ([params[0], params[2], unused], [params[1], params[3], sometimes])
    return [*params, unused, sometimes], groups, set_grads


def param_groups(kwargs_a, kwargs_b):
    """A function (group A, group B) -> list of param-group dicts with these hyperparameters."""
    return lambda a, b: [dict(params=a, **kwargs_a), dict(params=b, **kwargs_b)]


def train(make_optimizer, steps=200, dtype=torch.float64):
    """Run ``steps`` steps of ``make_optimizer(group_a, group_b)``; return (params, optimizer)."""
    all_params, (group_a, group_b), set_grads = make_problem(dtype, steps)
    optimizer = make_optimizer(group_a, group_b)
    for step in range(steps):
        set_grads(step)
        optimizer.step()
    return all_params, optimizer
