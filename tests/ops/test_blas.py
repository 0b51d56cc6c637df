"""Matrix products against numpy: matmul (`@`, batched broadcasting, 1-d promotion), dot,
tensordot, inner, vdot, outer.  Dtypes (integers and booleans too), zero-size and unknown
static shapes, static output types, shapes inferred without the product, errors at trace time
and at run time, gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops.blas import Gemm, Gemv, Ger, MatMul
from tracesym.ops.shape import shape_i
from tracesym.trace.graph import ancestors


def run(inputs, out, *values):
    return ts.function(inputs, out, on_unused_input="ignore")(*values)


def check(got, expected, tol=0.0):
    expected = np.asarray(expected)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if tol:
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, expected)


def data(shape, dtype, rng):
    if np.dtype(dtype) == bool:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(-3, 4, shape).astype(dtype) if np.dtype(dtype).kind != "u" else \
        rng.integers(0, 4, shape).astype(dtype)


def tol_for(dtype):
    return {"float16": 1e-2, "float32": 1e-5, "float64": 1e-12}.get(np.dtype(dtype).name, 0.0)


def has_op(var, op_class):
    return any(v.owner is not None and isinstance(v.owner.op, op_class) for v in ancestors([var]))


SHAPES = [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 1, 3, 4), (5, 4, 2)),
          ((3,), (2, 3, 4)), ((2, 4, 3), (3,)), ((1, 2, 3), (4, 3, 2)), ((0, 3), (3, 2)),
          ((2, 0), (0, 3)), ((2, 3), (3, 0)), ((0, 2, 3), (3, 1))]
DTYPES = [("float64", "float64"), ("float32", "float32"), ("float32", "int64"), ("int8", "uint8"),
          ("int64", "int64"), ("bool", "bool"), ("float16", "float32")]


@pytest.mark.parametrize("dtypes", DTYPES)
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_matmul_matches_numpy(sa, sb, dtypes, rng):
    a, b = data(sa, dtypes[0], rng), data(sb, dtypes[1], rng)
    expected = np.matmul(a, b)
    for static in (True, False):
        x = ts.tensor(dtypes[0], sa if static else (None,) * len(sa))
        y = ts.tensor(dtypes[1], sb if static else (None,) * len(sb))
        out = x @ y
        assert isinstance(out.owner.op, MatMul)
        assert out.dtype == expected.dtype.name
        if static:
            assert out.type.shape == expected.shape
        check(run([x, y], out, a, b), expected, tol_for(expected.dtype))


def test_matmul_static_shapes_and_broadcast_of_unknown_size_one(rng):
    x = ts.tensor("float32", (None, None, 3, 4))
    w = ts.tensor("float32", (4, 10))
    assert (x @ w).type.shape == (None, None, 3, 10)
    b = ts.tensor("float32", (7, 1, 4, 2))
    assert (x @ b).type.shape == (7, None, 3, 2)
    v = ts.tensor("float32", (None,))
    assert (v @ w).type.shape == (10,)
    assert (w.T @ v).type.shape == (10,)
    # a batch dim of unknown static size that is 1 at run time broadcasts
    y = ts.tensor("float64", (None, None, None))
    z = ts.tensor("float64", (None, None, None))
    av, bv = rng.uniform(size=(1, 2, 3)), rng.uniform(size=(4, 3, 5))
    check(run([y, z], y @ z, av, bv), av @ bv, 1e-12)


def test_matmul_shape_needs_no_product():
    """`(x @ w).shape` is computed from the operands' shapes, not from the product."""
    x, w = ts.tensor("float32", (None, None, 3)), ts.tensor("float32", (3, None))
    out = x @ w
    node = out.owner
    (shp,) = node.op.infer_shape(node, [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs])
    assert not any(has_op(s, MatMul) for s in shp)
    got = run([x, w], list(shp), np.zeros((2, 5, 3), "float32"), np.zeros((3, 7), "float32"))
    assert [int(g) for g in got] == [2, 5, 7]
    a = ts.tensor("float64", (None, 1, None, None))
    b = ts.tensor("float64", (None, None))
    out = a @ b
    node = out.owner
    (shp,) = node.op.infer_shape(node, [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs])
    got = run([a, b], list(shp), np.zeros((2, 1, 4, 3)), np.zeros((3, 6)))
    assert [int(g) for g in got] == [2, 1, 4, 6]


