"""The C row kernels (backend/c/rows.py) for softmax, logsoftmax and softmax cross-entropy,
against the numpy linker on the unrewritten graph: shapes, layouts, extreme logits, NaN and
infinities, label dtypes and errors, and the cases that run `perform`."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.backend.c import rows
from tracesym.backend.c.linker import _plan
from tracesym.errors import OpRuntimeError
from tracesym.ops.nnet import SoftmaxCrossEntropyGrad

C = ts.Mode(None, linker="c")  # no rewrites: the Ops themselves reach the linker
REF = ts.Mode(None, linker="numpy")
TOL = {"float32": 2e-6, "float64": 1e-14}


def both(inputs, outputs):
    return ts.function(inputs, outputs, mode=C), ts.function(inputs, outputs, mode=REF)


def assert_same(got, want, dtype):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=TOL[dtype], atol=TOL[dtype], equal_nan=True)


@pytest.fixture(scope="module", params=["float32", "float64"])
def fns(request):
    dt = request.param
    x, y = ts.tensor(dt, name="x", shape=(None, None)), ts.lvector("y")
    v, z = ts.tensor(dt, name="v", shape=(None,)), ts.tensor(dt, name="z", shape=(None,) * 3)
    d = ts.tensor(dt, name="d", shape=(None,))
    outs = [ts.softmax(x), ts.logsoftmax(x), ts.softmax_cross_entropy(x, y), ts.softmax(v),
            ts.logsoftmax(z), ts.softmax(x, axis=0), SoftmaxCrossEntropyGrad(1)(d[:1], x, y),
            SoftmaxCrossEntropyGrad(1)(d[::-1], x, y)]
    f, ref = both([x, y, v, z, d], outs)
    return dt, f, ref


def test_row_ops_run_in_c_except_other_axes(fns):
    dt, f, _ = fns
    kinds, _ = _plan(f.graph.toposort())
    by_op = {type(n.op).__name__ + str(getattr(n.op, "axis", "")): kinds.get(k, ("perform",))[0]
             for k, n in enumerate(f.graph.toposort())}
    assert by_op["Softmax(1,)"] == by_op["LogSoftmax(1,)"] == by_op["SoftmaxCrossEntropy1"] == "op"
    assert by_op["SoftmaxCrossEntropyGrad1"] == "op"
    assert by_op["Softmax(0,)"] == "op"  # its step: `perform` for an axis that is not the last
    cols = next(n for n in f.graph.toposort()
                if str(n.op) == "Softmax{(0,)}" and n.inputs[0].ndim == 2)
    assert rows.EMBEDDED[type(cols.op)][0](cols) is None  # no C parts: `perform`


def test_rows_match_numpy(fns, rng):
    dt, f, ref = fns
    for n, k in [(7, 10), (1, 1), (3, 33), (600, 10)]:
        x = (rng.normal(size=(n, k)) * 5).astype(dt)
        y = rng.integers(0, k, n)
        v = rng.normal(size=k).astype(dt)
        z = rng.normal(size=(2, n, k)).astype(dt)
        d = rng.normal(size=n).astype(dt)
        assert_same(f(x, y, v, z, d), ref(x, y, v, z, d), dt)


def test_layouts_and_extreme_values(fns, rng):
    dt, f, ref = fns
    big = (rng.normal(size=(6, 8)) * 1000).astype(dt)
    big[0, :] = -np.inf
    big[1, 3] = np.inf
    big[2, 5] = np.nan
    big[3, :] = 1000
    y = rng.integers(0, 4, 6)
    z = np.zeros((2, 3, 4), dt)
    for x in [big, big[:, ::2], big.T[:6, :6], big[::-1], np.asfortranarray(big)]:
        d = x[:, 0]
        assert_same(f(x, y[:x.shape[0]], x[1], z, d), ref(x, y[:x.shape[0]], x[1], z, d), dt)


def test_labels_of_other_dtypes_and_out_of_range(rng):
    x = ts.fmatrix("x")
    for ydt in ["int32", "uint8", "int64"]:
        y = ts.tensor(ydt, name="y", shape=(None,))
        f, ref = both([x, y], ts.softmax_cross_entropy(x, y))
        xv = rng.normal(size=(5, 4)).astype("float32")
        yv = rng.integers(0, 4, 5).astype(ydt)
        assert_same([f(xv, yv)], [ref(xv, yv)], "float32")
        yv[2] = 4
        with pytest.raises(OpRuntimeError, match="label 4 is out of range"):
            f(xv, yv)
    y = ts.lvector("y")
    f = ts.function([x, y], ts.softmax_cross_entropy(x, y), mode=C)
    with pytest.raises(OpRuntimeError, match="label -1 is out of range"):
        f(np.zeros((2, 3), "float32"), np.array([0, -1]))
    with pytest.raises(OpRuntimeError, match="do not match"):
        f(np.zeros((2, 3), "float32"), np.array([0, 1, 2]))
    g = ts.function([x, y], SoftmaxCrossEntropyGrad(1)(np.float32(1), x, y), mode=C)
    with pytest.raises(OpRuntimeError, match="label 3 is out of range"):
        g(np.zeros((2, 3), "float32"), np.array([0, 3]))


def test_empty_arrays_run_perform(fns):
    dt, f, ref = fns
    x, v, z = np.zeros((0, 3), dt), np.zeros(0, dt), np.zeros((0, 2, 2), dt)
    y = np.zeros(0, "int64")
    d = np.ones(1, dt)
    assert_same(f(x, y, v, z, d), ref(x, y, v, z, d), dt)
    xs = ts.tensor(dt, name="x", shape=(None, None))
    g, gref = both([xs], [ts.softmax(xs), ts.logsoftmax(xs)])
    assert_same(g(np.zeros((2, 0), dt)), gref(np.zeros((2, 0), dt)), dt)


def test_work_space_grows_and_is_reused():
    work = rows._Work("float32")
    a, b = work(4, 1)
    assert a.size == 4 and b.size == 1
    a2, b2 = work(3, 1)
    assert a2 is a and b2 is b
    a3, b3 = work(2, 10)
    assert a3.size >= 4 and b3.size == 10


@pytest.mark.parametrize("dt", ["float32", "float64", "int32", "int64", "uint8"])
def test_argmax_and_argmin_rows(dt, rng):
    x, v = ts.tensor(dt, name="x", shape=(None, None)), ts.tensor(dt, name="v", shape=(None,))
    outs = [ts.argmax(x, axis=1), ts.argmin(x, axis=-1, keepdims=True), ts.argmax(v),
            ts.argmin(v, keepdims=True), ts.argmax(x, axis=0), ts.argmax(x)]
    f, ref = both([x, v], outs)
    kinds, _ = _plan(f.graph.toposort())
    assert sum(k[0] == "op" for k in kinds.values()) == len(outs)
    c_parts = [rows.EMBEDDED[type(n.op)][0](n) for n in f.graph.toposort()]
    assert sum(p is not None for p in c_parts) == 4  # not axis 0, nor a flattened matrix
    base = rng.integers(0, 5, size=(7, 9)).astype(dt)  # ties: the first occurrence wins
    cases = [base, base[:, ::-2], base.T.copy(), base[:1, :1]]
    if dt.startswith("float"):
        nan = base.copy()
        nan[1, 4] = nan[1, 6] = nan[2, 0] = np.nan
        nan[3, 2] = np.inf
        nan[4, :] = -np.inf
        cases.append(nan)
    for a in cases:
        for g, w in zip(f(a, a[0]), ref(a, a[0])):
            assert g.dtype == w.dtype == np.int64 and g.shape == w.shape
            np.testing.assert_array_equal(g, w)
    with pytest.raises(OpRuntimeError):
        f(np.zeros((2, 0), dt), np.zeros(1, dt))
