import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import explorer, hiker, landscapes  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_each_stride_has_the_step_size_and_points_straight_downhill():
    bowl = landscapes.quadratic(condition_number=5.0)
    walk = hiker.hiker_walk(bowl, (-1.8, 1.2), step_size=0.1, steps=8, window_radius=0.5)
    assert walk.path.shape == (9, 2) and walk.heights.shape == (9,)
    strides = walk.path[1:] - walk.path[:-1]
    torch.testing.assert_close(torch.linalg.vector_norm(strides, dim=1), torch.full((8,), 0.1,
                               dtype=torch.float64))  # fmt: skip
    # independent slope: closed form H p for this bowl, H = diag(1, 5)
    hessian = torch.diag(torch.tensor([1.0, 5.0], dtype=torch.float64))
    for k in range(8):
        slope = hessian @ walk.path[k]
        torch.testing.assert_close(strides[k], -0.1 * slope / slope.norm())
        torch.testing.assert_close(walk.gradients[k], slope)
    expected = 0.5 * (walk.path[:, 0] ** 2 + 5 * walk.path[:, 1] ** 2)
    torch.testing.assert_close(walk.heights, expected)
    assert torch.all(walk.heights[1:] < walk.heights[:-1])  # small strides: always downhill
    assert not walk.stopped


def test_hiker_stops_on_flat_ground():
    bowl = landscapes.quadratic()
    walk = hiker.hiker_walk(bowl, (0.0, 0.0), step_size=0.3, steps=4)
    assert walk.stopped and torch.all(walk.path == 0)


def test_hiker_reaches_the_valley_within_one_stride():
    valley = landscapes.himmelblau()
    walk = hiker.hiker_walk(valley, (0.0, 0.0), step_size=0.05, steps=200)
    distances = [math.dist(walk.path[-1].tolist(), m) for m in valley.minima]
    assert min(distances) <= 0.05


def test_invalid_walk_arguments_raise():
    bowl = landscapes.quadratic()
    for kwargs, name in [({"step_size": 0}, "step_size"), ({"steps": -1}, "steps"),
                         ({"window_radius": 0}, "window_radius")]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            hiker.hiker_walk(bowl, (1.0, 1.0), **kwargs)
    with pytest.raises(ValueError, match="start"):
        hiker.hiker_walk(bowl, (1.0, 1.0, 1.0))


def test_draw_hiker_clips_the_landscape_to_the_window():
    valley = landscapes.himmelblau()
    walk = hiker.hiker_walk(valley, (0.0, 0.0), step_size=0.3, steps=6, window_radius=0.8)
    ax = hiker.draw_hiker(valley, walk, step=4, resolution=40)
    assert ax.get_title().startswith("Himmelblau: step 4") and ax.get_xlabel() == "x"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["visible window", "path walked", "hiker"]
    window = [p for p in ax.patches if p.get_label() == "visible window"][0]
    assert window.center == pytest.approx(tuple(walk.path[4].tolist()))
    assert window.radius == 0.8
    assert all(layer.get_clip_path() is not None for layer in ax.collections)
    marker = [line for line in ax.get_lines() if line.get_label() == "hiker"][0]
    assert marker.get_xydata()[0] == pytest.approx(walk.path[4].numpy())
    revealed = hiker.draw_hiker(valley, walk, reveal=True, resolution=40)
    assert all(layer.get_clip_path() is None for layer in revealed.collections)
    assert "minimum" in [t.get_text() for t in revealed.get_legend().get_texts()]


def test_the_old_module_name_still_works():
    from course_lib import widgets

    assert widgets.hiker_walk is hiker.hiker_walk and widgets.draw_hiker is hiker.draw_hiker
    assert widgets.live is explorer.live and widgets.precomputed is explorer.precomputed