def test_matmul_errors():
    x, w = ts.tensor("float32", (None, 3)), ts.tensor("float32", (4, 5))
    with pytest.raises(ShapeError, match=r"\(\?, 3\) and \(4, 5\) are not aligned: 3 .* != 4"):
        x @ w
    with pytest.raises(ShapeError, match="not aligned"):
        ts.matmul(ts.tensor("float32", (3,)), ts.tensor("float32", (2,)))
    with pytest.raises(ShapeError, match="enough dimensions"):
        ts.matmul(ts.fscalar(), w)
    with pytest.raises(ShapeError, match="batch dims of matmul"):
        ts.matmul(ts.tensor("float32", (2, 3, 4)), ts.tensor("float32", (3, 4, 5)))
    a, b = ts.dmatrix("a"), ts.dmatrix("b")
    f = ts.function([a, b], a @ b)
    with pytest.raises(OpRuntimeError, match=r"MatMul failed on inputs \(float64\[2, 3\], float64\[2, 4\]\)"):
        f(np.zeros((2, 3)), np.zeros((2, 4)))


def test_operators_and_numpy_dispatch(rng):
    x = ts.dmatrix("x")
    a = rng.uniform(size=(3, 3))
    m = rng.uniform(size=(3, 2))
    outs = [x @ m, m.T @ x, np.matmul(x, a), x.dot(a), ts.matmul([[1.0, 2.0, 3.0]], x)]
    expected = [a @ m, m.T @ a, a @ a, a.dot(a), np.matmul([[1.0, 2.0, 3.0]], a)]
    for got, e in zip(run([x], outs, a), expected):
        check(got, e, 1e-12)


@pytest.mark.parametrize("sa,sb", [((), (3,)), ((2, 3), ()), ((3,), (3,)), ((2, 3), (3,)),
                                   ((3,), (3, 4)), ((2, 3), (3, 4)), ((2, 3, 4), (4,)),
                                   ((2, 3, 4), (4, 5)), ((4,), (2, 4, 5)), ((2, 3, 4), (5, 4, 2)),
                                   ((0, 3), (3, 2))])
@pytest.mark.parametrize("dtypes", [("float64", "float64"), ("int32", "float32"), ("int8", "int8")])
def test_dot_matches_numpy(sa, sb, dtypes, rng):
    a, b = data(sa, dtypes[0], rng), data(sb, dtypes[1], rng)
    expected = np.dot(a, b)
    x, y = ts.tensor(dtypes[0], sa), ts.tensor(dtypes[1], sb)
    out = ts.dot(x, y)
    assert out.type.shape == expected.shape
    check(run([x, y], out, a, b), expected, tol_for(expected.dtype))
    xd, yd = ts.tensor(dtypes[0], (None,) * len(sa)), ts.tensor(dtypes[1], (None,) * len(sb))
    check(run([xd, yd], ts.dot(xd, yd), a, b), expected, tol_for(expected.dtype))


@pytest.mark.parametrize("sa,sb,axes", [((2, 3, 4), (3, 4, 5), 2), ((2, 3), (3, 4), 1),
                                        ((2, 3), (4, 5), 0), ((2, 3, 4), (4, 2, 5), ([0, 2], [1, 0])),
                                        ((3, 4), (4, 3), ([-1, 0], [0, -1])), ((2, 3), (2, 3), 2),
                                        ((0, 3), (3, 2), 1), ((2, 0), (0, 3), ([1], [0])),
                                        ((2, 3, 4), (4,), ([2], [0]))])
def test_tensordot_matches_numpy(sa, sb, axes, rng):
    a, b = rng.uniform(size=sa), rng.uniform(size=sb)
    expected = np.tensordot(a, b, axes=axes)
    x, y = ts.tensor("float64", sa), ts.tensor("float64", sb)
    out = ts.tensordot(x, y, axes=axes)
    assert out.type.shape == expected.shape
    check(run([x, y], out, a, b), expected, 1e-12)
    xd, yd = ts.tensor("float64", (None,) * len(sa)), ts.tensor("float64", (None,) * len(sb))
    check(run([xd, yd], ts.tensordot(xd, yd, axes=axes), a, b), expected, 1e-12)


