import math

import pytest
import torch

from course_lib import landscapes

ALL = list(landscapes.all_landscapes().values())


@pytest.mark.parametrize("landscape", [s for s in ALL if s.minima], ids=lambda s: s.name)
def test_value_and_gradient_at_known_minima(landscape):
    for minimum in landscape.minima:
        point = torch.tensor(minimum, dtype=torch.float64)
        assert landscape(point).item() == pytest.approx(landscape.minimum_value, abs=1e-12)
        assert torch.linalg.vector_norm(landscape.gradient(point)) < 1e-9
        # a minimum, not a saddle or a maximum: the Hessian is positive definite there
        assert torch.linalg.eigvalsh(landscape.hessian(point)).min() > 0


@pytest.mark.parametrize("landscape", [s for s in ALL if s.minima], ids=lambda s: s.name)
def test_known_minima_are_the_lowest_points_of_the_plot_window(landscape):
    _, _, Z = landscape.grid(resolution=301)
    assert Z.min().item() >= landscape.minimum_value - 1e-12


def test_saddle_has_zero_gradient_and_indefinite_hessian():
    surface = landscapes.saddle()
    point = torch.tensor(surface.saddles[0], dtype=torch.float64)
    assert torch.linalg.vector_norm(surface.gradient(point)) == 0
    eigenvalues = torch.linalg.eigvalsh(surface.hessian(point))
    torch.testing.assert_close(eigenvalues, torch.tensor([-2.0, 2.0], dtype=torch.float64))


def test_closed_form_values():
    point = torch.tensor([-1.0, 2.0], dtype=torch.float64)
    assert landscapes.rosenbrock()(point).item() == pytest.approx(4 + 100 * 1)
    assert landscapes.himmelblau()(point).item() == pytest.approx(
        (1 + 2 - 11) ** 2 + (-1 + 4 - 7) ** 2
    )
    assert landscapes.saddle()(point).item() == pytest.approx(1 - 4)
    beale = (1.5 + 1 - 2) ** 2 + (2.25 + 1 - 4) ** 2 + (2.625 + 1 - 8) ** 2
    assert landscapes.beale()(point).item() == pytest.approx(beale)
    half = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert landscapes.rastrigin()(half).item() == pytest.approx(20 + 0.5 + 20)


@pytest.mark.parametrize("kappa", [1.0, 10.0, 1000.0])
@pytest.mark.parametrize("angle", [0.0, 0.7])
def test_quadratic_has_the_chosen_condition_number(kappa, angle):
    bowl = landscapes.quadratic(condition_number=kappa, angle=angle)
    hessian = bowl.hessian(torch.tensor([0.3, -0.2], dtype=torch.float64))
    eigenvalues = torch.linalg.eigvalsh(hessian)
    torch.testing.assert_close(eigenvalues, torch.tensor([1.0, kappa], dtype=torch.float64))
    # the top eigenvector is the y axis rotated by the angle
    top = torch.linalg.eigh(hessian).eigenvectors[:, 1]
    if kappa > 1:
        assert abs(
            top @ torch.tensor([-math.sin(angle), math.cos(angle)], dtype=torch.float64)
        ) == (pytest.approx(1.0))


def test_gradient_matches_finite_differences_and_batches():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(5, 2, generator=generator, dtype=torch.float64) * 4 - 2
    h = 1e-6
    for landscape in ALL:
        grads = landscape.gradient(points)
        assert grads.shape == (5, 2)
        for axis in range(2):
            step = torch.zeros(2, dtype=torch.float64)
            step[axis] = h
            central = (landscape(points + step) - landscape(points - step)) / (2 * h)
            torch.testing.assert_close(grads[:, axis], central, rtol=1e-6, atol=1e-5)


def test_grid_shape_and_bounds():
    bowl = landscapes.quadratic()
    X, Y, Z = bowl.grid(resolution=7)
    assert X.shape == Y.shape == Z.shape == (7, 7)
    assert X.min() == -2 and X.max() == 2 and Y.min() == -2 and Y.max() == 2
    torch.testing.assert_close(Z, 0.5 * (X**2 + 10 * Y**2))


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="condition_number"):
        landscapes.quadratic(condition_number=0.5)
    with pytest.raises(ValueError, match="points"):
        landscapes.rosenbrock()(torch.zeros(3))
    with pytest.raises(ValueError, match="resolution"):
        landscapes.rosenbrock().grid(resolution=1)


def test_path_is_the_hand_written_loop_of_torch_optim():
    from course_lib.landscapes import path, rosenbrock

    surface = rosenbrock()
    iterates = path(torch.optim.Adam, surface, surface.start, 30, lr=0.05, betas=(0.8, 0.99))
    point = torch.tensor(surface.start, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([point], lr=0.05, betas=(0.8, 0.99))
    expected = [point.detach().clone()]
    for _ in range(30):
        optimizer.zero_grad()
        surface(point).backward()
        optimizer.step()
        expected.append(point.detach().clone())
    assert iterates.shape == (31, 2) and iterates.dtype == torch.float64
    torch.testing.assert_close(iterates, torch.stack(expected), rtol=0, atol=0)


def test_path_stops_at_the_first_overflow():
    from course_lib.landscapes import path

    # x <- x - lr * 2x = -3x per step: |x_k| = 3^k overflows float64 after log_3(1.8e308) ~ 646
    iterates = path(torch.optim.SGD, lambda x: (x**2).sum(), [1.0], 1000, lr=2.0)
    assert len(iterates) == 647 and torch.isfinite(iterates).all()
    assert iterates[5, 0].item() == (-3.0) ** 5
