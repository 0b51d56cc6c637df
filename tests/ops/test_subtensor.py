"""Indexing against numpy: basic keys (property-tested), symbolic bounds, advanced indexing,
boolean masks, set/inc_subtensor, shapes, errors and gradients."""

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import tracesym as ts
from tracesym.errors import IndexingError, OpRuntimeError, ShapeError
from tracesym.ops.shape import ShapeI, shape_i
from tracesym.ops.subtensor import (AdvancedIncSubtensor, AdvancedSubtensor, IncSubtensor,
                                    LastWriteMask, SliceLength, Subtensor)
from tracesym.trace.graph import Constant


def run(inputs, out, *values):
    return ts.function(inputs, out, on_unused_input="ignore")(*values)


def check(out, expected):
    """Values, dtype and shape equal numpy's; static sizes agree with the real ones."""
    got = np.asarray(out)
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def static_ok(var, shape):
    assert var.ndim == len(shape)
    assert all(s is None or s == r for s, r in zip(var.type.shape, shape)), (var.type, shape)


def check_infer_shape(var, inputs, *values):
    """The Op's symbolic shape evaluates to the real output shape."""
    node = var.owner
    in_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs]
    (shp,) = node.op.infer_shape(node, in_shapes)
    assert len(shp) == var.ndim
    real = run(inputs, var, *values).shape
    if shp:
        got = run(inputs, list(shp), *values)
        assert tuple(int(g) for g in got) == real


# ---------------------------------------------------------------------------------------------
# basic indexing, property-tested
# ---------------------------------------------------------------------------------------------

bound = st.one_of(st.none(), st.integers(-7, 7))
slices = st.builds(slice, bound, bound, st.one_of(st.none(), st.integers(-3, 3).filter(bool)))
entries = st.one_of(st.integers(-6, 5), slices, st.none())


@st.composite
def basic_cases(draw):
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=4)))
    key = draw(st.lists(entries, max_size=5))
    if draw(st.booleans()):
        key.insert(draw(st.integers(0, len(key))), Ellipsis)
    return shape, tuple(key)


@settings(max_examples=150)
@given(basic_cases())
def test_basic_keys_match_numpy(case):
    shape, key = case
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    x_static = ts.tensor("float32", shape, name="x")
    x_dyn = ts.tensor("float32", (None,) * len(shape), name="x")
    try:
        expected = a[key]
    except IndexError:
        event("numpy rejects the key")
        with pytest.raises(IndexError):
            x_static[key]
        try:
            y = x_dyn[key]
        except IndexError:
            return  # too many indices: known without sizes
        with pytest.raises(OpRuntimeError) as info:
            run([x_dyn], y, a)
        assert isinstance(info.value.__cause__, IndexError)
        return
    event(f"result of {expected.ndim} dims" + (", empty" if expected.size == 0 else ""))
    y = x_static[key]
    assert isinstance(y.owner.op, Subtensor)
    assert y.type.shape == expected.shape  # every size is known exactly
    check(run([x_static], y, a), expected)
    z = x_dyn[key]
    static_ok(z, expected.shape)
    check(run([x_dyn], z, a), expected)
    check_infer_shape(z, [x_dyn], a)


@given(st.integers(0, 6), bound, bound, st.one_of(st.none(), st.integers(-3, 3).filter(bool)),
       st.lists(st.booleans(), min_size=3, max_size=3))
def test_symbolic_slice_bounds(n, start, stop, step, symbolic):
    a = np.arange(n * 2, dtype=np.int16).reshape(n, 2)
    x = ts.tensor("int16", (None, 2), name="x")
    parts, inputs, values = [], [x], [a]
    for p, sym, name in zip((start, stop, step), symbolic, "abc"):
        if sym and p is not None:
            v = ts.lscalar(name)
            parts.append(v)
            inputs.append(v)
            values.append(p)
        else:
            parts.append(p)
    y = x[slice(*parts), 1]
    expected = a[start:stop:step, 1]
    check(run(inputs, y, *values), expected)
    check_infer_shape(y, inputs, *values)


