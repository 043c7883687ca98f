"""Invalid hyperparameters raise ValueError naming the argument."""

import re

import pytest
import torch

import course_lib.optim as co

INVALID = [
    (co.SGD, dict(lr=-0.1), "lr"),
    (co.SGD, dict(momentum=-0.5), "momentum"),
    (co.SGD, dict(dampening=1.5), "dampening"),
    (co.SGD, dict(weight_decay=-1e-4), "weight_decay"),
    (co.SGD, dict(nesterov=True), "nesterov"),
    (co.SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (co.Adagrad, dict(lr=-1.0), "lr"),
    (co.Adagrad, dict(lr_decay=-0.1), "lr_decay"),
    (co.Adagrad, dict(weight_decay=-0.1), "weight_decay"),
    (co.Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (co.Adagrad, dict(eps=-1e-10), "eps"),
    (co.RMSprop, dict(lr=-1.0), "lr"),
    (co.RMSprop, dict(alpha=-0.1), "alpha"),
    (co.RMSprop, dict(alpha=1.5), "alpha"),
    (co.RMSprop, dict(eps=-1e-8), "eps"),
    (co.RMSprop, dict(weight_decay=-0.1), "weight_decay"),
    (co.RMSprop, dict(momentum=-0.1), "momentum"),
    (co.Adafactor, dict(lr=-1.0), "lr"),
    (co.Adafactor, dict(beta2_decay=0.5), "beta2_decay"),
    (co.Adafactor, dict(eps=(-1e-30, 1e-3)), "eps[0]"),
    (co.Adafactor, dict(eps=(None, -1e-3)), "eps[1]"),
    (co.Adafactor, dict(eps=(None,)), "eps"),
    (co.Adafactor, dict(eps=1e-3), "eps"),
    (co.Adafactor, dict(d=0.5), "d"),
    (co.Adafactor, dict(weight_decay=-0.1), "weight_decay"),
    (co.Adafactor, dict(beta1=1.0), "beta1"),
    (co.Adafactor, dict(beta1=-0.1), "beta1"),
    (co.Lion, dict(lr=-1e-4), "lr"),
    (co.Lion, dict(betas=(1.0, 0.99)), "betas[0]"),
    (co.Lion, dict(betas=(0.9, -0.1)), "betas[1]"),
    (co.Lion, dict(betas=(0.9,)), "betas"),
    (co.Lion, dict(betas=(0.9, 0.99, 0.999)), "betas"),
    (co.Lion, dict(weight_decay=-0.1), "weight_decay"),
    (co.NAdam, dict(momentum_decay=-1e-3), "momentum_decay"),
    (co.AdamWScheduleFree, dict(warmup_steps=-1), "warmup_steps"),
    (co.AdamWScheduleFree, dict(r=-1.0), "r"),
    (co.AdamWScheduleFree, dict(weight_lr_power=-2.0), "weight_lr_power"),
] + [
    case
    for cls in (co.Adam, co.AdamW, co.RAdam, co.NAdam, co.AdamWScheduleFree)
    for case in [
        (cls, dict(lr=-1e-3), "lr"),
        (cls, dict(betas=(1.0, 0.999)), "betas[0]"),
        (cls, dict(betas=(-0.1, 0.999)), "betas[0]"),
        (cls, dict(betas=(0.9, 1.0)), "betas[1]"),
        (cls, dict(betas=(0.9,)), "betas"),
        (cls, dict(betas=0.9), "betas"),
        (cls, dict(eps=-1e-8), "eps"),
        (cls, dict(weight_decay=-0.01), "weight_decay"),
        (cls, dict(lr=float("nan")), "lr"),
    ]
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "argument"),
    INVALID,
    ids=[f"{c.__name__}-{k}" for c, k, _ in INVALID],
)
def test_invalid_hyperparameter_raises_naming_it(cls, kwargs, argument):
    params = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match=rf"(^|\W){re.escape(argument)}(\W|$)"):
        cls(params, **kwargs)


@pytest.mark.parametrize(
    "cls",
    [co.SGD, co.Adagrad, co.RMSprop, co.Adam, co.AdamW, co.Adafactor, co.Lion]
    + [co.RAdam, co.NAdam, co.AdamWScheduleFree],
)
def test_defaults_and_boundaries_are_accepted(cls):
    """The documented defaults, and the edge values that are valid (0 is a valid lr)."""
    cls([torch.zeros(3, requires_grad=True)])
    cls([torch.zeros(3, requires_grad=True)], lr=0.0)
