"""Shape Ops against numpy: shape, reshape/flatten/ravel, squeeze, transpose/swapaxes/moveaxis,
expand_dims/dimshuffle, broadcast_to, sum-to-shape, concatenate/stack and split.  Dtypes,
zero-size and unknown static shapes, negative axes, symbolic shapes, inferred static types and
symbolic shapes, errors (at trace time and at run time) and gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops.shape import (BroadcastTo, Concatenate, DimShuffle, Reshape, Shape, Split,
                                SumToShape, shape_i)
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


def static_ok(var, shape):
    """The static shape is consistent with the real one."""
    assert var.ndim == len(shape)
    assert all(s is None or s == r for s, r in zip(var.type.shape, shape)), (var.type, shape)


def check_infer_shape(var, inputs, *values):
    """The Op's symbolic shape of `var` evaluates to its real shape."""
    node = var.owner
    in_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs]
    shp = node.op.infer_shape(node, in_shapes)[node.outputs.index(var)]
    assert len(shp) == var.ndim
    real = run(inputs, var, *values).shape
    if shp:
        got = run(inputs, list(shp), *values)
        assert tuple(int(g) for g in got) == real


def data(shape, dtype, rng):
    if np.dtype(dtype) == bool:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 9, shape).astype(dtype)


def placeholders(shape, dtype):
    """A placeholder with the static shape, and one with every size unknown."""
    return ts.tensor(dtype, shape, name="x"), ts.tensor(dtype, (None,) * len(shape), name="xd")


def has_op(var, op_class):
    return any(v.owner is not None and isinstance(v.owner.op, op_class) for v in ancestors([var]))


DTYPES = ["float32", "float64", "int8", "uint16", "int64", "bool", "complex64"]


# ---------------------------------------------------------------------------------------------
# shape
# ---------------------------------------------------------------------------------------------

def test_shape_and_shape_i(rng):
    x = ts.tensor("float32", (None, 3, 0))
    a = np.zeros((5, 3, 0), "float32")
    check(run([x], x.shape, a), np.array([5, 3, 0]))
    assert x.shape.type == ts.TensorType("int64", (3,))
    assert isinstance(x.shape.owner.op, Shape)
    check(run([x], [x.shape[0], x.shape[-1]], a)[0], np.int64(5))
    assert x.shape[1].owner is None and int(x.shape[1].data) == 3  # static: a constant
    assert shape_i(x, -1).data == 0
    check(run([x], ts.shape(x) * 2, a), np.array([10, 6, 0]))


# ---------------------------------------------------------------------------------------------
# reshape, flatten, ravel
# ---------------------------------------------------------------------------------------------

