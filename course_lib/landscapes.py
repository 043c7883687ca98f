"""Two-dimensional test functions: small landscapes whose minima are known.

A landscape is a function f: R^2 -> R written with torch operations, so that autograd gives
its gradient and its Hessian. Every landscape takes a tensor whose last dimension is 2 (a
point ``(x, y)``, or a whole grid of points) and returns the height at each point::

    >>> bowl = quadratic(condition_number=10.0)
    >>> bowl(torch.tensor([1.0, 1.0]))          # 0.5 * (1 * 1**2 + 10 * 1**2)
    tensor(5.5000)

Each one also carries its known minima, its value there, plot bounds and a conventional
starting point, so that chapters can check an optimizer against the truth.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from course_lib import _args, second_order

Point = tuple[float, float]


@dataclass(frozen=True)
class Landscape:
    """A height function over the plane with what is known about it.

    Attributes:
        name: a short title for plots.
        function: maps ``x`` and ``y`` tensors (same shape) to heights (that shape).
        bounds: ``((x_min, x_max), (y_min, y_max))``, the window worth plotting.
        minima: the known global minimisers (empty when the function has none).
        minimum_value: ``f`` at the minima.
        start: a conventional starting point for optimizers.
        saddles: known saddle points (gradient zero, Hessian indefinite).
        log_scale: whether heights span many decades (plot contours on a log scale).
        axis_labels: names of the two coordinates, for plots.
    """

    name: str
    function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    bounds: tuple[Point, Point]
    minima: tuple[Point, ...] = ()
    minimum_value: float | None = None
    start: Point = (0.0, 0.0)
    saddles: tuple[Point, ...] = ()
    log_scale: bool = False
    axis_labels: tuple[str, str] = ("x", "y")
    extras: dict = field(default_factory=dict)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """Heights at ``points`` (a tensor of shape ``(..., 2)``); result has shape ``(...)``."""
        if points.shape[-1] != 2:
            raise ValueError(f"points: last dimension must be 2, got shape {tuple(points.shape)}")
        return self.function(points[..., 0], points[..., 1])

    def gradient(self, point: torch.Tensor) -> torch.Tensor:
        """The gradient ``(df/dx, df/dy)`` at one point (or at each point of a batch)."""
        point = point.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(self(point).sum(), point)
        return grad

    def hessian(self, point: torch.Tensor) -> torch.Tensor:
        """The 2x2 Hessian matrix of second partial derivatives at one point."""
        return second_order.hessian(self, point.reshape(2))

    def grid(self, resolution: int = 200, dtype=torch.float64):
        """Return ``(X, Y, Z)``: a ``resolution x resolution`` mesh over the bounds and heights."""
        if resolution < 2:
            raise ValueError(f"resolution must be at least 2, got {resolution}")
        (x_min, x_max), (y_min, y_max) = self.bounds
        xs = torch.linspace(x_min, x_max, resolution, dtype=dtype)
        ys = torch.linspace(y_min, y_max, resolution, dtype=dtype)
        X, Y = torch.meshgrid(xs, ys, indexing="xy")
        with torch.no_grad():
            Z = self(torch.stack([X, Y], dim=-1))
        return X, Y, Z


def quadratic(condition_number: float = 10.0, angle: float = 0.0) -> Landscape:
    r"""A convex bowl with a chosen condition number.

    .. math:: f(p) = \tfrac12\, p^\top H p, \qquad H = R_\alpha \operatorname{diag}(1, \kappa)
        R_\alpha^\top,

    where :math:`R_\alpha` rotates by ``angle`` radians. The eigenvalues of :math:`H` are
    :math:`1` and :math:`\kappa`, so the condition number is :math:`\kappa`; the minimum is
    :math:`f(0, 0) = 0`. ``extras["hessian"]`` holds :math:`H` (float64).
    """
    if not condition_number >= 1.0:
        raise ValueError(f"condition_number must be >= 1, got {condition_number}")
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    hessian = rotation @ torch.diag(torch.tensor([1.0, condition_number], dtype=torch.float64))
    hessian = hessian @ rotation.T
    h11, h12, h22 = hessian[0, 0].item(), hessian[0, 1].item(), hessian[1, 1].item()

    def f(x, y):
        return 0.5 * (h11 * x**2 + 2 * h12 * x * y + h22 * y**2)

    reach = 2.0
    return Landscape(
        name=f"quadratic, condition number {condition_number:g}",
        function=f,
        bounds=((-reach, reach), (-reach, reach)),
        minima=((0.0, 0.0),),
        minimum_value=0.0,
        start=(-1.8, 1.2),
        extras={"hessian": hessian, "eigenvalues": (1.0, float(condition_number))},
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    r"""Rosenbrock's banana valley: :math:`f(x, y) = (a - x)^2 + b\,(y - x^2)^2`.

    The minimum :math:`f(a, a^2) = 0` lies at the end of a long, curved, flat-bottomed valley.
    """
    return Landscape(
        name="Rosenbrock",
        function=lambda x, y: (a - x) ** 2 + b * (y - x**2) ** 2,
        bounds=((-2.0, 2.0), (-1.0, 3.0)),
        minima=((a, a * a),),
        minimum_value=0.0,
        start=(-1.5, 2.0),
        log_scale=True,
    )


def beale() -> Landscape:
    r"""Beale's function, with sharp ridges and flat plateaus:

    .. math:: f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2,

    minimum :math:`f(3, 0.5) = 0`.
    """

    def f(x, y):
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    return Landscape(
        name="Beale",
        function=f,
        bounds=((-4.5, 4.5), (-4.5, 4.5)),
        minima=((3.0, 0.5),),
        minimum_value=0.0,
        start=(1.0, 1.5),
        log_scale=True,
    )


def himmelblau() -> Landscape:
    r"""Himmelblau's function, four valleys of equal depth:
    :math:`f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2`, minimum value 0 at four points."""
    return Landscape(
        name="Himmelblau",
        function=lambda x, y: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
        bounds=((-5.0, 5.0), (-5.0, 5.0)),
        minima=(
            (3.0, 2.0),
            (-2.805118086952745, 3.131312518250573),
            (-3.779310253377747, -3.283185991286170),
            (3.584428340330492, -1.848126526964404),
        ),
        minimum_value=0.0,
        start=(0.0, 0.0),
        log_scale=True,
    )


def rastrigin(amplitude: float = 10.0) -> Landscape:
    r"""Rastrigin's egg crate: a bowl covered in local minima,

    .. math:: f(x, y) = 2A + x^2 - A\cos(2\pi x) + y^2 - A\cos(2\pi y),

    global minimum :math:`f(0, 0) = 0`.
    """

    def f(x, y):
        return (
            2 * amplitude
            + x**2
            - amplitude * torch.cos(2 * math.pi * x)
            + y**2
            - amplitude * torch.cos(2 * math.pi * y)
        )

    return Landscape(
        name="Rastrigin",
        function=f,
        bounds=((-5.12, 5.12), (-5.12, 5.12)),
        minima=((0.0, 0.0),),
        minimum_value=0.0,
        start=(3.3, -2.7),
    )


def saddle() -> Landscape:
    r"""A saddle: :math:`f(x, y) = x^2 - y^2`. The gradient vanishes at the origin, which is a
    minimum along :math:`x` and a maximum along :math:`y`; there is no minimum at all."""
    return Landscape(
        name="saddle",
        function=lambda x, y: x**2 - y**2,
        bounds=((-2.0, 2.0), (-2.0, 2.0)),
        saddles=((0.0, 0.0),),
        start=(1.5, 0.01),
    )


def path(optimizer_class, landscape, start, steps: int, *, device=None, **hyperparameters):
    """The iterates of ``optimizer_class(**hyperparameters)`` on ``landscape`` from ``start``.

    ``landscape`` is any function of a point that returns a scalar tensor (a
    :class:`Landscape`, or e.g. ``lambda x: (x**2).sum()``); ``start`` is the first point (a
    sequence or a tensor). The point is a float64 tensor on ``device`` updated by
    ``steps`` calls of ``optimizer.step()``. Returns the iterates ``x_0, ..., x_steps`` as the
    rows of a float64 CPU tensor, ending early (fewer rows) at the first iterate that
    overflows to inf or NaN.
    """
    _args.integer("steps", steps, minimum=0)
    point = torch.as_tensor(start, dtype=torch.float64, device=device).detach().clone()
    point.requires_grad_(True)
    optimizer = optimizer_class([point], **hyperparameters)
    iterates = [point.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        landscape(point).backward()
        optimizer.step()
        if not torch.isfinite(point).all():
            break
        iterates.append(point.detach().clone())
    return torch.stack(iterates).cpu()


def all_landscapes() -> dict[str, Landscape]:
    """Every landscape of this module with its default settings, keyed by name."""
    return {
        landscape.name: landscape
        for landscape in (quadratic(), rosenbrock(), beale(), himmelblau(), rastrigin(), saddle())
    }
