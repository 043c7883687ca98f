"""TensorList: many tensors that do arithmetic like one tensor, one torch._foreach_ call per op.

The update rules of this package are written with ordinary tensor methods, e.g.
``param.addcdiv_(exp_avg, denom, value=-step_size)``. Called with tensors they update one
parameter. Called with TensorLists, the very same lines update every parameter of a group
at once: each method below is a single ``torch._foreach_*`` kernel launch, as in
torch.optim's ``foreach`` implementations. That removes the Python overhead of looping over
a model with hundreds of small tensors, without a second copy of the math.

Only the methods the optimizers use are defined. Scalars apply to every tensor; a
TensorList argument pairs its tensors with ours one by one.
"""

import torch


class TensorList:
    """A list of tensors with the in-place and out-of-place tensor methods of the updates."""

    __slots__ = ("tensors",)

    def __init__(self, tensors):
        self.tensors = list(tensors)

    def __len__(self):
        return len(self.tensors)

    def __iter__(self):
        return iter(self.tensors)

    def __getitem__(self, index):
        return self.tensors[index]

    def __repr__(self):
        return f"TensorList({len(self.tensors)} tensors)"

    # x + alpha * y, y a TensorList or a scalar (as torch.Tensor.add)
    def add(self, other, alpha=1):
        if isinstance(other, TensorList):
            return TensorList(torch._foreach_add(self.tensors, other.tensors, alpha=alpha))
        return TensorList(torch._foreach_add(self.tensors, alpha * other))

    def add_(self, other, alpha=1):
        if isinstance(other, TensorList):
            torch._foreach_add_(self.tensors, other.tensors, alpha=alpha)
        else:
            torch._foreach_add_(self.tensors, alpha * other)
        return self

    # x * scalar
    def mul_(self, scalar):
        torch._foreach_mul_(self.tensors, scalar)
        return self

    # x / y
    def div(self, other):
        if isinstance(other, TensorList):
            return TensorList(torch._foreach_div(self.tensors, other.tensors))
        return TensorList(torch._foreach_div(self.tensors, other))

    def div_(self, scalar):
        torch._foreach_div_(self.tensors, scalar)
        return self

    # x + weight * (end - x)
    def lerp(self, end, weight):
        return TensorList(torch._foreach_lerp(self.tensors, end.tensors, weight))

    def lerp_(self, end, weight):
        torch._foreach_lerp_(self.tensors, end.tensors, weight)
        return self

    # x + value * a * b
    def addcmul(self, a, b, value=1):
        return TensorList(torch._foreach_addcmul(self.tensors, a.tensors, b.tensors, value))

    def addcmul_(self, a, b, value=1):
        torch._foreach_addcmul_(self.tensors, a.tensors, b.tensors, value)
        return self

    # x + value * a / b
    def addcdiv_(self, a, b, value=1):
        torch._foreach_addcdiv_(self.tensors, a.tensors, b.tensors, value)
        return self

    def sqrt(self):
        return TensorList(torch._foreach_sqrt(self.tensors))

    def sqrt_(self):
        torch._foreach_sqrt_(self.tensors)
        return self

    def sign_(self):
        torch._foreach_sign_(self.tensors)
        return self

    def copy_(self, source):
        torch._foreach_copy_(self.tensors, source.tensors)
        return self

    def maximum_(self, other):
        """Elementwise max in place (torch.Tensor has no ``maximum_``; see transforms)."""
        torch._foreach_maximum_(self.tensors, other.tensors)
        return self
