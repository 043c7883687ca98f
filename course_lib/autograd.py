"""A scalar reverse-mode automatic differentiation engine: the computation DAG built by hand.

Every arithmetic operation on a :class:`Value` returns a new ``Value`` that remembers

* ``_children``: the Values it was computed from (its incoming edges in the DAG), and
* ``_backward``: its *local* rule, which turns ``d out / d self`` (``self.grad``) into
  contributions ``d out / d child`` by the chain rule and adds them to each child's ``grad``.

:meth:`Value.backward` visits the DAG in reverse topological order, so that every node has
received all contributions from the nodes that use it before it passes its own gradient on.
A node used several times (a shared subexpression) simply receives several contributions,
which add up: that is the multivariable chain rule.

Calling ``backward()`` twice
----------------------------
Like ``torch.autograd``, gradients of *leaves* (Values not computed from others)
**accumulate**: each call adds ``d out / d leaf`` to ``leaf.grad``, so two calls leave twice
the gradient. Call :meth:`Value.zero_grad` on the output (or set ``leaf.grad = 0``) between
calls when accumulation is not wanted. Gradients of *intermediate* nodes are reset to zero at
the start of every call, so after any call they hold exactly that call's ``d out / d node``.
(The classic pitfall this avoids: if intermediate gradients also accumulated, the second call
would push the stale first-call values down the graph once more, and leaves would get more
than twice their gradient.)
"""

from __future__ import annotations

import math


class Value:
    """A scalar that records the operations applied to it, for reverse-mode differentiation.

    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = a * b + a ** 2      # c = ab + a^2
    >>> c.backward()
    >>> a.grad, b.grad          # (b + 2a, a)
    (1.0, 2.0)
    """

    def __init__(self, data: float, _children: tuple[Value, ...] = (), _op: str = "", label=""):
        self.data = float(data)
        self.grad = 0.0
        self._children = _children
        self._op = _op
        self._backward = lambda: None
        self.label = label

    # ----- binary operations: out = f(self, other); local derivatives beside the forward -----

    def __add__(self, other) -> Value:
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():  # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __sub__(self, other) -> Value:
        other = _as_value(other)
        out = Value(self.data - other.data, (self, other), "-")

        def _backward():  # d(a-b)/da = 1, d(a-b)/db = -1
            self.grad += out.grad
            other.grad -= out.grad

        out._backward = _backward
        return out

    def __mul__(self, other) -> Value:
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():  # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __truediv__(self, other) -> Value:
        other = _as_value(other)
        out = Value(self.data / other.data, (self, other), "/")

        def _backward():  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
            self.grad += out.grad / other.data
            other.grad -= out.grad * self.data / other.data**2

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Value:
        if isinstance(exponent, Value):
            raise TypeError("Value ** Value is not supported: the exponent must be a number")
        k = float(exponent)
        out = Value(self.data**k, (self,), f"**{exponent:g}")

        def _backward():  # d(a^k)/da = k a^(k-1)
            self.grad += k * self.data ** (k - 1) * out.grad

        out._backward = _backward
        return out

    # ----- unary operations -----

    def __neg__(self) -> Value:
        out = Value(-self.data, (self,), "neg")

        def _backward():  # d(-a)/da = -1
            self.grad -= out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():  # d(e^a)/da = e^a
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        out = Value(math.log(self.data), (self,), "log")

        def _backward():  # d(log a)/da = 1/a
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():  # d(tanh a)/da = 1 - tanh(a)^2
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward():  # d(relu a)/da = 1 if a > 0 else 0 (0 at a = 0, as in torch)
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        x = self.data  # sigma(x) = 1 / (1 + e^-x), written so that exp never overflows
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        out = Value(s, (self,), "sigmoid")

        def _backward():  # d(sigma a)/da = sigma(a) (1 - sigma(a))
            self.grad += out.data * (1.0 - out.data) * out.grad

        out._backward = _backward
        return out

    # ----- reversed operands: 2 + v, 2 - v, 2 * v, 2 / v -----

    def __radd__(self, other) -> Value:
        return _as_value(other) + self

    def __rsub__(self, other) -> Value:
        return _as_value(other) - self

    def __rmul__(self, other) -> Value:
        return _as_value(other) * self

    def __rtruediv__(self, other) -> Value:
        return _as_value(other) / self

    # ----- the backward pass -----

    def topological_order(self) -> list[Value]:
        """All nodes this Value depends on, each after all of its children (inputs)."""
        order, visited = [], set()
        stack = [(self, False)]
        while stack:  # iterative depth-first search, so deep graphs do not hit recursion limits
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
            elif id(node) not in visited:
                visited.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in node._children)
        return order

    def backward(self) -> None:
        """Compute d self / d node for every node of the DAG below ``self``.

        Leaves accumulate (``+=``) across calls; intermediate nodes are reset first, so they
        hold this call's gradient. See the module docstring.
        """
        order = self.topological_order()
        for node in order:
            if node._children:
                node.grad = 0.0
        self.grad += 1.0  # d self / d self = 1 (a leaf output accumulates like any leaf)
        for node in reversed(order):
            node._backward()

    def zero_grad(self) -> None:
        """Set ``grad = 0`` on every node of the DAG below (and including) ``self``."""
        for node in self.topological_order():
            node.grad = 0.0

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"


def _as_value(x) -> Value:
    return x if isinstance(x, Value) else Value(x)
