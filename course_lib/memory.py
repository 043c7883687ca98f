"""Measured memory of parameters, gradients and optimizer state.

Bytes are read off the tensors that exist: each distinct storage is counted once, at its
full size, so tied weights, views and shared buffers are not counted twice. Numbers that
are not tensors (an integer step count) take no tensor memory and count 0.
"""

import torch


def tensor_bytes(tensors):
    """Bytes held by the storages of ``tensors`` (an iterable; None entries are ignored)."""
    seen = set()
    total = 0
    for t in tensors:
        if t is None:
            continue
        storage = t.untyped_storage()
        key = (t.device, storage.data_ptr())
        if storage.data_ptr() == 0 or key in seen:
            continue
        seen.add(key)
        total += storage.nbytes()
    return total


def _state_tensors(value):
    """Every tensor inside an optimizer state entry (dicts and lists are searched)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _state_tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _state_tensors(v)


def optimizer_state_bytes(optimizer):
    """Bytes of all tensors in ``optimizer.state`` (any torch.optim.Optimizer)."""
    return tensor_bytes(_state_tensors(list(optimizer.state.values())))


def _parameters(model_or_params):
    if isinstance(model_or_params, torch.nn.Module):
        return list(model_or_params.parameters())
    return list(model_or_params)


def parameter_bytes(model_or_params):
    """Bytes of the parameters of a model (or of an iterable of parameters)."""
    return tensor_bytes(_parameters(model_or_params))


def gradient_bytes(model_or_params):
    """Bytes of the gradients stored on those parameters (``None`` gradients count 0)."""
    return tensor_bytes(p.grad for p in _parameters(model_or_params))


def optimizer_parameters(optimizer):
    """The parameters of every group of ``optimizer``, as one list."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def state_bytes_per_parameter_byte(optimizer):
    """Optimizer state bytes / bytes of the parameters it optimizes (Adam: 2, SGD: 0)."""
    return optimizer_state_bytes(optimizer) / parameter_bytes(optimizer_parameters(optimizer))


def memory_breakdown(model, optimizer=None):
    """Bytes of a model's parameters, gradients and optimizer state, and their total.

    >>> memory_breakdown(model, optimizer)
    {'parameters': ..., 'gradients': ..., 'optimizer_state': ..., 'total': ...}
    """
    breakdown = {
        "parameters": parameter_bytes(model),
        "gradients": gradient_bytes(model),
        "optimizer_state": 0 if optimizer is None else optimizer_state_bytes(optimizer),
    }
    breakdown["total"] = sum(breakdown.values())
    return breakdown
