"""The per-call path of compiled functions: the argument checks a `Function` generates for its
inputs, and the `@ts.compile` fast path for calls that leave static parameters to their
defaults."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import InputError


def test_fast_path_with_static_defaults_left_out():
    traces = []

    def body(x, lr=0.5, scale=2):
        traces.append(1)
        return (x * lr).sum() * scale

    f = ts.compile(body)
    general = []
    bind = f._bind
    f._bind = lambda args, kwargs: general.append(1) or bind(args, kwargs)
    x = np.arange(4.0)
    for k in range(3):
        assert f(x + k) == pytest.approx((x + k).sum())
    assert len(general) == 1 and len(traces) == 1  # later calls skip binding
    assert f(x, 0.25) == pytest.approx(x.sum() * 0.5)  # a static value: traced again
    assert f(x, 0.25, 1) == pytest.approx(x.sum() * 0.25)
    assert f(x) == pytest.approx(x.sum())
    assert len(traces) == 3
    assert f(np.ones(3, np.float32)) == pytest.approx(3.0)  # a new dtype: traced again
    assert f(np.ones(3, np.float32)) == pytest.approx(3.0)
    assert len(traces) == 4 and len(general) == 4


def test_array_defaults_are_not_taken_by_the_fast_path():
    f = ts.compile(lambda x, y=np.ones(2): x + y)
    x = np.zeros(2)
    np.testing.assert_array_equal(f(x), [1, 1])
    np.testing.assert_array_equal(f(x), [1, 1])
    np.testing.assert_array_equal(f(x, np.array([2.0, 3.0])), [2, 3])


def test_generated_argument_checks_convert_refuse_and_pass_shared_values():
    x, n = ts.dvector("x"), ts.lscalar("n")
    w = ts.shared(np.arange(3.0), name="w")
    fixed = ts.TensorType("float64", (3,))("z")
    f = ts.function([x, n, fixed], [x * w * n + fixed], mode=ts.Mode(linker="c"))
    three = np.ones(3)
    np.testing.assert_allclose(f(three, 2, three)[0], np.arange(3.0) * 2 + 1)
    np.testing.assert_allclose(f([1.0, 1, 1], np.int64(1), three)[0], np.arange(3.0) + 1)
    np.testing.assert_allclose(f(three.astype("float32"), 1, three)[0], np.arange(3.0) + 1)
    with pytest.raises(InputError, match="argument 0"):
        f(np.ones((3, 1)), 1, three)
    with pytest.raises(InputError, match="argument 2"):
        f(three, 1, np.ones(4))  # the static size of z is checked though the ndim matches
    w.set_value(np.ones(3))
    np.testing.assert_allclose(f(three, 3, three)[0], 4.0)


def test_fast_path_leaves_symbolic_arguments_to_the_trace():
    @ts.compile
    def f(x: ts.dvector):
        return x * 2

    np.testing.assert_array_equal(f(np.ones(2)), [2, 2])
    np.testing.assert_array_equal(f(np.ones(2)), [2, 2])  # the fast path is ready
    np.testing.assert_array_equal(f([1.0, 2.0]), [2, 4])  # a list: converted
    y = ts.dvector("y")
    out = f(y)  # a placeholder: traced inline, not run
    assert isinstance(out, ts.Variable)
    g = ts.function([y], out, mode=ts.Mode(linker="c"))
    np.testing.assert_array_equal(g(np.arange(3.0)), [0, 2, 4])
