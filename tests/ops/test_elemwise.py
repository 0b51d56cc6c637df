"""The elementwise table (`tracesym.ops.scalar.TABLE`) and `Elemwise` against numpy: every row
for every dtype it takes, several shapes (scalar, vector, matrix, zero-size, broadcasting,
unknown sizes that are 1 at run time), exact result dtypes (NEP 50, Python scalars weak),
static shapes, errors, `where` / `clip` / `cast`, the operators of `Tensor`, and gradients
(`verify_grad` on every differentiable row, the rules at kinks and ties)."""

import math
import warnings

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops import scalar as S
from tracesym.ops.elemwise import Elemwise, elemwise_op
from tracesym.ops.shape import SumToShape
from tracesym.trace.graph import ancestors

# numpy's warnings (overflow, divide by zero, invalid value, ComplexWarning) must not escape
pytestmark = [pytest.mark.filterwarnings("error::RuntimeWarning"),
              pytest.mark.filterwarnings("error::numpy.exceptions.ComplexWarning")]

DTYPES = ["bool", "int8", "int32", "int64", "uint8", "float16", "float32", "float64", "complex64",
          "complex128"]


def run(inputs, out, *values):
    return ts.function(inputs, out, on_unused_input="ignore")(*values)


def _vec_erf(fn):
    def ref(x):
        x = np.asarray(x)
        if x.dtype.kind == "c":
            raise TypeError("no complex erf")
        dt = np.exp(np.zeros(0, x.dtype)).dtype
        return np.array([fn(float(v)) for v in x.ravel()], dtype="float64").reshape(x.shape).astype(dt)

    return ref


def _no_complex(f):
    def ref(x):
        x = np.asarray(x)
        if x.dtype.kind == "c":
            raise TypeError("not defined for complex")
        dt = np.exp(np.zeros(0, x.dtype)).dtype
        return f(x.astype("float64")).astype(dt)

    return ref


#: an independent numpy reference for every row (a new row must add one here)
REF = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "true_divide": np.divide,
    "floor_divide": np.floor_divide, "mod": np.remainder, "power": np.power, "neg": np.negative,
    "abs": np.absolute, "sign": np.sign, "reciprocal": np.reciprocal, "sqr": np.square,
    "sqrt": np.sqrt, "maximum": np.maximum, "minimum": np.minimum, "clip": np.clip,
    "where": np.where, "exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "log": np.log,
    "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
    "sigmoid": _no_complex(lambda x: 1 / (1 + np.exp(-x))),
    "softplus": _no_complex(lambda x: np.logaddexp(0, x)),
    "erf": _vec_erf(math.erf), "erfc": _vec_erf(math.erfc), "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan,
    "arctan2": np.arctan2, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "floor": np.floor,
    "ceil": np.ceil, "round": np.rint, "trunc": np.trunc, "lt": np.less, "le": np.less_equal,
    "gt": np.greater, "ge": np.greater_equal, "eq": np.equal, "neq": np.not_equal,
    "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite, "and_": np.bitwise_and,
    "or_": np.bitwise_or, "xor": np.bitwise_xor, "invert": np.invert,
}
#: rows computed by a formula of their own rather than numpy's function: compared with a tolerance
APPROX = {"sigmoid", "softplus", "erf", "erfc"}
#: float rows the C kernels compute with glibc's libm / libmvec (SIMD), where numpy has its own
#: loops (SVML on AVX-512 machines): both are a few ULP from the true value and may round
#: differently.  The other rows are exact or correctly rounded everywhere: compared bit for bit.
LIBM = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "arcsin",
        "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "power"}
#: how far apart (in ULP) a C result of a `LIBM` row may be from numpy's: libmvec is within 4 ULP
#: of the true value (https://sourceware.org/glibc/wiki/libmvec), and numpy's own accuracy test
#: allows its loops up to 4 ULP (numpy/_core/tests/data/umath-validation-set-*.csv)
LIBM_ULP = 8
ROWS = [r for r in S.TABLE.values() if not r.name.startswith("cast_")]
CAST_ROWS = [r for r in S.TABLE.values() if r.name.startswith("cast_")]


def reference(row, *args):
    """numpy's result for `row`, or the exception numpy raises for these dtypes."""
    if row.name.startswith("cast_"):
        dt = row.name[len("cast_"):]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            return np.asarray(args[0]).astype(dt)
    if row.name == "round":
        a = np.asarray(args[0])
        if a.dtype.kind in "biu":  # np.rint makes floats of integers; np.round keeps them
            return np.round(a)
    return REF[row.name](*args)


