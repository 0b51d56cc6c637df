import warnings

import numpy as np
import pytest

import tracesym as ts
from tracesym.autodiff import DISCONNECTED, NullGrad, grad_undefined
from tracesym.errors import DisconnectedInputError, GradientError, NullGradientError
from tracesym.autodiff.ops import _Identity
from tracesym.trace.graph import applies_between


def run(inputs, outputs, *values):
    return ts.function(inputs, outputs, on_unused_input="ignore")(*values)


# test-only Ops (abstract: kept out of OP_REGISTRY) --------------------------------------

class NoGrad(_Identity):
    """Differentiable in principle, but defines no gradient.  (Its make_node is the package's
    own, so the source line recorded for its output is the user's.)"""

    abstract = True

    def perform(self, node, inputs):
        return (inputs[0] * 2,)


class BadGrad(NoGrad):
    """An Op whose L_op returns a gradient of the wrong type (`kind` says how)."""

    abstract = True
    __props__ = ("kind",)

    def __init__(self, kind):
        self.kind = kind

    def L_op(self, inputs, outputs, output_grads):
        g = output_grads[0]
        if self.kind == "dtype":
            return [ts.cast(g, "float32")]
        if self.kind == "ndim":
            return [ts.sum(g)]
        if self.kind == "shape":
            return [ts.broadcast_to(ts.constant(np.float64(1)), (7,))]
        return [g, g]


class Undefined(NoGrad):
    """An Op whose gradient does not exist."""

    abstract = True

    def L_op(self, inputs, outputs, output_grads):
        return [grad_undefined(self, 0, "it is piecewise constant with jumps")]


# simple gradients against hand-written numpy -------------------------------------------

CASES = [
    ("mul", lambda x, y: (x * y).sum(), lambda x, y: [y, x]),
    ("div", lambda x, y: (x / y).sum(), lambda x, y: [1 / y, -x / y**2]),
    ("exp_sin", lambda x, y: (ts.exp(x) * ts.sin(y)).sum(), lambda x, y: [np.exp(x) * np.sin(y), np.exp(x) * np.cos(y)]),
    ("tanh", lambda x, y: ts.tanh(x - y).sum(), lambda x, y: [1 - np.tanh(x - y) ** 2, -(1 - np.tanh(x - y) ** 2)]),
    ("pow", lambda x, y: (x ** 3 + y ** 2).sum(), lambda x, y: [3 * x**2, 2 * y]),
    ("log", lambda x, y: ts.log(x * x + y * y).sum(), lambda x, y: [2 * x / (x * x + y * y), 2 * y / (x * x + y * y)]),
]


@pytest.mark.parametrize("name,f,df", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (0, 4)])
def test_simple_grads_match_numpy(name, f, df, shape, rng):
    x, y = ts.tensor("float64", (None,) * len(shape)), ts.tensor("float64", (None,) * len(shape))
    xv, yv = rng.uniform(0.5, 2, shape), rng.uniform(0.5, 2, shape)
    gx, gy = ts.grad(f(x, y), [x, y])
    rx, ry = run([x, y], [gx, gy], xv, yv)
    ex, ey = df(xv, yv)
    np.testing.assert_allclose(rx, ex, rtol=1e-12)
    np.testing.assert_allclose(ry, ey, rtol=1e-12)
    assert rx.dtype == np.float64 and rx.shape == shape


def test_broadcast_input_gets_summed_gradient(rng):
    x, b = ts.dmatrix("x"), ts.dvector("b")
    g = ts.grad((ts.sqr(x + b)).sum(), b)
    xv, bv = rng.normal(size=(4, 3)), rng.normal(size=3)
    np.testing.assert_allclose(run([x, b], g, xv, bv), (2 * (xv + bv)).sum(0), rtol=1e-12)


def test_runtime_size_one_dim_is_reduced(rng):
    x, b = ts.dmatrix("x"), ts.dmatrix("b")  # b is (1, n) only at run time
    g = ts.grad((x * b).sum(), b)
    xv, bv = rng.normal(size=(4, 3)), rng.normal(size=(1, 3))
    out = run([x, b], g, xv, bv)
    assert out.shape == (1, 3)
    np.testing.assert_allclose(out, xv.sum(0, keepdims=True), rtol=1e-12)


def test_float32_keeps_dtype(rng):
    x = ts.fvector("x")
    g = ts.grad((x * x * 3.0).sum(), x)
    assert g.dtype == "float32"
    xv = rng.normal(size=5).astype("float32")
    out = run([x], g, xv)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 6 * xv, rtol=1e-6)


def test_result_type_matches_wrt():
    x = ts.tensor("float64", (3, 4))
    g = ts.grad((x * 2).sum(), x)
    assert g.type == x.type
    w = ts.tensor("float32", (None, 5))
    gw = ts.grad(ts.sum(w), w)
    assert gw.dtype == "float32" and gw.ndim == 2
    assert gw.type.shape[1] == 5


def test_list_and_single_wrt_forms():
    x, y = ts.dscalar("x"), ts.dscalar("y")
    c = x * y
    assert isinstance(ts.grad(c, [x, y]), list)
    assert isinstance(ts.grad(c, (x, y)), tuple)
    assert isinstance(ts.grad(c, x), ts.Variable)


