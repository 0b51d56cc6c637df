"""Variables, Apply nodes and the networkx Graph: structure, order, ancestors, replacement."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.trace.graph import (Apply, Constant, Graph, Variable, ancestors, applies_between,
                                  as_variable, clone_replace, leaves)


def _chain():
    x, y = ts.dvector("x"), ts.dvector("y")
    a = x * 2.0
    b = ts.exp(a)
    c = b + y
    return x, y, a, b, c


def test_variables_and_apply_nodes():
    x, y, a, b, c = _chain()
    assert isinstance(a.owner, Apply) and a.owner.outputs == [a] and a.index == 0
    assert a.owner.inputs[0] is x and isinstance(a.owner.inputs[1], Constant)
    assert x.owner is None and x.name == "x"
    assert a.owner.out is a
    assert repr(a.owner) == "Elemwise{mul}(x: float64[?], 2.0: float64[])"
    assert a.label() == "Elemwise{mul}.out"
    assert x.id < a.id < b.id  # ids grow in creation order


def test_function_graph_is_a_networkx_dag():
    x, y, a, b, c = _chain()
    f = ts.function([x, y], c, mode="NONE")
    g = f.graph
    assert isinstance(g, nx.DiGraph) and isinstance(g, Graph)
    assert nx.is_directed_acyclic_graph(g)
    assert g.inputs == [x, y] and g.outputs == [c]
    applies = g.apply_nodes()
    assert {n.op.scalar_op.name for n in applies} == {"mul", "exp", "add"}
    assert len(g.variables()) == 6  # x, y, 2.0, a, b, c
    # var -> apply edges carry input positions, apply -> var edges the output index
    assert g.edges[x, a.owner]["positions"] == [0]
    assert g.edges[a.owner, a]["index"] == 0
    assert g.nodes[a.owner]["kind"] == "apply" and g.nodes[x]["kind"] == "variable"
    assert set(g.successors(b)) == {c.owner}
    assert g.clients(b) == [(c.owner, 0)]
    assert repr(g) == "Graph(2 inputs, 1 outputs, 3 apply nodes)"


def test_a_variable_used_twice_by_one_node():
    x = ts.dvector("x")
    y = x * x
    g = ts.function([x], y, mode="NONE").graph
    assert g.edges[x, y.owner]["positions"] == [0, 1]
    assert g.clients(x) == [(y.owner, 0), (y.owner, 1)]


def test_toposort_respects_dependencies():
    x, y, a, b, c = _chain()
    d = c * a
    g = ts.function([x, y], [d, b], mode="NONE").graph
    order = g.toposort()
    assert [n.op.scalar_op.name for n in order] == ["mul", "exp", "add", "mul"]
    pos = {id(n): i for i, n in enumerate(order)}
    for n in order:
        for v in n.inputs:
            if v.owner is not None:
                assert pos[id(v.owner)] < pos[id(n)]
    # networkx agrees that the order is topological
    apply_order = [n for n in nx.topological_sort(g) if isinstance(n, Apply)]
    assert set(map(id, apply_order)) == set(pos)


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100), st.sampled_from(["add", "mul"])),
                min_size=1, max_size=25))
def test_toposort_random_dags(steps):
    x = ts.dvector("x")
    vs = [x]
    for i, j, op in steps:
        a, b = vs[i % len(vs)], vs[j % len(vs)]
        vs.append(a + b if op == "add" else a * b)
    g = Graph([x], [vs[-1]])
    order = g.toposort()
    seen = set()
    for n in order:
        assert all(v.owner is None or id(v.owner) in seen for v in n.inputs)
        seen.add(id(n))
    assert order == applies_between([x], [vs[-1]])  # deterministic
    assert nx.is_directed_acyclic_graph(g)


def test_networkx_ancestors_and_graph_helpers():
    x, y, a, b, c = _chain()
    g = ts.function([x, y], c, mode="NONE").graph
    anc = nx.ancestors(g, b)
    assert x in anc and a in anc and a.owner in anc and y not in anc
    assert nx.descendants(g, y) == {c.owner, c}
    assert set(ancestors([b])) == {b, a, x, a.owner.inputs[1]}
    assert set(ancestors([c], blockers=[b])) == {c, b, y}
    # networkx operations that rebuild the graph class work on it
    assert g.copy().number_of_nodes() == g.number_of_nodes()
    assert g.subgraph([x, a.owner, a]).number_of_edges() == 2
    assert g.reverse().has_edge(a, a.owner)


def test_leaves_in_first_use_order():
    x, y, a, b, c = _chain()
    W = ts.shared(np.zeros(2), name="W")
    out = c + W
    ls = leaves([x, y], [out])
    assert ls[0] is x and isinstance(ls[1], Constant) and ls[2] is y and ls[3] is W
    # stopping at an intermediate makes it a leaf
    assert leaves([b], [c]) == [b, y]


def test_clone_replace():
    x, y, a, b, c = _chain()
    z = ts.dvector("z")
    (new_c,) = clone_replace([c], {x: z})
    assert new_c is not c and ancestors([new_c]).count(z) == 1 and x not in ancestors([new_c])
    assert y in ancestors([new_c])  # untouched branches are shared, not copied
    assert c.owner.inputs[0] is b and b.owner.inputs[0] is a  # the original is unchanged
    f = ts.function([z, y], new_c)
    np.testing.assert_allclose(f(np.array([1.0]), np.array([1.0])), np.exp(2.0) + 1)


def test_clone_replace_reinfers_types():
    x = ts.dvector("x")
    y = ts.exp(x) + 1
    y.name = "y"
    fixed = ts.tensor("float64", shape=(3,), name="fixed")
    (new_y,) = clone_replace([y], {x: fixed})
    assert new_y.type.shape == (3,) and y.type.shape == (None,)
    assert new_y.name == "y" and new_y.source == y.source


def test_clone_replace_of_an_output_itself():
    x, y = ts.dvector("x"), ts.dvector("y")
    assert clone_replace([x], {x: y}) == [y]


def test_as_variable_and_floatx_constants():
    assert as_variable(1.5).dtype == "float64"
    assert as_variable(3).dtype == "int64"
    assert as_variable(True).dtype == "bool"
    assert as_variable(np.float32(1)).dtype == "float32"
    with ts.config.change(floatX="float32"):
        assert as_variable(1.5).dtype == "float32"
        assert as_variable(np.float64(1.5)).dtype == "float64"  # numpy scalars keep their dtype
        assert as_variable([1.5, 2.5]).dtype == "float64"  # only lone Python floats
        assert ts.constant(0.5).dtype == "float32"
    x = ts.dvector("x")
    assert as_variable(x) is x
    with pytest.raises(TypeError, match="expected a float32 variable, got float64"):
        as_variable(x, "float32")
    with pytest.raises(TypeError, match="cannot make a tensor constant from str"):
        as_variable("abc")


def test_constants_are_read_only_and_labelled_by_value():
    c = ts.constant(np.array([1.0, 2.0]))
    assert not c.data.flags.writeable
    assert c.label() == "[1.0, 2.0]"
    assert ts.constant(2.0).label() == "2.0"
    assert ts.constant(np.float32(0.1)).label() == "0.1"
    assert ts.constant(np.arange(10)).label() == "Constant<int64[10]>"
    assert ts.constant(np.arange(2), name="idx").label() == "idx"
    assert c.signature() == ts.constant(np.array([1.0, 2.0])).signature()
    assert c.clone() is c


def test_variable_clone_is_a_fresh_leaf():
    x = ts.dvector("x")
    y = ts.exp(x)
    y.tag.note = "kept"
    cp = y.clone()
    assert cp.owner is None and cp.type == y.type and cp.name == y.name and cp.tag.note == "kept"
    cp.tag.note = "changed"
    assert y.tag.note == "kept"


def test_bool_of_a_symbolic_variable():
    x = ts.dvector("x")
    with pytest.raises(ts.TracerBoolConversionError, match=r"ts.where\(cond, a, b\)"):
        bool(Variable.__bool__(x))
    with pytest.raises(ts.TracerBoolConversionError):
        if x > 0:
            pass


def test_hashing_is_by_identity():
    x = ts.dvector("x")
    y = ts.dvector("x")
    assert len({x, y, x}) == 2