def data(shape, dtype, rng, row=None):
    """Random values of `dtype` with numpy's awkward cases mixed in: nan, +-inf, -0.0, zero,
    the integer extremes (so wrap-around and x // 0 are exercised)."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "b":
        flat = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        low, high = (0, 9) if dt.kind == "u" else (-6, 7)
        if row is not None and row.name == "power":
            low, high = 0, 4  # numpy raises for negative integer powers
        flat = rng.integers(low, high, n).astype(dt)
        if n >= 6 and (row is None or row.name != "power"):
            info = np.iinfo(dt)
            flat[:3] = [info.min, info.max, 0]
    else:
        flat = (rng.standard_normal(n) * 3).astype(dt)
        if dt.kind == "c":
            flat = flat + 1j * (rng.standard_normal(n) * 3).astype(dt)
        special = [np.nan, np.inf, -np.inf, -0.0, 0.0, 0.5]
        k = min(n // 2, len(special))
        flat[:k] = special[:k]
        rng.shuffle(flat)
    return flat.reshape(shape)


def check(got, expected, approx=False, row=None):
    """Same dtype and shape; equal values (nan where numpy has nan), within a tolerance for
    rows that are not numpy's own function, within `LIBM_ULP` for a `LIBM` row the C linker
    ran."""
    expected = np.asarray(expected)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if expected.dtype.kind in "fc" and approx:
        rtol = {2: 2e-3, 4: 1e-6, 8: 1e-12}.get(expected.dtype.itemsize, 1e-6)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol, equal_nan=True)
    elif expected.dtype.kind == "f" and row in LIBM and ts.config.linker == "c":
        np.testing.assert_array_max_ulp(got, expected, maxulp=LIBM_ULP)
    else:
        np.testing.assert_array_equal(got, expected)


SHAPES = {
    1: [[()], [(5,)], [(3, 4)], [(0,)], [(2, 0, 3)]],
    2: [[(), ()], [(6,), (6,)], [(3, 4), (3, 4)], [(0,), (0,)], [(3, 1), (4,)], [(3, 1), (1, 4)],
        [(2, 3), ()], [(0, 3), (1, 3)]],
    3: [[(4,), (4,), (4,)], [(), (), ()], [(3, 1), (4,), ()], [(0, 2), (2,), (1, 2)],
        [(2, 3), (2, 1), (1, 3)]],
}


def _numpy_outcome(row, args):
    with np.errstate(all="ignore"):
        try:
            return reference(row, *args), None
        except (TypeError, ValueError) as e:
            return None, e


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_row_against_numpy(row, dtype, rng):
    """Every row, one dtype for all its inputs, every shape case; static and unknown shapes."""
    for shapes in SHAPES[row.nin]:
        args = [data(s, dtype, rng, row) for s in shapes]
        expected, err = _numpy_outcome(row, args)
        for static in (True, False):
            xs = [ts.tensor(dtype, s if static else (None,) * len(s)) for s in shapes]
            if err is not None:
                with pytest.raises(TypeError, match=row.name):
                    elemwise_op(row.name)(*xs)
                break
            out = elemwise_op(row.name)(*xs)
            want = np.broadcast_shapes(*shapes)
            assert out.type.shape == (want if static else (None,) * len(want))
            assert out.dtype == expected.dtype.name
            check(run(xs, out, *args), expected, approx=row.name in APPROX, row=row.name)


def test_every_row_has_a_reference():
    assert {r.name for r in ROWS} == set(REF)


@pytest.mark.parametrize("dtypes", [("int8", "float32"), ("uint8", "int8"), ("bool", "int32"),
                                    ("int32", "float32"), ("float32", "float64"),
                                    ("int64", "uint8"), ("float16", "int16"), ("uint64", "int64"),
                                    ("float32", "complex64"), ("bool", "float16")])
@pytest.mark.parametrize("row", [r for r in ROWS if r.nin == 2], ids=lambda r: r.name)
def test_binary_rows_mixed_dtypes(row, dtypes, rng):
    shapes = [(3, 1), (4,)]
    args = [data(s, d, rng, row) for s, d in zip(shapes, dtypes)]
    expected, err = _numpy_outcome(row, args)
    xs = [ts.tensor(d, (None,) * len(s)) for s, d in zip(shapes, dtypes)]
    if err is not None:
        with pytest.raises(TypeError):
            elemwise_op(row.name)(*xs)
        return
    out = elemwise_op(row.name)(*xs)
    check(run(xs, out, *args), expected, approx=row.name in APPROX, row=row.name)


SCALARS = [3, 2.5, True, -2, 1000, -1, 2 ** 40, 1e300, 1j]
BINARY_FUNCS = {r.name: getattr(ts, r.name) for r in ROWS if r.nin == 2}


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int32", "float16", "float32",
                                   "complex64"])
@pytest.mark.parametrize("name", sorted(BINARY_FUNCS))
def test_python_scalars_are_weak(name, dtype, rng):
    """`tensor op scalar` and `scalar op tensor` have numpy 2's dtype and values, or raise
    what numpy raises (OverflowError for `int8 + 1000`, TypeError for a missing loop)."""
    row = S.TABLE[name]
    a = data((4,), dtype, rng, row)
    x = ts.tensor(dtype, (None,))
    for s in SCALARS:
        if name == "power" and dtype[0] in "biu" and isinstance(s, int) and s < 0:
            continue  # numpy raises for the values, not the dtypes
        for swap in (False, True):
            np_args, ts_args = ((s, a), (s, x)) if swap else ((a, s), (x, s))
            with np.errstate(all="ignore"):
                try:
                    expected, err = REF[name](*np_args), None
                except (TypeError, OverflowError) as e:
                    expected, err = None, e
            if err is not None:
                with pytest.raises(type(err) if isinstance(err, OverflowError) else TypeError):
                    BINARY_FUNCS[name](*ts_args)
                continue
            out = BINARY_FUNCS[name](*ts_args)
            assert out.dtype == np.asarray(expected).dtype.name, (s, swap)
            check(run([x], out, a), expected, row=name)


def test_weak_scalar_examples():
    f32, i8, i32, b = ts.fvector(), ts.bvector(), ts.ivector(), ts.tensor("bool", (None,))
    assert (f32 * 2.0).dtype == "float32"
    assert (f32 * 2).dtype == "float32"
    assert (2.0 * f32).dtype == "float32"
    assert (i32 / 2).dtype == "float64"
    assert (i8 + 1).dtype == "int8"
    assert (i8 + 1.5).dtype == "float64"
    assert (b + b).dtype == "bool"
    assert (b + 1).dtype == "int64"
    assert (b + True).dtype == "bool"
    assert (f32 * np.float64(2.0)).dtype == "float64"  # numpy scalars are strong
    assert (f32 + np.ones(3)).dtype == "float64"
    with pytest.raises(OverflowError, match="1000.*int8"):
        i8 + 1000
    assert (i8 < 1000).dtype == "bool"  # comparisons take any Python int, as numpy's do
    got = run([i8], [i8 < 1000, i8 >= -1000, ts.eq(i8, 300), ts.neq(i8, 2 ** 70)],
              np.array([-128, 0, 127], np.int8))
    for g, want in zip(got, [True, True, False, True]):
        check(g, np.full(3, want))
    u64 = ts.tensor("uint64", (None,))
    check(run([u64], u64 > -1, np.array([0, 2 ** 64 - 1], np.uint64)), np.array([True, True]))
    check(run([u64], ts.lt(u64, 2 ** 64), np.array([0, 2 ** 64 - 1], np.uint64)),
          np.array([True, True]))


def test_bool_arithmetic_follows_numpy():
    b = ts.tensor("bool", (None,))
    v = np.array([True, False, True])
    check(run([b], b + b, v), v + v)
    check(run([b], b * b, v), v * v)
    check(run([b], b ** b, v), v ** v)
    check(run([b], ts.sqr(b), v), np.square(v))
    for f in (lambda: b - b, lambda: -b, lambda: ts.sign(b)):
        with pytest.raises(TypeError, match="bool"):
            f()


def test_integer_division_and_modulo():
    """floor division and modulo round towards -inf; by zero they give 0 (numpy's result)
    without a warning; INT_MIN // -1 wraps."""
    x, y = ts.bvector("x"), ts.bvector("y")
    a = np.array([-7, 7, -7, 7, 5, -128, 0], np.int8)
    b = np.array([2, -2, -2, 0, -3, -1, 0], np.int8)
    fd, m = run([x, y], [x // y, x % y], a, b)
    with np.errstate(all="ignore"):
        check(fd, np.floor_divide(a, b))
        check(m, np.remainder(a, b))
    np.testing.assert_array_equal(fd, [-4, -4, 3, 0, -2, -128, 0])
    np.testing.assert_array_equal(m, [1, -1, -1, 0, -1, 0, 0])


def test_float_division_nan_inf():
    x, y = ts.dvector("x"), ts.dvector("y")
    a = np.array([1.0, -1.0, 0.0, np.nan, np.inf, 1.0, -7.0])
    b = np.array([0.0, 0.0, 0.0, 1.0, 2.0, np.inf, 2.0])
    got = run([x, y], [x / y, x // y, x % y, x ** y, ts.maximum(x, y), ts.minimum(x, y)], a, b)
    with np.errstate(all="ignore"):
        want = [a / b, a // b, a % b, a ** b, np.maximum(a, b), np.minimum(a, b)]
    for g, w in zip(got, want):
        check(g, w)


def test_nan_propagates_through_maximum_and_clip():
    x = ts.dvector("x")
    a = np.array([np.nan, 1.0, -np.inf, np.inf])
    got = run([x], [ts.maximum(x, 0.0), ts.minimum(x, 0.0), ts.clip(x, -1, 1), ts.sigmoid(x),
                    ts.softplus(x), ts.erf(x)], a)
    with np.errstate(all="ignore"):
        want = [np.maximum(a, 0.0), np.minimum(a, 0.0), np.clip(a, -1, 1),
                np.array([np.nan, 1 / (1 + np.exp(-1.0)), 0.0, 1.0]),
                np.array([np.nan, np.log1p(np.e), 0.0, np.inf]), np.array([np.nan, math.erf(1.0), -1, 1])]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, equal_nan=True)


def test_sigmoid_softplus_tails_are_finite():
    x = ts.dvector("x")
    a = np.array([-800.0, -40.0, 40.0, 800.0])
    s, sp = run([x], [ts.sigmoid(x), ts.softplus(x)], a)
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.exp(40.0)), 1 / (1 + np.exp(-40.0)), 1.0],
                               rtol=1e-12)
    np.testing.assert_allclose(sp, [0.0, np.log1p(np.exp(-40.0)), 40.0, 800.0], rtol=1e-12)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "erf", "erfc", "floor", "arctan2"])
