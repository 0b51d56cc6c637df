"""The numerical-stability rewrites: each one fires where it should (the rewritten graph's Ops
and `rewrite_log`), stays away where it must not, and computes what mode NONE computes on
ordinary inputs, while giving the exact answer where the naive form rounds to 0, 1 or inf."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.errors import ShapeError
from tracesym.ops.composite import Composite, program_of
from tracesym.ops.elemwise import Elemwise
from tracesym.ops.nnet import (LogSoftmax, Softmax, SoftmaxCrossEntropy, SoftmaxCrossEntropyGrad,
                               SoftmaxGrad)
from tracesym.ops.basic import Alloc
from tracesym.ops.subtensor import AdvancedIncSubtensor, IncSubtensor, Subtensor
from tracesym.ops.reduce import LogSumExp
from tracesym.ops.shape import BroadcastTo, shape_i

# -- helpers ----------------------------------------------------------------------------------


def compile_both(inputs, out):
    return ts.function(inputs, out), ts.function(inputs, out, mode="NONE")


def fired(f):
    return [name for name, _ in f.graph.rewrite_log]


def op_types(f):
    return {type(n.op) for n in f.graph.apply_nodes()}


def scalar_steps(f):
    """The scalar ops `f` runs, one entry per use, also inside fused nodes."""
    return [st.op for n in f.graph.apply_nodes() if isinstance(n.op, (Elemwise, Composite))
            for st in program_of(n).steps]


def scalar_ops(f):
    return set(scalar_steps(f))


def same(got, expected, rtol=1e-12, atol=0.0):
    """Equal values (nan where nan, infinities with their signs), dtype and shape."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)


def check_rule(inputs, out, rule, values, rtol=1e-12, atol=1e-15):
    """`rule` fires, and the result equals mode NONE's on `values`."""
    f, g = compile_both(inputs, out)
    assert rule in fired(f), fired(f)
    same(f(*values), g(*values), rtol=rtol, atol=atol)
    return f


def check_no_rule(inputs, out, rule, values):
    f, g = compile_both(inputs, out)
    assert rule not in fired(f), fired(f)
    same(f(*values), g(*values))
    return f


def np_logsoftmax(a, axis=-1):
    """The float64 stable reference."""
    a = np.asarray(a, np.float64)
    z = a - a.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def np_softmax(a, axis=-1):
    return np.exp(np_logsoftmax(a, axis))


ORDINARY = np.array([-0.9, -0.3, -1e-3, 0.0, 2e-8, 0.25, 1.0, 7.5])


# -- log(1 + x) -> log1p(x) -------------------------------------------------------------------

@pytest.mark.parametrize("form", [
    lambda x: ts.log(1 + x),
    lambda x: ts.log(x + 1),
    lambda x: ts.log(1.0 + x),
    lambda x: ts.log(np.float64(1) + x),
    lambda x: ts.log(x * 2 + 1 + ts.sin(x)),
    lambda x: ts.log(1 + x * 2 + ts.sin(x)),
    lambda x: ts.log((x + ts.sin(x)) + (1 + x)),
])
def test_log1p_fires(form):
    x = ts.dvector("x")
    f = check_rule([x], form(x), "log1p_from_log_add", [ORDINARY])
    assert "log1p" in scalar_ops(f) and "log" not in scalar_ops(f)


def test_log1p_is_exact_where_log_of_the_sum_rounds():
    x = ts.dscalar("x")
    f, g = compile_both([x], ts.log(1 + x))
    assert f(1e-20) == 1e-20
    assert g(1e-20) == 0.0  # the naive form: 1 + 1e-20 rounds to 1
    assert f(-1.0) == -np.inf and np.isnan(f(-2.0)) and f(np.inf) == np.inf


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_log1p_keeps_the_dtype(dtype, rng):
    x = ts.tensor(dtype, (None, 3))
    v = (rng.random((4, 3)) * 3 - 0.99).astype(dtype)
    tol = {"float16": 2e-3, "float32": 2e-6, "float64": 1e-12}[dtype]
    check_rule([x], ts.log(1 + x), "log1p_from_log_add", [v], rtol=tol, atol=tol)
    check_rule([x], ts.log(x + 1.0), "log1p_from_log_add", [v[:0]])  # zero-size


def test_log1p_of_an_integer_plus_a_float_one():
    i = ts.lvector("i")
    f = check_rule([i], ts.log(i + 1.0), "log1p_from_log_add", [np.array([0, 3, -1, 2 ** 40])])
    assert f(np.array([5])).dtype == np.float64


def test_log1p_widening_constant_casts_the_rest(rng):
    x = ts.fvector("x")
    v = rng.random(5).astype("float32")
    f = check_rule([x], ts.log(x + np.ones(1, "float64")), "log1p_from_log_add", [v], rtol=1e-7)
    assert f(v).dtype == np.float64


@pytest.mark.parametrize("form", [
    lambda x: ts.log(2 + x),
    lambda x: ts.log(x + x),
    lambda x: ts.log(x - 1),
    lambda x: ts.log(np.ones(3) + x),  # the constant would broadcast x (of unknown length)
    lambda x: ts.log(np.ones((2, 1)) + x),  # ... or give it a new dimension
])
def test_log1p_does_not_fire(form):
    x = ts.dvector("x")
    f, g = compile_both([x], form(x))
    assert "log1p_from_log_add" not in fired(f)
    v = np.array([0.5, 1.0, 2.0])
    same(f(v), g(v))


