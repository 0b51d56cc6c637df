"""Test values (`config.compute_test_value`, `x.tag.test_value`, `test_value=`) and eager mode
(`ts.eager()`, `@ts.compile(eager=True)`): errors at the user's line, print and `if` inside."""

import warnings

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import InputError, OpRuntimeError, ShapeError, TracerBoolConversionError


def _line_of(marker):
    with open(__file__) as fh:
        for i, line in enumerate(fh, 1):
            if marker in line and "_line_of" not in line:
                return i
    raise LookupError(marker)


# -- test values -----------------------------------------------------------------------------

def test_off_computes_nothing():
    x = ts.dvector("x", test_value=np.zeros(3))
    y = ts.exp(x)
    assert not y.has_test_value()
    with pytest.raises(AttributeError, match="has no test value"):
        y.get_test_value()


@pytest.mark.parametrize("mode", ["ignore", "warn", "raise"])
def test_values_flow_through_ops(mode):
    with ts.config.change(compute_test_value=mode):
        x = ts.fvector("x")
        x.tag.test_value = np.array([0.0, 1.0], np.float32)
        y = ts.exp(x) * 2
        assert y.tag.test_value.dtype == np.float32
        np.testing.assert_allclose(y.get_test_value(), np.exp([0.0, 1.0]) * 2, rtol=1e-6)
        s = y.sum()
        assert s.get_test_value().shape == ()


def test_test_value_argument():
    with ts.config.change(compute_test_value="raise"):
        x = ts.dmatrix("x", test_value=np.ones((2, 3)))
        assert (x.sum(axis=0)).get_test_value().shape == (3,)


def test_test_value_argument_is_checked():
    with pytest.raises(InputError, match=r"test value of x: expected 2 dimension"):
        ts.dmatrix("x", test_value=np.ones(3))


def test_tag_test_value_is_checked_when_used():
    with ts.config.change(compute_test_value="raise"):
        x = ts.fvector("x")
        x.tag.test_value = [1.0, 2.0]  # a list: converted, once
        assert (x * 2).get_test_value().dtype == np.float32
        assert type(x.tag.test_value) is np.ndarray
        y = ts.fvector("y")
        y.tag.test_value = np.ones((2, 2), np.float32)
        with pytest.raises(ts.TestValueError, match=r"test value of y: expected 1 dimension"):
            y + 1