def test_symbolic_bounds_common_patterns():
    x = ts.dvector("x")
    n, i = ts.lscalar("n"), ts.iscalar("i")  # any integer dtype works as a bound
    a = np.arange(10.0)
    check(run([x, n], x[:n], a, 4), a[:4])
    check(run([x, i], x[i:i + 2], a, np.int32(3)), a[3:5])
    check(run([x, i], x[i], a, np.int32(-2)), a[-2])
    check(run([x, n], x[::n], a, 3), a[::3])
    check(run([x, n], x[n::-1], a, 6), a[6::-1])
    m = ts.dmatrix("m")
    b = np.arange(12.0).reshape(3, 4)
    check(run([m, n], m[n - 1, 1:n], b, 2), b[1, 1:2])
    check(run([m, n], m[..., n], b, 3), b[..., 3])


def test_static_shapes_exact():
    x = ts.tensor("float64", (10,))
    assert x[2:8:2].type.shape == (3,)
    assert x[::-3].type.shape == (4,)
    assert x[20:].type.shape == (0,)
    assert x[None, -1, None].type.shape == (1, 1)
    m = ts.tensor("float64", (None, 7))
    assert m[1:, ::2].type.shape == (None, 4)
    assert m[:, ::-1].type.shape == (None, 7)
    assert m[ts.lscalar()].type.shape == (7,)
    assert m[:, :ts.lscalar()].type.shape == (None, None)
    assert ts.tensor("float64", (0, 3))[:ts.lscalar(), 0].type.shape == (0,)
    # a constant bound from a static shape folds into the Op
    assert x[:x.shape[0]].type.shape == (10,) and len(x[:x.shape[0]].owner.inputs) == 1
    # trailing full slices are dropped: x[1] and x[1, :] are the same Op
    assert m[1].owner.op == m[1, :].owner.op == m[1, ...].owner.op


def test_zero_size_and_0d():
    x = ts.dmatrix("x")
    a = np.arange(6.0).reshape(2, 3)
    check(run([x], x[5:2], a), a[5:2])
    check(run([x], x[:, 3:], a), a[:, 3:])
    e = np.zeros((0, 3))
    check(run([x], x[:, 1], e), e[:, 1])
    s = ts.dscalar("s")
    check(run([s], s[()], 2.5), np.asarray(2.5)[()])
    check(run([s], s[None, ...], 2.5), np.asarray(2.5)[None, ...])
    check(run([x], x[1, 2], a), np.asarray(a[1, 2]))


def test_dtypes_preserved():
    for dt in ("int8", "uint16", "float16", "complex64", "bool"):
        x = ts.tensor(dt, (None, None))
        a = (np.arange(12).reshape(3, 4) % 3).astype(dt)
        y = x[1:, ::-2]
        assert y.dtype == dt
        check(run([x], y, a), a[1:, ::-2])


def test_printing_names_the_index():
    x = ts.dmatrix("x")
    n = ts.lscalar("n")
    assert str(x[1:n, ::-1].owner.op) == "Subtensor{1:?, ::-1}"
    assert str(x[None, 0].owner.op) == "Subtensor{None, 0}"
    assert str(ts.set_subtensor(x[0], 1.0).owner.op) == "IncSubtensor{set, 0}"


# ---------------------------------------------------------------------------------------------
# shape vectors
# ---------------------------------------------------------------------------------------------

def test_shape_entries_are_constants_where_static():
    x = ts.tensor("float32", (600, None, 3))
    s0 = x.shape[0]
    assert isinstance(s0, Constant) and int(s0.data) == 600 and s0.dtype == "int64"
    assert int(x.shape[-1].data) == 3
    s1 = x.shape[1]
    assert isinstance(s1.owner.op, ShapeI) and s1.owner.op.i == 1
    assert isinstance(x.shape[np.int64(-2)].owner.op, ShapeI)
    with pytest.raises(IndexError):
        x.shape[3]
    # other keys on a shape vector index it like any int64 vector
    a = np.zeros((600, 4, 3), np.float32)
    check(run([x], x.shape[1:], a), np.array([4, 3]))
    i = ts.lscalar("i")
    check(run([x, i], x.shape[i], a, 1), np.int64(4))
    check(ts.function([x], x.shape[::-1])(a), np.array([3, 4, 600]))


