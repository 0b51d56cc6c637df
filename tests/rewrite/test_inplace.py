"""The `inplace` rewrite: intermediates nothing else reads are overwritten (Elemwise chains,
set/inc_subtensor into a fresh buffer), and nothing else ever is: function inputs, shared
storage, constants, values read later or returned, the sources of views, buffers a broadcast
would not fit.  Every case computes what mode NONE computes and leaves the caller's arrays
alone; a hypothesis test does the same on random elementwise DAGs with shared subexpressions."""

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.ops import scalar as S
from tracesym.ops.elemwise import Elemwise
from tracesym.ops.inplace import InplaceElemwise
from tracesym.ops.subtensor import AdvancedIncSubtensor, IncSubtensor
from tracesym.rewrite.inplace import DestroyError

#: these tests look at single Elemwise nodes going in place: fusion would merge them first
UNFUSED = ts.Mode().excluding("fusion")
#: the same on the numpy linker, for tests of `InplaceElemwise.perform` itself and of how
#: fast the rewrite runs (C code generation is not what they time)
NUMPY_UNFUSED = ts.Mode(linker="numpy").excluding("fusion")

# -- helpers ----------------------------------------------------------------------------------


def destroyers(f):
    """{scalar op name or Op class name: [destroyed input position of each such node]} for
    `f`'s in-place nodes."""
    out = {}
    for n in f.graph.apply_nodes():
        if n.op.destroy_map:
            (pos,) = n.op.destroy_map[0]
            key = n.op.scalar_op.name if isinstance(n.op, Elemwise) else type(n.op).__name__
            out.setdefault(key, []).append(pos)
    return out


def plain(f, name):
    """How many non-destructive Elemwise nodes of scalar op `name` `f` runs."""
    return sum(1 for n in f.graph.apply_nodes() if isinstance(n.op, Elemwise)
               and n.op.scalar_op.name == name and not n.op.destroy_map)


def check(inputs, outputs, *values, mode=UNFUSED):
    """Compile with and without rewrites, run both on copies, compare; assert the arguments
    are unchanged.  Returns the function compiled with `mode`."""
    f = ts.function(inputs, outputs, mode=mode, on_unused_input="ignore")
    g = ts.function(inputs, outputs, mode=ts.Mode(None, linker=mode.linker),
                    on_unused_input="ignore")
    kept = [np.array(v, copy=True) for v in values]
    got = f(*values)
    for v, k in zip(values, kept):
        np.testing.assert_array_equal(v, k)
    want = g(*kept)
    for a, b in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-13, equal_nan=True)
    return f


X = np.linspace(-1.0, 1.0, 12).reshape(3, 4)

# -- where it fires ------------------------------------------------------------------------------


def test_a_chain_overwrites_its_intermediates():
    x = ts.dmatrix("x")
    f = check([x], ts.exp(x * 2 + 1), X)
    assert destroyers(f) == {"add": [0], "exp": [0]}
    assert plain(f, "mul") == 1  # x * 2 reads the caller's x: it allocates
    assert ("inplace", "Elemwise{add}") in f.graph.rewrite_log
    ops = {type(n.op) for n in f.graph.apply_nodes()}
    assert InplaceElemwise in ops


def test_the_destroyed_input_need_not_be_the_first():
    x, y = ts.tensor("float64", (3, 4)), ts.tensor("float64", (3, 4))
    f = check([x, y], y - ts.exp(x), X, X[::-1])
    assert destroyers(f) == {"sub": [1]}


def test_the_in_place_result_is_the_input_buffer(monkeypatch):
    seen = []
    perform = InplaceElemwise.perform

    def spy(self, node, inputs):
        (r,) = perform(self, node, inputs)
        seen.append((self.scalar_op.name, r is inputs[self.destroyed]))
        return (r,)

    monkeypatch.setattr(InplaceElemwise, "perform", spy)
    x = ts.dvector("x")
    f = ts.function([x], ts.tanh(ts.exp(x * 2)), mode=NUMPY_UNFUSED)
    np.testing.assert_allclose(f(np.arange(3.0)), np.tanh(np.exp(np.arange(3.0) * 2)))
    assert seen == [("exp", True), ("tanh", True)]


