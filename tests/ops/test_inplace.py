"""The destructive Ops (`InplaceElemwise`, in-place `IncSubtensor`) write into their input's
buffer and return it, fall back to a new array for a read-only buffer, and keep their parent's
values, type checks and gradient.  And an audit of `OP_REGISTRY`: no Op's `perform` may return
an input, or a view of one, that its `view_map` / `destroy_map` does not declare (the `inplace`
rewrite trusts those maps to know which buffers share memory)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import ShapeError
from tracesym.ops import OP_REGISTRY
from tracesym.ops import scalar as S
from tracesym.ops.elemwise import Elemwise
from tracesym.ops.inplace import InplaceElemwise
from tracesym.ops.reduce import CumOp, Reduce
from tracesym.ops.shape import BroadcastTo, Reshape, Split, SumToShape
from tracesym.ops.subtensor import SYM, AdvancedIncSubtensor, IncSubtensor, LastWriteMask, SliceLength
from tracesym.trace.graph import applies_between

EXP, ADD, WHERE = S.TABLE["exp"], S.TABLE["add"], S.TABLE["where"]


def _u(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).uniform(0.5, 1.5, size=shape)


def perform(op, *inputs):
    """Apply `op` to constants' types and run its perform on `inputs` themselves."""
    node = op.make_node(*[ts.tensor(np.asarray(a).dtype.name, np.shape(a)) for a in inputs])
    return node.op.perform(node, list(inputs))


#: a scalar op that is not a numpy ufunc, like a fused Composite: evaluated, then copied
FUSED = S.ScalarOp("fused_exp_mul", 2, lambda a, b: np.exp(a) * b, "(exp({0}) * {1})")


# -- InplaceElemwise ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "complex128"])
def test_ufunc_row_writes_into_the_destroyed_input(dtype):
    x = (np.arange(6) % 4).reshape(2, 3).astype(dtype)
    y = np.array([1, 2, 3], dtype)
    expected = x + y
    (r,) = perform(InplaceElemwise(ADD, {0: 0}), x, y)
    assert r is x
    np.testing.assert_array_equal(r, expected)
    assert r.dtype == np.dtype(dtype)


def test_second_input_can_be_the_destroyed_one():
    x, y = np.array([1.0, 2.0]), np.array([[1.0, 1.0], [2.0, 2.0]])
    expected = x - y
    (r,) = perform(InplaceElemwise(S.TABLE["sub"], {0: 1}), x, y)
    assert r is y
    np.testing.assert_array_equal(r, expected)


@pytest.mark.parametrize("so,args", [
    (WHERE, (np.array([True, False, True]), np.arange(3.0), np.full(3, -1.0))),
    (S.TABLE["sigmoid"], (np.linspace(-3, 3, 5),)),
    (S.TABLE["clip"], (np.linspace(-3, 3, 5), np.array(-1.0), np.array(1.0))),
    (FUSED, (np.linspace(-1, 1, 4), np.arange(4.0))),
])
def test_non_ufunc_row_is_evaluated_then_copied_into_the_buffer(so, args):
    expected = Elemwise(so).perform(None, list(args))[0]
    pos = 1 if so is WHERE else 0
    (r,) = perform(InplaceElemwise(so, {0: pos}), *args)
    assert r is args[pos]
    np.testing.assert_array_equal(r, expected)


def test_zero_size_and_zero_d_buffers():
    x = np.zeros((0, 3))
    (r,) = perform(InplaceElemwise(EXP, {0: 0}), x)
    assert r is x and r.shape == (0, 3)
    s = np.array(2.0)
    (r,) = perform(InplaceElemwise(EXP, {0: 0}), s)
    assert r is s and float(s) == pytest.approx(np.exp(2.0))


def test_read_only_buffer_is_left_alone():
    x = np.arange(3.0)
    x.setflags(write=False)
    for so in (EXP, FUSED):
        args = (x,) if so is EXP else (x, np.ones(3))
        (r,) = perform(InplaceElemwise(so, {0: 0}), *args)
        assert r is not x
        np.testing.assert_array_equal(x, np.arange(3.0))
        np.testing.assert_allclose(r, np.exp(np.arange(3.0)))
    b = np.broadcast_to(np.arange(3.0), (2, 3))
    (r,) = perform(InplaceElemwise(ADD, {0: 0}), b, np.ones((2, 3)))
    np.testing.assert_array_equal(r, np.arange(3.0) + 1 + np.zeros((2, 1)))


