r"""The small pieces that the optimizers are built from.

Every optimizer in ``course_lib.optim`` is a few of these pieces in a row, as in optax:

- SGD with momentum  = L2 penalty + heavy-ball momentum
- RMSprop            = L2 penalty + moving average of g^2 + divide by its root
  (+ heavy-ball momentum)
- Adam               = L2 penalty + moving average of g (momentum) + moving average of g^2
  (RMS scaling) + bias correction of both
- AdamW              = Adam with the weight decay decoupled from the gradient
- Lion               = decoupled weight decay + interpolated momentum + sign

Each function works in place on a tensor, or on a :class:`TensorList` of tensors, in which
case it runs as one multi-tensor kernel. The arithmetic is written in the same order as in
torch.optim, so that the results agree to the last bit.
"""

import math

import torch

from ._tensorlist import TensorList


def add_l2_penalty(grad, param, weight_decay):
    r"""Gradient of ``loss + weight_decay/2 * ||param||^2``:  :math:`g + \lambda \theta`.

    This is what torch's SGD, Adagrad, RMSprop and Adam call ``weight_decay``. Returns a
    new tensor; ``param.grad`` is left untouched.
    """
    return grad.add(param, alpha=weight_decay)


def decay_weights_(param, lr, weight_decay):
    r"""Decoupled weight decay (Loshchilov & Hutter):  :math:`\theta \gets (1 - \eta\lambda)\theta`.

    Shrinks the weights directly, outside the adaptive scaling (AdamW, Lion, Adafactor).
    """
    return param.mul_(1 - lr * weight_decay)


def heavy_ball_(buffer, update, momentum, dampening=0.0, *, first=False):
    r"""Heavy-ball momentum, in place:  :math:`b \gets \mu b + (1 - \tau) u`.

    With ``first`` the buffer starts as the update itself, :math:`b \gets u` (torch's SGD);
    a buffer started at zero gives :math:`(1 - \tau) u` instead (RMSprop, Shampoo). Unlike a
    moving average, the weights do not sum to one: with :math:`\tau = 0` a constant update
    :math:`u` builds up to :math:`u / (1 - \mu)`.
    """
    if isinstance(first, torch.Tensor):  # a compiled step (fused=True): select, do not branch
        later = buffer * momentum + update * (1 - dampening)
        return buffer.copy_(torch.where(first, update, later))
    if first:
        return buffer.copy_(update)
    return buffer.mul_(momentum).add_(update, alpha=1 - dampening)


def ema_(average, x, beta):
    r"""Exponential moving average, in place:  :math:`m \gets \beta m + (1 - \beta) x`.

    Written as ``lerp`` (:math:`m + (1-\beta)(x - m)`), as torch's Adam does for its first
    moment.
    """
    return average.lerp_(x, 1 - beta)


def ema(average, x, beta):
    r""":math:`\beta m + (1 - \beta) x` as a new tensor; ``average`` is left unchanged.

    Lion uses it to interpolate between its momentum and the fresh gradient.
    """
    return average.lerp(x, 1 - beta)


def ema_of_squares_(average, x, beta):
    r"""Exponential moving average of squares:  :math:`v \gets \beta v + (1 - \beta) x^2`."""
    return average.mul_(beta).addcmul_(x, x, value=1 - beta)


def running_max_(maximum, x):
    r"""Elementwise running maximum, in place:  :math:`\hat v \gets \max(\hat v, x)` (AMSGrad)."""
    if isinstance(maximum, TensorList):
        return maximum.maximum_(x)
    return torch.maximum(maximum, x, out=maximum)


def power(base, exponent):
    r""":math:`b^t`; for a 0-d tensor :math:`t` (a compiled step, ``fused=True``) as
    :math:`e^{t \log b}`.

    Inductor inlines a step's scalar arithmetic into the loop over each parameter's elements,
    and ``pow`` ran there once for every eight of them (AdamW's compiled step 2.6x slower);
    the ``exp`` it computes once per parameter, before that loop. (:math:`0^t = 0` for the
    steps :math:`t \ge 1`.)
    """
    if isinstance(exponent, torch.Tensor):
        if base == 0:
            return torch.zeros_like(exponent)
        return torch.exp(exponent * math.log(base))
    return base**exponent


def bias_correction(beta, step):
    r""":math:`1 - \beta^t`: a moving average started at 0 has weight :math:`1-\beta^t` on data.

    Dividing the average by it undoes the pull towards 0 of the first steps.
    """
    return 1 - power(beta, step)


def sign_(x):
    r""":math:`\operatorname{sign}(x)` in place: every coordinate becomes -1, 0 or +1."""
    return x.sign_()
