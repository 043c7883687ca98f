"""course_lib.autograd.Value against torch.autograd on random expression DAGs."""

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.autograd import Value

BINARY = ["+", "-", "*", "/", "r+", "r-", "r*", "r/"]
UNARY = ["neg", "exp", "log", "tanh", "relu", "sigmoid", "pow"]
EXPONENTS = [2, 3, -1, 0.5, 1.5, -2]


@st.composite
def programs(draw):
    """A random expression DAG: leaves, then ops whose operands are ANY earlier node.

    Operands are drawn among all earlier nodes, so nodes are reused (shared subexpressions),
    and the output sums the last node with a random subset of the others. Hypothesis draws
    the leaves, the size and a seed; the seed picks the structure (one draw instead of ~70
    keeps 500+ examples fast).
    """
    leaves = draw(st.lists(st.floats(-2.0, 2.0), min_size=1, max_size=4))
    n_ops = draw(st.integers(1, 14))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    ops = []
    for i in range(n_ops):
        n_nodes = len(leaves) + i
        ops.append(
            (
                rng.choice(BINARY + UNARY),
                rng.randrange(n_nodes),
                rng.randrange(n_nodes),  # may equal the first operand: x * x, x - x
                rng.choice([0.5, -1.5, 2.0, 3.0]),
                rng.choice(EXPONENTS),
            )
        )
    n_nodes = len(leaves) + n_ops
    extra = [rng.randrange(n_nodes - 1) for _ in range(rng.randrange(5))] if n_nodes > 1 else []
    return leaves, ops, extra


def safe_op(kind, x, y, k):
    """Replace an op by tanh where its value would leave the well-behaved domain."""
    if abs(x) > 1e4 or (kind in BINARY and abs(y) > 1e4):
        return "tanh"
    if (kind == "/" and abs(y) < 1e-2) or (kind == "r/" and abs(x) < 1e-2):
        return "tanh"
    if kind == "log" and x < 1e-2:
        return "tanh"
    if kind == "exp" and x > 5:
        return "tanh"
    if kind == "pow" and (abs(x) < 1e-2 or (x < 0 and k != int(k))):
        return "tanh"
    return kind


def apply(kind, a, b, const, k, exp, log, tanh, relu, sigmoid):
    return {
        "+": lambda: a + b,
        "-": lambda: a - b,
        "*": lambda: a * b,
        "/": lambda: a / b,
        "r+": lambda: const + a,
        "r-": lambda: const - a,
        "r*": lambda: const * a,
        "r/": lambda: const / a,
        "neg": lambda: -a,
        "exp": lambda: exp(a),
        "log": lambda: log(a),
        "tanh": lambda: tanh(a),
        "relu": lambda: relu(a),
        "sigmoid": lambda: sigmoid(a),
        "pow": lambda: a**k,
    }[kind]()


def run_value(leaves, ops, extra):
    nodes = [Value(x) for x in leaves]
    effective = []
    for kind, i, j, const, k in ops:
        x, y = nodes[i].data, nodes[j].data
        kind = safe_op(kind, x, y, k)
        effective.append((kind, i, j, const, k))
        nodes.append(
            apply(
                kind,
                nodes[i],
                nodes[j],
                const,
                k,
                Value.exp,
                Value.log,
                Value.tanh,
                Value.relu,
                Value.sigmoid,
            )
        )
    out = nodes[-1]
    for i in extra:
        out = out + nodes[i]
    return nodes, out, effective


def run_torch(leaves, effective, extra):
    nodes = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in leaves]
    for kind, i, j, const, k in effective:
        nodes.append(
            apply(
                kind,
                nodes[i],
                nodes[j],
                const,
                k,
                torch.exp,
                torch.log,
                torch.tanh,
                torch.relu,
                torch.sigmoid,
            )
        )
    for node in nodes:
        if node.requires_grad and node.grad_fn is not None:
            node.retain_grad()
    out = nodes[-1]
    for i in extra:
        out = out + nodes[i]
    return nodes, out


@settings(max_examples=550, deadline=None, derandomize=True)
@given(programs())
def test_gradients_equal_torch_autograd_on_random_dags(program):
    leaves, ops, extra = program
    v_nodes, v_out, effective = run_value(leaves, ops, extra)
    t_nodes, t_out = run_torch(leaves, effective, extra)
    assert v_out.data == pytest.approx(t_out.item(), rel=1e-12, abs=1e-12)
    v_out.backward()
    t_out.backward()
    for v, t in zip(v_nodes, t_nodes, strict=True):
        expected = 0.0 if t.grad is None else t.grad.item()
        assert v.grad == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_shared_subexpression_gradients_add_up():
    x = Value(3.0)
    y = x * x  # x used twice by one node
    z = y + y + x  # y used twice, x a third time: z = 2x^2 + x
    z.backward()
    assert x.grad == 4 * 3.0 + 1
    assert y.grad == 2.0


def test_reversed_operands_and_ops_have_the_right_derivatives():
    x = Value(0.7)
    checks = {
        "2 - x": (lambda v: 2 - v, -1.0),
        "2 / x": (lambda v: 2 / v, -2 / 0.7**2),
        "x ** 3": (lambda v: v**3, 3 * 0.7**2),
        "log x": (lambda v: v.log(), 1 / 0.7),
        "sigmoid": (lambda v: v.sigmoid(), math.exp(-0.7) / (1 + math.exp(-0.7)) ** 2),
        "relu": (lambda v: (-v).relu(), 0.0),
    }
    for name, (f, derivative) in checks.items():
        x.grad = 0.0
        f(x).backward()
        assert x.grad == pytest.approx(derivative, rel=1e-12), name


def test_backward_twice_accumulates_leaves_and_resets_intermediates():
    leaves = [0.3, -1.2, 0.8]
    ops = [("*", 0, 1, 0, 1), ("tanh", 3, 3, 0, 1), ("+", 4, 2, 0, 1), ("*", 5, 3, 0, 1)]
    v_nodes, v_out, effective = run_value(leaves, ops, [])
    t_nodes, t_out = run_torch(leaves, effective, [])
    torch_grads = torch.autograd.grad(t_out, t_nodes)
    v_out.backward()
    v_out.backward()
    for i, (v, g) in enumerate(zip(v_nodes, torch_grads, strict=True)):
        factor = 2.0 if i < len(leaves) else 1.0  # leaves accumulate, intermediates do not
        assert v.grad == pytest.approx(factor * g.item(), rel=1e-12)
    v_out.zero_grad()
    assert all(v.grad == 0.0 for v in v_nodes)
    v_out.backward()
    for v, g in zip(v_nodes, torch_grads, strict=True):
        assert v.grad == pytest.approx(g.item(), rel=1e-12)


def test_unused_leaf_gets_zero_gradient_and_deep_chains_do_not_recurse():
    x, unused = Value(0.5), Value(2.0)
    y = x
    for _ in range(5000):  # deeper than Python's recursion limit
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0 and unused.grad == 0.0


def test_value_exponent_is_rejected():
    with pytest.raises(TypeError):
        Value(2.0) ** Value(3.0)