RESHAPES = [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1, 2)), ((6,), (1, 6, 1)),
            ((1,), ()), ((), (1, 1)), ((0, 3), (3, 0)), ((0, 3), (-1,)), ((0, 3), (2, 0, 5)),
            ((2, 3), 6), ((4, 1), (-1, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,target", RESHAPES)
def test_reshape_matches_numpy(dtype, shape, target, rng):
    a = data(shape, dtype, rng)
    expected = a.reshape(target)
    for x in placeholders(shape, dtype):
        y = ts.reshape(x, target)
        assert y.dtype == dtype
        static_ok(y, expected.shape)
        check(run([x], y, a), expected)
        check_infer_shape(y, [x], a)
    # a fully static input gives a fully static output
    assert ts.reshape(placeholders(shape, dtype)[0], target).type.shape == expected.shape


def test_reshape_symbolic_entries(rng):
    x = ts.tensor("float64", (None, 3, 4), name="x")
    a = rng.uniform(size=(5, 3, 4))
    y = ts.reshape(x, (x.shape[0], -1))
    assert y.type.shape == (None, 12)  # the unknown dim cancels
    check(run([x], y, a), a.reshape(5, -1))
    z = x.reshape(-1, x.shape[1] * x.shape[2])
    assert z.type.shape == (None, 12)
    check(run([x], z, a), a.reshape(-1, 12))
    # a symbolic shape vector, and scalars whose values only the run knows (-1 included)
    v = ts.dvector("v")
    w = ts.reshape(v, x.shape)
    check(run([x, v], w, a, np.arange(60.0)), np.arange(60.0).reshape(5, 3, 4))
    n, m = ts.lscalar("n"), ts.iscalar("m")
    u = ts.reshape(x, (n, m))
    assert u.type.shape == (None, None)
    for nv, mv in [(6, 10), (-1, 4), (3, -1)]:
        check(run([x, n, m], u, a, nv, mv), a.reshape(nv, mv))
        check_infer_shape(u, [x, n, m], a, nv, mv)


def test_reshape_static_inference_and_identity():
    x = ts.tensor("float32", (None, 6))
    assert ts.reshape(x, (-1, 2, 3)).type.shape == (None, 2, 3)
    assert ts.reshape(x, (x.shape[0] * 2, -1)).type.shape == (None, 3)
    assert ts.reshape(x, (2, -1)).type.shape == (2, None)
    assert ts.reshape(x, (x.shape[0], 6)) is x  # reshaping to its own shape
    assert ts.reshape(x, x.shape) is x
    assert isinstance(ts.reshape(x, (x.shape[0], 3, 2)).owner.op, Reshape)


def test_reshape_errors(rng):
    x = ts.tensor("float64", (2, 3))
    with pytest.raises(ShapeError, match=r"cannot reshape float64\[2,3\] \(size 6\) into shape \(5,\)"):
        ts.reshape(x, 5)
    with pytest.raises(ShapeError, match="size 6"):
        ts.reshape(x, (4, -1))
    with pytest.raises(ShapeError, match="one unknown dimension"):
        ts.reshape(x, (-1, -1))
    with pytest.raises(ShapeError, match="negative"):
        ts.reshape(x, (-2, -3))
    with pytest.raises(ShapeError, match="0"):
        ts.reshape(ts.dmatrix(), (0, -1))
    with pytest.raises(ShapeError, match="integer"):
        ts.reshape(x, (2.0, 3))
    with pytest.raises(ShapeError, match="static length"):
        ts.reshape(x, ts.lvector())
    xd = ts.dmatrix("xd")
    f = ts.function([xd], ts.reshape(xd, (5, -1)))
    with pytest.raises(OpRuntimeError, match="cannot reshape array of size 6") as info:
        f(np.zeros((2, 3)))
    assert isinstance(info.value.__cause__, ValueError)
    check(f(np.zeros((5, 2))), np.zeros((5, 2)))


@pytest.mark.parametrize("shape", [(2, 3, 4), (0, 3, 2), (3, 0, 2), (5,), ()])
def test_flatten(shape, rng):
    a = rng.uniform(size=shape)
    for x in placeholders(shape, "float64"):
        for ndim in range(1, max(len(shape), 1) + 1):
            y = ts.flatten(x, ndim)
            expected = a.reshape(a.shape[:ndim - 1] + (-1,)) if a.size else \
                a.reshape(a.shape[:ndim - 1] + (int(np.prod(a.shape[ndim - 1:])),))
            static_ok(y, expected.shape)
            check(run([x], y, a), expected)
        check(run([x], [ts.ravel(x), x.ravel(), x.flatten()], a)[1], a.ravel())
    assert ts.flatten(ts.tensor("float32", (None, 3, 4)), 2).type.shape == (None, 12)
    assert ts.ravel(ts.tensor("float32", (2, 3, 4))).type.shape == (24,)


def test_flatten_errors():
    x = ts.dmatrix()
    with pytest.raises(ShapeError, match="ndim"):
        ts.flatten(x, 0)
    with pytest.raises(ShapeError, match="ndim"):
        ts.flatten(x, 3)


def test_reshape_method_forms(rng):
    x = ts.dtensor3("x")
    a = rng.uniform(size=(2, 3, 4))
    outs = [x.reshape(6, 4), x.reshape((4, 6)), x.reshape([-1]), x.reshape(x.shape[0], -1)]
    for got, e in zip(run([x], outs, a), [a.reshape(6, 4), a.reshape(4, 6), a.ravel(), a.reshape(2, -1)]):
        check(got, e)


# ---------------------------------------------------------------------------------------------
# squeeze, transpose, swapaxes, moveaxis, expand_dims, dimshuffle
# ---------------------------------------------------------------------------------------------

def test_squeeze(rng):
    a = rng.uniform(size=(1, 3, 1, 2))
    x = ts.tensor("float64", (1, 3, 1, None))
    y = ts.squeeze(x)
    assert y.type.shape == (3, None)
    check(run([x], y, a), a.squeeze())
    check(run([x], x.squeeze(axis=-2), a), a.squeeze(axis=-2))
    check(run([x], ts.squeeze(x, (0, 2)), a), a.squeeze((0, 2)))
    assert ts.squeeze(ts.dmatrix()).ndim == 2  # unknown sizes are never squeezed implicitly
    # an unknown dim named explicitly is checked when the function runs
    xd = ts.dtensor3("xd")
    f = ts.function([xd], ts.squeeze(xd, 1))
    check(f(np.ones((2, 1, 3))), np.ones((2, 3)))
    with pytest.raises(OpRuntimeError, match="size is not 1"):
        f(np.ones((2, 2, 3)))
    with pytest.raises(ShapeError, match="size not equal to one"):
        ts.squeeze(x, 1)
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.squeeze(x, 4)


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (-1, 0, 1), (2, 1, 0)])
def test_transpose(axes, rng):
    a = data((2, 0, 3), "int16", rng) if axes == (2, 1, 0) else data((2, 3, 4), "int16", rng)
    x = ts.tensor("int16", a.shape)
    y = ts.transpose(x, axes)
    assert y.type.shape == np.transpose(a, axes).shape
    check(run([x], y, a), np.transpose(a, axes))


