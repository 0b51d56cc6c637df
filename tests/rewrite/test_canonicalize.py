"""The canonical-algebra rewrites: each rule fires on its pattern (`rewrite_log`, and the Ops
left in the graph), computes what mode NONE computes (dtype, shape and values, integer
wrapping, booleans, mixed float widths and complex included), and stays away where the
identity would change the result: a constant that broadcasts x, integer x / x, integer
x ** -1, a lossy cast, an inner node of a chain that something else also reads."""

from collections import Counter

import numpy as np
import pytest

import tracesym as ts
from tracesym.ops.basic import Alloc
from tracesym.ops.blas import MatMul
from tracesym.ops.elemwise import Elemwise
from tracesym.ops.shape import BroadcastTo, DimShuffle, Reshape, SumToShape

#: the graph verifier re-infers every node's type after each rewrite phase
pytestmark = pytest.mark.usefixtures("checked_rewrites")

# -- helpers ----------------------------------------------------------------------------------

#: every rewrite up to the ones that turn Ops into others (Gemm, fused loops, in-place), so
#: that the graph shows what the canonical rules left
CANON = ts.Mode("fast_run", exclude=["specialize", "fusion", "inplace"])


def scalar_ops(f):
    """How many Elemwise nodes of each scalar op `f` runs."""
    return Counter(n.op.scalar_op.name for n in f.graph.apply_nodes() if isinstance(n.op, Elemwise))


def op_count(f, cls):
    return sum(isinstance(n.op, cls) for n in f.graph.apply_nodes())


def constants_of(f, name):
    """The constant operands of `f`'s Elemwise nodes of scalar op `name`."""
    return [v.data for n in f.graph.apply_nodes() if isinstance(n.op, Elemwise)
            and n.op.scalar_op.name == name for v in n.inputs if isinstance(v, ts.Constant)]


def fires(fired, against_none, rule, inputs, out, *values, **tol):
    """`rule` fires, and the result equals mode NONE's; returns the function (mode CANON)."""
    against_none(inputs, out, *values, **tol)
    f = against_none(inputs, out, *values, mode=CANON, **tol)
    assert rule in fired(f), fired(f)
    return f


def stays(fired, against_none, rule, inputs, out, *values, **tol):
    against_none(inputs, out, *values, **tol)
    f = against_none(inputs, out, *values, mode=CANON, **tol)
    assert rule not in fired(f), fired(f)
    return f


V = np.array([-2.5, -1.0, 0.0, 0.5, 3.0])
M = np.arange(6.0).reshape(2, 3) - 2.5
I8 = np.array([-128, -1, 0, 1, 100, 127], "int8")

# -- sums and products as one left-deep chain ----------------------------------------------------


def test_chain_gathers_and_folds_the_constants(fired, against_none):
    x = ts.dvector("x")
    f = fires(fired, against_none, "canonical_chain", [x], 2 * x * 3, V)
    assert scalar_ops(f)["mul"] == 1 and constants_of(f, "mul") == [6.0]
    y = ts.dvector("y")
    f = fires(fired, against_none, "canonical_chain", [x, y], x + 1 + y + 2, V, V[::-1])
    assert scalar_ops(f)["add"] == 2 and constants_of(f, "add") == [3.0]


@pytest.mark.parametrize("form", [lambda x, y, z: 5.0 + x, lambda x, y, z: x + (y + z),
                                  lambda x, y, z: (x * 2) * (y * (z * 3))])
def test_chain_reorders_into_a_left_deep_tree(form, fired, against_none):
    x, y, z = ts.dvector("x"), ts.dvector("y"), ts.dvector("z")
    f = fires(fired, against_none, "canonical_chain", [x, y, z], form(x, y, z), V, V + 1, V * 2)
    for n in f.graph.apply_nodes():
        if isinstance(n.op, Elemwise) and n.op.scalar_op.name in ("add", "mul"):
            right = n.inputs[1]
            assert right.owner is None, "a left-deep chain has only leaves on the right"


def test_integer_chain_wraps_as_before(fired, against_none):
    i = ts.tensor("int8", (None,))
    f = fires(fired, against_none, "canonical_chain", [i], 100 + i + 100, I8)
    assert f(I8).dtype == np.int8
    fires(fired, against_none, "canonical_chain", [i], 7 * i * 9 * 11, I8)


