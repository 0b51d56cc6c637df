"""Constructors and repetition against numpy: full zeros ones full_like zeros_like ones_like,
arange, eye identity, repeat, tile.  Shapes given as ints, symbolic scalars, mixed tuples or
shape vectors; dtypes (floatX defaults); zero-size; static types and inferred shapes; writeable
results; errors; gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops.basic import ARange, Alloc, Eye, Repeat
from tracesym.ops.shape import shape_i
from tracesym.trace.graph import ancestors


def run(inputs, out, *values):
    return ts.function(inputs, out, on_unused_input="ignore")(*values)


def check(got, expected):
    """Same dtype, shape and values as numpy's result."""
    expected = np.asarray(expected)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)


def check_infer_shape(var, inputs, *values):
    node = var.owner
    in_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs]
    (shp,) = node.op.infer_shape(node, in_shapes)
    real = run(inputs, var, *values).shape
    assert len(shp) == len(real)
    if shp:
        assert tuple(int(g) for g in run(inputs, list(shp), *values)) == real


# ---------------------------------------------------------------------------------------------
# full, zeros, ones
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3), 4, (), (0, 3), [1, 2, 0]])
@pytest.mark.parametrize("dtype", [None, "float32", "int8", "bool", "complex64"])
def test_zeros_ones_full(shape, dtype):
    for fn, ref in [(ts.zeros, np.zeros), (ts.ones, np.ones)]:
        y = fn(shape, dtype)
        expected = ref(shape, dtype or "float64")
        assert isinstance(y.owner.op, Alloc)
        assert y.type.shape == expected.shape
        check(run([], y), expected)
    y = ts.full(shape, 3, dtype)
    check(run([], y), np.full(shape, 3, dtype))


def test_floatx_default_and_fill_dtypes():
    with ts.config.change(floatX="float32"):
        assert ts.zeros(3).dtype == "float32"
        assert ts.ones((2, 2)).dtype == "float32"
        assert ts.eye(2).dtype == "float32"
        assert ts.full(3, 0.5).dtype == "float32"  # a Python float is a floatX constant
    assert ts.zeros(3).dtype == "float64"
    assert ts.full(3, 7).dtype == "int64"
    assert ts.full(3, True).dtype == "bool"
    assert ts.full(2, np.float16(1)).dtype == "float16"
    check(run([], ts.full(2, 2.7, "int32")), np.full(2, 2.7, "int32"))


def test_symbolic_shapes(rng):
    x = ts.tensor("float32", (None, 3), name="x")
    n = ts.lscalar("n")
    i = ts.iscalar("i")
    a = rng.uniform(size=(4, 3)).astype("float32")
    cases = [(ts.zeros(x.shape), np.zeros((4, 3))), (ts.ones((x.shape[0], 2, n)), np.ones((4, 2, 5))),
             (ts.full((n, i), 1.5, "float32"), np.full((5, 2), 1.5, "float32")),
             (ts.zeros(n, "int16"), np.zeros(5, "int16")), (ts.ones(ts.shape(x)[::-1]), np.ones((3, 4)))]
    for y, e in cases:
        check(run([x, n, i], y, a, 5, 2), e)
        check_infer_shape(y, [x, n, i], a, 5, 2)
    assert ts.zeros(x.shape).type.shape == (None, 3)
    assert ts.ones((x.shape[0], 2, n)).type.shape == (None, 2, None)


def test_full_broadcasts_an_array_or_tensor_fill(rng):
    v = ts.dvector("v")
    a = rng.uniform(size=3)
    y = ts.full((2, 3), v)
    assert y.type.shape == (2, 3)
    check(run([v], y, a), np.full((2, 3), a))
    check(run([], ts.full((2, 2), np.array([1, 2], "int8"))), np.full((2, 2), np.array([1, 2], "int8")))
    check(run([v], ts.full(3, v[0], "float32"), a), np.full(3, a[0], "float32"))
    with pytest.raises(OpRuntimeError, match="broadcast"):
        run([v], y, rng.uniform(size=4))
    with pytest.raises(ShapeError, match="cannot broadcast"):
        ts.full((2, 4), np.ones(3))
    with pytest.raises(ShapeError, match="1-d tensor to 0 dims"):
        ts.full((), v)