def test_grad_of_cost_wrt_itself_is_one():
    x = ts.dscalar("x")
    assert run([x], ts.grad(x, x), 3.0) == 1.0


# accumulation -------------------------------------------------------------------------

def test_accumulates_over_uses(rng):
    x = ts.dvector("x")
    c = (x * x + ts.sin(x) + 3 * x).sum()
    xv = rng.normal(size=4)
    np.testing.assert_allclose(run([x], ts.grad(c, x), xv), 2 * xv + np.cos(xv) + 3, rtol=1e-12)


def test_same_variable_twice_in_one_node():
    x = ts.dscalar("x")
    assert run([x], ts.grad(x * x, x), 3.0) == 6.0


def test_wrt_intermediate_and_its_input(rng):
    x = ts.dvector("x")
    y = ts.exp(x)
    c = (y * y).sum()
    gx, gy = ts.grad(c, [x, y])
    xv = rng.normal(size=3)
    rx, ry = run([x], [gx, gy], xv)
    np.testing.assert_allclose(ry, 2 * np.exp(xv), rtol=1e-12)
    np.testing.assert_allclose(rx, 2 * np.exp(2 * xv), rtol=1e-12)


def _chain_grad_sizes(n):
    x = ts.dvector("x")
    ws = [ts.dscalar(f"w{i}") for i in range(n)]
    h = x
    for i, w in enumerate(ws):
        h = ts.tanh(h * w + 0.1 * i) if i % 2 == 0 else ts.sin(h) * w + h
    cost = h.sum()
    gs = ts.grad(cost, [x] + ws)
    forward = len(applies_between([], [cost]))
    return x, ws, gs, len(applies_between([], gs)) - forward


