"""Explorers: one plotting function, moved by controls in JupyterLab and on the website.

A chapter writes its figure once, as a function of named controls that returns a matplotlib
``Figure`` (and does not call ``plt.show()``), and builds two explorers from it:

- :func:`live` redraws the figure in a running kernel whenever a control moves
  (``ipywidgets.interactive``): any value of a slider, but only in JupyterLab.
- :func:`precomputed` draws the figure ahead for every combination of a small grid of
  control values, as compressed PNG frames stored in the widget state of the executed
  notebook. Its controls pick the frame in the browser through ipywidgets' client-side links
  (``jslink``), so it responds on the website with no kernel and no network.

For two or more controls the frames sit in nested ``Stack`` widgets: the first control picks
a child of the outer stack, the second a child of each stack one level down, and so on. Each
link maps one control's ``index`` to one stack's ``selected_index``, so no custom JavaScript
is needed. Every frame is an ``<img>`` with alt text (``ipywidgets.Image`` has no alt
attribute, so a frame is an ``HTML`` widget holding the PNG as a ``data:`` URI).

Example (chapter 10)::

    def plot(schedule, warmup):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ...
        return fig

    explorer.live(plot, schedule=list(shapes), warmup=(0, 400, 10))
    explorer.precomputed(
        plot,
        {"schedule": list(shapes), "warmup": [0, 50, 100, 200, 400]},
        alt=lambda schedule, warmup: f"learning rate of {schedule}, warmup {warmup} steps",
    )

The frames are drawn in parallel, one forked process per core (Linux, where torch has not
started CUDA; elsewhere one after another): a frame costs about 0.4 s of matplotlib on a
CPU, and a chapter has 10-40 of them.

Weight: a frame of a 6 x 3.2 inch line plot at 72 dpi is about 10-20 kB. Keep a grid to
at most :data:`MAX_FRAMES` frames; :func:`precomputed` refuses more, and refuses an explorer
whose frames exceed ``max_bytes``.
"""

import base64
import html
import io
import itertools
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
from PIL import Image

from course_lib.parallel import map_forked

MAX_FRAMES = 60
MAX_BYTES = 1_500_000


def live(plot: Callable[..., object], **controls):
    """``ipywidgets.interactive`` over ``plot(**controls) -> Figure``: each change redraws.

    ``controls`` are what ``ipywidgets.interactive`` accepts: a widget, a list of choices
    (a dropdown), a ``(min, max[, step])`` tuple (a slider), a bool (a checkbox). Sliders
    are built with ``continuous_update=False``, so a redraw waits for the release. Needs a
    kernel: on the website it shows its stored state only (the site hides it; see
    :func:`precomputed` for the kernel-free counterpart). Example::

        explorer.live(plot, schedule=["cosine", "one-cycle"], warmup=(0, 400, 10))
    """
    import ipywidgets as ipw
    from IPython.display import display

    def show(**values):
        fig = plot(**values)
        display(fig)
        plt.close(fig)

    widget = ipw.interactive(show, **controls)
    for control in widget.kwargs_widgets:
        if hasattr(control, "continuous_update"):
            control.continuous_update = False
    widget.add_class("course-live-explorer")
    return widget


def png_bytes(fig, *, dpi: int = 72, colors: int = 128) -> bytes:
    """``fig`` as a PNG on a white background, reduced to a palette of ``colors`` colours.

    Line plots and heat maps at this size use few colours, so the palette costs no visible
    detail and shrinks the file about threefold. The white background keeps the figure
    readable when the website is in dark mode. The figure is saved as laid out (no tight
    bounding box, which would draw it twice): build it with ``layout="constrained"``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    image = Image.open(buffer).convert("RGB").quantize(colors=colors)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def frame_html(png: bytes, alt: str) -> str:
    """An ``<img>`` holding ``png`` as a ``data:`` URI, with the alt text ``alt``."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}" '
        'style="max-width: 100%; height: auto; background: white">'
    )