def test_props_str_and_destroy_map():
    a, b = InplaceElemwise(ADD, {0: 1}), InplaceElemwise(ADD, [(0, 1)])
    assert a == b and hash(a) == hash(b)
    assert a != InplaceElemwise(ADD, {0: 0}) and a != Elemwise(ADD)
    assert a.destroy_map == {0: [1]} and Elemwise(ADD).destroy_map == {}
    assert str(a) == "Elemwise{add,inplace:1}"
    with pytest.raises(ValueError, match="one output"):
        InplaceElemwise(ADD, {1: 0})


def test_make_node_refuses_an_input_that_cannot_hold_the_result():
    i = ts.lvector("i")
    with pytest.raises(TypeError, match=r"output 0 \(float64\) into input 0 of dtype int64"):
        InplaceElemwise(S.TABLE["true_divide"], {0: 0})(i, i)
    row = ts.tensor("float64", (1, 3))
    with pytest.raises(ShapeError, match="broadcast"):
        InplaceElemwise(ADD, {0: 0})(row, ts.tensor("float64", (2, 3)))
    with pytest.raises(ShapeError, match="broadcast"):
        InplaceElemwise(ADD, {0: 0})(ts.dvector("v"), ts.dmatrix("m"))
    with pytest.raises(ValueError, match="does not exist"):
        InplaceElemwise(EXP, {0: 1})(ts.dvector("v"))


def test_type_and_shape_inference_are_the_parents():
    x = ts.tensor("float32", (None, 3))
    two = np.float32(2)
    y = InplaceElemwise(S.TABLE["mul"], {0: 0})(x * two, two)
    assert y.type == Elemwise(S.TABLE["mul"])(x, two).type
    f = ts.function([x], ts.shape(y), mode="NONE")
    np.testing.assert_array_equal(f(np.ones((4, 3), "float32")), [4, 3])


# -- in-place IncSubtensor ---------------------------------------------------------------------

def test_inplace_set_and_inc_write_into_x():
    x = np.zeros((3, 4))
    (r,) = perform(IncSubtensor(((1, None, None), 0), True, inplace=True), x, np.array([5.0, 6.0]))
    assert r is x
    np.testing.assert_array_equal(x[:, 0], [0, 5, 6])
    (r,) = perform(AdvancedIncSubtensor((SYM,), False, inplace=True), x, np.ones(4),
                   np.array([2, 0, 2]))
    assert r is x
    np.testing.assert_array_equal(x[:, 1], [1, 0, 2])


def test_non_inplace_and_read_only_x_are_copied():
    x = np.zeros(3)
    (r,) = perform(IncSubtensor(((1, None, None),), True), x, np.array(7.0))
    assert r is not x and not x.any()
    x.setflags(write=False)
    (r,) = perform(IncSubtensor(((1, None, None),), True, inplace=True), x, np.array(7.0))
    assert r is not x and not x.any()
    np.testing.assert_array_equal(r, [0, 7, 7])


def test_inplace_set_op_props_and_str():
    op = IncSubtensor(((1, None, None),), True, inplace=True)
    assert op.destroy_map == {0: [0]} and IncSubtensor(((1, None, None),), True).destroy_map == {}
    assert op != IncSubtensor(((1, None, None),), True)
    assert str(op) == "IncSubtensor{set, 1:, inplace}"


# -- gradients: the parent's -------------------------------------------------------------------

GRAD_CASES = {
    InplaceElemwise: [
        (lambda x: InplaceElemwise(EXP, {0: 0})(x * 2.0), [_u(2, 3)]),
        (lambda x, y: InplaceElemwise(ADD, {0: 1})(x, y * 3.0) ** 2, [_u(3), _u(2, 3)]),
    ],
}


@pytest.mark.parametrize("i", range(len(GRAD_CASES[InplaceElemwise])))
def test_verify_grad(i):
    fun, points = GRAD_CASES[InplaceElemwise][i]
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


# -- the view / destroy audit of every Op ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _load(path):
    """The test module at `path`, reusing the one pytest (or another test) already imported."""
    for mod in list(sys.modules.values()):
        if getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == path:
            return mod
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _grad_cases():
    files = sorted((ROOT / "tests" / "ops").glob("test_*.py")) + [
        ROOT / "tests" / "autodiff" / "test_helpers.py"]
    cases = []
    for path in files:
        if path.resolve() == Path(__file__).resolve():
            continue
        for entries in getattr(_load(path), "GRAD_CASES", {}).values():
            cases.extend(entries)
    return cases + list(GRAD_CASES[InplaceElemwise])


