"""Pictures of optimization: landscapes, paths on them, loss curves, and small animations.

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is None), gives it a
title, axis labels and a legend, and returns the ``Axes`` so a chapter can add to it.

The website has no Python kernel, so interactive explorers get a kernel-free counterpart:
:func:`animation_html` turns a drawing function into a self-contained HTML animation
(matplotlib's ``FuncAnimation(...).to_jshtml()``), kept small: at most ``MAX_FRAMES`` frames
at most ``MAX_DPI`` dots per inch.
"""

import re
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation
from matplotlib.colors import LogNorm
from matplotlib.ticker import LogLocator

from course_lib.landscapes import Landscape

MAX_FRAMES = 40
MAX_DPI = 80

# matplotlib's player takes its button icons from a Font Awesome stylesheet on a CDN; the
# course's pages load nothing from the network, so the buttons get plain Unicode symbols.
_FONT_AWESOME_LINK = re.compile(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">')
_BUTTON_SYMBOLS = {
    "minus": "\u2212",
    "plus": "+",
    "fast-backward": "\u23ee",
    "step-backward": "\u23f4\u2759",
    "play": "\u25b6",
    "play fa-flip-horizontal": "\u25c0",
    "pause": "\u23f8",
    "step-forward": "\u2759\u23f5",
    "fast-forward": "\u23ed",
}


def _axes(ax, figsize=(6.0, 4.5), **kwargs):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, subplot_kw=kwargs or None)
    return ax


def _numpy(points) -> np.ndarray:
    if isinstance(points, torch.Tensor):
        return points.detach().cpu().double().numpy()
    return np.asarray(points, dtype=float)


def contour(
    landscape: Landscape,
    ax=None,
    *,
    resolution: int = 150,
    levels: int = 25,
    title: str | None = None,
    show_minima: bool = True,
    colorbar: bool = True,
):
    """Filled contour map of ``landscape`` over its bounds, with its known minima starred.

    Landscapes with ``log_scale`` get logarithmically spaced levels, so that the floor of a
    deep valley is as visible as its walls.
    """
    ax = _axes(ax)
    X, Y, Z = (t.numpy() for t in landscape.grid(resolution))
    if landscape.log_scale:
        floor = Z.min()
        heights = Z - floor
        positive = heights[heights > 0]
        low = max(positive.min(), positive.max() * 1e-6)
        filled = ax.contourf(X, Y, heights + low, levels=np.geomspace(low, heights.max() + low,
                             levels), norm=LogNorm(), cmap="viridis", extend="both")  # fmt: skip
        label = "height above the lowest point (log scale)"
    else:
        filled = ax.contourf(X, Y, Z, levels=levels, cmap="viridis")
        label = "height"
    lines = Z - Z.min() + low if landscape.log_scale else Z
    ax.contour(X, Y, lines, levels=filled.levels, colors="white", linewidths=0.4, alpha=0.5)
    if colorbar:
        ticks = LogLocator() if landscape.log_scale else None
        ax.figure.colorbar(filled, ax=ax, label=label, ticks=ticks)
    if show_minima and landscape.minima:
        minima = np.array(landscape.minima)
        ax.plot(minima[:, 0], minima[:, 1], "*", color="gold", markersize=14,
                markeredgecolor="black", linestyle="none", label="minimum")  # fmt: skip
    if show_minima and landscape.saddles:
        saddles = np.array(landscape.saddles)
        ax.plot(saddles[:, 0], saddles[:, 1], "X", color="orange", markersize=11,
                markeredgecolor="black", linestyle="none", label="saddle point")  # fmt: skip
    (x_min, x_max), (y_min, y_max) = landscape.bounds
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.set_xlabel(landscape.axis_labels[0])
    ax.set_ylabel(landscape.axis_labels[1])
    ax.set_title(title or landscape.name)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")
    return ax


def surface(landscape: Landscape, ax=None, *, resolution: int = 60, title: str | None = None):
    """The landscape as a 3-D surface: height above the two coordinates."""
    ax = _axes(ax, projection="3d")
    X, Y, Z = (t.numpy() for t in landscape.grid(resolution))
    ax.plot_surface(X, Y, Z, cmap="viridis", linewidth=0, antialiased=True, alpha=0.9)
    if landscape.minima:
        minima = np.array(landscape.minima)
        heights = landscape(torch.tensor(minima, dtype=torch.float64)).numpy()
        ax.plot(minima[:, 0], minima[:, 1], heights, "*", color="gold", markersize=14,
                markeredgecolor="black", linestyle="none", label="minimum", zorder=10)  # fmt: skip
        ax.legend(loc="upper right")
    ax.set_xlabel(landscape.axis_labels[0])
    ax.set_ylabel(landscape.axis_labels[1])
    ax.set_zlabel("height")
    ax.set_title(title or landscape.name)
    return ax