def test_same_variable_twice_in_one_node():
    x = ts.dvector("x")
    a = x * 3
    f = check([x], a * a + 1, np.arange(4.0))
    assert destroyers(f) == {"mul": [0], "add": [0]}


def test_fused_scalar_op_is_evaluated_then_copied():
    fused = S.ScalarOp("fused_tanh_add", 2, lambda a, b: np.tanh(a) + b, "(tanh({0}) + {1})")
    x = ts.dmatrix("x")
    out = Elemwise(fused)(x * 2.0, ts.exp(x))  # both operands have x's shape
    f = check([x], out, X, mode=NUMPY_UNFUSED)  # perform's path for an Op that is no ufunc
    assert destroyers(f) == {"fused_tanh_add": [0]}


def test_static_shapes_let_an_operand_be_overwritten():
    """(3, 4) + (3, 4): the buffer fits; the same with unknown shapes is not provable."""
    x, y = ts.tensor("float64", (3, 4)), ts.tensor("float64", (3, 4))
    assert destroyers(check([x, y], ts.exp(x) + y, X, X)) == {"add": [0]}
    u, v = ts.dmatrix("u"), ts.dmatrix("v")
    f = check([u, v], ts.exp(u) + v, X, X)
    assert destroyers(f) == {} and plain(f, "add") == 1


def test_known_equal_shapes_through_elemwise_chains():
    """a = x * 2 and b = exp(x) have x's shape, so a + b may overwrite a."""
    x = ts.dmatrix("x")
    f = check([x], ts.sin(x * 2) + ts.exp(x), X)
    assert destroyers(f)["add"] == [0]


def test_views_of_an_intermediate_are_overwritten_when_nothing_else_reads_it():
    x = ts.dmatrix("x")
    m = x * 2
    f = check([x], m[1:] + 1, X)
    assert destroyers(f) == {"add": [0]}
    f = check([x], (m.T.reshape((-1,)) + 1) * 3, X)  # view of a view, then a chain
    assert destroyers(f) == {"add": [0], "mul": [0]}


def test_set_subtensor_into_a_fresh_zeros_buffer():
    x = ts.dvector("x")
    z = ts.zeros((x.shape[0], 3))
    w = ts.set_subtensor(z[:, 1], x)
    w = ts.inc_subtensor(w[1:, 2], x[:-1] * 2)
    f = check([x], w, np.arange(4.0))
    assert destroyers(f) == {"IncSubtensor": [0, 0]}
    ops = [n.op for n in f.graph.apply_nodes() if isinstance(n.op, IncSubtensor)]
    assert all(op.inplace for op in ops) and "inplace" in str(ops[0])


def test_advanced_inc_subtensor_into_an_intermediate_accumulates():
    x = ts.dvector("x")
    f = check([x], ts.inc_subtensor((x * 2.0)[[0, 0, 2]], 1.0), np.arange(3.0))
    assert destroyers(f) == {"AdvancedIncSubtensor": [0]}
    np.testing.assert_array_equal(f(np.arange(3.0)), [2, 2, 5])


def test_gradient_graphs_work_in_place():
    x = ts.dmatrix("x")
    cost = ts.sum(ts.tanh(x * 2)[[0, 2]] ** 2)
    g = ts.grad(cost, x)
    f = check([x], g, X)
    assert "AdvancedIncSubtensor" in destroyers(f)


# -- where it must not -------------------------------------------------------------------------


def test_never_the_callers_arrays():
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    for out in (ts.exp(x), x + y, -x, x * 2 + 1, ts.set_subtensor(x[0], 0.0),
                ts.inc_subtensor(x[[0, 0]], 1.0), x.T * 2, x[1:] + 1, x.reshape((-1,)) + 1):
        f = check([x, y], out, X.copy(), X[::-1].copy())
        for n in f.graph.apply_nodes():
            for positions in n.op.destroy_map.values():
                for p in positions:
                    assert n.inputs[p] is not x and n.inputs[p] is not y
                    assert n.inputs[p].owner is not None


