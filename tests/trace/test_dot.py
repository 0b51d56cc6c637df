"""`ts.printing.to_dot`: Graphviz DOT text checked without a DOT parser (node and edge
counts, labels, styles), hidden intermediates, updates, inner graphs as clusters, writing
files, and `_repr_svg_` with and without a (fake) Graphviz `dot` program."""

import re
import sys

import numpy as np
import pytest

import tracesym as ts
from tracesym.trace.graph import Apply
from tracesym.trace.printing import STYLES, to_dot, to_svg
from tracesym.trace.types import TensorType

NODE = re.compile(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)", (.*)\];$')
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+)(?: \[(.*)\])?;$")


def parts(text):
    """({id: (label, attributes)}, [(src, dst, attributes)]) from DOT text."""
    nodes, edges = {}, []
    for line in text.splitlines():
        if m := NODE.match(line):
            nodes[m[1]] = (m[2].replace("\\n", "\n"), m[3])
        elif m := EDGE.match(line):
            edges.append((m[1], m[2], m[3] or ""))
    return nodes, edges


def by_label(nodes, first_line):
    """The one node whose label starts with this line."""
    [nid] = [k for k, (label, _) in nodes.items() if label.split("\n")[0] == first_line]
    return nid


def example():
    x = ts.dmatrix("x")
    W = ts.shared(np.ones((3, 2)), name="W")
    h = ts.tanh(x @ W)
    h.name = "h"
    return x, W, h, h + 2.0


def test_every_variable_and_apply_is_a_node_and_every_use_an_edge():
    x, W, h, y = example()
    text = to_dot(y)
    assert text.startswith('digraph "tracesym" {\n') and text.endswith("}\n")
    nodes, edges = parts(text)
    assert len(nodes) == 3 + 6  # MatMul, tanh, add; x, W, 2.0, the dot's result, h, y
    assert len(edges) == 5 + 3  # inputs of the three Ops, and their outputs
    kinds = {label: attrs for label, attrs in nodes.values()}
    assert kinds["x\nfloat64[?,?]"] == STYLES["input"]
    assert kinds["W\nfloat64[?,?]"] == STYLES["shared"]
    assert kinds["2.0\nfloat64[]"] == STYLES["constant"]
    assert kinds["h\nfloat64[?,?]"] == STYLES["variable"]  # a named intermediate
    assert kinds["output 0\nfloat64[?,?]"] == STYLES["output"]
    assert kinds["MatMul"] == kinds["Elemwise{tanh}"] == kinds["Elemwise{add}"] == STYLES["apply"]
    assert "shape=box" in STYLES["input"] and "ellipse" in STYLES["apply"]
    add, mm = by_label(nodes, "Elemwise{add}"), by_label(nodes, "MatMul")
    assert (by_label(nodes, "h"), add, 'label="0"') in edges
    assert (by_label(nodes, "2.0"), add, 'label="1"') in edges
    assert (by_label(nodes, "x"), mm, 'label="0"') in edges and (by_label(nodes, "W"), mm, 'label="1"') in edges
    assert (add, by_label(nodes, "output 0"), "") in edges


def test_hide_unnamed_joins_apply_nodes_with_typed_edges():
    x, W, h, y = example()
    nodes, edges = parts(to_dot(y, hide_unnamed=True))
    assert len(nodes) == 3 + 5  # the dot's unnamed result is gone; h (named) and y stay
    mm, tanh = by_label(nodes, "MatMul"), by_label(nodes, "Elemwise{tanh}")
    assert (mm, tanh, 'label="float64[?,?]"') in edges
    assert "float64[?,?]" not in [label for label, _ in nodes.values()]
    nodes, edges = parts(to_dot(ts.exp(ts.exp(x) * 2.0), hide_unnamed=True))
    exp1, mul = sorted(k for k, (label, _) in nodes.items() if label in ("Elemwise{exp}", "Elemwise{mul}"))[:2]
    assert (exp1, mul, 'label="0: float64[?,?]"') in edges  # position and type


def test_a_function_draws_its_rewritten_graph_and_its_updates():
    x, W, h, y = example()
    f = ts.function([x], y, updates=[(W, W * 0.5)], mode="FAST_COMPILE", name="step")
    text = to_dot(f)
    assert text.startswith('digraph "step" {')
    nodes, edges = parts(text)
    new, w = by_label(nodes, "update W"), by_label(nodes, "W")
    assert (new, w, 'style=dashed, label="update", constraint=false') in edges
    assert nodes[new][1] == STYLES["output"]
    assert to_dot(f) == to_dot(f.graph)
    g = ts.function([x], ts.log(1 + x))  # FAST_RUN: the drawing shows what runs
    assert "Elemwise{log}" not in to_dot(g) and "log1p" in to_dot(g)