def test_getitem_of_generic_shape_vector():
    v = ts.lvector("v")
    check(run([v], ts.ops.getitem(v, 1), np.array([4, 5, 6])), np.int64(5))


# ---------------------------------------------------------------------------------------------
# advanced indexing
# ---------------------------------------------------------------------------------------------

A = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
I2 = np.array([1, 0, 1])
J3 = np.array([[2, 0], [1, 1]])
ADV_KEYS = [
    (I2,),
    ([0, 1, 1],),
    (I2, I2),
    (I2, slice(None), [3, 0, 3]),           # non-adjacent: the index dims go first
    (slice(None), [0, 2], [1, 3]),          # adjacent: they stay in place
    (slice(None), J3, slice(1, 4), 2),      # an int with arrays is advanced too (non-adjacent)
    (0, slice(None), [1, 2]),               # numpy's famous transposition
    (slice(None), 0, [1, 2]),
    (Ellipsis, [4, 0, -1]),
    (I2, None, I2),                         # None splits the advanced block
    (slice(None), I2[:, None], J3[0]),      # index arrays broadcast together
    (None, [1], slice(None, None, -1), [[0], [2]]),
    (np.array([], dtype=np.int64),),
    ([],),
    (slice(None), np.array([], dtype=np.int8), 0),
    (np.array([-1, -2], dtype=np.int16), Ellipsis, np.array([1], np.uint32)),
    (np.array([1, 0], dtype=np.int8), np.array([2, 2], dtype=np.uint64)),
    (slice(None), 0, Ellipsis, 0, [0, -1]),  # an empty `...` still separates the indices
    (slice(None), 0, 0, [0, -1]),
]


@pytest.mark.parametrize("key", ADV_KEYS, ids=range(len(ADV_KEYS)))
def test_advanced_keys_with_constant_arrays(key):
    expected = A[key]
    x = ts.tensor("float64", A.shape, name="x")
    y = x[key]
    assert isinstance(y.owner.op, AdvancedSubtensor)
    assert y.type.shape == expected.shape
    check(run([x], y, A), expected)
    xd = ts.tensor("float64", (None,) * 4, name="x")
    yd = xd[key]
    static_ok(yd, expected.shape)
    check(run([xd], yd, A), expected)
    check_infer_shape(yd, [xd], A)


@pytest.mark.parametrize("key", ADV_KEYS[:12], ids=range(12))
def test_advanced_keys_with_symbolic_arrays(key):
    """The same keys with every index array a symbolic input of its own dtype."""
    xd = ts.tensor("float64", (None,) * 4, name="x")
    inputs, values, sym_key = [xd], [A], []
    for k in key:
        if isinstance(k, (list, np.ndarray)):
            arr = np.asarray(k)
            v = ts.tensor(arr.dtype, (None,) * arr.ndim)
            inputs.append(v)
            values.append(arr)
            sym_key.append(v)
        else:
            sym_key.append(k)
    y = xd[tuple(sym_key)]
    check(run(inputs, y, *values), A[key])
    check_infer_shape(y, inputs, *values)


def test_index_arrays_broadcast_size_one_against_empty():
    """At run time a size-1 index broadcasts against an empty one: the result is empty."""
    x = ts.dmatrix("x")
    i, j = ts.lvector("i"), ts.lvector("j")
    y = x[i, j]
    a = np.arange(6.0).reshape(2, 3)
    for iv, jv in [(np.array([], np.int64), np.array([1])), (np.array([1]), np.array([], np.int64)),
                   (np.array([1]), np.array([0, 2]))]:
        check(run([x, i, j], y, a, iv, jv), a[iv, jv])
        check_infer_shape(y, [x, i, j], a, iv, jv)


