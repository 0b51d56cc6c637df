"""TensorType: identity, static shapes, the conversion rules for values, broadcasting."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracesym as ts
from tracesym.errors import InputError, ShapeError
from tracesym.trace.types import TensorType, broadcast_shapes


def test_types_compare_by_value_and_are_immutable():
    a = TensorType("float32", (None, 10))
    assert a == TensorType(np.float32, [None, 10]) and hash(a) == hash(TensorType("float32", (None, 10)))
    assert a != TensorType("float32", (None, 11)) and a != TensorType("float64", (None, 10))
    assert a.ndim == 2 and a.broadcastable == (False, False)
    assert TensorType("int8", (1, None)).broadcastable == (True, False)
    assert a.short() == "float32[?,10]" and repr(a) == "TensorType(float32, (?, 10))"
    assert repr(TensorType("int64", (None,))) == "TensorType(int64, (?,))"
    with pytest.raises(AttributeError):
        a.dtype = "float64"
    assert a.clone(dtype="int32") == TensorType("int32", (None, 10))
    assert ts.fmatrix == TensorType("float32", (None, None)) and ts.lvector.dtype == "int64"
    assert ts.row.type.shape == (1, None)


def test_invalid_types():
    with pytest.raises(TypeError, match="unsupported tensor dtype"):
        TensorType("U3", ())
    with pytest.raises(ValueError, match=">= 0 or None"):
        TensorType("float64", (-1,))


def test_is_super():
    assert TensorType("float64", (None, 3)).is_super(TensorType("float64", (2, 3)))
    assert not TensorType("float64", (2, 3)).is_super(TensorType("float64", (None, 3)))
    assert not TensorType("float64", (None,)).is_super(TensorType("float32", (None,)))


@pytest.mark.parametrize("src,dst", [("int8", "int16"), ("int32", "int64"), ("int32", "float64"),
                                     ("float16", "float32"), ("bool", "float32"), ("uint8", "int16"),
                                     ("float32", "complex64")])
def test_safe_numpy_casts_are_done(src, dst):
    out = TensorType(dst, (None,)).filter(np.array([1, 0], src))
    assert out.dtype == dst
    np.testing.assert_array_equal(out, [1, 0])


@pytest.mark.parametrize("src,dst", [("int64", "int32"), ("float64", "float32"), ("float32", "int64"),
                                     ("int64", "uint64"), ("complex64", "float64")])
def test_unsafe_numpy_casts_need_allow_downcast(src, dst):
    t = TensorType(dst, (None,))
    with pytest.raises(InputError, match=f"expected {dst}, got {src}"):
        t.filter(np.array([1, 0], src))
    assert t.filter(np.array([1, 0], src), allow_downcast=True).dtype == dst


def test_numpy_scalars_are_strong():
    t = TensorType("float32", ())
    with pytest.raises(InputError, match="got float64"):
        t.filter(np.float64(0.5))
    assert t.filter(np.float16(0.5)).dtype == np.float32


@pytest.mark.parametrize("value,dtype", [(0.1, "float32"), (2, "int8"), (2.0, "int64"), (True, "int64"),
                                         (1 + 0j, "float64"), ([1, 2], "uint8"), ([[0.5]], "float16"),
                                         (3, "complex64"), (float("nan"), "float32"),
                                         (float("inf"), "float16")])
def test_python_values_that_survive_are_converted(value, dtype):
    out = TensorType(dtype, (None,) * np.ndim(value)).filter(value)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.astype("complex128"), np.asarray(value, "complex128"),
                               rtol=1e-3)


@pytest.mark.parametrize("value,dtype,msg", [
    (300, "int8", r"Python int 300 does not fit int8"),
    (-1, "uint8", r"Python int -1 does not fit uint8"),
    (2.5, "int64", r"2.5 does not fit int64 exactly"),
    (1e300, "float32", r"1e\+300 does not fit float32"),
    (70000, "float16", r"70000 does not fit float16"),
    (1 + 2j, "float64", "imaginary part"),
    ([1, 300], "int8", r"\[1, 300\] does not fit int8"),
    (2, "bool", "does not fit bool"),
])
def test_python_values_that_do_not_survive_are_refused(value, dtype, msg):
    t = TensorType(dtype, (None,) * np.ndim(value))
    with pytest.raises(InputError, match=msg):
        t.filter(value, what="arg")
    t.filter(value, allow_downcast=True)  # allowed when asked for


def test_filter_errors_for_non_numbers():
    t = TensorType("float64", (None,))
    with pytest.raises(InputError, match="got <U1 data"):
        t.filter(np.array(["a"]))
    with pytest.raises(InputError, match="got <U1 data"):
        t.filter(["a", "b"])
    with pytest.raises(InputError, match=r"expected float64 data, got int \(object\)"):
        TensorType("float64", ()).filter(2**70)
    with pytest.raises(InputError, match=r"Python int 1180591620717411303424 does not fit int64"):
        TensorType("int64", ()).filter(2**70)
    with pytest.raises(InputError, match="cannot convert list"):
        t.filter([[1.0], [1.0, 2.0]])  # ragged
    with pytest.raises(ts.UpdateError, match="what: expected 1 dimension"):
        t.filter(np.zeros((1, 1)), what="what", error=ts.UpdateError)


def test_filter_returns_exact_arrays_unchanged():
    a = np.zeros(3)
    assert TensorType("float64", (None,)).filter(a) is a
    assert TensorType("float64", (3,)).filter(a) is a


@given(hnp.arrays(st.sampled_from(["int8", "int32", "float32", "float64", "bool"]),
                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
def test_filter_agrees_with_numpy_can_cast(arr):
    t = TensorType("float64", (None,) * arr.ndim)
    out = t.filter(arr)  # every one of these casts safely to float64
    assert out.dtype == np.float64 and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr.astype(np.float64))
    t32 = TensorType("int32", (None,) * arr.ndim)
    if np.can_cast(arr.dtype, np.int32):
        assert t32.filter(arr).dtype == np.int32
    else:
        with pytest.raises(InputError):
            t32.filter(arr)


@given(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
       hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), st.data())
def test_broadcast_shapes_matches_numpy(s1, s2, data):
    # hide some sizes (None): the result keeps what numpy would give, or None
    h1 = tuple(d if data.draw(st.booleans()) else None for d in s1)
    h2 = tuple(d if data.draw(st.booleans()) else None for d in s2)
    try:
        expected = np.broadcast_shapes(s1, s2)
    except ValueError:
        expected = None
    if expected is None:
        try:
            out = broadcast_shapes(h1, h2)
        except ShapeError:
            return
        assert len(out) == max(len(s1), len(s2))  # the mismatch was hidden by a None
        return
    out = broadcast_shapes(h1, h2)
    assert len(out) == len(expected)
    for o, e in zip(out, expected):
        assert o is None or o == e


def test_broadcast_shapes_static_cases():
    assert broadcast_shapes((None, 1), (3,)) == (None, 3)
    assert broadcast_shapes((1,), (1,)) == (1,)
    assert broadcast_shapes((None,), (1,)) == (None,)
    assert broadcast_shapes((5, None), (None, 4)) == (5, 4)
    assert broadcast_shapes() == ()
    with pytest.raises(ShapeError, match=r"shapes \(\?, 2\) and \(3,\) cannot be broadcast together in f"):
        broadcast_shapes((None, 2), (3,), where=" in f")
