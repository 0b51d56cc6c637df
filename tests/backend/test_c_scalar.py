"""Every row of the scalar table, in every dtype C supports, run by the C kernels and compared
with the numpy reference (`Program.evaluate`) on random shapes and layouts: broadcast
(run-time size-1) dims, transposed, negative and gapped strides, zero-size arrays.

One kernel per dtype computes every row at once (a many-output program), so the whole table
is one compiler call."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracesym.backend.c import cgen, linker
from tracesym.ops import scalar as S
from tracesym.ops.composite import Composite, Program, Step
from tracesym.trace.types import TensorType

DTYPES = list(cgen.CTYPES)
ND = 3
EXACT_FLOAT = {"add", "sub", "mul", "true_divide", "floor_divide", "mod", "neg", "abs", "sign",
               "reciprocal", "sqr", "sqrt", "maximum", "minimum", "clip", "where", "floor",
               "ceil", "round", "trunc", "lt", "le", "gt", "ge", "eq", "neq", "isnan", "isinf",
               "isfinite"}


def _args(name, nin):
    """Which inputs a row reads: a, b: any values (b has zeros and -1); e: small and
    non-negative (exponents; the source of casts, which are undefined out of range); d: no
    zeros (integer reciprocal)."""
    if name == "power":
        return (0, 2)
    if name == "reciprocal":
        return (3,)
    if name.startswith("cast_"):
        return (2,)
    return (0, 1, 3)[:nin]


def _single(step, in_dtypes):
    return Program(in_dtypes, (step,), (("step", 0),))


def table_program(dt):
    """Every row that numpy and C both define for inputs of dtype `dt`, one output each."""
    ins = (dt,) * 4
    steps = []
    for name, row in S.TABLE.items():
        args = _args(name, row.nin)
        try:
            out = row.out_dtype([dt] * row.nin)
        except TypeError:
            continue
        step = Step(name, tuple(("in", i) for i in args), out)
        if cgen.unsupported(_single(step, ins)) is None:
            steps.append(step)
    return Program(ins, tuple(steps), tuple(("step", j) for j in range(len(steps))))


MIXED = [("int64", "float32"), ("uint8", "int8"), ("bool", "int16"), ("uint64", "float64")]


def mixed_program():
    """Binary rows on pairs of dtypes: each step computes in numpy's loop dtype (int64 <
    float32 compares in float64) and stores numpy's result dtype."""
    ins = tuple(d for pair in MIXED for d in pair)
    steps = []
    for p in range(len(MIXED)):
        for name, row in S.TABLE.items():
            if row.nin != 2 or name == "power":
                continue
            try:
                out = row.out_dtype(list(MIXED[p]))
            except TypeError:
                continue
            step = Step(name, (("in", 2 * p), ("in", 2 * p + 1)), out)
            if cgen.unsupported(_single(step, ins)) is None:
                steps.append(step)
        steps.append(Step("where", (("in", 2 * p), ("in", 2 * p), ("in", 2 * p + 1)),
                          S.TABLE["where"].out_dtype([MIXED[p][0], *MIXED[p]])))
    return Program(ins, tuple(steps), tuple(("step", j) for j in range(len(steps))))


def _node(prog, nd=ND):
    inputs = [TensorType(d, (None,) * nd).make_variable() for d in prog.in_dtypes]
    return Composite(prog).make_node(*inputs)


PROGRAMS = {dt: table_program(dt) for dt in DTYPES}
PROGRAMS["mixed"] = mixed_program()
#: compiled for every run; the other dtypes' tables (one more compile, ~10 s) are `slow`
FAST = ["float64", "float32", "int64", "bool", "mixed"]
SLOW = [k for k in PROGRAMS if k not in FAST]


def _compile(keys, compiledir, nd=ND):
    nodes = [_node(PROGRAMS[k], nd) for k in keys]
    kinds, fallbacks = linker._plan(nodes)
    assert not fallbacks and all(kind == "elemwise" for kind, _ in kinds.values())
    return dict(zip(keys, linker.kernel_steps(nodes, compiledir)))


@pytest.fixture(scope="module")
def steps(compiledir):
    return _compile(FAST, compiledir)


@pytest.fixture(scope="module")
def slow_steps(compiledir):
    return _compile(SLOW, compiledir)


def _values(rng, dt, shape, role):
    n = int(np.prod(shape))
    if dt == "bool":
        return rng.random(n).reshape(shape) < 0.5
    if dt.startswith("float"):
        if role == 2:
            v = rng.uniform(0, 4, n)
        else:
            v = rng.uniform(-6, 6, n)
            if role != 3:
                v = np.where(rng.random(n) < 0.3, rng.integers(-2, 3, n), v)
            special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])
            pick = rng.random(n) < 0.15
            v = np.where(pick, special[rng.integers(0, 5, n)], v)
        return v.astype(dt).reshape(shape)
    info = np.iinfo(dt)
    if role == 2:
        v = rng.integers(0, 6, n)
    else:
        v = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        small = rng.integers(max(int(info.min), -3), 4, n).astype(dt)
        v = np.where(rng.random(n) < 0.5, small, v)
        if role == 3:
            v = np.where(v == 0, 1, v)
        else:
            edge = np.array([info.min, info.max, 0, 1], dtype=dt)
            if info.min < 0:
                edge = np.append(edge, np.array(-1, dtype=dt))
            v = np.where(rng.random(n) < 0.15, edge[rng.integers(0, len(edge), n)], v)
    return v.astype(dt).reshape(shape)