def rows_of(y):
    """`ts.arange(y.shape[0])` (a constructor another module provides), or a stand-in input."""
    if hasattr(ts, "arange"):
        return [], [], ts.arange(y.shape[0])
    r = ts.lvector("r")
    return [r], [None], r


INDEX_SHAPES = [(), (2,), (1, 2), (3, 1), (2,)]


@st.composite
def advanced_cases(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    key = draw(st.lists(st.one_of(
        st.integers(-4, 3), slices, st.none(),
        st.sampled_from(INDEX_SHAPES).flatmap(lambda s: st.lists(
            st.integers(-4, 3), min_size=int(np.prod(s)), max_size=int(np.prod(s))).map(
                lambda v, s=s: np.array(v, dtype=np.int64).reshape(s))),
        st.lists(st.booleans(), min_size=1, max_size=4).map(np.array)), max_size=5))
    arrays = [k for k in key if isinstance(k, np.ndarray) and k.ndim]
    if not arrays:
        key.append(np.array([0, -1]))
    if draw(st.booleans()):
        key.insert(draw(st.integers(0, len(key))), Ellipsis)
    return shape, tuple(key), draw(st.booleans())


@settings(max_examples=150)
@given(advanced_cases())
def test_advanced_keys_match_numpy(case):
    """Index arrays, masks, ints, slices and None in any order: numpy's placement rules."""
    shape, key, symbolic = case
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    x = ts.tensor("float64", shape, name="x")
    xd = ts.tensor("float64", (None,) * len(shape), name="x")
    inputs, values, sym_key = [xd], [a], []
    for k in key:
        if symbolic and isinstance(k, np.ndarray) and k.ndim:
            v = ts.tensor(k.dtype, (None,) * k.ndim)
            inputs.append(v)
            values.append(k)
            k = v
        sym_key.append(k)
    try:
        expected = a[key]
    except IndexError:
        event("numpy rejects the key")
        with pytest.raises(IndexError):
            x[key]
        try:
            y = xd[tuple(sym_key)]
        except IndexError:
            return
        with pytest.raises(OpRuntimeError):
            run(inputs, y, *values)
        return
    event(f"result of {expected.ndim} dims")
    y = x[key]
    assert isinstance(y.owner.op, AdvancedSubtensor)
    assert y.type.shape == expected.shape
    check(run([x], y, a), expected)
    yd = xd[tuple(sym_key)]
    static_ok(yd, expected.shape)
    check(run(inputs, yd, *values), expected)
    check_infer_shape(yd, inputs, *values)


def test_log_probs_pattern():
    lp = ts.dmatrix("lp")
    y = ts.lvector("y")
    extra, vals, rows = rows_of(y)
    out = lp[rows, y]
    a = np.log(np.random.default_rng(0).dirichlet(np.ones(4), size=5))
    yv = np.array([0, 3, 3, 1, 2])
    vals = [np.arange(5) for _ in vals]
    check(run([lp, y, *extra], out, a, yv, *vals), a[np.arange(5), yv])


def test_symbolic_scalar_with_arrays_is_advanced():
    x = ts.tensor3("x")
    i = ts.lscalar("i")
    idx = ts.lvector("idx")
    a = A[0]
    y = x[i, :, idx]
    check(run([x, i, idx], y, a, 1, np.array([0, 4])), a[1, :, [0, 4]])


# ---------------------------------------------------------------------------------------------
# boolean masks
# ---------------------------------------------------------------------------------------------

M = np.array([[True, False, True], [False, False, True]])


@pytest.mark.parametrize("key", [
    (M,), (M, 1), (slice(None), M[0]), (slice(None), M[1], slice(None), [0, 3]), (1, M[0]),
    (np.zeros((2, 3), bool),), (True,), (False,), (slice(None), True), ([0, 1], True),
    (Ellipsis, np.array([True, False, False, True, True])), ([True, False],),
], ids=range(12))
def test_boolean_masks(key):
    expected = A[key]
    for shape in (A.shape, (None,) * 4):
        x = ts.tensor("float64", shape, name="x")
        y = x[key]
        static_ok(y, expected.shape)
        check(run([x], y, A), expected)
        check_infer_shape(y, [x], A)


def test_symbolic_mask_size_unknown():
    x = ts.tensor("float32", (5, 3))
    m = ts.tensor("bool", (5,), name="m")
    y = x[m]
    assert y.type.shape == (None, 3)
    a = np.arange(15, dtype=np.float32).reshape(5, 3)
    mv = np.array([1, 0, 1, 1, 0], bool)
    check(run([x, m], y, a, mv), a[mv])
    check_infer_shape(y, [x, m], a, mv)
    check(run([x], x[x > 7.0], a), a[a > 7.0])
    check(run([x, m], x[m, 1:], a, np.zeros(5, bool)), a[np.zeros(5, bool), 1:])


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

def test_float_indices_rejected_naming_the_index():
    x = ts.dmatrix("x")
    f = ts.dscalar("f")
    cases = [(1.0, "index 0"), ((0, np.float32(1)), "index 1"), ((slice(0.5, 2),), "start"),
             ((0, slice(None, f)), "stop"), (np.array([0.0, 1.0]), "float64"),
             ((0, ts.dvector("v")), "index 1"), ((f,), "index 0"), ([0.5], "float64"),
             ((slice(None), "a"), "str")]
    for key, where in cases:
        with pytest.raises(IndexError, match=where):
            x[key]
    with pytest.raises(IndexError, match="index 0"):
        x[[ts.lscalar(), 1]]


def test_static_index_errors():
    x = ts.tensor("float64", (3, 4))
    with pytest.raises(IndexError, match="out of bounds for axis 1 with size 4"):
        x[0, 4]
    with pytest.raises(IndexError, match="out of bounds"):
        x[-4]
    with pytest.raises(IndexError, match="out of bounds for axis 0"):
        x[[0, 3]]
    with pytest.raises(IndexError, match="out of bounds for axis 1"):
        x[[0], [-5]]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="too many indices"):
        x[M, 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., 0, ...]
    with pytest.raises(IndexError, match="boolean index did not match"):
        x[np.ones(4, bool)]
    with pytest.raises(IndexError, match="broadcast"):
        x[[0, 1], [0, 1, 2]]
    with pytest.raises(IndexError, match="step cannot be zero"):
        x[::0]
    with pytest.raises(IndexingError):
        ts.dscalar()[0]
    # numpy checks index arrays only when the broadcast index is not empty; ints always
    mask = np.zeros(4, bool)
    check(run([x], x[[5], mask], np.zeros((3, 4))), np.zeros((3, 4))[[5], mask])
    with pytest.raises(IndexError, match="out of bounds"):
        x[5, []]
    assert issubclass(IndexingError, ts.TracesymError)


