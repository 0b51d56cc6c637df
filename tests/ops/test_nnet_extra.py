"""The remaining neural-net functions against numpy: elu, binary cross-entropy (from
probabilities and from logits), batch normalization, dropout, and the embedding lookup's
sparse gradient.  These are composites of existing Ops (no new differentiable Op classes:
`GRAD_CASES` is empty); their gradients are checked with `verify_grad` here."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.ops.blas import MatMul
from tracesym.ops.subtensor import AdvancedIncSubtensor

GRAD_CASES = {}


def run(inputs, out, *values, **kw):
    return ts.function(inputs, out, **kw)(*values)


def np_sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


# -- elu --------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_elu_values_and_gradient(alpha):
    x = ts.dvector("x")
    xv = np.array([-30.0, -2.0, -1e-9, 0.0, 1e-9, 0.7, 5.0])
    expected = np.where(xv > 0, xv, alpha * np.expm1(np.minimum(xv, 0)))
    np.testing.assert_allclose(run([x], ts.nnet.elu(x, alpha), xv), expected, rtol=1e-15)
    g = run([x], ts.grad(ts.nnet.elu(x, alpha).sum(), x), xv)
    np.testing.assert_allclose(g, np.where(xv > 0, 1.0, alpha * np.exp(xv)), rtol=1e-15, atol=1e-16)
    ts.verify_grad(lambda t: ts.nnet.elu(t, alpha), [np.array([-1.3, -0.2, 0.4, 2.0])])


def test_elu_gradient_is_finite_at_extremes_and_keeps_dtype():
    x = ts.fvector("x")
    g = run([x], ts.grad(ts.nnet.elu(x).sum(), x), np.array([-1e4, 1e4], "float32"))
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [0.0, 1.0])


# -- binary cross-entropy ----------------------------------------------------------------------

def test_binary_crossentropy_matches_numpy_and_verify_grad():
    o, t = ts.dmatrix("o"), ts.dmatrix("t")
    rng = np.random.default_rng(0)
    ov, tv = rng.uniform(0.05, 0.95, (3, 4)), rng.uniform(0, 1, (3, 4))
    expected = -(tv * np.log(ov) + (1 - tv) * np.log(1 - ov))
    for mode in (None, "NONE"):
        got = run([o, t], ts.nnet.binary_crossentropy(o, t), ov, tv, mode=mode)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    ts.verify_grad(lambda a: ts.nnet.binary_crossentropy(a, tv), [ov])
    ts.verify_grad(lambda b: ts.nnet.binary_crossentropy(ov, b), [tv])


def test_sigmoid_binary_crossentropy_is_stable():
    z, t = ts.dvector("z"), ts.dvector("t")
    zv = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 40.0, 1000.0])
    tv = np.array([0.0, 1.0, 0.3, 0.5, 1.0, 0.0, 1.0])
    loss = ts.nnet.sigmoid_binary_crossentropy(z, t)
    got = run([z, t], loss, zv, tv)
    # reference in a form without cancellation: t*softplus(-z) + (1-t)*softplus(z)
    sp = lambda a: np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))  # noqa: E731
    np.testing.assert_allclose(got, tv * sp(-zv) + (1 - tv) * sp(zv), rtol=1e-12, atol=1e-300)
    g = run([z, t], ts.grad(loss.sum(), z), zv, tv)
    np.testing.assert_allclose(g, np_sigmoid(zv) - tv, rtol=1e-12, atol=1e-15)
    # in the range where the naive form is also exact the two agree
    mid = np.array([-3.0, 0.2, 4.0])
    np.testing.assert_allclose(
        run([z, t], loss, mid, tv[:3]),
        run([z, t], ts.nnet.binary_crossentropy(ts.sigmoid(z), t), mid, tv[:3], mode="NONE"),
        rtol=1e-12)
    ts.verify_grad(lambda a, b: ts.nnet.sigmoid_binary_crossentropy(a, b),
                   [np.array([-2.0, 0.3, 1.5]), np.array([0.1, 0.9, 0.5])])


def test_binary_crossentropy_of_sigmoid_is_finite_after_rewrites():
    """The stability rewrites turn both logs of sigmoid into softplus terms."""
    z, t = ts.dvector("z"), ts.dvector("t")
    zv, tv = np.array([-60.0, 60.0]), np.array([1.0, 0.0])
    got = run([z, t], ts.nnet.binary_crossentropy(ts.sigmoid(z), t), zv, tv)
    np.testing.assert_allclose(got, [60.0, 60.0], rtol=1e-12)


# -- batch normalization ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["low_mem", "high_mem"])
def test_batch_normalization(mode):
    rng = np.random.default_rng(1)
    xv = rng.normal(size=(5, 3))
    gv, bv = rng.uniform(0.5, 2, 3), rng.normal(size=3)
    mv, sv = xv.mean(0), xv.std(0) + 0.1
    x = ts.dmatrix("x")
    g, b, m, s = (ts.dvector(name) for name in "gbms")
    out = ts.nnet.batch_normalization(x, g, b, m, s, mode=mode)
    np.testing.assert_allclose(run([x, g, b, m, s], out, xv, gv, bv, mv, sv),
                               (xv - mv) * gv / sv + bv, rtol=1e-12)
    ts.verify_grad(lambda *a: ts.nnet.batch_normalization(*a, mode=mode), [xv, gv, bv, mv, sv])


def test_batch_normalization_with_batch_statistics_and_bad_mode():
    rng = np.random.default_rng(2)
    xv = rng.normal(size=(6, 4))
    x = ts.dmatrix("x")
    mean, std = x.mean(0, keepdims=True), ts.sqrt(x.var(0, keepdims=True) + 1e-5)
    out = run([x], ts.nnet.batch_normalization(x, 1.0, 0.0, mean, std), xv)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(0), xv.var(0) / (xv.var(0) + 1e-5), rtol=1e-10)
    with pytest.raises(ValueError, match="low_mem"):
        ts.nnet.batch_normalization(x, 1.0, 0.0, mean, std, mode="fast")


# -- dropout ----------------------------------------------------------------------------------

def test_dropout_keeps_expected_value_and_scales_kept_values():
    rs = ts.random.RandomStream(3)
    x = ts.dvector("x")
    p, n = 0.3, 100_000
    xv = np.random.default_rng(0).uniform(1, 2, n)
    y = run([x], ts.nnet.dropout(x, p, rs), xv)
    kept = y != 0
    np.testing.assert_allclose(y[kept], xv[kept] / (1 - p), rtol=1e-15)
    assert abs(kept.mean() - (1 - p)) <= 6 * np.sqrt(p * (1 - p) / n)


def test_dropout_gradient_follows_the_mask_of_the_same_call():
    rs = ts.random.RandomStream(4)
    x = ts.dvector("x")
    p = 0.5
    y = ts.nnet.dropout(x, p, rs)
    w = np.arange(1.0, 41.0)
    g = ts.grad((y * w).sum(), x)
    f = ts.function([x], [y, g])
    (y1, g1), (y2, _) = f(np.ones(40)), f(np.ones(40))
    np.testing.assert_array_equal(g1, np.where(y1 != 0, w / (1 - p), 0))
    assert not np.array_equal(y1, y2)  # a new mask every call


def test_dropout_identity_cases_symbolic_p_and_errors():
    rs = ts.random.RandomStream(0)
    x = ts.fmatrix("x")
    assert ts.nnet.dropout(x, 0.5, rs, training=False) is x
    assert ts.nnet.dropout(x, 0, rs) is x
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="dropout"):
            ts.nnet.dropout(x, bad, rs)
    p = ts.fscalar("p")
    y = ts.nnet.dropout(x, p, rs)
    xv = np.ones((50, 40), "float32")
    out = run([x, p], y, xv, np.float32(0.75))
    assert out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 4.0} and 0 < (out != 0).mean() < 0.5


# -- embedding lookup -------------------------------------------------------------------------

def _op_types(graph):
    return {type(n.op) for n in graph.apply_nodes()}


@pytest.mark.parametrize("idx_shape", [(7,), (3, 4)])
def test_embedding_gradient_is_a_sparse_increment(idx_shape):
    """grad of sum(W[idx] * c) w.r.t. W is zeros with c's rows added at idx (repeats
    accumulate): an AdvancedIncSubtensor, never a one-hot matrix product."""
    rng = np.random.default_rng(5)
    vocab, dim = 10, 3
    Wv = rng.normal(size=(vocab, dim))
    idxv = rng.integers(0, vocab, idx_shape)
    idxv.flat[0] = idxv.flat[-1]  # a repeated index
    cv = rng.normal(size=idx_shape + (dim,))
    W = ts.dmatrix("W")
    idx = ts.tensor("int64", (None,) * len(idx_shape), name="idx")
    c = ts.tensor("float64", (None,) * (len(idx_shape) + 1), name="c")
    gW = ts.grad((W[idx] * c).sum(), W)
    for mode in (None, "NONE"):
        f = ts.function([W, idx, c], gW, mode=mode)
        types = _op_types(f.graph)
        assert MatMul not in types
        assert any(issubclass(t, AdvancedIncSubtensor) for t in types), types
        expected = np.zeros_like(Wv)
        np.add.at(expected, idxv, cv)
        np.testing.assert_allclose(f(Wv, idxv, cv), expected, rtol=1e-15)
    ts.verify_grad(lambda w: w[idxv] * cv, [Wv])