def test_constructors_are_writeable():
    """A later in-place Op may write into a constructor's result: not a broadcast view."""
    with ts.config.change(compute_test_value="raise"):
        n = ts.lscalar("n", test_value=3)
        m = ts.dmatrix("m", test_value=np.zeros((2, 2)))
        for y in [ts.zeros((n, 3)), ts.ones(n), ts.full((2, n), 4.0), ts.zeros_like(m),
                  ts.full(3, m[0, 0]), ts.eye(n), ts.arange(n)]:
            value = y.tag.test_value  # computed by the Op's perform
            assert value.flags.writeable and value.base is None
        assert not ts.broadcast_to(m, (n, 2, 2)).tag.test_value.flags.writeable


def test_negative_and_bad_shapes():
    with pytest.raises(ShapeError, match="negative dimensions"):
        ts.zeros((2, -1))
    with pytest.raises(ShapeError, match="integer"):
        ts.zeros((2.0, 3))
    with pytest.raises(ShapeError, match="static length"):
        ts.ones(ts.lvector())
    n = ts.lscalar("n")
    with pytest.raises(OpRuntimeError, match="negative"):
        run([n], ts.zeros(n), -2)


@pytest.mark.parametrize("dtype", [None, "int8", "float32", "bool"])
def test_like_constructors(dtype, rng):
    x = ts.tensor("float64", (None, 3, 0 if dtype == "bool" else 2), name="x")
    a = rng.uniform(size=(2,) + x.type.shape[1:])
    for fn, ref, extra in [(ts.zeros_like, np.zeros_like, ()), (ts.ones_like, np.ones_like, ()),
                           (ts.full_like, np.full_like, (7,))]:
        y = fn(x, *extra, dtype=dtype)
        assert y.type.shape == x.type.shape
        check(run([x], y, a), ref(a, *extra, dtype=dtype))
    check(run([x], ts.full_like(x, 2.9, "int64"), a), np.full_like(a, 2.9, "int64"))


# ---------------------------------------------------------------------------------------------
# arange
# ---------------------------------------------------------------------------------------------

ARANGES = [(5,), (0,), (-3,), (2, 9), (9, 2), (9, 2, -2), (0, 1, 0.1), (1.5, 4), (0.0, -1.0, -0.25),
           (np.int8(3),), (np.float32(0.5), 3), (True,), (0, 10, 3), (-7, 7, 4)]


@pytest.mark.parametrize("args", ARANGES)
def test_arange_constants(args):
    y = ts.arange(*args)
    expected = np.arange(*args)
    assert isinstance(y.owner.op, ARange)
    assert y.type.shape == expected.shape  # known while tracing
    np.testing.assert_allclose(run([], y), expected, rtol=1e-12)
    assert run([], y).dtype == expected.dtype


@pytest.mark.parametrize("dtype", ["int8", "float32", "uint16", "float64"])
def test_arange_dtype_argument(dtype):
    check(run([], ts.arange(1, 7, 2, dtype=dtype)), np.arange(1, 7, 2, dtype=dtype))


def test_arange_symbolic(rng):
    y = ts.lvector("y")
    r = ts.arange(y.shape[0])
    assert r.dtype == "int64" and r.type.shape == (None,)
    check(run([y], r, np.zeros(4, "int64")), np.arange(4))
    check(run([y], r, np.zeros(0, "int64")), np.arange(0))
    a, b, s = ts.iscalar("a"), ts.lscalar("b"), ts.wscalar("s")
    r2 = ts.arange(a, b, s)
    assert r2.dtype == "int64"
    for av, bv, sv in [(1, 9, 3), (9, 1, -2), (5, 5, 1), (3, 0, 1)]:
        check(run([a, b, s], r2, av, bv, sv), np.arange(av, bv, sv))
        check_infer_shape(r2, [a, b, s], av, bv, sv)
    f = ts.fscalar("f")
    r3 = ts.arange(f, 3, 0.5)
    assert r3.dtype == "float32"  # float32 graphs stay float32
    for fv in [0.25, -1.0, 4.0]:
        np.testing.assert_allclose(run([f], r3, fv), np.arange(np.float32(fv), 3, 0.5, dtype="float32"))
        check_infer_shape(r3, [f], fv)
    assert ts.arange(y.shape[0], 10.0).dtype == "float64"