def test_chain_casts_a_narrow_first_term_before_it_wraps(fired, against_none):
    """(a_int8 + int64) + b_int16: every partial sum is int64, as in the original."""
    a, b = ts.tensor("int8", (None,)), ts.tensor("int16", (None,))
    out = (a + np.int64(5)) + b
    f = fires(fired, against_none, "canonical_chain", [a, b], out, np.array([100, -100], "int8"),
              np.array([32760, -32760], "int16"))
    assert "cast_int64" in scalar_ops(f)


def test_float32_chain_with_a_float64_constant(fired, against_none):
    x = ts.fvector("x")
    f = fires(fired, against_none, "canonical_chain", [x], x * np.float64(0.1) * 3,
              V.astype("float32"))
    assert f(V.astype("float32")).dtype == np.float64


def test_complex_chain(fired, against_none):
    z = ts.tensor("complex128", (None,))
    fires(fired, against_none, "canonical_chain", [z], (1 + 2j) * z * 3, V + 1j * V[::-1])


def test_boolean_sums_are_left_alone(fired, against_none):
    """bool + bool is `or` in numpy: not a ring, nothing to gather."""
    a, b = ts.tensor("bool", (None,)), ts.tensor("bool", (None,))
    t, fl = np.array([True, False, True, False]), np.array([True, True, False, False])
    stays(fired, against_none, "canonical_chain", [a, b], (True + a) + b, t, fl)
    stays(fired, against_none, "canonical_chain", [a, b], (a * b) * True, t, fl)


def test_chain_keeps_a_node_something_else_reads(fired, against_none):
    """t = x + 1 is returned too: rebuilding (t + y) as (x + y) + 1 would compute x + 1 twice."""
    x, y = ts.dvector("x"), ts.dvector("y")
    t = x + 1
    f = stays(fired, against_none, "canonical_chain", [x, y], [t + y, t], V, V)
    assert scalar_ops(f)["add"] == 2
    u = x * 2
    f = against_none([x, y], [(u * y) * 3, ts.exp(u)], V, V, mode=CANON)
    assert scalar_ops(f)["mul"] == 3  # x * 2 once, then (u * y) * 3


def test_chain_with_broadcasting_constants(fired, against_none):
    x = ts.dmatrix("x")
    out = (np.ones((2, 1)) + x) + np.arange(3.0)
    f = fires(fired, against_none, "canonical_chain", [x], out, M)
    assert scalar_ops(f)["add"] == 1
    f = against_none([x], out, M[:, :1], mode=CANON)  # the constants broadcast a column
    assert f(M[:, :1]).shape == (2, 3)


# -- identities ----------------------------------------------------------------------------------

@pytest.mark.parametrize("form, rule", [
    (lambda x: x + 0, "add_zero"), (lambda x: 0 + x, "add_zero"), (lambda x: x - 0, "add_zero"),
    (lambda x: x + np.zeros(1), "add_zero"), (lambda x: x * 1, "mul_one"),
    (lambda x: 1.0 * x, "mul_one"), (lambda x: x / 1, "mul_one"),
    (lambda x: x * np.ones((1, 1)), "mul_one"),
])
def test_identity_is_removed(form, rule, fired, against_none):
    x = ts.dmatrix("x")
    f = fires(fired, against_none, rule, [x], form(x), M)
    assert not scalar_ops(f), scalar_ops(f)
    assert f.graph.outputs[0] is f.graph.inputs[0]


@pytest.mark.parametrize("form, dtype", [
    (lambda i: i + 0.0, "float64"), (lambda i: i * np.float32(1), "float32"),
    (lambda i: i / 1, "float64"), (lambda i: i - np.int64(0), "int64"),
])
def test_identity_that_widens_casts(form, dtype, fired, against_none):
    i = ts.tensor("int8", (None,))
    f = against_none([i], form(i), I8, mode=CANON)
    assert f(I8).dtype == dtype
    assert scalar_ops(f) == Counter({f"cast_{dtype}": 1}), scalar_ops(f)


