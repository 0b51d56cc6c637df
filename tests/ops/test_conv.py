"""conv2d against a direct numpy loop in every border mode, stride, dilation, group count and
filter orientation; its two gradient Ops against the adjoint identities and finite
differences (first and second order); static and inferred shapes; dtypes; errors."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops.conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from tracesym.ops.shape import shape_i
from tracesym.trace.graph import ancestors


def ref_conv2d(x, w, border_mode="valid", subsample=(1, 1), filter_flip=True,
               filter_dilation=(1, 1), groups=1):
    """The definition, one output pixel at a time."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = subsample, filter_dilation
    if filter_flip:
        w = w[:, :, ::-1, ::-1]
    pads = {"valid": (0, 0), "full": (dh * (kh - 1), dw * (kw - 1)),
            "half": (dh * (kh // 2), dw * (kw // 2))}
    ph, pw = pads.get(border_mode, border_mode) if not isinstance(border_mode, int) \
        else (border_mode, border_mode)
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, ho, wo))
    og = o // groups
    for k in range(o):
        g = k // og
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                           j * sw:j * sw + dw * (kw - 1) + 1:dw]
                y[:, k, i, j] = np.tensordot(patch, w[k], axes=3)
    return y


def run(inputs, out, *values, mode=None):
    return ts.function(inputs, out, mode=mode, on_unused_input="ignore")(*values)


def _n(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).normal(size=shape)


CONFIGS = [
    # (x shape, w shape, border_mode, subsample, filter_flip, filter_dilation, groups)
    ((2, 3, 7, 8), (4, 3, 3, 3), "valid", (1, 1), True, (1, 1), 1),
    ((2, 3, 7, 8), (4, 3, 3, 2), "full", (1, 1), True, (1, 1), 1),
    ((2, 3, 7, 8), (4, 3, 3, 3), "half", (1, 1), False, (1, 1), 1),
    ((2, 3, 7, 8), (4, 3, 2, 4), "half", (1, 1), True, (1, 1), 1),
    ((1, 2, 9, 6), (3, 2, 3, 2), (1, 2), (1, 1), True, (1, 1), 1),
    ((1, 2, 9, 6), (3, 2, 3, 2), 2, (1, 1), False, (1, 1), 1),
    ((2, 3, 9, 10), (4, 3, 3, 3), "valid", (2, 3), True, (1, 1), 1),
    ((2, 3, 9, 10), (4, 3, 3, 3), "full", (3, 2), False, (1, 1), 1),
    ((2, 2, 11, 9), (3, 2, 3, 2), "valid", (1, 1), True, (2, 3), 1),
    ((2, 2, 11, 9), (3, 2, 3, 2), "half", (2, 1), False, (2, 2), 1),
    ((2, 2, 11, 9), (3, 2, 2, 3), "full", (1, 2), True, (3, 1), 1),
    ((2, 4, 6, 7), (6, 2, 3, 3), "valid", (1, 1), True, (1, 1), 2),
    ((2, 6, 6, 7), (6, 1, 3, 2), "half", (2, 1), False, (1, 2), 6),  # depthwise
    ((1, 6, 8, 8), (9, 2, 2, 2), (1, 0), (2, 2), True, (1, 1), 3),
    ((3, 1, 5, 5), (2, 1, 5, 5), "valid", (1, 1), True, (1, 1), 1),  # 1x1 output
    ((2, 3, 4, 4), (5, 3, 1, 1), "valid", (1, 1), True, (1, 1), 1),  # 1x1 filters
]