def precomputed(
    plot: Callable[..., object],
    grid: Mapping[str, Sequence],
    *,
    alt: Callable[..., str],
    initial: Mapping[str, object] | None = None,
    dpi: int = 72,
    max_frames: int = MAX_FRAMES,
    max_bytes: int = MAX_BYTES,
    processes: int | None = None,
):
    """An explorer that works without a kernel: ``plot`` drawn ahead at every grid point.

    Args:
        plot: ``plot(**values) -> matplotlib.figure.Figure``; each figure is closed once drawn.
        grid: control name -> the values it takes, in order. Strings become a dropdown,
            anything else a slider over the listed values (labels ``f"{value:g}"``).
        alt: ``alt(**values) -> str``, the alt text of each frame: what the figure shows at
            those values (screen readers read it; it must not be empty).
        initial: control name -> the value shown first (default: each control's first).
        dpi: resolution of the frames.
        max_frames, max_bytes: refuse a grid with more frames, or frames heavier in total
            (the frames are stored in the notebook and in the web page).
        processes: how many forked processes draw the frames (default: one per core this
            process may use; 1 draws them here, one after another).

    Returns:
        An ``ipywidgets.VBox``: a row of controls above a (nested) ``Stack`` of frames, each
        control ``jslink``-ed to the stacks of its level. Display it as a cell's last line.
    """
    import ipywidgets as ipw

    names = list(grid)
    sizes = [len(grid[name]) for name in names]
    if not names or min(sizes) < 1:
        raise ValueError(f"grid must give at least one value to each control, got {grid!r}")
    frames = 1
    for size in sizes:
        frames *= size
    if frames > max_frames:
        raise ValueError(
            f"grid has {frames} frames, more than max_frames={max_frames}: use fewer values"
        )
    initial = dict(initial or {})
    unknown = set(initial) - set(names)
    if unknown:
        raise ValueError(f"initial names controls not in grid: {sorted(unknown)}")

    points = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(grid[name] for name in names))
    ]
    texts = [alt(**point) for point in points]
    for text, point in zip(texts, points, strict=True):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"alt must give a non-empty string, got {text!r} at {point}")
    pngs = map_forked(lambda point: _draw(plot, point, dpi), points, processes)
    total = sum(len(png) for png in pngs)
    pages = {
        tuple(point.values()): ipw.HTML(frame_html(png, text))
        for point, png, text in zip(points, pngs, texts, strict=True)
    }
    if total > max_bytes:
        raise ValueError(
            f"the frames weigh {total} bytes, more than max_bytes={max_bytes}: "
            "use fewer values, a smaller figure or a lower dpi"
        )

    controls = [_control(name, grid[name], initial.get(name, grid[name][0])) for name in names]
    stacks_by_level = [[] for _ in names]

    def nest(level: int, prefix: tuple):
        if level == len(names):
            return pages[prefix]
        children = [nest(level + 1, (*prefix, value)) for value in grid[names[level]]]
        stack = ipw.Stack(children, selected_index=controls[level].index)
        stacks_by_level[level].append(stack)
        return stack

    root = nest(0, ())
    for control, stacks in zip(controls, stacks_by_level, strict=True):
        for stack in stacks:
            ipw.jslink((control, "index"), (stack, "selected_index"))
    box = ipw.VBox([ipw.HBox(controls), root])
    box.add_class("course-explorer")
    return box


def _draw(plot, point: dict, dpi: int) -> bytes:
    fig = plot(**point)
    try:
        return png_bytes(fig, dpi=dpi)
    finally:
        plt.close(fig)


def _control(name: str, values: Sequence, first):
    """A dropdown (strings) or a selection slider (numbers) over ``values``, at ``first``."""
    import ipywidgets as ipw

    values = list(values)
    if first not in values:
        raise ValueError(f"initial value of {name} must be one of {values}, got {first!r}")
    index = values.index(first)
    if all(isinstance(value, str) for value in values):
        return ipw.Dropdown(options=values, index=index, description=name)
    labels = [f"{value:g}" if isinstance(value, (int, float)) else str(value) for value in values]
    if len(set(labels)) < len(labels):
        raise ValueError(f"the values of {name} must have distinct labels, got {labels}")
    return ipw.SelectionSlider(options=labels, index=index, description=name)