def test_tensordot_errors():
    x, y = ts.tensor("float64", (2, 3)), ts.tensor("float64", (3, 2))
    with pytest.raises(ShapeError, match="shape-mismatch for sum"):
        ts.tensordot(x, y, axes=([0, 1], [0, 1]))
    with pytest.raises(ShapeError, match="invalid"):
        ts.tensordot(x, y, axes=3)
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.tensordot(x, y, axes=([2], [0]))
    with pytest.raises(ShapeError, match="1 axes of the first operand against 2"):
        ts.tensordot(x, y, axes=([1], [0, 1]))
    with pytest.raises(ShapeError, match="repeated"):
        ts.tensordot(x, y, axes=([1, 1], [0, 1]))
    with pytest.raises(TypeError, match="pair"):
        ts.tensordot(x, y, axes=[0, 1, 1])
    with pytest.raises(TypeError, match="axes must be ints"):
        ts.tensordot(x, y, axes="ab")


@pytest.mark.parametrize("sa,sb,axes", [((2, 3), (3, 2), ([0, 1], [0, 1])),  # equal products
                                        ((1, 3), (3, 3), ([0, 1], [0, 1])),  # a size 1 vs 3
                                        ((3, 3), (1, 3), ([0, 1], [0, 1])),
                                        ((0, 3), (2, 4), 1), ((2, 3), (4, 0), 1)])  # zero-size
def test_tensordot_run_time_size_mismatch(sa, sb, axes):
    """Summed sizes only the run knows are checked exactly, as numpy does."""
    with pytest.raises(ValueError):
        np.tensordot(np.ones(sa), np.ones(sb), axes=axes)
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    f = ts.function([x, y], ts.tensordot(x, y, axes=axes))
    with pytest.raises(OpRuntimeError):
        f(np.ones(sa), np.ones(sb))
    half = ts.tensor("float64", (None, 3))
    if sa[1] == 3 and axes != 1:
        g = ts.function([half, y], ts.tensordot(half, y, axes=axes))
        with pytest.raises(OpRuntimeError):
            g(np.ones(sa), np.ones(sb))


def test_inner_vdot_outer(rng):
    a, b = rng.uniform(size=(2, 3)), rng.uniform(size=(4, 3))
    x, y = ts.tensor("float64", (None, 3)), ts.dmatrix("y")
    v, w = ts.ivector("v"), ts.ivector("w")
    vi, wi = np.array([1, 2, 3], "int32"), np.array([4, 5], "int32")
    check(run([x, y], ts.inner(x, y), a, b), np.inner(a, b), 1e-12)
    check(run([x], ts.inner(x, 2.0), a), np.inner(a, 2.0))
    check(run([x, y], ts.vdot(x, y[:2]), a, b), np.vdot(a, b[:2]), 1e-12)
    check(run([x, y], ts.outer(x, y), a, b), np.outer(a, b))
    check(run([v, w], ts.outer(v, w), vi, wi), np.outer(vi, wi))
    assert ts.outer(ts.tensor("float32", (2, 3)), ts.tensor("float32", (4,))).type.shape == (6, 4)
    with pytest.raises(TypeError, match="conjugate"):
        ts.vdot(ts.zvector(), ts.zvector())


@given(batch_a=st.lists(st.sampled_from([1, 2]), max_size=2),
       batch_b=st.lists(st.sampled_from([1, 2]), max_size=2),
       m=st.integers(0, 3), k=st.integers(0, 3), n=st.integers(0, 3),
       vec_a=st.booleans(), vec_b=st.booleans())
def test_matmul_property(batch_a, batch_b, m, k, n, vec_a, vec_b):
    """Any batch broadcasting and 1-d promotion: numpy's values and inferred shape."""
    sa = (k,) if vec_a else tuple(batch_a) + (m, k)
    sb = (k,) if vec_b else tuple(batch_b) + (k, n)
    a = np.arange(int(np.prod(sa)), dtype="float64").reshape(sa) % 5
    b = np.arange(int(np.prod(sb)), dtype="float64").reshape(sb) % 3
    x, y = ts.tensor("float64", (None,) * len(sa)), ts.tensor("float64", (None,) * len(sb))
    out = ts.matmul(x, y)
    check(run([x, y], out, a, b), np.matmul(a, b))
    node = out.owner
    (shp,) = node.op.infer_shape(node, [tuple(shape_i(v, d) for d in range(v.ndim)) for v in (x, y)])
    got = run([x, y], list(shp), a, b) if shp else []
    assert tuple(int(g) for g in got) == np.matmul(a, b).shape


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

def _u(*shape, seed=0):
    return np.random.default_rng(seed + 7 * len(shape)).uniform(-1, 1, size=shape)


