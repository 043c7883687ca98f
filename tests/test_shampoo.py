"""Shampoo against an independent float64 NumPy reference of Gupta et al. 2018."""

import copy

import numpy as np
import pytest
import torch

from course_lib.optim.shampoo import Shampoo

SHAPES = {"matrix": (5, 3), "vector": (6,), "tensor4d": (2, 3, 2, 4)}


def make_problem(seed):
    """Per shape: start, target, curvature weights for f(W) = sum(a (W - T)^2 / 2 + sin W)."""
    rng = np.random.default_rng(seed)
    return {
        name: (rng.normal(size=shape), rng.normal(size=shape), rng.uniform(0.5, 3.0, size=shape))
        for name, shape in SHAPES.items()
    }


def gradient(W, target, a):  # d/dW [a (W - T)^2 / 2 + sin W], derived by hand
    return a * (W - target) + np.cos(W)


def matrix_power(H, power):
    eigenvalues, Q = np.linalg.eigh(H)
    return Q @ np.diag(eigenvalues**power) @ Q.T


def reference_precondition(G, statistics):
    """The paper's preconditioned gradient, written out per order."""
    if G.ndim == 1:  # full-matrix AdaGrad: H^-1/2 g
        return matrix_power(statistics[0], -0.5) @ G
    if G.ndim == 2:  # L^-1/4 G R^-1/4
        return matrix_power(statistics[0], -0.25) @ G @ matrix_power(statistics[1], -0.25)
    out = G  # order k: mode products with H_i^(-1/(2k))
    for i, H in enumerate(statistics):
        out = np.moveaxis(
            np.tensordot(matrix_power(H, -1.0 / (2 * G.ndim)), out, axes=([1], [i])), 0, i
        )
    return out


def reference_run(problem, steps, lr, momentum, epsilon, update_freq):
    """All iterates of the float64 reference, as {name: [W_1, ..., W_steps]}."""
    trajectories = {}
    for name, (W, target, a) in problem.items():
        W = W.copy()
        statistics = [epsilon * np.eye(d) for d in W.shape]
        buffer = np.zeros_like(W)
        frozen_statistics = None
        path = []
        for t in range(1, steps + 1):
            G = gradient(W, target, a)
            for i in range(G.ndim):
                unfolded = np.moveaxis(G, i, 0).reshape(G.shape[i], -1)
                statistics[i] = statistics[i] + unfolded @ unfolded.T
            if (t - 1) % update_freq == 0:  # roots refreshed at steps 1, 1 + f, ...
                frozen_statistics = [S.copy() for S in statistics]
            direction = reference_precondition(G, frozen_statistics)
            buffer = momentum * buffer + direction
            W = W - lr * buffer
            path.append(W)
        trajectories[name] = path
    return trajectories


def torch_params(problem, dtype=torch.float64):
    return {
        name: torch.tensor(W, dtype=dtype, requires_grad=True)
        for name, (W, _, _) in problem.items()
    }


def loss_of(params, problem):
    total = 0.0
    for name, p in params.items():
        _, target, a = problem[name]
        target, a = torch.as_tensor(target, dtype=p.dtype), torch.as_tensor(a, dtype=p.dtype)
        total = total + (a * (p - target) ** 2 / 2 + torch.sin(p)).sum()
    return total


@pytest.mark.parametrize(
    "momentum,update_freq,epsilon", [(0.0, 1, 1e-4), (0.9, 1, 1e-4), (0.0, 3, 1e-2), (0.5, 4, 1e-3)]
)
def test_matches_float64_reference_for_50_steps(momentum, update_freq, epsilon):
    problem = make_problem(0)
    lr = 0.05
    expected = reference_run(problem, 50, lr, momentum, epsilon, update_freq)
    params = torch_params(problem)
    opt = Shampoo(
        list(params.values()), lr=lr, momentum=momentum, epsilon=epsilon, update_freq=update_freq
    )
    for step in range(50):
        opt.zero_grad()
        loss_of(params, problem).backward()
        opt.step()
        for name, p in params.items():
            np.testing.assert_allclose(
                p.detach().numpy(),
                expected[name][step],
                rtol=1e-9,
                atol=1e-10,
                err_msg=f"{name} step {step}",
            )
    assert loss_of(params, problem) < loss_of(torch_params(problem), problem)  # it optimizes