def test_complex_rejected_where_numpy_has_no_complex_loop(name):
    z = ts.zvector("z")
    args = [z] * S.TABLE[name].nin
    with pytest.raises(TypeError, match=f"{name}.*complex"):
        elemwise_op(name)(*args)


def test_kind_matches_numpy():
    """`kind` says what numpy does with integer inputs: floats, booleans, or the same dtype."""
    for row in ROWS:
        out = row.out_dtype(["int8"] * row.nin)
        want = {"float": np.dtype(out).kind == "f", "bool": out == "bool", "same": out == "int8"}
        assert want[row.kind], (row.name, row.kind, out)


def test_c_expressions_use_every_input():
    for row in S.TABLE.values():
        names = [f"in{k}" for k in range(row.nin)]
        text = row.c.format(*names)
        assert all(n in text for n in names), row.name
        assert text.count("(") == text.count(")"), row.name
    assert "(" + S.TABLE["cast_bool"].c.format("x") + ")" == "((x != 0))"


def test_rows_are_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        S.register(S.ScalarOp("add", 2, np.add, "({0} + {1})"))
    assert elemwise_op("add") is elemwise_op("add")
    assert Elemwise(S.TABLE["add"]) == elemwise_op("add")
    assert str(elemwise_op("exp")) == "Elemwise{exp}"


