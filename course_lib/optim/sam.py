r"""Sharpness-aware minimization, SAM (Foret et al. 2021).

SAM minimizes the worst loss in a ball of radius :math:`\rho` around the weights,
:math:`\max_{\|\epsilon\| \le \rho} L(\theta + \epsilon)`, which is low only where the loss
is low *and* flat. To first order the worst perturbation is along the gradient, so one SAM
step is two gradient evaluations:

.. math::

    \hat\epsilon &= \rho\, \frac{\nabla L(\theta)}{\|\nabla L(\theta)\|}
        && \text{(climb to the worst nearby point)} \\
    g_{\mathrm{SAM}} &= \nabla L(\theta + \hat\epsilon)
        && \text{(the gradient there)} \\
    \theta &\gets \text{base optimizer step from } \theta \text{ with } g_{\mathrm{SAM}}

The norm is over all parameters together. Any optimizer can take the step (SGD in the
paper); SAM costs two forward-backward passes per step instead of one.
"""

import torch
from torch.optim import Optimizer

from course_lib import _args


class SAM(Optimizer):
    """SAM(params, base_optimizer, rho=0.05, **kwargs).

    ``base_optimizer`` is an optimizer class (``torch.optim.SGD``, ``course_lib.optim.Adam``,
    ...), built here on the same parameter groups with ``**kwargs`` (its lr, momentum, ...).
    ``step(closure)`` needs the closure (zero the gradients, compute the loss, backward,
    return the loss): it is called twice, at the weights and at the perturbed weights, and
    the loss at the weights is returned. With ``maximize=True`` (passed on to the base
    optimizer) the perturbation climbs down instead, towards the worst point for ascent.
    """

    def __init__(self, params, base_optimizer, rho=0.05, **kwargs):
        _args.nonnegative("rho", rho)
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        # share the groups, so that lr changes (schedulers) reach the base optimizer
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    @torch.no_grad()
    def _perturbation(self):
        grads = [p.grad for group in self.param_groups for p in group["params"]]
        norms = [torch.linalg.vector_norm(g) for g in grads if g is not None]
        if not norms:
            return {}
        norm = torch.linalg.vector_norm(torch.stack(norms))
        perturbations = {}
        for group in self.param_groups:
            sign = -1.0 if group.get("maximize", False) else 1.0
            for p in group["params"]:
                if p.grad is not None:
                    perturbations[p] = p.grad * (sign * group["rho"] / (norm + 1e-12))
        return perturbations

    @torch.no_grad()
    def step(self, closure=None):
        """One SAM step: gradient at theta, perturb, gradient there, restore, base step."""
        if closure is None:
            raise ValueError("SAM.step needs a closure: it evaluates the gradient twice")
        with torch.enable_grad():
            loss = closure()
        perturbations = self._perturbation()
        for p, e in perturbations.items():
            p.add_(e)
        with torch.enable_grad():
            closure()
        for p, e in perturbations.items():
            p.sub_(e)
        self.base_optimizer.step()
        return loss

    def state_dict(self):
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict):
        self.base_optimizer.load_state_dict(state_dict)