def test_log1p_does_not_fire_on_a_broadcasting_one_or_an_integer_sum():
    x = ts.tensor("float64", (1,))
    check_no_rule([x], ts.log(np.ones(3) + x), "log1p_from_log_add", [np.array([0.5])])
    i = ts.tensor("int8", (None,))
    # int8 arithmetic wraps at 127 + 1: the rewrite must not move where that happens
    check_no_rule([i], ts.log(i + np.int8(1)), "log1p_from_log_add",
                  [np.array([127, 1, 0], np.int8)])


def test_log1p_of_a_long_sum_is_left_alone():
    x = ts.dvector("x")
    s = x
    for k in range(12):
        s = s + x * k
    check_no_rule([x], ts.log(s + 1), "log1p_from_log_add", [ORDINARY[4:]])


# -- log(1 - x) ------------------------------------------------------------------------------

def test_log_one_minus_to_log1p():
    x = ts.dvector("x")
    f = check_rule([x], ts.log(1 - x), "log1p_from_log_one_minus", [ORDINARY])
    assert "log1p" in scalar_ops(f)
    assert f(np.array([1e-20]))[0] == -1e-20
    check_no_rule([x], ts.log(2 - x), "log1p_from_log_one_minus", [ORDINARY])
    check_no_rule([x], ts.log(x - 1), "log1p_from_log_one_minus", [ORDINARY + 2])


# -- exp(x) - 1 -> expm1(x) -------------------------------------------------------------------

@pytest.mark.parametrize("form", [
    lambda x: ts.exp(x) - 1,
    lambda x: ts.exp(x) - 1.0,
    lambda x: ts.exp(x) + (-1),
    lambda x: -1.0 + ts.exp(x),
])
def test_expm1_fires(form):
    x = ts.dvector("x")
    f = check_rule([x], form(x), "expm1_from_exp_minus_one", [ORDINARY])
    assert "expm1" in scalar_ops(f) and "exp" not in scalar_ops(f)
    assert f(np.array([1e-20]))[0] == 1e-20


@pytest.mark.parametrize("form", [
    lambda x: ts.exp(x) - 2,
    lambda x: 1 - ts.exp(x),
    lambda x: ts.exp(x) + 1,
    lambda x: ts.exp2(x) - 1,
    lambda x: ts.exp(x) - np.ones(3),  # would broadcast x
])
def test_expm1_does_not_fire(form):
    x = ts.dvector("x")
    f, g = compile_both([x], form(x))
    assert "expm1_from_exp_minus_one" not in fired(f)
    assert "expm1" not in scalar_ops(f)
    v = np.array([0.5, -1.0, 2.0])
    same(f(v), g(v))


def test_expm1_dtypes(rng):
    for dtype, tol in (("float32", 1e-6), ("float64", 1e-12)):
        x = ts.tensor(dtype, (None,))
        v = rng.normal(size=6).astype(dtype)
        f = check_rule([x], ts.exp(x) - 1, "expm1_from_exp_minus_one", [v], rtol=tol, atol=tol)
        assert f(v).dtype == dtype
    i = ts.tensor("int16", (None,))
    f = check_rule([i], ts.exp(i) - 1, "expm1_from_exp_minus_one",
                   [np.array([0, 1, -3], np.int16)], rtol=1e-6)
    assert f(np.array([2], np.int16)).dtype == np.float32


# -- log(1 - exp(x)) ----------------------------------------------------------------------------

def test_log1mexp_fires_and_is_exact_on_both_sides_of_log2():
    x = ts.dvector("x")
    v = np.array([-1e-20, -1e-10, -0.1, -0.69, -0.7, -1.0, -10.0, -50.0, -800.0])
    f, g = compile_both([x], ts.log(1 - ts.exp(x)))
    assert "log1mexp" in fired(f) and "expm1" in scalar_ops(f)
    got = f(v)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[0], np.log(1e-20), rtol=1e-15)  # naive: log(0) = -inf
    np.testing.assert_allclose(got[7], -np.exp(-50.0), rtol=1e-15)  # naive: log(1) = 0
    assert g(v)[0] == -np.inf and g(v)[7] == 0.0
    exact = [math.log1p(-math.exp(t)) if t < -math.log(2) else math.log(-math.expm1(t)) for t in v]
    np.testing.assert_allclose(got, exact, rtol=1e-15)
    np.testing.assert_allclose(got[2:5], g(v)[2:5], rtol=1e-13)


def test_log1mexp_edges_match_the_naive_form():
    x = ts.dvector("x")
    v = np.array([0.0, -0.0, 0.5, np.inf, -np.inf, np.nan])
    check_rule([x], ts.log(1 - ts.exp(x)), "log1mexp", [v])
    check_rule([x], ts.log(1 - ts.exp(x)), "log1mexp", [v[:0]])


def test_log1mexp_float32_and_no_fire():
    x = ts.fvector("x")
    f = check_rule([x], ts.log(1 - ts.exp(x)), "log1mexp",
                   [np.array([-0.1, -0.5, -3.0], np.float32)], rtol=1e-5)
    v = np.array([-1e-30, -20.0], np.float32)
    same(f(v), np.log(-np.expm1(v.astype(np.float64))).astype(np.float32), rtol=1e-6)
    y = ts.dvector("y")
    check_no_rule([y], ts.log(2 - ts.exp(y)), "log1mexp", [np.array([-1.0, 0.5])])
    check_no_rule([y], ts.log(1 - ts.exp2(y)), "log1mexp", [np.array([-1.0, -0.5])])