def _layout(rng, a, kind):
    """`a`'s values in a different memory layout."""
    if kind == "contig" or a.ndim == 0:
        return a
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "reversed":
        ax = int(rng.integers(0, a.ndim))
        b = np.flip(a, ax).copy()
        return np.flip(b, ax)  # same values, negative stride along ax
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]  # gapped


@st.composite
def cases(draw, keys):
    key = draw(st.sampled_from(keys))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ND, max_size=ND)))
    layouts = []
    for _ in PROGRAMS[key].in_dtypes:
        bcast = draw(st.lists(st.booleans(), min_size=ND, max_size=ND))
        layouts.append((tuple(1 if b else s for s, b in zip(shape, bcast)),
                        draw(st.sampled_from(["contig", "fortran", "reversed", "gapped"]))))
    return key, layouts, draw(st.integers(0, 2**31))


def _compare(got, want, op, dt):
    assert got.shape == want.shape and got.dtype == want.dtype, (op, got.dtype, want.dtype)
    if got.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=f"{op} on {dt}")
        return
    if op in EXACT_FLOAT or op.startswith("cast_"):
        np.testing.assert_array_equal(got, want, err_msg=f"{op} on {dt}")
        return
    eps = np.finfo(got.dtype).eps
    np.testing.assert_allclose(got, want, rtol=8 * eps, atol=8 * eps, equal_nan=True,
                               err_msg=f"{op} on {dt}")
    assert (np.isinf(got) == np.isinf(want)).all(), (op, dt)


def check(steps, key, layouts, seed, full_shape=None):
    rng = np.random.default_rng(seed)
    prog = PROGRAMS[key]
    args = [_layout(rng, _values(rng, dt, shp, role % 4), kind)
            for role, (dt, (shp, kind)) in enumerate(zip(prog.in_dtypes, layouts))]
    want = prog.evaluate([np.ascontiguousarray(a) for a in args])
    got = steps[key](args)
    for st_, g, w in zip(prog.steps, got, want):
        _compare(g, w, st_.op, key)


@given(cases([k for k in FAST if k != "mixed"]))
def test_every_row_any_layout(steps, case):
    check(steps, *case)


@pytest.mark.slow
@given(cases(SLOW))
def test_every_row_other_dtypes_any_layout(slow_steps, case):
    check(slow_steps, *case)


@given(cases(["mixed"]))
def test_mixed_dtypes_compute_in_numpys_loop_dtype(steps, case):
    check(steps, *case)


@pytest.mark.parametrize("key", FAST)
def test_contiguous_fast_path(steps, key):
    """All operands C-contiguous with the output's shape: the flat restrict loop."""
    n = len(PROGRAMS[key].in_dtypes)
    check(steps, key, [((3, 5, 7), "contig")] * n, seed=7)


def test_the_table_is_covered():
    """Every row runs in C for some dtype (float16 and complex only fall back to numpy)."""
    covered = {st_.op for p in PROGRAMS.values() for st_ in p.steps}
    missing = set(S.TABLE) - covered - {"cast_float16", "cast_complex64", "cast_complex128"}
    assert not missing, missing


MATH = {"exp": math.exp, "exp2": lambda x: 2.0 ** x, "expm1": math.expm1, "log": math.log,
        "log2": math.log2, "log10": math.log10, "log1p": math.log1p, "erf": math.erf,
        "erfc": math.erfc, "sin": math.sin, "cos": math.cos, "tan": math.tan,
        "arcsin": math.asin, "arccos": math.acos, "arctan": math.atan, "sinh": math.sinh,
        "cosh": math.cosh, "tanh": math.tanh, "arctan2": math.atan2, "power": math.pow}