def test_a_view_of_an_input_is_not_overwritten():
    x = ts.dmatrix("x")
    t = x.T
    f = check([x], t * 2, X)
    assert destroyers(f) == {}
    s = ts.tensor("float64", (3, 4))
    f = check([s], ts.exp(s[1:]) + s[:-1], X)
    assert destroyers(f) == {"add": [0]}  # exp(x[1:]) is fresh; x[1:] and x[:-1] are not


def test_never_shared_storage():
    W = ts.shared(np.arange(12.0).reshape(3, 4), name="W")
    x = ts.dmatrix("x")
    before = W.get_value()
    f = check([x], [ts.exp(W), W * 2 + W, ts.tanh(W) * W + x], X)
    for n in f.graph.apply_nodes():
        for positions in n.op.destroy_map.values():
            assert all(n.inputs[p] is not W for p in positions)
    for _ in range(3):
        f(X)
        np.testing.assert_array_equal(W.get_value(borrow=True), before)


def test_shared_storage_changes_only_through_its_update():
    W = ts.shared(np.ones((2, 2)), name="W")
    x = ts.dmatrix("x")
    new = ts.exp(W * 2) + 1
    f = ts.function([x], W * x + 1, updates=[(W, new)], mode=UNFUSED)
    assert destroyers(f).get("add")  # both W * 2 + ... chains work in place
    held = f(np.ones((2, 2)))
    held_copy = held.copy()
    np.testing.assert_allclose(W.get_value(), np.exp(2.0) + 1)
    w_after_one = W.get_value()
    out2 = f(np.ones((2, 2)))
    np.testing.assert_array_equal(held, held_copy)  # the first result is the caller's
    np.testing.assert_allclose(out2, w_after_one + 1)
    np.testing.assert_allclose(W.get_value(), np.exp(2 * w_after_one) + 1)


def test_a_value_read_later_survives():
    """a = x*2; b = exp(a); c = b + a: exp must not overwrite a, which c reads after it."""
    x = ts.dmatrix("x")
    a = x * 2
    b = ts.exp(a)
    f = check([x], b + a, X)
    assert plain(f, "exp") == 1 and plain(f, "mul") == 1
    assert destroyers(f) == {"add": [0]}  # b has no other reader


def test_an_output_is_not_overwritten():
    x = ts.dmatrix("x")
    a = x * 2
    f = check([x], [a, ts.exp(a), a.T + 1], X)
    assert destroyers(f) == {}
    a_val, e_val, t_val = f(X)
    np.testing.assert_array_equal(a_val, X * 2)
    np.testing.assert_array_equal(t_val, (X * 2).T + 1)


def test_update_values_are_not_overwritten():
    W = ts.shared(np.zeros(3), name="W")
    x = ts.dvector("x")
    a = x * 2
    f = ts.function([x], ts.exp(a), updates=[(W, a)], mode=UNFUSED)
    assert destroyers(f) == {}
    np.testing.assert_allclose(f(np.ones(3)), np.exp(2.0))
    np.testing.assert_array_equal(W.get_value(), [2, 2, 2])


def test_other_readers_of_a_view_source_block_it():
    x = ts.dmatrix("x")
    m = x * 2
    s = m[1:]
    f = check([x], [s + 1, m * 3], X)  # m read by the slice and by m * 3
    assert destroyers(f) == {}
    f = check([x], [(x * 2)[1:] + 1, (x * 2) * 3], X)  # the same, once merge joins the x * 2
    assert destroyers(f) == {}
    f = check([x], (s + 1) * (s * 2), X)  # s read twice
    # canonicalized to ((s + 1) * s) * 2: only the fresh products are overwritten, never s
    assert destroyers(f) == {"mul": [0, 0]}
    parts = ts.split(m, [1], axis=0)
    f = check([x], [parts[0] + 1, parts[1] * 2], X)  # sibling views of m
    assert destroyers(f) == {}


def test_broadcast_views_are_never_written():
    x = ts.dvector("x")
    b = ts.broadcast_to(x * 2, (3, x.shape[0]))
    f = check([x], b + 1, np.arange(4.0))
    assert destroyers(f) == {}