def test_transpose_swapaxes_moveaxis(rng):
    a = rng.uniform(size=(2, 3, 4, 5))
    x = ts.tensor("float64", (None, 3, None, 5))
    outs = [x.T, x.transpose(1, 0, 3, 2), x.transpose((3, 2, 1, 0)), ts.swapaxes(x, 0, -1),
            x.swapaxes(1, 2), x.mT, ts.moveaxis(x, 0, -1), ts.moveaxis(x, [0, 1], [-1, -2]),
            ts.moveaxis(x, -1, 1)]
    expected = [a.T, a.transpose(1, 0, 3, 2), a.transpose(3, 2, 1, 0), np.swapaxes(a, 0, -1),
                a.swapaxes(1, 2), np.swapaxes(a, -1, -2), np.moveaxis(a, 0, -1),
                np.moveaxis(a, [0, 1], [-1, -2]), np.moveaxis(a, -1, 1)]
    for y, got, e in zip(outs, run([x], outs, a), expected):
        check(got, e)
        static_ok(y, e.shape)
    assert ts.moveaxis(x, 0, -1).type.shape == (3, None, 5, None)
    with pytest.raises(ShapeError):
        ts.transpose(x, (0, 1, 2))
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.transpose(x, (0, 1, 2, 4))
    with pytest.raises(ShapeError, match="permutation"):
        ts.transpose(x, (0, 1, 1, 2))
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.swapaxes(x, 0, 4)
    with pytest.raises(ShapeError, match="repeated"):
        ts.moveaxis(x, [0, 0], [1, 2])


def test_expand_dims_and_dimshuffle(rng):
    a = rng.uniform(size=(2, 3))
    x = ts.tensor("float64", (None, 3))
    for axis in [0, -1, (0, 2), (-1, 1), (0, 1, 2)]:
        y = ts.expand_dims(x, axis)
        check(run([x], y, a), np.expand_dims(a, axis))
        static_ok(y, np.expand_dims(a, axis).shape)
    with pytest.raises(ShapeError, match="repeated"):
        ts.expand_dims(x, (1, 1))
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.expand_dims(x, 3)
    y = x.dimshuffle(1, "x", 0)
    assert y.type.shape == (3, 1, None)
    check(run([x], y, a), a.T[:, None, :])
    check_infer_shape(y, [x], a)
    assert ts.dimshuffle(x, 0, 1) is x
    with pytest.raises(ShapeError, match="drops dim 1"):
        x.dimshuffle(0)


# ---------------------------------------------------------------------------------------------
# broadcast_to, sum-to-shape
# ---------------------------------------------------------------------------------------------

