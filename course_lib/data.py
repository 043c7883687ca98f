"""The small data sets of the course, real and synthetic, all offline and seeded.

Real data is scikit-learn's copy of the UCI handwritten digits (1,797 grey 8x8 images,
shipped with the package, so nothing is downloaded). Synthetic data comes from the generators
below, each a few lines of math whose true parameters are returned with the data.

Everything returns torch tensors: features ``float`` (``dtype`` argument), class labels
``long`` (``float`` 0/1 for the binary one-feature set, ready for binary cross-entropy).
"""

from dataclasses import dataclass, fields

import torch

from course_lib import _args

DIGITS_SIZE = 1797


@dataclass(frozen=True)
class Split:
    """Training and test tensors of one data set."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device=None, dtype=None) -> "Split":
        """Move every tensor to ``device``; cast floating tensors to ``dtype`` if given."""

        def move(t):
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        return Split(*(move(getattr(self, f.name)) for f in fields(self)))


@dataclass(frozen=True)
class LinearData:
    r"""Data from :math:`y = x^\top w + b + \varepsilon`, with the truth that made it."""

    x: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor
    bias: float
    noise: float


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def split(x: torch.Tensor, y: torch.Tensor, test_fraction: float = 0.25, seed: int = 0) -> Split:
    """Split ``(x, y)`` at random into train and test, stratified by label when ``y`` holds
    class labels (an integer tensor), so each class keeps its share in both parts."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    generator = _generator(seed)
    if y.dtype in (torch.int64, torch.int32, torch.bool):
        groups = [torch.nonzero(y == label).flatten() for label in torch.unique(y)]
    else:
        groups = [torch.arange(len(y))]
    train_parts, test_parts = [], []
    for members in groups:
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = round(test_fraction * len(members))
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train_index = torch.sort(torch.cat(train_parts)).values
    test_index = torch.sort(torch.cat(test_parts)).values
    return Split(x[train_index], y[train_index], x[test_index], y[test_index])


def validation_split(data: Split, fraction: float = 0.2, seed: int = 0) -> Split:
    """Carve a validation set out of the TRAINING part of ``data`` (stratified, as
    :func:`split`): the result's ``x_train, y_train`` are what is left to fit on and its
    ``x_test, y_test`` the validation set. ``data``'s test set is not used: choices are made
    on the validation set, and the test set is touched once, for the final report."""
    return split(data.x_train, data.y_train, test_fraction=fraction, seed=seed)


def standardize(data: Split) -> Split:
    r"""Shift and scale each feature to mean 0 and standard deviation 1 on the TRAINING set,
    :math:`x \mapsto (x - \mu_{train}) / \sigma_{train}`, and apply the same map to the test
    set. Features that are constant on the training set are only shifted."""
    mean = data.x_train.mean(dim=0)
    std = data.x_train.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return Split((data.x_train - mean) / std, data.y_train, (data.x_test - mean) / std, data.y_test)