def test_a_buffer_a_broadcast_would_not_fit_is_not_used():
    """exp(x) with x of run-time shape (1, 4) next to y of (3, 4): the result is (3, 4)."""
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    f = check([x, y], ts.exp(x) * y, X[:1], X)
    assert destroyers(f) == {}
    r = ts.tensor("float64", (1, None))
    f = check([r, y], ts.exp(r) + y, X[:1], X)
    assert destroyers(f) == {}


def test_dtype_must_match():
    i = ts.lvector("i")
    f = check([i], (i * 2) / 3, np.arange(5))
    assert destroyers(f) == {}
    f = check([i], (i * 2).astype("float32") + np.float32(1), np.arange(5))
    assert destroyers(f) == {"add": [0]}


def test_constants_are_never_overwritten():
    x = ts.dvector("x")
    c = ts.constant(np.arange(3.0))
    f = check([x], (c + x) * 2, np.ones(3))
    for n in f.graph.apply_nodes():
        for positions in n.op.destroy_map.values():
            assert all(not isinstance(n.inputs[p], ts.Constant) for p in positions)
    np.testing.assert_array_equal(f(np.ones(3)), f(np.ones(3)))


def test_modes_without_the_rewrite():
    x = ts.dmatrix("x")
    y = ts.exp(x * 2 + 1)
    for mode in ("NONE", "FAST_COMPILE", ts.Mode(exclude=["inplace"])):
        assert destroyers(ts.function([x], y, mode=mode)) == {}


# -- results returned to the caller -------------------------------------------------------------


def test_returned_arrays_never_alias_each_other():
    x = ts.dmatrix("x")
    y = ts.exp(x * 2)
    for outs in ([y.T, y], [y, y.T], [y[1:], y, y[0]]):
        vals = ts.function([x], outs)(X)
        for i in range(len(vals)):
            for j in range(i):
                assert not np.shares_memory(vals[i], vals[j])


def test_results_held_by_the_caller_survive_later_calls():
    x = ts.dmatrix("x")
    f = ts.function([x], [ts.exp(x * 2) + 1, (x * 3)[1:] - 1], mode=UNFUSED)
    first = f(X)
    kept = [a.copy() for a in first]
    f(X * 5)
    f(X[:1])
    for a, k in zip(first, kept):
        np.testing.assert_array_equal(a, k)


# -- hand-built destructive graphs are checked -------------------------------------------------


def test_a_destructive_node_on_an_input_is_refused():
    x = ts.dvector("x")
    y = InplaceElemwise(S.TABLE["exp"], {0: 0})(x)
    with pytest.raises(DestroyError, match="overwrites its input 0"):
        ts.function([x], y, mode="NONE")


def test_a_destructive_node_on_a_value_read_later_is_refused():
    x = ts.dvector("x")
    a = x * 2
    b = InplaceElemwise(S.TABLE["exp"], {0: 0})(a)
    with pytest.raises(DestroyError, match="still read"):
        ts.function([x], b + a, mode="NONE")
    with pytest.raises(DestroyError):
        ts.function([x], [b, a], mode="NONE")
    np.testing.assert_allclose(ts.function([x], b, mode="NONE")(np.zeros(2)), [1.0, 1.0])


def test_an_inplace_set_on_a_shared_variable_is_refused():
    W = ts.shared(np.zeros(3), name="W")
    y = IncSubtensor(((1, None, None),), True, True)(W, np.float64(1.0))
    with pytest.raises(DestroyError):
        ts.function([], y, mode="NONE")
    z = AdvancedIncSubtensor(("?",), False, True)(W * 1, np.float64(1.0), np.array([0, 0]))
    np.testing.assert_array_equal(ts.function([], z, mode="NONE")(), [2, 0, 0])
    np.testing.assert_array_equal(W.get_value(), [0, 0, 0])


# -- cost ------------------------------------------------------------------------------------


