"""The cheap rewrites every mode but NONE runs: merging equal subgraphs (equal constants
included), dead code removal, and constant folding with its size cap.  Structure is checked
in FAST_COMPILE (merge and folding only), numbers against mode NONE."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.ops.blas import MatMul
from tracesym.rewrite import merge as M
from tracesym.trace.graph import Apply, Constant, as_variable

CHEAP = "FAST_COMPILE"
#: the reference for folded constants: folding computes with numpy, and the C linker's exp may
#: round differently from numpy's
NUMPY_NONE = ts.Mode(None, linker="numpy")


@pytest.fixture(autouse=True)
def _verified(checked_rewrites):
    """Every graph here is checked after each phase."""


def ops(f):
    return [str(n.op) for n in f.graph.toposort()]


def fired(f):
    return [name for name, _ in f.graph.rewrite_log]


def both(inputs, outputs, mode=CHEAP, reference="NONE"):
    return (ts.function(inputs, outputs, mode=mode, on_unused_input="ignore"),
            ts.function(inputs, outputs, mode=reference, on_unused_input="ignore"))


def same(a, b):
    for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)


RNG = np.random.default_rng(0)
XV, WV = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 5))


# -- merge ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["FAST_COMPILE", "FAST_RUN"])
def test_two_copies_of_tanh_of_a_dot_compile_to_one_dot(mode):
    x, w = ts.dmatrix("x"), ts.dmatrix("w")
    f, g = both([x, w], [ts.tanh(x @ w), ts.tanh(x @ w) * 2.0], mode)
    assert [type(n.op) for n in f.graph.toposort()].count(MatMul) == 1
    assert [type(n.op) for n in g.graph.toposort()].count(MatMul) == 2
    same(f(XV, WV), g(XV, WV))


def test_equal_constants_merge_and_so_do_the_nodes_reading_them():
    x = ts.dvector("x")
    a, b = x + 2.0, x + np.float64(2.0)  # two Constant objects with one value
    assert a.owner.inputs[1] is not b.owner.inputs[1]
    f, g = both([x], a * b)
    assert ops(f) == ["Elemwise{add}", "Elemwise{mul}"]
    mul = f.graph.toposort()[1]
    assert mul.inputs[0] is mul.inputs[1]
    assert sum(isinstance(v, Constant) for v in f.graph.nodes) == 1
    same(f(XV[0]), g(XV[0]))


def test_merging_cascades_through_a_whole_subgraph():
    x, y = ts.dmatrix("x"), ts.dmatrix("y")

    def branch():
        return ts.exp((x * 2.0 + y).sum(axis=1)) - 1.0

    f, g = both([x, y], [branch(), branch(), branch() / 3.0])
    assert len(f.graph.toposort()) == 6  # one branch (5 nodes) and the division
    assert f.graph.outputs[0] is f.graph.outputs[1]
    same(f(XV, XV * 3), g(XV, XV * 3))


@pytest.mark.parametrize("pair", [
    lambda x, y: (x + np.float32(2.0), x + 2.0),      # constants of different dtypes
    lambda x, y: (x + 2.0, x + np.array([2.0, 2.0, 2.0])),  # or different shapes
    lambda x, y: (x + 2.0, x + 3.0),                  # or different values
    lambda x, y: (x - y, y - x),                      # inputs in another order
    lambda x, y: (x.sum(axis=0), x.sum(axis=0, keepdims=True)),  # Ops with other props
    lambda x, y: (x.sum(), x.prod()),                 # different Ops
])
def test_what_differs_does_not_merge(pair):
    x, y = ts.dvector("x"), ts.dvector("y")
    a, b = pair(x, y)
    f, g = both([x, y], [a, b])
    assert f.graph.outputs[0] is not f.graph.outputs[1]
    v = np.array([1.0, -2.0, 0.5])
    same(f(v, v[::-1].copy()), g(v, v[::-1].copy()))


def test_ops_with_different_props_do_not_merge():
    x = ts.dmatrix("x")
    f, g = both([x], [x.sum(axis=0), x.sum(axis=1), x.sum(axis=0)])
    assert len(f.graph.toposort()) == 2 and f.graph.outputs[0] is f.graph.outputs[2]
    same(f(XV), g(XV))


def test_a_merged_node_keeps_the_users_name_and_the_first_line():
    x = ts.dvector("x")
    a = ts.exp(x)
    b = ts.exp(x)
    b.name = "b"
    f = ts.function([x], [a, b], mode=CHEAP)
    out = f.graph.outputs[0]
    assert f.graph.outputs[1] is out and out.name == "b" and out.source == a.source
    assert fired(f) == ["merge"]
    assert a.name is None  # the user's variables are not touched


def test_nodes_with_unhashable_props_are_left_alone():
    class Tagged(ts.Op):
        """An Op whose props hold a list (unhashable): it merges with nothing."""

        abstract = True
        differentiable = False
        __props__ = ("labels",)

        def __init__(self, labels):
            self.labels = labels

        def make_node(self, x):
            x = as_variable(x)
            return Apply(self, [x], [x.type.make_variable()])

        def perform(self, node, inputs):
            return (inputs[0] + len(self.labels),)

    x = ts.dvector("x")
    f, g = both([x], [Tagged(["a"])(x), Tagged(["a"])(x)])
    assert len(f.graph.toposort()) == 2
    same(f(XV[0]), g(XV[0]))


# -- dead code -------------------------------------------------------------------------------

def test_what_folding_makes_unused_is_removed():
    x = ts.dvector("x")
    k = ts.exp(ts.constant(np.arange(3.0))) * 2.0  # computed from constants only
    f, g = both([x], x + k, reference=NUMPY_NONE)
    assert ops(f) == ["Elemwise{add}"]
    consts = [v for v in f.graph.nodes if isinstance(v, Constant)]
    assert len(consts) == 1 and consts[0] is f.graph.toposort()[0].inputs[1]
    same(f(XV[0]), g(XV[0]))


# -- constant folding ------------------------------------------------------------------------

def test_constants_fold_and_numbers_match_numpy():
    x = ts.dvector("x")
    c = ts.constant(np.arange(3.0))
    folded = ts.exp(c) * 2.0 + ts.sqrt(c)
    f, g = both([x], x * folded, reference=NUMPY_NONE)
    assert ops(f) == ["Elemwise{mul}"] and "constant_folding" in fired(f)
    k = f.graph.toposort()[0].inputs[1]
    assert isinstance(k, Constant) and k.type.shape == (3,)
    np.testing.assert_array_equal(k.data, np.exp(np.arange(3.0)) * 2.0 + np.sqrt(np.arange(3.0)))
    same(f(XV[0]), g(XV[0]))


def test_an_output_that_is_all_constant_becomes_a_constant():
    x = ts.dvector("x")
    f, g = both([x], [x + 1.0, ts.constant(np.float32(3.0)) * np.float32(2)])
    const = f.graph.outputs[1]
    assert isinstance(const, Constant) and const.dtype == "float32"
    r = f(XV[0])[1]
    assert r.dtype == np.float32 and r == 6.0 and r.flags.writeable
    same(f(XV[0]), g(XV[0]))


def test_folding_stops_at_the_size_cap():
    n = M.FOLD_MAX_BYTES // 8  # float64 elements in the cap
    x = ts.dvector("x")
    at_cap = ts.constant(np.ones(n)) + 1.0
    over = ts.constant(np.ones(n + 1)) + 1.0
    f, g = both([x], [x.sum() + at_cap, x.sum() * over])
    first, second = f.graph.outputs
    assert isinstance(first.owner.inputs[1], Constant)  # at the cap: folded
    assert str(second.owner.inputs[1].owner.op) == "Elemwise{add}"  # over it: left to run time
    same(f(XV[0]), g(XV[0]))


def test_a_result_too_big_to_fold_is_computed_once_per_compile():
    """Its size is known only after computing it; the refusal is remembered, so later sweeps
    do not compute it again."""
    calls = []

    class Repeat(ts.Op):
        """x repeated n times: the static size is unknown."""

        abstract = True
        differentiable = False

        def make_node(self, x):
            x = as_variable(x)
            return Apply(self, [x], [ts.TensorType(x.dtype, (None,)).make_variable()])

        def perform(self, node, inputs):
            calls.append(1)
            return (np.repeat(inputs[0], 1 << 18),)

    x = ts.dvector("x")
    folds = ts.constant(2.0) * 3.0  # a rule fires, so the phase takes a second sweep
    f = ts.function([x], x.sum() * folds + Repeat()(ts.constant(np.array([1.0]))))
    assert calls == [1] and "constant_folding" in fired(f)
    assert any(str(n.op) == "Repeat" for n in f.graph.toposort())


def test_failing_and_random_ops_are_left_to_run_time():
    class Failing(ts.Op):
        abstract = True
        differentiable = False

        def make_node(self, x):
            x = as_variable(x)
            return Apply(self, [x], [x.type.make_variable()])

        def perform(self, node, inputs):
            raise ValueError("no value for you")

    class Draw(Failing):
        abstract = True
        foldable = False

        def perform(self, node, inputs):
            return (inputs[0] + np.random.default_rng().random(),)

    x = ts.dvector("x")
    f = ts.function([x], [x + Failing()(ts.constant(np.zeros(2))), x + Draw()(ts.constant(np.zeros(2)))])
    assert [str(n.op) for n in f.graph.toposort()].count("Failing") == 1
    assert [str(n.op) for n in f.graph.toposort()].count("Draw") == 1
    with pytest.raises(ts.OpRuntimeError, match="Failing") as e:
        f(np.zeros(2))
    assert "no value for you" in str(e.value) and "test_merge.py" in str(e.value)


def test_none_mode_keeps_the_graph_as_traced():
    x = ts.dvector("x")
    y = (x + 2.0) * (x + 2.0) + ts.constant(1.0) * 2.0
    f = ts.function([x], y, mode="NONE")
    assert f.graph is f.unoptimized_graph and len(f.graph.toposort()) == 5
