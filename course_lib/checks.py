"""Student-facing checks for the visible test cells of the exercise sets.

Each check returns quietly when the answer is right and otherwise raises ``AssertionError``
with a message a learner can act on: what was expected, what was got, where they differ,
and an optional hint. Nothing here needs a grading package; the checks work in any notebook.

Closeness is the usual elementwise test ``|got - expected| <= atol + rtol * |expected|``
(the rule of ``numpy.allclose`` and ``torch.allclose``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["check_close", "check_shape", "check_dtype", "check_function", "check_true", "withheld"]


def _fail(name: str, problem: str, hint: str | None) -> None:
    message = f"{name}: {problem}"
    if hint:
        message += f"\nHint: {hint}"
    raise AssertionError(message)


def _as_array(value: Any, name: str, hint: str | None) -> np.ndarray:
    """A float64 NumPy copy of a number, list, NumPy array or torch tensor."""
    if value is None:
        _fail(name, "got None; did the function forget to `return` its result?", hint)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, on any device
        value = value.detach().cpu()
        if value.is_complex():
            return value.numpy()
        return value.double().numpy()
    try:
        array = np.asarray(value)
        if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
            raise TypeError
        return array.astype(np.complex128 if np.iscomplexobj(array) else np.float64)
    except (TypeError, ValueError):
        _fail(name, f"expected numbers, got {type(value).__name__}: {value!r:.80}", hint)


def _short(array: np.ndarray) -> str:
    return np.array2string(array, precision=6, threshold=12, edgeitems=3)


def check_shape(got: Any, expected_shape: Iterable[int], *, name: str = "value", hint=None):
    """Check that ``got`` (tensor, array or nested list) has shape ``expected_shape``."""
    got_shape = tuple(_as_array(got, name, hint).shape)
    expected_shape = tuple(int(n) for n in expected_shape)
    if got_shape != expected_shape:
        _fail(name, f"expected shape {expected_shape}, got shape {got_shape}", hint)


def check_dtype(got: Any, expected_dtype: Any, *, name: str = "value", hint=None):
    """Check the dtype of a tensor or array, e.g. ``torch.float64`` or ``np.float32``."""
    got_dtype = getattr(got, "dtype", None)
    if got_dtype is None:
        _fail(
            name,
            f"expected a tensor or array of dtype {expected_dtype}, got {type(got).__name__}",
            hint,
        )
    same = got_dtype == expected_dtype
    if not same and not hasattr(got, "detach"):  # NumPy: accept np.float64 or "float64"
        same = np.dtype(got_dtype) == np.dtype(expected_dtype)
    if not same:
        _fail(name, f"expected dtype {expected_dtype}, got dtype {got_dtype}", hint)


def check_close(
    got: Any,
    expected: Any,
    *,
    name: str = "value",
    rtol: float = 1e-5,
    atol: float = 1e-8,
    hint: str | None = None,
):
    """Check ``|got - expected| <= atol + rtol * |expected|`` elementwise, shapes equal.

    Works for Python numbers, lists, NumPy arrays and torch tensors (on any device).
    The message names the worst entry: its index, the expected and the got value.
    """
    if rtol < 0:
        raise ValueError(f"rtol must be non-negative, got {rtol}")
    if atol < 0:
        raise ValueError(f"atol must be non-negative, got {atol}")
    got_array = _as_array(got, name, hint)
    expected_array = _as_array(expected, "expected", None)
    if got_array.shape != expected_array.shape:
        _fail(name, f"expected shape {expected_array.shape}, got shape {got_array.shape}", hint)
    if got_array.size == 0:
        return
    bad_value = ~np.isfinite(got_array) & np.isfinite(expected_array)
    if bad_value.any():
        index = tuple(int(i) for i in np.argwhere(bad_value)[0])
        where = f" at index {index}" if got_array.ndim else ""
        _fail(
            name,
            f"got a non-finite value {got_array[index]}{where}; expected {expected_array[index]}",
            hint,
        )
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        error = np.abs(got_array - expected_array)
    allowed = atol + rtol * np.abs(expected_array)
    same_inf = (got_array == expected_array) & ~np.isfinite(expected_array)
    wrong = (error > allowed) & ~same_inf | (np.isnan(expected_array) != np.isnan(got_array))
    if not wrong.any():
        return
    if got_array.ndim == 0:
        _fail(
            name,
            f"expected {expected_array.item()}, got {got_array.item()} "
            f"(difference {error.item():.3g}, allowed {allowed.item():.3g})",
            hint,
        )
    worst = np.unravel_index(np.argmax(np.where(wrong, error - allowed, -np.inf)), error.shape)
    worst = tuple(int(i) for i in worst)
    _fail(
        name,
        f"{int(wrong.sum())} of {wrong.size} entries differ; worst at index {worst}: "
        f"expected {expected_array[worst]}, got {got_array[worst]} "
        f"(difference {error[worst]:.3g}, allowed {allowed[worst]:.3g})\n"
        f"expected:\n{_short(expected_array)}\ngot:\n{_short(got_array)}",
        hint,
    )


def check_function(
    function: Callable,
    cases: Iterable[tuple[tuple, Any]],
    *,
    name: str | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    hint: str | None = None,
):
    """Call ``function(*args)`` for each ``(args, expected)`` case and check the result.

    The message names the first failing case, so the learner can reproduce it.
    """
    if not callable(function):
        _fail(name or "function", f"expected a function, got {type(function).__name__}", hint)
    name = name or getattr(function, "__name__", "function")
    for args, expected in cases:
        shown_args = ", ".join(_show(argument) for argument in args)
        call = f"{name}({shown_args})"
        try:
            got = function(*args)
        except NotImplementedError:
            _fail(call, "not implemented yet: replace `raise NotImplementedError()`", hint)
        check_close(got, expected, name=call, rtol=rtol, atol=atol, hint=hint)


def check_true(condition: bool, message: str, *, hint: str | None = None):
    """Raise a friendly ``AssertionError`` with ``message`` unless ``condition`` holds."""
    if not condition:
        _fail("check", message, hint)


def _show(value: Any) -> str:
    """A short printable form of an argument: tensors and arrays as their numbers."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _short(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _owner_and_attribute(name: str) -> tuple[Any, str]:
    """``"course_lib.autograd.Value.tanh"`` -> (the class Value, "tanh")."""
    parts = name.split(".")
    if len(parts) < 2:
        raise ValueError(f"{name!r} is not a dotted path to a function, class or method")
    owner = importlib.import_module(parts[0])
    for part in parts[1:-1]:  # attributes, or submodules not imported yet
        if not hasattr(owner, part):
            importlib.import_module(f"{owner.__name__}.{part}")
        owner = getattr(owner, part)
    return owner, parts[-1]