def test_arange_errors():
    with pytest.raises(ValueError, match="step must not be zero"):
        ts.arange(0, 5, 0)
    with pytest.raises(TypeError, match="real scalars"):
        ts.arange(ts.dvector())
    with pytest.raises(TypeError, match="complex"):
        ts.arange(1j)
    s = ts.lscalar("s")
    with pytest.raises(OpRuntimeError, match="step must not be zero"):
        run([s], ts.arange(0, 5, s), 0)


# ---------------------------------------------------------------------------------------------
# eye, identity
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [(3,), (3, 4), (4, 2, 1), (3, 3, -2), (2, 3, 5), (0,), (3, 0)])
@pytest.mark.parametrize("dtype", [None, "int32", "bool", "float32"])
def test_eye(args, dtype):
    y = ts.eye(*args, dtype=dtype)
    expected = np.eye(*args, dtype=dtype or "float64")
    assert y.type.shape == expected.shape
    check(run([], y), expected)


def test_eye_symbolic_and_identity():
    n, k = ts.lscalar("n"), ts.iscalar("k")
    y = ts.eye(n, 3, k)
    assert y.type.shape == (None, 3)
    check(run([n, k], y, 4, -1), np.eye(4, 3, -1))
    check_infer_shape(y, [n, k], 4, -1)
    check(run([n], ts.identity(n, "int8"), 2), np.identity(2, "int8"))
    assert not Eye.differentiable
    with pytest.raises(ShapeError, match="negative"):
        ts.eye(-1)


# ---------------------------------------------------------------------------------------------
# repeat, tile
# ---------------------------------------------------------------------------------------------

REPEATS = [((2, 3), 2, 0), ((2, 3), 3, -1), ((2, 3), [1, 0, 2], 1), ((2, 3), [2], 0),
           ((2, 3), 2, None), ((2, 3), [0, 1, 2, 0, 1, 1], None), ((0, 3), 4, 0), ((2, 3), 0, 1),
           ((), 3, None), ((4,), np.array([1, 2, 3, 4], "int32"), 0)]


@pytest.mark.parametrize("dtype", ["float32", "int8", "bool"])
@pytest.mark.parametrize("shape,reps,axis", REPEATS)
def test_repeat_matches_numpy(dtype, shape, reps, axis, rng):
    a = rng.integers(0, 3, shape).astype(dtype)
    expected = np.repeat(a, reps, axis=axis)
    for x in (ts.tensor(dtype, shape), ts.tensor(dtype, (None,) * len(shape))):
        y = ts.repeat(x, reps, axis=axis)
        assert isinstance(y.owner.op, Repeat)
        assert all(s is None or s == r for s, r in zip(y.type.shape, expected.shape))
        check(run([x], y, a), expected)
        check_infer_shape(y, [x], a)
    assert ts.repeat(ts.tensor(dtype, shape), reps, axis=axis).type.shape == expected.shape


def test_repeat_symbolic_counts(rng):
    x = ts.dmatrix("x")
    r, rv = ts.iscalar("r"), ts.lvector("rv")
    a = rng.uniform(size=(2, 3))
    y, z = ts.repeat(x, r, axis=0), x.repeat(rv, axis=1)
    check(run([x, r], y, a, 3), np.repeat(a, 3, axis=0))
    check_infer_shape(y, [x, r], a, 3)
    for counts in ([2, 0, 1], [4]):
        check(run([x, rv], z, a, np.array(counts)), np.repeat(a, counts, axis=1))
        check_infer_shape(z, [x, rv], a, np.array(counts))
    with pytest.raises(OpRuntimeError):
        run([x, rv], z, a, np.array([1, 2]))


def test_repeat_errors():
    x = ts.tensor("float64", (2, 3))
    with pytest.raises(ShapeError, match="2 repeat counts for an axis of size 3"):
        ts.repeat(x, [1, 2], axis=1)
    with pytest.raises(ShapeError, match="negative"):
        ts.repeat(x, -1)
    with pytest.raises(TypeError, match="integers"):
        ts.repeat(x, 1.5)
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.repeat(x, 2, axis=2)
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.repeat(ts.dscalar(), 2, axis=0)


