"""Draw a computation DAG with matplotlib alone (no graphviz): of a Value or of a torch tensor.

Both kinds of graph are first turned into the same small :class:`Graph` (node labels, node
kinds, edges from an input to the node that uses it), then laid out in layers by
topological depth (a node sits one column right of its deepest input) and drawn as boxes
and arrows. So the hand-built engine of :mod:`course_lib.autograd` and torch.autograd's
recorded ``grad_fn`` graph look alike side by side.

* A :class:`~course_lib.autograd.Value` graph has one node per Value, labelled with its
  operation (or its label, for a leaf), its data and its grad.
* A tensor's graph is the backward graph torch recorded: one node per ``grad_fn``
  (``MulBackward0`` is drawn as ``Mul``), reached by walking ``next_functions`` from
  ``tensor.grad_fn``; leaves are the ``AccumulateGrad`` nodes of tensors with
  ``requires_grad=True``. Each node shows the shape of the value its forward op produced.
  Edges run forward (input -> op), the direction the values flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import torch

from .autograd import Value

COLORS = {"leaf": "#cfe2f3", "op": "#fff2cc", "output": "#d9ead3"}


@dataclass
class Graph:
    """labels[node] -> text; kinds[node] in {'leaf', 'op', 'output'}; edges (input, user)."""

    labels: dict[int, str] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)
    edges: list[tuple[int, int]] = field(default_factory=list)


def value_graph(root: Value) -> Graph:
    """The DAG below a Value: one node per Value, labelled op / data / grad."""
    graph = Graph()
    for node in root.topological_order():
        key = id(node)
        head = node._op if node._children else (node.label or "leaf")
        graph.labels[key] = f"{head}\ndata {node.data:.4g}\ngrad {node.grad:.4g}"
        graph.kinds[key] = "output" if node is root else ("op" if node._children else "leaf")
        for child in dict.fromkeys(node._children):  # x * x: one edge, not two
            graph.edges.append((id(child), key))
    return graph


def _shape_of(fn) -> str:
    """Shape of the value the forward op of backward node ``fn`` produced."""
    if hasattr(fn, "variable"):  # AccumulateGrad: the leaf tensor itself
        return str(tuple(fn.variable.shape))
    metadata = getattr(fn, "_input_metadata", None)  # torch's record of the output's shape
    if metadata:
        return str(tuple(metadata[0].shape))
    return "?"


def grad_fn_graph(tensor: torch.Tensor, names: dict | None = None) -> Graph:
    """The backward graph torch recorded for ``tensor``, walked through ``next_functions``.

    ``names`` maps a name to a leaf tensor (``{"w1": w1}``); such leaves are labelled by their
    name instead of "leaf"."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    graph = Graph()
    if tensor.grad_fn is None:
        if not tensor.requires_grad:
            raise ValueError("tensor has no grad_fn and does not require grad: no graph to draw")
        graph.labels[0] = f"leaf\n{tuple(tensor.shape)}"
        graph.kinds[0] = "output"
        return graph
    keep_alive, stack, seen = [], [tensor.grad_fn], set()
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        keep_alive.append(fn)  # ids stay unique while the walk holds the objects
        name = type(fn).__name__
        is_leaf = name == "AccumulateGrad"
        head = "leaf" if is_leaf else name.removesuffix("Backward0").removesuffix("Backward1")
        if is_leaf:
            head = next((n for n, t in (names or {}).items() if t is fn.variable), head)
        graph.labels[id(fn)] = f"{head}\n{_shape_of(fn)}"
        graph.kinds[id(fn)] = "output" if fn is tensor.grad_fn else ("leaf" if is_leaf else "op")
        inputs = [nxt for nxt, _ in fn.next_functions if nxt is not None]
        for nxt in dict.fromkeys(inputs):
            graph.edges.append((id(nxt), id(fn)))
            stack.append(nxt)
    return graph


def layered_layout(graph: Graph) -> dict[int, tuple[float, float]]:
    """x = depth (longest path from a leaf), y = position within the layer, centred."""
    inputs = {node: [] for node in graph.labels}
    for src, dst in graph.edges:
        inputs[dst].append(src)
    depth: dict[int, int] = {}
    for start in graph.labels:  # iterative longest-path depth
        stack = [start]
        while stack:
            node = stack[-1]
            pending = [i for i in inputs[node] if i not in depth]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            depth[node] = 1 + max((depth[i] for i in inputs[node]), default=-1)
    layers: dict[int, list[int]] = {}
    for node in graph.labels:  # insertion order keeps the drawing stable
        layers.setdefault(depth[node], []).append(node)
    positions = {}
    for x, nodes in layers.items():
        for j, node in enumerate(nodes):
            positions[node] = (float(x), j - (len(nodes) - 1) / 2)
    return positions


def draw_graph(graph: Graph, ax=None, title: str | None = None):
    """Boxes for the nodes, arrows for the edges, columns by depth. Returns the Axes."""
    positions = layered_layout(graph)
    if ax is None:
        n_cols = 1 + max(x for x, _ in positions.values())
        n_rows = 1 + max(abs(y) for _, y in positions.values()) * 2
        _, ax = plt.subplots(figsize=(1.0 + 1.8 * n_cols, 1.0 + 1.1 * n_rows))
    boxes = {}
    for node, (x, y) in positions.items():
        boxes[node] = ax.text(
            x,
            y,
            graph.labels[node],
            ha="center",
            va="center",
            fontsize=8,
            bbox=dict(boxstyle="round,pad=0.4", fc=COLORS[graph.kinds[node]], ec="0.3"),
        )
    for src, dst in graph.edges:  # arrows clipped at the edges of the two boxes
        ax.annotate(
            "",
            xy=positions[dst],
            xytext=positions[src],
            arrowprops=dict(
                arrowstyle="-|>",
                color="0.4",
                patchA=boxes[src].get_bbox_patch(),
                patchB=boxes[dst].get_bbox_patch(),
                shrinkA=2,
                shrinkB=2,
            ),
        )
    xs = [x for x, _ in positions.values()]
    ys = [y for _, y in positions.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def draw_dag(root, ax=None, title: str | None = None, names: dict | None = None):
    """Draw the DAG of a :class:`Value` or of a torch tensor's ``grad_fn`` graph (whose leaf
    tensors are labelled with the names given in ``names``, e.g. ``{"w1": w1}``)."""
    if isinstance(root, Value):
        return draw_graph(value_graph(root), ax=ax, title=title)
    if isinstance(root, torch.Tensor):
        return draw_graph(grad_fn_graph(root, names), ax=ax, title=title)
    raise ValueError(f"root must be a Value or a torch.Tensor, got {type(root).__name__}")
