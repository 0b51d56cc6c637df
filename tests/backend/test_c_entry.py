"""The whole-schedule entry (backend/c/entry.py): a function whose every node is a C kernel
runs as one C call per layout-stable call.  Checked against the numpy linker on the
unrewritten graph, across layouts the entry covers, ones it hands to the per-node runner,
and kernel errors."""

import os

import numpy as np
import pytest

import tracesym as ts
from tracesym.backend.c import entry
from tracesym.errors import OpRuntimeError

C = ts.Mode(linker="c")
REF = ts.Mode(None, linker="numpy")


def both(inputs, outputs, **kw):
    return ts.function(inputs, outputs, mode=C, **kw), ts.function(inputs, outputs, mode=REF, **kw)


def assert_same(got, want):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def chain():
    """Reductions between elementwise programs: several kernels, intermediates in buffers
    the entry's plan owns, a keepdims reduction, a broadcast scalar input."""
    x, s = ts.dmatrix("x"), ts.dscalar("s")
    rows = ts.exp(x * s).sum(axis=1, keepdims=True)
    y = ts.tanh(x / rows)
    return both([x, s], [(y * y).sum(), ts.log1p(rows.max()), y])


def test_a_schedule_of_kernels_is_one_entry(chain):
    f, ref = chain
    assert hasattr(f._run, "plans") and len(f.graph.toposort()) > 2
    x = np.random.default_rng(0).normal(size=(4, 5))
    got = f(x, 0.5)
    assert_same(got, ref(x, 0.5))
    assert len(f._run.plans) == 1  # one plan for this layout, the next call reuses it
    again = f(x * 2, -0.5)
    assert_same(again, ref(x * 2, -0.5))
    assert len(f._run.plans) == 1
    assert not np.shares_memory(got[2], again[2])  # outputs are new arrays every call


def test_each_layout_gets_its_own_plan_and_others_run_per_node(chain):
    f, ref = chain
    rng = np.random.default_rng(1)
    for shape in [(4, 5), (1, 7), (6, 1), (4, 5), (3, 3)]:
        x = rng.normal(size=shape)
        assert_same(f(x, 1.5), ref(x, 1.5))
    big = rng.normal(size=(6, 8))
    for x in [big[:, ::2], big.T, big[::-1], np.zeros((2, 0))]:
        assert_same(f(x, 0.25), ref(x, 0.25))
    plans = f._run.plans
    assert sum(p is not False for p in plans.values()) == 4  # one per contiguous shape
    assert all(p is False for k, p in plans.items() if 0 in k[0] or k[1] != (k[0][1] * 8, 8))


def test_a_kernel_error_is_raised_by_the_per_node_runner():
    a, b = ts.lvector("a"), ts.lvector("b")
    f = ts.function([a, b], [(a ** b).sum(), (a * b).max()], mode=C)
    assert hasattr(f._run, "plans")
    np.testing.assert_array_equal(f(np.array([2, 3]), np.array([1, 2])), [11, 6])
    with pytest.raises(OpRuntimeError, match="negative integer powers") as e:
        f(np.array([2, 3]), np.array([1, -1]))
    assert "test_c_entry.py" in str(e.value)
    np.testing.assert_array_equal(f(np.array([2, 3]), np.array([2, 2])), [13, 6])


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_matrix_products_run_in_the_entry_through_cblas(dtype, tol, rng):
    """Products of two float matrices are calls of numpy's CBLAS from the entry (here of a transposed
    constant too), with numpy's results; layouts it does not take and shapes that do not
    align go to the per-node runner."""
    x, y = ts.tensor(dtype, (None, None), name="x"), ts.tensor(dtype, (None, None), name="y")
    w = rng.normal(size=(6, 5)).astype(dtype)
    p = x @ y
    outs = [ts.tanh(p) @ w.T, (p * p).sum(axis=1), ts.exp(p @ (y.sum() * w.T))]
    f, ref = both([x, y], outs)
    assert hasattr(f._run, "plans")
    xv, yv = rng.normal(size=(4, 7)).astype(dtype), rng.normal(size=(7, 5)).astype(dtype)
    for args in ([xv, yv], [xv[:1], yv], [xv[::2], yv]):  # the last: not contiguous
        got, want = f(*args), ref(*args)
        for g, v in zip(got, want):
            assert g.dtype == v.dtype == dtype and g.shape == v.shape
            np.testing.assert_allclose(g, v, rtol=tol, atol=tol)
    assert [bool(p) for p in f._run.plans.values()] == [True, True, False]
    with pytest.raises(OpRuntimeError, match="test_c_entry.py"):
        f(xv, yv[:6])  # inner sizes 7 and 6: the per-node runner's error, at the user's line