GRAD_CASES = {
    MatMul: [
        (lambda a, b: a @ b, [_u(3, 4), _u(4, 2)]),
        (lambda a, b: a @ b, [_u(2, 1, 3, 4), _u(5, 4, 2)]),  # batched, broadcast both ways
        (lambda a, b: ts.dot(a, b), [_u(3), _u(3, 2)]),
        (lambda a, b: ts.dot(a, b), [_u(2, 3), _u(3)]),
        (lambda a, b: ts.dot(a, b) * a.sum(), [_u(4), _u(4, seed=1)]),
        (lambda a, b: ts.matmul(a, b), [_u(3), _u(2, 3, 4)]),
        (lambda a, b: ts.matmul(a, b), [_u(2, 4, 3), _u(3)]),
    ],
    Gemm: [
        (lambda z, a, x, y, b: Gemm()(z, a, x, y, b), [_u(3, 2), _u(), _u(3, 4), _u(4, 2), _u(seed=1)]),
        (lambda z, a, x, y, b: Gemm()(z, a, x, y, b), [_u(1, 2), _u(), _u(3, 4), _u(4, 2), _u(seed=1)]),
        (lambda z, a, x, y, b: Gemm()(z, a, x, y, b), [_u(3, 2), _u(), _u(1, 4), _u(4, 2), _u(seed=1)]),
    ],
    Gemv: [
        (lambda z, a, m, v, b: Gemv()(z, a, m, v, b), [_u(3), _u(), _u(3, 4), _u(4), _u(seed=1)]),
        (lambda z, a, m, v, b: Gemv()(z, a, m, v, b), [_u(1), _u(), _u(3, 4), _u(4), _u(seed=1)]),
    ],
    Ger: [
        (lambda z, a, x, y: Ger()(z, a, x, y), [_u(3, 2), _u(), _u(3), _u(2)]),
        (lambda z, a, x, y: Ger()(z, a, x, y), [_u(3, 1), _u(), _u(3), _u(2)]),
    ],
}


@pytest.mark.parametrize("op_class,i", [(k, i) for k, v in GRAD_CASES.items() for i in range(len(v))])
def test_verify_grad(op_class, i):
    fun, points = GRAD_CASES[op_class][i]
    out = fun(*[ts.tensor("float64", (None,) * p.ndim) for p in points])
    assert has_op(out, op_class)
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


@pytest.mark.parametrize("fun,shapes", [
    (lambda a, b: ts.tensordot(a, b, axes=([0, 2], [1, 0])), [(2, 3, 4), (4, 2, 5)]),
    (lambda a, b: ts.tensordot(a, b, axes=0), [(2,), (3,)]),
    (lambda a, b: ts.dot(a, b), [(2, 3, 4), (5, 4, 2)]),
    (lambda a, b: ts.inner(a, b), [(2, 3), (4, 3)]),
    (lambda a, b: ts.outer(a, b), [(2, 2), (3,)]),
    (lambda a, b: ts.vdot(a, b), [(2, 3), (3, 2)]),
    (lambda a, b: (a @ b) @ a, [(1, 3, 3), (2, 3, 3)]),  # size-1 batch dim, unknown statically
])
def test_product_gradients(fun, shapes):
    ts.verify_grad(fun, [_u(*s, seed=i) for i, s in enumerate(shapes)], rng=np.random.default_rng(3))


def test_mixed_dtype_gradients():
    """float32 @ float64 gives float64; each operand's gradient has its own dtype; an integer
    operand gets none."""
    a, b = ts.tensor("float32", (None, 3), name="a"), ts.dmatrix("b")
    i = ts.lmatrix("i")
    ga, gb = ts.grad(ts.sum(a @ b), [a, b])
    assert (ga.dtype, gb.dtype) == ("float32", "float64")
    av, bv = np.ones((2, 3), "float32"), np.arange(12.0).reshape(3, 4)
    check(run([a, b], ga, av, bv), np.broadcast_to(bv.sum(1), (2, 3)).astype("float32"))
    check(run([a, b], gb, av, bv), np.full((3, 4), 2.0))
    gi = ts.grad(ts.sum(a @ i), a)
    check(run([a, i], gi, av, np.ones((3, 2), "int64")), np.full((2, 3), 2.0, "float32"))


# ---------------------------------------------------------------------------------------------
# BLAS updates
# ---------------------------------------------------------------------------------------------