def _conv(cfg):
    _, _, bm, sub, flip, dil, groups = cfg
    return lambda x, w: ts.nnet.conv2d(x, w, border_mode=bm, subsample=sub, filter_flip=flip,
                                       filter_dilation=dil, groups=groups)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_conv2d_matches_the_direct_loop(cfg):
    xs, ws, bm, sub, flip, dil, groups = cfg
    x, w = _n(*xs), _n(*ws, seed=1)
    expected = ref_conv2d(x, w, bm, sub, flip, dil, groups)
    for static in (True, False):
        X = ts.tensor("float64", xs if static else (None,) * 4, name="x")
        W = ts.tensor("float64", ws if static else (None,) * 4, name="w")
        y = _conv(cfg)(X, W)
        assert isinstance(y.owner.op, Conv2d) and y.dtype == "float64"
        if static:
            assert y.type.shape == expected.shape
        else:
            assert y.type.shape == (None,) * 4
        for mode in (None, "NONE"):
            np.testing.assert_allclose(run([X, W], y, x, w, mode=mode), expected,
                                       rtol=1e-12, atol=1e-12)
        node = y.owner
        (shp,) = node.op.infer_shape(node, [[shape_i(v, k) for k in range(4)] for v in (X, W)])
        assert tuple(int(s) for s in run([X, W], list(shp), x, w)) == expected.shape


@pytest.mark.parametrize("cfg", CONFIGS[::2], ids=[str(i) for i in range(0, len(CONFIGS), 2)])
def test_gradient_ops_are_the_adjoints(cfg):
    """<conv(x, w), gy> = <x, grad_inputs(w, gy)> = <w, grad_weights(x, gy)>, and their
    inferred shapes are the input's and the filters'."""
    xs, ws, bm, sub, flip, dil, groups = cfg
    x, w = _n(*xs), _n(*ws, seed=1)
    gy = _n(*ref_conv2d(x, w, bm, sub, flip, dil, groups).shape, seed=2)
    X, W, GY = (ts.tensor("float64", (None,) * 4, name=n) for n in "x w gy".split())
    op = Conv2d(bm, sub, dil, groups, flip)
    params = (bm, sub, dil, groups, flip)
    gx = Conv2dGradInputs(*params)(W, GY, shape_i(X, 2), shape_i(X, 3))
    gw = Conv2dGradWeights(*params)(X, GY, shape_i(W, 2), shape_i(W, 3))
    y_v, gx_v, gw_v = run([X, W, GY], [op(X, W), gx, gw], x, w, gy)
    assert gx_v.shape == x.shape and gw_v.shape == w.shape
    lhs = np.vdot(y_v, gy)
    np.testing.assert_allclose(np.vdot(x, gx_v), lhs, rtol=1e-11)
    np.testing.assert_allclose(np.vdot(w, gw_v), lhs, rtol=1e-11)
    for v in (gx, gw):
        node = v.owner
        (shp,) = node.op.infer_shape(node, [[shape_i(i, k) for k in range(i.ndim)]
                                         for i in node.inputs])
        assert tuple(int(s) for s in run([X, W, GY], list(shp), x, w, gy)) == run(
            [X, W, GY], v, x, w, gy).shape


def test_filter_flip_is_a_true_convolution():
    x, w = _n(1, 1, 5, 5), _n(1, 1, 3, 3, seed=3)
    X, W = ts.dtensor4("x"), ts.dtensor4("w")
    flipped = run([X, W], ts.nnet.conv2d(X, W), x, w)
    corr = run([X, W], ts.nnet.conv2d(X, W[:, :, ::-1, ::-1], filter_flip=False), x, w)
    np.testing.assert_allclose(flipped, corr, rtol=1e-13)
    # a delta image gives back the filter itself in "full" mode only for a true convolution
    delta = np.zeros((1, 1, 3, 3))
    delta[0, 0, 1, 1] = 1
    out = run([X, W], ts.nnet.conv2d(X, W, border_mode="full"), delta, w)
    np.testing.assert_allclose(out[0, 0, 1:4, 1:4], w[0, 0], rtol=1e-13)


@pytest.mark.parametrize("dx,dw,dout", [("float32", "float32", "float32"),
                                        ("float32", "float64", "float64"),
                                        ("int64", "float32", "float64"),
                                        ("uint8", "int8", "float32")])
