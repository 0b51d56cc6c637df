"""The rewrite engine: rules indexed by Op type and selected by tags and names, graph passes,
the equilibrium driver and its guard against rules that undo each other, the checks on what a
rule returns, what replacements inherit, the modes and every way of choosing one, and the
graph verifier."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import ConfigError
from tracesym.ops.elemwise import Elemwise
from tracesym.rewrite import engine
from tracesym.rewrite.engine import REWRITES, RewriteError, graph_pass
from tracesym.rewrite.mode import rewrite_graph
from tracesym.rewrite.verify import InvalidGraphError, check_graph, graph_problems
from tracesym.trace.graph import Apply, Graph, as_variable
from tracesym.trace.types import TensorType

# -- test-only Ops (abstract: kept out of OP_REGISTRY) -------------------------------------


class Scale(ts.Op):
    """x * k, as a user's own Op."""

    abstract = True
    differentiable = False
    __props__ = ("k",)

    def __init__(self, k):
        self.k = k

    def make_node(self, x):
        x = as_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        return (inputs[0] * self.k,)


class Ping(Scale):
    abstract = True


class Pong(Scale):
    abstract = True


@pytest.fixture
def temp_rewrites():
    """Rewrites a test registers (in the global database, as a user would) are removed after."""
    before = REWRITES.names()
    yield
    for name in REWRITES.names() - before:
        REWRITES.remove(name)


def op_types(f):
    return [type(n.op) for n in f.graph.toposort()]


def fired(f):
    return [name for name, _ in f.graph.rewrite_log]


X = np.array([0.5, -1.5, 2.0])


# -- local rules: by Op type, tags, names ---------------------------------------------------

def test_a_user_rule_for_a_user_op(temp_rewrites, checked_rewrites):
    @ts.node_rewriter([Scale], tags=("canonicalize",))
    def scale_by_one(graph, node):
        """scale(x, 1) -> x"""
        if node.op.k == 1:
            return [node.inputs[0]]

    x = ts.dvector("x")
    f = ts.function([x], Scale(1)(x) * 3.0)
    assert Scale not in op_types(f) and ("scale_by_one", "Scale{1}") in f.graph.rewrite_log
    np.testing.assert_array_equal(f(X), X * 3.0)
    g = ts.function([x], Scale(2)(x) * 3.0)  # the rule does not fire where it must not
    assert Scale in op_types(g) and "scale_by_one" not in fired(g)
    np.testing.assert_array_equal(g(X), X * 6.0)


def test_rules_only_visit_nodes_of_their_op_types(temp_rewrites):
    seen = []

    @ts.node_rewriter([Scale], tags=("canonicalize",))
    def watch_scale(graph, node):
        """(records what it is shown)"""
        seen.append(type(node.op))

    x = ts.dvector("x")
    ts.function([x], ts.exp(Ping(2)(x) + 1.0))
    assert seen and set(seen) == {Ping}  # subclasses match; Elemwise nodes are never shown


def test_excluding_and_including_by_tag_or_name(temp_rewrites):
    @ts.node_rewriter([Scale], tags=("specialize", "my_tag"))
    def drop_scale(graph, node):
        """scale(x, k) -> x * k"""
        return [node.inputs[0] * node.op.k]

    x = ts.dvector("x")
    y = Scale(3)(x)
    assert Scale not in op_types(ts.function([x], y))
    for mode in (ts.Mode(exclude=["drop_scale"]), ts.Mode(exclude=["my_tag"]),
                 ts.Mode(exclude=["specialize"]), ts.Mode().excluding("my_tag"), "FAST_COMPILE", "NONE"):
        f = ts.function([x], y, mode=mode)
        assert Scale in op_types(f), mode
        np.testing.assert_allclose(f(X), 3 * X)
    f = ts.function([x], y, mode=ts.Mode(None, include=["drop_scale"]))
    assert Scale not in op_types(f) and fired(f) == ["drop_scale"]  # only the one included
    assert Scale not in op_types(ts.function([x], y, mode=ts.Mode("fast_compile").including("my_tag")))