def test_runtime_index_errors_name_the_op():
    x = ts.dmatrix("x")
    i = ts.lscalar("i")
    idx = ts.lvector("idx")
    a = np.zeros((3, 4))
    f = ts.function([x, i], x[i])
    with pytest.raises(OpRuntimeError, match="Subtensor") as info:
        f(a, 3)
    assert isinstance(info.value.__cause__, IndexError)
    g = ts.function([x, idx], x[:, idx])
    with pytest.raises(OpRuntimeError, match="AdvancedSubtensor"):
        g(a, np.array([0, 4]))
    m = ts.tensor("bool", (None,))
    h = ts.function([x, m], x[m])
    with pytest.raises(OpRuntimeError):
        h(a, np.ones(2, bool))


def test_ops_check_their_inputs():
    x = ts.dmatrix("x")
    with pytest.raises(TypeError):
        Subtensor((None, "?"))(x)
    with pytest.raises(IndexError):
        Subtensor(("?",))(x, ts.lvector())
    with pytest.raises(TypeError):
        AdvancedSubtensor((0,))(x)
    with pytest.raises(TypeError):
        SliceLength((None, "?", None))(np.int64(3), ts.dscalar())


# ---------------------------------------------------------------------------------------------
# set_subtensor / inc_subtensor
# ---------------------------------------------------------------------------------------------

