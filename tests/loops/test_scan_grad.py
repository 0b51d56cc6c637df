"""Backpropagation through scan: a masked LSTM (Theano's tutorial form) against a numpy loop and
finite differences, truncate_gradient against a hand-written truncated BPTT, gradients of
gradients, Rop, and the gradient graph itself being a backwards scan."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.loops import Scan

T, B, D, H = 5, 2, 3, 4


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm(X, M, W, U, h0, c0):
    def step(x, m, h, c, W, U):
        z = x @ W + h @ U
        i, f = ts.sigmoid(z[:, :H]), ts.sigmoid(z[:, H:2 * H])
        o, g = ts.sigmoid(z[:, 2 * H:3 * H]), ts.tanh(z[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * ts.tanh(c_new)
        c_new = m[:, None] * c_new + (1 - m)[:, None] * c
        h_new = m[:, None] * h_new + (1 - m)[:, None] * h
        return h_new, c_new

    (hs, cs), _ = ts.scan(step, sequences=[X, M], outputs_info=[h0, c0], non_sequences=[W, U])
    return hs


def lstm_numpy(X, M, W, U, h, c):
    out = []
    for x, m in zip(X, M):
        z = x @ W + h @ U
        i, f = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H])
        o, g = _sigmoid(z[:, 2 * H:3 * H]), np.tanh(z[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        c = m[:, None] * c_new + (1 - m[:, None]) * c
        h = m[:, None] * h_new + (1 - m[:, None]) * h
        out.append(h)
    return np.array(out)


@pytest.fixture
def lstm_data(rng):
    mask = np.ones((T, B))
    mask[3:, 1] = 0  # the second sequence is shorter
    return dict(X=rng.normal(size=(T, B, D)), M=mask, W=rng.normal(size=(D, 4 * H)) * 0.5,
                U=rng.normal(size=(H, 4 * H)) * 0.5, h0=rng.normal(size=(B, H)),
                c0=rng.normal(size=(B, H)))


def test_masked_lstm_forward_matches_numpy(lstm_data):
    X, M, W, U = ts.dtensor3("X"), ts.dmatrix("M"), ts.dmatrix("W"), ts.dmatrix("U")
    h0, c0 = ts.dmatrix("h0"), ts.dmatrix("c0")
    f = ts.function([X, M, W, U, h0, c0], lstm(X, M, W, U, h0, c0))
    d = lstm_data
    np.testing.assert_allclose(f(*d.values()), lstm_numpy(*d.values()), rtol=1e-12)


def test_masked_lstm_bptt_verify_grad(lstm_data):
    d = lstm_data
    M = ts.constant(d["M"])
    ts.verify_grad(lambda X, W, U, h0, c0: lstm(X, M, W, U, h0, c0),
                   [d["X"], d["W"], d["U"], d["h0"], d["c0"]], rng=np.random.default_rng(0))


def test_masked_steps_pass_no_gradient_to_their_inputs(lstm_data):
    X, W, U = ts.dtensor3("X"), ts.dmatrix("W"), ts.dmatrix("U")
    h0, c0 = ts.dmatrix("h0"), ts.dmatrix("c0")
    d = lstm_data
    gX = ts.function([X, W, U, h0, c0], ts.grad(lstm(X, ts.constant(d["M"]), W, U, h0, c0).sum(), X))(
        d["X"], d["W"], d["U"], d["h0"], d["c0"])
    assert np.all(gX[3:, 1] == 0) and np.all(gX[:3, 1] != 0)


def test_gradient_is_a_backwards_scan():
    x, w = ts.dvector("x"), ts.dscalar("w")
    out = ts.scan(lambda a, h, w: h * w + a, sequences=x, outputs_info=ts.constant(0.0),
                  non_sequences=w)[0]
    g = ts.grad(out.sum(), w)
    f = ts.function([x, w], [out, g])
    scans = [n for n in f.graph.toposort() if isinstance(n.op, Scan)]
    assert len(scans) == 2 and scans[1].op.name == "grad"


def test_the_backward_loop_reads_the_forward_values_it_needs(rng):
    """The forward loop stores what the backward step reads (tanh's output, for its
    derivative 1 - y**2) instead of the backward loop recomputing it, and stores nothing
    the backward step does not read: one forward loop, one backward loop."""
    x, w = ts.dvector("x"), ts.dscalar("w")
    out = ts.scan(lambda a, h, w: ts.tanh(h * w + a) * 2.0, sequences=x,
                  outputs_info=ts.constant(0.3), non_sequences=w)[0]
    cost = (out ** 2).sum()
    f = ts.function([x, w], [cost, *ts.grad(cost, [x, w])])
    forward, backward = [n for n in f.graph.toposort() if isinstance(n.op, Scan)]
    assert backward.op.name == "grad" and forward.op.n_nit == 1
    assert not any("tanh" in str(n.op) for n in
                   ts.Graph(backward.op.inner_inputs, backward.op.inner_outputs).toposort())
    ref = ts.function([x, w], [cost, *ts.grad(cost, [x, w])], mode="NONE")
    xv = rng.normal(size=5)
    for got, want in zip(f(xv, 0.7), ref(xv, 0.7)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 10])
def test_truncate_gradient_matches_truncated_bptt(k, rng):
    x, w = ts.dvector("x"), ts.dscalar("w")
    out = ts.scan(lambda a, h, w: ts.tanh(h * w + a), sequences=x, outputs_info=ts.constant(0.3),
                  non_sequences=w, truncate_gradient=k)[0]
    f = ts.function([x, w], ts.grad(out[-1], [x, w]))
    xv, wv, n = rng.normal(size=6), 0.8, 6
    hs = [0.3]
    for a in xv:
        hs.append(np.tanh(hs[-1] * wv + a))
    gx, gw, gh = np.zeros(n), 0.0, 1.0
    for t in range(n - 1, max(n - k, 0) - 1, -1):  # only the last k steps
        dz = gh * (1 - hs[t + 1] ** 2)
        gx[t], gw, gh = dz, gw + dz * hs[t], dz * wv
    got_x, got_w = f(xv, wv)
    np.testing.assert_allclose(got_x, gx, rtol=1e-10)
    np.testing.assert_allclose(got_w, gw, rtol=1e-10)


def test_gradient_of_gradient():
    def f(x, w):
        hs = ts.scan(lambda xt, h, w: ts.tanh(h * w + xt), sequences=x,
                     outputs_info=ts.constant(0.3), non_sequences=w)[0]
        return ts.grad((hs ** 2).sum(), w)

    rng = np.random.default_rng(3)
    ts.verify_grad(f, [rng.normal(size=4), np.array(0.7)], rng=rng)


def test_rop_matches_finite_differences(rng):
    x, w, v = ts.dvector("x"), ts.dscalar("w"), ts.dvector("v")
    y = ts.scan(lambda xt, h, w: ts.tanh(h * w + xt), sequences=x, outputs_info=ts.constant(0.3),
                non_sequences=w)[0]
    jv = ts.function([x, w, v], ts.Rop(y, x, v))
    fy = ts.function([x, w], y)
    xv, vv, eps = rng.normal(size=5), rng.normal(size=5), 1e-6
    fd = (fy(xv + eps * vv, 0.7) - fy(xv - eps * vv, 0.7)) / (2 * eps)
    np.testing.assert_allclose(jv(xv, 0.7, vv), fd, atol=1e-7)


def test_float32_gradients_keep_their_dtype(rng):
    x, h0 = ts.fvector("x"), ts.fscalar("h0")
    out = ts.scan(lambda a, h: h * np.float32(0.5) + a, sequences=x, outputs_info=h0)[0]
    gx, gh = ts.grad(out.sum(), [x, h0])
    assert gx.dtype == "float32" and gh.dtype == "float32"
    got = ts.function([x, h0], [gx, gh])(np.ones(3, "float32"), np.float32(1))
    np.testing.assert_allclose(got[0], [1.75, 1.5, 1.0])
    np.testing.assert_allclose(got[1], 0.875)


def test_a_step_value_whose_shape_changes_between_steps_is_recomputed(rng):
    """Values of a data-dependent shape (a boolean mask's selection) cannot be stacked over
    the steps: the backward step recomputes them."""
    X = ts.dmatrix("X")
    H = ts.scan(lambda x, h: h * 0.5 + (x[x > 0] ** 2).sum(), sequences=X,
                outputs_info=ts.constant(0.0))[0]
    g = ts.function([X], ts.grad(H[-1], X))
    Xv = rng.normal(size=(4, 5))
    decay = 0.5 ** np.arange(3, -1, -1)[:, None]
    np.testing.assert_allclose(g(Xv), 2 * Xv * (Xv > 0) * decay)


@pytest.mark.parametrize("n_steps", [None, 3])
def test_a_sequence_gradient_is_padded_with_zeros_only_after_fewer_steps_than_rows(n_steps, rng):
    """Without n_steps every row of a sequence is a step, and its gradient is the backward
    loop's rows in order, with no zeros written around them; with fewer steps than rows the
    rows no step read get a zero gradient."""
    X, h0 = ts.dmatrix("X"), ts.dvector("h0")
    hs, _ = ts.scan(lambda x, h: ts.tanh(x * h + x), sequences=X, outputs_info=h0,
                    n_steps=n_steps)
    g = ts.grad((hs ** 2).sum(), X)
    values = rng.normal(size=(5, 2)), rng.normal(size=2)
    f = ts.function([X, h0], g)
    got = f(*values)
    np.testing.assert_allclose(got, ts.function([X, h0], g, mode="NONE")(*values))
    sets = [n for n in f.graph.toposort() if type(n.op).__name__ == "IncSubtensor"
            and n.op.set_instead_of_inc]
    if n_steps is None:
        assert not sets
    else:
        assert sets and not got[n_steps:].any()