def test_gemm_runs_in_the_entry_on_a_copy_of_z(rng):
    """`Gemm` (beta*z + alpha*x@y) in the entry: z copied into the node's own buffer, then
    one CBLAS call; beta 0 (BLAS would not read z, whose NaN numpy keeps) and a z that is
    not contiguous go to the per-node runner."""
    from tracesym.ops.blas import Gemm

    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    alpha, beta = ts.dscalar("alpha"), ts.dscalar("beta")
    f, ref = both([z, alpha, x, y, beta], [ts.tanh(Gemm()(ts.exp(z), alpha, x, y, beta)), z * 2])
    assert hasattr(f._run, "plans")
    zv, xv, yv = rng.normal(size=(4, 5)), rng.normal(size=(4, 3)), rng.normal(size=(3, 5))
    nan = zv.copy()
    nan[1, 2] = np.nan
    for args in ([zv, 0.5, xv, yv, -1.5], [nan, 0.5, xv, yv, 0.0],
                 [zv, 2.0, xv, np.asfortranarray(yv), 1.0]):
        assert_same(f(*args), ref(*args))
    assert np.isnan(f(nan, 0.5, xv, yv, 0.0)[0][1, 2])
    np.testing.assert_array_equal(zv, f(zv, 0.5, xv, yv, -1.5)[1] / 2)  # z itself untouched
    assert [bool(p) for p in f._run.plans.values()] == [True, False]  # F-ordered y: per node


def test_views_and_concatenations_run_in_the_entry(rng):
    """Transposes and slices of constant bounds are pointer offsets in the entry (of an
    argument or of an intermediate, whose buffer then lives as long as the view is read);
    concatenations copy row by row.  An output that is a view, and slices of symbolic bounds,
    keep the per-node runner; inputs of a concatenation that are not contiguous run it per
    node for that layout."""
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    a = ts.exp(x)
    s = a.sum()
    b = x * 3 + s  # as big as `a`, made once `a` itself is read no more
    out = ts.concatenate([a[:, :2] * b[:, 1:3], ts.tanh(y.T[1:, 2:4])], axis=0)
    f, ref = both([x, y], [out, ts.concatenate([x, y.T * 2], axis=1)])
    assert hasattr(f._run, "plans")
    xv, yv = rng.normal(size=(3, 4)), rng.normal(size=(5, 3))
    assert_same(f(xv, yv), ref(xv, yv))
    assert_same(f(xv[:, ::-1].copy(), yv), ref(xv[:, ::-1].copy(), yv))
    assert [bool(p) for p in f._run.plans.values()] == [True]

    g, ref = both([x], ts.concatenate([x[:, :2], x[:, 1:3]], axis=1))  # strided inputs
    assert_same(g(xv), ref(xv))
    assert [bool(p) for p in g._run.plans.values()] == [False]
    for outs in ([x * 2, (x * 2).T], [x[: x.shape[0] - 1] * 2]):  # a view out; symbolic bounds
        h, ref = both([x], outs)
        assert not hasattr(h._run, "plans")
        assert_same(h(xv), ref(xv))


