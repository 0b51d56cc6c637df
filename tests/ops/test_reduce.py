"""Reductions and scans against numpy: sum prod max min all any, mean var std, argmax argmin,
logsumexp, cumsum cumprod.  Dtypes, axes (negative, tuples, None), keepdims, zero-size and
unknown static shapes, inferred shapes, errors and gradients."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops.reduce import ArgReduce, CumOp, LogSumExp, Reduce
from tracesym.ops.shape import shape_i
from tracesym.trace.graph import ancestors


def run(inputs, out, *values):
    return ts.function(inputs, out, on_unused_input="ignore")(*values)


def check(got, expected, rtol=0.0, atol=0.0):
    """Same dtype and shape as numpy's result, equal values (nan where numpy has nan)."""
    expected = np.asarray(expected)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if rtol or atol:
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, expected)


def static_ok(var, shape):
    """The static shape is consistent with the real one."""
    assert var.ndim == len(shape)
    assert all(s is None or s == r for s, r in zip(var.type.shape, shape)), (var.type, shape)


def check_infer_shape(var, inputs, *values):
    """The Op's symbolic shape evaluates to the real output shape."""
    node = var.owner
    in_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs]
    (shp,) = node.op.infer_shape(node, in_shapes)
    assert len(shp) == var.ndim
    real = run(inputs, var, *values).shape
    if shp:
        got = run(inputs, list(shp), *values)
        assert tuple(int(g) for g in got) == real


def data(shape, dtype, rng, low=-3, high=4):
    if np.dtype(dtype) == bool:
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind == "u":
        low = 0
    return rng.integers(low, high, shape).astype(dtype)


def placeholders(shape, dtype):
    """A placeholder with the static shape, and one with every size unknown."""
    return ts.tensor(dtype, shape, name="x"), ts.tensor(dtype, (None,) * len(shape), name="xd")


KINDS = ["sum", "prod", "max", "min", "all", "any"]
DTYPES = ["float32", "float64", "int8", "int64", "uint8", "bool"]
AXES = [((2, 3, 4), None), ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), (0, 2)),
        ((2, 3, 4), (-3, -1)), ((2, 3, 4), ()), ((), None), ((5,), 0), ((3, 0), 0), ((0, 3), 1),
        ((2, 0, 3), (0, 2))]