# ---------------------------------------------------------------------------------------------
# static shapes and shape errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a,b,want", [
    ((3, 1), (1, 4), (3, 4)), ((3, 1), (4,), (3, 4)), ((), (2, 3), (2, 3)), ((0, 1), (5,), (0, 5)),
    ((None, 1), (4,), (None, 4)), ((None,), (1,), (None,)), ((None,), (3,), (3,)),
    ((1,), (1,), (1,)), ((2, None, 1), (None, 7), (2, None, 7))])
def test_static_broadcast_shape(a, b, want):
    x, y = ts.tensor("float32", a), ts.tensor("float32", b)
    assert (x + y).type.shape == want
    assert ts.where(x > 0, x, y).type.shape == want


def test_runtime_size_one_dims_broadcast():
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    a, b = np.arange(3.0).reshape(3, 1), np.arange(4.0).reshape(1, 4)
    out = x * y + 1.0
    assert out.type.shape == (None, None)
    check(run([x, y], out, a, b), a * b + 1.0)
    check(run([x, y], out, b.T, b), b.T * b + 1.0)


def test_known_mismatch_raises_at_trace_time():
    x, y = ts.tensor("float32", (3,)), ts.tensor("float32", (4,))
    with pytest.raises(ShapeError, match=r"\(3,\) and \(4,\).*add"):
        x + y
    m = ts.tensor("float32", (2, 3))
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(4,\)"):
        ts.where(m > 0, m, y)
    with pytest.raises(ShapeError):
        ts.clip(m, y, 1.0)


def test_runtime_mismatch_raises_op_error():
    x, y = ts.dvector("x"), ts.dvector("y")
    f = ts.function([x, y], x + y)
    with pytest.raises(OpRuntimeError, match=r"Elemwise\{add\}.*float64\[3\], float64\[4\]"):
        f(np.ones(3), np.ones(4))


def test_wrong_arity():
    with pytest.raises(TypeError, match="takes 2 inputs"):
        elemwise_op("add")(ts.dvector())


def test_infer_shape_matches_runtime():
    from tracesym.ops.shape import shape_i

    x, y = ts.dmatrix("x"), ts.dvector("y")
    out = x * y
    node = out.owner
    in_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs]
    (shp,) = node.op.infer_shape(node, in_shapes)
    for a, b in [((3, 1), (4,)), ((3, 4), (1,)), ((1, 1), (5,))]:
        got = run([x, y], list(shp), np.ones(a), np.ones(b))
        assert tuple(int(g) for g in got) == np.broadcast_shapes(a, b)


# ---------------------------------------------------------------------------------------------
# where, clip, cast
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cdt", ["bool", "int32", "float64"])
@pytest.mark.parametrize("xdt,ydt", [("float32", "float32"), ("int8", "float32"),
                                     ("int8", "uint8"), ("bool", "int64"), ("float64", "complex64")])
def test_where(cdt, xdt, ydt, rng):
    c, x, y = ts.tensor(cdt, (None, 1)), ts.tensor(xdt, (None,)), ts.tensor(ydt, ())
    cv, xv, yv = data((3, 1), cdt, rng), data((4,), xdt, rng), data((), ydt, rng)
    out = ts.where(c, x, y)
    check(run([c, x, y], out, cv, xv, yv), np.where(cv, xv, yv))