def test_dtypes_follow_numpy_float_promotion(dx, dw, dout, rng):
    x = rng.integers(0, 5, (2, 2, 5, 5)).astype(dx)
    w = rng.integers(0, 3, (3, 2, 2, 2)).astype(dw)
    X, W = ts.tensor(dx, (None,) * 4), ts.tensor(dw, (None,) * 4)
    y = ts.nnet.conv2d(X, W, border_mode="half")
    assert y.dtype == dout
    got = run([X, W], y, x, w)
    assert got.dtype == dout
    np.testing.assert_allclose(got, ref_conv2d(x.astype(float), w.astype(float), "half"),
                               rtol=1e-6)
    if dout == "float32" and dx == "float32":
        gx, gw = ts.grad(y.sum(), [X, W])
        assert gx.dtype == gw.dtype == "float32"


def test_zero_size_batch_and_channels():
    X, W = ts.dtensor4("x"), ts.dtensor4("w")
    y = ts.nnet.conv2d(X, W, border_mode="half")
    assert run([X, W], y, np.zeros((0, 2, 4, 4)), _n(3, 2, 3, 3)).shape == (0, 3, 4, 4)
    gw = ts.grad(y.sum(), W)
    np.testing.assert_array_equal(run([X, W], gw, np.zeros((0, 2, 4, 4)), _n(3, 2, 3, 3)),
                                  np.zeros((3, 2, 3, 3)))


def test_gradients_through_a_network_agree_with_unrewritten_graph():
    x, w1, w2 = _n(2, 1, 8, 8), _n(3, 1, 3, 3, seed=4), _n(2, 3, 2, 2, seed=5)
    X, W1, W2 = ts.dtensor4("x"), ts.dtensor4("w1"), ts.dtensor4("w2")
    h = ts.tanh(ts.nnet.conv2d(X, W1, border_mode="half"))
    cost = (ts.nnet.conv2d(h, W2, subsample=(2, 2)) ** 2).mean()
    grads = ts.grad(cost, [W1, W2, X])
    fast = run([X, W1, W2], grads, x, w1, w2)
    ref = run([X, W1, W2], grads, x, w1, w2, mode="NONE")
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

def test_channel_mismatch_is_reported_while_tracing_with_shapes_and_line():
    X = ts.tensor("float64", (2, 3, 8, 8), name="x")
    W = ts.tensor("float64", (4, 2, 3, 3), name="w")
    with pytest.raises(ShapeError) as e:
        ts.nnet.conv2d(X, W)  # the line the message names
    msg = str(e.value)
    assert "3 channels" in msg and "(2, 3, 8, 8)" in msg and "(4, 2, 3, 3)" in msg
    assert "test_conv.py" in msg and "ts.nnet.conv2d(X, W)  # the line" in msg
    with pytest.raises(ShapeError, match="groups=2"):
        ts.nnet.conv2d(ts.tensor("float64", (2, 4, 8, 8)), ts.tensor("float64", (3, 2, 3, 3)),
                       groups=2)


def test_filter_larger_than_padded_input():
    X = ts.tensor("float64", (1, 1, 4, 9))
    W = ts.tensor("float64", (1, 1, 5, 3))
    with pytest.raises(ShapeError, match=r"height 5 .* larger than the input's height 4 padded "
                                         r"by 0"):
        ts.nnet.conv2d(X, W)
    ts.nnet.conv2d(X, W, border_mode=1)  # fits once padded
    with pytest.raises(ShapeError, match="dilation 2: extent 5"):
        ts.nnet.conv2d(ts.tensor("float64", (1, 1, 4, 9)), ts.tensor("float64", (1, 1, 3, 3)),
                       filter_dilation=2)