def test_missing_test_value_modes():
    x = ts.dvector("x")  # marker: no-test-value
    with ts.config.change(compute_test_value="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert not (x + 1).has_test_value()
    with ts.config.change(compute_test_value="warn"):
        with pytest.warns(UserWarning, match=r"Elemwise\{add\}: input x has no test value") as rec:
            y = x + 1  # marker: warn-line
        assert not y.has_test_value()
        assert rec[0].filename == __file__ and rec[0].lineno == _line_of("marker: warn-line")
    with ts.config.change(compute_test_value="raise"):
        with pytest.raises(ts.TestValueError) as info:
            x + 1
    msg = str(info.value)
    assert "Elemwise{add}: input x (float64[?]) has no test value" in msg
    assert f"line {_line_of('marker: no-test-value')}" in msg
    assert "ts.eager()" in msg


def test_constants_and_shared_variables_have_test_values():
    W = ts.shared(np.array([1.0, 2.0]), name="W")
    with ts.config.change(compute_test_value="raise"):
        y = W * 3.0 + 1
    np.testing.assert_array_equal(y.get_test_value(), [4.0, 7.0])


def test_trace_time_error_points_at_the_users_line():
    with ts.config.change(compute_test_value="raise"):
        x = ts.dvector("x", test_value=np.zeros(3))
        y = ts.dvector("y", test_value=np.zeros(4))
        with pytest.raises(OpRuntimeError) as info:
            x + y  # marker: trace-time-error
    msg = str(info.value)
    assert "Elemwise{add} failed on inputs (float64[3], float64[4])" in msg
    assert f'File "{__file__}", line {_line_of("marker: trace-time-error")}' in msg
    assert "x + y  # marker" in msg
    assert isinstance(info.value.__cause__, ValueError)
    # the traceback's innermost user frame is that line too
    frames = [f for f in info.traceback if str(f.path) == __file__]
    assert frames[-1].lineno + 1 == _line_of("marker: trace-time-error")


def test_static_mismatch_is_a_shape_error_at_make_node():
    x = ts.tensor("float64", shape=(3,), name="x")
    y = ts.tensor("float64", shape=(4,), name="y")
    with pytest.raises(ShapeError, match=r"shapes \(3,\) and \(4,\) cannot be broadcast together in add"):
        x + y


def test_compiled_function_does_not_see_test_values():
    with ts.config.change(compute_test_value="raise"):
        x = ts.dvector("x", test_value=np.zeros(2))
        f = ts.function([x], x + 1)
    np.testing.assert_array_equal(f(np.array([5.0, 6.0, 7.0])), [6.0, 7.0, 8.0])


# -- eager mode -----------------------------------------------------------------------------------

def _model():
    W = ts.shared(np.array([1.0, -1.0]), name="W")

    def body(x, lr=0.5):
        h = ts.exp(x * W)
        print("h is", h)
        ts.update(W, W - lr * h)
        return h.sum(), {"h": h}

    return W, body


def test_eager_context_prints_values_and_matches_compiled(capsys):
    W, body = _model()
    f = ts.compile(body)
    x = np.array([0.0, 1.0])
    with ts.eager():
        eager_sum, eager_d = f(x)
    printed = capsys.readouterr().out
    assert "h is Tensor([1.         0.36787944], float64[?])" in printed
    W_eager = W.get_value()
    np.testing.assert_allclose(W_eager, [1.0 - 0.5, -1.0 - 0.5 * np.exp(-1)])
    W.set_value(np.array([1.0, -1.0]))
    comp_sum, comp_d = f(x)
    printed = capsys.readouterr().out
    assert printed == "h is Elemwise{exp}.out: float64[?]\n"  # traced: symbolic, no value
    np.testing.assert_allclose(eager_sum, comp_sum)
    np.testing.assert_allclose(eager_d["h"], comp_d["h"])
    assert eager_sum.dtype == comp_sum.dtype and type(eager_d["h"]) is np.ndarray
    np.testing.assert_allclose(W.get_value(), W_eager)


def test_compile_eager_flag(capsys):
    W, body = _model()
    f = ts.compile(eager=True)(body)
    s, d = f(np.array([0.0, 0.0]))
    assert "h is Tensor([1. 1.], float64[?])" in capsys.readouterr().out
    assert s == 2.0
    np.testing.assert_allclose(W.get_value(), [0.5, -1.5])
    assert f.n_traces == 0  # nothing was compiled
    f(np.array([0.0, 0.0]))
    np.testing.assert_allclose(W.get_value(), [0.0, -2.0])


def test_python_if_works_in_eager_but_not_when_traced():
    @ts.compile
    def relu_sum(x):
        s = x.sum()
        if s > 0:
            return s
        return s * 0

    with ts.eager():
        assert relu_sum(np.array([1.0, 2.0])) == 3.0
        assert relu_sum(np.array([-1.0, -2.0])) == 0.0
    with pytest.raises(TracerBoolConversionError, match=r"ts\.where") as info:
        relu_sum(np.array([1.0]))
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("convert", [int, float, bool, np.asarray])
def test_concrete_conversions_when_traced(convert):
    @ts.compile
    def f(x):
        return convert(x.sum())

    with pytest.raises(TracerBoolConversionError, match=r"ts.eager\(\)"):
        f(np.array([1.0]))
    with ts.eager():
        assert f(np.array([1.0])) == 1.0


def test_eager_updates_see_old_values():
    a = ts.shared(np.array([1.0]), name="a")
    b = ts.shared(np.array([2.0]), name="b")

    @ts.compile(eager=True)
    def swap():
        ts.update(a, b)
        ts.update(b, a)

    swap()
    assert a.get_value()[0] == 2.0 and b.get_value()[0] == 1.0


def test_eager_error_points_at_the_users_line():
    @ts.compile(eager=True)
    def f(x, y):
        return x + y  # marker: eager-error

    with pytest.raises(OpRuntimeError) as info:
        f(np.zeros(3), np.zeros(4))
    msg = str(info.value)
    assert "Elemwise{add}" in msg and "float64[3], float64[4]" in msg
    assert f"line {_line_of('marker: eager-error')}" in msg


def test_eager_checks_annotated_arguments():
    @ts.compile(eager=True)
    def f(x: ts.fvector):
        return x * 2

    with pytest.raises(InputError, match="argument 'x': expected float32, got float64"):
        f(np.zeros(2))

    @ts.compile(eager=True, allow_input_downcast=True)
    def g(x: ts.fvector):
        return x * 2

    assert g(np.ones(2)).dtype == np.float32


def test_eager_results_do_not_alias_shared_storage():
    W = ts.shared(np.array([1.0]), name="W")

    @ts.compile(eager=True)
    def f():
        return W

    out = f()
    out[0] = 5.0
    assert W.get_value()[0] == 1.0


def test_eager_nesting_restores_state():
    @ts.compile
    def f(x):
        return x * 2 if x.sum() > 0 else x

    with ts.eager():
        with ts.eager():
            f(np.ones(1))
        f(np.ones(1))
    with pytest.raises(TracerBoolConversionError):
        f(np.ones(1))


def test_eager_mode_is_per_thread():
    import threading

    @ts.compile
    def f(x):
        return x * 2 if x.sum() > 0 else x

    entered, release = threading.Event(), threading.Event()

    def eager_thread():
        with ts.eager():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=eager_thread)
    t.start()
    entered.wait(5)
    try:
        with pytest.raises(TracerBoolConversionError):
            f(np.ones(1))  # this thread is not eager
    finally:
        release.set()
        t.join()
