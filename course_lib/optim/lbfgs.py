r"""L-BFGS: a quasi-Newton method that never forms a matrix (Nocedal 1980; Liu & Nocedal 1989).

BFGS keeps an approximation of the *inverse* Hessian that satisfies the secant condition
:math:`H_{k+1} y_k = s_k` for the last step :math:`s_k = x_{k+1} - x_k` and gradient change
:math:`y_k = g_{k+1} - g_k`. L-BFGS stores only the last m pairs :math:`(s_i, y_i)` (2mn
numbers instead of n^2) and applies :math:`H` to the gradient by the **two-loop recursion**,
with :math:`\rho_i = 1 / (y_i^\top s_i)` and initial scaling
:math:`\gamma = s^\top y / y^\top y` of the newest pair:

.. math::

    q &\gets -g;\quad \text{for } i = k-1, \dots, k-m:\;
        \alpha_i = \rho_i\, s_i^\top q,\;\; q \gets q - \alpha_i y_i \\
    r &\gets \gamma q;\quad \text{for } i = k-m, \dots, k-1:\;
        \beta_i = \rho_i\, y_i^\top r,\;\; r \gets r + (\alpha_i - \beta_i) s_i

and :math:`d = r` is the search direction. A pair is stored only when :math:`y^\top s > 10^{-10}`
(positive curvature keeps H positive definite). The step along d is either the fixed
``lr`` (``line_search_fn=None``; the very first step is scaled to ``min(1, 1/|g|_1) * lr``)
or found by a line search satisfying the strong Wolfe conditions (``'strong_wolfe'``):

.. math::

    f(x + t d) \le f(x) + c_1 t\, g^\top d, \qquad |g(x + t d)^\top d| \le c_2 |g^\top d|.

This class has the signature, defaults, stopping rules and numerics of ``torch.optim.LBFGS``
(torch 2.13), so the iterates of the two agree to rounding.
"""

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.optim import Optimizer

from course_lib import _args


def _as_float(loss) -> float:
    """The loss as a number; ``.item()`` because float() of a tensor that requires grad warns."""
    return loss.item() if isinstance(loss, Tensor) else float(loss)


def two_loop_direction(grad, steps, grad_changes, rhos, gamma):
    """d = -H g by the two-loop recursion over stored (s_i, y_i, rho_i), oldest first."""
    alphas = [None] * len(steps)
    q = grad.neg()
    for i in reversed(range(len(steps))):  # newest to oldest
        alphas[i] = steps[i].dot(q) * rhos[i]
        q.add_(grad_changes[i], alpha=-alphas[i])
    r = torch.mul(q, gamma)  # initial inverse Hessian gamma * I
    for i in range(len(steps)):  # oldest to newest
        beta = grad_changes[i].dot(r) * rhos[i]
        r.add_(steps[i], alpha=alphas[i] - beta)
    return r


def cubic_minimizer(t1, f1, slope1, t2, f2, slope2, bounds=None):
    """Minimiser of the cubic through (t1, f1) and (t2, f2) with slopes slope1, slope2,
    clipped to ``bounds`` (default: the interval between t1 and t2); the midpoint of the
    bounds when the cubic has no minimum."""
    low, high = bounds if bounds is not None else (min(t1, t2), max(t1, t2))
    d1 = slope1 + slope2 - 3 * (f1 - f2) / (t1 - t2)
    d2_square = d1**2 - slope1 * slope2
    if d2_square < 0:
        return (low + high) / 2.0
    d2 = d2_square.sqrt()
    if t1 <= t2:
        t = t2 - (t2 - t1) * ((slope2 + d2 - d1) / (slope2 - slope1 + 2 * d2))
    else:
        t = t1 - (t1 - t2) * ((slope1 + d2 - d1) / (slope1 - slope2 + 2 * d2))
    return min(max(t, low), high)


@dataclass
class _Trial:
    """A point on the line x + t d: its loss, gradient and slope g.d."""

    t: float
    f: float
    g: Tensor
    slope: Tensor | None