@pytest.mark.parametrize("linker", ["numpy", "c"])
def test_runtime_shape_errors_name_the_op_and_the_line(linker):
    mode = ts.Mode(linker=linker)
    X, W = ts.dtensor4("x"), ts.dtensor4("w")
    y = ts.nnet.conv2d(X, W)  # created here
    f = ts.function([X, W], y, mode=mode)
    with pytest.raises(OpRuntimeError) as e:
        f(_n(1, 3, 5, 5), _n(2, 2, 3, 3))
    msg = str(e.value)
    assert "3 channels" in msg and "y = ts.nnet.conv2d(X, W)  # created here" in msg
    with pytest.raises(OpRuntimeError, match="larger than the input's width 2"):
        f(_n(1, 2, 5, 2), _n(2, 2, 3, 3))
    GY = ts.dtensor4("gy")
    gw = ts.function([X, GY], Conv2dGradWeights((0, 0), (1, 1), (1, 1), 1, True)(X, GY, 3, 3),
                     mode=mode)
    with pytest.raises(OpRuntimeError, match=r"gradient has shape \(1, 2, 2, 3\), but 1 images "
                                             r"of 4x4 and 2 filters of 3x3 give \(1, 2, 2, 2\)"):
        gw(_n(1, 2, 4, 4), _n(1, 2, 2, 3))


