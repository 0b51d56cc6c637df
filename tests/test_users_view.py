"""DESIGN.md's "user's view", run as written, checked against a numpy implementation."""

import io

import networkx as nx
import numpy as np

import tracesym as ts


def _numpy_step(W, b, x, y, lr):
    z = x @ W + b
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = x.shape[0]
    cost = -np.log(p[np.arange(n), y]).mean()
    dz = p.copy()
    dz[np.arange(n), y] -= 1
    dz /= n
    return cost, W - lr * (x.T @ dz), b - lr * dz.sum(axis=0)


def test_users_view_runs_as_written(capsys):
    rng = np.random.default_rng(0)
    xb = rng.random((32, 784), dtype=np.float32)
    yb = rng.integers(0, 10, 32).astype(np.int64)

    W = ts.shared(np.zeros((784, 10), "float32"), name="W")
    b = ts.shared(np.zeros(10, "float32"), name="b")

    def probs(x):
        return ts.softmax(x @ W + b)

    @ts.compile
    def train(x: ts.fmatrix, y: ts.lvector, lr=0.13):
        cost = -ts.log(probs(x))[ts.arange(y.shape[0]), y].mean()
        gW, gb = ts.grad(cost, [W, b])
        ts.update(W, W - lr * gW)
        ts.update(b, b - lr * gb)
        return cost

    @ts.compile
    def predict(x):
        return probs(x).argmax(axis=1)

    Wn, bn = np.zeros((784, 10), np.float32), np.zeros(10, np.float32)
    for _ in range(3):
        cost_ref, Wn, bn = _numpy_step(Wn, bn, xb, yb, np.float32(0.13))
        cost = train(xb, yb)
        assert cost.dtype == np.float32
        np.testing.assert_allclose(cost, cost_ref, rtol=1e-5)
    np.testing.assert_allclose(W.get_value(), Wn, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b.get_value(), bn, rtol=1e-4, atol=1e-6)

    pred = predict(xb)
    assert pred.dtype == np.int64 and pred.shape == (32,)
    np.testing.assert_array_equal(pred, (xb @ Wn + bn).argmax(axis=1))
    # the un-annotated argument is typed from the call: float64 data traces a second version
    assert predict(xb.astype(np.float64)).shape == (32,)

    out = io.StringIO()
    ts.debugprint(train, file=out)
    assert "W" in out.getvalue() and "Update" in out.getvalue()
    assert isinstance(train.graph, nx.DiGraph) and nx.is_directed_acyclic_graph(train.graph)

    W_before, b_before = W.get_value(), b.get_value()
    with ts.eager():
        cost_eager = train(xb, yb)
    W_eager = W.get_value()
    W.set_value(W_before)
    b.set_value(b_before)
    cost_compiled = train(xb, yb)
    np.testing.assert_allclose(cost_eager, cost_compiled, rtol=1e-6)
    np.testing.assert_allclose(W_eager, W.get_value(), rtol=1e-6, atol=1e-7)


def test_theano_style_layer_underneath():
    x = ts.fmatrix("x")
    y = ts.lvector("y")
    W = ts.shared(np.zeros((5, 3), "float32"), name="W")
    cost = -ts.log(ts.softmax(x @ W))[ts.arange(y.shape[0]), y].mean()
    (gW,) = ts.grad(cost, [W])
    f = ts.function([x, y], cost, updates=[(W, W - 0.1 * gW)], name="step")
    xv = np.ones((4, 5), np.float32)
    yv = np.array([0, 1, 2, 0])
    c0 = f(xv, yv)
    c1 = f(xv, yv)
    np.testing.assert_allclose(c0, np.log(3), rtol=1e-6)
    assert c1 < c0
    assert isinstance(f.graph, nx.DiGraph)

    x.tag.test_value = xv
    with ts.config.change(compute_test_value="raise"):
        z = x @ W
        assert z.tag.test_value.shape == (4, 3)