# -- sigmoid --------------------------------------------------------------------------------

def test_log_sigmoid():
    x = ts.dvector("x")
    f, g = compile_both([x], ts.log(ts.sigmoid(x)))
    assert "log_sigmoid_to_softplus" in fired(f)
    assert "softplus" in scalar_ops(f) and "sigmoid" not in scalar_ops(f)
    assert f(np.array([-800.0]))[0] == -800.0
    assert g(np.array([-800.0]))[0] == -np.inf
    v = np.array([-30.0, -2.0, 0.0, 0.5, 3.0, 40.0, 800.0, np.inf, -np.inf, np.nan])
    same(f(v[:6]), g(v[:6]), rtol=1e-13, atol=1e-15)
    got = f(v)
    assert got[6] == 0 and got[7] == 0 and got[8] == -np.inf and np.isnan(got[9])


def count_neg(f):
    return scalar_steps(f).count("neg")


def test_log_sigmoid_of_negation_has_no_double_negation():
    x = ts.dvector("x")
    f = check_rule([x], ts.log(ts.sigmoid(-x)), "log_sigmoid_to_softplus", [ORDINARY], rtol=1e-13)
    assert count_neg(f) == 1
    assert f(np.array([800.0]))[0] == -800.0
    # an integer -x wraps around (uint8: -1 is 255): it stays, and so does the value
    i = ts.tensor("uint8", (None,))
    f = check_rule([i], ts.log(ts.sigmoid(-i)), "log_sigmoid_to_softplus",
                   [np.array([0, 1, 3, 255], np.uint8)], rtol=2e-3, atol=2e-3)
    assert count_neg(f) == 3


def test_log_one_minus_sigmoid():
    x = ts.dvector("x")
    f, g = compile_both([x], ts.log(1 - ts.sigmoid(x)))
    assert "log_one_minus_sigmoid_to_softplus" in fired(f)
    assert "sigmoid" not in scalar_ops(f)
    assert f(np.array([800.0]))[0] == -800.0 and g(np.array([800.0]))[0] == -np.inf
    same(f(ORDINARY), g(ORDINARY), rtol=1e-12, atol=1e-15)
    check_no_rule([x], ts.log(2 - ts.sigmoid(x)), "log_one_minus_sigmoid_to_softplus", [ORDINARY])


@pytest.mark.parametrize("dtype", ["uint8", "int32", "float16", "float32"])
def test_log_sigmoid_dtypes(dtype):
    x = ts.tensor(dtype, (None,))
    v = np.array([0, 1, 5, 100], dtype)  # uint8: -x must not wrap around
    f, g = compile_both([x], ts.log(ts.sigmoid(x)))
    assert "log_sigmoid_to_softplus" in fired(f)
    tol = 2e-3 if g(v).dtype == np.float16 else 1e-6
    same(f(v), g(v), rtol=tol, atol=tol)


def test_log_one_plus_exp_becomes_softplus():
    x = ts.dvector("x")
    f, g = compile_both([x], ts.log(1 + ts.exp(x)))
    assert "softplus_from_log1p_exp" in fired(f) and "softplus" in scalar_ops(f)
    assert f(np.array([800.0]))[0] == 800.0 and g(np.array([800.0]))[0] == np.inf
    same(f(ORDINARY * 10), g(ORDINARY * 10), rtol=1e-12)
    f = check_rule([x], ts.log1p(ts.exp(x)), "softplus_from_log1p_exp", [ORDINARY])
    check_no_rule([x], ts.log1p(ts.exp2(x)), "softplus_from_log1p_exp", [ORDINARY])


# -- log(softmax(x)) -> logsoftmax(x) ------------------------------------------------------------

@pytest.mark.parametrize("axis", [-1, 0, None, (0, 2)])
def test_log_softmax_is_logsoftmax_and_exact_at_1000(axis, rng):
    x = ts.tensor("float64", (None, None, None))
    f, g = compile_both([x], ts.log(ts.softmax(x, axis=axis)))
    assert "log_softmax_to_logsoftmax" in fired(f)
    assert LogSoftmax in op_types(f) and Softmax not in op_types(f)
    v = rng.choice([-1000.0, 1000.0, 0.0, 3.5], size=(2, 3, 4))
    got = f(v)
    assert np.all(np.isfinite(got))
    np_axis = axis if axis is not None else (0, 1, 2)
    same(got, np_logsoftmax(v, np_axis), rtol=1e-15, atol=1e-12)
    assert np.isneginf(g(v)).any()  # what it was without the rewrite
    w = rng.normal(size=(2, 3, 4))
    same(f(w), g(w), rtol=1e-12, atol=1e-14)


def test_log_softmax_float32_and_zero_size(rng):
    x = ts.fmatrix("x")
    f, g = compile_both([x], ts.log(ts.softmax(x)))
    v = np.array([[1000, -1000, 0], [-1000, -1000, -999]], np.float32)
    same(f(v), np_logsoftmax(v).astype(np.float32), rtol=1e-6)
    w = rng.normal(size=(3, 5)).astype(np.float32)
    same(f(w), g(w), rtol=1e-5, atol=1e-6)
    same(f(w[:0]), g(w[:0]))