def test_broadcast_to(rng):
    a = rng.uniform(size=(3, 1))
    x = ts.tensor("float64", (3, None), name="x")
    n = ts.lscalar("n")
    y = ts.broadcast_to(x, (2, 3, n))
    assert y.type.shape == (2, 3, None)  # dim 1 is fixed by x
    check(run([x, n], y, a, 4), np.broadcast_to(a, (2, 3, 4)))
    check_infer_shape(y, [x, n], a, 4)
    check(run([x], ts.broadcast_to(x, (0, 3, 0)), a), np.zeros((0, 3, 0)))
    # the output keeps x's static size even where the target is symbolic
    assert ts.broadcast_to(x, (n, n)).type.shape == (3, None)
    with pytest.raises(ShapeError, match="cannot broadcast"):
        ts.broadcast_to(x, (4, 2))
    with pytest.raises(ShapeError, match="2-d tensor to 1 dims"):
        ts.broadcast_to(x, (3,))
    with pytest.raises(ShapeError, match="negative"):
        ts.broadcast_to(x, (3, -1))
    with pytest.raises(OpRuntimeError, match="broadcast"):
        run([x, n], y, rng.uniform(size=(3, 2)), 4)


def test_sum_to_shape(rng):
    g = ts.dtensor3("g")
    a = rng.uniform(size=(2, 3, 4))
    for target in [(3, 4), (1, 4), (3, 1), (2, 1, 1), (1, 1, 4), ()]:
        y = SumToShape()(g, ts.constant(np.array(target, dtype=np.int64)))
        assert y.type.shape == target
        lead = 3 - len(target)
        axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(target) if s == 1)
        expected = a.sum(axis=axes, keepdims=True).reshape(target) if axes else a
        np.testing.assert_allclose(run([g], y, a), expected)
        check_infer_shape(y, [g], a)
    y = SumToShape()(g, ts.tensor("float32", (None, 4)).shape)
    assert y.type.shape == (None, 4)
    i8 = ts.tensor("int8", (None, None))
    check(run([i8], SumToShape()(i8, ts.constant(np.array([1, 2]))), np.full((3, 2), 100, "int8")),
          np.full((1, 2), 300, "int64").astype("int8"))
    with pytest.raises(ShapeError, match="cannot sum"):
        SumToShape()(ts.tensor("float64", (2, 3)), ts.constant(np.array([2, 4])))


# ---------------------------------------------------------------------------------------------
# concatenate, stack
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("int8", "uint8"), ("float32", "int64"),
                                    ("bool", "bool"), ("int16", "float16", "bool"),
                                    ("complex64", "float64")])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_matches_numpy(dtypes, axis, rng):
    shapes = [(2, 3), (2, 3), (2, 3)][:len(dtypes)]
    shapes = [tuple(s if d != axis % 2 else k for d, s in enumerate(sh)) for k, sh in enumerate(shapes)]
    arrays = [data(s, d, rng) for s, d in zip(shapes, dtypes)]
    expected = np.concatenate(arrays, axis=axis)
    for static in (True, False):
        xs = [ts.tensor(d, s if static else (None, None)) for s, d in zip(shapes, dtypes)]
        y = ts.concatenate(xs, axis=axis)
        assert isinstance(y.owner.op, Concatenate)
        assert y.dtype == expected.dtype.name
        static_ok(y, expected.shape)
        check(run(xs, y, *arrays), expected)
        check_infer_shape(y, xs, *arrays)
        if static:
            assert y.type.shape == expected.shape


def test_concatenate_static_shape_and_forms(rng):
    a = ts.tensor("float32", (None, 3))
    b = ts.tensor("float32", (2, None))
    assert ts.concatenate([a, b]).type.shape == (None, 3)
    assert ts.concatenate([a, b], axis=1).type.shape == (2, None)
    av, bv = rng.uniform(size=(4, 3)).astype("float32"), rng.uniform(size=(2, 3)).astype("float32")
    check(run([a, b], ts.concatenate([a, b], axis=None), av, bv), np.concatenate([av, bv], axis=None))
    check(run([a], ts.concatenate([a]), av), av)
    check(run([a], ts.concatenate([a, np.ones((1, 3), "float32")]), av),
          np.concatenate([av, np.ones((1, 3), "float32")]))
    # zero-size pieces
    z = ts.tensor("float32", (0, 3))
    y = ts.concatenate([z, a, z])
    check(run([a, z], y, av, np.zeros((0, 3), "float32")), av)