TILES = [((2, 3), (2, 1)), ((2, 3), 3), ((2, 3), (2, 1, 3)), ((2, 3, 4), (2,)), ((3,), (1, 1)),
         ((), (2, 2)), ((0, 2), (3, 2)), ((2, 3), (0, 1)), ((2, 3), ())]


@pytest.mark.parametrize("shape,reps", TILES)
def test_tile_matches_numpy(shape, reps, rng):
    a = rng.integers(0, 9, shape).astype("int16")
    expected = np.tile(a, reps)
    for x in (ts.tensor("int16", shape), ts.tensor("int16", (None,) * len(shape))):
        y = ts.tile(x, reps)
        assert all(s is None or s == r for s, r in zip(y.type.shape, expected.shape))
        check(run([x], y, a), expected)
    assert ts.tile(ts.tensor("int16", shape), reps).type.shape == expected.shape


def test_tile_symbolic_reps(rng):
    x = ts.dmatrix("x")
    n = ts.lscalar("n")
    a = rng.uniform(size=(2, 3))
    y = ts.tile(x, (n, 2))
    check(run([x, n], y, a, 3), np.tile(a, (3, 2)))
    assert ts.tile(ts.tensor("float64", (2, 3)), (n, 2)).type.shape == (None, 6)


@given(shape=st.lists(st.integers(0, 3), max_size=3), reps=st.lists(st.integers(0, 3), max_size=3))
def test_tile_property(shape, reps):
    a = np.arange(int(np.prod(shape)), dtype="float32").reshape(shape)
    x = ts.tensor("float32", (None,) * len(shape))
    check(run([x], ts.tile(x, tuple(reps)), a), np.tile(a, tuple(reps)))


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

def _u(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).uniform(0.5, 1.5, size=shape)


GRAD_CASES = {
    Alloc: [
        (lambda v: ts.full((2, 3), v) * ts.arange(3.0), [_u(3)]),
        (lambda v: ts.full((v.shape[0], 2), v[:, None] ** 2), [_u(4)]),
        (lambda s: ts.full((2, 2), s) * ts.eye(2) + s, [np.array(0.7)]),
    ],
    ARange: [
        (lambda s: ts.arange(s, 5.0, 1.0) ** 2, [np.array(0.3)]),
        (lambda st_: ts.arange(0.5, 3.0, st_) ** 2, [np.array(0.7)]),
        (lambda s, st_: ts.arange(s, 2.0, st_ * 0.25 + 0.2), [np.array(-0.3), np.array(0.9)]),
    ],
    Repeat: [
        (lambda x: ts.repeat(x, 3, axis=1) * ts.arange(6.0), [_u(2, 2)]),
        (lambda x: ts.repeat(x, [2, 0, 1], axis=-1) ** 2, [_u(2, 3)]),
        (lambda x: ts.repeat(x, 2) ** 2, [_u(2, 2)]),
        (lambda x: ts.repeat(x, [3], axis=0) * ts.arange(6.0)[:, None], [_u(2, 1)]),
    ],
}


@pytest.mark.parametrize("op_class,i", [(k, i) for k, v in GRAD_CASES.items() for i in range(len(v))])
def test_verify_grad(op_class, i):
    fun, points = GRAD_CASES[op_class][i]
    out = fun(*[ts.tensor("float64", (None,) * p.ndim) for p in points])
    assert any(v.owner is not None and isinstance(v.owner.op, op_class) for v in ancestors([out]))
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


@pytest.mark.parametrize("reps", [(2, 3), (3,), (2, 1, 2), (1, 1)])
def test_tile_gradient(reps):
    ts.verify_grad(lambda x: ts.tile(x, reps) ** 2, [_u(2, 3)], rng=np.random.default_rng(0))


def test_alloc_gradient_sums_the_broadcast():
    v = ts.dvector("v")
    g = ts.grad(ts.sum(ts.full((4, 3), v)), v)
    check(run([v], g, np.zeros(3)), np.full(3, 4.0))
    # the gradient keeps the fill value's dtype
    f = ts.tensor("float32", (None,), name="f")
    gf = ts.grad(ts.sum(ts.full((2, 3), f, "float64")), f)
    assert gf.dtype == "float32"
    check(run([f], gf, np.zeros(3, "float32")), np.full(3, 2.0, "float32"))