# ---------------------------------------------------------------------------------------------
# sum prod max min all any
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_matches_numpy(kind, dtype, shape, axis, keepdims, rng):
    a = data(shape, dtype, rng)
    ref = getattr(np, kind)
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    empty_axis = any(shape[ax] == 0 for ax in axes)
    if kind in ("max", "min") and empty_axis:
        pytest.skip("an empty max/min is an error: test_max_of_empty")
    expected = ref(a, axis=axis, keepdims=keepdims)
    for x in placeholders(shape, dtype):
        out = getattr(ts, kind)(x, axis=axis, keepdims=keepdims)
        assert isinstance(out.owner.op, Reduce)
        assert out.dtype == np.asarray(expected).dtype.name
        static_ok(out, np.shape(expected))
        check(run([x], out, a), expected)
    # fully static input: fully static output
    assert out.ndim == np.ndim(expected)
    x = placeholders(shape, dtype)[0]
    assert getattr(ts, kind)(x, axis=axis, keepdims=keepdims).type.shape == np.shape(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_reduce_infer_shape(kind, rng):
    x = ts.tensor("float64", (None, None, None))
    a = rng.uniform(size=(2, 3, 4))
    for axis, keepdims in [(None, False), ((0, 2), True), (-2, False), ((), False)]:
        check_infer_shape(getattr(ts, kind)(x, axis=axis, keepdims=keepdims), [x], a)


@given(
    shape=st.lists(st.integers(0, 4), max_size=4),
    kind=st.sampled_from(["sum", "prod", "all", "any"]),
    keepdims=st.booleans(), data=st.data())
def test_reduce_property(shape, kind, keepdims, data):
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), unique_by=lambda a: a % len(shape),
                              max_size=len(shape))) if shape else []
    axis = data.draw(st.sampled_from([None, tuple(axes)]))
    a = np.arange(int(np.prod(shape)), dtype="float64").reshape(shape) % 3 + 0.5
    x = ts.tensor("float64", [None] * len(shape))
    out = getattr(ts, kind)(x, axis=axis, keepdims=keepdims)
    check(run([x], out, a), getattr(np, kind)(a, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("kind,dtype,acc", [
    ("sum", "int8", "int8"), ("sum", "float32", "float64"), ("sum", "int32", "float32"),
    ("sum", "bool", "int32"), ("prod", "int16", "float64"), ("prod", "uint8", "uint8"),
    ("sum", "float64", "float16")])
def test_reduce_dtype_argument(kind, dtype, acc, rng):
    a = data((4, 50), dtype, rng, 0, 120)
    x = ts.tensor(dtype, (None, None))
    out = getattr(ts, kind)(x, axis=-1, dtype=acc)
    with np.errstate(all="ignore"):
        expected = getattr(np, kind)(a, axis=-1, dtype=acc)
    assert out.dtype == np.dtype(acc).name
    check(run([x], out, a), expected)


def test_reduce_default_dtype_is_one_op():
    """sum(x, dtype=<numpy's default>) is the same Op as sum(x): equal graphs merge."""
    x = ts.tensor("int8", (None,))
    assert ts.sum(x, dtype="int64").owner.op == ts.sum(x).owner.op
    assert ts.sum(x, dtype="int64").owner.op.dtype is None
    with pytest.raises(TypeError, match="dtype"):
        Reduce("max", (0,), dtype="float32")


@pytest.mark.parametrize("dtype,expected", [("int8", "int64"), ("bool", "int64"), ("uint8", "uint64"),
                                            ("float32", "float32"), ("float16", "float16"),
                                            ("complex64", "complex64")])
def test_sum_result_dtypes(dtype, expected):
    assert ts.sum(ts.tensor(dtype, (3,))).dtype == expected
    assert ts.prod(ts.tensor(dtype, (3,))).dtype == expected
    assert ts.max(ts.tensor(dtype, (3,))).dtype == dtype
    assert ts.any(ts.tensor(dtype, (3,))).dtype == "bool"


def test_empty_reductions():
    x = ts.dmatrix("x")
    a = np.zeros((3, 0))
    check(run([x], ts.sum(x, axis=1), a), np.zeros(3))
    check(run([x], ts.prod(x, axis=1), a), np.ones(3))
    check(run([x], ts.all(x, axis=1), a), np.ones(3, bool))
    check(run([x], ts.any(x), a), np.array(False))
    # max over a non-empty axis of an empty tensor is fine
    check(run([x], ts.max(x, axis=0), a), np.zeros(0))


def test_max_of_empty():
    x = ts.dmatrix("x")
    f = ts.function([x], ts.max(x, axis=1))
    with pytest.raises(OpRuntimeError, match="zero-size array") as info:
        f(np.zeros((2, 0)))
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(ShapeError, match="size 0"):
        ts.min(ts.tensor("float32", (2, 0)), axis=-1)
    ts.min(ts.tensor("float32", (0, 2)), axis=-1)  # reduces a non-empty axis: fine


def test_axis_errors():
    x = ts.tensor("float32", (2, 3))
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.sum(x, axis=2)
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.max(x, axis=(0, -3))
    with pytest.raises(ShapeError, match="repeated"):
        ts.sum(x, axis=(1, -1))
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.sum(ts.dscalar(), axis=0)
    with pytest.raises(ShapeError):
        Reduce("sum", (-1,))(x)  # the Op takes normalized axes only


def test_reduce_methods_and_numpy_dispatch(rng):
    x = ts.dmatrix("x")
    a = rng.uniform(size=(3, 4))
    outs = [x.sum(axis=0), x.prod(keepdims=True), x.max(axis=-1), x.min(), np.sum(x, axis=1),
            np.max(x), np.add.reduce(x, axis=1), np.amax(x, axis=0), x.all(), x.any(axis=1)]
    expected = [a.sum(axis=0), a.prod(keepdims=True), a.max(axis=-1), a.min(), a.sum(axis=1),
                a.max(), np.add.reduce(a, axis=1), np.amax(a, axis=0), a.all(), a.any(axis=1)]
    for got, e in zip(run([x], outs, a), expected):
        check(got, e)


# ---------------------------------------------------------------------------------------------
# mean var std
# ---------------------------------------------------------------------------------------------

STAT_DTYPES = ["float16", "float32", "float64", "int8", "int64", "bool", "complex64"]


def _tol(dtype):
    return {"float16": 2e-3, "float32": 2e-6, "complex64": 2e-6}.get(str(dtype), 1e-12)


@pytest.mark.parametrize("dtype", STAT_DTYPES)
@pytest.mark.parametrize("shape,axis", [((3, 4, 5), None), ((3, 4, 5), (0, -1)), ((3, 4, 5), -2),
                                        ((7,), 0), ((), None)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("fn", ["mean", "var", "std"])
def test_stats_match_numpy(fn, dtype, shape, axis, keepdims, rng):
    a = data(shape, dtype, rng)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * data(shape, "int8", rng)
        a = a.astype(dtype)
    expected = getattr(np, fn)(a, axis=axis, keepdims=keepdims)
    for x in placeholders(shape, dtype):
        out = getattr(ts, fn)(x, axis=axis, keepdims=keepdims)
        assert out.dtype == np.asarray(expected).dtype.name
        static_ok(out, np.shape(expected))
        tol = _tol(np.asarray(expected).dtype)
        check(run([x], out, a), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("ddof", [0, 1, 2])
def test_var_std_ddof(ddof, rng):
    a = rng.normal(size=(4, 6))
    x = ts.dmatrix("x")
    outs = [ts.var(x, ddof=ddof), ts.std(x, axis=1, ddof=ddof), x.var(axis=0, ddof=ddof),
            x.std(keepdims=True, ddof=ddof), np.var(x, axis=-1, ddof=ddof)]
    expected = [a.var(ddof=ddof), a.std(axis=1, ddof=ddof), a.var(axis=0, ddof=ddof),
                a.std(keepdims=True, ddof=ddof), np.var(a, axis=-1, ddof=ddof)]
    for got, e in zip(run([x], outs, a), expected):
        check(got, e, rtol=1e-12, atol=1e-14)


def test_var_ddof_at_least_count():
    """ddof >= n divides by max(n - ddof, 0): inf or nan, as numpy."""
    a = np.array([[1.0, 2.0], [3.0, 3.0]])
    for shape in [(2, 2), (None, None)]:
        x = ts.tensor("float64", shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.var(a, axis=1, ddof=3)
        check(run([x], ts.var(x, axis=1, ddof=3), a), expected)
        assert np.isinf(expected[0]) and np.isnan(expected[1])


@pytest.mark.parametrize("fn,dtype,acc", [("mean", "int8", "float32"), ("mean", "float32", "float64"),
                                          ("mean", "float64", "int64"), ("var", "int64", "float32"),
                                          ("std", "float32", "float64")])
def test_stats_dtype_argument(fn, dtype, acc, rng):
    a = data((3, 5), dtype, rng) + np.array(0.25, dtype=dtype) * (np.dtype(dtype).kind == "f")
    x = ts.tensor(dtype, (None, None))
    out = getattr(ts, fn)(x, axis=1, dtype=acc)
    expected = getattr(np, fn)(a, axis=1, dtype=acc)
    assert out.dtype == expected.dtype.name
    check(run([x], out, a), expected, rtol=1e-6, atol=1e-6)


def test_mean_unknown_sizes_and_empty():
    x = ts.tensor("float32", (None, None))
    f = ts.function([x], [ts.mean(x, axis=0), ts.mean(x)])
    for shape in [(2, 3), (5, 1), (1, 4)]:
        a = np.arange(np.prod(shape), dtype="float32").reshape(shape)
        got = f(a)
        check(got[0], a.mean(axis=0), rtol=1e-6)
        check(got[1], a.mean(), rtol=1e-6)
    got = f(np.zeros((0, 3), "float32"))
    assert got[0].dtype == np.float32 and np.isnan(got[0]).all() and got[0].shape == (3,)
    assert np.isnan(got[1])
    ints = ts.tensor("int32", (0,))
    assert np.isnan(run([ints], ts.mean(ints), np.zeros(0, "int32")))


def test_mean_large_integers_do_not_overflow():
    """numpy averages integers in float64, so int8 data cannot wrap around."""
    a = np.full(1000, 100, dtype="int8")
    x = ts.tensor("int8", (None,))
    check(run([x], ts.mean(x), a), np.mean(a))
    assert run([x], ts.mean(x), a) == 100.0


# ---------------------------------------------------------------------------------------------
# argmax argmin
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", ["float32", "int8", "uint8", "bool"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, -3])
@pytest.mark.parametrize("keepdims", [False, True])
def test_argreduce_matches_numpy(fn, dtype, axis, keepdims, rng):
    a = data((3, 4, 5), dtype, rng)
    expected = getattr(np, fn)(a, axis=axis, keepdims=keepdims)
    for x in placeholders(a.shape, dtype):
        out = getattr(ts, fn)(x, axis=axis, keepdims=keepdims)
        assert isinstance(out.owner.op, ArgReduce) and out.dtype == "int64"
        static_ok(out, np.shape(expected))
        check(run([x], out, a), expected.astype("int64"))
        check_infer_shape(out, [x], a)
    assert getattr(ts, fn)(placeholders(a.shape, dtype)[0], axis=axis,
                           keepdims=keepdims).type.shape == np.shape(expected)


def test_argreduce_ties_scalars_empty_and_methods():
    x = ts.dvector("x")
    a = np.array([1.0, 3.0, 3.0, -2.0, -2.0])
    f = ts.function([x], [ts.argmax(x), ts.argmin(x), x.argmax(axis=0), x.argmin(keepdims=True)])
    check(f(a)[0], np.int64(1))
    check(f(a)[1], np.int64(3))
    check(f(a)[2], np.int64(1))
    check(f(a)[3], np.array([3]))
    s = ts.dscalar("s")
    check(run([s], ts.argmax(s), 2.0), np.int64(0))
    with pytest.raises(OpRuntimeError, match="empty"):
        f(np.zeros(0))
    with pytest.raises(TypeError, match="int or None"):
        ts.argmax(ts.dmatrix(), axis=(0, 1))
    with pytest.raises(ShapeError):
        ts.argmin(x, axis=1)
    assert not ArgReduce.differentiable


def test_argmax_blocks_gradient(rng):
    """An index is a constant to grad: d/dx sum(x * argmax(x)) = argmax(x)."""
    x = ts.dvector("x")
    cost = ts.sum(x * ts.argmax(x))
    a = np.array([0.5, 2.0, 1.0])
    check(run([x], ts.grad(cost, x), a), np.full(3, 1.0))


# ---------------------------------------------------------------------------------------------
# logsumexp
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int64", "float16"])
@pytest.mark.parametrize("shape,axis", [((3, 4, 5), None), ((3, 4, 5), -1), ((3, 4, 5), (0, 2)),
                                        ((6,), 0), ((), None), ((3, 0), 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_numpy(dtype, shape, axis, keepdims, rng):
    a = data(shape, dtype, rng)
    out_dtype = np.exp(np.zeros(0, dtype)).dtype
    with np.errstate(divide="ignore"):  # the naive formula, fine for small inputs
        expected = np.log(np.sum(np.exp(a.astype("float64")), axis=axis, keepdims=keepdims))
    expected = np.asarray(expected).astype(out_dtype)
    for x in placeholders(shape, dtype):
        out = ts.logsumexp(x, axis=axis, keepdims=keepdims)
        assert isinstance(out.owner.op, LogSumExp) and out.dtype == out_dtype.name
        static_ok(out, np.shape(expected))
        tol = {"float16": 1e-3, "float32": 1e-6}.get(out_dtype.name, 1e-13)
        check(run([x], out, a), expected, rtol=tol, atol=tol)
        check_infer_shape(out, [x], a)


def test_logsumexp_extreme_values():
    x = ts.dvector("x")
    f = ts.function([x], ts.logsumexp(x))
    assert f(np.array([1000.0, 1000.0])) == 1000.0 + np.log(2.0)
    assert f(np.array([-1000.0, -1000.0])) == -1000.0 + np.log(2.0)
    assert f(np.array([-np.inf, -np.inf])) == -np.inf
    assert f(np.array([-np.inf, 0.0])) == 0.0
    assert f(np.array([np.inf, 1.0])) == np.inf
    assert f(np.zeros(0)) == -np.inf
    assert np.isnan(f(np.array([np.nan, 1.0])))
    m = ts.dmatrix("m")
    got = run([m], ts.logsumexp(m, axis=1), np.array([[-np.inf, -np.inf], [1e308, 1e308]]))
    check(got, np.array([-np.inf, 1e308 + np.log(2.0)]))
    f32 = ts.fvector("f")
    check(run([f32], ts.logsumexp(f32), np.array([100.0, 100.0], "float32")),
          np.float32(100 + np.log(2)))


def test_logsumexp_gradient_is_softmax(rng):
    a = rng.normal(size=(3, 4)) * 300
    x = ts.dmatrix("x")
    g = run([x], ts.grad(ts.sum(ts.logsumexp(x, axis=1)), x), a)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    np.testing.assert_allclose(g, e / e.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-300)
    assert np.isfinite(g).all()


# ---------------------------------------------------------------------------------------------
# cumsum cumprod
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "uint8", "bool"])
@pytest.mark.parametrize("shape,axis", [((3, 4), 0), ((3, 4), -1), ((2, 3, 4), 1), ((5,), None),
                                        ((2, 3, 4), None), ((), None), ((3, 0), 1), ((0, 2), None)])
def test_scan_matches_numpy(fn, dtype, shape, axis, rng):
    a = data(shape, dtype, rng)
    expected = getattr(np, fn)(a, axis=axis)
    for x in placeholders(shape, dtype):
        out = getattr(ts, fn)(x, axis=axis)
        assert isinstance(out.owner.op, CumOp)
        static_ok(out, expected.shape)
        check(run([x], out, a), expected)
        check_infer_shape(out, [x], a)
    assert getattr(ts, fn)(placeholders(shape, dtype)[0], axis=axis).type.shape == expected.shape


def test_scan_dtype_argument_and_methods(rng):
    a = data((3, 40), "int8", rng, 0, 100)
    x = ts.tensor("int8", (None, None))
    outs = [ts.cumsum(x, axis=1, dtype="int8"), ts.cumprod(x, axis=0, dtype="float64"),
            x.cumsum(axis=-1), x.cumprod(), np.cumsum(x, axis=0)]
    with np.errstate(all="ignore"):
        expected = [np.cumsum(a, axis=1, dtype="int8"), np.cumprod(a, axis=0, dtype="float64"),
                    a.cumsum(axis=-1), a.cumprod(), np.cumsum(a, axis=0)]
    for got, e in zip(run([x], outs, a), expected):
        check(got, e)
    assert ts.cumsum(x, dtype="int64").owner.op.dtype is None


def test_reversed_scan(rng):
    a = rng.normal(size=(3, 4))
    x = ts.dmatrix("x")
    for kind, f in [("sum", np.cumsum), ("prod", np.cumprod)]:
        out = CumOp(kind, 1, reverse=True)(x)
        check(run([x], out, a), np.flip(f(np.flip(a, 1), axis=1), 1))
    with pytest.raises(ValueError, match="axis"):
        CumOp("sum", None, reverse=True)
    with pytest.raises(TypeError, match="int or None"):
        ts.cumsum(x, axis=(0, 1))


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

_r = np.random.default_rng(0)


def _u(*shape):
    return _r.uniform(0.5, 1.5, shape)


def _distinct(*shape):
    """Values with no ties (max/min are smooth there)."""
    return (_r.permutation(int(np.prod(shape))).reshape(shape) + _r.uniform(0, 0.5, shape)) / 3.0


ZEROS = np.array([[1.5, 0.0, 2.0, 0.7], [0.0, 2.0, 0.0, 3.0], [1.2, 0.8, 1.1, 0.9]])

GRAD_CASES = {
    Reduce: [
        (lambda x: ts.sum(x, axis=(0, -1)), [_u(2, 3, 4)]),
        (lambda x: ts.sum(x, keepdims=True) * x, [_u(2, 3)]),
        (lambda x: ts.sum(x, axis=0, keepdims=True) * x, [_u(1, 4)]),  # unknown dim, 1 at run time
        (lambda x: ts.prod(x, axis=1), [_u(3, 4)]),
        (lambda x: ts.prod(x, axis=-1, keepdims=True), [ZEROS]),
        (lambda x: ts.max(x, axis=0), [_distinct(4, 3)]),
        (lambda x: ts.min(x, axis=(0, 2), keepdims=True), [_distinct(2, 3, 2)]),
        (lambda x: ts.max(x) * ts.min(x), [_distinct(5)]),
    ],
    LogSumExp: [
        (lambda x: ts.logsumexp(x, axis=-1), [_u(3, 4)]),
        (lambda x: ts.logsumexp(x * 400.0, axis=(0, 2), keepdims=True), [_u(2, 3, 2)]),
        (lambda x: ts.logsumexp(x), [_u(5)]),
        (lambda x: ts.logsumexp(x, axis=1, keepdims=True) + x, [_u(3, 1)]),
    ],
    CumOp: [
        (lambda x: ts.cumsum(x, axis=1), [_u(3, 4)]),
        (lambda x: ts.cumprod(x, axis=-1), [_u(2, 5)]),
        (lambda x: ts.cumprod(x, axis=1), [ZEROS]),
        (lambda x: ts.cumprod(x, axis=0), [ZEROS.T.copy()]),
        (lambda x: CumOp("prod", 0, reverse=True)(x), [ZEROS]),
        (lambda x: CumOp("sum", 1, reverse=True)(x) * x, [_u(2, 3)]),
        (lambda x: ts.cumsum(x), [_u(6)]),
    ],
}


@pytest.mark.parametrize("op_class,i", [(k, i) for k, v in GRAD_CASES.items() for i in range(len(v))])
def test_verify_grad(op_class, i):
    fun, points = GRAD_CASES[op_class][i]
    out = fun(*[ts.tensor("float64", (None,) * p.ndim) for p in points])
    assert any(v.owner is not None and isinstance(v.owner.op, op_class) for v in ancestors([out]))
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


@pytest.mark.parametrize("fun", [
    lambda x: ts.mean(x, axis=1), lambda x: ts.mean(x, keepdims=True) * x,
    lambda x: ts.var(x, axis=0), lambda x: ts.var(x, axis=-1, ddof=1),
    lambda x: ts.std(x), lambda x: ts.std(x, axis=(0, 1), ddof=1, keepdims=True)])
@pytest.mark.parametrize("shape", [(3, 4), (1, 4)])
def test_stats_gradients(fun, shape):
    ts.verify_grad(fun, [_u(*shape)], rng=np.random.default_rng(1))


@pytest.mark.parametrize("fn", ["cumsum", "cumprod"])
def test_flattened_scan_gradient(fn):
    if not hasattr(ts, "reshape"):
        pytest.skip("the gradient of a flattened scan reshapes: needs ts.reshape")
    a = ZEROS if fn == "cumprod" else _u(3, 4)
    ts.verify_grad(lambda x: getattr(ts, fn)(x), [a], rng=np.random.default_rng(2))


def _grad_of(cost_fn, a):
    x = ts.tensor("float64", (None,) * a.ndim)
    return run([x], ts.grad(cost_fn(x), x), a)


def test_prod_gradient_with_zeros():
    """d prod / d x_i is the product of the others, also where some are zero."""
    one = np.array([2.0, 0.0, 3.0, 4.0])
    check(_grad_of(ts.prod, one), np.array([0.0, 24.0, 0.0, 0.0]))
    two = np.array([2.0, 0.0, 3.0, 0.0])
    check(_grad_of(ts.prod, two), np.zeros(4))
    none = np.array([2.0, -1.0, 3.0, 4.0])
    check(_grad_of(ts.prod, none), np.array([-12.0, 24.0, -8.0, -6.0]))
    rows = np.array([[2.0, 0.0, 5.0], [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]])
    check(_grad_of(lambda x: ts.sum(ts.prod(x, axis=1)), rows),
          np.array([[0.0, 10.0, 0.0], [0.0, 0.0, 0.0], [6.0, 3.0, 2.0]]))
    ts.verify_grad(ts.prod, [one], rng=np.random.default_rng(3))
    ts.verify_grad(ts.prod, [two], rng=np.random.default_rng(3))


def test_cumprod_gradient_with_zeros():
    """Hand-computed: y = [a, ab, abc, abcd] for x = [a, b, c, d]."""
    a, c, d = 2.0, 3.0, 5.0
    x = np.array([a, 0.0, c, d])
    # d(sum y)/dx: a -> 1 + b + bc + bcd = 1; b -> a + ac + acd; c, d -> 0 (every term holds b)
    check(_grad_of(lambda t: ts.sum(ts.cumprod(t)), x),
          np.array([1.0, a + a * c + a * c * d, 0.0, 0.0]))
    two = np.array([a, 0.0, c, 0.0])
    check(_grad_of(lambda t: ts.sum(ts.cumprod(t)), two), np.array([1.0, a + a * c, 0.0, 0.0]))
    lead = np.array([0.0, 0.0, c])
    check(_grad_of(lambda t: ts.sum(ts.cumprod(t)), lead), np.array([1.0, 0.0, 0.0]))


def test_max_gradient_goes_to_every_tie():
    """Theano's convention, kept: each position equal to the max gets the whole gradient."""
    check(_grad_of(ts.max, np.array([1.0, 3.0, 3.0, 2.0])), np.array([0.0, 1.0, 1.0, 0.0]))
    check(_grad_of(lambda x: ts.sum(ts.min(x, axis=0) * np.array([1.0, 2.0])),
                   np.array([[1.0, 5.0], [1.0, 4.0]])),
          np.array([[1.0, 0.0], [1.0, 2.0]]))


def test_gradient_dtypes():
    for dtype in ["float32", "float64"]:
        x = ts.tensor(dtype, (None, 3))
        for out in [ts.sum(x, axis=0), ts.prod(x), ts.max(x, axis=1), ts.mean(x), ts.std(x),
                    ts.logsumexp(x, axis=1), ts.cumsum(x, axis=1), ts.cumprod(x, axis=0),
                    ts.sum(x, dtype="float64")]:
            g = ts.grad(ts.sum(out), x)
            assert g.dtype == dtype
            a = np.linspace(0.5, 2, 6).reshape(2, 3).astype(dtype)
            assert run([x], g, a).shape == (2, 3)


def test_integer_and_boolean_reductions_have_no_gradient():
    x = ts.dvector("x")
    for out in [ts.sum(ts.cast(x, "int64")), ts.sum(x > 1), ts.all(x > 0), ts.any(x > 0),
                ts.cumsum(ts.cast(x, "int32"))]:
        cost = ts.sum(x) + ts.cast(ts.sum(out), "float64")
        check(run([x], ts.grad(cost, x), np.ones(3)), np.ones(3))
