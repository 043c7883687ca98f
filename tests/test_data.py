import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from course_lib import data


@pytest.fixture(scope="module")
def raw_digits():
    raw = load_digits()
    return raw.data, raw.target


def _rows(x):
    return sorted(map(tuple, np.asarray(x).round(6).tolist()))


def test_digits_split_is_a_stratified_partition_of_the_real_set(raw_digits):
    images, labels = raw_digits
    d = data.digits(standardized=False, dtype=torch.float64)
    assert d.x_train.shape[1] == 64 and d.y_train.dtype == torch.long
    assert len(d.x_train) + len(d.x_test) == data.DIGITS_SIZE == len(images)
    assert len(d.x_test) == pytest.approx(0.25 * len(images), abs=10)
    # together the two parts are exactly the real images, with their labels
    got = np.concatenate([d.x_train.numpy(), d.y_train.numpy()[:, None]], axis=1).tolist()
    got += np.concatenate([d.x_test.numpy(), d.y_test.numpy()[:, None]], axis=1).tolist()
    assert _rows(got) == _rows(np.concatenate([images, labels[:, None]], axis=1))
    # stratified: each digit keeps about a quarter of its images in the test set
    for digit in range(10):
        share = (d.y_test == digit).sum().item() / (labels == digit).sum()
        assert share == pytest.approx(0.25, abs=0.01)


def test_digits_is_deterministic_and_seed_changes_the_split():
    a, b, c = data.digits(seed=0), data.digits(seed=0), data.digits(seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)


def test_digits_standardization_uses_training_statistics_only():
    raw = data.digits(standardized=False, dtype=torch.float64)
    std = data.digits(dtype=torch.float64)
    x = raw.x_train.numpy()
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    np.testing.assert_allclose(std.x_train.numpy(), (x - mean) / scale, atol=1e-12)
    np.testing.assert_allclose(std.x_test.numpy(), (raw.x_test.numpy() - mean) / scale, atol=1e-12)
    varying = x.std(axis=0) > 0
    np.testing.assert_allclose(std.x_train.numpy()[:, varying].std(axis=0), 1.0, atol=1e-12)
    assert std.x_train.dtype == torch.float64
    assert data.digits().x_train.dtype == torch.float32


def test_digits_classes_are_relabelled_in_the_given_order(raw_digits):
    images, labels = raw_digits
    d = data.digits(classes=(8, 3), standardized=False, dtype=torch.float64)
    n_eights = (labels == 8).sum()
    assert len(d.y_train) + len(d.y_test) == n_eights + (labels == 3).sum()
    assert (torch.cat([d.y_train, d.y_test]) == 0).sum().item() == n_eights
    first = d.x_train[d.y_train == 0][0].numpy()
    assert any(np.array_equal(first, image) for image in images[labels == 8])
    with pytest.raises(ValueError, match="classes"):
        data.digits(classes=(3, 3))


def test_digits_1d_is_the_first_principal_component():
    d = data.digits_1d(classes=(3, 8), dtype=torch.float64)
    full = data.digits(classes=(3, 8), dtype=torch.float64)
    assert d.x_train.shape == (len(full.x_train), 1)
    assert set(d.y_train.tolist()) == {0.0, 1.0}
    assert d.y_train.dtype == torch.float64
    # independent reference: the top eigenvector of the training covariance (numpy)
    x = full.x_train.numpy()
    covariance = np.cov(x, rowvar=False)
    top = np.linalg.eigh(covariance)[1][:, -1]
    z = x @ top
    correlation = np.corrcoef(z, d.x_train.numpy()[:, 0])[0, 1]
    assert abs(correlation) == pytest.approx(1.0, abs=1e-9)
    z_train = d.x_train[:, 0]
    assert z_train.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert z_train.std(unbiased=False).item() == pytest.approx(1.0)
    assert z_train[d.y_train == 1].mean() > z_train[d.y_train == 0].mean()


def test_linear_regression_recovers_its_truth():
    d = data.linear_regression(n=2000, dim=3, noise=0.5, bias=2.0, seed=3, dtype=torch.float64)
    design = torch.cat([d.x, torch.ones(len(d.x), 1, dtype=torch.float64)], dim=1)
    fit = torch.linalg.lstsq(design, d.y[:, None]).solution[:, 0]
    # standard error of each coefficient is about noise / sqrt(n) = 0.011
    torch.testing.assert_close(fit[:3], d.weight, atol=0.05, rtol=0)
    assert fit[3].item() == pytest.approx(2.0, abs=0.05)
    residual = d.y - design @ fit
    assert residual.std().item() == pytest.approx(0.5, rel=0.05)
    again = data.linear_regression(n=2000, dim=3, noise=0.5, bias=2.0, seed=3, dtype=torch.float64)
    assert torch.equal(d.y, again.y)


def test_badly_scaled_regression_has_the_promised_condition_number():
    d = data.badly_scaled_regression(n=5000, dim=5, scale_ratio=30.0, seed=0, dtype=torch.float64)
    hessian = 2 * d.x.T @ d.x / len(d.x)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    kappa = (eigenvalues[-1] / eigenvalues[0]).item()
    assert kappa == pytest.approx(30.0**2, rel=0.2)
    fit = torch.linalg.lstsq(d.x, d.y[:, None]).solution[:, 0]
    torch.testing.assert_close(fit, d.weight, atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="scale_ratio"):
        data.badly_scaled_regression(scale_ratio=0.5)


def test_split_and_to():
    x = torch.arange(20.0)[:, None]
    y = torch.arange(20.0)
    s = data.split(x, y, test_fraction=0.25, seed=0)
    assert len(s.x_test) == 5 and torch.equal(s.x_train[:, 0], s.y_train)
    moved = s.to(dtype=torch.float64)
    assert moved.x_train.dtype == torch.float64
    labelled = data.digits(classes=(0, 1)).to(dtype=torch.float64)
    assert labelled.y_train.dtype == torch.long
    with pytest.raises(ValueError, match="test_fraction"):
        data.split(x, y, test_fraction=0.0)


def test_invalid_generator_arguments_raise():
    with pytest.raises(ValueError, match="noise"):
        data.linear_regression(noise=-1)
    with pytest.raises(ValueError, match="dim"):
        data.linear_regression(dim=0)
    with pytest.raises(ValueError, match="n"):
        data.linear_regression(n=True)


def test_validation_split_partitions_the_training_set_and_ignores_the_test_set():
    full = data.digits()
    held = data.validation_split(full, fraction=0.25, seed=1)
    rows = torch.cat([held.x_train, held.x_test])
    assert len(rows) == len(full.x_train)
    # the same multiset of training rows, and no test row among them
    row_sums = torch.sort(rows.sum(dim=1)).values
    assert torch.equal(row_sums, torch.sort(full.x_train.sum(dim=1)).values)
    test_rows = {tuple(r.tolist()) for r in full.x_test}
    assert not any(tuple(r.tolist()) in test_rows for r in held.x_test)
    # stratified: each class keeps its share within one example
    for label in range(10):
        share = (full.y_train == label).sum().item() * 0.25
        assert abs((held.y_test == label).sum().item() - share) <= 1
