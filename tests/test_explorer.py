"""course_lib.explorer: the frames, their alt text and weight, and the client-side links,
checked in the widget state and, with no kernel, in Chromium through the site's own
require.js and widget manager (book/_vendor)."""

import base64
import html
import io
import json
import re
from pathlib import Path

import ipywidgets as ipw
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from browser import chromium, move_first_control, serve, shown_frame
from ipywidgets.embed import embed_data
from PIL import Image

from course_lib import explorer

matplotlib.use("Agg")
VENDOR = Path(__file__).resolve().parents[1] / "book" / "_vendor"
GRID = {"shape": ["rise", "fall", "flat"], "slope": [0.5, 1, 2, 4]}


def plot(shape, slope):
    fig, ax = plt.subplots(figsize=(4, 2.5), layout="constrained")
    x = np.linspace(0, 1, 50)
    y = {"rise": slope * x, "fall": -slope * x, "flat": 0 * x + slope}[shape]
    ax.plot(x, y, label=shape)
    ax.set_title(f"{shape}, slope {slope:g}")
    return fig


def describe(shape, slope):
    return f'a line that is "{shape}" with slope {slope:g}'


@pytest.fixture(scope="module")
def box():
    return explorer.precomputed(plot, GRID, alt=describe, initial={"slope": 2})


def frames(box):
    """(shape, slope) -> the frame's HTML, read back through the nested stacks."""
    outer = box.children[1]
    return {
        (shape, slope): inner.children[j].value
        for shape, inner in zip(GRID["shape"], outer.children, strict=True)
        for j, slope in enumerate(GRID["slope"])
    }


def decoded_png(frame: str) -> Image.Image:
    data = re.search(r'src="data:image/png;base64,([^"]+)"', frame).group(1)
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_one_frame_per_grid_point_each_with_its_alt_text(box):
    shown = frames(box)
    assert len(shown) == len(GRID["shape"]) * len(GRID["slope"])
    for (shape, slope), frame in shown.items():
        alt = html.unescape(re.search(r'alt="([^"]*)"', frame).group(1))
        assert alt == describe(shape, slope)
        assert decoded_png(frame).size[0] > 100
    assert len(set(shown.values())) == len(shown), "frames of different points differ"


def test_frames_are_the_plot_on_an_opaque_background(box):
    reference = plot("fall", 4)
    expected = Image.open(io.BytesIO(explorer.png_bytes(reference)))
    plt.close(reference)
    got = decoded_png(frames(box)["fall", 4])
    assert got.size == expected.size
    difference = np.abs(np.asarray(got.convert("RGB"), float) - expected.convert("RGB"))
    assert difference.mean() < 1.0
    assert "A" not in got.mode and got.convert("RGB").getpixel((0, 0)) == (255, 255, 255)


def test_controls_start_where_asked_and_are_linked_to_every_stack_of_their_level(box):
    shape, slope = box.children[0].children
    assert isinstance(shape, ipw.Dropdown) and shape.options == tuple(GRID["shape"])
    assert isinstance(slope, ipw.SelectionSlider) and slope.options == ("0.5", "1", "2", "4")
    assert (shape.index, slope.index) == (0, 2)
    outer = box.children[1]
    state = embed_data(views=[box])["manager_state"]["state"].values()
    links = {
        (model["state"]["source"][0][10:], model["state"]["target"][0][10:])
        for model in state
        if model["model_name"] == "LinkModel"
        and model["state"]["source"][1] == "index"
        and model["state"]["target"][1] == "selected_index"
    }
    assert (shape.model_id, outer.model_id) in links
    for inner in outer.children:
        assert (slope.model_id, inner.model_id) in links
        assert inner.selected_index == 2


def test_compressed_frames_stay_light(box):
    weights = [len(frame) for frame in frames(box).values()]
    assert max(weights) < 20_000, "a small line plot at 72 dpi is a few kB"
    with pytest.raises(ValueError, match="max_bytes"):
        explorer.precomputed(plot, {"shape": ["rise"], "slope": [1, 2]}, alt=describe, max_bytes=1)


def test_frames_drawn_in_forked_processes_equal_those_drawn_here(box):
    here = explorer.precomputed(plot, GRID, alt=describe, initial={"slope": 2}, processes=1)
    assert frames(here) == frames(box)  # box: the default, one process per core


def test_a_failing_plot_raises_its_own_error_from_a_forked_process():
    def broken(shape, slope):
        raise ZeroDivisionError(f"no figure for {shape}")

    with pytest.raises(ZeroDivisionError, match="no figure for rise"):
        explorer.precomputed(broken, GRID, alt=describe, processes=2)


@pytest.mark.parametrize(
    "grid, alt, match",
    [
        ({"shape": ["rise"] * 61, "slope": [1]}, describe, "max_frames"),
        ({"shape": [], "slope": [1]}, describe, "at least one value"),
        ({"shape": ["rise"], "slope": [1]}, lambda shape, slope: " ", "alt"),
        ({"shape": ["rise"], "slope": [1, 1.0000001]}, describe, "distinct labels"),
    ],
)
def test_bad_grids_are_refused(grid, alt, match):
    with pytest.raises(ValueError, match=match):
        explorer.precomputed(plot, grid, alt=alt)


def test_live_explorer_redraws_the_same_plot():
    widget = explorer.live(plot, shape=list(GRID["shape"]), slope=(0.5, 4.0, 0.5))
    shape, slope = widget.kwargs_widgets
    assert not slope.continuous_update
    shape.value = "fall"
    assert widget.kwargs == {"shape": "fall", "slope": slope.value}
    assert "course-live-explorer" in widget._dom_classes


def page_with(box) -> str:
    """A page that embeds ``box`` the way the site does: its widget state and one view."""
    data = embed_data(views=[box])
    view = json.dumps(data["view_specs"][0])
    state = json.dumps(data["manager_state"])
    return f"""<!DOCTYPE html><html lang="en"><head><title>explorer</title>
<script src="widgets/require.js"></script>
<script src="widgets/@jupyter-widgets/html-manager/dist/embed-amd.js"
        data-jupyter-widgets-cdn="widgets/"></script>
<script type="application/vnd.jupyter.widget-state+json">{state}</script>
</head><body><main><script type="application/vnd.jupyter.widget-view+json">{view}</script></main>
</body></html>"""


def test_controls_change_the_frame_in_the_browser_without_a_kernel(box, tmp_path):
    if not (VENDOR / "widgets" / "require.js").exists():
        pytest.fail("no book/_vendor: run `make setup` first")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "widgets").symlink_to(VENDOR / "widgets")
    (tmp_path / "site" / "index.html").write_text(page_with(box))
    outside = []
    with serve(tmp_path / "site") as address, chromium(tmp_path / "profile") as browser:
        page = browser.new_page()
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith((address, "data:"))
                else (outside.append(route.request.url), route.abort())
            ),
        )
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{address}/index.html", wait_until="networkidle")
        page.wait_for_selector(".course-explorer img")
        shown = frames(box)
        first = shown_frame(page)
        assert first == re.search(r'src="([^"]+)"', shown["rise", 2]).group(1)
        move_first_control(page)
        second = shown_frame(page)
        assert second == re.search(r'src="([^"]+)"', shown["fall", 2]).group(1)
        page.locator(".course-explorer .noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)
        third = shown_frame(page)
        assert third == re.search(r'src="([^"]+)"', shown["fall", 4]).group(1)
        alts = page.evaluate("() => [...document.images].map(img => img.alt)")
        assert alts == [describe("fall", 4)]
    assert errors == [] and outside == []