def strong_wolfe_search(
    evaluate, t, d, f, g, slope, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25
):
    """Find t satisfying the strong Wolfe conditions along d (Nocedal & Wright, Alg. 3.5/3.6).

    ``evaluate(t) -> (loss, grad)`` at x + t d. Phase 1 grows t (cubic extrapolation, at most
    10x) until an interval surely containing acceptable points is bracketed; phase 2
    ("zoom") shrinks that interval by cubic interpolation, kept at least 10% away from its
    ends. Returns (loss, grad, t, number of evaluations).
    """
    d_norm = d.abs().max()
    start = _Trial(0, f, g.clone(), slope)

    def trial(t):
        f_t, g_t = evaluate(t)
        return _Trial(t, f_t, g_t, g_t.dot(d))

    def sufficient_decrease(point):  # Armijo
        return point.f <= f + c1 * point.t * slope

    def curvature_ok(point):  # the strong Wolfe curvature condition
        return abs(point.slope) <= -c2 * slope

    # Phase 1: bracket.
    previous, new = start, trial(t)
    evaluations, iteration, done = 1, 0, False
    bracket = None
    while iteration < max_ls:
        if not sufficient_decrease(new) or (iteration > 1 and new.f >= previous.f):
            bracket = [previous, new]
            break
        if curvature_ok(new):
            bracket, done = [new], True
            break
        if new.slope >= 0:  # passed the minimum along the line
            bracket = [previous, new]
            break
        next_t = cubic_minimizer(
            previous.t,
            previous.f,
            previous.slope,
            new.t,
            new.f,
            new.slope,
            bounds=(new.t + 0.01 * (new.t - previous.t), new.t * 10),
        )
        previous, new = new, trial(next_t)
        evaluations += 1
        iteration += 1
    if iteration == max_ls:  # out of evaluations: keep the better of the start and the last
        bracket = [_Trial(0, f, start.g, None), new]

    # Phase 2: zoom. bracket[low] is the best point so far, bracket[high] the other end.
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    stalled = False
    while not done and iteration < max_ls:
        if abs(bracket[1].t - bracket[0].t) * d_norm < tolerance_change:
            break
        a, b = bracket
        t = cubic_minimizer(a.t, a.f, a.slope, b.t, b.f, b.slope)
        left, right = min(a.t, b.t), max(a.t, b.t)
        margin = 0.1 * (right - left)
        if min(right - t, t - left) < margin:  # too close to an end of the interval
            if stalled or t >= right or t <= left:
                t = right - margin if abs(t - right) < abs(t - left) else left + margin
                stalled = False
            else:
                stalled = True
        else:
            stalled = False
        new = trial(t)
        evaluations += 1
        iteration += 1
        if not sufficient_decrease(new) or new.f >= bracket[low].f:
            bracket[high] = new  # the new point becomes the far end
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if curvature_ok(new):
                done = True
            elif new.slope * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]  # keep the minimum between low and new
            bracket[low] = new

    best = bracket[low]
    return best.f, best.g, best.t, evaluations