def test_an_output_returned_twice_is_copied_by_the_entry(rng):
    x = ts.dmatrix("x")
    e = ts.exp(x)
    f, ref = both([x], [e, x * 2, e])
    assert hasattr(f._run, "plans")
    xv = rng.normal(size=(3, 4))
    got = f(xv)
    assert_same(got, ref(xv))
    assert [bool(p) for p in f._run.plans.values()] == [True]
    assert got[0] is not got[2] and not np.may_share_memory(got[0], got[2])


def test_entry_blas_layouts():
    a = np.zeros((4, 6))
    assert entry.blas_meta(a, a.T) == [4, 4, 6, 0, 1, 6, 6]
    assert entry.blas_meta(a[:, :3], a[:3, 1:5]) == [4, 4, 3, 0, 0, 6, 6]
    assert entry.blas_meta(a[:, ::2], a[:3]) is None  # no unit stride
    assert entry.blas_meta(np.broadcast_to(a[:1], (4, 6)), a.T) is None


def test_products_without_cblas_keep_the_per_node_runner(monkeypatch):
    from tracesym.backend.c import blas

    monkeypatch.setattr(blas, "cblas", lambda: None)
    x = ts.dmatrix("x")
    xv = np.arange(4.0).reshape(2, 2)
    f = ts.function([x], ts.exp(x @ x), mode=C)  # the product runs in numpy
    assert not hasattr(f._run, "plans")
    np.testing.assert_allclose(f(xv), np.exp(xv @ xv))


def test_schedules_with_other_nodes_keep_the_per_node_runner():
    x = ts.dmatrix("x")
    xv = np.arange(4.0).reshape(2, 2)
    f = ts.function([x], ts.exp(x @ x.astype("float32")), mode=C)  # a mixed-dtype product
    assert not hasattr(f._run, "plans")
    np.testing.assert_allclose(f(xv), np.exp(xv @ xv))
    f = ts.function([x], [ts.exp(x), x], mode=C)  # an output that is an input
    assert not hasattr(f._run, "plans")
    e, same = f(xv)
    np.testing.assert_allclose(e, np.exp(xv))
    assert same is not xv and np.array_equal(same, xv)


def test_updates_are_outputs_of_the_entry():
    x = ts.dvector("x")
    w = ts.shared(np.ones(3), name="w")
    f = ts.function([x], (x * w).sum(), updates=[(w, ts.exp(x) + w)], mode=C)
    assert hasattr(f._run, "plans")
    assert f(np.zeros(3)) == 0
    np.testing.assert_allclose(w.get_value(), 2.0)
    assert f(np.ones(3)) == 6


def test_shared_values_are_arguments_of_the_entry():
    x = ts.dvector("x")
    w = ts.shared(np.arange(3.0), name="w")
    f, ref = both([x], (ts.exp(x) * w).sum())
    assert hasattr(f._run, "plans")
    np.testing.assert_allclose(f(np.ones(3)), ref(np.ones(3)))
    w.set_value(np.arange(3.0)[::-1].copy())
    np.testing.assert_allclose(f(np.ones(3)), ref(np.ones(3)))
    w.set_value(np.arange(6.0)[::2])  # a view: the per-node runner takes it
    np.testing.assert_allclose(f(np.ones(3)), ref(np.ones(3)))