def test_gradient_graph_of_long_chain_is_linear():
    n = 200
    x, ws, gs, backward = _chain_grad_sizes(n)
    assert backward <= 15 * n
    _, _, _, half = _chain_grad_sizes(n // 2)
    assert backward <= 2.1 * half  # linear, not quadratic, in the chain length
    f = ts.function([x] + ws, gs[0])
    assert np.all(np.isfinite(f(np.ones(2), *[0.9] * n)))


# disconnected, integer and constant wrt ----------------------------------------------

def test_disconnected_raises_by_default():
    x, y = ts.dvector("x"), ts.dvector("y")
    with pytest.raises(DisconnectedInputError, match="does not depend on y"):
        ts.grad(x.sum(), [x, y])


def test_disconnected_modes(rng):
    x, y = ts.dvector("x"), ts.dvector("y")
    c = x.sum()
    with pytest.warns(UserWarning, match="does not depend"):
        gx, gy = ts.grad(c, [x, y], disconnected_inputs="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gx, gy = ts.grad(c, [x, y], disconnected_inputs="ignore")
    np.testing.assert_array_equal(run([x, y], gy, np.ones(2), np.ones(3)), np.zeros(3))
    assert ts.grad(c, y, disconnected_inputs="ignore", return_disconnected="none") is None
    assert ts.grad(c, y, disconnected_inputs="ignore", return_disconnected="disconnected") is DISCONNECTED
    with pytest.raises(ValueError, match="return_disconnected"):
        ts.grad(c, y, return_disconnected="nope")


def test_stop_at_non_differentiable_op_is_disconnected():
    x = ts.dvector("x")
    c = ts.cast(x.shape[0], "float64")
    with pytest.raises(DisconnectedInputError):
        ts.grad(c, x)


def test_integer_wrt_gets_zeros():
    i = ts.lvector("i")
    x = ts.dvector("x")
    c = (x * i).sum()
    gi, gx = ts.grad(c, [i, x])
    assert gi.dtype == "int64"
    ri, rx = run([i, x], [gi, gx], np.array([1, 2]), np.array([3.0, 4.0]))
    np.testing.assert_array_equal(ri, [0, 0])
    np.testing.assert_array_equal(rx, [1.0, 2.0])


def test_path_through_integer_output_gives_zeros():
    x = ts.dvector("x")
    c = ts.cast(ts.cast(x, "int64"), "float64").sum()
    np.testing.assert_array_equal(run([x], ts.grad(c, x), np.array([1.5, 2.5])), [0.0, 0.0])


def test_integer_cost_gives_zeros():
    i = ts.lvector("i")
    x = ts.dvector("x")
    c = ts.cast(x, "int64").sum() + i.sum()
    np.testing.assert_array_equal(run([x], ts.grad(c, x), np.array([1.5, 2.5])), [0.0, 0.0])


def test_constant_wrt_is_an_error():
    k = ts.constant(np.ones(3))
    with pytest.raises(GradientError, match="constant"):
        ts.grad((k * 2).sum(), k)


def test_non_scalar_cost_points_to_lop_and_jacobian():
    x = ts.dvector("x")
    with pytest.raises(GradientError, match="Lop.*jacobian") as e:
        ts.grad(x * 2, x)
    assert "float64[?]" in str(e.value)


def test_bad_arguments():
    x = ts.dvector("x")
    with pytest.raises(GradientError, match="wrt must be symbolic"):
        ts.grad(x.sum(), np.ones(3))
    with pytest.raises(GradientError, match="known_grads"):
        ts.grad(None, x)
    with pytest.raises(ValueError, match="disconnected_inputs"):
        ts.grad(x.sum(), x, disconnected_inputs="loud")


# Ops without a gradient, or with a wrong one --------------------------------------------

def test_op_without_gradient_names_op_and_user_line():
    x = ts.dvector("x")
    y = NoGrad()(x)  # the line the error must point at
    with pytest.raises(GradientError) as e:
        ts.grad(y.sum(), x)
    msg = str(e.value)
    assert "NoGrad" in msg
    assert "test_grad.py" in msg and "y = NoGrad()(x)" in msg


@pytest.mark.parametrize("kind,what", [("dtype", "dtype"), ("ndim", "number of dimensions"),
                                       ("shape", "static shape"), ("count", "2 gradients")])
def test_op_returning_wrong_gradient_type_is_reported(kind, what):
    x = ts.tensor("float64", (3,))
    y = BadGrad(kind)(x)
    with pytest.raises(GradientError, match=what) as e:
        ts.grad(y.sum(), x)
    assert "BadGrad" in str(e.value)


def test_null_gradient_raises_or_is_returned():
    x = ts.dvector("x")
    c = Undefined()(x).sum()
    with pytest.raises(NullGradientError, match="piecewise constant"):
        ts.grad(c, x)
    g = ts.grad(c, x, null_gradients="return")
    assert isinstance(g, NullGrad) and "Undefined" in g.describe()


def test_null_gradient_propagates_and_wins_over_sums():
    x = ts.dvector("x")
    c = (ts.exp(Undefined()(x)) + x).sum()
    with pytest.raises(NullGradientError):
        ts.grad(c, x)


# known_grads and consider_constant ---------------------------------------------------

def test_known_grads_without_cost(rng):
    x = ts.dvector("x")
    y = ts.exp(x)
    gy = ts.dvector("gy")
    g = ts.grad(None, x, known_grads={y: gy})
    xv, gv = rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(run([x, gy], g, xv, gv), gv * np.exp(xv), rtol=1e-12)


def test_known_grads_add_to_cost_gradient(rng):
    x = ts.dvector("x")
    y = x * 3
    g = ts.grad(y.sum(), x, known_grads={y: np.ones(2)})
    np.testing.assert_allclose(run([x], g, np.zeros(2)), [6.0, 6.0])


def test_known_grads_type_is_checked():
    x = ts.dvector("x")
    y = ts.exp(x)
    with pytest.raises(GradientError, match="dimension"):
        ts.grad(None, x, known_grads={y: ts.dmatrix()})


def test_consider_constant(rng):
    x = ts.dvector("x")
    y = x * x
    c = (y * x).sum()
    g = ts.grad(c, x, consider_constant=[y])
    xv = rng.normal(size=3)
    np.testing.assert_allclose(run([x], g, xv), xv * xv, rtol=1e-12)
    with pytest.raises(DisconnectedInputError):
        ts.grad(y.sum(), x, consider_constant=[y])


# higher order ---------------------------------------------------------------------------

def test_grad_of_grad(rng):
    x = ts.dvector("x")
    c = (ts.sin(x) * x).sum()
    g = ts.grad(c, x)
    gg = ts.grad(g.sum(), x)
    xv = rng.normal(size=4)
    np.testing.assert_allclose(run([x], gg, xv), 2 * np.cos(xv) - xv * np.sin(xv), rtol=1e-12)


def test_third_derivative():
    x = ts.dscalar("x")
    g1 = ts.grad(x ** 4, x)
    g3 = ts.grad(ts.grad(g1, x), x)
    assert run([x], g3, 2.0) == pytest.approx(48.0)


def test_shared_variable_wrt(rng):
    w = ts.shared(np.array([1.0, 2.0]), name="w")
    x = ts.dvector("x")
    g = ts.grad((w * x).sum() ** 2, w)
    xv = np.array([3.0, 4.0])
    np.testing.assert_allclose(run([x], g, xv), 2 * 11 * xv)


class VagueGrad(NoGrad):
    """An Op whose gradient has a less precise static shape than its input (allowed)."""

    abstract = True

    def L_op(self, inputs, outputs, output_grads):
        return [ts.SumToShape()(output_grads[0] * 2, ts.shape(inputs[0]))]


def test_result_gets_wrt_static_shape_when_op_gradient_is_vaguer(rng):
    x = ts.tensor("float64", (3, 1))
    inner = ts.grad(VagueGrad()(x).sum(), x)
    assert inner.type == x.type
    np.testing.assert_allclose(run([x], inner, np.ones((3, 1))), np.full((3, 1), 2.0))


def test_null_gradient_does_not_reach_integer_wrt():
    x, i = ts.dvector("x"), ts.lvector("i")
    c = Undefined()(x * i).sum()
    gi = ts.grad(c, i)
    np.testing.assert_array_equal(run([x, i], gi, np.ones(2), np.array([1, 2])), [0, 0])