def test_where_python_scalars():
    c, x = ts.tensor("bool", (None,)), ts.bvector("x")
    cv, xv = np.array([True, False]), np.array([5, -5], np.int8)
    for args in [(x, 1), (1, x), (x, 1.5), (2, 1.5), (1, 2), (True, x), (x, -128)]:
        out = ts.where(c, *args)
        np_args = [xv if a is x else a for a in args]
        check(run([c, x], out, cv, xv), np.where(cv, *np_args))
    # numpy wraps the value (np.where(c, int8, 1000) holds -24); tracesym refuses it
    with pytest.raises(OverflowError, match="1000"):
        ts.where(c, x, 1000)


@pytest.mark.parametrize("xdt", ["float32", "float64", "int8", "uint8", "int64", "bool"])
@pytest.mark.parametrize("lo,hi", [(0, 2), (None, 2), (-1, None), (None, None), (0.5, 2.5),
                                   (-1000, 1000), (3, 1), (None, 1000.0), (True, None)])
def test_clip(xdt, lo, hi, rng):
    x = ts.tensor(xdt, (None,))
    xv = data((7,), xdt, rng)
    out = ts.clip(x, lo, hi)
    with np.errstate(all="ignore"):
        want = np.clip(xv, lo, hi) if (lo, hi) != (None, None) else xv  # numpy: no bool loop
    check(run([x], out, xv), want)
    assert x.clip(lo, hi).dtype == want.dtype.name


def test_clip_tensor_bounds_broadcast(rng):
    x, lo, hi = ts.dmatrix("x"), ts.dvector("lo"), ts.tensor("float32", (None, 1))
    xv, lov, hiv = rng.standard_normal((3, 4)), rng.standard_normal(4) - 1, np.ones((3, 1), "float32")
    check(run([x, lo, hi], ts.clip(x, lo, hi), xv, lov, hiv), np.clip(xv, lov, hiv))
    check(run([x, lo], ts.clip(x, lo, None), xv, lov), np.clip(xv, lov, None))
    check(run([x, hi], ts.clip(x, None, hi), xv, hiv), np.clip(xv, None, hiv))


def test_clip_without_bounds_is_identity():
    x = ts.dvector("x")
    assert ts.clip(x, None, None) is x


CAST_FROM = ["bool", "int8", "int32", "int64", "uint8", "float16", "float32", "float64",
             "complex64", "complex128"]


@pytest.mark.parametrize("src", CAST_FROM)
def test_cast_every_pair(src, rng):
    """Every cast row from every source dtype, equal to numpy's astype (complex to real keeps
    the real part without numpy's ComplexWarning; nan to int is numpy's value, silently)."""
    xv = data((3, 4), src, rng)
    if np.dtype(src).kind in "fc":
        xv = np.where(np.isfinite(xv), xv, 0).astype(src)  # nan/inf to int is platform-defined
        xv.flat[:3] = [1.5, -2.5, 0.0]
    x = ts.tensor(src, (None, None))
    for row in CAST_ROWS:
        dst = row.name[len("cast_"):]
        out = ts.cast(x, dst)
        if dst == src:
            assert out is x
            continue
        assert out.type.shape == (None, None) and out.dtype == dst
        check(run([x], [out, x.astype(dst), ts.astype(x, np.dtype(dst))], xv)[0],
              reference(row, xv))


def test_cast_specials_without_warnings():
    x, z = ts.dvector("x"), ts.zvector("z")
    run([x], ts.cast(x, "int32"), np.array([np.nan, np.inf, 1e30]))  # no RuntimeWarning
    check(run([z], ts.cast(z, "float32"), np.array([1 + 2j, -3j])), np.array([1.0, -0.0], "float32"))
    check(run([z], ts.cast(z, "bool"), np.array([1j, 0j])), np.array([True, False]))
    check(run([x], ts.cast(x, "bool"), np.array([0.5, 0.0, -0.0, np.nan])),
          np.array([True, False, False, True]))


def test_cast_errors():
    x = ts.dvector("x")
    with pytest.raises(TypeError, match="not a dtype"):
        ts.cast(x, "no-such-dtype")
    with pytest.raises(TypeError, match="cannot hold"):
        ts.cast(x, "datetime64[s]")


def test_logical_functions(rng):
    x, y = ts.dvector("x"), ts.ivector("y")
    xv, yv = np.array([0.0, 2.0, np.nan, -0.0]), np.array([1, 0, 3, 0], np.int32)
    got = run([x, y], [ts.logical_and(x, y), ts.logical_or(x, y), ts.logical_xor(x, y),
                       ts.logical_not(x)], xv, yv)
    want = [np.logical_and(xv, yv), np.logical_or(xv, yv), np.logical_xor(xv, yv),
            np.logical_not(xv)]
    for g, w in zip(got, want):
        check(g, w)


# ---------------------------------------------------------------------------------------------
# operators on Tensor
# ---------------------------------------------------------------------------------------------

