r"""NAdam (Dozat 2016): Adam with Nesterov momentum.

Nesterov's momentum evaluates the step at the point the momentum is about to carry the
weights to. NAdam does this inside Adam by mixing the fresh gradient and the next step's
momentum, with a momentum coefficient that grows slowly over time (``momentum_decay``
:math:`\psi`):

.. math::

    \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{t \psi}\right), \qquad
    \Pi_t = \prod_{i \le t} \mu_i \\
    m &\gets \beta_1 m + (1 - \beta_1) g, \qquad v \gets \beta_2 v + (1 - \beta_2) g^2 \\
    \theta &\gets \theta - \eta \left(\frac{1 - \mu_t}{1 - \Pi_t}\, g
        + \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}}\, m\right)
        \Big/ \left(\sqrt{v / (1 - \beta_2^t)} + \epsilon\right)

Weight decay as in Adam (L2) or AdamW (``decoupled_weight_decay=True``). Exactly
torch.optim.NAdam, including where :math:`\Pi_t` lives: like torch, it is kept as a 0-d
tensor in the default float dtype (float32 unless the default is float64), so that the
two optimizers agree to the last bits and their state_dicts are interchangeable.
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer
from ._tensorlist import TensorList
from .transforms import add_l2_penalty, bias_correction, decay_weights_, ema_, ema_of_squares_


def _scalar_dtype():
    """The dtype of torch.optim's scalar state: float64 if that is the default, else float32."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def nadam_momentum(beta1, momentum_decay, step):
    r""":math:`\mu_t = \beta_1 (1 - 0.5 \cdot 0.96^{t \psi})`, NAdam's momentum at step t."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))


def nadam_update_(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    mu_product,
    *,
    step,
    lr,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    momentum_decay=4e-3,
    decoupled_weight_decay=False,
):
    """One NAdam step; ``mu_product`` (0-d tensor(s), :math:`\\Pi_{t-1}`) becomes :math:`\\Pi_t`."""
    if weight_decay != 0:
        if decoupled_weight_decay:
            decay_weights_(param, lr, weight_decay)
        else:
            grad = add_l2_penalty(grad, param, weight_decay)
    mu = nadam_momentum(beta1, momentum_decay, step)
    mu_next = nadam_momentum(beta1, momentum_decay, step + 1)
    mu_product.mul_(mu)
    # parameters batched together share their step, hence their product of momenta
    product = (mu_product[0] if isinstance(mu_product, TensorList) else mu_product).item()
    ema_(exp_avg, grad, beta1)
    ema_of_squares_(exp_avg_sq, grad, beta2)
    denom = exp_avg_sq.div(bias_correction(beta2, step)).sqrt_().add_(eps)
    param.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - product))
    param.addcdiv_(exp_avg, denom, value=-lr * mu_next / (1.0 - product * mu_next))


class NAdam(CourseOptimizer):
    """NAdam(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False).

    Same signature, defaults and numerics as torch.optim.NAdam. State per parameter:
    ``exp_avg`` (m), ``exp_avg_sq`` (v) and ``mu_product`` (the product of the momenta).
    """

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
        *,
        foreach=None,
        maximize=False,
        fused=None,
    ):
        _args.lr(lr)
        _args.betas(betas)
        _args.nonnegative("eps", eps)
        _args.nonnegative("weight_decay", weight_decay)
        _args.nonnegative("momentum_decay", momentum_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
        super().__init__(params, defaults)

    def init_state(self, param, group):
        return {
            "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
            "mu_product": torch.ones((), dtype=_scalar_dtype()),
        }

    def load_state_dict(self, state_dict):
        """torch's loader casts every state tensor but ``step`` to the parameter's dtype;
        put the saved products of momenta back as they were, so a resumed run is
        bit-identical (in bfloat16 the cast would round them)."""
        products = {i: s["mu_product"] for i, s in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        for i, p in zip(saved_ids, params, strict=True):
            if i in products:
                self.state[p]["mu_product"] = products[i].to(_scalar_dtype(), copy=True)

    def update(self, group, step, param, grad, state):
        beta1, beta2 = group["betas"]
        nadam_update_(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state["mu_product"],
            step=step,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum_decay=group["momentum_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