def test_identity_on_booleans(fired, against_none):
    b = ts.tensor("bool", (None,))
    v = np.array([True, False])
    f = fires(fired, against_none, "add_zero", [b], b + False, v)
    assert not scalar_ops(f) and f(v).dtype == bool
    f = fires(fired, against_none, "mul_one", [b], b * np.int64(1), v)
    assert scalar_ops(f) == Counter({"cast_int64": 1})


@pytest.mark.parametrize("form", [
    lambda x: x + np.zeros(3),  # x may have length 1
    lambda x: np.zeros((2, 1)) + x,  # a new leading dim
    lambda x: x * np.ones(3), lambda x: x / np.ones((2, 1)), lambda x: x - np.zeros((1, 3)),
])
def test_identity_stays_where_the_constant_broadcasts_x(form, fired, against_none):
    x = ts.dvector("x")
    for v in (np.array([1.5]), np.array([1.0, -2.0, 3.0])):
        f = against_none([x], form(x), v, mode=CANON)
        assert not {"add_zero", "mul_one"} & set(fired(f)), fired(f)


def test_complex_times_one_stays(fired, against_none):
    """numpy's (inf + 0j) * 1 is inf + nanj, not x."""
    z = ts.tensor("complex128", (None,))
    v = np.array([np.inf + 0j, 1 - 2j])
    f = stays(fired, against_none, "mul_one", [z], z * 1, v)
    assert np.isnan(f(v)[0].imag)


@pytest.mark.parametrize("form", [lambda x: x * 0, lambda x: 0 * ts.exp(x),
                                  lambda x: x * np.zeros((1, 3)), lambda x: (x * 2) * (0 * x)])
def test_times_zero_is_zeros(form, fired, against_none):
    x = ts.dmatrix("x")
    f = fires(fired, against_none, "mul_zero", [x], form(x), M)
    assert "mul" not in scalar_ops(f) and op_count(f, Alloc) == 1


def test_times_zero_keeps_the_broadcast_shape_and_dtype(fired, against_none):
    x = ts.fvector("x")
    out = x * np.zeros((2, 1))  # float64, (2, n)
    f = fires(fired, against_none, "mul_zero", [x], out, V.astype("float32"))
    assert f(V.astype("float32")).shape == (2, 5) and f(V.astype("float32")).dtype == np.float64
    f = fires(fired, against_none, "mul_zero", [x], x * np.zeros(1), np.ones(1, "float32"))
    i = ts.tensor("int8", (None, 1))
    fires(fired, against_none, "mul_zero", [i], 0 * i, I8[:, None])
    fires(fired, against_none, "mul_zero", [x, i], x * i * 0, V.astype("float32"), I8[:, None])
    g, y = ts.tensor("float64", (None, 1)), ts.dmatrix("y")  # the zeros keep the static 1
    fires(fired, against_none, "mul_zero", [g, y], SumToShape()(g, ts.shape(y)) * 0, M[:, :1],
          M[:, :1])


def test_minus_itself_is_zeros(fired, against_none):
    x = ts.dmatrix("x")
    f = fires(fired, against_none, "sub_self", [x], x - x, M)
    assert "sub" not in scalar_ops(f) and f(M).shape == (2, 3)
    i = ts.tensor("int8", (None,))
    fires(fired, against_none, "sub_self", [i], i - i, I8)
    e = ts.exp(x)
    fires(fired, against_none, "sub_self", [x], e - e, M[:0])  # zero-size
    stays(fired, against_none, "sub_self", [x], x - ts.exp(x), M)


def test_divided_by_itself_is_ones(fired, against_none):
    x = ts.fmatrix("x")
    v = M.astype("float32") + 7
    f = fires(fired, against_none, "div_self", [x], x / x, v)
    assert "true_divide" not in scalar_ops(f) and f(v).dtype == np.float32
    z = ts.tensor("complex64", (None,))
    fires(fired, against_none, "div_self", [z], z / z, np.array([1j, 2 + 1j], "complex64"))


def test_integer_divided_by_itself_stays(fired, against_none):
    """numpy's 0 / 0 is nan for integers (true division in float64)."""
    i = ts.tensor("int8", (None,))
    f = stays(fired, against_none, "div_self", [i], i / i, I8)
    assert np.isnan(f(I8)[2])


