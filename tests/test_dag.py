"""course_lib.dag: the graphs it extracts (Value and torch grad_fn) and their drawing."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.autograd import Value  # noqa: E402
from course_lib.dag import draw_dag, grad_fn_graph, layered_layout, value_graph  # noqa: E402


def heads(graph):
    """First line of each node's label, by node."""
    return {node: label.split("\n")[0] for node, label in graph.labels.items()}


def named_edges(graph):
    h = heads(graph)
    return sorted((h[src], h[dst]) for src, dst in graph.edges)


def value_expression():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b  # c = ab
    d = c + a  # a is used twice
    e = d.tanh()
    return a, b, e


def test_value_graph_has_one_node_per_value_and_one_edge_per_use():
    a, b, e = value_expression()
    graph = value_graph(e)
    assert sorted(heads(graph).values()) == ["*", "+", "a", "b", "tanh"]
    assert named_edges(graph) == [("*", "+"), ("+", "tanh"), ("a", "*"), ("a", "+"), ("b", "*")]
    assert graph.kinds[id(e)] == "output" and graph.kinds[id(a)] == "leaf"
    x = Value(3.0)
    assert len(value_graph(x * x).edges) == 1  # a square has one input edge, drawn once


def test_value_labels_show_data_and_gradient():
    a, b, e = value_expression()
    e.backward()
    label = value_graph(e).labels[id(a)]
    assert f"data {2.0:.4g}" in label and f"grad {a.grad:.4g}" in label
    assert a.grad != 0.0


def test_layout_puts_every_edge_left_to_right_by_longest_path_depth():
    a, b, e = value_expression()
    graph = value_graph(e)
    pos = layered_layout(graph)
    for src, dst in graph.edges:
        assert pos[dst][0] >= pos[src][0] + 1
    assert pos[id(a)][0] == 0 and pos[id(b)][0] == 0
    assert pos[id(e)][0] == 3  # a -> * -> + -> tanh
    assert len(set(pos.values())) == len(pos)  # no two boxes on the same spot


def test_torch_graph_has_the_same_structure_as_the_value_graph():
    a = torch.full((3,), 2.0, requires_grad=True)
    b = torch.full((3,), -3.0, requires_grad=True)
    e = torch.tanh(a * b + a)
    graph = grad_fn_graph(e)
    assert sorted(heads(graph).values()) == ["Add", "Mul", "Tanh", "leaf", "leaf"]
    value_g = value_graph(value_expression()[2])
    rename = {"Add": "+", "Mul": "*", "Tanh": "tanh"}
    torch_depths = sorted(x for x, _ in layered_layout(graph).values())
    value_depths = sorted(x for x, _ in layered_layout(value_g).values())
    assert torch_depths == value_depths
    torch_ops = sorted((rename.get(s, s), rename.get(d, d)) for s, d in named_edges(graph))
    value_ops = sorted((s if s in rename.values() else "leaf", d) for s, d in named_edges(value_g))
    assert torch_ops == value_ops


def test_torch_labels_show_shapes_and_shared_nodes_appear_once():
    W = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(3)  # no grad: not part of the backward graph
    h = (W @ x).exp()
    loss = (h * h).sum()  # h is used twice
    graph = grad_fn_graph(loss)
    labels = sorted(graph.labels.values())
    assert "leaf\n(4, 3)" in labels and "Sum\n()" in labels and "Exp\n(4,)" in labels
    assert len(graph.labels) == 5  # leaf, Mv, Exp, Mul, Sum
    assert len(graph.edges) == 4


def boxes(ax):
    return [t for t in ax.texts if not isinstance(t, matplotlib.text.Annotation)]


def arrows(ax):
    return [t for t in ax.texts if isinstance(t, matplotlib.text.Annotation)]


def test_draw_dag_draws_one_box_per_node_and_one_arrow_per_edge():
    a, b, e = value_expression()
    fig, (left, right) = plt.subplots(1, 2)
    draw_dag(e, ax=left, title="Value")
    t = torch.tensor(2.0, requires_grad=True)
    draw_dag(torch.tanh(t * torch.tensor(-3.0) + t), ax=right, title="torch")
    assert sorted(t.get_text() for t in boxes(left)) == sorted(value_graph(e).labels.values())
    assert len(arrows(left)) == len(value_graph(e).edges) == 5
    assert left.get_title() == "Value"
    assert len(boxes(right)) == 4 and len(arrows(right)) == 4  # leaf t, Mul, Add, Tanh
    fig.canvas.draw()  # renders without error
    plt.close(fig)
    ax = draw_dag(torch.ones(2, requires_grad=True) * 3)  # makes its own figure
    assert [t.get_text() for t in boxes(ax)] == ["Mul\n(2,)", "leaf\n(2,)"]
    plt.close(ax.figure)


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="root"):
        draw_dag(3.0)
    with pytest.raises(ValueError, match="graph"):
        grad_fn_graph(torch.ones(2))


def test_named_torch_leaves_are_labelled_by_name():
    w, b = torch.tensor(2.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
    graph = grad_fn_graph(torch.tanh(w * 3 + b), names={"w": w, "b": b})
    leaves = sorted(label for key, label in graph.labels.items() if graph.kinds[key] == "leaf")
    assert leaves == ["b\n()", "w\n()"]
    unnamed = grad_fn_graph(torch.tanh(w * 3 + b))
    assert sum(label.startswith("leaf") for label in unnamed.labels.values()) == 2