def test_labels_are_quoted():
    x = ts.dvector('we"ird\\name')
    assert 'n0 [label="we\\"ird\\\\name\\nfloat64[?]", ' in to_dot(x * 2.0)


def test_the_text_is_deterministic_and_linear_in_a_deep_graph():
    def build():
        x = ts.dvector("x")
        y = x
        for _ in range(1100):  # deeper than the recursion limit
            y = ts.tanh(y) + 1.0
        return y

    a = to_dot(build())
    assert a == to_dot(build())
    nodes, edges = parts(a)
    assert len(nodes) == 2200 + 2200 + 1 + 1100 and len(edges) == 1100 * 5


class Loop:
    """A duck-typed Op holding an inner graph (the protocol scan follows)."""

    def __init__(self, inner_inputs, inner_outputs, name="Loop"):
        self.inner_inputs, self.inner_outputs, self.name = inner_inputs, inner_outputs, name

    def __str__(self):
        return self.name


def nested():
    x = ts.dvector("x")
    x_t, h = ts.dvector("x_t"), ts.dvector("h")
    inner = Apply(Loop([h], [ts.tanh(h)], "InnerLoop"), [x_t], [TensorType("float64", (None,)).make_variable()])
    outer = Apply(Loop([x_t], [ts.exp(x_t) * 2.0, inner.outputs[0]]), [x],
                  [TensorType("float64", (None,)).make_variable() for _ in range(2)])
    return outer.outputs


def test_an_inner_graph_is_a_cluster_and_nests():
    text = to_dot(nested())
    nodes, edges = parts(text)
    assert len(nodes) == 4 + 8 + 3  # outer: x, Loop, 2 outputs; Loop's body; InnerLoop's body
    ids = {label: k for k, (label, _) in nodes.items()}
    loop, inner_loop, x_t = ids["Loop"], ids["InnerLoop"], ids["inner input 0\nx_t\nfloat64[?]"]
    assert "inner input 0\nh\nfloat64[?]" in ids
    assert "inner output 0\nfloat64[?]" in ids and "inner output 1\nfloat64[?]" in ids
    assert text.count("subgraph cluster_") == 2
    outer_start = text.index(f"  subgraph cluster_{loop} {{\n    label=\"inner graph of Loop\"")
    inner_start = text.index(f"    subgraph cluster_{inner_loop} {{\n      label=\"inner graph of InnerLoop\"")
    assert outer_start < inner_start < text.index("\n  }\n")  # nested inside the outer cluster
    assert (x_t, inner_loop, "") in edges  # the outer body feeds the InnerLoop
    assert (loop, x_t, f"lhead=cluster_{loop}, style=dotted, arrowhead=none") in edges


def test_writing_files(tmp_path, monkeypatch):
    x, W, h, y = example()
    path = tmp_path / "g.dot"
    assert to_dot(y, path) == path.read_text()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(RuntimeError, match="needs Graphviz's `dot` program"):
        to_dot(y, tmp_path / "g.svg")
    fake_dot(tmp_path, monkeypatch)
    to_dot(y, str(tmp_path / "g.SVG"))
    assert (tmp_path / "g.SVG").read_text().startswith("<svg>-Tsvg digraph")


def fake_dot(tmp_path, monkeypatch, fail=False):
    """A `dot` program on PATH that echoes its arguments and the input's first word."""
    exe = tmp_path / "bin" / "dot"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f"#!{sys.executable}\nimport sys\n"
                   + ("sys.exit(1)\n" if fail else "")
                   + "text = sys.stdin.read()\n"
                   "sys.stdout.write('<svg>' + ' '.join(sys.argv[1:]) + ' ' + text.split()[0] + '</svg>')\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(exe.parent))


def test_repr_svg_with_and_without_graphviz(tmp_path, monkeypatch):
    x = ts.dvector("x")
    f = ts.function([x], x * 2.0)

    @ts.compile
    def g(x):
        return x * 2.0

    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert f._repr_svg_() is None and to_svg(f) is None  # never an error
    fake_dot(tmp_path, monkeypatch)
    assert f._repr_svg_() == "<svg>-Tsvg digraph</svg>"
    assert g._repr_svg_() is None  # not called yet: no graph to draw
    g(np.ones(2))
    assert g._repr_svg_() == "<svg>-Tsvg digraph</svg>"
    fake_dot(tmp_path, monkeypatch, fail=True)
    assert f._repr_svg_() is None


def test_exported_as_ts_printing():
    assert ts.printing.to_dot is to_dot and ts.printing.debugprint is ts.debugprint
    assert ts.printing.to_svg is to_svg
    with pytest.raises(TypeError, match="got int"):
        to_dot(3)
