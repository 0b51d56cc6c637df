"""Elementwise fusion: connected elementwise nodes become one `Composite` node (chains,
several outputs, broadcasting, constants), never at the price of a cycle, of duplicated work,
of an output whose shape differs from the loop's, or of too many inputs; and every fused
graph computes what mode NONE computes (also an MLP's gradient, and random DAGs)."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.ops.composite import Composite, CompositeReduce, InplaceComposite
from tracesym.ops.elemwise import Elemwise
from tracesym.rewrite.fusion import MAX_INPUTS
from tracesym.trace.graph import Constant

NO_FUSION = ts.Mode().excluding("fusion")


def check(inputs, outputs, *values, mode="FAST_RUN", rtol=1e-13):
    """Compile with `mode` and with NONE, run both on copies of `values`, compare dtypes,
    shapes and values; check the arguments are left alone and that the rewritten graph is a
    DAG whose nodes all re-infer their own types.  Returns the `mode` function."""
    f = ts.function(inputs, outputs, mode=mode, on_unused_input="ignore")
    g = ts.function(inputs, outputs, mode="NONE", on_unused_input="ignore")
    kept = [np.array(v, copy=True) for v in values]
    got, want = f(*values), g(*kept)
    for v, k in zip(values, kept):
        np.testing.assert_array_equal(v, k)
    got, want = (got, want) if isinstance(outputs, (list, tuple)) else ([got], [want])
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-300, equal_nan=True)
    assert nx.is_directed_acyclic_graph(f.graph)
    for node in f.graph.apply_nodes():
        again = node.op.make_node(*node.inputs)
        assert [o.type for o in again.outputs] == [o.type for o in node.outputs], node.op
    return f


def composites(f):
    return [n for n in f.graph.apply_nodes() if isinstance(n.op, Composite)]


def elemwise(f):
    """Elementwise nodes left unfused."""
    return [n for n in f.graph.apply_nodes() if isinstance(n.op, Elemwise)]


def _u(*shape, seed=0):
    return np.random.default_rng(seed + 7 * len(shape) + sum(shape)).uniform(-2, 2, size=shape)


# -- what becomes one node ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_w1_is_one_node(dtype):
    x, y = ts.tensor(dtype, (None, None), "x"), ts.tensor(dtype, (None, None), "y")
    out = ts.sigmoid(x * y + 1.5) * ts.tanh(x) + ts.exp(-x * x)
    f = check([x, y], out, _u(3, 4).astype(dtype), _u(3, 4, seed=1).astype(dtype),
              rtol=1e-13 if dtype == "float64" else 1e-6)
    (node,) = f.graph.apply_nodes()
    assert isinstance(node.op, Composite) and node.inputs == [x, y]
    assert ("fuse_elemwise", str(node.op)) in f.graph.rewrite_log
    assert len(elemwise(ts.function([x, y], out, mode=NO_FUSION))) > 5


def test_a_long_chain_is_one_node():
    x = ts.dvector("x")
    y = x
    for k in range(40):
        y = ts.sin(y) * 0.9 + x if k % 2 else ts.tanh(y - 0.1)
    f = check([x], y, _u(6))
    (node,) = f.graph.apply_nodes()
    assert len(node.op.program.steps) >= 40


def test_a_value_read_outside_becomes_a_second_output():
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    t = x * y + 1.0
    f = check([x, y], [ts.exp(t) * x, t, ts.sum(t * 2.0)], _u(3, 2), _u(3, 2, seed=1))
    (node,) = composites(f)
    assert len(node.outputs) == 3  # exp(t) * x, t, t * 2 (read by the sum)
    assert len(f.graph.apply_nodes()) == 2


def test_constants_are_folded_into_the_program():
    x = ts.dvector("x")
    row = np.array([1.0, 2.0, 3.0])
    f = check([x], ts.exp(x * 2.0 + 1.0) * row - np.float64(3.0), _u(3))
    (node,) = composites(f)
    assert node.inputs[0] is x and len(node.inputs) == 2  # x and the row
    assert isinstance(node.inputs[1], Constant) and node.inputs[1].ndim == 1
    consts = {a[1] for st_ in node.op.program.steps for a in st_.args if a[0] == "const"}
    assert {2.0, 1.0, 3.0} <= consts


def test_a_composite_in_the_graph_fuses_with_its_neighbours():
    from tracesym.ops.composite import Program, Step

    p = Program(("float64",), (Step("exp", (("in", 0),), "float64"),), (("step", 0),))
    x = ts.dvector("x")
    f = check([x], Composite(p)(ts.sin(x)) * 2.0, _u(5))
    (node,) = f.graph.apply_nodes()
    assert [s.op for s in node.op.program.steps] == ["sin", "exp", "mul"]


def test_excluding_fusion_keeps_the_elemwise_nodes():
    x = ts.dvector("x")
    f = check([x], ts.exp(x) * 2.0 + 1.0, _u(3), mode=NO_FUSION)
    assert not composites(f) and len(elemwise(f)) == 3


# -- broadcasting and the loop's shape --------------------------------------------------------

def test_broadcast_inputs_fuse_also_with_run_time_size_one_dims():
    x, b, c = ts.dmatrix("x"), ts.dvector("b"), ts.dmatrix("c")
    out = ts.tanh(x * 2.0 + b) * c - b
    f = ts.function([x, b, c], out)
    (node,) = f.graph.apply_nodes()
    for xs, bs, cs in [((3, 4), (4,), (3, 4)), ((1, 4), (4,), (3, 1)), ((3, 1), (1,), (1, 5)),
                       ((1, 1), (1,), (1, 1)), ((0, 4), (4,), (1, 4))]:
        check([x, b, c], out, _u(*xs), _u(*bs, seed=1), _u(*cs, seed=2))


def test_an_output_is_kept_apart_when_the_loop_may_have_another_shape():
    """t = x + 1 is also returned; x may have size 1 where y has 5 at run time, so t and
    t * y need not have one shape: they stay two nodes.  With static sizes they fuse."""
    x, y = ts.dvector("x"), ts.dvector("y")
    t = ts.exp(x + 1.0)
    f = check([x, y], [t, t * y], _u(1), _u(5, seed=1))
    assert all(len(n.outputs) == 1 for n in f.graph.apply_nodes()) and len(f.graph.apply_nodes()) == 2
    xs, ys = ts.tensor("float64", (5,), "x"), ts.tensor("float64", (5,), "y")
    t = ts.exp(xs + 1.0)
    f = check([xs, ys], [t, t * ys], _u(5), _u(5, seed=1))
    (node,) = f.graph.apply_nodes()
    assert len(node.outputs) == 2


def test_an_input_read_only_by_an_inner_step_may_be_broadcast():
    """exp(b) is computed for every element of the loop: b's shape is no output's."""
    x, b = ts.dmatrix("x"), ts.dvector("b")
    f = check([x, b], x * ts.exp(b), _u(3, 4), _u(4, seed=1))
    (node,) = f.graph.apply_nodes()
    assert isinstance(node.op, Composite)


# -- dtypes and special values -----------------------------------------------------------------

def test_mixed_dtypes_give_numpy_dtypes():
    a, b, c = ts.tensor("int8", (None,), "a"), ts.fvector("b"), ts.tensor("int16", (None,), "c")
    outs = [(a * b + c) / 3, a * c + 1, (a > 2) & (c < 3), a.astype("float16") * 2.5]
    av, bv, cv = np.arange(-3, 3).astype("int8"), _u(6).astype("float32"), np.arange(6).astype("int16")
    f = check([a, b, c], outs, av, bv, cv, rtol=1e-6)
    got = f(av, bv, cv)
    with np.errstate(all="ignore"):
        want = [(av * bv + cv) / 3, av * cv + 1, (av > 2) & (cv < 3), av.astype("float16") * np.float16(2.5)]
    assert [g.dtype for g in got] == [w.dtype for w in want]


def test_integer_floor_division_and_modulo_follow_numpy_also_by_zero():
    a, b = ts.lvector("a"), ts.lvector("b")
    av, bv = np.array([7, -7, 7, -7, 0, 5]), np.array([2, 2, -3, -3, 0, 0])
    f = check([a, b], [(a // b) * 3 + a % b, (a + 1) % (b - 1)], av, bv)
    assert len(composites(f)) == 2 and not elemwise(f)  # two unconnected groups
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(f(av, bv)[0], (av // bv) * 3 + av % bv)


def test_nan_and_inf_propagate_as_unfused():
    x, y = ts.dvector("x"), ts.dvector("y")
    xv = np.array([0.0, -1.0, np.inf, -np.inf, np.nan, 1.0])
    yv = np.array([0.0, 0.0, 1.0, np.inf, 2.0, -np.inf])
    f = check([x, y], [ts.log(x) * y + ts.exp(y) / x, ts.maximum(x, y) - ts.sqrt(x * y)], xv, yv)
    assert len(composites(f)) == 2 and not elemwise(f)


# -- cycles, work, input limit -----------------------------------------------------------------

def test_a_diamond_through_a_reduction_is_not_contracted_into_a_cycle():
    """e = exp(x) feeds both sum(e) and e * sum(e): fusing e with the product would put the
    sum both before and after the fused node."""
    x = ts.dvector("x")
    e = ts.exp(x * 2.0)
    f = check([x], e / ts.sum(e) + 1.0, _u(4))
    assert len(composites(f)) + len(elemwise(f)) == 2


def test_a_diamond_through_a_matmul_fuses_both_sides_apart():
    x, w = ts.dmatrix("x"), ts.dmatrix("w")
    h = ts.tanh(x * 0.5 + 1.0)
    out = ts.sigmoid(ts.dot(h, w) * h + 2.0)
    f = check([x, w], out, _u(3, 3), _u(3, 3, seed=1))
    fused = composites(f)
    assert len(fused) == 2 and len(f.graph.apply_nodes()) == 3


def test_groups_that_reach_each_other_through_two_paths_stay_apart():
    """a1 -> b1 (directly) and b2 -> a2 (directly), with b2 computed from a sum of a1: the two
    groups {a1, a2} and {b1, b2} must not both form (the quotient would have a cycle)."""
    x, y = ts.dvector("x"), ts.dvector("y")
    a1 = ts.exp(x)
    b2 = ts.sin(y + ts.sum(a1))
    a2 = a1 * b2
    b1 = ts.cos(a1) + b2
    check([x, y], [a2 * 2.0, b1 * 3.0], _u(4), _u(4, seed=1))


def test_nothing_is_computed_twice():
    """A value with readers inside and outside the group is an output of the one fused node,
    never recomputed by a second node."""
    x = ts.dvector("x")
    t = ts.exp(x) * 3.0
    f = check([x], [t + 1.0, ts.sum(t), ts.cumsum(t)], _u(5))
    steps = [s.op for n in composites(f) for s in n.op.program.steps]
    assert steps.count("exp") == 1


def test_the_input_limit_is_respected():
    xs = [ts.dvector(f"x{k}") for k in range(MAX_INPUTS + 9)]
    total = xs[0]
    for x in xs[1:]:
        total = total + ts.exp(x)
    f = check(xs, total, *[_u(3, seed=k) for k in range(len(xs))])
    fused = composites(f)
    assert len(fused) >= 2 and all(len(n.inputs) <= MAX_INPUTS for n in fused)
    assert len(f.graph.apply_nodes()) <= 4


# -- in place -------------------------------------------------------------------------------------

def test_a_fused_node_overwrites_an_intermediate_nobody_else_reads():
    x, w = ts.dmatrix("x"), ts.dmatrix("w")
    d = ts.dot(x, w)
    f = check([x, w], ts.exp(d * 2.0 + 1.0) * ts.tanh(d), _u(3, 3), _u(3, 3, seed=1))
    (node,) = composites(f)
    assert isinstance(node.op, InplaceComposite) and node.op.destroy_map == {0: [0]}


def test_each_output_of_a_fused_node_may_overwrite_its_own_input():
    x, w = ts.tensor("float64", (3, 3), "x"), ts.tensor("float64", (3, 3), "w")
    d, e = ts.dot(x, w), ts.dot(w, x)
    t = ts.exp(d * 2.0) + e
    f = check([x, w], [t, ts.tanh(t) * e], _u(3, 3), _u(3, 3, seed=1))
    (node,) = composites(f)
    assert sorted(node.op.destroy_map.items()) in ([(0, [0]), (1, [1])], [(0, [1]), (1, [0])])


def test_a_fused_node_never_overwrites_what_is_read_later_or_broadcast():
    x, w, b = ts.dmatrix("x"), ts.dmatrix("w"), ts.dmatrix("b")
    d = ts.dot(x, w)
    r = ts.sum(d, axis=0, keepdims=True)  # (1, n): broadcast against b
    f = check([x, w, b], [ts.exp(d * 2.0) + b, ts.sum(d) * 1.0, ts.tanh(r * b)],
              _u(3, 3), _u(3, 3, seed=1), _u(3, 3, seed=2))
    for node in composites(f):
        for pos in (p for ps in node.op.destroy_map.values() for p in ps):
            assert node.inputs[pos].owner is not None and node.inputs[pos].broadcastable == (False, False)
            assert node.inputs[pos] is not d


# -- reductions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda x, y: ts.sum(x * y),
    lambda x, y: ((x * 2 + 1) ** 2).sum(),
    lambda x, y: ts.max(ts.exp(x) - y, axis=1),
    lambda x, y: ts.sum(ts.tanh(x + y), axis=0, keepdims=True),
    lambda x, y: ts.any(x > y, axis=0),
    lambda x, y: ts.prod(x * 0.5 + 1.0, axis=1, dtype="float32"),
])
def test_a_reduction_of_elementwise_values_is_one_node(make):
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    f = check([x, y], make(x, y), _u(3, 4), _u(3, 4, seed=1), rtol=1e-6)
    (node,) = f.graph.apply_nodes()
    assert isinstance(node.op, CompositeReduce) and node.inputs == [x, y][:len(node.inputs)]


def test_a_reduction_with_broadcast_inputs_fuses():
    x, b = ts.dmatrix("x"), ts.dvector("b")
    f = check([x, b], ts.sum((x - b) ** 2, axis=1), _u(5, 3), _u(3, seed=1))
    (node,) = f.graph.apply_nodes()
    assert isinstance(node.op, CompositeReduce)
    check([x, b], ts.sum((x - b) ** 2, axis=1), _u(1, 3), _u(1, seed=1))


def test_a_reduction_leaves_a_value_that_is_read_elsewhere():
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    t = ts.exp(x * y)
    f = check([x, y], [ts.sum(t), t + 1.0], _u(3, 2), _u(3, 2, seed=1))
    assert not any(isinstance(n.op, CompositeReduce) for n in f.graph.apply_nodes())
    f = check([x, y], [ts.sum(t), t], _u(3, 2), _u(3, 2, seed=1))
    assert not any(isinstance(n.op, CompositeReduce) for n in f.graph.apply_nodes())


# -- gradients ---------------------------------------------------------------------------------------

def test_an_mlp_gradient_fuses_and_computes_what_none_computes():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
    params = [rng.normal(size=(5, 4)) * 0.5, rng.normal(size=4) * 0.1, rng.normal(size=(4, 3)) * 0.5,
              rng.normal(size=3) * 0.1]
    results = []
    for mode in ("FAST_RUN", "NONE"):
        W1, b1, W2, b2 = [ts.shared(p.copy(), name=n) for p, n in zip(params, ["W1", "b1", "W2", "b2"])]
        x, y = ts.dmatrix("x"), ts.lvector("y")
        h = ts.tanh(ts.dot(x, W1) + b1)
        z = ts.sigmoid(ts.dot(h, W2) + b2) * 2.0 - 1.0
        p = ts.softmax(z)
        cost = -ts.mean(ts.log(p)[ts.arange(y.shape[0]), y]) + 1e-3 * ts.sum(W1 ** 2)
        grads = ts.grad(cost, [W1, b1, W2, b2])
        f = ts.function([x, y], [cost] + grads, mode=mode,
                        updates=[(v, v - 0.1 * g) for v, g in zip([W1, b1, W2, b2], grads)])
        outs = [f(X, Y) for _ in range(3)]
        results.append((f, outs, [v.get_value() for v in (W1, b1, W2, b2)]))
    (f, outs, vals), (g, outs0, vals0) = results
    for a, b in zip([o for out in outs for o in out] + vals, [o for out in outs0 for o in out] + vals0):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    unfused = ts.function([x, y], [cost] + grads, mode=NO_FUSION)
    assert len(composites(f)) >= 8
    assert len(composites(f) + elemwise(f)) <= len(elemwise(unfused)) // 2
    assert nx.is_directed_acyclic_graph(f.graph)


# -- random DAGs ------------------------------------------------------------------------------------

UNARY = [ts.tanh, ts.exp, ts.neg, lambda v: v * 0.5, lambda v: v + 1.0, ts.sigmoid, ts.sin,
         lambda v: ts.sum(v, axis=0, keepdims=True), lambda v: v.T, lambda v: ts.abs(v) ** 0.5]
BINARY = [ts.add, ts.sub, ts.mul, ts.maximum, lambda a, b: ts.where(a > b, a, b * 0.25),
          lambda a, b: a / (ts.abs(b) + 1.0), lambda a, b: ts.dot(a + ZEROS, b + ZEROS) * 0.1]
ZEROS = np.zeros((3, 3))  # broadcasts any operand to 3x3 for the matmul


@st.composite
def dags(draw):
    """Steps over leaves x, y (3x3 or unknown), a row r (1x3 at run time) and a vector v,
    reading earlier results by how far back they are, so chains and diamonds are common;
    reductions, transposes and matmuls between elementwise nodes make paths that fusion
    must not turn into cycles."""
    static = draw(st.booleans())
    steps, size = [], 4
    for _ in range(draw(st.integers(3, 16))):
        if draw(st.booleans()):
            steps.append(("u", draw(st.integers(0, len(UNARY) - 1)), draw(st.integers(0, size - 1))))
        else:
            steps.append(("b", draw(st.integers(0, len(BINARY) - 1)), draw(st.integers(0, size - 1)),
                          draw(st.integers(0, size - 1))))
        size += 1
    outs = draw(st.lists(st.integers(0, 30), max_size=3))
    return steps, outs, static


@given(dags())
def test_random_dags_compute_what_none_computes(case):
    steps, outs, static = case
    shape = (3, 3) if static else (None, None)
    x, y = ts.tensor("float64", shape, "x"), ts.tensor("float64", shape, "y")
    r, v = ts.dmatrix("r"), ts.dvector("v")
    pool = [x, y, r, v]
    for step in steps:
        args = [pool[-1 - i] for i in step[2:]]
        pool.append(UNARY[step[1]](*args) if step[0] == "u" else BINARY[step[1]](*args))
    made = pool[4:]
    outputs = [made[-1]] + [made[i % len(made)] for i in outs]
    rng = np.random.default_rng(len(steps))
    vals = [rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), rng.normal(size=(1, 3)), rng.normal(size=3)]
    check([x, y, r, v], outputs, *vals, rtol=1e-11)
