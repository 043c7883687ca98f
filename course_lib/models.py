r"""The small networks the chapters train: a multilayer perceptron on the 8x8 digits.

.. math::

    h_0 = x, \qquad h_{l} = \sigma(W_l h_{l-1} + b_l) \;(l = 1, \dots, L), \qquad
    \text{scores} = W_{L+1} h_L + b_{L+1}

with ``depth`` = L hidden layers of ``width`` units and activation :math:`\sigma`; the
defaults map the 64 pixels of a digit to 10 class scores.
"""

import torch

from course_lib import _args


def mlp(
    width: int = 64,
    depth: int = 1,
    *,
    inputs: int = 64,
    outputs: int = 10,
    activation=torch.nn.ReLU,
    seed: int | None = 0,
    device=None,
    dtype=None,
) -> torch.nn.Sequential:
    """``inputs -> depth x (Linear(width), activation) -> Linear(outputs)``.

    The weights are PyTorch's default initialization drawn after ``torch.manual_seed(seed)``
    (``seed=None`` leaves the global generator alone), in the default dtype and then moved to
    ``device`` and ``dtype``, so the same seed gives the same network whatever the dtype.
    ``depth=0`` is a linear model.
    """
    _args.integer("width", width, minimum=1)
    _args.integer("depth", depth, minimum=0)
    _args.integer("inputs", inputs, minimum=1)
    _args.integer("outputs", outputs, minimum=1)
    if seed is not None:
        torch.manual_seed(seed)
    layers, fan_in = [], inputs
    for _ in range(depth):
        layers += [torch.nn.Linear(fan_in, width), activation()]
        fan_in = width
    layers.append(torch.nn.Linear(fan_in, outputs))
    return torch.nn.Sequential(*layers).to(device=device, dtype=dtype)