def test_entry_source_walks_a_table_of_its_nodes():
    """Each node is numbers in `ts_prog` (its case, kernel, pointer slots): inputs and
    outputs first, then the table's intermediates (slot 2 here, p[3])."""
    program = [("elemwise", "e", [0, 1], [2]), ("reduce", "r", [2], [3])]
    src, decl = entry.render(program, {"e": "k0_add", "r": "k1_sum"}, [0, 1], [3])
    assert src == (
        "typedef void (*ts_any)(void);\n"
        "static const ts_any ts_fc[] = {(ts_any)k0_add_contig};\n"
        "static const ts_any ts_fs[] = {(ts_any)k0_add_strided};\n"
        "static const ts_any ts_fr[] = {(ts_any)k1_sum};\n"
        "static const int32_t ts_prog[] = {0, 0, 0, 1, 3, 1, 0, 3, 2};\n"
        '__attribute__((optimize("O1"))) int ts_entry(int64_t **m, char **t, char *i0, char *i1, '
        "char *o0)\n"
        "{\n"
        "  char *p[4];\n"
        "  p[0] = i0;\n"
        "  p[1] = i1;\n"
        "  p[2] = o0;\n"
        "  for (int j = 3; j < 4; j++) p[j] = t[j - 3];\n"
        "  const int32_t *c = ts_prog;\n"
        "  for (int64_t k = 0; k < 2; k++) {\n"
        "    int s = 0;\n"
        "    switch (c[0]) {\n"
        "    case 0:  /* elemwise 3 */\n"
        "      s = m[k][0] ? ((int (*)(int64_t, char *, char *, char *))ts_fc[c[1]])(m[k][1], p[c[2]], p[c[3]], p[c[4]])\n"
        "             : ((int (*)(const int64_t *, char *, char *, char *))ts_fs[c[1]])(m[k] + 1, p[c[2]], p[c[3]], p[c[4]]);\n"
        "      c += 5;\n"
        "      break;\n"
        "    case 1:  /* reduce 2 */\n"
        "      s = ((int (*)(const int64_t *, char *, char *))ts_fr[c[1]])(m[k], p[c[2]], p[c[3]]);\n"
        "      c += 4;\n"
        "      break;\n"
        "    }\n"
        "    if (s) return s;\n"
        "  }\n"
        "  return 0;\n"
        "}\n")
    assert decl == "int ts_entry(int64_t **m, char **t, char *i0, char *i1, char *o0);\n"


def test_intermediates_share_buffers_once_dead(rng):
    x = ts.dmatrix("x")
    y = x
    for k in range(4):  # each value is read by a reduction and by the next elementwise step
        r = y.max(axis=1, keepdims=True) if k % 2 else y.sum(axis=1, keepdims=True)
        y = ts.tanh(y - r)
    f, ref = both([x], y.sum())
    assert hasattr(f._run, "plans")
    xv = rng.normal(size=(5, 7))
    for _ in range(3):
        np.testing.assert_allclose(f(xv), ref(xv), rtol=1e-12)
    (plan,) = f._run.plans.values()
    nodes = f.graph.toposort()
    intermediates = sum(len(n.outputs) for n in nodes) - 1
    buffers = {id(b) for b in plan.keep if isinstance(b, np.ndarray) and b.dtype == np.uint8}
    assert intermediates >= 6 and len(buffers) <= intermediates // 2 + 1  # + the output's


def test_first_element_pointer_of_any_layout():
    import cffi

    from tracesym.backend.c.linker import _ptr

    ffi = cffi.FFI()
    base = np.arange(60.0).reshape(3, 4, 5)
    views = [base, base[:, 1:3, ::2], base[::-1, :, ::-1], base.T, base[1], base[1, 2:, 3],
             np.broadcast_to(np.arange(5.0), (4, 5)), np.zeros(()), base[:1, :1, :1]]
    for a in views:
        got = int(ffi.cast("intptr_t", _ptr(ffi.from_buffer, a)))
        assert got == a.__array_interface__["data"][0]


def test_broadcast_shapes_agrees_with_numpy(rng):
    from tracesym.backend.c.linker import _broadcast

    for _ in range(500):
        shapes = [tuple(int(d) for d in rng.choice([0, 1, 2, 3], size=rng.integers(0, 4)))
                  for _ in range(rng.integers(1, 4))]
        try:
            want = np.broadcast_shapes(*shapes)
        except ValueError as e:
            with pytest.raises(ValueError, match="mismatch"):
                _broadcast(*shapes)
            assert "mismatch" in str(e)
            continue
        assert _broadcast(*shapes) == want
    assert _broadcast() == ()


