"""BLAS specialisation: scaled products added to a tensor become one Gemm / Gemv / Ger (also
read across the canonical form and inside gradients), never for integers, mixed dtypes,
shared products or broadcast biases; the rewritten function computes what mode NONE does; an
update writes into z only where z is provably the result's shape and nobody else's."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.ops.blas import Gemm, Gemv, Ger, MatMul
from tracesym.ops.elemwise import Elemwise


def ops_of(f):
    return [n.op for n in f.graph.apply_nodes()]


def count(f, cls):
    return sum(isinstance(op, cls) for op in ops_of(f))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return lambda *shape, dtype="float64": rng.normal(size=shape).astype(dtype)


MATRIX_CASES = {  # name: (expression of z, x, y, a (0-d), b (0-d)), the Op it becomes
    "z + a*dot": (lambda z, x, y, a, b: z + a * (x @ y), Gemm),
    "dot*a + z*b": (lambda z, x, y, a, b: (x @ y) * a + z * b, Gemm),
    "z - a*dot": (lambda z, x, y, a, b: z - a * ts.dot(x, y), Gemm),
    "dot*2 - z": (lambda z, x, y, a, b: (x @ y) * 2.0 - z, Gemm),
    "-dot + z*3": (lambda z, x, y, a, b: -(x @ y) + 3.0 * z, Gemm),
    "z + dot": (lambda z, x, y, a, b: z + x @ y, Gemm),
    "2*z + a*dot*3": (lambda z, x, y, a, b: 2.0 * z + a * (x @ y) * 3.0, Gemm),
    "b*a*z + dot*(-a)": (lambda z, x, y, a, b: b * a * z + (x @ y) * (-a), Gemm),
    "(z + dot) * a - dot": (lambda z, x, y, a, b: z - (x @ y.T.T) * a, Gemm),
}


@pytest.mark.parametrize("name", list(MATRIX_CASES))
def test_gemm_patterns(name, data, against_none, fired):
    build, op = MATRIX_CASES[name]
    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    a, b = ts.dscalar("a"), ts.dscalar("b")
    f = against_none([z, x, y, a, b], build(z, x, y, a, b), data(3, 5), data(3, 4), data(4, 5),
                     np.float64(0.7), np.float64(-1.3), rtol=1e-12, atol=1e-13)
    assert "blas_update" in fired(f)
    assert count(f, op) == 1 and count(f, MatMul) == 0
    assert not any(isinstance(o, Elemwise) and o.scalar_op.name in ("add", "sub") for o in ops_of(f))


VECTOR_CASES = {
    "z + A@v": (lambda z, m, u, v: z + m @ v, (4,), Gemv),
    "z - v@A*2 (A.T)": (lambda z, m, u, v: z - (u @ m) * 2.0, (5,), Gemv),
    "dot(A, v)*3 + z*2": (lambda z, m, u, v: ts.dot(m, v) * 3.0 + 2.0 * z, (4,), Gemv),
    "Z + 0.5*outer": (lambda z, m, u, v: z + 0.5 * ts.outer(u, v), (4, 5), Ger),
    "Z + col*row": (lambda z, m, u, v: z + u[:, None] * v[None, :], (4, 5), Ger),
    "row*col*a + Z": (lambda z, m, u, v: v.dimshuffle("x", 0) * 2.0 * u.dimshuffle(0, "x") + z, (4, 5), Ger),
    "Z - outer": (lambda z, m, u, v: z - ts.outer(u, v), (4, 5), Ger),
}


@pytest.mark.parametrize("name", list(VECTOR_CASES))
def test_gemv_and_ger_patterns(name, data, against_none):
    build, zshape, op = VECTOR_CASES[name]
    z = ts.tensor("float64", (None,) * len(zshape), name="z")
    m, u, v = ts.dmatrix("m"), ts.dvector("u"), ts.dvector("v")
    f = against_none([z, m, u, v], build(z, m, u, v), data(*zshape), data(4, 5), data(4), data(5),
                     rtol=1e-12, atol=1e-13)
    assert count(f, op) == 1 and count(f, MatMul) == 0


def test_sums_of_several_products_chain_updates(data, against_none):
    z, x, y, p, q = (ts.dmatrix(n) for n in "zxypq")
    f = against_none([z, x, y, p, q], z + 0.5 * (x @ y) - (p @ q) * 2.0, data(3, 5), data(3, 4),
                     data(4, 5), data(3, 2), data(2, 5), rtol=1e-12, atol=1e-13)
    assert count(f, Gemm) == 2 and count(f, MatMul) == 0


def test_sgd_update_is_one_gemm(data):
    """W - lr * (x.T @ g), the update of a linear layer, is one Gemm on W's value."""
    w0 = data(4, 3)
    W = ts.shared(w0.copy(), name="W")
    x, g = ts.dmatrix("x"), ts.dmatrix("g")
    f = ts.function([x, g], [], updates=[(W, W - 0.1 * (x.T @ g))])
    assert [type(op).__name__ for op in ops_of(f) if not type(op).__name__ == "DimShuffle"] == ["Gemm"]
    xv, gv = data(6, 4), data(6, 3)
    f(xv, gv)
    np.testing.assert_allclose(W.get_value(), w0 - 0.1 * (xv.T @ gv), rtol=1e-12)