def _ulps(got, exact, dtype):
    """|got - exact| in units of the last place of `dtype` at `exact`; exact is a float64
    close to the true value (correctly rounded for float32)."""
    ok = np.isfinite(exact) & np.isfinite(got)
    e = exact[ok].astype(dtype)
    return np.abs(got[ok].astype("float64") - exact[ok]) / np.spacing(np.abs(e)).astype("float64")


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_transcendentals_are_accurate_to_a_few_ulps(steps, dt):
    """The contiguous loops call SIMD math (libmvec, at most 4 ULP by its documentation);
    measured against CPython's math module, which is within 1 ULP of the true value."""
    rng = np.random.default_rng(3)
    prog = PROGRAMS[dt]
    n = 4096
    a = rng.uniform(-3, 3, n).astype(dt)
    b = rng.uniform(-3, 3, n).astype(dt)
    e = rng.uniform(0, 3, n).astype(dt)
    args = [a, b, e, np.where(b == 0, 1, b)]
    got = steps[dt]([x.reshape(1, 1, n) for x in args])
    for st_, g in zip(prog.steps, got):
        fn = MATH.get(st_.op)
        if fn is None:
            continue
        xs = [args[i].astype("float64") for _, i in st_.args]

        def exact(*v, fn=fn):
            try:
                return fn(*v)
            except (ValueError, OverflowError):
                return math.nan

        ref = np.array([exact(*v) for v in zip(*xs)])
        assert _ulps(g.ravel(), ref, dt).max(initial=0) <= 4, st_.op


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_tanh_from_expm1_over_its_whole_range(steps, dt):
    """tanh is computed from expm1 (cgen's `ts_tanh`): a few ULP from tiny (subnormal)
    arguments to where it saturates, and numpy's values at 0, -0, inf and nan."""
    rng = np.random.default_rng(4)
    tiny = np.finfo(dt).smallest_subnormal
    a = np.concatenate([rng.uniform(-30, 30, 3000), rng.uniform(-1e-3, 1e-3, 500),
                        np.sign(rng.normal(size=500)) * 10.0 ** rng.uniform(-300, 1, 500),
                        [tiny, -tiny, 8.9, 9.01, 19.06, 20.0]]).astype(dt)
    a = a[np.isfinite(a)]
    (i,) = [k for k, st_ in enumerate(PROGRAMS[dt].steps) if st_.op == "tanh"]
    x = np.resize(a, (1, 1, a.size))
    got = steps[dt]([x, x, np.abs(x), x + (x == 0)])[i].ravel()
    ref = np.array([math.tanh(v) for v in a.astype("float64")])
    assert _ulps(got, ref, dt).max() <= 4
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dt).reshape(1, 1, 5)
    got = steps[dt]([special, special, special, special])[i].ravel()
    np.testing.assert_array_equal(got, np.tanh(special.ravel()))
    assert np.signbit(got[1]) and not np.signbit(got[0])


@pytest.mark.parametrize("key", FAST)
def test_every_row_on_0d_operands(compiledir, key, rng):
    """Nodes of 0-d operands get a kernel of the one element's code (no loops): every row
    of the table on random 0-d values, as numpy computes them."""
    (step,) = _compile([key], compiledir, nd=0).values()
    prog = PROGRAMS[key]
    for seed in range(8):
        r = np.random.default_rng(seed)
        args = [_values(r, dt, (), role % 4) for role, dt in enumerate(prog.in_dtypes)]
        for st_, g, w in zip(prog.steps, step(args), prog.evaluate(args)):
            assert g.shape == ()
            _compare(g, w, st_.op, key)


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_sigmoid_times_tanh_with_one_division(compiledir, dt):
    """sigmoid(a) * tanh(b), neither factor read elsewhere, is one helper with one division
    (`ts_sigmoid_tanh`): within a few ULP of the exact product, numpy's signed zeros, inf
    and nan, and the same as the unfused kernel where a factor is also an output."""
    prog = Program((dt, dt), (Step("sigmoid", (("in", 0),), dt), Step("tanh", (("in", 1),), dt),
                              Step("mul", (("step", 0), ("step", 1)), dt)), (("step", 2),))
    apart = Program(prog.in_dtypes, prog.steps, (("step", 2), ("step", 0)))
    assert "ts_sigmoid_tanh(" in cgen.render_elemwise("k", prog, frozenset(), 1)[0]
    assert "ts_sigmoid_tanh(" not in cgen.render_elemwise("k", apart, frozenset(), 1)[0]
    nodes = [_node(p, 1) for p in (prog, apart)]
    fused, unfused = linker.kernel_steps(nodes, compiledir)
    rng = np.random.default_rng(5)
    a = np.concatenate([rng.uniform(-40, 40, 3000), 10.0 ** rng.uniform(-300, 2, 500),
                        -(10.0 ** rng.uniform(-300, 2, 500))]).astype(dt)
    b = rng.permutation(a)
    (got,) = fused([a, b])
    exact = np.array([math.tanh(v) / (1 + math.exp(-u)) if u > -700 else 0.0
                      for u, v in zip(a.astype("float64"), b.astype("float64"))])
    assert _ulps(got, exact, dt).max() <= 4
    tiny = np.finfo(dt).smallest_subnormal  # subnormal products: a few of these apart
    np.testing.assert_allclose(got, unfused([a, b])[0], rtol=8 * np.finfo(dt).eps,
                               atol=4 * tiny)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, -2.0], dt)
    sa, sb = (np.repeat(special, special.size), np.tile(special, special.size))
    (got,) = fused([sa, sb])
    want = (1 / (1 + np.exp(-sa.astype("float64"))) * np.tanh(sb.astype("float64"))).astype(dt)
    np.testing.assert_allclose(got, want, rtol=8 * np.finfo(dt).eps, atol=0)  # nan == nan
    num = ~np.isnan(want)  # the sign of a nan means nothing
    np.testing.assert_array_equal(np.signbit(got[num]), np.signbit(want[num]))