def test_log_softmax_not_for_other_ops():
    x = ts.dmatrix("x")
    v = np.array([[0.5, -1.0], [2.0, 3.0]])
    for out in (ts.log(ts.softmax(x) + 1e-8), ts.log(ts.softmax(x) * 2)):
        f = check_no_rule([x], out, "log_softmax_to_logsoftmax", [v])
        assert LogSoftmax not in op_types(f)


# -- log(sum(exp(x))) -> logsumexp(x) ----------------------------------------------------------

@pytest.mark.parametrize("axis,keepdims", [(None, False), (1, False), (-1, True), ((0, 2), True),
                                           (0, False)])
def test_logsumexp(axis, keepdims, rng):
    x = ts.tensor("float64", (None, None, None))
    out = ts.log(ts.sum(ts.exp(x), axis=axis, keepdims=keepdims))
    f, g = compile_both([x], out)
    assert "log_sum_exp_to_logsumexp" in fired(f)
    (node,) = [n for n in f.graph.apply_nodes() if isinstance(n.op, LogSumExp)]
    expect_axis = tuple(range(3)) if axis is None else tuple(sorted(np.atleast_1d(axis) % 3))
    assert node.op.axis == expect_axis and node.op.keepdims == keepdims
    w = rng.normal(size=(2, 3, 4))
    same(f(w), g(w), rtol=1e-13)
    big = w + 1000
    assert np.all(np.isfinite(f(big))) and not np.all(np.isfinite(g(big)))
    same(f(big), g(w) + 1000, rtol=1e-13)
    same(f(w[:, :0]), g(w[:, :0]))  # an empty sum: log(0) = -inf in both


def test_logsumexp_edges_and_dtypes():
    x = ts.dvector("x")
    for v in ([-np.inf, -np.inf], [np.inf, 1.0], [np.nan, 1.0], [-1000.0, -1000.0]):
        f, g = compile_both([x], ts.log(ts.sum(ts.exp(x))))
        got = f(np.array(v))
        if v[0] == -1000.0:
            np.testing.assert_allclose(got, -1000 + np.log(2), rtol=1e-15)
        else:
            same(got, g(np.array(v)))
    i = ts.tensor("int16", (None,))
    f = check_rule([i], ts.log(ts.sum(ts.exp(i))), "log_sum_exp_to_logsumexp",
                   [np.array([1, 2, 3], np.int16)], rtol=1e-6)
    assert f(np.array([1], np.int16)).dtype == np.float32


@pytest.mark.parametrize("form", [
    lambda x: ts.log(ts.sum(ts.exp2(x))),
    lambda x: ts.log(ts.prod(ts.exp(x))),
    lambda x: ts.log(ts.max(ts.exp(x))),
    lambda x: ts.log(ts.sum(ts.exp(x) * 2)),
    lambda x: ts.log(ts.sum(ts.exp(x), dtype="int64")),
])
def test_logsumexp_does_not_fire(form):
    x = ts.dvector("x")
    f = check_no_rule([x], form(x), "log_sum_exp_to_logsumexp", [np.array([0.5, 1.0, 2.0])])
    assert LogSumExp not in op_types(f)


# -- the gradient of log(softmax(x)) -----------------------------------------------------------

def test_softmax_grad_op_against_numpy(rng):
    for dtype, tol in (("float64", 1e-14), ("float32", 1e-6), ("float16", 2e-3)):
        dy, sm = ts.tensor(dtype, (None, None)), ts.tensor(dtype, (None, None))
        for axis in ((1,), (0,), (0, 1)):
            out = SoftmaxGrad(axis)(dy, sm)
            f = ts.function([dy, sm], out, mode="NONE")
            a = rng.normal(size=(3, 4)).astype(dtype)
            s = np_softmax(rng.normal(size=(3, 4)), axis).astype(dtype)
            ref = (a.astype(np.float64) - (a * s.astype(np.float64)).sum(axis, keepdims=True)) * s
            same(f(a, s), ref.astype(dtype), rtol=tol, atol=tol)
            same(f(a[:0], s[:0]), np.zeros((0, 4), dtype))
    # broadcasting, shape inference, errors
    dy, sm = ts.tensor("float64", (None, 1)), ts.dmatrix("sm")
    out = SoftmaxGrad((1,))(dy, sm)
    (shp,) = out.owner.op.infer_shape(out.owner, [(shape_i(dy, 0), shape_i(dy, 1)),
                                               (shape_i(sm, 0), shape_i(sm, 1))])
    fs = ts.function([dy, sm], list(shp))
    assert [int(v) for v in fs(np.ones((2, 1)), np.ones((2, 5)))] == [2, 5]
    with pytest.raises(TypeError, match="same float dtype"):
        SoftmaxGrad((1,))(ts.fmatrix(), ts.dmatrix())
    with pytest.raises(ShapeError, match="number of dimensions"):
        SoftmaxGrad((0,))(ts.dvector(), ts.dmatrix())


def test_softmax_grad_second_order(rng):
    def hess_vec(x):
        g = ts.grad(ts.sum(ts.softmax(x) * np.array([1.0, -2.0, 0.5, 3.0])), x)
        return ts.sum(g * g)

    ts.verify_grad(hess_vec, [rng.normal(size=(3, 4))], rng=rng)
    ts.verify_grad(lambda dy, x: SoftmaxGrad((1,))(dy, ts.softmax(x)),
                   [rng.normal(size=(3, 1)), rng.normal(size=(3, 4))], rng=rng)


