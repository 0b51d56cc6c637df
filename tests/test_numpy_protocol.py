"""numpy's functions and operators on symbolic tensors (`__array_ufunc__`,
`__array_function__`): they build the same graph as the tracesym functions, an ndarray on the
left of an operator defers to the tensor, and what tracesym cannot do raises TypeError."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import TracerBoolConversionError

X = np.arange(12.0).reshape(3, 4) - 5.5
Y = np.linspace(-1, 2, 4)
C = np.array([True, False, True, True])
A = np.linspace(0.5, 3, 4)  # an ndarray operand


def _syms():
    return ts.dmatrix("x"), ts.dvector("y"), ts.tensor("bool", (None,), name="c")


def _same(np_out, ts_out, x, y, c):
    """Same graph (formula text, with the ops' parameters, and the output type) and the same
    values when compiled."""
    assert isinstance(np_out, ts.Tensor)
    assert np_out.type == ts_out.type
    assert type(np_out.owner.op) is type(ts_out.owner.op)
    assert np_out.owner.op == ts_out.owner.op
    assert ts.pprint(np_out) == ts.pprint(ts_out)
    f = ts.function([x, y, c], [np_out, ts_out], on_unused_input="ignore")
    got, want = f(X, Y, C)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


PAIRS = {
    "exp": (lambda x, y, c: np.exp(x), lambda x, y, c: ts.exp(x)),
    "add_scalar": (lambda x, y, c: np.add(x, 1), lambda x, y, c: ts.add(x, 1)),
    "add_scalar_left": (lambda x, y, c: np.add(2.5, y), lambda x, y, c: ts.add(2.5, y)),
    "sum_axis0": (lambda x, y, c: np.sum(x, axis=0), lambda x, y, c: ts.sum(x, axis=0)),
    "sum_all": (lambda x, y, c: np.sum(x), lambda x, y, c: ts.sum(x)),
    "maximum": (lambda x, y, c: np.maximum(x, y), lambda x, y, c: ts.maximum(x, y)),
    "where": (lambda x, y, c: np.where(c, x, y), lambda x, y, c: ts.where(c, x, y)),
    "where_array_cond": (lambda x, y, c: np.where(C, y, 0.0), lambda x, y, c: ts.where(C, y, 0.0)),
    "dot": (lambda x, y, c: np.dot(x, y), lambda x, y, c: ts.dot(x, y)),
    "mean": (lambda x, y, c: np.mean(x), lambda x, y, c: ts.mean(x)),
    "mean_axis": (lambda x, y, c: np.mean(x, axis=-1, keepdims=True),
                  lambda x, y, c: ts.mean(x, axis=-1, keepdims=True)),
    "clip": (lambda x, y, c: np.clip(x, -1, 2), lambda x, y, c: ts.clip(x, -1, 2)),
    "round": (lambda x, y, c: np.round(x), lambda x, y, c: ts.round(x)),
    "rint": (lambda x, y, c: np.rint(x), lambda x, y, c: ts.round(x)),
    "square": (lambda x, y, c: np.square(y), lambda x, y, c: ts.sqr(y)),
    "remainder": (lambda x, y, c: np.remainder(x, 3), lambda x, y, c: ts.mod(x, 3)),
    "abs": (lambda x, y, c: np.abs(x), lambda x, y, c: ts.abs(x)),
    "negative": (lambda x, y, c: np.negative(x), lambda x, y, c: -x),
    "isfinite": (lambda x, y, c: np.isfinite(y), lambda x, y, c: ts.isfinite(y)),
    "logical_and": (lambda x, y, c: np.logical_and(c, y), lambda x, y, c: ts.logical_and(c, y)),
    "logical_not": (lambda x, y, c: np.logical_not(y), lambda x, y, c: ts.logical_not(y)),
    "bitwise_xor": (lambda x, y, c: np.bitwise_xor(c, True), lambda x, y, c: c ^ True),
    "astype": (lambda x, y, c: np.astype(x, "float32"), lambda x, y, c: x.astype("float32")),
    "add_reduce": (lambda x, y, c: np.add.reduce(x), lambda x, y, c: ts.sum(x, axis=0)),
    "max_reduce": (lambda x, y, c: np.maximum.reduce(x, axis=1, keepdims=True),
                   lambda x, y, c: ts.max(x, axis=1, keepdims=True)),
    "add_accumulate": (lambda x, y, c: np.add.accumulate(x, axis=1),
                       lambda x, y, c: ts.cumsum(x, axis=1)),
    "matmul": (lambda x, y, c: np.matmul(x, y), lambda x, y, c: ts.matmul(x, y)),
    # an ndarray on the left of an operator: numpy defers to Tensor.__array_ufunc__
    "ndarray_mul": (lambda x, y, c: A * y, lambda x, y, c: ts.mul(A, y)),
    "ndarray_sub": (lambda x, y, c: A - x, lambda x, y, c: ts.sub(A, x)),
    "ndarray_div": (lambda x, y, c: A / y, lambda x, y, c: ts.true_divide(A, y)),
    "ndarray_floordiv": (lambda x, y, c: A // y, lambda x, y, c: ts.floor_divide(A, y)),
    "ndarray_mod": (lambda x, y, c: A % y, lambda x, y, c: ts.mod(A, y)),
    "ndarray_pow": (lambda x, y, c: A ** y, lambda x, y, c: ts.power(A, y)),
    "ndarray_lt": (lambda x, y, c: A < x, lambda x, y, c: ts.lt(A, x)),
    "ndarray_ge": (lambda x, y, c: A >= x, lambda x, y, c: ts.ge(A, x)),
    "ndarray_and": (lambda x, y, c: C & c, lambda x, y, c: ts.and_(C, c)),
    "ndarray_matmul": (lambda x, y, c: X.T @ x, lambda x, y, c: ts.matmul(X.T, x)),
    "ndarray_array_mul": (lambda x, y, c: np.array(A) * x, lambda x, y, c: ts.mul(A, x)),
    "numpy_scalar_mul": (lambda x, y, c: np.float32(2) * y, lambda x, y, c: ts.mul(np.float32(2), y)),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_numpy_builds_the_tracesym_graph(name):
    x, y, c = _syms()
    np_f, ts_f = PAIRS[name]
    _same(np_f(x, y, c), ts_f(x, y, c), x, y, c)


def test_values_match_numpy_on_arrays():
    x, y, c = _syms()
    for np_f, _ in PAIRS.values():
        out = np_f(x, y, c)
        got = ts.function([x, y, c], out, on_unused_input="ignore")(X, Y, C)
        with np.errstate(all="ignore"):
            want = np.asarray(np_f(X, Y, C))
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_positive_is_identity():
    x, _, _ = _syms()
    assert np.positive(x) is x


@pytest.mark.parametrize("call,match", [
    (lambda x: np.fmod(x, 2.0), "np.fmod is not supported"),
    (lambda x: np.hypot(x, x), "np.hypot is not supported"),
    (lambda x: np.add.outer(x, x), "np.add.outer is not supported"),
    (lambda x: np.subtract.reduce(x), "np.subtract.reduce is not supported"),
    (lambda x: np.add(x, 1, dtype="float32"), "keyword argument.*dtype"),
    (lambda x: np.exp(x, where=True), "keyword argument.*where"),
    (lambda x: np.add.reduce(x, initial=0.0), "keyword argument.*initial"),
    (lambda x: np.exp(x, out=np.zeros((3, 4))), "cannot be written"),
    (lambda x: np.round(x, decimals=2), "tracesym.round.*decimals"),
    (lambda x: np.sum(x, axis=0, where=True), "tracesym.sum"),
    (lambda x: divmod(np.ones(4), x), "np.divmod"),
])
def test_unsupported_raise_clear_type_errors(call, match):
    x = ts.dmatrix("x")
    with pytest.raises(TypeError, match=match):
        call(x)


@pytest.mark.parametrize("call", [lambda x: np.median(x), lambda x: np.linalg.norm(x),
                                  lambda x: np.trace(x), lambda x: np.fft.fft(x)])
def test_functions_tracesym_lacks_are_left_to_numpy(call):
    """`__array_function__` returns NotImplemented (a function of another numpy namespace
    never maps to a tracesym one of the same name); numpy then raises TypeError."""
    from tracesym.numpy_protocol import array_function

    x = ts.dmatrix("x")
    with pytest.raises(TypeError, match="no implementation found"):
        call(x)
    assert array_function(np.median, (x,), {}) is NotImplemented
    assert array_function(np.linalg.norm, (x,), {}) is NotImplemented


def test_converting_to_an_array_raises():
    x = ts.dmatrix("x")
    with pytest.raises(TracerBoolConversionError, match="numpy array"):
        np.asarray(x)