def _np_set(a, key, v):
    out = a.copy()
    out[key] = v
    return out


def _np_inc(a, key, v):
    out = a.copy()
    np.add.at(out, key, v)
    return out


M3 = np.arange(12).reshape(3, 4) % 3 == 0
UPDATE_CASES = [
    ((slice(1, None), 0), np.float64(7.0)),
    ((slice(None), slice(None, None, -2)), np.arange(2.0)[:, None]),
    ((Ellipsis, 1), np.arange(12.0).reshape(3, 4)),
    ((None, 1), np.ones((4, 1))),
    ((np.array([0, 2, 0]),), np.arange(5.0)),
    ((np.array([0, 2, 0]), slice(None), np.array([1, 1, 1])), np.arange(4.0)),
    ((slice(None), np.array([[0, 0], [3, 3]]), 2), np.float64(1.5)),
    ((M3,), np.arange(5.0)),
    ((M3, slice(1, 3)), np.arange(2.0)),
    ((0, np.array([True, False, True, True])), np.arange(5.0)),
]


@pytest.mark.parametrize("case", UPDATE_CASES, ids=range(len(UPDATE_CASES)))
def test_set_and_inc_match_numpy(case):
    key, v = case
    a = A[0].copy()
    a_before = a.copy()
    x = ts.tensor3("x")
    y = ts.tensor("float64", (None,) * np.ndim(v), name="y")
    s, i = ts.set_subtensor(x[key], y), ts.inc_subtensor(x[key], y)
    advanced = any(isinstance(k, np.ndarray) for k in key)
    assert isinstance(s.owner.op, AdvancedIncSubtensor if advanced else IncSubtensor)
    assert s.owner.op.set_instead_of_inc and not i.owner.op.set_instead_of_inc
    f = ts.function([x, y], [s, i])
    got_s, got_i = f(a, v)
    check(got_s, _np_set(a, key, v))
    check(got_i, _np_inc(a, key, v))
    np.testing.assert_array_equal(a, a_before)  # the input is never modified
    check_infer_shape(s, [x, y], a, v)
    if advanced:
        check_infer_shape(LastWriteMask(s.owner.op.idx_list)(x, *s.owner.inputs[2:]), [x], a)


@given(advanced_cases(), st.integers(0, 4))
def test_set_and_inc_property(case, keep):
    """set/inc over random advanced keys, with the value broadcast from a suffix of the
    indexed shape, against numpy assignment and np.add.at."""
    shape, key, _ = case
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    try:
        target = a[key].shape
    except IndexError:
        return
    v = np.arange(int(np.prod(target[len(target) - min(keep, len(target)):])), dtype=np.float64)
    v = v.reshape(target[len(target) - min(keep, len(target)):]) + 100.0
    x = ts.tensor("float64", (None,) * len(shape), name="x")
    y = ts.tensor("float64", (None,) * v.ndim, name="y")
    f = ts.function([x, y], [ts.set_subtensor(x[key], y), ts.inc_subtensor(x[key], y)])
    got_s, got_i = f(a, v)
    check(got_s, _np_set(a, key, v))
    check(got_i, _np_inc(a, key, v))


def test_repeated_indices_accumulate_or_last_write_wins():
    x = ts.dvector("x")
    v = ts.dvector("v")
    idx = np.array([1, 1, 3, 1])
    a = np.zeros(5)
    vv = np.array([1.0, 2.0, 3.0, 4.0])
    check(run([x, v], ts.inc_subtensor(x[idx], v), a, vv), np.array([0, 7.0, 0, 3.0, 0]))
    check(run([x, v], ts.set_subtensor(x[idx], v), a, vv), _np_set(a, idx, vv))
    check(run([x], ts.inc_subtensor(x[idx], 1.0), a), np.array([0, 3.0, 0, 1.0, 0]))
    mask = LastWriteMask(("?",))(x, ts.constant(idx))
    check(run([x], mask, a), np.array([False, False, True, True]))


