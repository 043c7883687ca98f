import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import landscapes, viz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _labelled(ax):
    return ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


@pytest.mark.parametrize(
    "landscape", [landscapes.himmelblau(), landscapes.saddle()], ids=lambda s: s.name
)
def test_contour_has_title_labels_legend_and_marks_known_points(landscape):
    ax = viz.contour(landscape, resolution=40)
    assert _labelled(ax) and ax.get_title() == landscape.name
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    marked = np.concatenate([line.get_xydata() for line in ax.get_lines()])
    known = np.array(landscape.minima or landscape.saddles)
    assert legend == (["minimum"] if landscape.minima else ["saddle point"])
    for point in known:
        assert np.min(np.linalg.norm(marked - point, axis=1)) < 1e-12
    assert ax.get_xlim() == landscape.bounds[0] and ax.get_ylim() == landscape.bounds[1]


def test_log_scale_contour_levels_are_geometric():
    ax = viz.contour(landscapes.rosenbrock(), resolution=40, levels=10)
    filled = [c for c in ax.collections if hasattr(c, "levels")][0]
    ratios = filled.levels[1:] / filled.levels[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
    assert ratios[0] > 2


def test_trajectory_draws_the_given_points():
    ax = viz.contour(landscapes.quadratic(), resolution=30)
    path = torch.tensor([[-1.0, 1.0], [-0.5, 0.2], [0.0, 0.0]])
    viz.trajectory(ax, path, label="gradient descent")
    line = [ln for ln in ax.get_lines() if ln.get_label() == "gradient descent"][0]
    np.testing.assert_allclose(line.get_xydata(), path.numpy())
    assert "gradient descent" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_gradient_field_arrows_point_along_the_gradient():
    bowl = landscapes.quadratic(condition_number=4.0)
    ax = viz.contour(bowl, resolution=30)
    viz.gradient_field(ax, bowl, density=5)
    quiver = [c for c in ax.collections if isinstance(c, matplotlib.quiver.Quiver)][0]
    arrows = np.stack([quiver.U, quiver.V], axis=-1).reshape(-1, 2)
    positions = quiver.get_offsets()
    expected = np.stack([positions[:, 0], 4.0 * positions[:, 1]], axis=1)  # H p
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    expected = np.where(norms > 1e-6, expected / np.maximum(norms, 1e-300), 0.0)
    assert np.sum(norms <= 1e-6) == 1  # the minimum is on the grid: no arrow there
    np.testing.assert_allclose(arrows, expected, atol=1e-9)


def test_surface_and_loss_curves_are_labelled():
    ax = viz.surface(landscapes.beale(), resolution=20)
    assert _labelled(ax) and ax.get_zlabel() == "height" and ax.get_legend() is not None
    ax = viz.loss_curves({"SGD": [1.0, 0.5, 0.25], "Adam": [1.0, 0.1, 0.01]})
    assert _labelled(ax) and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SGD", "Adam"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [1.0, 0.1, 0.01])
    ax = viz.loss_curves({"a": [3.0, 2.0]}, steps={"a": [10, 20]}, log_y=False)
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [10, 20])


def test_animation_html_embeds_one_image_per_frame():
    fig, ax = plt.subplots(figsize=(2, 2))
    (line,) = ax.plot([], [])
    drawn = []

    def draw(frame):
        drawn.append(frame)
        line.set_data([0, frame], [0, frame])

    html = viz.animation_html(fig, draw, frames=4, dpi=40)
    assert html.count("data:image/png;base64") == 4
    assert "<script" in html and set(drawn) == {0, 1, 2, 3}
    assert not plt.fignum_exists(fig.number)


def test_animation_limits_raise():
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="frames"):
        viz.animation_html(fig, lambda i: None, frames=viz.MAX_FRAMES + 1)
    with pytest.raises(ValueError, match="dpi"):
        viz.animation_html(fig, lambda i: None, frames=3, dpi=200)


def test_frame_indices_keep_both_ends():
    assert list(viz.frame_indices(5, 40)) == [0, 1, 2, 3, 4]
    indices = viz.frame_indices(1001, 40)
    assert len(indices) == 40 and indices[0] == 0 and indices[-1] == 1000
    assert np.all(np.diff(indices) > 0)


def test_animation_html_loads_nothing_from_the_network():
    fig, ax = plt.subplots()
    (line,) = ax.plot([0.0], [0.0])
    html = viz.animation_html(fig, lambda i: line.set_data([0, i], [0, i]), frames=3, dpi=40)
    assert "<link" not in html and "http://" not in html and "https://" not in html
    assert 'class="fa' not in html, "every Font Awesome icon is replaced by a symbol"
    assert "\u25b6" in html and "\u25c0" in html and "\u23f8" in html