def test_double_negation(fired, against_none):
    i = ts.tensor("int8", (None,))
    f = fires(fired, against_none, "neg_neg", [i], -(-i), I8)  # -(-(-128)) wraps back
    assert not scalar_ops(f)
    x = ts.dmatrix("x")
    fires(fired, against_none, "neg_neg", [x], -(-(-x)), M)


@pytest.mark.parametrize("cond, picks_x", [(False, False), (0.0, False), (np.zeros((1, 1)), False),
                                           (True, True), (np.nan, True), (np.ones(1), True)])
def test_where_of_a_constant_condition(cond, picks_x, fired, against_none):
    x = ts.dmatrix("x")
    f = fires(fired, against_none, "where_constant", [x], ts.where(cond, x, ts.exp(x)), M)
    if picks_x:
        assert not scalar_ops(f) and f.graph.outputs[0] is f.graph.inputs[0]
    else:
        assert scalar_ops(f) == Counter({"exp": 1})


def test_where_of_a_constant_condition_casts(fired, against_none):
    x, y = ts.tensor("float32", (1,)), ts.dmatrix("y")
    f = fires(fired, against_none, "where_constant", [y, x], ts.where(True, y, x), M,
              V[:1].astype("float32"))
    assert f(M, V[:1].astype("float32")).dtype == np.float64
    fires(fired, against_none, "where_constant", [y], ts.where(False, 0, y), M)


@pytest.mark.parametrize("form", [
    lambda x, y: ts.where(True, x, y),  # y may broadcast x
    lambda x, y: ts.where(False, x, 0.0),
    lambda x, y: ts.where(np.array([True, False, True]), x, x),  # not one value
    lambda x, y: ts.where(np.ones((2, 1)), x, x),  # a new dim
])
def test_where_of_a_constant_condition_stays(form, fired, against_none):
    x, y = ts.dvector("x"), ts.dmatrix("y")
    stays(fired, against_none, "where_constant", [x, y], form(x, y), V[:3], M)


def test_a_broadcast_operand_is_left_to_the_elemwise(fired, against_none):
    x, c = ts.dmatrix("x"), ts.dvector("c")
    f = fires(fired, against_none, "implicit_broadcast", [x, c], ts.broadcast_to(c, x.shape) * x,
              M, V[:3])
    assert op_count(f, BroadcastTo) == 0
    f = fires(fired, against_none, "implicit_broadcast", [x], ts.full_like(x, 3.0) - ts.exp(x), M)
    assert op_count(f, Alloc) == 0 and scalar_ops(f) == Counter({"sub": 1, "exp": 1})
    # two fills of one shape: one of them keeps the result's shape
    f = fires(fired, against_none, "implicit_broadcast", [x],
              ts.full_like(x, 3.0) + ts.full_like(x, 4.0), M)
    assert f(M).shape == (2, 3)


def test_a_broadcast_operand_stays_where_it_sets_the_shape(fired, against_none):
    x, n = ts.dvector("x"), ts.lscalar("n")
    out = ts.broadcast_to(x, (n, x.shape[0])) + x  # the broadcast adds a dim
    stays(fired, against_none, "implicit_broadcast", [x, n], out, V, np.int64(2))
    y = ts.dvector("y")
    out = ts.broadcast_to(x, (4,)) * y  # y may have length 1
    for v in (V[:1], V[:4]):
        stays(fired, against_none, "implicit_broadcast", [x, y], out, V[:1], v)
    w = ts.tensor("float64", (1,))  # the result is known to have length 1 only from the broadcast
    stays(fired, against_none, "implicit_broadcast", [x, w], ts.broadcast_to(x, (1,)) + w, V[:1],
          V[:1])


# -- exp, log, powers -----------------------------------------------------------------------------