def test_update_dtypes_and_weak_scalars():
    x = ts.fmatrix("x")
    a = np.ones((2, 3), np.float32)
    s = ts.set_subtensor(x[0], 2.5)
    assert s.dtype == "float32"
    check(run([x], s, a), _np_set(a, 0, np.float32(2.5)))
    i8 = ts.tensor("int8", (None,))
    r = ts.inc_subtensor(i8[[0, 0]], ts.lscalar("k"))
    check(run([i8, r.owner.inputs[1]], r, np.zeros(3, np.int8), 5), np.array([10, 0, 0], np.int8))
    with pytest.raises(TypeError, match="cast"):
        ts.set_subtensor(i8[0], 1.5)
    with pytest.raises(TypeError, match="cast"):
        ts.inc_subtensor(x[0], ts.zvector())
    # a float64 value into float32 keeps float32
    d = ts.dvector("d")
    check(run([x, d], ts.inc_subtensor(x[:, 1], d), a, np.array([0.5, 1.5])),
          _np_inc(a, (slice(None), 1), np.array([0.5, 1.5], np.float32)))


def test_update_shape_errors():
    x = ts.tensor("float64", (3, 4))
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        ts.set_subtensor(x[0], np.ones(3))
    with pytest.raises(ShapeError, match="dims"):
        ts.set_subtensor(x[0], np.ones((2, 4)))
    with pytest.raises(TypeError, match="indexing expression"):
        ts.set_subtensor(x, 1.0)
    with pytest.raises(TypeError, match="indexing expression"):
        ts.inc_subtensor(x.shape[0], 1)
    v = ts.dvector("v")
    y = ts.dmatrix("y")
    g = ts.function([y, v], ts.set_subtensor(y[:, 0], v))
    with pytest.raises(OpRuntimeError, match="IncSubtensor"):
        g(np.zeros((3, 2)), np.ones(2))