@pytest.mark.parametrize("kw,match", [
    (dict(border_mode="same"), "border_mode must be"),
    (dict(border_mode=(1, -1)), "padding must be"),
    (dict(subsample=(0, 1)), "subsample must be"),
    (dict(filter_dilation=(1, 2, 3)), "filter_dilation must be"),
    (dict(groups=0), "groups must be"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(ShapeError, match=match):
        ts.nnet.conv2d(ts.dtensor4(), ts.dtensor4(), **kw)


def test_inputs_must_be_4d_and_real():
    with pytest.raises(ShapeError, match="input must be 4-d"):
        ts.nnet.conv2d(ts.dtensor3(), ts.dtensor4())
    with pytest.raises(TypeError, match="filters must be real"):
        ts.nnet.conv2d(ts.dtensor4(), ts.tensor("complex128", (None,) * 4))


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

def _second_order(cfg):
    conv = _conv(cfg)
    return lambda x, w: ts.grad((conv(x, w) ** 2).sum() + (x * x).sum(), w)


GRAD_CASES = {
    Conv2d: [(_conv(c), [_n(*c[0]), _n(*c[1], seed=1)]) for c in CONFIGS[:14:2]],
    Conv2dGradInputs: [
        (lambda w, gy: Conv2dGradInputs((1, 1), (2, 1), (1, 1), 1, True)(w, gy, 6, 5),
         [_n(3, 2, 3, 3), _n(2, 3, 3, 5, seed=1)]),
        (lambda w, gy: Conv2dGradInputs("half", (1, 1), (2, 1), 2, False)(w, gy, 5, 4),
         [_n(4, 1, 3, 2), _n(1, 4, 5, 5, seed=1)]),
    ],
    Conv2dGradWeights: [
        (lambda x, gy: Conv2dGradWeights((0, 1), (1, 2), (1, 1), 1, True)(x, gy, 2, 3),
         [_n(2, 2, 4, 5), _n(2, 3, 3, 3, seed=1)]),
        (lambda x, gy: Conv2dGradWeights("full", (1, 1), (1, 2), 2, False)(x, gy, 2, 2),
         [_n(1, 4, 3, 3), _n(1, 2, 4, 5, seed=1)]),
    ],
}


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[7], CONFIGS[10], CONFIGS[12]])
def test_second_order_gradients(cfg):
    ts.verify_grad(_second_order(cfg), [_n(*cfg[0]), _n(*cfg[1], seed=1)],
                   rng=np.random.default_rng(3))


def test_gradient_graph_is_built_from_the_conv_ops():
    X, W = ts.dtensor4("x"), ts.dtensor4("w")
    gx, gw = ts.grad(ts.nnet.conv2d(X, W, subsample=2).sum(), [X, W])
    ops = {type(v.owner.op) for v in ancestors([gx, gw]) if v.owner is not None}
    assert {Conv2dGradInputs, Conv2dGradWeights} <= ops


def test_the_c_linker_runs_the_conv_ops():
    x, w = _n(2, 3, 6, 5), _n(4, 3, 3, 2, seed=6)
    X, W = ts.dtensor4("x"), ts.dtensor4("w")
    y = ts.tanh(ts.nnet.conv2d(X, W, border_mode="half", subsample=(2, 1)))
    outs = [y] + ts.grad((y ** 2).sum(), [X, W])
    ref = run([X, W], outs, x, w, mode="NONE")
    got = ts.function([X, W], outs, mode=ts.Mode(linker="c"))(x, w)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def _c_steps(nodes):
    """The C linker's steps for `nodes`, checked to be the hand-written kernels."""
    from tracesym.backend.c.linker import kernel_steps

    steps = kernel_steps(nodes, ts.config.compiledir)
    assert all(s.__module__ == "tracesym.backend.c.nnet" for s in steps)
    return steps


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_c_kernels_match_the_numpy_ops(cfg, dtype, tol):
    """The C steps of conv2d and its two gradients (im2col/col2im + GEMM) against the Ops'
    numpy `perform`, for a batch and for an empty one."""
    xs, ws, bm, sub, flip, dil, groups = cfg
    params = (bm, sub, dil, groups, flip)
    X, W, GY = (ts.tensor(dtype, (None,) * 4, name=n) for n in "x w gy".split())
    y = Conv2d(*params)(X, W)
    gx = Conv2dGradInputs(*params)(W, GY, shape_i(X, 2), shape_i(X, 3))
    gw = Conv2dGradWeights(*params)(X, GY, shape_i(W, 2), shape_i(W, 3))
    nodes = [y.owner, gx.owner, gw.owner]
    steps = _c_steps(nodes)
    for n in (xs[0], 0):
        x, w = _n(n, *xs[1:]).astype(dtype), _n(*ws, seed=1).astype(dtype)
        gy = _n(*ref_conv2d(x, w, bm, sub, flip, dil, groups).shape, seed=2)
        gy = gy.astype(dtype)
        args = [[x, w], [w, gy, np.int64(xs[2]), np.int64(xs[3])],
                [x, gy, np.int64(ws[2]), np.int64(ws[3])]]
        for node, step, a in zip(nodes, steps, args):
            (got,), (want,) = step(list(a)), node.op.perform(node, list(a))
            assert got.dtype == want.dtype == dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1, abs(want).max(
                initial=0)))


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("cfg", [
    # (x shape, w shape, border_mode, subsample, filter_dilation, groups, filter_flip)
    ((64, 6, 11, 10), (32, 3, 3, 3), (1, 0), (1, 2), (1, 1), 2, False),
    ((21, 5, 9, 13), (34, 5, 4, 3), "half", (2, 1), (1, 2), 1, True),
], ids=["groups", "dilated"])
def test_c_kernels_on_threaded_batches_of_views(cfg, dtype, tol):
    """Batches big enough for the kernels' threads, with more images than the filter
    gradient's ranges of images, products of several blocks of rows and columns, and inputs
    that are views (not contiguous), against the Ops' numpy `perform`."""
    xs, ws, bm, sub, dil, groups, flip = cfg
    params = (bm, sub, dil, groups, flip)
    X, W, GY = (ts.tensor(dtype, (None,) * 4, name=n) for n in "x w gy".split())
    nodes = [Conv2d(*params)(X, W).owner,
             Conv2dGradInputs(*params)(W, GY, shape_i(X, 2), shape_i(X, 3)).owner,
             Conv2dGradWeights(*params)(X, GY, shape_i(W, 2), shape_i(W, 3)).owner]
    x = _n(*xs[:2], xs[3], xs[2]).astype(dtype).transpose(0, 1, 3, 2)  # not contiguous
    w = _n(*ws, seed=1).astype(dtype)[:, :, ::-1]
    gy = _n(*nodes[0].op.perform(nodes[0], [x, w])[0].shape, seed=2).astype(dtype)
    args = [[x, w], [w, gy, xs[2], xs[3]], [x, gy, ws[2], ws[3]]]
    for node, step, a in zip(nodes, _c_steps(nodes), args):
        want, got = node.op.perform(node, list(a))[0], step(list(a))[0]
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * abs(want).max())
        np.testing.assert_array_equal(step(list(a))[0], got)  # the same sums each time