def test_shapes_that_do_not_broadcast_are_the_per_node_runners_error():
    x, y = ts.dvector("x"), ts.dvector("y")
    f = ts.function([x, y], (ts.exp(x) * y).sum(), mode=C)
    assert hasattr(f._run, "plans")
    with pytest.raises(OpRuntimeError, match=r"float64\[3\], float64\[4\]"):
        f(np.ones(3), np.ones(4))
    assert f(np.zeros(3), np.ones(3)) == 3.0


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="found through /proc")
def test_numpy_blas_is_found():
    """The CBLAS generated C calls is numpy's own (one thread pool for every product)."""
    from tracesym.backend.c import blas

    found = blas.cblas()
    assert found is not None and found[2] in ("int", "int64_t")
    assert any("blas" in p.lower() for p in blas._numpy_blas_paths())


@pytest.fixture
def big():
    """A function of one big output (RECYCLE_BYTES or more) and a small one."""
    x = ts.dvector("x")
    n = entry.RECYCLE_BYTES // 8 + 16
    f = ts.function([x], [ts.exp(x) + 1, (x * 2).sum()], mode=C)
    return f, np.linspace(0, 1, n)


def test_a_big_output_the_caller_dropped_is_written_again(big):
    import weakref

    f, x = big
    address = f(x)[0].ctypes.data  # the result is dropped at once
    out, total = f(x * 0.5)
    assert out.ctypes.data == address  # the same memory, no new pages to map
    np.testing.assert_allclose(out, np.exp(x * 0.5) + 1)
    np.testing.assert_allclose(total, (x * 0.5 * 2).sum())
    held = weakref.ref(out)  # a weak reference keeps the result out of reuse too
    del out
    again = f(x)[0]
    np.testing.assert_allclose(again, np.exp(x) + 1)
    kept = held()  # released with the caller's last reference, or as it was: not reused
    assert kept is None or (kept is not again and np.allclose(kept, np.exp(x * 0.5) + 1))


@pytest.mark.parametrize("keep", ["array", "view"])
def test_an_output_the_caller_still_references_is_never_written_again(big, keep):
    f, x = big
    first = f(x)[0]
    kept = first if keep == "array" else first[::2]
    del first
    second = f(x * 2)[0]
    assert not np.shares_memory(kept, second)
    want = np.exp(x) + 1
    np.testing.assert_allclose(kept, want if keep == "array" else want[::2])
    np.testing.assert_allclose(second, np.exp(x * 2) + 1)


def test_several_schedules_link_into_one_module_each_with_its_entry(rng):
    from tracesym.backend import link_c_many

    x, w = ts.dmatrix("x"), ts.dmatrix("w")
    graphs = [ts.function([x, w], out, mode=C).graph
              for out in ([ts.tanh(x @ w) + 1], [ts.exp(x @ w).sum(axis=1)], [(x * 2) @ w])]
    runs = link_c_many(graphs, ts.config.snapshot())
    assert len({id(r.module) for r in runs}) == 1  # one module: one wrapper, one link
    xv, wv = rng.normal(size=(3, 4)), rng.normal(size=(4, 5))
    want = [np.tanh(xv @ wv) + 1, np.exp(xv @ wv).sum(axis=1), (xv * 2) @ wv]
    for run, w_ in zip(runs, want):
        assert hasattr(run.validated, "plans")  # each schedule runs as its own one entry
        (got,) = run.validated([xv, wv])
        np.testing.assert_allclose(got, w_, rtol=1e-12)


def test_scalar_inputs_keep_their_one_plan_without_a_key_per_call():
    a, b = ts.dscalar("a"), ts.dscalar("b")
    f, ref = both([a, b], [ts.exp(a) * b + 1, a - b])
    for av, bv in [(0.5, 2.0), (-1.0, 3.0), (np.inf, 0.0), (2.0, np.nan)]:
        assert_same(f(av, bv), ref(av, bv))
    assert list(f._run.plans) == [((), (), (), ())]
    i, j = ts.lscalar("i"), ts.lscalar("j")
    g, gref = both([i, j], [i // j + i % j])
    for iv, jv in [(7, 2), (-7, 2), (5, 0)]:  # j = 0: the kernel reports it, numpy answers
        with np.errstate(divide="ignore"):
            np.testing.assert_array_equal(g(iv, jv), gref(iv, jv))