def test_registration_errors(temp_rewrites):
    with pytest.raises(ValueError, match="needs a phase"):
        ts.node_rewriter([Scale], tags=("my_tag",))(lambda g, n: None)
    with pytest.raises(ValueError, match="needs a phase"):
        graph_pass("optimize")
    with pytest.raises(TypeError, match="watches Op classes"):
        ts.node_rewriter([Scale(2)])
    with pytest.raises(ValueError, match="'constant_folding' is already registered"):
        ts.node_rewriter([Scale], name="constant_folding")(lambda g, n: None)
    with pytest.raises(KeyError, match="no rewrite named 'nope'"):
        REWRITES.remove("nope")


def test_a_chain_of_rewrites_settles_in_one_sweep(temp_rewrites):
    """Each rewrite builds a node the next one rewrites: the engine visits new nodes at once,
    so a long chain settles without hitting the guard."""
    @ts.node_rewriter([Scale], tags=("canonicalize",))
    def count_down(graph, node):
        """scale(x, k) -> scale(x * 1, k - 1) ... -> x (k >= 1)"""
        if node.op.k > 0 and type(node.op) is Scale:
            return [Scale(node.op.k - 1)(node.inputs[0])] if node.op.k > 1 else [node.inputs[0]]

    x = ts.dvector("x")
    f = ts.function([x], Scale(500)(x) + 1.0, mode=ts.Mode(None, include=["count_down"]))
    assert fired(f).count("count_down") == 500 and Scale not in op_types(f)
    np.testing.assert_array_equal(f(X), X + 1.0)


# -- what a rule may return -------------------------------------------------------------------

def test_a_rule_changing_the_dtype_is_named(temp_rewrites):
    @ts.node_rewriter([Scale], tags=("canonicalize",))
    def to_float32(graph, node):
        """(wrong: changes the dtype)"""
        return [node.inputs[0].astype("float32")]

    x = ts.dvector("x")
    with pytest.raises(RewriteError, match=r"rewrite to_float32 replaced .*float64\[\?\].* by "
                                           r".*float32\[\?\].*must keep the dtype"):
        ts.function([x], Scale(2)(x))


def test_a_rule_changing_the_broadcast_pattern_is_named(temp_rewrites):
    @ts.node_rewriter([Scale], tags=("canonicalize",))
    def swap_input(graph, node):
        """(wrong: the replacement is not broadcastable where the original is)"""
        return [ts.dmatrix("other")]

    x = ts.tensor("float64", (1, None), name="x")
    with pytest.raises(RewriteError, match=r"swap_input replaced .*float64\[1,\?\].*broadcast pattern"):
        ts.function([x], Scale(2)(x))


def test_a_rule_returning_the_wrong_number_or_a_cycle_is_named(temp_rewrites):
    @ts.node_rewriter([Ping], tags=("canonicalize",))
    def two_for_one(graph, node):
        """(wrong: one output, two replacements)"""
        return [node.inputs[0], node.inputs[0]]

    @ts.node_rewriter([Pong], tags=("canonicalize",))
    def uses_itself(graph, node):
        """(wrong: the replacement reads the variable it replaces)"""
        return [node.outputs[0] * 1.0]

    x = ts.dvector("x")
    with pytest.raises(RewriteError, match="two_for_one returned 2 replacement.*1 output"):
        ts.function([x], Ping(2)(x))
    with pytest.raises(RewriteError, match="uses_itself replaced .* uses it: the graph would have a cycle"):
        ts.function([x], Pong(2)(x))


def test_two_rules_undoing_each_other_are_both_named(temp_rewrites):
    @ts.node_rewriter([Ping], tags=("canonicalize",))
    def ping_to_pong(graph, node):
        """ping(x) -> pong(x)"""
        return [Pong(node.op.k)(node.inputs[0])]

    @ts.node_rewriter([Pong], tags=("canonicalize",))
    def pong_to_ping(graph, node):
        """pong(x) -> ping(x)"""
        return [Ping(node.op.k)(node.inputs[0])]

    x = ts.dvector("x")
    with pytest.raises(RewriteError, match="did not settle") as e:
        ts.function([x], ts.exp(Ping(2)(x)))
    msg = str(e.value)
    assert "ping_to_pong" in msg and "pong_to_ping" in msg and "exclude" in msg
    f = ts.function([x], ts.exp(Ping(2)(x)), mode=ts.Mode(exclude=["pong_to_ping"]))  # the advice works
    assert Pong in op_types(f) and Ping not in op_types(f)