# `**` is compared with np.power: ndarray's own `**` has fast paths (`bool_array ** 2` is
# np.square, int8) that np.power (int64) and tracesym do not copy.
BINOPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "//": lambda a, b: a // b, "%": lambda a, b: a % b,
    "**": lambda a, b: a ** b if isinstance(a, ts.Tensor) or isinstance(b, ts.Tensor) else np.power(a, b), "&": lambda a, b: a & b, "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


@pytest.mark.parametrize("dtype", ["int32", "float32", "bool", "uint8"])
@pytest.mark.parametrize("op", sorted(BINOPS))
def test_operators(op, dtype, rng):
    f = BINOPS[op]
    x, y = ts.tensor(dtype, (None, 1)), ts.tensor(dtype, (None,))
    xv, yv = data((3, 1), dtype, rng), data((4,), dtype, rng)
    if op == "**" and dtype[0] in "iu":
        with np.errstate(all="ignore"):
            yv = np.abs(yv) % 4
    arr = data((4,), dtype, rng)
    if op == "**":
        with np.errstate(all="ignore"):
            arr = np.abs(arr) % 3
    cases = [(lambda: f(x, y), lambda: f(xv, yv), [x, y]),        # tensor op tensor
             (lambda: f(x, 2), lambda: f(xv, 2), [x]),            # Python scalar on the right
             (lambda: f(2, y), lambda: f(2, yv), [y]),            # reflected, scalar on the left
             (lambda: f(arr, x), lambda: f(arr, xv), [x]),        # ndarray on the left
             (lambda: f(x, arr), lambda: f(xv, arr), [x])]
    for build, ref, ins in cases:
        with np.errstate(all="ignore"):
            try:
                want, err = ref(), None
            except (TypeError, OverflowError) as e:
                want, err = None, e
        if err is not None:
            with pytest.raises(type(err) if isinstance(err, OverflowError) else TypeError):
                build()
            continue
        out = build()
        assert isinstance(out, ts.Tensor)
        vals = {id(x): xv, id(y): yv}
        check(run(ins, out, *[vals[id(v)] for v in ins]), want,
              row="power" if op == "**" else None)


@pytest.mark.parametrize("dtype", ["int8", "float64", "bool", "uint8"])
def test_unary_operators(dtype, rng):
    x = ts.tensor(dtype, (None,))
    xv = data((6,), dtype, rng)
    check(run([x], abs(x), xv), np.abs(xv))
    if dtype[0] != "f":
        check(run([x], ~x, xv), np.invert(xv))
    assert +x is x
    if dtype == "bool":
        with pytest.raises(TypeError):
            -x
    else:
        check(run([x], -x, xv), -xv)


def test_float_invert_raises():
    with pytest.raises(TypeError, match="invert"):
        ~ts.dvector()


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

def _u(*shape, low=-1.0, high=1.0, seed=0):
    return np.random.default_rng(seed + len(shape)).uniform(low, high, shape)


def _away(*shape, seed=0):
    """Values with |x| in [0.3, 1.2]: away from 0, where abs, sign and friends have kinks."""
    r = np.random.default_rng(seed)
    return r.uniform(0.3, 1.2, shape) * r.choice([-1.0, 1.0], shape)


GRAD_CASES = {
    Elemwise: [
        (lambda x, y: x * y + ts.exp(x), [_u(3, 1), _u(4)]),                # broadcast, summed back
        (lambda x, y: x / y - y ** 2.0, [_u(2, 3), _u(1, 3, low=0.5, high=2)]),  # (1,3): size 1 at run time
        (lambda x: ts.tanh(x) * ts.sigmoid(2.0 * x), [_u(5)]),
        (lambda x, y: ts.where(x > 0, ts.log(y), x * x), [_away(3, 4), _u(3, 4, low=0.5, high=2)]),
        (lambda x, y: ts.maximum(x, y) + ts.minimum(x, 0.25 * y), [_away(2, 3, seed=1), _away(1, 3, seed=2)]),
        (lambda x, lo: ts.clip(x, lo, 0.9), [np.array([[-2.0, 0.2, 2.0]]), np.array([[-0.5], [0.5]])]),
        (lambda x, y: ts.arctan2(x, y) + ts.power(ts.abs(x) + 1.0, y), [_away(4), _away(1, seed=3)]),
        (lambda x: ts.cast(x, "float32") * 3.0, [_u(2, 2)]),
        (lambda x: x * 2.0 + ts.sqr(x), [np.array(0.7)]),
    ],
}


@pytest.mark.parametrize("i", range(len(GRAD_CASES[Elemwise])))
def test_grad_cases(i):
    fun, points = GRAD_CASES[Elemwise][i]
    out = fun(*[ts.tensor("float64", (None,) * p.ndim) for p in points])
    assert any(v.owner is not None and isinstance(v.owner.op, Elemwise) for v in ancestors([out]))
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


