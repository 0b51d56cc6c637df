"""Lop, Rop, jacobian, hessian and Hessian-vector products against finite differences."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import DisconnectedInputError, GradientError


def run(inputs, outputs, *values):
    return ts.function(inputs, outputs, on_unused_input="ignore")(*values)


def num_jacobian(f, x, eps=1e-6):
    """d f(x) / d x by central differences, shape f(x).shape + x.shape."""
    y0 = np.asarray(f(x))
    J = np.zeros(y0.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        J[(...,) + idx] = (np.asarray(f(xp)) - np.asarray(f(xm))) / (2 * eps)
    return J


FUNS = [
    ("elementwise", lambda x, m: ts.exp(x) * ts.sin(x), lambda x, m: np.exp(x) * np.sin(x)),
    ("reduce_rows", lambda x, m: (m * x).sum(axis=1), lambda x, m: (m * x).sum(axis=1)),
    ("outer", lambda x, m: ts.tanh(ts.expand_dims(x, 1) * ts.expand_dims(x, 0)),
     lambda x, m: np.tanh(x[:, None] * x[None, :])),
    ("max", lambda x, m: (m + x).max(axis=0) * x, lambda x, m: (m + x).max(axis=0) * x),
]


@pytest.mark.parametrize("name,sym,ref", FUNS, ids=[f[0] for f in FUNS])
def test_lop_and_rop_match_numeric_jacobian(name, sym, ref, rng):
    x, m, v = ts.dvector("x"), ts.dmatrix("m"), ts.dvector("v")
    xv, mv = rng.normal(size=3), rng.normal(size=(2, 3))
    y = sym(x, m)
    J = num_jacobian(lambda a: ref(a, mv), xv)
    yv = np.asarray(ref(xv, mv))
    u = ts.tensor("float64", (None,) * y.ndim, name="u")
    uv, vv = rng.normal(size=yv.shape), rng.normal(size=3)
    lop = run([x, m, u], ts.Lop(y, x, u), xv, mv, uv)
    np.testing.assert_allclose(lop, np.tensordot(uv, J, axes=y.ndim), rtol=1e-6, atol=1e-8)
    rop = run([x, m, v], ts.Rop(y, x, v), xv, mv, vv)
    np.testing.assert_allclose(rop, J @ vv, rtol=1e-6, atol=1e-8)


def test_lop_and_rop_with_lists(rng):
    x, y = ts.dvector("x"), ts.dvector("y")
    f1, f2 = x * y, ts.exp(x)
    a, b = ts.dvector("a"), ts.dvector("b")
    xv, yv, av, bv = (rng.normal(size=3) for _ in range(4))
    gx, gy = run([x, y, a, b], ts.Lop([f1, f2], [x, y], [a, b]), xv, yv, av, bv)
    np.testing.assert_allclose(gx, av * yv + bv * np.exp(xv))
    np.testing.assert_allclose(gy, av * xv)
    r1, r2 = run([x, y, a, b], ts.Rop([f1, f2], [x, y], [a, b]), xv, yv, av, bv)
    np.testing.assert_allclose(r1, av * yv + xv * bv)
    np.testing.assert_allclose(r2, np.exp(xv) * av)


def test_lop_numpy_eval_point_and_type_checks():
    x = ts.dvector("x")
    y = x * 2
    np.testing.assert_allclose(run([x], ts.Lop(y, x, np.array([1.0, 3.0])), np.ones(2)), [2.0, 6.0])
    with pytest.raises(GradientError, match="dimension"):
        ts.Lop(y, x, ts.dmatrix())
    with pytest.raises(GradientError, match="eval point"):
        ts.Lop([y, y], x, [np.ones(2)])


def test_rop_uses_op_r_op_when_defined(rng):
    from tracesym.autodiff.ops import _Identity

    class Twice(_Identity):
        abstract = True

        def perform(self, node, inputs):
            return (inputs[0] * 2,)

        def R_op(self, inputs, eval_points):
            return [eval_points[0] * 2]  # no L_op at all: Rop must not need it

    x, v = ts.dvector("x"), ts.dvector("v")
    r = ts.Rop(ts.sin(Twice()(x)), x, v)
    xv, vv = rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(run([x, v], r, xv, vv), 2 * np.cos(2 * xv) * vv)


def test_rop_of_float32_keeps_dtype(rng):
    x, v = ts.fvector("x"), ts.fvector("v")
    r = ts.Rop(ts.tanh(x) * 2.0, x, v)
    assert r.dtype == "float32"
    xv, vv = rng.normal(size=3).astype("float32"), rng.normal(size=3).astype("float32")
    np.testing.assert_allclose(run([x, v], r, xv, vv), 2 * (1 - np.tanh(xv) ** 2) * vv, rtol=1e-5)


def test_rop_disconnected():
    x, y, v = ts.dvector("x"), ts.dvector("y"), ts.dvector("v")
    with pytest.raises(DisconnectedInputError, match="does not depend"):
        ts.Rop(y * 2, x, v)
    r = ts.Rop(y * 2, x, v, disconnected_outputs="ignore")
    np.testing.assert_array_equal(run([y], r, np.ones(2)), [0.0, 0.0])


def test_rop_through_integer_path_is_zero():
    x, v = ts.dvector("x"), ts.dvector("v")
    r = ts.Rop(ts.cast(ts.cast(x, "int64"), "float64"), x, v)
    np.testing.assert_array_equal(run([x, v], r, np.ones(2), np.ones(2)), [0.0, 0.0])


# jacobian and hessian -------------------------------------------------------------------

def test_jacobian_vector_expression(rng):
    x = ts.tensor("float64", (3,), name="x")
    y = ts.exp(x) * x.sum()
    J = ts.jacobian(y, x)
    assert J.type.shape == (3, 3)
    xv = rng.normal(size=3)
    np.testing.assert_allclose(run([x], J, xv), num_jacobian(lambda a: np.exp(a) * a.sum(), xv),
                               rtol=1e-6)


def test_jacobian_matrix_expression_and_list_wrt(rng):
    x = ts.tensor("float64", (2,), name="x")
    w = ts.tensor("float64", (2, 3), name="w")
    y = ts.tanh(ts.expand_dims(x, 1) * w)  # (2, 3)
    Jx, Jw = ts.jacobian(y, [x, w])
    assert Jx.type.shape == (2, 3, 2) and Jw.type.shape == (2, 3, 2, 3)
    xv, wv = rng.normal(size=2), rng.normal(size=(2, 3))
    rx, rw = run([x, w], [Jx, Jw], xv, wv)
    np.testing.assert_allclose(rx, num_jacobian(lambda a: np.tanh(a[:, None] * wv), xv), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(rw, num_jacobian(lambda a: np.tanh(xv[:, None] * a), wv), rtol=1e-6, atol=1e-9)


def test_jacobian_scalar_and_empty(rng):
    x = ts.tensor("float64", (3,), name="x")
    g = ts.jacobian((x ** 2).sum(), x)
    np.testing.assert_allclose(run([x], g, np.arange(3.0)), [0.0, 2.0, 4.0])
    e = ts.tensor("float64", (0,), name="e")
    J = ts.jacobian(e * 2, x, disconnected_inputs="ignore")
    assert run([x], J, np.ones(3)).shape == (0, 3)


def test_jacobian_needs_static_length():
    x = ts.dvector("x")
    with pytest.raises(GradientError, match="static"):
        ts.jacobian(x * 2, x)


def test_hessian_of_logistic_regression_loss(rng):
    n, d = 8, 3
    Xv, yv, wv = rng.normal(size=(n, d)), (rng.random(n) > 0.5).astype("float64"), rng.normal(size=d) * 0.3
    X, y = ts.dmatrix("X"), ts.dvector("y")
    w = ts.tensor("float64", (d,), name="w")
    z = ts.dot(X, w)
    loss = -(y * z - ts.softplus(z)).sum() / n
    H = ts.hessian(loss, w)
    assert H.type.shape == (d, d)
    out = run([X, y, w], H, Xv, yv, wv)
    p = 1 / (1 + np.exp(-Xv @ wv))
    np.testing.assert_allclose(out, (Xv * (p * (1 - p))[:, None]).T @ Xv / n, rtol=1e-10)
    num = num_jacobian(lambda a: run([X, y, w], ts.grad(loss, w), Xv, yv, a), wv)
    np.testing.assert_allclose(out, num, rtol=1e-5, atol=1e-8)


def test_hessian_list_wrt(rng):
    a = ts.tensor("float64", (2,), name="a")
    b = ts.tensor("float64", (2,), name="b")
    c = (a ** 3).sum() + (a * b).sum() + (b ** 2).sum()
    Ha, Hb = ts.hessian(c, [a, b])
    av = np.array([1.0, 2.0])
    ra, rb = run([a, b], [Ha, Hb], av, np.zeros(2))
    np.testing.assert_allclose(ra, np.diag(6 * av))
    np.testing.assert_allclose(rb, 2 * np.eye(2))


def test_hessian_vector_product(rng):
    x, v = ts.dvector("x"), ts.dvector("v")
    c = (ts.sin(x) * x.sum()).sum()
    hv = ts.hessian_vector_product(c, x, v)
    xv, vv = rng.normal(size=4), rng.normal(size=4)
    H = num_jacobian(lambda a: np.cos(a) * a.sum() + np.sin(a).sum(), xv)
    np.testing.assert_allclose(run([x, v], hv, xv, vv), H @ vv, rtol=1e-6)
    assert ts.hvp is ts.hessian_vector_product


def test_hessian_vector_product_list(rng):
    x, y, u, v = ts.dvector("x"), ts.dvector("y"), ts.dvector("u"), ts.dvector("v")
    c = (x * x * y).sum()
    hx, hy = ts.hessian_vector_product(c, [x, y], [u, v])
    xv, yv, uv, vv = (rng.normal(size=3) for _ in range(4))
    rx, ry = run([x, y, u, v], [hx, hy], xv, yv, uv, vv)
    np.testing.assert_allclose(rx, 2 * yv * uv + 2 * xv * vv)
    np.testing.assert_allclose(ry, 2 * xv * uv)


def test_rop_of_long_chain_is_linear():
    from tracesym.trace.graph import applies_between

    def size(n):
        x, v = ts.dvector("x"), ts.dvector("v")
        h = x
        for i in range(n):
            h = ts.tanh(h * 1.01 + 0.1 * i)
        r = ts.Rop(h, x, v)
        return x, v, r, len(applies_between([], [r])) - len(applies_between([], [h]))

    _, _, _, half = size(50)
    x, v, r, full = size(100)
    assert full <= 2.1 * half
    xv = np.array([0.1, -0.2])
    h = xv
    d = np.ones(2)
    for i in range(100):
        h = np.tanh(h * 1.01 + 0.1 * i)
        d = d * 1.01 * (1 - h ** 2)
    np.testing.assert_allclose(run([x, v], r, xv, np.ones(2)), d, rtol=1e-10)
