"""What every first-order optimizer here shares: the loop over parameters and its state.

A subclass of :class:`CourseOptimizer` only says which state a parameter needs
(``init_state``) and how one step changes it (``update``, which calls the plain update
function of its module). The loop below finds the parameters that have a gradient, creates
their state lazily (on the parameter's device, in its dtype), counts their steps and hands
them to ``update``: one at a time (``foreach=False``), or batched as TensorLists of the
parameters that share their step count (``foreach=True``, the default), so that each line
of the update rule is one multi-tensor kernel. With ``fused=True`` (torch's keyword for its
single-kernel path) the loop over the group's parameters, calling ``update`` on each, runs
compiled by :func:`torch.compile`, one graph per chunk of up to eight parameters: Inductor
fuses each parameter's whole rule into one loop over its elements (C++ on a CPU, Triton on
a GPU), so each byte of the parameter, gradient and state is read and written once, and
computes the step's scalars before those loops. The learning rate and the step reach the
compiled function as 0-d tensors, so that a schedule changing them does not recompile; it
is compiled once per process, optimizer class and chunk layout (shapes are dynamic). Where
torch cannot compile (no C++ compiler, ...) the step warns once and runs the eager update.
"""

import types
import warnings

import torch
from torch.optim import Optimizer

from course_lib import _args

from ._tensorlist import TensorList


def zeros_state(param):
    """A zero tensor shaped, placed and typed like ``param``: the start of most optimizer state."""
    return torch.zeros_like(param, memory_format=torch.preserve_format)


_COMPILED = {}  # function -> its compiled loop over parameters, or None where compiling failed
CHUNK = 8  # parameters per compiled call: its compile time grows with it (~2 s a parameter here)


def _each(function):
    """A loop that calls ``function(*args, *item, **kwargs)`` for each item (one per parameter).

    Compiled, the loop unrolls into one graph: one call per chunk of parameters instead of one
    per parameter. The loop gets a code object of its own per ``function``, as dynamo keeps
    its compiled graphs, and its recompile limit, per code object.
    """

    def each(items, *args, **kwargs):
        for item in items:
            function(*args, *item, **kwargs)

    name = f"{function.__name__}_each"
    code = each.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(code, each.__globals__, name, None, each.__closure__)


def _compiled(function):
    """The loop over parameters calling ``function``, compiled once per process (dynamic shapes)."""
    if function not in _COMPILED:
        _COMPILED[function] = torch.compile(_each(function), dynamic=True)
    return _COMPILED[function]


def chunks(items):
    """``items`` (each starting with its parameter) sorted by the parameter's number of
    dimensions, in chunks of at most CHUNK: one compiled call per chunk, and the chunks of a
    model repeat few layouts (runs of vectors, then of matrices), each compiled once."""
    items = sorted(items, key=lambda item: item[0].ndim)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def run_fused(function, items, *args, **kwargs):
    """``function(*args, *item, **kwargs)`` for each item of ``items``, compiled, one graph a chunk.

    Where compiling fails the loop runs eager, with a warning (once per function).
    """
    for chunk in chunks(tuple(item) for item in items):
        compiled = _compiled(function)
        if compiled is not None:
            try:
                compiled(chunk, *args, **kwargs)
                continue
            except Exception as error:  # Inductor raises many types (no C++ compiler, ...)
                warnings.warn(
                    f"fused=True: torch.compile failed ({type(error).__name__}: {error}); "
                    f"{function.__qualname__} runs eager",
                    RuntimeWarning,
                    stacklevel=3,
                )
                _COMPILED[function] = None
        for item in chunk:
            function(*args, *item, **kwargs)


def scalar_tensor(value):
    """A Python number as a 0-d float64 tensor: a compiled update takes it as an input."""
    return torch.tensor(value, dtype=torch.float64)


class CourseOptimizer(Optimizer):
    """torch.optim.Optimizer with lazy per-parameter state and an integer step count.

    Subclasses implement ``init_state(param, group) -> dict of tensors`` and
    ``update(group, step, param, grad, state)``; ``state`` maps each state name to the
    tensor (or TensorList) of the parameter(s) being updated. With ``fused=True`` the loop
    calling ``update`` on each parameter runs compiled (see the module docstring), with ``lr``
    and ``step`` as 0-d tensors; the results equal the eager ones up to float rounding. A group with
    ``maximize=True`` (torch's keyword) hands ``update`` the negated gradient, so every
    update rule is written for minimization only. A tensor learning rate (one element, as
    torch.optim allows) reaches ``update`` as a Python float.

    ``load_state_dict`` also takes a state_dict saved by the torch.optim optimizer of the same
    name: torch keeps ``step`` as a float tensor (SGD keeps none), here it is an int, and
    group keys that torch does not store (e.g. ``beta1`` of Adafactor) take this optimizer's
    defaults. torch.optim loads this optimizer's state_dict as it is.
    """

    supports_foreach = True

    def __init__(self, params, defaults):
        _args.lr(defaults["lr"])
        if defaults.get("fused") and defaults.get("foreach"):
            raise ValueError("fused and foreach cannot both be True")
        super().__init__(params, defaults)

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
            if isinstance(group["lr"], torch.Tensor):
                group = {**group, "lr": group["lr"].item()}
            if group.get("fused"):
                group = {**group, "lr": scalar_tensor(group["lr"])}
                for step, params, grads, states in self._parameters_to_update(group):
                    items = zip(params, grads, states, strict=True)
                    run_fused(type(self).update, items, self, group, scalar_tensor(step))
                continue
            for step, param, grad, state in self._parameters_to_update(group):
                self.update(group, step, param, grad, state)
        return loss

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for name, default in self.defaults.items():
                group.setdefault(name, default)
        for state in self.state.values():
            if state:  # torch keeps step as a tensor; its SGD keeps none (the state is past step 1)
                state["step"] = int(state.get("step", 1))

    def _parameters_to_update(self, group):
        """Yield ``(step, param, grad, state)`` for the parameters of ``group`` with a grad.

        With foreach, parameters at the same step come together as TensorLists; fused, as
        lists (of parameters, of gradients, of state dicts) for :func:`run_fused`. (Tensors on
        different devices or of different dtypes may share a list: torch's foreach kernels
        then fall back to one kernel per tensor, which is correct, only slower.)
        """
        fused = group.get("fused")
        foreach = not fused and self.supports_foreach and group.get("foreach") is not False
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
            # torch.optim saves the step as a tensor; torch.optim.Muon saves none
            step = state["step"] = int(state.get("step", 0)) + 1
            if maximize:
                grad = -grad
            if not (foreach or fused):
                yield step, p, grad, state
            elif step in batches:
                params, grads, states = batches[step]
                params.append(p)
                grads.append(grad)
                states.append(state)
            else:
                batches[step] = ([p], [grad], [state])
        for step, (params, grads, states) in batches.items():
            if fused:
                yield step, params, grads, states
                continue
            names = [name for name in states[0] if name != "step"]
            yield (
                step,
                TensorList(params),
                TensorList(grads),
                {name: TensorList([s[name] for s in states]) for name in names},
            )