class LBFGS(Optimizer):
    """LBFGS(params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
    tolerance_change=1e-9, history_size=100, line_search_fn=None).

    One ``step(closure)`` runs up to ``max_iter`` iterations (``max_eval`` loss evaluations,
    default ``max_iter * 5 // 4``), stopping early when the largest gradient entry is
    <= ``tolerance_grad`` or the loss or step changes by less than ``tolerance_change``.
    The closure must zero the gradients, compute the loss, call ``backward()`` and return
    the loss. Only one parameter group; all parameters on one device. A parameter whose
    grad is None counts as a zero gradient, so it is never moved. The whole state (history
    of s, y, rho, the last direction and step) lives in the state of the first parameter,
    so ``state_dict()`` carries it, under torch.optim.LBFGS's names (``old_stps``: s,
    ``old_dirs``: y, ``ro``: rho, ``H_diag``: gamma, ``prev_flat_grad``).
    """

    def __init__(
        self,
        params,
        lr=1,
        max_iter=20,
        max_eval=None,
        tolerance_grad=1e-7,
        tolerance_change=1e-9,
        history_size=100,
        line_search_fn=None,
    ):
        _args.lr(lr)
        _args.integer("max_iter", max_iter, minimum=1)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        _args.integer("max_eval", max_eval, minimum=1)
        _args.nonnegative("tolerance_grad", tolerance_grad)
        _args.nonnegative("tolerance_change", tolerance_change)
        _args.integer("history_size", history_size, minimum=1)
        _args.one_of("line_search_fn", line_search_fn, (None, "strong_wolfe"))
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS supports a single parameter group only (params)")
        self._params = self.param_groups[0]["params"]

    # ----- the parameters seen as one flat vector -----

    def _flat_grad(self):
        return torch.cat(
            [p.new_zeros(p.numel()) if p.grad is None else p.grad.reshape(-1) for p in self._params]
        )

    def _move(self, t, direction):
        """params += t * direction."""
        offset = 0
        for p in self._params:
            p.add_(direction[offset : offset + p.numel()].view_as(p), alpha=t)
            offset += p.numel()

    def _evaluate_along(self, closure, x, t, direction):
        """(loss, grad) at x + t * direction; the parameters are put back to x afterwards."""
        self._move(t, direction)
        loss = _as_float(closure())
        grad = self._flat_grad()
        for p, saved in zip(self._params, x, strict=True):
            p.copy_(saved)
        return loss, grad

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        """Up to ``max_iter`` L-BFGS iterations; returns the loss at the starting point."""
        if closure is None:
            raise ValueError("closure is required: L-BFGS re-evaluates the loss")
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = group["lr"].item() if isinstance(group["lr"], Tensor) else group["lr"]
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        first_loss = closure()
        loss = _as_float(first_loss)
        evals = 1
        state["func_evals"] += 1
        grad = self._flat_grad()
        converged = grad.abs().max() <= tolerance_grad
        if converged:
            return first_loss

        d, t = state.get("d"), state.get("t")
        steps, grad_changes = state.get("old_stps"), state.get("old_dirs")
        rhos, gamma = state.get("ro"), state.get("H_diag")
        prev_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        iteration = 0
        while iteration < max_iter:
            iteration += 1
            state["n_iter"] += 1

            # Direction: steepest descent at the very first iteration, then two-loop.
            if state["n_iter"] == 1:
                d = grad.neg()
                steps, grad_changes, rhos, gamma = [], [], [], 1
            else:
                y = grad.sub(prev_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:  # positive curvature: remember the pair
                    if len(steps) == group["history_size"]:
                        del steps[0], grad_changes[0], rhos[0]  # forget the oldest pair
                    steps.append(s)
                    grad_changes.append(y)
                    rhos.append(1.0 / ys)
                    gamma = ys / y.dot(y)
                d = two_loop_direction(grad, steps, grad_changes, rhos, gamma)
            prev_grad, prev_loss = grad.clone(), loss

            # Step length.
            t = min(1.0, 1.0 / grad.abs().sum()) * lr if state["n_iter"] == 1 else lr
            slope = grad.dot(d)
            if slope > -tolerance_change:  # not a descent direction (any more)
                break

            if group["line_search_fn"] == "strong_wolfe":
                x = [p.clone() for p in self._params]
                loss, grad, t, line_evals = strong_wolfe_search(
                    lambda t_, x=x, d=d: self._evaluate_along(closure, x, t_, d),
                    t,
                    d,
                    loss,
                    grad,
                    slope,
                    max_ls=max_eval - evals,
                )
                self._move(t, d)
                converged = grad.abs().max() <= tolerance_grad
            else:
                self._move(t, d)
                line_evals = 0
                if iteration != max_iter:  # the last iteration does not re-evaluate
                    loss = _as_float(closure())
                    grad = self._flat_grad()
                    converged = grad.abs().max() <= tolerance_grad
                    line_evals = 1
            evals += line_evals
            state["func_evals"] += line_evals

            # Stopping rules.
            if iteration == max_iter or evals >= max_eval or converged:
                break
            if d.mul(t).abs().max() <= tolerance_change:  # the step is tiny
                break
            if abs(loss - prev_loss) < tolerance_change:  # the loss stopped changing
                break

        state.update(  # under torch.optim.LBFGS's names, so that each loads the other's state
            d=d, t=t, old_stps=steps, old_dirs=grad_changes, ro=rhos, H_diag=gamma,
            prev_flat_grad=prev_grad, prev_loss=prev_loss,
        )  # fmt: skip
        return first_loss