def test_state_dict_round_trip_resumes_bit_identically_and_grad_none_is_skipped():
    problem = make_problem(1)
    params = torch_params(problem)
    unused = torch.ones(4, 2, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([*params.values(), unused], lr=0.1, momentum=0.7, update_freq=2)

    def step():
        opt.zero_grad()
        loss_of(params, problem).backward()
        opt.step()

    for _ in range(5):
        step()
    saved_params = {n: p.detach().clone() for n, p in params.items()}
    saved_state = copy.deepcopy(opt.state_dict())
    for _ in range(4):
        step()
    uninterrupted = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(saved_params[n])
    opt = Shampoo([*params.values(), unused], lr=0.1, momentum=0.7, update_freq=2)
    opt.load_state_dict(saved_state)
    for _ in range(4):
        step()
    for n, p in params.items():
        assert torch.equal(p.detach(), uninterrupted[n]), n
    assert torch.equal(unused.detach(), torch.ones(4, 2, dtype=torch.float64))
    assert unused not in opt.state


def test_state_follows_parameter_dtype_and_scalars_work():
    w = torch.randn(3, 4, requires_grad=True)  # float32
    s = torch.tensor(2.0, requires_grad=True)
    opt = Shampoo([w, s], momentum=0.5)
    ((w**2).sum() + s**2).backward()
    opt.step()
    state = opt.state[w]
    assert all(m.dtype == torch.float32 for m in state["statistics"] + state["roots"])
    assert [m.shape for m in state["statistics"]] == [(3, 3), (4, 4)]
    # a scalar is a 1-vector: H = eps + g^2, step = lr g / sqrt(eps + g^2)
    expected = 2.0 - 0.1 * 4.0 / (1e-4 + 16.0) ** 0.5
    assert s.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(lr=-0.1), "lr"),
        (dict(momentum=1.0), "momentum"),
        (dict(momentum=-0.1), "momentum"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(update_freq=0), "update_freq"),
        (dict(update_freq=1.5), "update_freq"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Shampoo([torch.zeros(2, requires_grad=True)], **kwargs)


def reference_run_shi(problem, steps, lr, momentum, epsilon, beta2, at_root, p, graft):
    """Shampoo with Shi et al. 2023's options, written out: EMA statistics, epsilon at the
    root or as the starting value, root -1/p, SGD or Adam (second moment only) grafting."""
    graft_beta2, graft_eps = 0.99, 1e-8
    trajectories = {}
    for name, (W, target, a) in problem.items():
        W = W.copy()
        statistics = [(0.0 if at_root else epsilon) * np.eye(d) for d in W.shape]
        buffer, v = np.zeros_like(W), np.zeros_like(W)
        path = []
        for t in range(1, steps + 1):
            G = gradient(W, target, a)
            roots = []
            for i in range(G.ndim):
                unfolded = np.moveaxis(G, i, 0).reshape(G.shape[i], -1)
                weight = 1.0 if beta2 == 1 else 1 - beta2  # beta2 = 1: the plain sum
                statistics[i] = beta2 * statistics[i] + weight * unfolded @ unfolded.T
                H = (
                    statistics[i] + epsilon * np.eye(len(statistics[i]))
                    if at_root
                    else statistics[i]
                )
                roots.append(matrix_power(H, -1.0 / (p or 2 * G.ndim)))
            D = G
            for i, root in enumerate(roots):
                D = np.moveaxis(np.tensordot(root, D, axes=([1], [i])), 0, i)
            if graft == "sgd":
                D = D * np.linalg.norm(G) / np.linalg.norm(D)
            elif graft == "adam":
                v = graft_beta2 * v + (1 - graft_beta2) * G**2
                adam = G / (np.sqrt(v / (1 - graft_beta2**t)) + graft_eps)
                D = D * np.linalg.norm(adam) / np.linalg.norm(D)
            buffer = momentum * buffer + D
            W = W - lr * buffer
            path.append(W)
        trajectories[name] = path
    return trajectories


@pytest.mark.parametrize(
    "beta2,at_root,p,graft",
    [
        (0.9, True, None, None),
        (0.9, False, None, None),
        (1.0, True, 2, None),
        (1.0, False, None, "sgd"),
        (0.95, True, 2, "adam"),
        (0.99, True, None, "adam"),
    ],
)
def test_shi_et_al_options_match_float64_reference(beta2, at_root, p, graft):
    problem = make_problem(2)
    lr, momentum, epsilon = 0.02, 0.5, 1e-2
    expected = reference_run_shi(problem, 30, lr, momentum, epsilon, beta2, at_root, p, graft)
    params = torch_params(problem)
    opt = Shampoo(
        list(params.values()),
        lr=lr,
        momentum=momentum,
        epsilon=epsilon,
        beta2=beta2,
        epsilon_at_root=at_root,
        exponent_override=p,
        graft=graft,
        graft_beta2=0.99,
    )
    for step in range(30):
        opt.zero_grad()
        loss_of(params, problem).backward()
        opt.step()
        for name, param in params.items():
            np.testing.assert_allclose(
                param.detach().numpy(), expected[name][step], rtol=1e-10, atol=1e-11, err_msg=name
            )  # atol: statistics near epsilon = 1e-2 make the roots amplify rounding


def test_grafting_takes_the_step_length_of_sgd_and_the_direction_of_shampoo():
    W = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    G = torch.randn(5, 3, dtype=torch.float64)
    steps = {}
    for graft in (None, "sgd"):
        w = W.detach().clone().requires_grad_()
        w.grad = G.clone()
        Shampoo([w], lr=1.0, graft=graft).step()
        steps[graft] = W.detach() - w.detach()
    torch.testing.assert_close(steps["sgd"].norm(), G.norm(), rtol=1e-12, atol=0)
    cosine = (steps["sgd"] * steps[None]).sum() / (steps["sgd"].norm() * steps[None].norm())
    torch.testing.assert_close(cosine, torch.tensor(1.0, dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(beta2=0.0), "beta2"),
        (dict(beta2=1.5), "beta2"),
        (dict(exponent_override=0), "exponent_override"),
        (dict(graft="adagrad"), "graft"),
        (dict(graft_beta2=1.0), "graft_beta2"),
        (dict(graft_eps=-1.0), "graft_eps"),
    ],
)
def test_bad_new_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Shampoo([torch.zeros(2, requires_grad=True)], **kwargs)