def test_exp_of_log_and_log_of_exp(fired, against_none):
    x = ts.dvector("x")
    pos = np.array([1e-300, 0.5, 1.0, 3.0, 1e300])
    f = fires(fired, against_none, "exp_log", [x], ts.exp(ts.log(x)), pos)
    assert not scalar_ops(f)
    f = fires(fired, against_none, "log_exp", [x], ts.log(ts.exp(x)), V)
    assert not scalar_ops(f)
    assert f(np.array([1000.0]))[0] == 1000.0  # where exp overflows, the rewrite is exact


def test_exp_of_log_of_an_integer_is_the_float(fired, against_none):
    i = ts.tensor("int16", (None,))
    v = np.array([1, 2, 300, 32767], "int16")
    f = fires(fired, against_none, "exp_log", [i], ts.exp(ts.log(i)), v, rtol=1e-6)
    assert f(v).dtype == np.float32 and scalar_ops(f) == Counter({"cast_float32": 1})
    i8 = ts.tensor("int8", (None,))
    fires(fired, against_none, "log_exp", [i8], ts.log(ts.exp(i8)), np.array([-3, 0, 5], "int8"),
          rtol=1e-3)


def test_complex_log_of_exp_stays(fired, against_none):
    """log is the principal branch: log(exp(4j)) is (4 - 2 pi)j."""
    z = ts.tensor("complex128", (None,))
    v = np.array([4j, 1 + 0.5j, -2 - 3.5j])
    f = stays(fired, against_none, "log_exp", [z], ts.log(ts.exp(z)), v)
    assert abs(f(v)[0].imag - (4 - 2 * np.pi)) < 1e-12


@pytest.mark.parametrize("p, name", [(2, "sqr"), (2.0, "sqr"), (0.5, "sqrt"), (-1, "reciprocal"),
                                     (-1.0, "reciprocal"), (np.float32(0.5), "sqrt")])
def test_power_of_a_constant(p, name, fired, against_none):
    x = ts.dvector("x")
    v = np.array([0.25, 1.0, 2.0, 9.0, np.inf])
    f = fires(fired, against_none, "pow_constant", [x], x ** p, v)
    assert scalar_ops(f) == Counter({name: 1}), scalar_ops(f)


def test_power_one_is_x(fired, against_none):
    x = ts.dmatrix("x")
    f = fires(fired, against_none, "pow_constant", [x], x ** 1, M)
    assert f.graph.outputs[0] is f.graph.inputs[0]


def test_power_casts_x_to_the_result_dtype(fired, against_none):
    x = ts.fvector("x")
    f = fires(fired, against_none, "pow_constant", [x], x ** np.float64(0.5),
              np.array([0.0, 2.0, 9.0], "float32"))
    assert f(np.ones(2, "float32")).dtype == np.float64
    assert scalar_ops(f) == Counter({"cast_float64": 1, "sqrt": 1})
    i = ts.tensor("int8", (None,))
    f = fires(fired, against_none, "pow_constant", [i], i ** 2, I8)  # int8 squares wrap
    assert scalar_ops(f) == Counter({"sqr": 1})
    fires(fired, against_none, "pow_constant", [i], i ** 0.5, np.array([0, 4, 100], "int8"))


def test_integer_reciprocal_power_stays(fired):
    """An integer x ** -1 would truncate as a reciprocal; numpy refuses it."""
    i = ts.lvector("i")
    f = ts.function([i], i ** -1)
    assert "pow_constant" not in fired(f) and "power" in scalar_ops(f)
    g = ts.function([i], i ** np.int64(2))
    assert "pow_constant" in fired(g)


def test_power_stays_where_the_exponent_broadcasts_x(fired, against_none):
    x = ts.dvector("x")
    f = stays(fired, against_none, "pow_constant", [x], x ** np.full(3, 2.0), np.array([1.5]))
    assert f(np.array([1.5])).shape == (3,)
    stays(fired, against_none, "pow_constant", [x], x ** 3, V)


# -- casts --------------------------------------------------------------------------------------

def test_cast_of_an_exact_cast(fired, against_none):
    i = ts.tensor("int8", (None,))
    f = fires(fired, against_none, "cast_cast", [i], i.astype("int32").astype("float64"), I8)
    assert scalar_ops(f) == Counter({"cast_float64": 1})
    f = fires(fired, against_none, "cast_cast", [i], i.astype("int64").astype("int8"), I8)
    assert not scalar_ops(f)
    x = ts.fvector("x")
    f = fires(fired, against_none, "cast_cast", [x], x.astype("float64").astype("int32"),
              np.array([-2.7, 0.5, 3e9], "float32")[:2])
    b = ts.tensor("bool", (None,))
    fires(fired, against_none, "cast_cast", [b], b.astype("int8").astype("float16"),
          np.array([True, False]))


