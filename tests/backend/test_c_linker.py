"""Compiled functions with `linker="c"` against the numpy linker on the unrewritten graph
(mode NONE): fused programs, broadcasting, layouts, integer division, reductions, BLAS,
in-place nodes, buffer reuse across calls, fallbacks, errors and configuration.

Each function costs one compiler call (cached for the session), so tests share a few
functions with many outputs."""

import warnings

import numpy as np
import pytest

import tracesym as ts
from tracesym.backend import c as cbackend
from tracesym.backend.c import cache, cgen
from tracesym.config import load
from tracesym.ops import scalar as S
from tracesym.ops.inplace import InplaceElemwise

C = ts.Mode(linker="c")
REF = ts.Mode(None, linker="numpy")


def both(inputs, outputs):
    return ts.function(inputs, outputs, mode=C), ts.function(inputs, outputs, mode=REF)


def assert_same(got, want, rtol=1e-13):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, w)


@pytest.fixture(scope="module")
def fused():
    x, y = ts.dmatrix("x"), ts.dvector("y")
    u, v = ts.fvector("u"), ts.fvector("v")
    w1 = ts.sigmoid(x * y + 1.5) * ts.tanh(x) + ts.exp(-x * x)
    w1f = ts.sigmoid(u * v + 1.5) * ts.tanh(u) + ts.exp(-u * u)
    return both([x, y, u, v], [w1, w1f, ts.maximum(x, np.nan * 0 + 2.0), (y * 2 + 1) ** 2])


def test_fused_elementwise_matches_numpy(fused, rng):
    f, ref = fused
    assert not f._runner.fallbacks
    kinds = [type(n.op).__name__ for n in f.graph.toposort()]
    assert "Composite" in kinds  # the fusion rewrite produced the programs the C code runs
    x, y = rng.normal(size=(4, 6)), rng.normal(size=6)
    u, v = rng.normal(size=9).astype("float32"), rng.normal(size=9).astype("float32")
    assert_same(f(x, y, u, v), ref(x, y, u, v), rtol=1e-6)
    layouts = [  # strided, negative strides, transposed, run-time size-1 dims, zero-size
        (x[:, ::2], y[::-2], u[::-1], v[::-1]),
        (np.asfortranarray(x), y, u[:0], v[:0]),
        (x[:1], y, u, v[:1]),
        (x[:, :1], y, u[:1], v),
        (x[:0], y, u, v),
        (np.zeros((3, 0)), np.zeros(0), u, v),
    ]
    for args in layouts:
        assert_same(f(*args), ref(*args), rtol=1e-6)


def test_nan_and_inf_propagate(fused):
    f, ref = fused
    s = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308])
    x = np.stack([s, s[::-1]])
    sf = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3e38], "float32")

    assert_same(f(x, s, sf, sf[::-1]), ref(x, s, sf, sf[::-1]), rtol=1e-6)