def test_a_rule_returning_what_it_was_given_changes_nothing(temp_rewrites):
    @ts.node_rewriter([Scale], tags=("canonicalize",))
    def identity(graph, node):
        """x -> x (fires, changes nothing: must not loop)"""
        return {node.outputs[0]: node.outputs[0]}

    x = ts.dvector("x")
    f = ts.function([x], Scale(2)(x))
    assert "identity" not in fired(f) and Scale in op_types(f)


# -- what replacements inherit ----------------------------------------------------------------

def test_replacements_keep_name_and_source_line(temp_rewrites, checked_rewrites):
    @ts.node_rewriter([Scale], tags=("canonicalize",))
    def scale_to_mul(graph, node):
        """scale(x, k) -> x * k"""
        x = node.inputs[0]
        return {node.outputs[0]: ts.exp(ts.log(x)) * node.op.k if node.op.k == 5 else x * node.op.k}

    x = ts.dvector("x")
    y = Scale(3)(x)
    y.name = "y"
    f = ts.function([x], y, mode=ts.Mode(None, include=["scale_to_mul"]))
    out = f.graph.outputs[0]
    assert out is not y and isinstance(out.owner.op, Elemwise)
    assert out.name == "y" and out.source == y.source
    assert y.source.filename == __file__ and "Scale(3)(x)" in y.source.text()
    z = Scale(5)(x)  # every node the rule built carries the replaced variable's line
    g = ts.function([x], z, mode=ts.Mode(None, include=["scale_to_mul"]))
    assert len(g.graph.toposort()) == 3
    assert all(o.source == z.source for n in g.graph.toposort() for o in n.outputs)
    np.testing.assert_allclose(g(np.abs(X)), 5 * np.abs(X))


def test_the_users_variables_are_not_touched(temp_rewrites):
    x = ts.dvector("x")
    y = ts.log(1 + x)
    before = (y.owner.op, list(y.owner.inputs))
    f = ts.function([x], y)
    assert "log1p_from_log_add" in fired(f)
    assert (y.owner.op, list(y.owner.inputs)) == before and f.unoptimized_graph.outputs[0] is y


# -- graph passes -------------------------------------------------------------------------------

def test_a_graph_pass_runs_in_its_phase_and_is_selected_by_tag_and_name(temp_rewrites):
    calls = []

    @graph_pass("specialize", tags=("counting",))
    def count_nodes(graph):
        """(records the graph size at the start of phase specialize)"""
        calls.append(len(graph.apply_nodes()))

    x = ts.dvector("x")
    y = ts.exp(x) * 2.0
    ts.function([x], y)
    assert calls == [2]
    for mode in ("NONE", "FAST_COMPILE", ts.Mode(exclude=["counting"]), ts.Mode(exclude=["count_nodes"])):
        ts.function([x], y, mode=mode)
    assert calls == [2]
    ts.function([x], y, mode=ts.Mode(None, include=["counting"]))
    assert calls == [2, 2]


# -- modes --------------------------------------------------------------------------------------

def test_modes_select_the_catalogue(checked_rewrites):
    x = ts.dvector("x")
    y = ts.log(1 + x) + ts.exp(x) * ts.exp(x) + (ts.constant(2.0) * 3.0)
    fast = ts.function([x], y)
    cheap = ts.function([x], y, mode="FAST_COMPILE")
    none = ts.function([x], y, mode="NONE")
    assert "log1p_from_log_add" in fired(fast)
    assert set(fired(cheap)) == {"merge", "constant_folding"}  # merge and folding only
    assert fired(none) == [] and none.graph is none.unoptimized_graph
    exps = [n for n in cheap.graph.toposort() if str(n.op) == "Elemwise{exp}"]
    assert len(exps) == 1
    v = np.array([0.1, 1e-20, 3.0])
    for f in (fast, cheap):
        np.testing.assert_allclose(f(v), none(v), rtol=1e-15)


def test_mode_names_are_case_insensitive_and_mode_objects_compare_by_value():
    from tracesym.rewrite import get_mode

    assert get_mode("fast_run") is get_mode("FAST_RUN") and get_mode("none").optimizer is None
    assert ts.Mode("FAST_COMPILE") == ts.Mode("fast_compile") != ts.Mode()
    assert len({ts.Mode(), ts.Mode("fast_run"), ts.Mode(exclude=["a"])}) == 2
    m = ts.Mode(include=["a"], exclude=["b"])
    assert m.excluding("a") == ts.Mode(exclude=["a", "b"]) and m.including("b") == ts.Mode(include=["a", "b"])
    assert repr(m) == "Mode(optimizer='fast_run', linker=None, include=['a'], exclude=['b'])"
    assert ts.Mode(linker="numpy").linker == "numpy"


