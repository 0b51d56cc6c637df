"""Shape rewrites: `f(x).shape` is computed from the inputs' shapes without running `f`, with
static sizes as constants; a size mismatch that `f` would have raised still raises (a
`CheckSizes` node); Ops that may fail otherwise are kept; the sums a gradient adds for dims
that might be broadcast go where the graph proves they are not.  Every result is compared
with mode NONE, on good and on mismatched sizes."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError
from tracesym.ops.blas import MatMul
from tracesym.ops.checks import CheckSizes
from tracesym.ops.elemwise import Elemwise
from tracesym.ops.reduce import Reduce
from tracesym.ops.shape import BroadcastTo, Concatenate, DimShuffle, Reshape, SumToShape
from tracesym.trace.graph import ancestors


def op_types(f):
    return {type(n.op) for n in f.graph.apply_nodes()}


def outcome(f, values):
    """The function's results as a list, or the type of the error it raised."""
    try:
        out = f(*values)
    except OpRuntimeError as e:
        return type(e)
    return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


def agrees_with_none(inputs, outputs, cases, failing=None):
    """Compile with and without rewrites; on each list of values both give equal results or
    both raise (`failing`: how many of the cases mode NONE must fail on).  Returns the
    rewritten function."""
    f = ts.function(inputs, outputs, on_unused_input="ignore")
    g = ts.function(inputs, outputs, on_unused_input="ignore", mode="NONE")
    failed = 0
    for values in cases:
        got, want = outcome(f, values), outcome(g, values)
        if isinstance(want, type):
            assert got is want, (values, got)
            failed += 1
            continue
        assert len(got) == len(want)
        for a, b in zip(got, want):
            if np.asarray(b).dtype.kind == "f" and ts.config.linker == "c":
                np.testing.assert_allclose(a, b, rtol=1e-13)  # a fused C sum adds in another order
            else:
                np.testing.assert_array_equal(a, b)
    assert failing is None or failed == failing
    return f


def ones(*shapes):
    return [np.ones(s) for s in shapes]


def test_shape_of_a_product_needs_no_product():
    x, w = ts.dmatrix("x"), ts.dmatrix("w")
    f = agrees_with_none([x, w], (x @ w).shape, [ones((2, 3), (3, 5)), ones((0, 3), (3, 1)),
                                                 ones((2, 3), (4, 5))], failing=1)
    assert MatMul not in op_types(f)
    with pytest.raises(OpRuntimeError, match=r"MatMul: shapes are not aligned: 3 .* != 4"):
        f(*ones((2, 3), (4, 5)))


def test_shape_of_elementwise_is_its_input_shape():
    x = ts.dmatrix("x")
    f = agrees_with_none([x], ts.exp(x).shape[0], [ones((4, 2))])
    assert [type(n.op).__name__ for n in f.graph.apply_nodes()] == ["ShapeI"]
    assert f.graph.outputs[0].owner.inputs[0] is x


def test_static_sizes_become_constants():
    x = ts.tensor("float64", (None, 5), name="x")
    w = ts.tensor("float64", (5, 7), name="w")
    f = agrees_with_none([x, w], [(x @ w).shape[1], ts.tanh(x @ w).shape], [ones((3, 5), (5, 7))])
    assert MatMul not in op_types(f) and Elemwise not in op_types(f)
    assert f.graph.outputs[0].owner is None and int(f.graph.outputs[0].data) == 7


BROADCASTING = [ones((2, 3), (1, 3), (3,)), ones((1, 1), (2, 1), (4,)), ones((2, 3), (4, 3), (3,)),
                ones((2, 3), (2, 3), (2,)), ones((0, 3), (1, 3), (1,)), ones((2, 0), (2, 1), (0,))]


def test_broadcast_shape_keeps_the_broadcasting_error():
    x, y, v = ts.dmatrix("x"), ts.dmatrix("y"), ts.dvector("v")
    f = agrees_with_none([x, y, v], (x * y + v).shape, BROADCASTING, failing=2)
    assert not any(isinstance(n.op, Elemwise) and n.op.scalar_op.name in ("add", "mul")
                   for n in f.graph.apply_nodes())
    assert CheckSizes in op_types(f)
    with pytest.raises(OpRuntimeError, match="input 1 has size 4 in dim 0, which does not broadcast to 2"):
        f(*ones((2, 3), (4, 3), (3,)))


def test_no_check_where_nothing_can_mismatch():
    x = ts.dmatrix("x")
    f = agrees_with_none([x], (ts.exp(x) * 2.0 + 1.0).T.shape, [ones((2, 3))])
    assert CheckSizes not in op_types(f) and Elemwise not in op_types(f)