def _grad_points(row, rng):
    """Points where the row is smooth: inside its domain, away from kinks, jumps and ties."""
    n = 5
    pos = rng.uniform(0.5, 2.0, n)
    away = rng.uniform(0.3, 1.2, n) * rng.choice([-1.0, 1.0], n)
    special = {
        "log": [pos], "log2": [pos], "log10": [pos], "log1p": [pos], "sqrt": [pos],
        "reciprocal": [away], "true_divide": [away, away[::-1] + np.sign(away[::-1])],
        "arcsin": [rng.uniform(-0.9, 0.9, n)], "arccos": [rng.uniform(-0.9, 0.9, n)],
        "tan": [rng.uniform(-1.0, 1.0, n)], "power": [pos, rng.uniform(-1.5, 1.5, n)],
        "abs": [away], "sign": [away],
        "mod": [away * 0.5, rng.uniform(1.5, 2.0, n)],
        "floor_divide": [away * 0.5, rng.uniform(1.5, 2.0, n)],
        "maximum": [away, away + rng.choice([-0.5, 0.5], n)],
        "minimum": [away, away + rng.choice([-0.5, 0.5], n)],
        "clip": [np.array([-2.0, -0.3, 0.1, 0.6, 3.0]), np.full(n, -1.0) + rng.uniform(-0.2, 0.2, n),
                 np.full(n, 1.0) + rng.uniform(-0.2, 0.2, n)],
        "where": [away, rng.standard_normal(n), rng.standard_normal(n)],
        "arctan2": [away, away[::-1]],
        "floor": [np.arange(n) - 2 + 0.3], "ceil": [np.arange(n) - 2 + 0.3],
        "round": [np.arange(n) - 2 + 0.25], "trunc": [np.arange(n) - 2 + 0.3],
    }
    if row.name in special:
        return special[row.name]
    return [rng.uniform(-1.5, 1.5, n) for _ in range(row.nin)]


DIFF_ROWS = [r for r in ROWS if r.grad is not None]


@pytest.mark.parametrize("row", DIFF_ROWS, ids=lambda r: r.name)
def test_verify_grad_every_row(row, rng):
    op = elemwise_op(row.name)
    ts.verify_grad(lambda *xs: op(*xs), _grad_points(row, rng), rng=rng)


@pytest.mark.parametrize("dst", ["float16", "float32", "float64", "complex64", "complex128"])
def test_verify_grad_casts(dst, rng):
    x = rng.uniform(-1, 1, 4)
    if dst.startswith("complex"):  # d|z|/dx through the complex cast: sign(x)
        ts.verify_grad(lambda v: ts.abs(ts.cast(v, dst)), [x], rng=rng)
    else:
        ts.verify_grad(lambda v: ts.cast(v, dst) * 2.0, [x], rng=rng)


def test_differentiable_rows_are_the_float_ones():
    """Rows with a float result for float inputs have a gradient; comparisons, predicates and
    bitwise rows (boolean or integer results) have none."""
    for row in ROWS:
        try:
            out = row.out_dtype(["float64"] * row.nin)
        except TypeError:  # the bitwise rows have no float loop
            out = None
        assert (row.grad is not None) == (out == "float64"), row.name


@pytest.mark.parametrize("name", ["lt", "le", "gt", "ge", "eq", "neq", "isnan", "isinf",
                                  "isfinite", "floor", "ceil", "round", "trunc", "sign",
                                  "floor_divide"])
def test_piecewise_constant_rows_have_zero_gradient(name):
    x = ts.dvector("x")
    row = S.TABLE[name]
    out = elemwise_op(name)(*[x] * row.nin)
    g = ts.grad(ts.sum(ts.cast(out, "float64") * 3.0), x)
    assert g.dtype == "float64"
    check(run([x], g, np.array([-1.7, 0.3, 2.5])), np.zeros(3))


def test_grad_through_integer_input_is_none():
    x, n = ts.dvector("x"), ts.ivector("n")
    out = ts.sum(x * n + ts.power(x, n))
    gx, gn = ts.grad(out, [x, n])
    check(run([x, n], gx, np.array([2.0, 3.0]), np.array([2, 3], np.int32)),
          np.array([2 + 2 * 2.0, 3 + 3 * 9.0]))
    check(run([x, n], gn, np.array([2.0, 3.0]), np.array([2, 3], np.int32)), np.zeros(2, np.int32))


def test_power_gradient_at_zero_base():
    x, y = ts.dvector("x"), ts.dvector("y")
    gx, gy = ts.grad(ts.sum(x ** y), [x, y])
    xv, yv = np.array([0.0, 0.0, 0.0, 2.0]), np.array([2.0, 0.0, 1.0, 0.0])
    gxv, gyv = run([x, y], [gx, gy], xv, yv)
    np.testing.assert_array_equal(gxv, [0.0, 0.0, 1.0, 0.0])  # 0**0 is constant in x: no 0 * inf
    np.testing.assert_array_equal(gyv, [0.0, 0.0, 0.0, np.log(2.0)])  # 0**y: no 0 * log(0)