def test_integer_floor_division_and_modulo_round_towards_minus_infinity():
    a, b = ts.lvector("a"), ts.lvector("b")
    c, d = ts.bvector("c"), ts.bvector("d")
    u, w = ts.vector("u", dtype="uint32"), ts.vector("w", dtype="uint32")
    outs = [a // b, a % b, c // d, c % d, u // w, u % w, a // 3, a % -3]
    f, ref = both([a, b, c, d, u, w], outs)
    imin = np.iinfo(np.int64).min
    av = np.array([7, -7, 7, -7, 0, imin, imin, 5, -1, imin])
    bv = np.array([2, 2, -2, -2, 3, -1, 0, 0, -1, 1])
    cv, dv = np.array([-128, 127, -5, 5, -128, 0, 9, -9, 1, 3], "int8"), \
        np.array([-1, -1, 2, -2, 0, 0, 4, 4, -3, -3], "int8")
    uv, wv = np.arange(10, dtype="uint32") * 7, np.array([0, 1, 2, 3, 0, 5, 6, 7, 8, 0], "uint32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = ref(av, bv, cv, dv, uv, wv)
    got = f(av, bv, cv, dv, uv, wv)  # no SIGFPE on INT_MIN // -1 or on a zero divisor
    assert_same(got, want)
    np.testing.assert_array_equal(got[0][:4], [3, -4, -4, 3])
    np.testing.assert_array_equal(got[1][:4], [1, 1, -1, -1])


def test_float_to_unsigned_casts_wrap_like_numpy():
    """C leaves a negative float converted to an unsigned type undefined; numpy wraps it."""
    x, y = ts.dvector("x"), ts.fvector("y")
    outs = [ts.cast(v, d) for v in (x, y) for d in ("uint8", "uint16", "uint32", "uint64")]
    f, ref = both([x, y], outs)
    xv = np.array([-2.5, -1.0, -0.5, 0.0, 1.5, 300.0, 70000.5, 2.0**40])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(f(xv, xv.astype("float32")), ref(xv, xv.astype("float32")))


def test_integer_power_to_a_negative_exponent_is_numpys_error():
    a, b = ts.lvector("a"), ts.lvector("b")
    f = ts.function([a, b], a ** b, mode=C)
    np.testing.assert_array_equal(f(np.array([2, 3, -2]), np.array([10, 0, 3])), [1024, 1, -8])
    with pytest.raises(ts.OpRuntimeError, match="negative integer powers") as e:
        f(np.array([2]), np.array([-1]))
    assert isinstance(e.value.__cause__, ValueError)


@pytest.fixture(scope="module")
def reductions():
    x, m = ts.tensor3("x"), ts.bmatrix("m")
    outs = [x.sum(), x.sum(axis=0), x.sum(axis=(0, 2)), x.sum(axis=1, keepdims=True),
            x.max(axis=2), x.min(axis=(1, 2)), x.prod(axis=1), x.mean(axis=-1),
            m.sum(axis=0), m.max(), (m > 0).all(axis=1), (m > 0).any(axis=0),
            ts.sum(x * x + 1, axis=1)]
    return both([x, m], outs)


def test_reductions_over_any_axes(reductions, rng):
    f, ref = reductions
    # x.sum(axis=0) adds whole rows (rows.py); the five others that keep the innermost axis,
    # and x.sum(axis=(0, 2)), which keeps one inside a reduced one, run in numpy; the rest in C
    reasons = list(f._runner.fallbacks.values())
    assert len(reasons) == 6 and all("memory order" in r for r in reasons)
    assert sum("inside a reduced one" in r for r in reasons) == 1
    x = rng.normal(size=(3, 4, 5))
    m = rng.integers(-100, 100, size=(6, 7)).astype("int8")
    assert_same(f(x, m), ref(x, m), rtol=1e-12)
    x[1, 2, 3] = np.nan
    assert_same(f(x[::-1, :, ::2], m.T), ref(x[::-1, :, ::2], m.T), rtol=1e-12)


def test_reductions_of_empty_arrays(reductions):
    f, ref = reductions
    x, m = np.zeros((0, 4, 5)), np.zeros((2, 3), "int8")
    assert_same(f(x[:, :, :1], m), ref(x[:, :, :1], m))
    with pytest.raises(ts.OpRuntimeError, match="zero-size array"):
        f(np.zeros((2, 3, 0)), m)  # max over an empty axis has no identity, as in numpy


def test_matmul_inplace_and_buffer_reuse_across_calls(rng):
    a, b, c = ts.dmatrix("a"), ts.dmatrix("b"), ts.dvector("c")
    p = a @ b
    h = InplaceElemwise(S.TABLE["add"], {0: 0})(ts.tanh(p), c)  # overwrites tanh's result
    outs = [h * 3, (h * 2).sum(axis=0), ts.exp(p)]
    f = ts.function([a, b, c], outs, mode=ts.Mode(None, linker="c"))
    ref = ts.function([a, b, c], outs, mode=REF)
    av, bv, cv = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)
    first = f(av, bv, cv)
    keep = [o.copy() for o in first]
    assert_same(first, ref(av, bv, cv))
    second = f(av * 2, bv, cv)  # same shapes: private buffers reused
    for o, k in zip(first, keep):  # results handed out are never overwritten
        np.testing.assert_array_equal(o, k)
    assert_same(second, ref(av * 2, bv, cv))
    assert_same(f(av[:2], bv, cv), ref(av[:2], bv, cv))  # new shapes: new buffers
    assert_same(f(av, bv, cv), keep)


def test_an_inplace_kernel_writes_into_its_input_buffer():
    x, y = ts.dmatrix("x"), ts.dvector("y")
    node = InplaceElemwise(S.TABLE["add"], {0: 0})(ts.exp(x), y).owner
    (step,) = cbackend.linker.kernel_steps([node], ts.config.compiledir)
    buf, yv = np.ones((2, 3)), np.arange(3.0)
    (out,) = step([buf, yv])
    assert out is buf
    np.testing.assert_array_equal(buf, np.broadcast_to(1 + yv, (2, 3)))
    ro = np.ones((2, 3))
    ro.flags.writeable = False  # a read-only buffer is never written: a new array instead
    (out,) = step([ro, yv])
    assert out is not ro and (ro == 1).all()
    (out,) = step([buf, buf[0]])  # the other input views the buffer: not overwritten
    assert out is not buf


def test_float16_and_complex_fall_back_to_numpy_with_a_reason():
    x = ts.vector("x", dtype="float16")
    f = ts.function([x], ts.exp(x) + 1, mode=C)
    (reason,) = f._runner.fallbacks.values()
    assert "float16" in reason
    v = np.linspace(-1, 1, 5).astype("float16")
    np.testing.assert_array_equal(f(v), ts.function([x], ts.exp(x) + 1, mode=REF)(v))


def test_wrong_input_to_a_kernel_is_refused_before_the_c_code_runs(rng):
    x = ts.dvector("x")
    node = (ts.exp(x)).owner
    (step,) = cbackend.linker.kernel_steps([node], ts.config.compiledir)
    np.testing.assert_allclose(step([np.zeros(3)])[0], np.ones(3))
    with pytest.raises(TypeError, match="built for float64"):
        step([np.zeros(3, "float32")])
    with pytest.raises(TypeError, match="1-d"):
        step([np.zeros((3, 3))])


def test_linker_flag():
    assert load({"TRACESYM_FLAGS": "linker=c"}).linker == "c"
    with pytest.raises(ts.ConfigError, match="numpy, c"):
        ts.config.linker = "gcc"
    x = ts.dvector("x")
    with ts.config.change(linker="c"):
        f = ts.function([x], ts.exp(x))
    assert f._runner.module is not None
    np.testing.assert_allclose(f(np.zeros(2)), 1.0)


def test_no_compiler_warns_once_and_uses_numpy(monkeypatch):
    from tracesym import backend

    monkeypatch.setattr(cache, "compiler", lambda: None)
    monkeypatch.setattr(backend, "_warned", [])
    x = ts.dvector("x")
    with pytest.warns(UserWarning, match="no C compiler"):
        f = ts.function([x], ts.exp(x), mode=C)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = ts.function([x], ts.exp(x) * 2, mode=C)
    assert not hasattr(f._runner, "fallbacks")
    np.testing.assert_allclose(g(np.zeros(2)), 2.0)


def test_compile_error_shows_the_source_path_and_the_compiler_message(compiledir):
    with pytest.raises(cache.CompileError, match=r"(?s)failed/tsk_\w+\.c.*error") as e:
        cache.load("int broken(void) { return undeclared_name; }\n", "int broken(void);",
                   compiledir)
    path = str(e.value).split("source kept in ")[1].split()[0]
    assert "undeclared_name" in open(path).read()


def test_generated_source_of_a_tiny_kernel():
    """The kernel of `x + y` for float64 vectors, as a reader sees it (golden text)."""
    from tracesym.ops.composite import Program, Step

    prog = Program(("float64", "float64"), (Step("add", (("in", 0), ("in", 1)), "float64"),),
                   (("step", 0),))
    src, decl = cgen.render_elemwise("k0_add", prog, frozenset({1}), 1)
    assert decl == ("int k0_add_contig(int64_t n, char *a0, char *a1, char *o0);\n"
                    "int k0_add_strided(const int64_t *meta, char *a0, char *a1, char *o0);\n")
    assert src == GOLDEN


GOLDEN = """\
__attribute__((noinline)) static int k0_add_loop(int64_t n, const double *restrict p0, double *restrict q0, const double s1)
{
  int ts_err = 0;
  for (int64_t b = 0; b < n; b += 16) {
    #pragma omp simd
    for (int64_t j = 0; j < 16; j++) {
      const int64_t i = b + j;
      const double v0 = p0[i];
      const double v1 = s1;
      const double t0 = (double)(v0 + v1);  /* add */
      q0[i] = (double)t0;
    }
  }
  return ts_err;
}

__attribute__((noinline)) static int k0_add_row(int64_t n, const double *restrict p0, double *restrict q0, const double s1)
{
  const int64_t body = n - n % 16;
  int ts_err = 0;
  double c0[16];
  if (body < n) {  /* first (in place, the body overwrites inputs): the last 16
                      elements, or all n padded with the first */
    double b0[16];
    if (n < 16)
      for (int64_t j = 0; j < 16; j++) {
        b0[j] = p0[j < n ? j : 0];
      }
    const double *restrict e0 = n < 16 ? b0 : p0 + n - 16;
    ts_err = k0_add_loop(16, e0, c0, s1);
  }
  ts_err |= k0_add_loop(body, p0, q0, s1);
  const int64_t off = n < 16 ? 0 : 16 - (n - body);
  for (int64_t j = 0; j < n - body; j++) {
    q0[body + j] = c0[off + j];
  }
  return ts_err;
}

static int k0_add_rowp(int64_t n, char **p, char *const *a)
{
  return k0_add_row(n, (const double *)p[0], (double *)p[1], *(const double *)(a[1]));
}

int k0_add_contig(int64_t n, char *a0, char *a1, char *o0)
{
  if (n >= 1048576 && ts_threads()) {
    static const int size[] = {sizeof(double), sizeof(double)};
    char *const ops[] = {a0, o0};
    char *const args[] = {a0, a1};
    return ts_par_contig(n, 2, size, ops, args, k0_add_rowp);
  }
  const double s1 = *(const double *)(a1);
  return k0_add_row(n, (const double *)a0, (double *)o0, s1);
}

int k0_add_strided(const int64_t *meta, char *a0, char *a1, char *o0)
{
  int64_t shape[1], st[2];
  const int m = ts_collapse(1, 2, meta, shape, st);
  if (m < 0) return 0;
  static const int size[] = {sizeof(double), sizeof(double)};
  char *const ops[] = {a0, o0};
  char *const args[] = {a0, a1};
  int64_t rows = 1;
  for (int d = 0; d < m - 1; d++) rows *= shape[d];
  if (rows > 1 && rows * shape[m - 1] >= 1048576 && ts_nonzero(st + 1, m) && ts_threads())
    return ts_par_drive(rows, m, 1, shape, st, 1, 2, size, ops, args, k0_add_rowp);
  return ts_drive(0, rows, m, 1, shape, st, 1, 2, size, ops, args, k0_add_rowp);
}
"""


def test_reductions_keeping_the_innermost_axis(rng):
    """A float sum over leading axes adds whole rows in C (in double); other reductions that
    keep the innermost axis run in numpy, which reduces in memory order."""
    x = ts.ftensor3("x")
    with ts.config.change(linker="c"):
        f = ts.function([x], [x.sum(axis=(0, 1)), x.sum(axis=0, keepdims=True)])
        g = ts.function([x], x.max(axis=2))
        h = ts.function([x], x.max(axis=(0, 1)))
    assert not f._runner.fallbacks and not g._runner.fallbacks
    (reason,) = h._runner.fallbacks.values()
    assert "innermost axis" in reason
    for v in (rng.random((50, 4, 3)).astype("float32"), np.zeros((0, 2, 3), "float32"),
              rng.random((6, 4, 6)).astype("float32")[:, :, ::2]):  # not contiguous: numpy
        a, b = f(v)
        want = v.astype("float64").sum(axis=(0, 1)).astype("float32")
        np.testing.assert_allclose(a, want, rtol=1e-7)
        assert a.dtype == b.dtype == v.dtype and b.shape == (1,) + v.shape[1:]
        np.testing.assert_allclose(b, v.sum(axis=0, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(g(v), v.max(axis=2))
    np.testing.assert_array_equal(h(v), v.max(axis=(0, 1)))


def test_a_scalar_op_outside_the_table_runs_in_numpy():
    from tracesym.ops import scalar as S
    from tracesym.ops.elemwise import Elemwise

    op = S.ScalarOp("my_tanh_add", 2, lambda a, b: np.tanh(a) + b, "(tanh({0}) + {1})")
    x = ts.dmatrix("x")
    f = ts.function([x], Elemwise(op)(x * 2.0, ts.exp(x)), mode=C)
    v = np.linspace(-1, 1, 6).reshape(2, 3)
    np.testing.assert_allclose(f(v), np.tanh(2 * v) + np.exp(v), rtol=1e-15)
    assert any("scalar table" in why for why in f._runner.fallbacks.values())


def test_big_reductions_split_their_outputs_over_threads(rng):
    """A reduction of at least `parallel_min` elements to several outputs runs them on
    threads; each output is summed in the serial order (one channel alone runs serially):
    the same bits."""
    x = ts.tensor4("x")
    with ts.config.change(linker="c"):
        f = ts.function([x], [(x * x).sum(axis=(0, 2, 3), keepdims=True),
                              (x * 2).max(axis=(0, 2, 3))])
    assert not f._runner.fallbacks  # fused reductions: C kernels
    v = rng.normal(size=(40, 6, 70, 70))
    assert v.size >= cgen.PARALLEL_MIN_CHEAP
    s, m = f(v)
    np.testing.assert_allclose(s.ravel(), (v * v).sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_array_equal(m, (v * 2).max(axis=(0, 2, 3)))
    for j in range(v.shape[1]):
        sj, mj = f(v[:, j:j + 1])
        assert sj.ravel()[0] == s.ravel()[j] and mj[0] == m[j]


def test_functions_link_the_elementwise_driver_compiled_once(tmp_path, monkeypatch):
    builds = []
    real = cache._build_object
    monkeypatch.setattr(cache, "_build_object", lambda *a: builds.append(a) or real(*a))
    x = ts.dmatrix("x")
    a = np.arange(6.0).reshape(2, 3)
    with ts.config.change(compiledir=str(tmp_path)):
        f = ts.function([x], ts.exp(x) + 1, mode=C)
        g = ts.function([x], ts.sin(x) * 2, mode=C)
    np.testing.assert_allclose(f(a.T), np.exp(a.T) + 1)  # strided: through the driver
    np.testing.assert_allclose(g(a.T), np.sin(a.T) * 2)
    assert len(builds) == 1 and "ts_drive" in builds[0][2]
    names = sorted(e["name"][:4] for e in cache.entries(str(tmp_path)))
    assert names == ["tsk_", "tsk_", "tso_"]
