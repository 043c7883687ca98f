r"""Shampoo (Gupta, Koren & Singer 2018): one preconditioner per tensor dimension.

Full-matrix AdaGrad would precondition the flattened gradient by
:math:`(\sum_t g_t g_t^\top)^{-1/2}`, an n x n matrix. Shampoo keeps instead, for a parameter
of order k with dimensions :math:`d_1 \times \dots \times d_k`, one small statistic per
dimension, started at :math:`\epsilon I_{d_i}`:

.. math::

    H_i \gets H_i + G_{(i)} G_{(i)}^\top, \qquad
    \tilde G = G \times_1 H_1^{-1/(2k)} \times_2 \dots \times_k H_k^{-1/(2k)}, \qquad
    W \gets W - \eta \tilde G,

where :math:`G_{(i)}` is the mode-i unfolding of this step's gradient (a :math:`d_i \times
\prod_{j \ne i} d_j` matrix) and :math:`\times_i` multiplies along mode i. The statistics are
updated *first*, so this step's gradient is preconditioned by statistics that include it.
For a matrix this is :math:`L^{-1/4} G R^{-1/4}` with :math:`L = \epsilon I + \sum G G^\top`,
:math:`R = \epsilon I + \sum G^\top G`; for a vector, :math:`H^{-1/2} g` (full-matrix AdaGrad).
The product of the Kronecker factors approximates the full-matrix statistic.

Inverse roots come from the symmetric eigendecomposition :math:`H = Q \Lambda Q^\top`,
:math:`H^{-1/p} = Q \Lambda^{-1/p} Q^\top`. With ``update_freq`` = f > 1 the roots are
recomputed at steps 1, 1 + f, 1 + 2f, ... and reused in between (the statistics are still
updated at every step). ``momentum`` (beta) is heavy-ball momentum on the preconditioned
gradient: :math:`m \gets \beta m + \tilde G`, :math:`W \gets W - \eta m` (beta = 0: none).
A 0-dimensional parameter is treated as a vector of length 1.
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer, zeros_state
from .transforms import heavy_ball_


def inverse_root(matrix: torch.Tensor, p: int, floor: float = 0.0) -> torch.Tensor:
    """matrix^(-1/p) of a symmetric positive-definite matrix by eigendecomposition.

    Eigenvalues are clipped below at ``floor`` (those that rounding pushed under it)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    scale = eigenvalues.clamp(min=floor).pow(-1.0 / p)
    return (eigenvectors * scale) @ eigenvectors.T


def unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    """The mode-``mode`` unfolding: a (d_mode) x (product of the other dims) matrix."""
    return tensor.movedim(mode, 0).reshape(tensor.shape[mode], -1)


def mode_product(tensor: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """tensor x_mode matrix: multiply every mode-``mode`` fibre of the tensor by ``matrix``."""
    moved = tensor.movedim(mode, 0)
    product = (matrix @ moved.reshape(moved.shape[0], -1)).reshape(moved.shape)
    return product.movedim(0, mode)


def shampoo_update_(
    param, grad, statistics, roots, momentum_buffer, *, step, lr, momentum, epsilon, update_freq
):
    """One Shampoo step on ``param`` (statistics, roots and buffer updated in place)."""
    order = grad.dim()
    for mode, statistic in enumerate(statistics):
        g = unfold(grad, mode)
        statistic.add_(g @ g.T)
        if (step - 1) % update_freq == 0:
            roots[mode].copy_(inverse_root(statistic, 2 * order, floor=epsilon))
    direction = grad
    for mode, root in enumerate(roots):
        direction = mode_product(direction, root, mode)
    if momentum != 0:
        direction = heavy_ball_(momentum_buffer, direction, momentum)
    param.add_(direction, alpha=-lr)


def _as_vector(tensor):
    """A 0-dimensional tensor as a vector of length 1 (a view); others as they are."""
    return tensor if tensor.dim() > 0 else tensor.view(1)


class Shampoo(CourseOptimizer):
    """Shampoo(params, lr=1e-1, momentum=0.0, epsilon=1e-4, update_freq=1).

    State per parameter: ``step``, ``statistics`` (one d_i x d_i matrix per dimension),
    ``roots`` (their -1/(2k) powers, as last computed) and, if momentum > 0,
    ``momentum_buffer``.
    """

    supports_foreach = False

    def __init__(self, params, lr=1e-1, momentum=0.0, epsilon=1e-4, update_freq=1):
        _args.unit_interval("momentum", momentum)
        _args.positive("epsilon", epsilon)
        _args.integer("update_freq", update_freq, minimum=1)
        defaults = dict(lr=lr, momentum=momentum, epsilon=epsilon, update_freq=update_freq)
        super().__init__(params, defaults)

    def init_state(self, param, group):
        param = _as_vector(param)
        eye = [torch.eye(d, dtype=param.dtype, device=param.device) for d in param.shape]
        state = {"statistics": [group["epsilon"] * e for e in eye]}
        state["roots"] = [torch.zeros_like(s) for s in state["statistics"]]
        if group["momentum"] != 0:
            state["momentum_buffer"] = zeros_state(param)
        return state

    def update(self, group, step, param, grad, state):
        shampoo_update_(
            _as_vector(param),
            _as_vector(grad),
            state["statistics"],
            state["roots"],
            state.get("momentum_buffer"),
            step=step,
            lr=group["lr"],
            momentum=group["momentum"],
            epsilon=group["epsilon"],
            update_freq=group["update_freq"],
        )
