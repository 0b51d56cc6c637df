"""Property tests: broadcasting and dtype promotion of the elementwise functions equal numpy 2's
(NEP 50, Python numbers weak) for random broadcast-compatible shapes (sizes 0 and 1 included),
random dtype pairs and Python int/float/bool/complex operands; shapes that cannot broadcast
raise."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError

pytestmark = [pytest.mark.filterwarnings("error::RuntimeWarning"),
              pytest.mark.filterwarnings("error::numpy.exceptions.ComplexWarning")]

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint64", "float16", "float32",
          "float64", "complex64", "complex128"]
FUNCS = {"add": (ts.add, np.add), "mul": (ts.mul, np.multiply), "sub": (ts.sub, np.subtract),
         "true_divide": (ts.true_divide, np.true_divide), "maximum": (ts.maximum, np.maximum),
         "lt": (ts.lt, np.less)}

python_scalars = st.one_of(
    st.booleans(),
    st.integers(-300, 300),
    st.sampled_from([2 ** 31, -(2 ** 31) - 1, 2 ** 63, -(2 ** 63) - 1, 2 ** 64, 2 ** 70]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(max_magnitude=1e6, allow_nan=False),
)


@st.composite
def operands(draw, n, cond=False):
    """`n` operands of broadcast-compatible shapes: each a tensor (placeholder of static or
    unknown shape, with a value) or a Python number; at least one is a tensor."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=3,
                                                    min_side=0, max_side=3)).input_shapes
    kinds = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any))
    out = []
    for k, (shape, is_tensor) in enumerate(zip(shapes, kinds)):
        if cond and k == 0 and is_tensor:
            dtype = draw(st.sampled_from(["bool", "bool", "int8", "float64"]))
        elif is_tensor:
            dtype = draw(st.sampled_from(DTYPES))
        if is_tensor:
            value = draw(hnp.arrays(dtype, shape))
            static = draw(st.booleans())
            var = ts.tensor(dtype, shape if static else (None,) * len(shape))
            out.append((var, value))
        else:
            s = draw(st.booleans()) if cond and k == 0 else draw(python_scalars)
            out.append((s, s))
    return out


def _numpy(f, args):
    with np.errstate(all="ignore"):
        try:
            return np.asarray(f(*args)), None
        except (TypeError, OverflowError) as e:
            return None, e


def _check_against(ts_f, np_f, ops):
    syms = [o for o, _ in ops]
    vals = [v for _, v in ops]
    want, err = _numpy(np_f, vals)
    if err is not None:
        with pytest.raises(OverflowError if isinstance(err, OverflowError) else TypeError):
            ts_f(*syms)
        return None
    out = ts_f(*syms)
    # a known static size is the real one; with every input's shape known, all of them are
    tensors = [o for o in syms if isinstance(o, ts.Tensor)]
    assert len(out.type.shape) == want.ndim
    assert all(d is None or d == r for d, r in zip(out.type.shape, want.shape)), out.type
    if all(None not in o.type.shape for o in tensors):
        assert out.type.shape == want.shape
    assert out.dtype == want.dtype.name, (out.dtype, want.dtype)
    got = ts.function(tensors, out)(*[v for o, v in ops if isinstance(o, ts.Tensor)])
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    return got


@pytest.mark.parametrize("name", sorted(FUNCS))
@given(ops=operands(2))
def test_binary_matches_numpy(name, ops):
    ts_f, np_f = FUNCS[name]
    _check_against(ts_f, np_f, ops)


@given(ops=operands(2))
def test_operators_match_numpy(ops):
    """The Tensor operators dispatch to the same functions, with reflected forms."""
    assume(isinstance(ops[0][0], ts.Tensor))
    for op in (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a < b):
        _check_against(op, op, ops)
        _check_against(lambda a, b: op(b, a), lambda a, b: op(b, a), ops)


def _where_overflows(ops):
    """tracesym refuses a Python int that does not fit the integer dtype the other branch
    gives it (numpy's where silently wraps it: np.where(c, int8, 1000) holds -24)."""
    (x, _), (y, _) = ops[1], ops[2]
    for s, other in ((x, y), (y, x)):
        if isinstance(s, int) and not isinstance(s, bool):
            odt = (np.dtype(other.dtype) if isinstance(other, ts.Tensor)
                   else np.asarray(other).dtype if not isinstance(other, int) or isinstance(other, bool)
                   else np.dtype("int64"))
            if odt.kind in "fc":
                continue
            dt = np.dtype("int64") if odt.kind == "b" else odt
            if not np.iinfo(dt).min <= s <= np.iinfo(dt).max:
                return True
    return False


@given(ops=operands(3, cond=True))
def test_where_matches_numpy(ops):
    assume(any(isinstance(o, ts.Tensor) for o, _ in ops[1:]) or isinstance(ops[0][0], ts.Tensor))
    if _where_overflows(ops):
        with pytest.raises(OverflowError):
            ts.where(*[o for o, _ in ops])
        return
    _check_against(ts.where, np.where, ops)


@st.composite
def mismatched_shapes(draw):
    shape = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    k = draw(st.integers(0, len(shape) - 1))
    a, b = draw(st.sampled_from([(2, 3), (3, 4), (0, 2), (4, 2)]))
    s1, s2 = list(shape), list(shape)
    s1[k], s2[k] = a, b
    drop = draw(st.integers(0, k))  # the second may have fewer leading dims
    return tuple(s1), tuple(s2[drop:])


@pytest.mark.parametrize("name", sorted(FUNCS))
@given(shapes=mismatched_shapes())
def test_mismatched_shapes_raise(name, shapes):
    ts_f, _ = FUNCS[name]
    s1, s2 = shapes
    x, y = ts.tensor("float64", s1), ts.tensor("float64", s2)
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        ts_f(x, y)
    with pytest.raises(ShapeError):
        ts.where(True, x, y)
    xd, yd = ts.tensor("float64", (None,) * len(s1)), ts.tensor("float64", (None,) * len(s2))
    f = ts.function([xd, yd], ts_f(xd, yd))
    with pytest.raises(OpRuntimeError, match="broadcast"):
        f(np.zeros(s1), np.zeros(s2))