#: (function of placeholders, sample values): Ops the gradient cases do not reach, and the
#: edge cases where numpy hands back the input itself (no-op reshapes, full slices...)
EXTRA = [
    (lambda x: [ts.shape(x), ts.shape_i(x, 1), ts.argmax(x, axis=0)], [_u(2, 3)]),
    (lambda n: [ts.eye(n), ts.arange(n)], [np.array(3)]),
    (lambda n: SliceLength((1, SYM, None))(n, n - 1), [np.array(5)]),
    (lambda x, i: LastWriteMask((SYM,))(x, i), [_u(3), np.array([0, 2, 0])]),
    (lambda i: ts.one_hot(i, 4), [np.array([0, 3, 1])]),
    (lambda x: [x[:], x[...], x[0:], ts.stop_gradient(x), ts.zero_grad(x)], [_u(2, 3)]),
    (lambda x: [Reshape()(x, ts.shape_i(x, 0), ts.shape_i(x, 1)), ts.flatten(x, 2)], [_u(2, 3)]),
    (lambda x: SumToShape()(x, ts.shape(x)), [_u(2, 3)]),
    (lambda x: BroadcastTo()(x, ts.shape_i(x, 0)), [_u(3)]),
    (lambda x: ts.split(x, 1) + ts.split(x, [0]) + ts.split(x, 3), [_u(3)]),
    (lambda x: [ts.concatenate([x]), Reduce("sum", ())(x), Reduce("max", ())(x),
                CumOp("sum", 0)(x), ts.repeat(x, 1), x.astype("float64"), x.dimshuffle(0)],
     [_u(3)]),
    (lambda x: [ts.squeeze(x, 0), ts.expand_dims(x, 0), x.T], [_u(1, 3)]),
    (lambda x, y: [InplaceElemwise(ADD, {0: 0})(x * 1.0, y),
                   IncSubtensor(((1, None, None),), False, True)(x * 1.0, y[0])], [_u(3), _u(3)]),
]


def _graph(fun, points):
    """Placeholders for `points`, and the outputs of `fun` and of their gradients."""
    xs = [ts.tensor(p.dtype.name, (None,) * p.ndim) for p in points]
    outs = fun(*xs)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    floats = [o for o in outs if o.dtype[0] == "f"]
    wrt = [x for x in xs if x.dtype[0] == "f"]
    if floats and wrt:
        cost = sum(ts.sum(o) for o in floats)
        outs += ts.grad(cost, wrt, disconnected_inputs="ignore")
    return xs, outs


def _run_and_check(xs, outs, points):
    """Run every node's perform; returns (exercised Op classes, undeclared sharings)."""
    values = {id(x): p for x, p in zip(xs, points)}
    seen, bad = set(), []
    for node in applies_between(xs, outs):
        args = [values[id(v)] if id(v) in values else v.data for v in node.inputs]
        # destructive Ops get their own copies, so the checks below see only this node
        args = [a.copy() if isinstance(a, np.ndarray) and node.op.destroy_map else a for a in args]
        res = node.op.perform(node, args)
        seen.add(type(node.op))
        for i, (o, r) in enumerate(zip(node.outputs, res)):
            declared = set(node.op.destroy_map.get(i, ())) | set(node.op.view_map.get(i, ()))
            for j, a in enumerate(args):
                if j not in declared and isinstance(a, np.ndarray) and isinstance(r, np.ndarray) \
                        and np.shares_memory(r, a):
                    bad.append(f"{node.op}: output {i} shares memory with input {j}")
            values[id(o)] = np.asarray(r, dtype=o.dtype).copy()  # later nodes see fresh arrays
    return seen, bad


def test_every_op_declares_the_inputs_its_outputs_may_share_memory_with():
    seen, bad = set(), []
    for fun, points in _grad_cases() + EXTRA:
        points = [np.asarray(p) for p in points]
        s, b = _run_and_check(*_graph(fun, points), points)
        seen |= s
        bad += b
    assert not bad, sorted(set(bad))
    ours = {op for op in OP_REGISTRY if op.__module__.startswith("tracesym.")}
    assert not ours - seen, f"Ops the audit never ran: {sorted(o.__name__ for o in ours - seen)}"


def test_the_audit_catches_an_undeclared_view():
    class Leaky(Split):
        """Split without its view_map: the audit must notice."""

        abstract = True
        view_map = {}

        def make_node(self, x, *points):
            node = super().make_node(x, *points)
            self.view_map = {}
            return node

    x = ts.dvector("x")
    _, bad = _run_and_check([x], [Leaky(0, sections=1)(x)], [np.arange(3.0)])
    assert bad == ["Leaky{0, 1, True}: output 0 shares memory with input 0"]
    _, bad = _run_and_check([x], [Split(0, sections=1)(x)], [np.arange(3.0)])
    assert bad == []
