import numpy as np
import pytest

import tracesym as ts
from tracesym.autodiff.ops import GradClip, GradScale, StopGradient, ZeroGrad
from tracesym.errors import DisconnectedInputError
from tracesym.ops import OP_REGISTRY


def run(inputs, outputs, *values):
    return ts.function(inputs, outputs, on_unused_input="ignore")(*values)


_P = np.array([[0.3, -1.2, 2.0], [0.7, 0.1, -0.4]])

# verify_grad cases: the gradient-shaping path is combined so that the check is exact
GRAD_CASES = {
    StopGradient: [(lambda x: x * 2 + ts.stop_gradient(x) - ts.stop_gradient(x), [_P])],
    ZeroGrad: [(lambda x: ts.sin(x) + ts.zero_grad(x) - ts.zero_grad(x), [_P])],
    GradClip: [(lambda x: ts.grad_clip(x, -100.0, 100.0) * x, [_P])],
    GradScale: [(lambda x: 0.5 * ts.grad_scale(x, 2.0) + 0.5 * ts.grad_scale(x, 0.0), [_P])],
}


@pytest.mark.parametrize("op", list(GRAD_CASES), ids=lambda o: o.__name__)
def test_grad_cases(op, rng):
    for fun, pts in GRAD_CASES[op]:
        ts.verify_grad(fun, pts, rng=rng)


def test_helper_ops_are_registered():
    for op in (StopGradient, ZeroGrad, GradClip, GradScale):
        assert op in OP_REGISTRY
    assert not StopGradient.differentiable


@pytest.mark.parametrize("helper", [ts.stop_gradient, ts.zero_grad,
                                    lambda x: ts.grad_clip(x, -1, 1), lambda x: ts.grad_scale(x, 3)])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int32"])
def test_forward_is_identity(helper, dtype, rng):
    x = ts.tensor(dtype, (None, 3))
    y = helper(x)
    assert y.type == x.type
    xv = (rng.normal(size=(2, 3)) * 5).astype(dtype)
    out = run([x], y, xv)
    assert out.dtype == xv.dtype
    np.testing.assert_array_equal(out, xv)


def test_stop_gradient_disconnects(rng):
    x = ts.dvector("x")
    c = (x * ts.stop_gradient(x)).sum()
    xv = rng.normal(size=3)
    np.testing.assert_allclose(run([x], ts.grad(c, x), xv), xv)
    with pytest.raises(DisconnectedInputError):
        ts.grad(ts.stop_gradient(x).sum(), x)
    assert ts.disconnected_grad is ts.stop_gradient


def test_zero_grad_is_connected(rng):
    x = ts.dvector("x")
    g = ts.grad(ts.zero_grad(x * 3).sum(), x)  # no DisconnectedInputError
    np.testing.assert_array_equal(run([x], g, np.ones(4)), np.zeros(4))


def test_grad_clip_clips(rng):
    x = ts.dvector("x")
    c = (ts.grad_clip(x, -1.0, 2.0) ** 2).sum()
    xv = np.array([-3.0, -0.2, 0.5, 4.0])
    np.testing.assert_allclose(run([x], ts.grad(c, x), xv), np.clip(2 * xv, -1, 2))
    with pytest.raises(ValueError, match="lower bound"):
        ts.grad_clip(x, 1.0, -1.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_grad_scale_scales(dtype, rng):
    x = ts.tensor(dtype, (None,))
    g = ts.grad(ts.sin(ts.grad_scale(x, -2.5)).sum(), x)
    assert g.dtype == dtype
    xv = rng.normal(size=3).astype(dtype)
    np.testing.assert_allclose(run([x], g, xv), -2.5 * np.cos(xv), rtol=1e-6)


def test_grad_scale_symbolic_scale(rng):
    x, s = ts.dvector("x"), ts.dscalar("s")
    g = ts.grad(ts.grad_scale(x, s).sum(), x)
    np.testing.assert_allclose(run([x, s], g, np.ones(2), 4.0), [4.0, 4.0])
    with pytest.raises(TypeError, match="scalar"):
        ts.grad_scale(x, ts.dvector())


def test_helpers_compose_with_second_derivatives():
    x = ts.dscalar("x")
    g = ts.grad(ts.grad_scale(x ** 3, 2.0), x)  # 6 x^2
    gg = ts.grad(g, x)  # 12 x, through the scaled path's own gradient graph
    assert run([x], [g, gg], 2.0) == [pytest.approx(24.0), pytest.approx(24.0)]