def digits(
    classes=None,
    test_fraction: float = 0.25,
    seed: int = 0,
    standardized: bool = True,
    dtype=torch.float32,
) -> Split:
    """The 8x8 handwritten digits: ``x`` of shape ``(n, 64)`` (pixel values 0..16, standardized
    per pixel on the training set unless ``standardized=False``) and ``y`` the digit.

    ``classes`` keeps only some digits, relabelled ``0..k-1`` in the order given, e.g.
    ``classes=(3, 8)`` gives label 0 for a three and 1 for an eight. The split is stratified
    and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.as_tensor(raw.data, dtype=torch.float64)
    y = torch.as_tensor(raw.target, dtype=torch.long)
    if classes is not None:
        classes = list(classes)
        if len(set(classes)) != len(classes) or not set(classes) <= set(range(10)):
            raise ValueError(f"classes must be distinct digits 0..9, got {classes}")
        keep = torch.isin(y, torch.tensor(classes))
        x, y = x[keep], y[keep]
        y = torch.tensor([classes.index(label) for label in y.tolist()], dtype=torch.long)
    data = split(x, y, test_fraction=test_fraction, seed=seed)
    if standardized:
        data = standardize(data)
    return data.to(dtype=dtype)


def digits_1d(classes=(3, 8), test_fraction: float = 0.25, seed: int = 0, dtype=torch.float32):
    r"""Two digits seen through ONE number each: a data set for a two-parameter model.

    Each standardized image is projected on the first principal direction :math:`u` of the
    training images (the direction along which they vary most, found without labels),
    :math:`z = x^\top u`, and :math:`z` is standardized on the training set. The sign of
    :math:`u` is chosen so that the second class has the larger mean :math:`z`.

    Returns a :class:`Split` with ``x`` of shape ``(n, 1)`` and ``y`` float 0/1 (1 for
    ``classes[1]``), ready for logistic regression :math:`p = \sigma(wz + b)`.
    """
    if len(classes) != 2:
        raise ValueError(f"classes must name exactly two digits, got {classes}")
    data = digits(classes=classes, test_fraction=test_fraction, seed=seed, dtype=torch.float64)
    centred = data.x_train - data.x_train.mean(dim=0)
    direction = torch.linalg.svd(centred, full_matrices=False).Vh[0]
    z_train, z_test = data.x_train @ direction, data.x_test @ direction
    ones = data.y_train == 1
    if z_train[ones].mean() < z_train[~ones].mean():
        z_train, z_test = -z_train, -z_test
    mean, std = z_train.mean(), z_train.std(unbiased=False)
    return Split(
        ((z_train - mean) / std)[:, None].to(dtype),
        data.y_train.to(dtype),
        ((z_test - mean) / std)[:, None].to(dtype),
        data.y_test.to(dtype),
    )


def linear_regression(
    n: int = 200,
    dim: int = 1,
    noise: float = 0.1,
    bias: float = 0.0,
    seed: int = 0,
    dtype=torch.float32,
) -> LinearData:
    r"""Samples :math:`x \sim \mathcal N(0, I_{dim})`, a true weight :math:`w \sim \mathcal N(0,
    I)`, and :math:`y = x^\top w + b + \varepsilon` with :math:`\varepsilon \sim \mathcal N(0,
    \text{noise}^2)`. ``y`` has shape ``(n,)``."""
    _args.integer("n", n, minimum=1)
    _args.integer("dim", dim, minimum=1)
    _args.nonnegative("noise", noise)
    generator = _generator(seed)
    weight = torch.randn(dim, generator=generator, dtype=torch.float64)
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    y = x @ weight + bias + noise * torch.randn(n, generator=generator, dtype=torch.float64)
    return LinearData(x.to(dtype), y.to(dtype), weight.to(dtype), float(bias), float(noise))


def badly_scaled_regression(
    n: int = 200,
    dim: int = 10,
    scale_ratio: float = 100.0,
    noise: float = 0.1,
    seed: int = 0,
    dtype=torch.float32,
) -> LinearData:
    r"""Linear regression whose features live on very different scales.

    Feature :math:`i` is a standard normal times :math:`s_i = \text{scale\_ratio}^{i/(dim-1)}`,
    so the scales run from 1 to ``scale_ratio`` and the Hessian of the mean squared error,
    :math:`\tfrac{2}{n} X^\top X \approx 2\operatorname{diag}(s_i^2)`, has condition number
    about ``scale_ratio**2``. The true weight is :math:`w_i = v_i / s_i` with :math:`v \sim
    \mathcal N(0, I)`, so every feature matters about equally to :math:`y`.
    """
    _args.integer("dim", dim, minimum=2)
    if not scale_ratio >= 1:
        raise ValueError(f"scale_ratio must be >= 1, got {scale_ratio}")
    _args.nonnegative("noise", noise)
    _args.integer("n", n, minimum=1)
    generator = _generator(seed)
    scales = scale_ratio ** torch.linspace(0, 1, dim, dtype=torch.float64)
    weight = torch.randn(dim, generator=generator, dtype=torch.float64) / scales
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64) * scales
    y = x @ weight + noise * torch.randn(n, generator=generator, dtype=torch.float64)
    return LinearData(x.to(dtype), y.to(dtype), weight.to(dtype), 0.0, float(noise))