def test_logistic_regression_step_updates_W_with_a_gemm(data):
    """The W3 workload's train step: the gradient's sums over possibly broadcast dims are
    proven unnecessary, so `W - lr * gW` is one Gemm; every step equals mode NONE's."""
    rng = np.random.default_rng(1)
    xv = rng.normal(size=(60, 20)).astype("float32")
    yv = rng.integers(0, 5, 60).astype("int32")
    results = {}
    for mode in ("FAST_RUN", "NONE"):
        W = ts.shared(np.zeros((20, 5), "float32"), name="W")
        b = ts.shared(np.zeros(5, "float32"), name="b")
        x, y = ts.fmatrix("x"), ts.ivector("y")
        cost = -ts.log(ts.softmax(x @ W + b))[ts.arange(y.shape[0]), y].mean()
        gW, gb = ts.grad(cost, [W, b])
        f = ts.function([x, y], cost, updates=[(W, W - 0.13 * gW), (b, b - 0.13 * gb)], mode=mode)
        costs = [f(xv, yv) for _ in range(3)]
        results[mode] = costs, W.get_value()
        if mode == "FAST_RUN":
            update_w = f.graph.outputs[-2]
            assert isinstance(update_w.owner.op, Gemm) and update_w.dtype == "float32"
    np.testing.assert_allclose(results["FAST_RUN"][0], results["NONE"][0], rtol=1e-5)
    np.testing.assert_allclose(results["FAST_RUN"][1], results["NONE"][1], rtol=1e-4, atol=1e-6)


# -- where it must not fire ----------------------------------------------------------------

def test_integer_products_stay_matmul(data, against_none):
    z, x, y = ts.lmatrix("z"), ts.lmatrix("x"), ts.lmatrix("y")
    vals = [np.arange(15).reshape(3, 5), np.arange(12).reshape(3, 4), np.arange(20).reshape(4, 5)]
    f = against_none([z, x, y], z + 2 * (x @ y), *vals)
    assert count(f, MatMul) == 1 and count(f, Gemm) == 0


def test_mixed_dtypes_do_not_become_a_wider_gemm(data, against_none):
    """A float32 update stays float32 (a Python scalar is weak); where numpy's promotion gives
    float64, no operand is silently cast: the product stays MatMul."""
    z32, x32, y32 = (ts.fmatrix(n) for n in ("z", "x", "y"))
    v32 = [data(3, 5, dtype="float32"), data(3, 4, dtype="float32"), data(4, 5, dtype="float32")]
    f = against_none([z32, x32, y32], z32 - 0.1 * (x32 @ y32), *v32)
    assert count(f, Gemm) == 1 and f.graph.outputs[0].dtype == "float32"
    z64 = ts.dmatrix("z64")
    f = against_none([z64, x32, y32], z64 + x32 @ y32, data(3, 5), *v32[1:])
    assert count(f, Gemm) == 0 and f.graph.outputs[0].dtype == "float64"
    a64 = ts.dscalar("a")
    f = against_none([z32, x32, y32, a64], z32 + a64 * (x32 @ y32), *v32, np.float64(0.5))
    assert count(f, Gemm) == 0 and f.graph.outputs[0].dtype == "float64"