def _stand_in(name: str) -> Callable:
    def withheld_object(*args, **kwargs):
        raise RuntimeError(
            f"{name} is withheld while this answer is graded: the answer must compute it itself."
        )

    return withheld_object


@contextmanager
def withheld(*names: str, namespace: dict | None = None) -> Iterator[None]:
    """While the block runs, each named object raises ``RuntimeError`` when called.

    A hidden test wraps its calls to a learner's answer in this block, naming the course_lib
    function, class or method the answer re-implements (``"course_lib.optim.adam.adam_update_"``,
    ``"course_lib.autograd.Value.tanh"``), so that an answer which only calls the course's own
    implementation fails. The object is replaced where it is defined, in every loaded
    ``course_lib`` module that re-exports it, and in ``namespace`` (pass the notebook's
    ``globals()``, which holds names the answer imported); everything is put back afterwards.
    """
    replaced = []  # (holder, key, original): a module or class and attribute, or a dict and key
    try:
        targets = [_owner_and_attribute(name) for name in names]
        modules = [m for k, m in list(sys.modules.items()) if k.startswith("course_lib")]
        for name, (owner, attribute) in zip(names, targets, strict=True):
            original = getattr(owner, attribute)
            stand_in = _stand_in(name)
            replaced.append((owner, attribute, vars(owner).get(attribute, _INHERITED)))
            setattr(owner, attribute, stand_in)
            for holder in [*modules, namespace or {}]:
                items = holder.items() if isinstance(holder, dict) else vars(holder).items()
                for key, value in list(items):
                    if value is original:
                        replaced.append((holder, key, value))
                        _put(holder, key, stand_in)
        yield
    finally:
        for holder, key, value in reversed(replaced):
            _put(holder, key, value)


_INHERITED = object()  # the withheld method was inherited: delete the stand-in afterwards


def _put(holder, key: str, value) -> None:
    if isinstance(holder, dict):
        holder[key] = value
    elif value is _INHERITED:
        delattr(holder, key)
    else:
        setattr(holder, key, value)
