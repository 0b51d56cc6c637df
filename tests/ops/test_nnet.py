"""Neural-net basics against numpy: softmax, logsoftmax, relu, one_hot and the
cross-entropy losses.  Dtypes, axes, zero-size and unknown shapes, extreme logits, errors and
gradients."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops.nnet import (LogSoftmax, OneHot, Softmax, SoftmaxCrossEntropy,
                               SoftmaxCrossEntropyGrad, SoftmaxGrad)
from tracesym.ops.shape import shape_i
from tracesym.trace.graph import ancestors


def run(inputs, out, *values):
    return ts.function(inputs, out, on_unused_input="ignore")(*values)


def check(got, expected, rtol=0.0, atol=0.0):
    expected = np.asarray(expected)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if rtol or atol:
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, expected)


def static_ok(var, shape):
    assert var.ndim == len(shape)
    assert all(s is None or s == r for s, r in zip(var.type.shape, shape)), (var.type, shape)


def check_infer_shape(var, inputs, *values):
    node = var.owner
    in_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs]
    (shp,) = node.op.infer_shape(node, in_shapes)
    assert len(shp) == var.ndim
    real = run(inputs, var, *values).shape
    if shp:
        got = run(inputs, list(shp), *values)
        assert tuple(int(g) for g in got) == real


def np_softmax(a, axis=-1):
    """The reference: float64, max-shifted (numpy has no softmax)."""
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(a, axis=-1):
    """The naive reference log(exp(a) / sum(exp(a))), for inputs where it does not overflow."""
    return np.log(np.exp(a) / np.sum(np.exp(a), axis=axis, keepdims=True))


def placeholders(shape, dtype):
    return ts.tensor(dtype, shape, name="x"), ts.tensor(dtype, (None,) * len(shape), name="xd")


def _tol(dtype):
    return {"float16": 2e-3, "float32": 1e-6}.get(np.dtype(dtype).name, 1e-14)


def logits(shape, dtype, rng):
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-5, 6, shape).astype(dtype)
    return (rng.normal(size=shape) * 3).astype(dtype)


# ---------------------------------------------------------------------------------------------
# softmax, logsoftmax
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn,ref", [("softmax", np_softmax), ("logsoftmax", np_log_softmax),
                                    ("log_softmax", np_log_softmax)])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int64"])
@pytest.mark.parametrize("shape,axis", [((3, 4), -1), ((3, 4), 0), ((2, 3, 4), None),
                                        ((2, 3, 4), (0, -1)), ((5,), -1), ((0, 4), -1),
                                        ((3, 0), 1), ((2, 1, 3), 1)])
def test_softmax_matches_numpy(fn, ref, dtype, shape, axis, rng):
    a = logits(shape, dtype, rng)
    out_dtype = np.exp(np.zeros(0, dtype)).dtype
    if a.size:
        expected = ref(a.astype("float64"), axis=axis).astype(out_dtype)
    else:
        expected = np.zeros(shape, out_dtype)
    for x in placeholders(shape, dtype):
        out = getattr(ts, fn)(x, axis=axis)
        assert isinstance(out.owner.op, (Softmax, LogSoftmax)) and out.dtype == out_dtype.name
        static_ok(out, shape)
        tol = _tol(out_dtype)
        check(run([x], out, a), expected, rtol=tol, atol=tol)
        check_infer_shape(out, [x], a)
    assert getattr(ts, fn)(placeholders(shape, dtype)[0], axis=axis).type.shape == shape


def test_softmax_default_axis_is_last(rng):
    a = rng.normal(size=(2, 3, 4))
    x = ts.dtensor3("x")
    sm, lsm = run([x], [ts.softmax(x), ts.logsoftmax(x)], a)
    np.testing.assert_allclose(sm.sum(axis=-1), np.ones((2, 3)), rtol=1e-14)
    check(lsm, np_log_softmax(a, axis=-1), rtol=1e-14, atol=1e-14)
    assert ts.softmax(x).owner.op == Softmax((2,))
    assert ts.softmax(x, axis=None).owner.op == Softmax((0, 1, 2))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_extreme_logits(dtype):
    a = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], dtype)
    x = ts.tensor(dtype, (None, None))
    sm, lsm = run([x], [ts.softmax(x), ts.logsoftmax(x)], a)
    check(sm, np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], dtype), rtol=_tol(dtype))
    check(lsm[0], np.array([0.0, -2000.0, -1000.0], dtype))
    check(lsm[1], np.full(3, -np.log(3.0), dtype), rtol=_tol(dtype))
    # a -inf logit is a zero probability, not a nan
    b = np.array([[-np.inf, 0.0, 0.0]], dtype)
    sm, lsm = run([x], [ts.softmax(x), ts.logsoftmax(x)], b)
    check(sm, np.array([[0.0, 0.5, 0.5]], dtype))
    check(lsm, np.array([[-np.inf, -np.log(2.0), -np.log(2.0)]], dtype), rtol=_tol(dtype))


def test_softmax_errors():
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.softmax(ts.dmatrix(), axis=2)
    with pytest.raises(ShapeError, match="out of bounds"):
        ts.logsoftmax(ts.dscalar())  # no last axis
    with pytest.raises(TypeError, match="complex"):
        ts.softmax(ts.zvector())
    with pytest.raises(ShapeError):
        Softmax((-1,))(ts.dmatrix())


# ---------------------------------------------------------------------------------------------
# relu, one_hot
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int64"])
def test_relu(dtype):
    a = np.array([-2, -0.0, 0, 1.5, 3], dtype=dtype) if dtype[0] == "f" else np.arange(-2, 3, dtype=dtype)
    x = ts.tensor(dtype, (None,))
    out = ts.relu(x)
    assert out.dtype == dtype
    check(run([x], out, a), np.maximum(a, 0))


def test_relu_nan_and_gradient():
    x = ts.dvector("x")
    out, g = run([x], [ts.relu(x), ts.grad(ts.sum(ts.relu(x)), x)], np.array([-1.0, 0.0, 2.0, np.nan]))
    check(out[:3], np.array([0.0, 0.0, 2.0]))
    assert np.isnan(out[3])
    check(g[:3], np.array([0.0, 0.0, 1.0]))  # 0 at x = 0


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(axis, rng):
    labels = rng.integers(0, 4, (3, 5))
    y = ts.lmatrix("y")
    out = ts.one_hot(y, 4, axis=axis)
    expected = np.moveaxis(np.eye(4, dtype=ts.config.floatX)[labels], -1, axis)
    assert out.dtype == ts.config.floatX
    check(run([y], out, labels), expected)
    static_ok(out, expected.shape)
    assert out.type.shape[axis] == 4
    check_infer_shape(out, [y], labels)


def test_one_hot_dtypes_symbolic_size_and_errors():
    y = ts.ivector("y")
    n = ts.lscalar("n")
    out = ts.one_hot(y, n, dtype="int8")
    assert out.type.shape == (None, None) and out.dtype == "int8"
    check(run([y, n], out, np.array([2, 0], "int32"), 3), np.array([[0, 0, 1], [1, 0, 0]], "int8"))
    check(run([y, n], out, np.zeros(0, "int32"), 3), np.zeros((0, 3), "int8"))
    f = ts.function([y, n], out)
    with pytest.raises(OpRuntimeError, match=r"out of range.*\[0, 3\)"):
        f(np.array([0, 3], "int32"), 3)
    with pytest.raises(OpRuntimeError, match="out of range"):
        f(np.array([-1], "int32"), 3)
    with pytest.raises(TypeError, match="integers"):
        ts.one_hot(ts.dvector(), 3)
    with pytest.raises(TypeError, match="integer scalar"):
        ts.one_hot(y, ts.dscalar())
    assert not OneHot.differentiable


# ---------------------------------------------------------------------------------------------
# cross-entropy
# ---------------------------------------------------------------------------------------------

def ref_sce(a, labels, axis=-1):
    lsm = np_log_softmax(a.astype("float64"), axis=axis)
    return -np.squeeze(np.take_along_axis(lsm, np.expand_dims(labels, axis), axis), axis)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32"])
@pytest.mark.parametrize("shape,axis", [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1), ((6,), 0),
                                        ((0, 5), -1)])
def test_softmax_cross_entropy_int_labels(dtype, shape, axis, rng):
    a = logits(shape, dtype, rng)
    ax = axis % len(shape)
    lshape = shape[:ax] + shape[ax + 1:]
    labels = rng.integers(0, shape[ax], lshape)
    out_dtype = np.exp(np.zeros(0, dtype)).dtype
    expected = ref_sce(a, labels, ax).astype(out_dtype)
    for x in placeholders(shape, dtype):
        y = ts.tensor("int64", (None,) * len(lshape), name="y")
        out = ts.softmax_cross_entropy(x, y, axis=axis)
        assert isinstance(out.owner.op, SoftmaxCrossEntropy) and out.dtype == out_dtype.name
        static_ok(out, lshape)
        tol = _tol(out_dtype)
        check(run([x, y], out, a, labels), expected, rtol=tol, atol=tol)
        check_infer_shape(out, [x, y], a, labels)
    x = placeholders(shape, dtype)[0]
    assert ts.softmax_cross_entropy(x, ts.tensor("int32", (None,) * len(lshape)),
                                    axis=axis).type.shape == lshape


def test_softmax_cross_entropy_extreme_logits():
    x = ts.dmatrix("x")
    y = ts.lvector("y")
    loss = ts.softmax_cross_entropy(x, y)
    g = ts.grad(ts.sum(loss), x)
    a = np.array([[1000.0, -1000.0], [1000.0, -1000.0], [1000.0, 1000.0], [-np.inf, 0.0]])
    got_loss, got_g = run([x, y], [loss, g], a, np.array([0, 1, 1, 1]))
    check(got_loss, np.array([0.0, 2000.0, np.log(2.0), 0.0]))
    check(got_g, np.array([[0.0, 0.0], [1.0, -1.0], [0.5, -0.5], [0.0, 0.0]]))
    f32 = ts.fmatrix("f")
    check(run([f32, y], ts.softmax_cross_entropy(f32, y), a[:2].astype("float32"), np.array([0, 1])),
          np.array([0.0, 2000.0], "float32"))


def test_softmax_cross_entropy_probability_labels(rng):
    a = rng.normal(size=(3, 4))
    p = np_softmax(rng.normal(size=(3, 4)), axis=0)
    x, t = ts.dmatrix("x"), ts.dmatrix("t")
    out = ts.softmax_cross_entropy(x, t, axis=0)
    check(run([x, t], out, a, p), -(p * np_log_softmax(a, axis=0)).sum(axis=0),
          rtol=1e-14)
    with pytest.raises(ShapeError, match="dimensions"):
        ts.softmax_cross_entropy(x, ts.dvector())


def test_softmax_cross_entropy_errors():
    x = ts.tensor("float64", (4, 3))
    with pytest.raises(ShapeError, match="without axis"):
        ts.softmax_cross_entropy(x, ts.lmatrix())
    with pytest.raises(ShapeError, match="do not match"):
        ts.softmax_cross_entropy(x, ts.tensor("int64", (3,)))
    ts.softmax_cross_entropy(x, ts.tensor("int64", (3,)), axis=0)  # fine along axis 0
    with pytest.raises(TypeError, match="integers"):
        SoftmaxCrossEntropy(1)(x, ts.bvector().astype("bool"))
    xd, y = ts.dmatrix("x"), ts.lvector("y")
    f = ts.function([xd, y], ts.softmax_cross_entropy(xd, y))
    with pytest.raises(OpRuntimeError, match=r"label 3 is out of range.*\[0, 3\)"):
        f(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(OpRuntimeError, match="out of range"):
        f(np.zeros((2, 3)), np.array([-1, 0]))
    with pytest.raises(OpRuntimeError, match="do not match"):
        f(np.zeros((2, 3)), np.array([0, 1, 2]))


def test_categorical_crossentropy(rng):
    p = np_softmax(rng.normal(size=(4, 5)), axis=-1)
    labels = np.array([0, 4, 2, 2])
    c, y, t = ts.dmatrix("c"), ts.lvector("y"), ts.dmatrix("t")
    got = run([c, y], ts.categorical_crossentropy(c, y), p, labels)
    check(got, -np.log(p[np.arange(4), labels]), rtol=1e-15)
    onehot = np.eye(5)[labels]
    got = run([c, t], ts.categorical_crossentropy(c, t), p, onehot)
    check(got, -np.log(p[np.arange(4), labels]), rtol=1e-15)
    # a zero target against a zero probability contributes 0, not nan
    q = np.array([[0.0, 1.0], [0.5, 0.5]])
    check(run([c, t], ts.categorical_crossentropy(c, t), q, np.array([[0.0, 1.0], [0.0, 1.0]])),
          np.array([0.0, np.log(2.0)]))
    check(run([c, t], ts.grad(ts.sum(ts.categorical_crossentropy(c, t)), c), q,
              np.array([[0.0, 1.0], [0.0, 1.0]])), np.array([[0.0, -1.0], [0.0, -2.0]]))
    # other probabilities, even inf or nan, do not leak into a label's loss
    bad = np.array([[np.nan, 0.5], [np.inf, 0.25]])
    check(run([c, y], ts.categorical_crossentropy(c, y), bad, np.array([1, 1])),
          -np.log(np.array([0.5, 0.25])))
    f32, i32 = ts.fmatrix("f"), ts.ivector("i")
    out = ts.categorical_crossentropy(f32, i32)
    assert out.dtype == "float32"
    check(run([f32, i32], out, p.astype("float32"), labels.astype("int32")),
          -np.log(p[np.arange(4), labels].astype("float32")), rtol=1e-6)


def test_categorical_crossentropy_errors():
    with pytest.raises(ShapeError, match="class axis"):
        ts.categorical_crossentropy(ts.dscalar(), ts.lscalar())
    with pytest.raises(ShapeError, match="integer labels"):
        ts.categorical_crossentropy(ts.dmatrix(), ts.dvector())
    c, y = ts.dmatrix("c"), ts.lvector("y")
    with pytest.raises(OpRuntimeError, match="out of range"):
        run([c, y], ts.categorical_crossentropy(c, y), np.full((1, 2), 0.5), np.array([2]))


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

_r = np.random.default_rng(0)


def _n(*shape):
    return _r.normal(size=shape)


LABELS = np.array([2, 0, 3])
LABELS_3D = np.array([[1, 0], [2, 2]])

GRAD_CASES = {
    Softmax: [
        (lambda x: ts.softmax(x), [_n(3, 4)]),
        (lambda x: ts.softmax(x, axis=0), [_n(3, 4)]),
        (lambda x: ts.softmax(x, axis=None), [_n(2, 3, 2)]),
        (lambda x: ts.softmax(x * 300.0, axis=(0, 2)), [_n(2, 3, 2)]),
    ],
    SoftmaxGrad: [
        (lambda dy, x: SoftmaxGrad((1,))(dy, ts.softmax(x)), [_n(3, 4), _n(3, 4)]),
        (lambda dy, x: SoftmaxGrad((0, 2))(dy, ts.softmax(x, axis=(0, 2))),
         [_n(2, 3, 2), _n(2, 3, 2)]),
        (lambda dy, x: SoftmaxGrad((1,))(dy, ts.softmax(x)), [_n(1, 4), _n(3, 4)]),
    ],
    LogSoftmax: [
        (lambda x: ts.logsoftmax(x), [_n(3, 4)]),
        (lambda x: ts.log_softmax(x, axis=1), [_n(2, 3, 2)]),
        (lambda x: ts.logsoftmax(x * 300.0, axis=None), [_n(5)]),
    ],
    SoftmaxCrossEntropy: [
        (lambda x: ts.softmax_cross_entropy(x, LABELS), [_n(3, 4)]),
        (lambda x: ts.softmax_cross_entropy(x, LABELS, axis=0), [_n(4, 3)]),
        (lambda x: ts.softmax_cross_entropy(x, LABELS_3D, axis=1), [_n(2, 3, 2)]),
        (lambda x: ts.softmax_cross_entropy(x * 300.0, LABELS), [_n(3, 4)]),
        (lambda x: SoftmaxCrossEntropy(1, prefix=True)(x, LABELS), [_n(5, 4)]),  # rows 3, 4
        (lambda x: SoftmaxCrossEntropy(0, prefix=True)(x, LABELS), [_n(4, 6)]),  # unlabelled
    ],
    SoftmaxCrossEntropyGrad: [
        (lambda dy, x: SoftmaxCrossEntropyGrad(1)(dy, x, LABELS), [_n(3), _n(3, 4)]),
        (lambda dy, x: SoftmaxCrossEntropyGrad(0)(dy, x, LABELS), [_n(1), _n(4, 3)]),
        (lambda dy, x: SoftmaxCrossEntropyGrad(1)(dy, x, LABELS_3D), [_n(2), _n(2, 3, 2)]),
        (lambda dy, x: SoftmaxCrossEntropyGrad(1, True)(dy, x, LABELS), [_n(3), _n(5, 4)]),
        (lambda dy, x: SoftmaxCrossEntropyGrad(0, True)(dy, x, LABELS), [_n(1), _n(4, 3)]),
    ],
}


@pytest.mark.parametrize("op_class,i", [(k, i) for k, v in GRAD_CASES.items() for i in range(len(v))])
def test_verify_grad(op_class, i):
    fun, points = GRAD_CASES[op_class][i]
    out = fun(*[ts.tensor("float64", (None,) * p.ndim) for p in points])
    assert any(v.owner is not None and isinstance(v.owner.op, op_class) for v in ancestors([out]))
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


@pytest.mark.parametrize("fun", [
    lambda x: ts.relu(x - 0.1),
    lambda x: ts.categorical_crossentropy(ts.softmax(x), LABELS),
    lambda x: ts.categorical_crossentropy(ts.softmax(x), np.eye(4)[LABELS] * 0.7 + 0.075),
    lambda x: ts.softmax_cross_entropy(x, ts.softmax(x * 0.5)),
])
def test_composed_gradients(fun):
    ts.verify_grad(fun, [_n(3, 4)], rng=np.random.default_rng(5))


def test_second_order_gradients():
    """The gradients are built from differentiable Ops, so they differentiate again."""
    def grad_of(loss):
        def f(x):
            return ts.grad(ts.sum(loss(x) * np.array([1.0, 2.0, 3.0])), x)
        return f

    for loss in [lambda x: ts.softmax_cross_entropy(x, LABELS), lambda x: ts.logsoftmax(x)[:, 1],
                 lambda x: ts.softmax(x)[:, 2], lambda x: ts.logsumexp(x, axis=1)]:
        ts.verify_grad(grad_of(loss), [_n(3, 4)], rng=np.random.default_rng(6))


def test_cross_entropy_gradient_is_softmax_minus_one_hot(rng):
    a = rng.normal(size=(3, 4)) * 50
    x, y = ts.dmatrix("x"), ts.lvector("y")
    g = run([x, y], ts.grad(ts.sum(ts.softmax_cross_entropy(x, y)), x), a, LABELS)
    check(g, np_softmax(a, axis=-1) - np.eye(4)[LABELS], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("axis,shape,dy_shape", [(1, (5, 4), (5,)), (1, (5, 4), ()),
                                                  (0, (4, 5), (1,)), (1, (2, 3, 4), (2, 4)),
                                                  (-1, (0, 4), (0,))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_cross_entropy_grad_op(axis, shape, dy_shape, dtype, rng):
    """dy * (softmax(x) - one_hot(y)) along the axis, dy broadcast to the labels' shape."""
    a = (rng.normal(size=shape) * 30).astype(dtype)
    lshape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    labels = rng.integers(0, shape[axis], lshape)
    dy = rng.normal(size=dy_shape).astype(dtype)
    x, d, y = ts.tensor(dtype, (None,) * len(shape)), ts.tensor(dtype, (None,) * len(dy_shape)), \
        ts.tensor("int64", (None,) * len(lshape))
    out = SoftmaxCrossEntropyGrad(axis % len(shape))(d, x, y)
    code = np.moveaxis(np.eye(shape[axis])[labels], -1, axis % len(shape))
    want = np.expand_dims(np.broadcast_to(dy, lshape), axis) * (np_softmax(a.astype("float64"), axis) - code)
    tol = 1e-6 if dtype == "float32" else 1e-13
    check(run([d, x, y], out, dy, a, labels), want.astype(dtype), rtol=tol, atol=tol)