@pytest.mark.parametrize("mid, src, v", [
    ("int8", "int64", np.array([300, -129, 5])),  # int64 -> int8 wraps
    ("float32", "float64", np.array([0.1, 1e-50, 1e300])),  # rounds, underflows, overflows
    ("int16", "float64", np.array([1.7, -2.5])),  # truncates
    ("float16", "int32", np.array([2049, 70000])),  # float16 holds 11 bits
])
def test_cast_of_a_lossy_cast_stays(mid, src, v, fired, against_none):
    x = ts.tensor(src, (None,))
    stays(fired, against_none, "cast_cast", [x], x.astype(mid).astype("float64"), v.astype(src))


# -- shapes ---------------------------------------------------------------------------------------

def test_reshape_of_a_reshape(fired, against_none):
    x = ts.dmatrix("x")
    f = fires(fired, against_none, "reshape_reshape", [x], x.reshape((3, 2)).reshape((6,)), M)
    assert op_count(f, Reshape) == 1
    c = ts.tensor("float64", (2, 3))
    f = fires(fired, against_none, "reshape_reshape", [c], c.reshape(-1).reshape((3, 2)).reshape(
        (2, 3)), M)
    assert op_count(f, Reshape) == 0 and f.graph.outputs[0] is f.graph.inputs[0]
    v = ts.dvector("v")
    out = v.reshape((6,)).reshape((6, -1))  # static shape (6, 1): the -1 resolved
    f = fires(fired, against_none, "reshape_reshape", [v], out, np.arange(6.0))
    assert op_count(f, Reshape) == 1


def test_reshape_to_its_own_shape(fired, against_none):
    x = ts.tensor("float64", (None, 3))
    f = fires(fired, against_none, "reshape_reshape", [x], x.reshape((x.shape[0], -1)), M)
    assert op_count(f, Reshape) == 0
    y = ts.dmatrix("y")
    stays(fired, against_none, "reshape_reshape", [y], y.reshape((-1, y.shape[0])), M)
    stays(fired, against_none, "reshape_reshape", [x], x.reshape((2, 3)), M)  # x may be (4, 3)
    stays(fired, against_none, "reshape_reshape", [y], y.reshape((y.shape[1], y.shape[0])), M)


def test_dimshuffle_chains(fired, against_none):
    x = ts.dmatrix("x")
    f = fires(fired, against_none, "dimshuffle_chain", [x], x.T.T, M)
    assert op_count(f, DimShuffle) == 0
    f = fires(fired, against_none, "dimshuffle_chain", [x], ts.expand_dims(x, 0).transpose(
        (2, 0, 1)), M)
    assert op_count(f, DimShuffle) == 1
    t = ts.tensor("float64", (None, 1, None))
    v = np.arange(6.0).reshape(2, 1, 3)
    f = fires(fired, against_none, "dimshuffle_chain", [t], t.transpose((2, 1, 0)).squeeze(1).T, v)
    assert op_count(f, DimShuffle) == 1


def test_identity_dimshuffle_built_by_a_gradient(fired, against_none):
    x = ts.dmatrix("x")
    out = DimShuffle((0, 1))(x) * 2
    fires(fired, against_none, "dimshuffle_chain", [x], out, M)


@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_of_a_broadcast(keepdims, fired, against_none):
    x = ts.tensor("float64", (3,))
    out = ts.broadcast_to(x, (4, 3)).sum(axis=0, keepdims=keepdims)
    f = fires(fired, against_none, "sum_of_broadcast", [x], out, V[:3])
    assert op_count(f, BroadcastTo) == 0
    col = ts.tensor("float64", (None, 1))
    out = ts.broadcast_to(col, (col.shape[0], 5)).sum(axis=(0, 1), keepdims=keepdims)
    f = fires(fired, against_none, "sum_of_broadcast", [col], out, V[:, None])
    assert op_count(f, BroadcastTo) == 0