def test_not_where_the_product_is_read_elsewhere_or_z_is_a_bias(data, against_none):
    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    d = x @ y
    f = against_none([z, x, y], [z + 2.0 * d, ts.tanh(d)], data(3, 5), data(3, 4), data(4, 5))
    assert count(f, Gemm) == 0 and count(f, MatMul) == 1  # a Gemm would compute x @ y twice
    bias = ts.dvector("bias")
    f = against_none([bias, x, y], x @ y + bias, data(5), data(3, 4), data(4, 5))
    assert count(f, Gemm) == 0
    row = ts.tensor("float64", (1, None), name="row")
    f = against_none([row, x, y], x @ y + row, data(1, 5), data(3, 4), data(4, 5))
    assert count(f, Gemm) == 0
    f = against_none([x, y], x @ y * 3.0, data(3, 4), data(4, 5))  # a plain product stays
    assert count(f, Gemm) == 0 and count(f, MatMul) == 1
    t, s = ts.tensor("float64", (None,) * 3), ts.tensor("float64", (None,) * 3)
    f = against_none([t, s], t + t @ s, data(2, 3, 3), data(2, 3, 3))  # batched
    assert count(f, Gemm) == 0


def test_excluding_the_tag_keeps_matmul(data):
    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    f = ts.function([z, x, y], z + x @ y, mode=ts.Mode().excluding("blas"))
    assert count(f, Gemm) == 0 and count(f, MatMul) == 1


def test_z_broadcast_at_run_time(data, against_none):
    """z of unknown static shape that is (1, n) when the function runs broadcasts as numpy's
    add does."""
    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    f = against_none([z, x, y], z * 2.0 + x @ y, data(1, 5), data(3, 4), data(4, 5))
    assert count(f, Gemm) == 1


# -- gradients ---------------------------------------------------------------------------------

def test_gradients_through_and_into_gemm(data, against_none):
    """The gradient of a cost through a Gemm-rewritten expression equals mode NONE's, and the
    backward pass's own products become updates too."""
    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    cost = ts.sum(ts.tanh(z * 0.5 + 2.0 * (x @ y)) ** 2)
    grads = ts.grad(cost, [z, x, y])
    f = against_none([z, x, y], [cost] + grads, data(3, 5), data(3, 4), data(4, 5),
                     rtol=1e-10, atol=1e-12)
    # the forward product is in the Gemm, and not computed again for the sizes the backward
    # pass reads off it; the two backward products remain
    assert count(f, Gemm) == 1 and count(f, MatMul) == 2
    ts.verify_grad(lambda z, x, y: z * 0.5 + 2.0 * (x @ y), [data(3, 5), data(3, 4), data(4, 5)],
                   mode="FAST_RUN")
    ts.verify_grad(lambda z, u, v: z - ts.outer(u, v) * 0.3, [data(3, 5), data(3), data(5)],
                   mode="FAST_RUN")


# -- in place ------------------------------------------------------------------------------

def test_update_writes_into_an_intermediate_z(data, against_none):
    x, w = ts.dmatrix("x"), ts.dmatrix("w")
    xv, wv = data(3, 3), data(3, 3)
    keep = xv.copy(), wv.copy()
    f = against_none([x, w], ts.tanh(x @ w) + x @ ts.tanh(w), xv, wv)
    (gemm,) = [op for op in ops_of(f) if isinstance(op, Gemm)]
    assert gemm.inplace and gemm.destroy_map == {0: [0]}
    np.testing.assert_array_equal(xv, keep[0])
    np.testing.assert_array_equal(wv, keep[1])


def test_update_does_not_write_into_inputs_or_unproven_shapes(data, against_none):
    z, x, w = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("w")
    zv = data(3, 5)
    keep = zv.copy()
    f = against_none([z, x, w], z + x @ w, zv, data(3, 4), data(4, 5))
    assert not any(op.inplace for op in ops_of(f) if isinstance(op, Gemm))
    np.testing.assert_array_equal(zv, keep)
    # tanh(x @ w) may be (1, n) where the product is (m, n): the sizes are not known to agree
    v = ts.dmatrix("v")
    f = against_none([x, w, v], ts.tanh(x @ w) + v @ w, data(1, 4), data(4, 5), data(3, 4))
    assert [op.inplace for op in ops_of(f) if isinstance(op, Gemm)] == [False]


def test_static_shapes_allow_writing_in_place(data, against_none):
    x = ts.tensor("float64", (3, 4), name="x")
    w = ts.tensor("float64", (4, 5), name="w")
    v = ts.tensor("float64", (3, 2), name="v")
    u = ts.tensor("float64", (2, 5), name="u")
    f = against_none([x, w, v, u], ts.exp(x @ w) - 0.5 * (v @ u), data(3, 4), data(4, 5),
                     data(3, 2), data(2, 5))
    assert [op.inplace for op in ops_of(f) if isinstance(op, Gemm)] == [True]
