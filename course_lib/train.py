"""One small training loop, used by every chapter.

Each step draws a minibatch, and hands the optimizer a *closure* that recomputes the loss
and its gradient on that minibatch:

.. code-block:: python

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(x_batch), y_batch)
        loss.backward()
        return loss

    optimizer.step(closure)

Every ``torch.optim`` optimizer accepts a closure; SGD or Adam call it once, while L-BFGS
calls it as often as its line search needs. An optimizer that differentiates the loss itself
(:class:`~course_lib.optim.Newton`, which says so with ``differentiates_loss = True``) gets
a closure that returns the loss with its graph and does not call ``backward()``. So the same
loop serves them all. With ``schedule``, every group's learning rate is set to
``schedule(t)`` before step t (t = 0, 1, ...), e.g.
``schedule=functools.partial(schedules.warmup_cosine, warmup_steps=50, total_steps=500,
peak_lr=1e-3)``.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import trange

from course_lib import _args
from course_lib.data import Split


@dataclass
class History:
    """What :func:`train` logged, one entry per logged step.

    ``loss`` and ``accuracy`` are means over the minibatches since the previous log;
    ``test_loss`` and ``test_accuracy`` are measured on the whole test set (when there is one).
    Accuracies are ``None`` unless the targets are class labels.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float | None] = field(default_factory=list)


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float | None:
    """Share of correct predictions, or ``None`` when the targets are not class labels.

    Integer targets with outputs of shape ``(n, classes)``: the argmax is the prediction.
    Binary targets (0/1) with one logit per example: the prediction is ``logit > 0``.
    """
    if not target.is_floating_point() and output.dim() == 2 and output.shape[1] > 1:
        return (output.argmax(dim=1) == target).float().mean().item()
    logits = output.reshape(target.shape) if output.numel() == target.numel() else None
    if logits is not None and bool(((target == 0) | (target == 1)).all()):
        return ((logits > 0).to(target.dtype) == target).float().mean().item()
    return None


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless minibatch indices: shuffle, cut into batches, drop the short remainder, repeat."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def _closure(model, optimizer, loss_fn, x_batch, y_batch, outputs: dict):
    """The closure of one step; it keeps the model's first output in ``outputs``."""
    backward = not getattr(optimizer, "differentiates_loss", False)

    def closure():
        optimizer.zero_grad()
        output = model(x_batch)
        loss = loss_fn(output, y_batch)
        if backward:
            loss.backward()
        outputs.setdefault("first", output.detach())
        return loss

    return closure


def train(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn,
    data,
    *,
    steps: int = 100,
    batch_size: int | None = None,
    device=None,
    log_every: int = 1,
    seed: int = 0,
    progress: bool = True,
    schedule: Callable[[int], float] | None = None,
) -> History:
    """Train ``model`` for ``steps`` optimizer steps and return the :class:`History`.

    Args:
        data: a :class:`~course_lib.data.Split` (then the test set is evaluated at every
            log) or a pair ``(x, y)`` of training tensors.
        batch_size: examples per step; ``None`` uses the whole training set (full batch).
        device: where to train; ``None`` keeps the device of the model's parameters. Create
            the optimizer after moving the model, or pass the model's own device.
        log_every: log every this many steps (and always at the last step).
        seed: fixes the minibatch order and seeds torch (for dropout and the like).
        progress: show a progress bar.
        schedule: a function of the step t = 0, 1, ... that gives the learning rate of
            step t; ``None`` leaves the optimizer's learning rates alone.
    """
    _args.integer("steps", steps, minimum=1)
    _args.integer("log_every", log_every, minimum=1)
    if schedule is not None and not callable(schedule):
        raise ValueError(f"schedule must be a function of the step, got {schedule!r}")
    if isinstance(data, Split):
        x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    else:
        (x, y), x_test, y_test = data, None, None
    n = len(x)
    if batch_size is None:
        batch_size = n
    _args.integer("batch_size", batch_size, minimum=1, maximum=n)

    first = next(model.parameters())
    device = first.device if device is None else torch.device(device)
    model.to(device)

    def place(t):
        if t is None:
            return None
        return t.to(device=device, dtype=first.dtype if t.is_floating_point() else None)

    x, y, x_test, y_test = place(x), place(y), place(x_test), place(y_test)
    torch.manual_seed(seed)
    batches = _batches(n, batch_size, torch.Generator().manual_seed(seed))
    history = History()
    window_losses, window_accuracies = [], []

    bar = trange(steps, disable=not progress, desc="training", leave=False)
    for step in bar:
        index = next(batches).to(device)
        x_batch, y_batch = x[index], y[index]
        if schedule is not None:
            lr = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
        model.train()
        outputs = {}
        closure = _closure(model, optimizer, loss_fn, x_batch, y_batch, outputs)
        loss = optimizer.step(closure)
        if loss is None:  # an optimizer that ignores the closure's result
            with torch.no_grad():
                loss = loss_fn(outputs["first"], y_batch)
        window_losses.append(float(loss.detach()))
        window_accuracies.append(accuracy(outputs["first"], y_batch))

        if (step + 1) % log_every == 0 or step == steps - 1:
            history.step.append(step + 1)
            history.loss.append(sum(window_losses) / len(window_losses))
            known = [a for a in window_accuracies if a is not None]
            history.accuracy.append(sum(known) / len(known) if known else None)
            window_losses, window_accuracies = [], []
            if x_test is not None:
                model.eval()
                with torch.no_grad():
                    output = model(x_test)
                    history.test_loss.append(float(loss_fn(output, y_test)))
                    history.test_accuracy.append(accuracy(output, y_test))
            bar.set_postfix(loss=f"{history.loss[-1]:.4g}")
    return history