BLAS_CASES = [  # (Op, shapes of z, x, y, reference)
    (Gemm, (3, 5), (3, 4), (4, 5), lambda z, a, x, y, b: b * z + a * (x @ y)),
    (Gemm, (1, 5), (3, 4), (4, 5), lambda z, a, x, y, b: b * z + a * (x @ y)),  # z broadcast
    (Gemm, (3, 5), (3, 40), (40, 5), lambda z, a, x, y, b: b * z + a * (x @ y)),  # alpha on z's side
    (Gemm, (30, 50), (30, 2), (2, 50), lambda z, a, x, y, b: b * z + a * (x @ y)),  # on x
    (Gemm, (30, 2), (30, 40), (40, 2), lambda z, a, x, y, b: b * z + a * (x @ y)),  # on y
    (Gemm, (0, 5), (0, 4), (4, 5), lambda z, a, x, y, b: b * z + a * (x @ y)),
    (Gemv, (3,), (3, 4), (4,), lambda z, a, x, y, b: b * z + a * (x @ y)),
    (Gemv, (1,), (3, 4), (4,), lambda z, a, x, y, b: b * z + a * (x @ y)),
    (Ger, (3, 4), (3,), (4,), lambda z, a, x, y: z + a * np.outer(x, y)),
    (Ger, (3, 1), (3,), (4,), lambda z, a, x, y: z + a * np.outer(x, y)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-0.5, 2.0), (3.0, 0.0)])
@pytest.mark.parametrize("case", BLAS_CASES, ids=lambda c: f"{c[0].__name__}{c[1]}{c[2]}{c[3]}")
def test_blas_update_matches_numpy(case, alpha, beta, dtype, rng):
    op, sz, sx, sy, ref = case
    vals = [rng.normal(size=s).astype(dtype) for s in (sz, sx, sy)]
    a, b = np.asarray(alpha, dtype), np.asarray(beta, dtype)
    args = [vals[0], a, vals[1], vals[2]] + [b] * op.has_beta
    expected = ref(*args)
    ins = [ts.tensor(dtype, (None,) * np.ndim(v)) for v in args]
    out = op()(*ins)
    assert out.dtype == dtype
    check(run(ins, out, *args), expected.astype(dtype), 1e-5 if dtype == "float32" else 1e-12)
    (shp,) = out.owner.op.infer_shape(out.owner, [tuple(shape_i(v, k) for k in range(v.ndim)) for v in ins])
    assert tuple(int(d) for d in run(ins, list(shp), *args)) == expected.shape
    for inplace in (False, True):  # the numpy reference on its own; in place it writes into z
        z = vals[0].copy()
        got = op(inplace)(*ins).owner.op.perform(None, [z] + args[1:])[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert (got is z) == (inplace and z.shape == expected.shape)


def test_blas_update_static_shapes_and_errors():
    f32 = ts.tensor("float32", (3, 4))
    assert Gemm()(ts.tensor("float32", (None, 5)), ts.fscalar(), f32, ts.tensor("float32", (4, 5)),
                  ts.fscalar()).type.shape == (3, 5)
    assert Ger()(ts.tensor("float32", (1, None)), ts.fscalar(), ts.fvector(), ts.tensor("float32", (6,))
                 ).type.shape == (None, 6)
    with pytest.raises(TypeError, match="z must be a float"):
        Gemm()(ts.lmatrix(), ts.lscalar(), ts.lmatrix(), ts.lmatrix(), ts.lscalar())
    with pytest.raises(TypeError, match="x must be a 2-d float32"):
        Gemm()(ts.fmatrix(), ts.fscalar(), ts.dmatrix(), ts.fmatrix(), ts.fscalar())
    with pytest.raises(TypeError, match="beta must be a 0-d float32"):
        Gemm()(ts.fmatrix(), ts.fscalar(), ts.fmatrix(), ts.fmatrix(), ts.dscalar())
    with pytest.raises(TypeError, match="y must be a 1-d"):
        Gemv()(ts.fvector(), ts.fscalar(), ts.fmatrix(), ts.fmatrix(), ts.fscalar())
    with pytest.raises(ShapeError, match="not aligned: 4 != 5"):
        Gemm()(ts.fmatrix(), ts.fscalar(), f32, ts.tensor("float32", (5, 2)), ts.fscalar())
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        Gemm()(ts.tensor("float32", (2, 2)), ts.fscalar(), f32, ts.tensor("float32", (4, 2)), ts.fscalar())


def test_blas_update_run_time_mismatch_names_the_op():
    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    f = ts.function([z, x, y], Gemm()(z, np.float64(1), x, y, np.float64(1)), mode="NONE")
    with pytest.raises(OpRuntimeError, match="Gemm"):
        f(np.ones((2, 2)), np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(OpRuntimeError, match="Gemm"):
        f(np.ones((3, 2)), np.ones((2, 3)), np.ones((3, 2)))