def test_maximum_minimum_split_ties():
    x, y = ts.dvector("x"), ts.dvector("y")
    xv, yv = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])
    for f, wx, wy in [(ts.maximum, [0.5, 1, 0], [0.5, 0, 1]), (ts.minimum, [0.5, 0, 1], [0.5, 1, 0])]:
        gx, gy = run([x, y], ts.grad(ts.sum(f(x, y)), [x, y]), xv, yv)
        check(gx, np.array(wx, "float64"))
        check(gy, np.array(wy, "float64"))
    # symmetric: the order of the arguments does not move the gradient
    g1 = run([x], ts.grad(ts.sum(ts.maximum(x, 1.0)), x), xv)
    g2 = run([x], ts.grad(ts.sum(ts.maximum(1.0, x)), x), xv)
    check(g1, g2)


def test_clip_gradient_at_boundaries():
    x, lo, hi = ts.dvector("x"), ts.dvector("lo"), ts.dvector("hi")
    xv = np.array([-1.0, -0.5, 0.0, 1.0, 2.0, 0.0])
    lov = np.array([-1.0, -1.0, -1.0, -1.0, -1.0, 1.0])
    hiv = np.array([1.0, 1.0, 1.0, 1.0, 1.0, -1.0])   # the last one has lo > hi: out is hi
    g = run([x, lo, hi], ts.grad(ts.sum(ts.clip(x, lo, hi)), [x, lo, hi]), xv, lov, hiv)
    check(g[0], np.array([1.0, 1, 1, 1, 0, 0]))   # boundaries included
    check(g[1], np.array([0.0, 0, 0, 0, 0, 0]))
    check(g[2], np.array([0.0, 0, 0, 0, 1, 1]))
    check(sum(g), np.ones(6))   # every element's gradient goes to exactly one input
    # an open side behaves as a bound at the dtype's extreme
    check(run([x], ts.grad(ts.sum(ts.clip(x, None, 0.0)), x), xv), np.array([1.0, 1, 1, 0, 0, 1]))
    check(run([x], ts.grad(ts.sum(ts.clip(x, 0.0, None)), x), xv), np.array([0.0, 0, 1, 1, 1, 1]))


def test_abs_gradient_at_zero():
    x = ts.dvector("x")
    check(run([x], ts.grad(ts.sum(abs(x)), x), np.array([-2.0, 0.0, 3.0])), np.array([-1.0, 0, 1]))


def test_mod_gradient():
    x, y = ts.dvector("x"), ts.dvector("y")
    gx, gy = run([x, y], ts.grad(ts.sum(x % y), [x, y]), np.array([7.5, -7.5]), np.array([2.0, 2.0]))
    check(gx, np.ones(2))
    check(gy, -np.floor(np.array([7.5, -7.5]) / 2.0))


def test_broadcast_gradient_summed_back():
    """x (3,1) and y (4,), and the same with dmatrix placeholders whose size-1 dims are only
    known when the function runs."""
    xv, yv = np.arange(3.0).reshape(3, 1), np.arange(4.0).reshape(1, 4) + 1
    for x, y in [(ts.tensor("float64", (3, 1)), ts.tensor("float64", (1, 4))),
                 (ts.dmatrix("x"), ts.dmatrix("y"))]:
        gx, gy = ts.grad(ts.sum(x * y), [x, y])
        assert gx.type.shape[1] in (1, None) and gy.type.shape[0] in (1, None)
        gxv, gyv = run([x, y], [gx, gy], xv, yv)
        check(gxv, np.full((3, 1), yv.sum()))
        check(gyv, np.full((1, 4), xv.sum()))


def test_no_sum_to_shape_when_nothing_broadcasts():
    x = ts.dmatrix("x")
    for cost in [ts.sum(ts.exp(x)), ts.sum(x * 2.0), ts.sum(x * ts.dscalar("s")),
                 ts.sum(x + ts.tensor("float64", (1, 1)))]:
        g = ts.grad(cost, x)
        assert not any(v.owner is not None and isinstance(v.owner.op, SumToShape)
                       for v in ancestors([g]))
    y = ts.dvector("y")
    g = ts.grad(ts.sum(x * y), y)
    assert any(v.owner is not None and isinstance(v.owner.op, SumToShape) for v in ancestors([g]))


def test_gradient_dtype_follows_input():
    x, y = ts.fvector("x"), ts.dvector("y")
    gx, gy = ts.grad(ts.sum(x * y), [x, y])
    assert gx.dtype == "float32" and gy.dtype == "float64"
    gxv, gyv = run([x, y], [gx, gy], np.ones(2, "float32"), np.array([2.0, 3.0]))
    check(gxv, np.array([2.0, 3.0], "float32"))


def test_expm1_gradient_keeps_relative_precision_far_below_zero():
    x = ts.dscalar("x")
    g = ts.function([x], ts.grad(ts.expm1(x), x))
    for v in (-30.0, -700.0):
        np.testing.assert_allclose(g(v), np.exp(v), rtol=1e-15)