def test_unknown_modes_are_config_errors():
    x = ts.dvector("x")
    with pytest.raises(ConfigError, match="unknown mode 'FAST'.*FAST_RUN, FAST_COMPILE, NONE"):
        ts.function([x], x * 2, mode="FAST")
    with pytest.raises(ConfigError, match="unknown optimizer 'fastest'"):
        ts.Mode("fastest")
    with pytest.raises(ConfigError, match="unknown linker 'vm'.*'numpy'"):
        ts.Mode(linker="vm")
    with pytest.raises(ConfigError, match=r"exclude=\['stabilize'\]"):
        ts.Mode(exclude="stabilize")
    with pytest.raises(ConfigError, match="mode: accepted values are FAST_RUN, FAST_COMPILE, NONE"):
        ts.config.mode = "FASTEST"
    with pytest.raises(ConfigError, match="unknown mode 'fast'"):  # at the decorator
        @ts.compile(mode="fast")
        def f(x):
            return x * 2


def test_the_mode_of_compile_and_of_config():
    @ts.compile(mode="FAST_COMPILE")
    def cheap(x):
        return ts.log(1 + x)

    @ts.compile
    def default(x):
        return ts.log(1 + x)

    np.testing.assert_allclose(cheap(X[X > -1]), np.log1p(X[X > -1]))
    assert fired(cheap.specialize(X)) == []  # log(1 + x) kept
    assert "log1p_from_log_add" in fired(default.specialize(X))
    x = ts.dvector("x")
    with ts.config.change(mode="NONE"):
        f = ts.function([x], ts.log(1 + x))
        assert f.mode == ts.Mode(None) and f.graph is f.unoptimized_graph
    assert ts.function([x], ts.log(1 + x)).mode == ts.Mode()  # the flag was restored
    ts.config.mode = "FAST_COMPILE"
    g = ts.function([x], ts.log(1 + x))
    ts.config.mode = "FAST_RUN"  # the function keeps the mode it was compiled with
    assert g.mode == ts.Mode("fast_compile") and fired(g) == []


def test_the_mode_from_tracesym_flags():
    code = ("import tracesym as ts; x = ts.dvector('x'); f = ts.function([x], ts.log(1 + x)); "
            "print(ts.config.mode, f.mode.optimizer, len(f.graph.rewrite_log))")
    env = dict(os.environ, TRACESYM_FLAGS="mode=FAST_COMPILE", TRACESYMRC=os.devnull)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["FAST_COMPILE", "fast_compile", "0"]


def test_rewrite_is_public_for_inspection(checked_rewrites):
    x = ts.dvector("x")
    y = ts.log(1 + x)
    g = ts.rewrite(y)
    assert isinstance(g, Graph) and g.inputs[0] is x and len(g.inputs) == 1
    assert "log1p_from_log_add" in [n for n, _ in g.rewrite_log]
    traced = Graph([x], [y])
    assert ts.rewrite(traced, "NONE") is traced
    assert ts.rewrite([y, ts.exp(x)], "FAST_COMPILE", inputs=[x]).outputs[0].owner.op == y.owner.op
    assert y.owner.inputs[0].owner is not None  # still the user's log(1 + x)


# -- the graph verifier ------------------------------------------------------------------------

def _sound():
    x, w = ts.dmatrix("x"), ts.dmatrix("w")
    return x, w, Graph([x, w], [ts.tanh(x @ w).sum(axis=1), ts.exp(x)])


def test_the_verifier_accepts_sound_graphs():
    x, w, g = _sound()
    assert check_graph(g) is g
    W = ts.shared(np.ones((3, 2)), name="W")
    y = ts.lvector("y")
    cost = -ts.log(ts.softmax(x @ W))[ts.arange(y.shape[0]), y].mean()
    f = ts.function([x, y], cost, updates=[(W, W - 0.1 * ts.grad(cost, W))])
    assert graph_problems(f.graph) == [] and graph_problems(f.unoptimized_graph) == []
    # and it runs after every phase of a rewrite
    assert graph_problems(rewrite_graph(f.unoptimized_graph, "FAST_RUN", check=True)) == []