def test_concatenate_errors():
    a, b = ts.tensor("float32", (2, 3)), ts.tensor("float32", (2, 4))
    with pytest.raises(ShapeError, match=r"dimension 1 differs between the inputs float32\[2,3\] float32\[2,4\]"):
        ts.concatenate([a, b])
    with pytest.raises(ShapeError, match="same number of dimensions"):
        ts.concatenate([a, ts.fvector()])
    with pytest.raises(ShapeError, match="zero-dimensional"):
        ts.concatenate([ts.fscalar(), ts.fscalar()])
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.concatenate([a, a], axis=2)
    with pytest.raises(ValueError, match="at least one"):
        ts.concatenate([])
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    f = ts.function([x, y], ts.concatenate([x, y]))
    with pytest.raises(OpRuntimeError, match="must match exactly"):
        f(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(axis, rng):
    arrays = [rng.uniform(size=(2, 3)) for _ in range(3)]
    xs = [ts.tensor("float64", (None, 3)) for _ in arrays]
    y = ts.stack(xs, axis=axis)
    expected = np.stack(arrays, axis=axis)
    static_ok(y, expected.shape)
    assert y.type.shape[axis] == 3
    check(run(xs, y, *arrays), expected)
    with pytest.raises(ShapeError, match="same shape"):
        ts.stack([xs[0], ts.dvector()])
    with pytest.raises(ValueError, match="at least one"):
        ts.stack([])
    check(run([], ts.stack([1.0, 2.0])), np.array([1.0, 2.0]))


# ---------------------------------------------------------------------------------------------
# split
# ---------------------------------------------------------------------------------------------

SPLITS = [((6, 2), 3, 0), ((6, 2), 1, 0), ((2, 6), 2, -1), ((6, 2), [2, 5], 0), ((6, 2), [2], 0),
          ((6, 2), [5, 3], 0), ((6, 2), [-2, 9], 0), ((6, 2), [-4, -1], 0), ((0, 2), 2, 0),
          ((0, 2), [1], 0), ((3, 4), [0, 0, 4], 1), ((4,), [8, 2], 0)]


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("shape,ios,axis", SPLITS)
def test_split_matches_numpy(dtype, shape, ios, axis, rng):
    a = data(shape, dtype, rng)
    expected = np.split(a, ios, axis=axis)
    for x in placeholders(shape, dtype):
        parts = ts.split(x, ios, axis=axis)
        assert isinstance(parts, list) and len(parts) == len(expected)
        for p, got, e in zip(parts, run([x], parts, a), expected):
            static_ok(p, e.shape)
            check(got, e)
            check_infer_shape(p, [x], a)
    static_parts = ts.split(placeholders(shape, dtype)[0], ios, axis=axis)
    assert [p.type.shape for p in static_parts] == [e.shape for e in expected]


def test_split_symbolic_points(rng):
    x = ts.dmatrix("x")
    i, j = ts.lscalar("i"), ts.iscalar("j")
    a = rng.uniform(size=(7, 2))
    parts = ts.split(x, [i, j])
    for iv, jv in [(2, 5), (5, 2), (-3, 9), (0, 0)]:
        for p, got, e in zip(parts, run([x, i, j], parts, a, iv, jv), np.split(a, [iv, jv])):
            check(got, e)
            check_infer_shape(p, [x, i, j], a, iv, jv)
    v = ts.constant(np.array([1, 4]))
    for got, e in zip(run([x], ts.split(x, v), a), np.split(a, [1, 4])):
        check(got, e)
    for got, e in zip(run([x], ts.split(x, ts.constant(np.int64(7))), a), np.split(a, 7)):
        check(got, e)


def test_split_errors():
    x = ts.tensor("float64", (6, 2))
    with pytest.raises(ShapeError, match="equal division"):
        ts.split(x, 4)
    with pytest.raises(ValueError, match="larger than 0"):
        ts.split(x, 0)
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.split(x, 2, axis=2)
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.split(ts.dscalar(), 1)
    with pytest.raises(TypeError, match="known while tracing"):
        ts.split(x, ts.lscalar())
    xd = ts.dmatrix("xd")
    f = ts.function([xd], ts.split(xd, 4))
    with pytest.raises(OpRuntimeError, match="equal division"):
        f(np.zeros((6, 2)))


@given(n=st.integers(0, 6), points=st.lists(st.integers(-8, 8), max_size=4))
def test_split_property(n, points):
    """Any split points, overlapping or out of range: numpy's parts and inferred shapes."""
    a = np.arange(n * 2, dtype="float64").reshape(n, 2)
    x = ts.dmatrix("x")
    parts = ts.split(x, points) if points else ts.split(x, 1)
    expected = np.split(a, points) if points else [a]
    got = run([x], parts, a)
    for g, e in zip(got, expected):
        check(g, e)
    node = parts[0].owner
    shapes = node.op.infer_shape(node, [(shape_i(x, 0), shape_i(x, 1))])
    dims = run([x], [s[0] for s in shapes], a)
    assert [int(d) for d in dims] == [e.shape[0] for e in expected]


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

def _u(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).uniform(0.5, 1.5, size=shape)


GRAD_CASES = {
    Reshape: [
        (lambda x: ts.reshape(x, (x.shape[0], -1)) * ts.arange(12.0), [_u(2, 3, 4)]),
        (lambda x: x.reshape(4, 6).T, [_u(2, 3, 4)]),
        (lambda x: ts.flatten(x, 2) ** 2, [_u(2, 3, 2)]),
    ],
    Concatenate: [
        (lambda x, y: ts.concatenate([x, y * y, x], axis=1), [_u(2, 3), _u(2, 2)]),
        (lambda x, y: ts.stack([x, y], axis=-1), [_u(3), _u(3, seed=1)]),
    ],
    Split: [
        (lambda x: ts.split(x, [1, 3])[0] * ts.split(x, [1, 3])[2][:1], [_u(5, 2)]),
        (lambda x: ts.split(x, 2, axis=1)[1] ** 2, [_u(2, 4)]),
        (lambda x: ts.split(x, [4, 1])[0] * ts.split(x, [4, 1])[2], [_u(5)]),  # overlapping
    ],
    BroadcastTo: [
        (lambda x: ts.broadcast_to(x, (2, 3, 4)) * ts.arange(4.0), [_u(3, 1)]),
        (lambda x: ts.broadcast_to(x, (3, x.shape[0])) ** 2, [_u(2)]),
    ],
    DimShuffle: [
        (lambda x: x.dimshuffle(2, "x", 0, 1) * ts.arange(3.0), [_u(2, 3, 4)]),
        (lambda x: ts.squeeze(x, 1) ** 2, [_u(3, 1, 2)]),
        (lambda x: ts.moveaxis(x, 0, -1) ** 2, [_u(2, 3, 4)]),
    ],
    SumToShape: [
        (lambda g: SumToShape()(g, ts.constant(np.array([1, 3]))) ** 2, [_u(2, 2, 3)]),
        (lambda g: SumToShape()(g * g, ts.constant(np.array([2, 1]))), [_u(2, 3)]),
    ],
}


@pytest.mark.parametrize("op_class,i", [(k, i) for k, v in GRAD_CASES.items() for i in range(len(v))])
def test_verify_grad(op_class, i):
    fun, points = GRAD_CASES[op_class][i]
    out = fun(*[ts.tensor("float64", (None,) * p.ndim) for p in points])
    assert has_op(out, op_class)
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


def test_split_gradient_treats_unused_parts_as_zero():
    x = ts.dvector("x")
    first = ts.split(x, [2, 4])[1]
    g = ts.grad(ts.sum(first * first), x)
    a = np.arange(6.0)
    check(run([x], g, a), np.array([0, 0, 4.0, 6.0, 0, 0]))
    # overlapping parts: an element in two parts gets both contributions
    p = ts.split(x, [4, 2])
    g2 = ts.grad(ts.sum(p[0]) + ts.sum(p[2]), x)
    check(run([x], g2, a), np.array([1, 1, 2, 2, 1, 1.0]))


def test_concatenate_gradient_of_mixed_dtypes():
    """float32 and int inputs joined into float64: each float input gets a gradient of its own
    dtype, the integer one none."""
    f = ts.tensor("float32", (None,), name="f")
    i = ts.lvector("i")
    y = ts.concatenate([f, i])
    assert y.dtype == "float64"
    g = ts.grad(ts.sum(y * ts.arange(y.shape[0])), f)
    assert g.dtype == "float32"
    check(run([f, i], g, np.ones(2, "float32"), np.ones(3, "int64")), np.array([0, 1], "float32"))


def test_gradient_with_unknown_size_one_dims():
    """broadcast_to and reshape gradients where a dim of unknown static size is 1."""
    ts.verify_grad(lambda x: ts.broadcast_to(x, (4, x.shape[1])) ** 2, [_u(1, 3)])
    ts.verify_grad(lambda x, y: ts.concatenate([x, ts.broadcast_to(y, x.shape)], 0), [_u(2, 3), _u(1, 3)])
