"""pool_2d against a direct numpy loop (Theano's definition) for every mode, window, stride,
padding and border setting; its gradient Ops against finite differences (first and second
order) and the adjoint identities; shapes, dtypes, errors."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops.pool import AvgPoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool2d
from tracesym.ops.shape import shape_i


def ref_pool(x, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
    """Theano's Pool.perform: one window at a time, windows clipped to the padded image, and
    for every mode but average_inc_pad also to the image itself."""
    stride = stride or ws
    h, w = x.shape[-2:]
    rows, cols = h + 2 * pad[0], w + 2 * pad[1]

    def size(n, k, s):
        if ignore_border:
            return max((n - k) // s + 1, 0)
        return (n - 1) // s + 1 if s >= k else max(0, (n - 1 - k) // s + 1) + 1

    ho, wo = size(rows, ws[0], stride[0]), size(cols, ws[1], stride[1])
    xp = np.zeros(x.shape[:-2] + (rows, cols))
    xp[..., pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    y = np.zeros(x.shape[:-2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, r1 = i * stride[0], min(i * stride[0] + ws[0], rows)
            c0, c1 = j * stride[1], min(j * stride[1] + ws[1], cols)
            if mode != "average_inc_pad":
                r0, r1 = max(r0, pad[0]), min(r1, h + pad[0])
                c0, c1 = max(c0, pad[1]), min(c1, w + pad[1])
            win = xp[..., r0:r1, c0:c1]
            y[..., i, j] = (win.max(axis=(-2, -1)) if mode == "max" else
                            win.sum(axis=(-2, -1)) if mode == "sum" else
                            win.mean(axis=(-2, -1)))
    return y


def run(inputs, out, *values, mode=None):
    return ts.function(inputs, out, mode=mode, on_unused_input="ignore")(*values)


def _n(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).normal(size=shape)


MODES = ["max", "sum", "average_exc_pad", "average_inc_pad"]
SETTINGS = [
    # (ws, ignore_border, stride, pad)
    ((2, 2), True, None, (0, 0)),
    ((2, 2), False, None, (0, 0)),
    ((3, 2), True, (1, 1), (0, 0)),
    ((3, 2), False, (2, 1), (0, 0)),
    ((2, 3), False, (3, 4), (0, 0)),
    ((3, 3), True, (2, 2), (1, 1)),
    ((3, 2), True, (1, 2), (2, 0)),
    ((2, 2), True, (1, 1), (1, 1)),
    ((1, 1), True, (2, 2), (0, 0)),
    ((4, 4), True, None, (0, 0)),  # more window than image in one dim: an empty output
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("setting", SETTINGS, ids=[str(i) for i in range(len(SETTINGS))])
def test_pool_matches_the_direct_loop(setting, mode):
    ws, ib, stride, pad = setting
    x = _n(2, 3, 7, 3)
    expected = ref_pool(x, ws, ib, stride, pad, mode)
    for static in (True, False):
        X = ts.tensor("float64", x.shape if static else (None,) * 4)
        y = ts.nnet.pool_2d(X, ws, ignore_border=ib, stride=stride, pad=pad, mode=mode)
        assert isinstance(y.owner.op, Pool2d)
        assert y.type.shape == (expected.shape if static else (None,) * 4)
        for m in (None, "NONE"):
            np.testing.assert_allclose(run([X], y, x, mode=m), expected, rtol=1e-13, atol=1e-14)
        (shp,) = y.owner.op.infer_shape(y.owner, [[shape_i(X, k) for k in range(4)]])
        assert tuple(int(s) for s in run([X], list(shp), x)) == expected.shape


@pytest.mark.parametrize("shape", [(6, 5), (2, 6, 5), (1, 2, 2, 6, 5)])
def test_leading_dims_are_kept(shape):
    x = _n(*shape)
    X = ts.tensor("float64", (None,) * len(shape))
    for mode in ("max", "average"):
        got = run([X], ts.nnet.pool_2d(X, (2, 3), ignore_border=False, mode=mode), x)
        expected = ref_pool(x, (2, 3), False, None, (0, 0),
                            "average_exc_pad" if mode == "average" else mode)
        np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_average_means_average_exc_pad():
    x = np.ones((1, 1, 4, 4))
    X = ts.dtensor4("x")
    exc = run([X], ts.nnet.pool_2d(X, 3, stride=1, pad=(1, 1), mode="average"), x)
    inc = run([X], ts.nnet.pool_2d(X, 3, stride=1, pad=(1, 1), mode="average_inc_pad"), x)
    np.testing.assert_array_equal(exc, np.ones((1, 1, 4, 4)))  # padding not counted
    assert inc[0, 0, 0, 0] == pytest.approx(4 / 9) and inc[0, 0, 1, 1] == 1.0
    assert ts.nnet.pool_2d(X, 2, mode="average").owner.op.mode == "average_exc_pad"


def test_dtypes():
    xi = np.arange(32, dtype="int32").reshape(2, 4, 4)
    X = ts.tensor("int32", (None,) * 3)
    mx = ts.nnet.pool_2d(X, 2)
    avg = ts.nnet.pool_2d(X, 2, mode="average")
    assert mx.dtype == "int32" and avg.dtype == "float64"
    got_max, got_avg = run([X], [mx, avg], xi)
    np.testing.assert_array_equal(got_max, ref_pool(xi, (2, 2)).astype("int32"))
    np.testing.assert_allclose(got_avg, ref_pool(xi, (2, 2), mode="average_exc_pad"))
    F = ts.ftensor4("f")
    y = ts.nnet.pool_2d(F, 2, mode="average_inc_pad")
    assert y.dtype == "float32" and ts.grad(y.sum(), F).dtype == "float32"
    assert ts.grad(ts.nnet.pool_2d(F, 2).sum(), F).dtype == "float32"


def test_max_gradient_goes_to_the_first_maximum_of_each_window():
    x = np.array([[1.0, 3.0, 3.0, 0.0],
                  [3.0, 2.0, 0.0, 0.0]])
    X = ts.dmatrix("x")
    g = run([X], ts.grad(ts.nnet.pool_2d(X, 2).sum(), X), x)
    np.testing.assert_array_equal(g, [[0, 1, 1, 0], [0, 0, 0, 0]])  # (0, 1), not (1, 0)
    g = run([X], ts.grad(ts.nnet.pool_2d(X, (2, 2), stride=(1, 1)).sum(), X), x)
    np.testing.assert_array_equal(g, [[0, 2, 1, 0], [0, 0, 0, 0]])  # overlapping windows add up


@pytest.mark.parametrize("setting", SETTINGS[:8], ids=[str(i) for i in range(8)])
def test_gradients_are_adjoint_to_pooling(setting):
    """<pool(x), gz> equals <x, pool_grad(gz)> for the linear modes; for max pooling,
    <MaxPoolGrad(x, gz), g> equals <gz, MaxPoolGradGrad(x, g)>."""
    ws, ib, stride, pad = setting
    x = _n(2, 3, 7, 6)
    X, GZ, G = ts.dtensor4("x"), ts.dtensor4("gz"), ts.dtensor4("g")
    for mode in ("sum", "average_exc_pad", "average_inc_pad"):
        params = (ws, ib, stride, pad, mode)
        y = Pool2d(*params)(X)
        gz = _n(*ref_pool(x, *params).shape, seed=1)
        gx = AvgPoolGrad(*params)(GZ, shape_i(X, 2), shape_i(X, 3))
        y_v, gx_v = run([X, GZ], [y, gx], x, gz)
        np.testing.assert_allclose(np.vdot(x, gx_v), np.vdot(y_v, gz), rtol=1e-12)
    params = (ws, ib, stride, pad, "max")
    gz, g = _n(*ref_pool(x, *params).shape, seed=2), _n(*x.shape, seed=3)
    a, b = run([X, GZ, G], [MaxPoolGrad(*params)(X, GZ), MaxPoolGradGrad(*params)(X, G)], x, gz, g)
    assert a.shape == x.shape and b.shape == gz.shape
    np.testing.assert_allclose(np.vdot(a, g), np.vdot(gz, b), rtol=1e-12)


def test_gradients_agree_with_unrewritten_graph():
    x = _n(2, 2, 6, 6)
    X = ts.dtensor4("x")
    h = ts.tanh(ts.nnet.pool_2d(X, 2, mode="max"))
    cost = (ts.nnet.pool_2d(h, 3, ignore_border=False, mode="average") ** 2).sum()
    g = ts.grad(cost, X)
    np.testing.assert_allclose(run([X], g, x), run([X], g, x, mode="NONE"), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,error,match", [
    (dict(ws=(2, 0)), ShapeError, "ws must be"),
    (dict(ws=2, stride=(1, -1)), ShapeError, "stride must be"),
    (dict(ws=2, pad=(1, 1), ignore_border=False), ShapeError, "needs ignore_border=True"),
    (dict(ws=2, pad=(2, 0)), ShapeError, "smaller than ws"),
    (dict(ws=2, mode="median"), ValueError, "mode must be one of"),
])
def test_bad_parameters(kw, error, match):
    with pytest.raises(error, match=match):
        ts.nnet.pool_2d(ts.dtensor4(), **kw)


def test_input_must_have_two_dims():
    with pytest.raises(ShapeError, match="at least 2 dims") as e:
        ts.nnet.pool_2d(ts.dvector(), 2)
    assert "test_pool.py" in str(e.value)


@pytest.mark.parametrize("linker", ["numpy", "c"])
def test_gradient_shape_mismatch_at_run_time(linker):
    X, GZ = ts.dtensor4("x"), ts.dtensor4("gz")
    mode = ts.Mode(linker=linker)
    f = ts.function([X, GZ], MaxPoolGrad((2, 2), True, (2, 2), (0, 0), "max")(X, GZ), mode=mode)
    with pytest.raises(OpRuntimeError, match="pooled shape"):
        f(_n(1, 1, 4, 4), _n(1, 1, 3, 3))
    g = ts.function([GZ], AvgPoolGrad((2, 2), True, (2, 2), (0, 0), "sum")(GZ, 4, 4), mode=mode)
    with pytest.raises(OpRuntimeError, match=r"a 4x4 input pools to \(2, 2\)"):
        g(_n(1, 1, 3, 3))


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

def _pool(setting, mode):
    ws, ib, stride, pad = setting
    return lambda x: ts.nnet.pool_2d(x, ws, ignore_border=ib, stride=stride, pad=pad, mode=mode)


X0 = _n(2, 2, 7, 6)  # distinct values: no ties in a max-pooling window
GRAD_CASES = {
    Pool2d: [(_pool(s, m), [X0]) for s, m in zip(SETTINGS[:8], MODES * 2)],
    MaxPoolGrad: [
        (lambda gz: MaxPoolGrad((3, 2), False, (2, 1), (0, 0), "max")(X0, gz),
         [_n(2, 2, 3, 5, seed=1)]),
        (lambda gz: MaxPoolGrad((3, 3), True, (2, 2), (1, 1), "max")(X0, gz),
         [_n(2, 2, 4, 3, seed=1)]),
    ],
    MaxPoolGradGrad: [
        (lambda g: MaxPoolGradGrad((2, 2), True, (1, 1), (1, 1), "max")(X0, g), [_n(2, 2, 7, 6)]),
    ],
    AvgPoolGrad: [
        (lambda gz: AvgPoolGrad((3, 3), True, (2, 2), (1, 1), "average_inc_pad")(gz, 7, 6),
         [_n(2, 2, 4, 3, seed=1)]),
        (lambda gz: AvgPoolGrad((3, 2), False, (2, 1), (0, 0), "average_exc_pad")(gz, 7, 6),
         [_n(2, 2, 3, 5, seed=1)]),
        (lambda gz: AvgPoolGrad((2, 2), True, None, (0, 0), "sum")(gz, 7, 6),
         [_n(2, 2, 3, 3, seed=1)]),
    ],
}


@pytest.mark.parametrize("setting,mode", list(zip(SETTINGS[:8], MODES * 2)))
def test_second_order_gradients(setting, mode):
    pool = _pool(setting, mode)
    ts.verify_grad(lambda x: ts.grad((pool(x) ** 2).sum(), x), [X0], rng=np.random.default_rng(4))


def test_the_c_linker_runs_the_pool_ops():
    x = _n(2, 3, 7, 6)
    X = ts.dtensor4("x")
    h = ts.nnet.pool_2d(ts.exp(X), 3, stride=2, pad=(1, 1), mode="average_inc_pad")
    y = ts.nnet.pool_2d(h * 2, 2, ignore_border=False)
    outs = [y, ts.grad((y ** 2).sum(), X)]
    ref = run([X], outs, x, mode="NONE")
    got = ts.function([X], outs, mode=ts.Mode(linker="c"))(x)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("setting", SETTINGS, ids=[str(i) for i in range(len(SETTINGS))])
def test_c_kernels_match_the_numpy_ops(setting, mode, dtype, tol):
    """The C steps of pooling and its gradients against the Ops' numpy `perform`, with ties
    (a coarse grid of values) and for an empty batch."""
    from tracesym.backend.c.linker import kernel_steps

    ws, ib, stride, pad = setting
    params = (ws, ib, stride, pad, mode)
    X, G = ts.tensor(dtype, (None,) * 4), ts.tensor(dtype, (None,) * 4)
    z = Pool2d(*params)(X)
    nodes = [z.owner]
    if mode == "max":
        nodes += [MaxPoolGrad(*params)(X, G).owner, MaxPoolGradGrad(*params)(X, G).owner]
    else:
        nodes.append(AvgPoolGrad(*params)(G, shape_i(X, -2), shape_i(X, -1)).owner)
    steps = kernel_steps(nodes, ts.config.compiledir)
    assert all(s.__module__ == "tracesym.backend.c.nnet" for s in steps)
    for n in (2, 0):
        x = np.round(_n(n, 3, 7, 6) * 2).astype(dtype)
        pooled = nodes[0].op.perform(nodes[0], [x])[0]
        gz, g = _n(*pooled.shape, seed=1).astype(dtype), _n(*x.shape, seed=2).astype(dtype)
        args = [[x]] + ([[x, gz], [x, g]] if mode == "max" else [[gz, 7, 6]])
        for node, step, a in zip(nodes, steps, args):
            (got,), (want,) = step(list(a)), node.op.perform(node, list(a))
            assert got.dtype == want.dtype == dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["max", "average_inc_pad"])
@pytest.mark.parametrize("window", [((3, 3), True, (2, 2), (1, 1)), ((2, 2), True, None, (0, 0))],
                         ids=["3x3", "2x2"])
def test_c_kernels_on_threaded_batches(window, mode):
    """Enough planes for the kernels' threads, odd image sizes (2x2 windows leave a row and a
    column out): the same results as `perform`."""
    from tracesym.backend.c.linker import kernel_steps

    params = (*window, mode)
    X, G = ts.ftensor4("x"), ts.ftensor4("g")
    nodes = [Pool2d(*params)(X).owner]
    nodes.append(MaxPoolGrad(*params)(X, G).owner if mode == "max" else
                 AvgPoolGrad(*params)(G, shape_i(X, -2), shape_i(X, -1)).owner)
    x = np.round(_n(40, 16, 13, 11) * 2).astype("float32")
    gz = _n(*nodes[0].op.perform(nodes[0], [x])[0].shape, seed=1).astype("float32")
    args = [[x], [x, gz] if mode == "max" else [gz, 13, 11]]
    for node, step, a in zip(nodes, kernel_steps(nodes, ts.config.compiledir), args):
        np.testing.assert_allclose(step(list(a))[0], node.op.perform(node, list(a))[0],
                                   rtol=1e-5, atol=1e-5)


def test_c_max_pool_propagates_nan_and_integers_run_in_numpy():
    from tracesym.backend.c.linker import kernel_steps

    X = ts.dtensor4("x")
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    (step,) = kernel_steps([ts.nnet.pool_2d(X, 2).owner], ts.config.compiledir)
    got = step([x])[0]
    assert np.isnan(got[0, 0, 0, 0]) and (got[0, 0, 1] == 0).all()
    # the gradient passes over NaNs, as `>` does, except a NaN first element, which keeps it
    x = np.array([[[[np.nan, 1, 1, np.nan], [3, np.nan, np.nan, 2]]]])
    node = MaxPoolGrad((2, 2), True, None, (0, 0), "max")(X, ts.dtensor4("g")).owner
    (step,) = kernel_steps([node], ts.config.compiledir)
    args = [x, np.array([[[[5.0, 7.0]]]])]
    np.testing.assert_array_equal(step(list(args))[0], node.op.perform(node, list(args))[0])
    assert step(list(args))[0].sum() == 12
    I = ts.tensor("int32", (None,) * 4)
    (step,) = kernel_steps([ts.nnet.pool_2d(I, 2).owner], ts.config.compiledir)
    xi = np.arange(32, dtype="int32").reshape(1, 2, 4, 4)
    np.testing.assert_array_equal(step([xi])[0], ref_pool(xi, (2, 2)))