@pytest.mark.parametrize("build,cases,op", [
    (lambda x, n: x.reshape((n, -1)).shape, [(np.ones((4, 6)), 3), (np.ones((4, 6)), 5),
                                             (np.ones((0, 6)), 2)], Reshape),
    (lambda x, n: x.reshape((n, 2, 3)).shape, [(np.ones((4, 6)), 4), (np.ones((4, 6)), 2)], Reshape),
    (lambda x, n: ts.squeeze(x, 1).shape, [(np.ones((3, 1)), 0), (np.ones((3, 2)), 0)], DimShuffle),
    (lambda x, n: ts.concatenate([x, x.T], axis=0).shape, [(np.ones((3, 3)), 0), (np.ones((2, 3)), 0)],
     Concatenate),
    (lambda x, n: ts.broadcast_to(x, (n, 2, 3)).shape, [(np.ones((1, 3)), 4), (np.ones((2, 2)), 4)],
     BroadcastTo),
    (lambda x, n: ts.sum(x[1:, ::2], axis=0).shape, [(np.ones((4, 5)), 0), (np.ones((0, 1)), 0)], Reduce),
])
def test_shape_ops_agree_on_good_and_bad_sizes(build, cases, op):
    """The measured Op is gone; where it would have failed, the function still fails."""
    x, n = ts.dmatrix("x"), ts.lscalar("n")
    f = agrees_with_none([x, n], build(x, n), [[a, np.int64(b)] for a, b in cases],
                         failing=0 if op is Reduce else 1)
    assert not any(isinstance(node.op, op) and node.inputs[0].dtype == "float64"
                   for node in f.graph.apply_nodes())


def test_ops_that_may_fail_otherwise_are_kept():
    """`max` over an empty axis raises: its shape is not taken without running it; an integer
    index may be out of range."""
    x, i = ts.dmatrix("x"), ts.lscalar("i")
    f = agrees_with_none([x], ts.max(x, axis=0).shape, [ones((3, 2)), ones((0, 2))])
    assert Reduce in op_types(f)
    f = agrees_with_none([x, i], x[i].shape, [[np.ones((3, 2)), np.int64(1)], [np.ones((3, 2)), np.int64(5)]])
    assert len(f.graph.apply_nodes()) > 1


def test_values_computed_anyway_are_measured_cheaply():
    """Where the Op runs anyway its size comes from an input only when that is one `ShapeI`
    (a broadcast formula would cost more than reading the result's shape)."""
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    e = ts.exp(x)
    f = agrees_with_none([x], [e.sum(), e.shape[1]], [ones((2, 3))])
    assert f.graph.outputs[1].owner.inputs[0] is x
    s = x + y
    f = agrees_with_none([x, y], [s.sum(), s.shape[0]], [ones((2, 3), (1, 3)), ones((2, 3), (3, 3))])
    assert CheckSizes not in op_types(f)


def test_gradient_sums_over_dims_proven_equal_are_removed():
    """d sum(x @ W) / dW sums over W's dims only where they might be broadcast: x @ W in the
    same graph proves x.shape[1] == W.shape[0], so no SumToShape is left."""
    x, W = ts.dmatrix("x"), ts.dmatrix("W")
    g = ts.grad(ts.sum(ts.tanh(x @ W)), W)
    assert any(v.owner is not None and isinstance(v.owner.op, SumToShape) for v in ancestors([g]))
    f = agrees_with_none([x, W], g, [ones((2, 3), (3, 4))])
    assert SumToShape not in op_types(f)
    b = ts.dmatrix("b")  # b may be (1, n): its gradient must still be summed
    gb = ts.grad(ts.sum(ts.tanh(x @ W + b)), b)
    f = agrees_with_none([x, W, b], gb, [ones((2, 3), (3, 4), (1, 4)), ones((2, 3), (3, 4), (2, 4))])
    assert SumToShape in op_types(f)


def test_graphs_verify_after_every_phase(checked_rewrites):
    x, w, v = ts.dmatrix("x"), ts.dmatrix("w"), ts.dvector("v")
    out = [(x @ w + v).shape, ts.grad(ts.sum(ts.tanh(x @ w) * v), [w, v])[0]]
    agrees_with_none([x, w, v], out, [ones((2, 3), (3, 4), (4,)), ones((2, 3), (3, 4), (5,))])


def test_no_check_where_a_product_computed_anyway_equates_the_sizes():
    x, w = ts.dmatrix("x"), ts.dmatrix("w")
    f = agrees_with_none([x, w], [(x @ w).shape, ts.sum(x @ ts.exp(w))],
                         [ones((2, 3), (3, 5)), ones((2, 3), (4, 5))], failing=1)
    assert CheckSizes not in op_types(f)
    assert sum(isinstance(n.op, MatMul) for n in f.graph.apply_nodes()) == 1