@pytest.mark.parametrize("axis", [-1, 0, (0, 1)])
def test_gradient_of_log_softmax_is_finite_at_800(axis, rng):
    x = ts.dmatrix("x")
    w = rng.normal(size=(3, 4))
    gx = ts.grad(ts.sum(ts.log(ts.softmax(x, axis=axis)) * w), x)
    f, g = compile_both([x], gx)
    assert "softmax_grad_of_log" in fired(f)
    assert SoftmaxGrad not in op_types(f)
    v = rng.choice([-800.0, 800.0], size=(3, 4))
    ax = axis if axis != (0, 1) else None
    expected = w - w.sum(axis=ax, keepdims=True) * np_softmax(v, ax)
    got = f(v)
    assert np.all(np.isfinite(got)) and not np.all(np.isfinite(g(v)))
    same(got, expected, rtol=1e-12, atol=1e-12)
    u = rng.normal(size=(3, 4))
    same(f(u), g(u), rtol=1e-10, atol=1e-12)


def test_softmax_grad_rule_does_not_fire_elsewhere(rng):
    x, c = ts.dmatrix("x"), ts.dmatrix("c")
    v, cv = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    # the gradient of softmax itself: no division by it
    f = check_no_rule([x, c], ts.grad(ts.sum(ts.softmax(x) * c), x), "softmax_grad_of_log", [v, cv])
    assert SoftmaxGrad in op_types(f)
    # a division by a softmax over a different axis than the gradient's
    sm0, sm1 = ts.softmax(x, axis=0), ts.softmax(x, axis=1)
    check_no_rule([x, c], SoftmaxGrad((1,))(c / sm0, sm0), "softmax_grad_of_log", [v, cv])
    check_no_rule([x, c], SoftmaxGrad((1,))(c / sm0, sm1), "softmax_grad_of_log", [v, cv])
    check_no_rule([x, c], SoftmaxGrad((1,))(c / sm1 + 1, sm1), "softmax_grad_of_log", [v, cv])


def test_softmax_grad_rule_with_a_broadcast_numerator(rng):
    """gz of size 1 along the softmax axis: each row's sum counts it once per class."""
    x = ts.dmatrix("x")
    v = rng.normal(size=(2, 3))
    for shape, cv in (((None, 1), rng.normal(size=(2, 1))), ((1, None), rng.normal(size=(1, 3))),
                      ((None, None), rng.normal(size=(2, 1))), ((), np.array(1.5))):
        c = ts.tensor("float64", shape)
        sm = ts.softmax(x)
        check_rule([x, c], SoftmaxGrad((1,))(c / sm, sm), "softmax_grad_of_log", [v, cv],
                   rtol=1e-12, atol=1e-14)


def test_softmax_grad_rule_accepts_multiplication_by_the_reciprocal(rng):
    x, c = ts.dmatrix("x"), ts.dmatrix("c")
    sm = ts.softmax(x)
    check_rule([x, c], SoftmaxGrad((1,))(c * ts.reciprocal(sm), sm), "softmax_grad_of_log",
               [rng.normal(size=(2, 3)), rng.normal(size=(2, 3))], rtol=1e-12, atol=1e-14)


# -- softmax cross-entropy with integer labels ----------------------------------------------------

def np_cross_entropy(a, y):
    return -np_logsoftmax(a)[np.arange(len(y)), y]


def np_cross_entropy_grad(a, y):
    """(softmax(a) - onehot(y)) / n, computed stably."""
    n = len(y)
    d = np_softmax(a)
    d[np.arange(n), y] -= 1
    return d / n


EXTREME = np.array([[800.0, -800.0, 0.0, 5.0], [-800.0, 800.0, 3.0, -800.0],
                    [0.0, 0.0, 0.0, 0.0]])
LABELS = np.array([0, 2, 3])


@pytest.mark.parametrize("form", [
    lambda x, y: -ts.log(ts.softmax(x))[ts.arange(y.shape[0]), y],
    lambda x, y: -ts.log(ts.softmax(x))[ts.arange(x.shape[0]), y],
    lambda x, y: -ts.logsoftmax(x)[ts.arange(y.shape[0]), y],
    lambda x, y: -ts.log_softmax(x, axis=1)[ts.arange(3), y],
    lambda x, y: -ts.logsoftmax(x)[np.arange(3), y],
])
def test_cross_entropy_forward(form):
    x, y = ts.dmatrix("x"), ts.lvector("y")
    f, g = compile_both([x, y], form(x, y))
    assert SoftmaxCrossEntropy in op_types(f)
    assert LogSoftmax not in op_types(f) and Softmax not in op_types(f)
    assert "softmax_cross_entropy_from_indexing" in fired(f)
    same(f(EXTREME, LABELS), np_cross_entropy(EXTREME, LABELS), rtol=1e-15)
    a = np.random.default_rng(3).normal(size=(3, 4))
    same(f(a, LABELS), g(a, LABELS), rtol=1e-13)


@pytest.mark.parametrize("reduce,np_reduce", [(lambda v: v.mean(), np.mean),
                                               (lambda v: v.sum(), np.sum),
                                               (lambda v: ts.mean(v), np.mean)])