def test_softmax_cross_entropy_grad_errors():
    x, y = ts.dmatrix("x"), ts.lvector("y")
    with pytest.raises(ShapeError, match="broadcast to the labels"):
        SoftmaxCrossEntropyGrad(1)(ts.tensor("float64", (3,)), ts.tensor("float64", (4, 2)), y)
    with pytest.raises(ShapeError, match="more dimensions"):
        SoftmaxCrossEntropyGrad(1)(ts.dmatrix(), x, y)
    f = ts.function([x, y], SoftmaxCrossEntropyGrad(1)(1.0, x, y))
    with pytest.raises(OpRuntimeError, match="label 4 is out of range"):
        f(np.zeros((2, 4)), np.array([0, 4]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_dtypes(dtype):
    x = ts.tensor(dtype, (None, 4))
    for out in [ts.softmax(x), ts.logsoftmax(x), ts.softmax_cross_entropy(x, LABELS), ts.relu(x)]:
        g = ts.grad(ts.sum(out), x)
        assert g.dtype == dtype
        assert run([x], g, np.ones((3, 4), dtype)).dtype == dtype


@pytest.mark.parametrize("linker", ["c", "numpy"])
def test_prefix_labels_cover_the_first_rows(linker, rng):
    """`prefix`: the labels label the first len(labels) rows (what `[arange(len(y)), y]`
    indexes); the gradient is 0 on the others; more labels than rows is the indexing's
    IndexError, named at the user's line."""
    x, y, d = ts.dmatrix("x"), ts.lvector("y"), ts.dvector("d")
    mode = ts.Mode(None, linker=linker)
    f = ts.function([x, y, d], [SoftmaxCrossEntropy(1, True)(x, y),
                                SoftmaxCrossEntropyGrad(1, True)(d, x, y)], mode=mode)
    a = rng.normal(size=(5, 4)) * 20
    for n in (3, 5, 0):
        lab = rng.integers(0, 4, n)
        dv = rng.normal(size=n)
        ce, g = f(a, lab, dv)
        want_ce = -np.log(np_softmax(a[:n], axis=-1)[np.arange(n), lab])
        check(ce, want_ce, rtol=1e-12, atol=1e-12)
        want_g = np.zeros_like(a)
        want_g[:n] = dv[:, None] * (np_softmax(a[:n], axis=-1) - np.eye(4)[lab])
        check(g, want_g, rtol=1e-12, atol=1e-15)
        assert np.all(g[n:] == 0)
    with pytest.raises(OpRuntimeError, match=r"index 5 is out of bounds for axis 0 with size 5"):
        f(a, rng.integers(0, 4, 6), rng.normal(size=6))
    with pytest.raises(ShapeError, match="6 labels"):
        SoftmaxCrossEntropy(1, True)(ts.tensor("float64", (5, 4)), ts.tensor("int64", (6,)))