def test_sum_of_constructors(fired, against_none):
    n = ts.lscalar("n")
    f = fires(fired, against_none, "sum_of_broadcast", [n], ts.ones((n, 3)).sum(), np.int64(4))
    assert op_count(f, Alloc) == 0
    x = ts.dvector("x")
    f = fires(fired, against_none, "sum_of_broadcast", [x, n],
              ts.full((n, x.shape[0]), x).sum(axis=0), V, np.int64(3))
    f = fires(fired, against_none, "sum_of_broadcast", [x, n],
              ts.full((n, x.shape[0]), x).sum(axis=1), V, np.int64(3))
    assert f(V, np.int64(0)).shape == (0,)


def test_sum_of_a_broadcast_keeps_the_kept_axes_broadcast(fired, against_none):
    x = ts.dvector("x")  # may have length 1 or 3 where broadcast to (4, 3)
    out = ts.broadcast_to(x, (4, 3)).sum(axis=0)
    for v in (np.array([2.0]), V[:3]):
        fires(fired, against_none, "sum_of_broadcast", [x], out, v)


def test_sum_of_a_broadcast_integer_and_dtype(fired, against_none):
    i = ts.tensor("int8", (3,))
    v = np.array([100, -100, 7], "int8")
    fires(fired, against_none, "sum_of_broadcast", [i], ts.broadcast_to(i, (5, 3)).sum(), v)
    fires(fired, against_none, "sum_of_broadcast", [i],
          ts.broadcast_to(i, (5, 3)).sum(axis=0, dtype="int8"), v)
    x = ts.tensor("float32", (3,))
    f = fires(fired, against_none, "sum_of_broadcast", [x],
              ts.broadcast_to(x, (5, 3)).sum(dtype="float64"), V[:3].astype("float32"))
    assert f(V[:3].astype("float32")).dtype == np.float64


def test_sum_of_a_broadcast_stays_where_it_cannot_tell(fired, against_none):
    x, k = ts.dvector("x"), ts.lscalar("k")
    out = ts.broadcast_to(x, (4, k)).sum(axis=1)  # x has length 1 or k
    for v in (np.array([2.0]), V[:3]):
        stays(fired, against_none, "sum_of_broadcast", [x, k], out, v, np.int64(3))
    b = ts.tensor("bool", (3,))
    stays(fired, against_none, "sum_of_broadcast", [b],
          ts.broadcast_to(b, (2, 3)).sum(dtype="bool"), np.array([True, False, True]))


def test_sum_to_own_shape(fired, against_none):
    x = ts.dmatrix("x")
    g = ts.exp(x) * 2
    f = fires(fired, against_none, "sum_to_own_shape", [x], SumToShape()(g, ts.shape(x)), M)
    assert op_count(f, SumToShape) == 0
    c = ts.tensor("float64", (2, 3))
    f = fires(fired, against_none, "sum_to_own_shape", [c],
              SumToShape()(c * 2, ts.constant(np.array([2, 3]))), M)
    assert op_count(f, SumToShape) == 0


def test_sum_to_shape_stays_where_it_sums(fired, against_none):
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    out = SumToShape()(x * 2, ts.shape(y))
    stays(fired, against_none, "sum_to_own_shape", [x, y], out, M, M[:1])
    stays(fired, against_none, "sum_to_own_shape", [x, y], out, M, M)
    row = ts.dvector("row")  # x + row is (2, 3) for a column x: summed back to (2, 1)
    f = stays(fired, against_none, "sum_to_own_shape", [x, row],
              SumToShape()(x + row, ts.shape(x)), M[:, :1], V[:3])
    assert f(M[:, :1], V[:3]).shape == (2, 1)


def test_gradient_sums_to_shape_are_removed(fired, against_none):
    x = ts.dmatrix("x")
    f = against_none([x], ts.grad((ts.exp(x) * 3).sum(), x), M, mode=CANON)
    assert op_count(f, SumToShape) == 0


# -- products of matrices --------------------------------------------------------------------------