def test_cross_entropy_with_a_reduction_on_top(reduce, np_reduce):
    x, y = ts.dmatrix("x"), ts.lvector("y")
    n = y.shape[0]
    for cost in (-reduce(ts.log(ts.softmax(x))[ts.arange(n), y]),
                 reduce(-ts.log(ts.softmax(x))[ts.arange(n), y])):
        f = ts.function([x, y], cost)
        assert SoftmaxCrossEntropy in op_types(f) and LogSoftmax not in op_types(f)
        same(f(EXTREME, LABELS), np_reduce(np_cross_entropy(EXTREME, LABELS)), rtol=1e-15)


def test_cross_entropy_over_axis_0_and_float32():
    x, y = ts.dmatrix("x"), ts.lvector("y")
    out = -ts.logsoftmax(x, axis=0)[y, ts.arange(x.shape[1])]
    f, g = compile_both([x, y], out)
    (node,) = [n for n in f.graph.apply_nodes() if isinstance(n.op, SoftmaxCrossEntropy)]
    assert node.op.axis == 0
    same(f(EXTREME.T, LABELS), np_cross_entropy(EXTREME, LABELS), rtol=1e-15)
    xf = ts.fmatrix("xf")
    f32 = ts.function([xf, y], -ts.log(ts.softmax(xf))[ts.arange(y.shape[0]), y])
    assert SoftmaxCrossEntropy in op_types(f32)
    same(f32(EXTREME.astype("float32"), LABELS),
         np_cross_entropy(EXTREME, LABELS).astype("float32"), rtol=1e-6)


def test_cross_entropy_keeps_the_indexing_semantics():
    """Fewer labels than rows picks the first rows; one label broadcasts to every row."""
    x, y = ts.dmatrix("x"), ts.lvector("y")
    a = np.random.default_rng(4).normal(size=(4, 3))
    for form, labels in ((lambda: -ts.logsoftmax(x)[ts.arange(y.shape[0]), y], np.array([2, 0])),
                         (lambda: -ts.logsoftmax(x)[ts.arange(x.shape[0]), y], np.array([1])),
                         (lambda: -ts.logsoftmax(x)[ts.arange(2), y], np.array([1, 1]))):
        f, g = compile_both([x, y], form())
        assert SoftmaxCrossEntropy in op_types(f)
        same(f(a, labels), g(a, labels), rtol=1e-13)


@pytest.mark.parametrize("form", [
    lambda x, y: -ts.logsoftmax(x, axis=0)[ts.arange(y.shape[0]), y],  # the wrong axis
    lambda x, y: -ts.logsoftmax(x)[ts.arange(1, 3), y[:2]],  # rows not counted from 0
    lambda x, y: -ts.logsoftmax(x)[np.array([0, 2, 1]), y],  # not an arange
    lambda x, y: -ts.logsoftmax(x)[ts.arange(3)[::-1], y],
    lambda x, y: -ts.logsoftmax(x)[y, ts.arange(3)],  # labels on the softmax's axis
    lambda x, y: -ts.logsoftmax(x)[ts.arange(3), y.astype("float64")[:, None].astype("int64")],
    lambda x, y: -ts.log(ts.softmax(x) + 1e-30)[ts.arange(3), y],
])
def test_cross_entropy_does_not_fire(form):
    x, y = ts.dmatrix("x"), ts.lvector("y")
    a = np.random.default_rng(5).normal(size=(3, 4))
    f, g = compile_both([x, y], form(x, y))
    assert SoftmaxCrossEntropy not in op_types(f)
    same(f(a, LABELS - 1), g(a, LABELS - 1), rtol=1e-13)


def test_cross_entropy_not_on_3d_logsoftmax():
    x, y = ts.tensor("float64", (None, None, None)), ts.lvector("y")
    a = np.random.default_rng(6).normal(size=(3, 4, 2))
    check_no_rule([x, y], -ts.logsoftmax(x)[ts.arange(3), y], "softmax_cross_entropy_from_indexing",
                  [a, np.array([0, 1, 3])])


def test_cross_entropy_without_a_minus_sign():
    x, y = ts.dmatrix("x"), ts.lvector("y")
    out = ts.log(ts.softmax(x))[ts.arange(y.shape[0]), y]
    ce = np_cross_entropy(EXTREME, LABELS)
    # other clients than a minus: -ce, and -(-ce) cancels
    f = ts.function([x, y], [out * 2, -out])
    assert "neg_cross_entropy_from_indexing" in fired(f)
    assert "double_neg_cross_entropy" in fired(f)
    assert LogSoftmax not in op_types(f) and count_neg(f) == 1
    r, s = f(EXTREME, LABELS)
    same(r, -2 * ce, rtol=1e-15)
    same(s, ce, rtol=1e-15)
    # an output of the function itself, and with a minus as its only client
    for outs, n_neg in (([out, -out], 1), ([out, -out.sum()], 2)):
        f = ts.function([x, y], outs)
        assert "neg_cross_entropy_from_indexing" in fired(f)
        assert LogSoftmax not in op_types(f) and count_neg(f) == n_neg
        r, s = f(EXTREME, LABELS)
        same(r, -ce, rtol=1e-15)
        same(s, ce if s.ndim else ce.sum(), rtol=1e-15)