def trajectory(ax, points, *, label: str, color=None, marker: str = "o", markersize: float = 3):
    """Draw a path of points (shape ``(T, 2)``) with its start ringed and its end marked."""
    points = _numpy(points)
    (line,) = ax.plot(points[:, 0], points[:, 1], marker=marker, markersize=markersize,
                      linewidth=1.5, color=color, label=label)  # fmt: skip
    ax.plot(*points[0], "o", markersize=9, markerfacecolor="none", color=line.get_color())
    ax.plot(*points[-1], "s", markersize=6, color=line.get_color())
    ax.legend(loc="upper right")
    return ax


def gradient_field(ax, landscape: Landscape, *, density: int = 15, label: str = "gradient"):
    """Arrows of the gradient direction on a ``density x density`` grid (unit length: the
    direction of steepest ascent; the length would hide the flat parts)."""
    (x_min, x_max), (y_min, y_max) = landscape.bounds
    xs = torch.linspace(x_min, x_max, density + 2, dtype=torch.float64)[1:-1]
    ys = torch.linspace(y_min, y_max, density + 2, dtype=torch.float64)[1:-1]
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    grads = landscape.gradient(torch.stack([X, Y], dim=-1))
    norms = torch.linalg.vector_norm(grads, dim=-1, keepdim=True)
    flat = norms <= 1e-9 * norms.max()  # a stationary point has no direction: no arrow
    unit = torch.where(flat, torch.zeros_like(grads), grads / norms.clamp_min(1e-300))
    ax.quiver(X.numpy(), Y.numpy(), unit[..., 0].numpy(), unit[..., 1].numpy(), color="white",
              edgecolor="black", linewidth=0.3, angles="xy", pivot="middle", width=0.005,
              label=label)  # fmt: skip
    ax.legend(loc="upper right")
    return ax


def loss_curves(
    curves: Mapping[str, Sequence[float]],
    ax=None,
    *,
    steps: Mapping[str, Sequence[int]] | None = None,
    log_y: bool = True,
    title: str = "Loss during training",
    xlabel: str = "step",
    ylabel: str = "loss",
):
    """One line per named curve of losses; ``steps`` gives each curve's x values (default
    0, 1, 2, ...). A logarithmic y axis shows linear convergence as a straight line."""
    ax = _axes(ax)
    for name, values in curves.items():
        values = _numpy(values)
        xs = np.arange(len(values)) if steps is None else _numpy(steps[name])
        ax.plot(xs, values, label=name)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(True, alpha=0.3)
    return ax


def animation_html(
    fig, draw_frame: Callable[[int], object], frames: int, *, interval: int = 200, dpi: int = 72
) -> str:
    """Render ``draw_frame(0), ..., draw_frame(frames - 1)`` into a self-contained HTML/JS
    player (``FuncAnimation.to_jshtml``) and close ``fig``. Display the string with
    ``IPython.display.HTML``; it needs no kernel."""
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be in [1, {MAX_FRAMES}], got {frames}")
    if not 10 <= dpi <= MAX_DPI:
        raise ValueError(f"dpi must be in [10, {MAX_DPI}], got {dpi}")
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    fig.set_dpi(dpi)
    movie = animation.FuncAnimation(fig, draw_frame, frames=frames, interval=interval, blit=False)
    with plt.rc_context({"savefig.dpi": dpi}):
        html = movie.to_jshtml(default_mode="once")
    plt.close(fig)
    return _offline_player(html)


def _offline_player(html: str) -> str:
    """The player without its CDN stylesheet, its icons replaced by Unicode symbols."""
    html = _FONT_AWESOME_LINK.sub("", html)
    for icon, symbol in _BUTTON_SYMBOLS.items():
        html = html.replace(f'<i class="fa fa-{icon}"></i>', symbol)
    return html


def frame_indices(length: int, frames: int = MAX_FRAMES) -> np.ndarray:
    """At most ``frames`` indices from ``0`` to ``length - 1``, evenly spread, both ends kept."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    return np.unique(np.linspace(0, length - 1, min(length, frames)).round().astype(int))
