r"""Chapter 1's hiker in the fog: the walk and its picture.

What the chapter's explorer shows is split in two so that it can be tested without a browser:
a pure function that computes the walk (:func:`hiker_walk`) and a drawing function that
paints it on a matplotlib ``Axes`` (:func:`draw_hiker`); the chapter's ``plot`` turns them
into a figure for :mod:`course_lib.explorer`, live in JupyterLab and precomputed on the site.

A hiker stands on a landscape in thick fog: only the ground within ``window_radius`` is
visible. Not knowing where the valley is, she feels the slope under her feet (the gradient
:math:`g = \nabla f(p)`) and takes one stride of fixed length ``step_size`` straight downhill,

.. math:: p_{k+1} = p_k - \eta\, \frac{g_k}{\lVert g_k \rVert},

then looks again. Where the ground is flat (:math:`g = 0`) she stops.
"""

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle

from course_lib import _args, viz
from course_lib.landscapes import Landscape

FOG_COLOR = (0.86, 0.88, 0.91)


@dataclass(frozen=True)
class HikerWalk:
    """Where the hiker went: ``path[k]`` is her position after ``k`` strides (shape
    ``(steps + 1, 2)``), ``heights[k]`` the ground's height there, ``gradients[k]`` the slope
    she felt there (float64 tensors). ``stopped`` is True when she met flat ground early."""

    path: torch.Tensor
    heights: torch.Tensor
    gradients: torch.Tensor
    window_radius: float
    step_size: float
    stopped: bool


def hiker_walk(
    landscape: Landscape,
    start,
    *,
    step_size: float = 0.2,
    steps: int = 30,
    window_radius: float = 0.5,
    flat: float = 1e-10,
) -> HikerWalk:
    """Walk ``steps`` strides of length ``step_size`` downhill from ``start`` (see the module
    docstring). The hiker stops where the slope's norm is below ``flat``; the path then
    repeats her last position so it always has ``steps + 1`` rows."""
    _args.positive("step_size", step_size)
    _args.integer("steps", steps, minimum=0)
    _args.positive("window_radius", window_radius)
    point = torch.as_tensor(start, dtype=torch.float64).clone()
    if point.shape != (2,):
        raise ValueError(f"start must be a point (x, y), got shape {tuple(point.shape)}")
    path, gradients, stopped = [point], [], False
    for _ in range(steps):
        slope = landscape.gradient(point)
        gradients.append(slope)
        norm = torch.linalg.vector_norm(slope)
        if stopped or norm < flat:
            stopped = True
        else:
            point = point - step_size * slope / norm
        path.append(point)
    gradients.append(landscape.gradient(point))
    path = torch.stack(path)
    with torch.no_grad():
        heights = landscape(path)
    return HikerWalk(path, heights, torch.stack(gradients), window_radius, step_size, stopped)


class _HikerPicture:
    """The artists of one hiker drawing, so that frames of an animation can move them.

    The fog is the axes' background colour; the landscape is drawn, but clipped to a disk
    (the window) that moves with the hiker. That keeps each frame cheap and its PNG small.
    """

    def __init__(self, landscape: Landscape, walk: HikerWalk, ax, reveal: bool, resolution: int):
        self.landscape, self.walk, self.ax = landscape, walk, ax
        before = set(ax.collections)
        viz.contour(landscape, ax, resolution=resolution, colorbar=False, show_minima=reveal)
        self.window = Circle((0.0, 0.0), walk.window_radius, transform=ax.transData,
                             fill=False, edgecolor="0.25", linestyle="--", linewidth=1.0, zorder=3,
                             label="visible window")  # fmt: skip
        self.layers = [] if reveal else list(set(ax.collections) - before)
        if not reveal:
            ax.set_facecolor(FOG_COLOR)
            ax.add_patch(self.window)
        (self.trail,) = ax.plot([], [], "-", color="crimson", linewidth=1.5, zorder=3,
                                label="path walked")  # fmt: skip
        (self.hiker,) = ax.plot([], [], "o", color="crimson", markeredgecolor="white",
                                markersize=9, zorder=4, label="hiker")  # fmt: skip
        self.arrow = None
        ax.legend(loc="upper right")

    def show(self, k: int):
        path = self.walk.path.numpy()
        here = path[k]
        self.window.set_center(tuple(here))
        for layer in self.layers:  # clip again: the clip path is cached at its old place
            layer.set_clip_path(self.window)
        self.trail.set_data(path[: k + 1, 0], path[: k + 1, 1])
        self.hiker.set_data([here[0]], [here[1]])
        if self.arrow is not None:
            self.arrow.remove()
        slope = self.walk.gradients[k].numpy()
        norm = np.linalg.norm(slope)
        downhill = -slope / norm * self.walk.window_radius if norm > 0 else np.zeros(2)
        style = {"arrowstyle": "->", "color": "white", "lw": 2}
        self.arrow = self.ax.annotate("", xy=here + downhill, xytext=here, zorder=5,
                                      arrowprops=style)  # fmt: skip
        height = self.walk.heights[k].item()
        self.ax.set_title(f"{self.landscape.name}: step {k}, height {height:.4g}")
        return [self.window, self.trail, self.hiker, self.arrow]


def draw_hiker(
    landscape: Landscape,
    walk: HikerWalk,
    ax=None,
    *,
    step: int | None = None,
    reveal: bool = False,
    resolution: int = 120,
):
    """Draw the hiker after ``step`` strides (default: the last) in the fog: the landscape is
    visible only within her window, her trail so far, and a white arrow pointing downhill
    (against the gradient). ``reveal=True`` lifts the fog. Returns the ``Axes``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 4.8))
    picture = _HikerPicture(landscape, walk, ax, reveal, resolution)
    picture.show(len(walk.path) - 1 if step is None else step)
    return ax