# -- the gradient of a cross-entropy written the user's way -------------------------------------

@pytest.mark.parametrize("dtype,tol", [("float64", 1e-15), ("float32", 1e-6)])
def test_cross_entropy_gradient_the_users_way_is_finite_and_exact(dtype, tol):
    x, y = ts.tensor(dtype, (None, None), name="x"), ts.lvector("y")
    n = y.shape[0]
    cost = -ts.log(ts.softmax(x))[ts.arange(n), y].mean()
    gx = ts.grad(cost, x)
    f, g = compile_both([x, y], [cost, gx])
    a = EXTREME.astype(dtype)
    c, d = f(a, LABELS)
    assert np.isfinite(c) and np.all(np.isfinite(d))
    same(c, np.asarray(np_cross_entropy(EXTREME, LABELS).mean(), dtype), rtol=tol)
    same(d, np_cross_entropy_grad(EXTREME, LABELS).astype(dtype), rtol=tol, atol=tol)
    c0, d0 = g(a, LABELS)  # without the rewrites: inf and nan
    assert not np.isfinite(c0) and np.isnan(d0).any()
    assert SoftmaxGrad not in op_types(f)
    # the gradient reads the sizes of log(softmax(x)): from x, so no logsoftmax is computed
    assert {"shape_of_logsoftmax", "shape_of_op"} & set(fired(f)) and LogSoftmax not in op_types(f)
    r = np.random.default_rng(8).normal(size=(3, 4)).astype(dtype)
    for u, v in zip(f(r, LABELS), g(r, LABELS)):
        same(u, v, rtol=10 * tol, atol=tol)


def test_cross_entropy_gradient_logsoftmax_version_and_repeated_rows():
    x, y = ts.dmatrix("x"), ts.lvector("y")
    cost = -ts.logsoftmax(x)[ts.arange(y.shape[0]), y].sum()
    f = ts.function([x, y], ts.grad(cost, x))
    same(f(EXTREME, LABELS), np_cross_entropy_grad(EXTREME, LABELS) * 3, rtol=1e-15, atol=1e-15)
    # an index that visits a row twice accumulates both contributions there
    cost2 = -ts.log(ts.softmax(x))[np.array([0, 0, 2]), y].sum()
    f2, g2 = compile_both([x, y], ts.grad(cost2, x))
    a = np.random.default_rng(9).normal(size=(3, 4))
    same(f2(a, LABELS), g2(a, LABELS), rtol=1e-12, atol=1e-15)
    assert np.all(np.isfinite(f2(EXTREME, LABELS)))


@pytest.mark.parametrize("form,axis", [
    (lambda x, y: -ts.log(ts.softmax(x))[ts.arange(y.shape[0]), y].mean(), 1),  # rows unproven
    (lambda x, y: -ts.log(ts.softmax(x))[ts.arange(x.shape[0]), y].sum(), 1),
    (lambda x, y: -ts.logsoftmax(x)[ts.arange(x.shape[0]), y].mean(), 1),
    (lambda x, y: -(ts.logsoftmax(x)[ts.arange(x.shape[0]), y] * ts.arange(3)).sum(), 1),
    (lambda x, y: -ts.logsoftmax(x, axis=0)[y, ts.arange(x.shape[1])].sum(), 0),
])
def test_cross_entropy_gradient_is_one_op(form, axis):
    """The gradient's one-hot scatter, its row sums and the softmax it multiplies become one
    SoftmaxCrossEntropyGrad: no Softmax, no AdvancedIncSubtensor left, values as mode NONE's."""
    x, y = ts.dmatrix("x"), ts.lvector("y")
    xs = x if axis == 1 else x.T
    f, g = compile_both([x, y], ts.grad(form(xs, y) if axis == 1 else form(x, y), x))
    assert "softmax_cross_entropy_grad_from_scatter" in fired(f)
    types = op_types(f)
    assert SoftmaxCrossEntropyGrad in types and Softmax not in types
    assert not {AdvancedIncSubtensor, LogSoftmax} & types
    a = np.random.default_rng(10).normal(size=(3, 4))
    a = a if axis == 1 else a.T.copy()
    same(f(a, LABELS), g(a, LABELS), rtol=1e-13, atol=1e-16)
    assert np.all(np.isfinite(f(EXTREME if axis == 1 else EXTREME.T.copy(), LABELS)))


def test_cross_entropy_gradient_with_fewer_labels_than_rows():
    """arange(len(y)) indexes the first rows only: the others get a zero gradient (the Op
    labels the first len(y) rows, `prefix`), with no cut of x nor zeros to set it in."""
    x, y = ts.dmatrix("x"), ts.lvector("y")
    cost = -ts.log(ts.softmax(x))[ts.arange(y.shape[0]), y].mean()
    f, g = compile_both([x, y], ts.grad(cost, x))
    types = op_types(f)
    assert SoftmaxCrossEntropyGrad in types and not {Subtensor, IncSubtensor, Alloc} & types
    a = np.random.default_rng(11).normal(size=(5, 4))
    got = f(a, LABELS)
    same(got, g(a, LABELS), rtol=1e-13, atol=1e-16)
    assert np.all(got[3:] == 0)
    for h in (f, g):  # more labels than rows: the indexing's error, naming the user's line
        with pytest.raises(Exception, match=r"index 2 is out of bounds for axis 0 with size 2"
                                            r"(.|\n)*line"):
            h(a[:2], LABELS)


