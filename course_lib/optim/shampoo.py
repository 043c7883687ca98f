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

What made Shampoo win in practice (Anil et al. 2020; Shi et al. 2023), as keyword options:

- ``graft="sgd"`` or ``"adam"``: *grafting*. Shampoo gives the direction, a simpler
  optimizer the step length, per parameter: :math:`D = \tilde G \, \|A\|_F / \|\tilde G\|_F`
  with :math:`A = G` (SGD) or :math:`A = G / (\sqrt{v / (1 - \beta^t)} + \epsilon_g)`,
  :math:`v \gets \beta v + (1 - \beta) G^2` (Adam's second moment only: momentum is applied
  afterwards, to :math:`D`, as in Shi et al.). The learning rate of the grafted optimizer
  then carries over.
- ``beta2 < 1``: the statistics become moving averages,
  :math:`H_i \gets \beta_2 H_i + (1 - \beta_2) G_{(i)} G_{(i)}^\top` (1: the sum above).
- ``epsilon_at_root=True``: the statistics start at 0 and epsilon is added where the root
  is taken, :math:`(H_i + \epsilon I)^{-1/p}`, as in Shi et al.; by default (Gupta et al.)
  :math:`\epsilon I` is the statistic's starting value, which a moving average forgets.
- ``exponent_override=p``: every statistic to the power :math:`-1/p` instead of
  :math:`-1/(2k)` (Shi et al. expose the root as a hyperparameter; with grafting the
  overall scale no longer depends on it).
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer, zeros_state
from .transforms import bias_correction, ema_, ema_of_squares_, heavy_ball_


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


def graft_(direction, grad, graft, graft_exp_avg_sq, *, step, graft_beta2, graft_eps):
    """``direction`` rescaled in place to the Frobenius norm of SGD's or Adam's step."""
    if graft == "sgd":
        target_norm = grad.norm()
    else:
        ema_of_squares_(graft_exp_avg_sq, grad, graft_beta2)
        v_hat = graft_exp_avg_sq / bias_correction(graft_beta2, step)
        target_norm = (grad / (v_hat.sqrt() + graft_eps)).norm()
    norm = direction.norm()
    return direction.mul_(target_norm / norm) if norm > 0 else direction


def shampoo_update_(
    param,
    grad,
    statistics,
    roots,
    momentum_buffer,
    graft_exp_avg_sq=None,
    *,
    step,
    lr,
    momentum,
    epsilon,
    update_freq,
    beta2=1.0,
    epsilon_at_root=False,
    exponent_override=None,
    graft=None,
    graft_beta2=0.999,
    graft_eps=1e-8,
):
    """One Shampoo step on ``param`` (statistics, roots and buffers updated in place)."""
    order = grad.dim()
    p = exponent_override or 2 * order
    for mode, statistic in enumerate(statistics):
        g = unfold(grad, mode)
        if beta2 == 1:
            statistic.add_(g @ g.T)
        else:
            ema_(statistic, g @ g.T, beta2)
        if (step - 1) % update_freq == 0:
            if epsilon_at_root:
                eye = torch.eye(len(statistic), dtype=statistic.dtype, device=statistic.device)
                roots[mode].copy_(inverse_root(statistic + epsilon * eye, p))
            else:
                # eigenvalues of epsilon*I + (decayed) G G^T are >= epsilon * beta2^t
                roots[mode].copy_(inverse_root(statistic, p, floor=epsilon * beta2**step))
    direction = grad
    for mode, root in enumerate(roots):
        direction = mode_product(direction, root, mode)
    if graft is not None:
        direction = graft_(
            direction,
            grad,
            graft,
            graft_exp_avg_sq,
            step=step,
            graft_beta2=graft_beta2,
            graft_eps=graft_eps,
        )
    if momentum != 0:
        direction = heavy_ball_(momentum_buffer, direction, momentum)
    param.add_(direction, alpha=-lr)


def _as_vector(tensor):
    """A 0-dimensional tensor as a vector of length 1 (a view); others as they are."""
    return tensor if tensor.dim() > 0 else tensor.view(1)


SHAMPOO_OPTIONS = ("lr", "momentum", "epsilon", "update_freq", "beta2", "epsilon_at_root")
SHAMPOO_OPTIONS += ("exponent_override", "graft", "graft_beta2", "graft_eps")


class Shampoo(CourseOptimizer):
    """Shampoo(params, lr=1e-1, momentum=0.0, epsilon=1e-4, update_freq=1, *, beta2=1.0,
    epsilon_at_root=False, exponent_override=None, graft=None, graft_beta2=0.999,
    graft_eps=1e-8, maximize=False).

    State per parameter: ``step``, ``statistics`` (one d_i x d_i matrix per dimension),
    ``roots`` (their -1/p powers, as last computed), ``momentum_buffer`` if momentum > 0
    and ``graft_exp_avg_sq`` with Adam grafting.
    """

    supports_foreach = False

    def __init__(
        self,
        params,
        lr=1e-1,
        momentum=0.0,
        epsilon=1e-4,
        update_freq=1,
        *,
        beta2=1.0,
        epsilon_at_root=False,
        exponent_override=None,
        graft=None,
        graft_beta2=0.999,
        graft_eps=1e-8,
        maximize=False,
        fused=None,
    ):
        _args.unit_interval("momentum", momentum)
        _args.positive("epsilon", epsilon)
        _args.integer("update_freq", update_freq, minimum=1)
        if isinstance(beta2, bool) or not 0.0 < beta2 <= 1.0:
            raise ValueError(f"beta2 must be in (0, 1], got {beta2!r}")
        if exponent_override is not None:
            _args.integer("exponent_override", exponent_override, minimum=1)
        _args.one_of("graft", graft, (None, "sgd", "adam"))
        _args.unit_interval("graft_beta2", graft_beta2)
        _args.nonnegative("graft_eps", graft_eps)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            epsilon=epsilon,
            update_freq=update_freq,
            beta2=beta2,
            epsilon_at_root=epsilon_at_root,
            exponent_override=exponent_override,
            graft=graft,
            graft_beta2=graft_beta2,
            graft_eps=graft_eps,
            maximize=maximize,
            fused=fused,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        param = _as_vector(param)
        start = 0.0 if group["epsilon_at_root"] else group["epsilon"]
        eye = [torch.eye(d, dtype=param.dtype, device=param.device) for d in param.shape]
        state = {"statistics": [start * e for e in eye]}
        state["roots"] = [torch.zeros_like(s) for s in state["statistics"]]
        if group["momentum"] != 0:
            state["momentum_buffer"] = zeros_state(param)
        if group["graft"] == "adam":
            state["graft_exp_avg_sq"] = zeros_state(param)
        return state

    def update(self, group, step, param, grad, state):
        shampoo_update_(
            _as_vector(param),
            _as_vector(grad),
            state["statistics"],
            state["roots"],
            state.get("momentum_buffer"),
            state.get("graft_exp_avg_sq"),
            step=step,
            **{name: group[name] for name in SHAMPOO_OPTIONS},
        )