@pytest.mark.parametrize("form, negs", [(lambda a, b: (-a) @ b, 1), (lambda a, b: a @ -b, 1),
                                        (lambda a, b: (-a) @ (-b), 0),
                                        (lambda a, b: ts.dot(-a, b), 1)])
def test_negation_through_a_product(form, negs, fired, against_none):
    a, b = ts.dmatrix("a"), ts.dvector("b")
    f = fires(fired, against_none, "neg_through_matmul", [a, b], form(a, b), M, V[:3])
    assert scalar_ops(f)["neg"] == negs and op_count(f, MatMul) == 1
    for n in f.graph.apply_nodes():
        if isinstance(n.op, MatMul):
            assert n.inputs[0] is f.graph.inputs[0] and n.inputs[1] is f.graph.inputs[1]


def test_integer_negation_through_a_product(fired, against_none):
    a, b = ts.tensor("int8", (None, None)), ts.tensor("int8", (None,))
    av, bv = np.array([[-128, 3], [4, 5]], "int8"), np.array([2, 1], "int8")
    fires(fired, against_none, "neg_through_matmul", [a, b], (-a) @ b, av, bv)
    # -a in int8 (-(-128) is -128) then an int64 product: moving the negation is wrong
    c = ts.lvector("c")
    stays(fired, against_none, "neg_through_matmul", [a, c], (-a) @ c, av, bv.astype("int64"))


# -- gradients --------------------------------------------------------------------------------

def _is_constant_fill(v, value):
    """`v` is a constant, or a fill / broadcast / dimshuffle of one, holding only `value`."""
    while v.owner is not None and isinstance(v.owner.op, (Alloc, BroadcastTo, DimShuffle)):
        v = v.owner.inputs[0]
    return isinstance(v, ts.Constant) and v.data.size > 0 and bool(np.all(v.data == value))


def _trivial_arithmetic(f):
    """How many `* 1`, `/ 1`, `+ 0`, `- 0` and constant-condition `where` nodes `f` runs."""
    count = 0
    for n in f.graph.apply_nodes():
        name = n.op.scalar_op.name if isinstance(n.op, Elemwise) else None
        if name in ("mul", "true_divide"):
            count += any(_is_constant_fill(v, 1) for v in n.inputs[1 if name != "mul" else 0:])
        elif name in ("add", "sub"):
            count += any(_is_constant_fill(v, 0) for v in n.inputs[1 if name == "sub" else 0:])
        elif name == "where":
            count += isinstance(n.inputs[0], ts.Constant)
    return count


def test_mlp_gradient_has_no_trivial_arithmetic(rng, fired):
    x, y = ts.dmatrix("x"), ts.lvector("y")
    W1 = ts.shared(rng.normal(size=(4, 5)), name="W1")
    b1 = ts.shared(np.zeros(5), name="b1")
    W2 = ts.shared(rng.normal(size=(5, 3)), name="W2")
    b2 = ts.shared(np.zeros(3), name="b2")
    p = ts.softmax(ts.tanh(x @ W1 + b1) @ W2 + b2)
    cost = -ts.log(p)[ts.arange(y.shape[0]), y].mean() + 1e-2 * (W1 ** 2).sum()
    grads = ts.grad(cost, [W1, b1, W2, b2])
    f = ts.function([x, y], grads)
    g = ts.function([x, y], grads, mode="NONE")
    # counted before fusion hides the arithmetic inside loop bodies
    canon = ts.function([x, y], grads, mode=CANON)
    assert _trivial_arithmetic(g) > 0  # the seed 1 of the gradient, where(eq(2, 0), 0, ...)
    assert _trivial_arithmetic(canon) == 0
    assert len(canon.graph.apply_nodes()) < len(g.graph.apply_nodes())
    xv, yv = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    for h in (f, canon):
        for got, want in zip(h(xv, yv), g(xv, yv)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_rules_run_only_in_canonicalizing_modes(fired):
    x = ts.dvector("x")
    f = ts.function([x], (x * 1) - 0, mode=ts.Mode("fast_run", exclude=["canonicalize"]))
    assert not {"mul_one", "add_zero"} & set(fired(f))
    np.testing.assert_array_equal(f(V), V)
