"""verify_grad itself, and whole models checked with it."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.autodiff.ops import _Identity
from tracesym.errors import VerifyGradError


class WrongSquare(_Identity):
    """x**2 forward with a deliberately wrong gradient (3x instead of 2x)."""

    abstract = True

    def perform(self, node, inputs):
        return (inputs[0] ** 2,)

    def L_op(self, inputs, outputs, output_grads):
        return [output_grads[0] * inputs[0] * 3.0]


class RightSquare(WrongSquare):
    abstract = True

    def L_op(self, inputs, outputs, output_grads):
        return [output_grads[0] * inputs[0] * 2.0]


def test_passes_on_correct_gradient(rng):
    ts.verify_grad(lambda x: RightSquare()(x), [rng.normal(size=(2, 3))], rng=rng)


def test_fails_on_wrong_gradient_with_details(rng):
    pts = [np.ones(3), np.array([[1.0, 2.0], [3.0, 40.0]])]
    with pytest.raises(VerifyGradError) as e:
        ts.verify_grad(lambda a, b: a.sum() + WrongSquare()(b), pts, rng=rng)
    msg = str(e.value)
    assert "input 1" in msg
    assert "(1, 1)" in msg  # the worst element: |3x - 2x| * proj is largest there
    assert "analytic" in msg and "numeric" in msg and "abs error" in msg and "rel error" in msg
    assert isinstance(e.value, AssertionError)


def test_small_error_is_caught_only_beyond_tolerance(rng):
    class Off(_Identity):
        abstract = True

        def perform(self, node, inputs):
            return (inputs[0] * 1.0,)

        def L_op(self, inputs, outputs, output_grads):
            return [output_grads[0] * 1.001]

    pts = [rng.normal(size=4)]
    with pytest.raises(VerifyGradError):
        ts.verify_grad(lambda x: Off()(x), pts, rng=rng)
    ts.verify_grad(lambda x: Off()(x), pts, rng=rng, rel_tol=1e-2)


@pytest.mark.parametrize("make_rng", [lambda: None, lambda: np.random.default_rng(3),
                                      lambda: np.random.RandomState(3)])
def test_rng_kinds(make_rng):
    ts.verify_grad(lambda x: ts.exp(x) * x, [np.array([0.5, -0.25])], rng=make_rng())
    with pytest.raises(VerifyGradError):
        ts.verify_grad(lambda x: WrongSquare()(x), [np.array([0.5, -0.25])], rng=make_rng())


def test_bad_arguments():
    with pytest.raises(TypeError, match="float"):
        ts.verify_grad(lambda x: ts.cast(x, "int64"), [np.ones(2)])
    with pytest.raises(TypeError, match="rng"):
        ts.verify_grad(lambda x: x, [np.ones(2)], rng=3)
    with pytest.raises(TypeError, match="list"):
        ts.verify_grad(lambda x: x, np.ones(2))


def test_scalar_output_zero_size_and_unused_input(rng):
    ts.verify_grad(lambda x, y: (x * x).sum(), [rng.normal(size=3), rng.normal(size=2)], rng=rng)
    ts.verify_grad(lambda x: x * 2, [np.zeros((0, 3))], rng=rng)


def test_float32_output_uses_wider_tolerance(rng):
    ts.verify_grad(lambda x: ts.tanh(ts.cast(x, "float32")), [rng.normal(size=3)], rng=rng)
    ts.verify_grad(lambda x: ts.tanh(ts.cast(x, "float32")), [rng.normal(size=3)], rng=rng,
                   cast_to_output_type=True)


# whole models ---------------------------------------------------------------------------

def _softmax(z):
    e = ts.exp(z - ts.max(z, axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_logistic_regression(rng):
    X = rng.normal(size=(6, 4))
    Y = np.eye(3)[rng.integers(0, 3, 6)]

    def loss(W, b):
        p = _softmax(ts.dot(ts.constant(X), W) + b)
        return -(ts.constant(Y) * ts.log(p)).sum() / 6

    ts.verify_grad(loss, [rng.normal(size=(4, 3)), rng.normal(size=3)], rng=rng)


def test_two_layer_mlp(rng):
    X = rng.normal(size=(5, 4))

    def mlp(W1, b1, W2, b2):
        h = ts.tanh(ts.dot(ts.constant(X), W1) + b1)
        return h @ W2 + b2

    ts.verify_grad(mlp, [rng.normal(size=(4, 6)) * 0.5, rng.normal(size=6), rng.normal(size=(6, 2)),
                         rng.normal(size=2)], rng=rng)


def test_softmax_cross_entropy(rng):
    labels = np.eye(4)[[0, 3, 1]]

    def xent(z):
        zmax = ts.max(z, axis=1, keepdims=True)
        logp = z - zmax - ts.log(ts.exp(z - zmax).sum(axis=1, keepdims=True))
        return -(ts.constant(labels) * logp).sum(axis=1)

    ts.verify_grad(xent, [rng.normal(size=(3, 4))], rng=rng)
    ts.verify_grad(lambda z: _softmax(z), [rng.normal(size=(3, 4))], rng=rng)


def test_library_softmax_models_match_hand_built_ones(rng):
    X, labels = rng.normal(size=(5, 4)), np.array([0, 2, 1, 2, 0])
    Y = np.eye(3)[labels]

    def lib(W):
        return -(ts.constant(Y) * ts.log_softmax(ts.dot(ts.constant(X), W))).sum()

    def hand(W):
        return -(ts.constant(Y) * ts.log(_softmax(ts.dot(ts.constant(X), W)))).sum()

    Wv = rng.normal(size=(4, 3))
    ts.verify_grad(lib, [Wv], rng=rng)
    W = ts.dmatrix("W")
    g_lib, g_hand = ts.function([W], [ts.grad(lib(W), W), ts.grad(hand(W), W)])(Wv)
    np.testing.assert_allclose(g_lib, g_hand, rtol=1e-10)
