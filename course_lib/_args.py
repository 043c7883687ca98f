"""Argument checks shared by the whole package, with one policy.

Every check raises ``ValueError`` whose message starts with the argument's name and ends with
the value it got. Booleans are not numbers: ``True`` is rejected where an integer or a float
is expected (Python would otherwise read it as 1). Comparisons are written so that NaN fails
them (``not value >= 0`` rather than ``value < 0``).
"""

import math

import torch


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(name: str, value, minimum: int = 0, maximum: int | None = None) -> None:
    """``value`` is an int (not a bool) with ``minimum <= value`` (``<= maximum`` if given)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")


def nonnegative(name: str, value) -> None:
    """``value >= 0`` (a number, or a one-element tensor such as a tensor learning rate)."""
    if isinstance(value, bool) or not value >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def positive(name: str, value) -> None:
    """``value > 0``, a finite or infinite number but not NaN and not a bool."""
    if not _is_number(value) or not value > 0.0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def unit_interval(name: str, value, *, closed: bool = False) -> None:
    """0 <= value < 1 (or <= 1 when ``closed``)."""
    inside = _is_number(value) and (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0)
    if not inside:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def pair(name: str, value) -> None:
    """A tuple or list of length 2."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (a tuple of length 2), got {value!r}")


def betas(value, name: str = "betas") -> None:
    """A pair of moving-average coefficients, each in [0, 1)."""
    pair(name, value)
    unit_interval(f"{name}[0]", value[0])
    unit_interval(f"{name}[1]", value[1])


def one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def lr(value, name: str = "lr") -> None:
    """A learning rate: a number >= 0, or a one-element tensor >= 0, as torch.optim allows."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element, got shape {tuple(value.shape)}")
        if not value.item() >= 0.0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return
    if not _is_number(value) or math.isnan(value) or value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