def test_updates_in_eager_mode_and_test_values():
    x = ts.dvector("x", test_value=np.arange(4.0))
    with ts.config.change(compute_test_value="raise"):
        y = ts.inc_subtensor(x[[0, 0]], 1.0)
        z = x[1:3]
    np.testing.assert_array_equal(y.tag.test_value, [2.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.tag.test_value, np.arange(4.0))
    np.testing.assert_array_equal(z.tag.test_value, [1.0, 2.0])


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------

_r = np.random.default_rng(42)


def _u(*shape):
    return _r.uniform(-1.0, 1.0, size=shape)


REPEATED = np.array([2, 0, 2, 2])

GRAD_CASES = {
    Subtensor: [
        (lambda x: x[1:, ::-2], [_u(3, 4)]),
        (lambda x: x[-1, None, 1:3], [_u(2, 4)]),
        (lambda x: x[1:x.shape[0] - 1, 2], [_u(4, 3)]),  # symbolic bounds
        (lambda x: x[0] * 3.0, [_u(5)]),
    ],
    AdvancedSubtensor: [
        (lambda x: x[REPEATED, 1:], [_u(3, 4)]),
        (lambda x: ts.log(x)[np.arange(4), [0, 3, 3, 1]], [_r.uniform(0.1, 1.0, (4, 5))]),
        (lambda x: x[M], [_u(2, 3, 2)]),
        (lambda x: x[[1, 1], :, [[0], [2]]], [_u(2, 3, 4)]),
    ],
    IncSubtensor: [
        (lambda x, y: ts.set_subtensor(x[1:, 0], y), [_u(3, 4), _u(2)]),
        (lambda x, y: ts.inc_subtensor(x[:, ::-2], y), [_u(3, 4), _u(1, 2)]),
        (lambda x, y: ts.set_subtensor(x[0], y) * x, [_u(3, 2), _u(1)]),
    ],
    AdvancedIncSubtensor: [
        (lambda x, y: ts.inc_subtensor(x[REPEATED], y), [_u(3, 2), _u(4, 2)]),
        (lambda x, y: ts.set_subtensor(x[REPEATED], y), [_u(3, 2), _u(4, 2)]),
        (lambda x, y: ts.set_subtensor(x[REPEATED, 1], y), [_u(3, 2), _u(1)]),
        (lambda x, y: ts.inc_subtensor(x[M3], y), [_u(3, 4), _u(4)]),
        (lambda x, y: ts.set_subtensor(x[:, M3[0]], y), [_u(2, 4), _u(2, 2)]),
    ],
}


@pytest.mark.parametrize("op_class,i", [(k, i) for k, v in GRAD_CASES.items()
                                         for i in range(len(v))])
def test_verify_grad(op_class, i):
    fun, points = GRAD_CASES[op_class][i]
    out = fun(*[ts.tensor("float64", (None,) * p.ndim) for p in points])
    assert any(isinstance(v.owner.op, op_class) for v in _ancestors(out))
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


def _ancestors(v):
    from tracesym.trace.graph import ancestors

    return [a for a in ancestors([v]) if a.owner is not None]


def test_grad_values_with_symbolic_indices():
    x = ts.dmatrix("x")
    y = ts.dvector("y")
    w = ts.dmatrix("w")
    idx = ts.lvector("idx")
    xv, wv = _u(3, 4), _u(3, 4)
    iv = np.array([0, 2, 0, 0])
    yv = _u(4)
    # gradient of an advanced read accumulates over repeated rows
    sub = x[idx, 1:]
    g = ts.grad((sub * w[:1, 1:]).sum(), x)
    expected = np.zeros((3, 4))
    np.add.at(expected, (iv, slice(1, None)), np.broadcast_to(wv[:1, 1:], (4, 3)))
    check(run([x, idx, w], g, xv, iv, wv), expected)
    # set with repeated indices: only the last write of each position gets a gradient
    out = ts.set_subtensor(x[idx, 2], y)
    gx, gy = ts.grad((out * w).sum(), [x, y])
    gxv, gyv = run([x, y, idx, w], [gx, gy], xv, yv, iv, wv)
    ex = wv.copy()
    ex[iv, 2] = 0.0
    check(gxv, ex)
    check(gyv, np.array([0.0, wv[2, 2], 0.0, wv[0, 2]]))
    # inc: every duplicate gets the gradient
    gy_inc = ts.grad((ts.inc_subtensor(x[idx, 2], y) * w).sum(), y)
    check(run([x, y, idx, w], gy_inc, xv, yv, iv, wv), wv[iv, 2])


def test_log_probs_gradient():
    lp = ts.dmatrix("lp")
    y = ts.lvector("y")
    extra, vals, rows = rows_of(y)
    cost = -lp[rows, y].sum() / 5.0
    g = ts.grad(cost, lp)
    yv = np.array([0, 3, 3, 1, 2])
    a = _u(5, 4)
    expected = np.zeros((5, 4))
    expected[np.arange(5), yv] = -1.0 / 5
    check(run([lp, y, *extra], g, a, yv, *[np.arange(5) for _ in vals]), expected)
    ts.verify_grad(lambda m: -ts.log(ts.exp(m) / ts.exp(m).sum(axis=1, keepdims=True))[
        np.arange(5), yv].sum(), [a], rng=np.random.default_rng(1))


def test_grad_through_masks_and_dtypes():
    x = ts.fvector("x")
    g = ts.grad(x[x > 0.0].sum(), x)
    xv = np.array([-1.0, 2.0, 0.5, -3.0], np.float32)
    check(run([x], g, xv), (xv > 0).astype(np.float32))
    # a float32 value written into a float64 tensor gets a float32 gradient
    d = ts.dvector("d")
    gy = ts.grad(ts.set_subtensor(d[1:], x).sum(), x)
    check(run([d, x], gy, np.zeros(5), xv), np.ones(4, np.float32))
    # integer tensors are not differentiable through indexing
    i = ts.lvector("i")
    node = i[1:].owner
    assert node.op.L_op(node.inputs, node.outputs, [ts.dvector()]) == [None]
    inc = ts.inc_subtensor(d[1:], i).owner
    assert inc.op.L_op(inc.inputs, inc.outputs, [ts.dvector()])[1:] == [None]