def test_the_verifier_finds_a_wrong_stored_type():
    x, w, g = _sound()
    t = next(n for n in g.toposort() if str(n.op) == "Elemwise{tanh}")
    t.outputs[0].type = TensorType("float32", (None, None))
    with pytest.raises(InvalidGraphError, match=r"(?s)Elemwise\{tanh\} \(from .*test_engine.py:\d+\): output 0 .* "
                                                r"float32\[\?,\?\], but make_node infers float64\[\?,\?\]"):
        check_graph(g)


def test_the_verifier_accepts_a_stored_type_that_knows_less_not_one_that_knows_otherwise():
    x = ts.tensor("float64", (3, 1), name="x")
    y = ts.exp(x)
    g = Graph([x], [y])
    y.type = TensorType("float64", (None, None))  # stale but true: re-inference knows more
    assert graph_problems(g) == []
    y.type = TensorType("float64", (3, 2))
    [problem] = graph_problems(g)
    assert "float64[3,2], but make_node infers float64[3,1]" in problem


def test_the_verifier_finds_inputs_an_op_rejects_and_edges_that_disagree():
    x, w, g = _sound()
    dot = next(n for n in g.toposort() if "MatMul" in str(n.op) or "Dot" in str(n.op))
    v = ts.dscalar("v")
    g.add_node(v, kind="variable")
    dot.inputs[1] = v  # without its edge
    problems = graph_problems(g)
    assert any("no edge for input 1 (v)" in p for p in problems), problems
    assert any("an edge says w is input 1, Apply.inputs disagrees" in p for p in problems), problems
    assert any("make_node rejects its inputs (float64[?,?], float64[])" in p for p in problems), problems


def test_the_verifier_finds_cycles_missing_outputs_free_and_dead_variables():
    x, w, g = _sound()
    exp = g.outputs[1].owner
    g.add_edge(g.outputs[1], exp, positions=[0])
    [problem] = graph_problems(g)
    assert problem.startswith("the graph has a cycle through") and "Elemwise{exp}" in problem
    g.remove_edge(g.outputs[1], exp)
    g.outputs.append(ts.dvector("lost"))
    free = ts.dmatrix("free")
    dead = ts.cos(x)
    g.import_var(dead)
    g.import_var(free)
    g.add_edge(free, exp, positions=[1])  # exp now also (wrongly) reads `free`
    problems = graph_problems(g)
    assert "output 2 (lost) is not in the graph" in problems
    assert any(p.startswith("free (float64[?,?]): a free variable") for p in problems), problems
    assert any(p.startswith("Elemwise{cos}") and "dead node" in p for p in problems), problems
    assert any("an edge says free is input 1" in p for p in problems), problems
    with pytest.raises(InvalidGraphError, match="invalid graph Graph"):
        check_graph(g)


def test_rewriting_with_check_names_the_phase_and_the_rule(temp_rewrites):
    @ts.node_rewriter([Scale], tags=("stabilize",))
    def corrupting(graph, node):
        """(wrong: edits another node's type behind the engine's back)"""
        client = next(iter(graph.successors(node.outputs[0])))
        client.outputs[0].type = TensorType("float32", (None,))
        return [node.inputs[0] * node.op.k]

    x = ts.dvector("x")
    y = ts.exp(Scale(2)(x))
    with pytest.raises(InvalidGraphError, match=r"(?s)after phase stabilize \(rewrites that fired in it: "
                                                r"corrupting\): .*Elemwise\{exp\}.*float32\[\?\], "
                                                r"but make_node infers float64\[\?\]"):
        rewrite_graph(Graph([x], [y]), "FAST_RUN", check=True)


def test_the_guard_scales_with_the_graph(monkeypatch, temp_rewrites):
    """The firing budget is per node: a small budget trips on a legitimate long chain."""
    @ts.node_rewriter([Scale], tags=("canonicalize",))
    def halve(graph, node):
        """scale(x, k) -> scale(x, k // 2) (k even)"""
        if node.op.k % 2 == 0:
            return [Scale(node.op.k // 2)(node.inputs[0])]

    x = ts.dvector("x")
    y = Scale(2 ** 30)(x)
    monkeypatch.setattr(engine, "MAX_FIRINGS_PER_NODE", 0)
    with pytest.raises(RewriteError, match="firings on a graph of .* still firing: halve"):
        ts.function([x], y)
    monkeypatch.undo()
    f = ts.function([x], y)
    assert [str(n.op) for n in f.graph.toposort()] == ["Scale{1}"]
