"""What every optimizer here shares: argument checks and the loop over parameters.

A subclass of :class:`CourseOptimizer` only says which state a parameter needs
(``init_state``) and how one step changes it (``update``, which calls the plain update
function of its module). The loop below finds the parameters that have a gradient, creates
their state lazily (on the parameter's device, in its dtype), counts their steps and hands
them to ``update``: one at a time (``foreach=False``), or batched as TensorLists of the
parameters that share their step count (``foreach=True``, the default), so that each line
of the update rule is one multi-tensor kernel.
"""

import torch
from torch.optim import Optimizer

from ._tensorlist import TensorList


def check_nonnegative(name, value):
    if not value >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def check_unit_interval(name, value, *, closed=False):
    """0 <= value < 1 (or <= 1 when ``closed``)."""
    inside = 0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0
    if not inside:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def check_pair(name, value):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (a tuple of length 2), got {value!r}")


def check_betas(betas):
    check_pair("betas", betas)
    check_unit_interval("betas[0]", betas[0])
    check_unit_interval("betas[1]", betas[1])


class CourseOptimizer(Optimizer):
    """torch.optim.Optimizer with lazy per-parameter state and an integer step count.

    Subclasses implement ``init_state(param, group) -> dict of tensors`` and
    ``update(group, step, param, grad, state)``; ``state`` maps each state name to the
    tensor (or TensorList) of the parameter(s) being updated. A group with
    ``maximize=True`` (torch's keyword) hands ``update`` the negated gradient, so every
    update rule is written for minimization only.
    """

    supports_foreach = True

    def init_state(self, param, group):
        raise NotImplementedError

    def update(self, group, step, param, grad, state):
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        """One optimization step; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for step, param, grad, state in self._parameters_to_update(group):
                self.update(group, step, param, grad, state)
        return loss

    def _parameters_to_update(self, group):
        """Yield ``(step, param, grad, state)`` for the parameters of ``group`` with a grad.

        With foreach, parameters at the same step come together as TensorLists. (Tensors on
        different devices or of different dtypes may share a list: torch's foreach kernels
        then fall back to one kernel per tensor, which is correct, only slower.)
        """
        foreach = self.supports_foreach and group.get("foreach") is not False
        maximize = group.get("maximize", False)
        batches = {}  # step -> ([params], [grads], [states])
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            state = self.state[p]
            if not state:
                if grad.is_sparse or torch.is_complex(p):
                    raise ValueError("sparse gradients and complex parameters are not supported")
                state["step"] = 0
                state.update(self.init_state(p, group))
            # a state loaded from torch.optim.Muon has no step count: it starts at 0
            step = state["step"] = state.get("step", 0) + 1
            if maximize:
                grad = -grad
            if not foreach:
                yield step, p, grad, state
            elif step in batches:
                params, grads, states = batches[step]
                params.append(p)
                grads.append(grad)
                states.append(state)
            else:
                batches[step] = ([p], [grad], [state])
        for step, (params, grads, states) in batches.items():
            names = [name for name in states[0] if name != "step"]
            yield (
                step,
                TensorList(params),
                TensorList(grads),
                {name: TensorList([s[name] for s in states]) for name in names},
            )