def test_cross_entropy_gradient_rule_does_not_fire_elsewhere():
    x, y = ts.dmatrix("x"), ts.lvector("y")
    a = np.random.default_rng(12).normal(size=(3, 4))
    for cost in (-ts.log(ts.softmax(x))[np.array([0, 0, 2]), y].sum(),  # rows not an arange
                 -ts.log(ts.softmax(x) + 1e-30)[ts.arange(3), y].sum(),
                 (ts.softmax(x)[ts.arange(3), y] ** 2).sum()):
        f, g = compile_both([x, y], ts.grad(cost, x))
        assert "softmax_cross_entropy_grad_from_scatter" not in fired(f)
        same(f(a, LABELS), g(a, LABELS), rtol=1e-12, atol=1e-15)


# -- the logistic-regression model of DESIGN.md ------------------------------------------------

def _logreg(mode, W0, b0):
    W = ts.shared(W0.copy(), name="W")
    b = ts.shared(b0.copy(), name="b")
    x, y = ts.fmatrix("x"), ts.lvector("y")
    p = ts.softmax(x @ W + b)
    cost = -ts.log(p)[ts.arange(y.shape[0]), y].mean()
    gW, gb = ts.grad(cost, [W, b])
    f = ts.function([x, y], [cost, gW, gb], updates=[(W, W - 0.13 * gW), (b, b - 0.13 * gb)],
                    mode=mode)
    return f, W, b


def test_logistic_regression_same_numbers(rng):
    W0 = (rng.normal(size=(20, 5)) * 0.1).astype("float32")
    b0 = np.zeros(5, "float32")
    xb = rng.random((16, 20), dtype=np.float32)
    yb = rng.integers(0, 5, 16)
    f, W, b = _logreg("FAST_RUN", W0, b0)
    g, W2, b2 = _logreg("NONE", W0, b0)
    names = fired(f)
    for rule in ("log_softmax_to_logsoftmax", "neg_cross_entropy_from_indexing",
                 "softmax_grad_of_log"):
        assert rule in names
    assert SoftmaxCrossEntropy in op_types(f) and SoftmaxGrad not in op_types(f)
    # the gradient's numerator is known to have the softmax's shape: nothing broadcasts it
    assert not any(isinstance(n.op, BroadcastTo) and n.outputs[0].ndim == 2
                   for n in f.graph.apply_nodes())
    for _ in range(3):
        for u, v in zip(f(xb, yb), g(xb, yb)):
            same(u, v, rtol=2e-5, atol=1e-7)
    same(W.get_value(), W2.get_value(), rtol=2e-5, atol=1e-7)
    same(b.get_value(), b2.get_value(), rtol=2e-5, atol=1e-7)


def test_logistic_regression_with_saturated_logits(rng):
    W0 = np.zeros((4, 3), "float32")
    b0 = np.array([400.0, -400.0, 0.0], "float32")
    xb = np.eye(4, dtype=np.float32)
    yb = np.array([1, 2, 0, 1])
    f, W, b = _logreg("FAST_RUN", W0, b0)
    cost, gW, gb = f(xb, yb)
    logits = (xb @ W0 + b0).astype(np.float64)
    same(cost, np.float32(np_cross_entropy(logits, yb).mean()), rtol=1e-6)
    dz = np_cross_entropy_grad(logits, yb)
    same(gb, dz.sum(0).astype("float32"), rtol=1e-6, atol=1e-7)
    same(gW, (xb.T @ dz).astype("float32"), rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(W.get_value())) and np.all(np.isfinite(b.get_value()))
    g, _, _ = _logreg("NONE", W0, b0)
    assert not np.all(np.isfinite(g(xb, yb)[1]))


# -- modes --------------------------------------------------------------------------------------

def test_modes_without_stabilize_keep_the_naive_graph():
    x = ts.dvector("x")
    out = ts.log(1 + x)
    for mode in ("NONE", "FAST_COMPILE", ts.Mode(exclude=["stabilize"])):
        f = ts.function([x], out, mode=mode)
        assert "log1p" not in scalar_ops(f)
        assert f(np.array([1e-20]))[0] == 0.0
    f = ts.function([x], out, mode=ts.Mode(None, include=["stabilize"]))
    assert "log1p" in scalar_ops(f)


# -- property: every rule's output equals the naive form on ordinary inputs -----------------

FORMS = [
    lambda x: ts.log(1 + x * x),
    lambda x: ts.log(x * x + 0.5 + 1),
    lambda x: ts.exp(x) - 1,
    lambda x: ts.log(1 - ts.exp(-x * x - 0.01)),
    lambda x: ts.log(ts.sigmoid(x)) + ts.log(1 - ts.sigmoid(x)),
    lambda x: ts.log(1 + ts.exp(x)),
    lambda x: ts.log(ts.softmax(x)),
    lambda x: ts.log(ts.sum(ts.exp(x), keepdims=True)) + x,
    lambda x: ts.grad(ts.sum(ts.log(ts.softmax(x)) * ts.cos(x)), x),
]


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=6),
       st.integers(0, len(FORMS) - 1))
def test_rewritten_equals_naive(values, k):
    x = ts.dvector("x")
    f, g = compile_both([x], FORMS[k](x))
    v = np.array(values)
    same(f(v), g(v), rtol=1e-9, atol=1e-12)