def test_a_long_chain_goes_in_place_quickly():
    x = ts.dvector("x")
    y = x * 1.0001
    for k in range(2000):
        y = ts.tanh(y) if k % 2 == 0 else y * 1.0001
    t = time.perf_counter()
    f = ts.function([x], y, mode=NUMPY_UNFUSED)
    elapsed = time.perf_counter() - t
    assert sum(len(v) for v in destroyers(f).values()) == 2000
    assert plain(f, "mul") == 1
    assert elapsed < 5.0, elapsed
    np.testing.assert_allclose(f(np.ones(3)), ts.function([x], y, mode="NONE")(np.ones(3)))


# -- random elementwise DAGs -------------------------------------------------------------------

UNARY = [ts.tanh, ts.sin, ts.neg, lambda v: v * 0.5, lambda v: v.T, lambda v: v[::-1],
         lambda v: v + 1.0]
BINARY = [ts.add, ts.sub, ts.mul, ts.maximum, lambda a, b: ts.where(a > b, a, b * 0.25)]


@st.composite
def dags(draw):
    """Steps over a pool of leaves (x, y, shared W, and with `row` a (1, 3) r) and earlier
    results; an operand index counts back from the newest, so chains and diamonds (a value
    read twice) are common.  With `row`, the first step reads r, whose result a broadcast
    against a (3, 3) operand cannot be written into."""
    static, row = draw(st.booleans()), draw(st.booleans())
    size = 4 if row else 3
    steps = []
    for k in range(draw(st.integers(3, 14))):
        pick = (lambda: 0) if row and k == 0 else (lambda: draw(st.integers(0, size - 1)))
        if draw(st.booleans()):
            steps.append(("u", draw(st.integers(0, len(UNARY) - 1)), pick()))
        else:
            steps.append(("b", draw(st.integers(0, len(BINARY) - 1)), pick(),
                          draw(st.integers(0, size - 1))))
        size += 1
    outs = draw(st.lists(st.integers(0, 20), max_size=2))
    update = draw(st.one_of(st.none(), st.integers(0, size - 1)))
    return steps, outs, static, row, update


def _build(steps, outs, static, row, update, W):
    shape = (3, 3) if static else (None, None)
    x, y = ts.tensor("float64", shape, name="x"), ts.tensor("float64", shape, name="y")
    r = ts.dmatrix("r")  # run-time shape (1, 3): broadcasts wherever it meets a (3, 3)
    pool = [x, y, W] + ([r] if row else [])
    inputs = [x, y] + ([r] if row else [])
    for step in steps:
        args = [pool[-1 - i] for i in step[2:]]
        pool.append(UNARY[step[1]](*args) if step[0] == "u" else BINARY[step[1]](*args))
    made = pool[len(inputs) + 1:]
    outputs = [made[-1]] + [made[i % len(made)] for i in outs]
    upd = [] if update is None else [(W, pool[-1 - update] * 1.0)]
    return inputs, outputs, upd


@given(dags())
def test_random_dags_match_mode_none_and_leave_inputs_alone(case):
    steps, outs, static, row, update = case
    rng = np.random.default_rng(len(steps))
    vals = [rng.normal(size=(3, 3)), rng.normal(size=(3, 3))] + ([rng.normal(size=(1, 3))] if row else [])
    w0 = rng.normal(size=(3, 3))
    results = []
    for mode in ("FAST_RUN", "NONE"):
        W = ts.shared(w0.copy(), name="W")
        inputs, outputs, upd = _build(steps, outs, static, row, update, W)
        f = ts.function(inputs, outputs, updates=upd, mode=mode, on_unused_input="ignore")
        args = [v.copy() for v in vals]
        w_before = W.get_value(borrow=True)
        first = f(*args)
        kept = [a.copy() for a in first]
        second = f(*args)
        for a, v in zip(args, vals):
            np.testing.assert_array_equal(a, v)
        if not upd:
            np.testing.assert_array_equal(W.get_value(borrow=True), w0)
        np.testing.assert_array_equal(w_before, w0)  # the old storage itself is untouched
        for a, k in zip(first, kept):
            np.testing.assert_array_equal(a, k)
        results.append((first, second, W.get_value()))
    (f1, f2, fw), (n1, n2, nw) = results
    for a, b in zip(f1 + f2 + [fw], n1 + n2 + [nw]):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, equal_nan=True)
