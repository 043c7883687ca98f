r"""Schedule-free AdamW (Defazio et al. 2024, "The Road Less Scheduled").

A learning-rate schedule needs the stopping time in advance: cosine decay to step T is
only good at step T. Schedule-free training replaces the decay by an average of the
iterates, which is good at every step. It keeps two sequences and evaluates the gradient
at a third, their interpolation:

.. math::

    y_t &= (1 - \beta_1)\, z_t + \beta_1\, x_t
        && \text{(where the gradient is taken; the weights during training)} \\
    z_{t+1} &= z_t - \gamma_t \left(\frac{g(y_t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
        + \lambda y_t\right)
        && \text{(a plain AdamW-style step, no momentum)} \\
    x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \qquad
        c_{t+1} = \frac{w_{t+1}}{\sum_{i \le t+1} w_i}
        && \text{(the average: the weights to evaluate)}

with :math:`v` Adam's moving average of :math:`g^2`, :math:`\gamma_t` the learning rate
after an optional linear warmup, and the averaging weights
:math:`w_t = t^r \, (\max_{i \le t} \gamma_i)^{p}` (``r``, ``weight_lr_power`` :math:`p`),
so that the warmup steps count less in the average. :math:`\beta_1` plays momentum's role:
:math:`y` sits between the fast :math:`z` and the slow average :math:`x`.

Only :math:`y` (in the parameters) and :math:`z` (in the state) are stored; :math:`x` is
recovered from them. Hence the switch its users must call: ``optimizer.train()`` before
training (the parameters hold :math:`y`) and ``optimizer.eval()`` before evaluating or
saving (the parameters hold :math:`x`). Same signature, defaults, group entries and
numerics as the ``schedulefree`` package's AdamWScheduleFree (version 1.4.1).
"""

import torch

from course_lib import _args

from ._base import CourseOptimizer, run_fused, scalar_tensor
from .transforms import bias_correction, ema_of_squares_


def schedulefree_adamw_update_(
    y, grad, z, exp_avg_sq, *, lr, average_weight, beta1, beta2, step, eps, weight_decay
):
    """One step: z takes an AdamW-style step, x averages it in, y is rebuilt from both.

    ``average_weight`` is :math:`c_{t+1}`; ``step`` is the group's step count t (1, 2, ...).
    """
    ema_of_squares_(exp_avg_sq, grad, beta2)
    denom = exp_avg_sq.div(bias_correction(beta2, step)).sqrt_().add_(eps)
    direction = grad.div(denom)
    if weight_decay != 0:
        direction.add_(y, alpha=weight_decay)
    # y_{t+1} = (1 - beta1) z_{t+1} + beta1 x_{t+1}, written as an update of y_t in place
    y.lerp_(z, average_weight)
    y.add_(direction, alpha=lr * (beta1 * (1 - average_weight) - 1))
    z.add_(direction, alpha=-lr)


class AdamWScheduleFree(CourseOptimizer):
    """AdamWScheduleFree(params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    warmup_steps=0, r=0.0, weight_lr_power=2.0, *, foreach=None, maximize=False, fused=None).

    Call ``train()`` before training steps and ``eval()`` before evaluating or saving. State
    per parameter: ``z`` and ``exp_avg_sq``; each group counts its steps in ``k`` and keeps
    the running sum of averaging weights ``weight_sum`` and the largest rate ``lr_max``.
    """

    def __init__(
        self,
        params,
        lr=0.0025,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        warmup_steps=0,
        r=0.0,
        weight_lr_power=2.0,
        *,
        foreach=None,
        maximize=False,
        fused=None,
    ):
        _args.lr(lr)
        _args.betas(betas)
        _args.nonnegative("eps", eps)
        _args.nonnegative("weight_decay", weight_decay)
        _args.nonnegative("warmup_steps", warmup_steps)
        _args.nonnegative("r", r)
        _args.nonnegative("weight_lr_power", weight_lr_power)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            k=0,
            train_mode=False,
            weight_sum=0.0,
            lr_max=-1.0,
            scheduled_lr=0.0,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def train(self):
        """Parameters from x to y = x + (1 - beta1)(z - x): where the gradients are taken."""
        self._switch(train_mode=True)

    @torch.no_grad()
    def eval(self):
        """Parameters from y to x = y + (1 - 1/beta1)(z - y): the average, to evaluate."""
        self._switch(train_mode=False)

    def _switch(self, train_mode):
        for group in self.param_groups:
            if group["train_mode"] == train_mode:
                continue
            beta1 = group["betas"][0]
            weight = 1 - beta1 if train_mode else 1 - 1 / beta1
            for p in group["params"]:
                if "z" in self.state[p]:
                    p.lerp_(self.state[p]["z"], weight)
            group["train_mode"] = train_mode

    def init_state(self, param, group):
        return {
            "z": param.clone(memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
        }

    @torch.no_grad()
    def step(self, closure=None):
        """One step of every group (the parameters must hold y: call ``train()`` first)."""
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError("call optimizer.train() before optimizer.step()")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, average_weight = self._advance_schedule(group)
            group["k"] += 1
            beta1, beta2 = group["betas"]
            hyperparameters = dict(
                lr=lr,
                average_weight=average_weight,
                beta1=beta1,
                beta2=beta2,
                step=group["k"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
            )
            if group.get("fused"):  # compiled, with the changing numbers as tensor inputs
                for name in ("lr", "average_weight", "step"):
                    hyperparameters[name] = scalar_tensor(hyperparameters[name])
                for _, params, grads, states in self._parameters_to_update(group):
                    items = [
                        (p, g, s["z"], s["exp_avg_sq"])
                        for p, g, s in zip(params, grads, states, strict=True)
                    ]
                    run_fused(schedulefree_adamw_update_, items, **hyperparameters)
                continue
            for _, param, grad, state in self._parameters_to_update(group):
                schedulefree_adamw_update_(
                    param, grad, state["z"], state["exp_avg_sq"], **hyperparameters
                )
        return loss

    @staticmethod
    def _advance_schedule(group):
        """This step's rate (after warmup) and the weight c_{t+1} of z_{t+1} in the average."""
        k, warmup = group["k"], group["warmup_steps"]
        lr = group["scheduled_lr"] = group["lr"] * ((k + 1) / warmup if k < warmup else 1.0)
        lr_max = group["lr_max"] = max(lr, group["lr_max"])
        weight = (k + 1) ** group["r"] * lr_max ** group["weight_lr_power"]
        group["weight_sum"] += weight
        return lr, (weight / group["weight_sum"] if group["weight_sum"] else 0.0)
