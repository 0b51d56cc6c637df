"""A function's scans specialised before its first call runs them (`loops/warm.py`): the
shapes each scan meets worked out from the arguments', every step lowered at once, and a
wrong or missing guess costing nothing but the guess."""

import threading

import numpy as np
import pytest

import tracesym as ts
from tracesym.loops import Scan, warm
from tracesym.trace import function as function_module

from .test_scan_specialize import B, H, T, lstm_grads


def scans(f):
    return [n for n in f.graph.toposort() if isinstance(n.op, Scan)]


@pytest.fixture
def lstm(rng):
    A, Wh = ts.dtensor3("A"), ts.dmatrix("Wh")
    values = [rng.normal(size=(T, B, 4 * H)), rng.normal(size=(H, 4 * H)) * 0.5]
    return [A, Wh], lstm_grads(A, Wh), values


def _reference(inputs, grads, values):
    return ts.function(inputs, grads, mode="NONE")(*values)


@pytest.mark.parametrize("linker", ["numpy", "c"])
def test_the_shapes_each_scan_meets_are_worked_out_before_the_first_call(lstm, linker):
    inputs, grads, values = lstm
    f = ts.function(inputs, grads, mode=ts.Mode(linker=linker))
    nodes = scans(f)
    assert len(nodes) == 2 and all(not n.op._special for n in nodes)
    guessed = {}
    warm.walk(f.graph.inputs, values, f.graph.toposort(),
              lambda node, sig: node.op._rewritten(guessed.setdefault(node, sig)))
    assert set(guessed) == set(nodes)
    for got, want in zip(f(*values), _reference(inputs, grads, values)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for n in nodes:  # the loops met exactly the shapes guessed, and took the warmed steps
        assert list(n.op._special) == [guessed[n]] and not n.op._warming


def test_the_first_call_starts_every_step_before_any_loop_runs(lstm, monkeypatch):
    inputs, grads, values = lstm
    seen, nodes = [], []
    perform = Scan.perform

    def record(self, node, args):
        seen.append(sum(len(n.op._warming) + len(n.op._special) for n in nodes))
        return perform(self, node, args)

    monkeypatch.setattr(Scan, "perform", record)  # before the steps bind it
    f = ts.function(inputs, grads)
    nodes += scans(f)
    f(*values)
    assert seen == [2, 2]  # both steps started (or done) when the first loop began
    f(*values)  # later calls do not guess again
    assert all(len(n.op._special) == 1 for n in nodes)


def test_a_wrong_guess_is_dropped_and_the_loop_specialises_as_it_runs(lstm, monkeypatch):
    inputs, grads, values = lstm
    guesses = []

    def wrong(inputs_, values_, order, at_scan):  # the forward loop, on batches of one
        node = next(n for n in order if isinstance(n.op, Scan))
        sig = (((1, 4 * H),), ((B, H), (B, H)), (((H, 4 * H), None),))
        guesses.append((node.op, sig, at_scan(node, sig)))

    monkeypatch.setattr(warm, "walk", wrong)
    f = ts.function(inputs, grads)
    for got, want in zip(f(*values), _reference(inputs, grads, values)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    ((op, sig, step),) = guesses
    assert step is not None  # it was lowered, and no loop took it
    assert sig not in op._special and not op._warming and len(op._special) == 1


def test_shapes_that_depend_on_computed_values_are_left_to_the_loop(rng):
    x = ts.dvector("x")
    kept = x[:ts.argmax(x) + 1]  # how many rows: known only once computed
    seq = ts.stack([kept, 2 * kept], axis=1)
    hs, _ = ts.scan(lambda a, h: h + a, sequences=seq, outputs_info=ts.zeros(2))
    g = ts.grad(hs[-1].sum(), x)
    f = ts.function([x], [hs[-1], g])
    assert len(scans(f)) == 2
    xv = rng.normal(size=9)
    guessed = []
    warm.walk(f.graph.inputs, [xv], f.graph.toposort(), lambda node, sig: guessed.append(node))
    assert guessed == []
    n = int(np.argmax(xv)) + 1
    last, grad = f(xv)
    np.testing.assert_allclose(last, [xv[:n].sum(), 2 * xv[:n].sum()])
    np.testing.assert_allclose(grad, np.where(np.arange(9) < n, 3.0, 0.0))


def test_a_function_with_one_scan_guesses_nothing(rng):
    x = ts.dmatrix("x")
    hs, _ = ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.zeros(3))
    f = ts.function([x], hs)
    assert warm.warmer(f.graph) is None
    assert "warm" in function_module.HOOKS and warm.warmer in function_module.HOOKS["warm"]
    xv = rng.normal(size=(4, 3))
    np.testing.assert_allclose(f(xv), np.cumsum(xv, axis=0))


def _blocking_linker(monkeypatch, started, outer):
    """The "c" linker, made to link the function's own graph (the first it is given) only
    once `started` is set, or after 10 s; `outer` receives whether it was."""
    real = function_module.LINKERS["c"]

    def link(graph, cfg):
        if not outer:
            outer.append(started.wait(10))
        return real(graph, cfg)

    link.prepare, link.many = real.prepare, real.many
    monkeypatch.setitem(function_module.LINKERS, "c", link)


def test_the_graph_links_while_the_first_call_starts_its_steps(lstm, monkeypatch):
    inputs, grads, values = lstm
    started, outer = threading.Event(), []
    _blocking_linker(monkeypatch, started, outer)
    warm_step = Scan.warm
    monkeypatch.setattr(Scan, "warm", lambda self, sig: started.set() or warm_step(self, sig))
    f = ts.function(inputs, grads, mode=ts.Mode(linker="c"))
    assert not started.is_set()  # construction returned while the link waits
    for got, want in zip(f(*values), _reference(inputs, grads, values)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert outer == [True]  # the steps were started before the graph's link was done
    assert f._runner.fresh is not None and f._run is f._runner.validated


def test_a_link_error_is_raised_by_every_call(lstm, monkeypatch):
    inputs, grads, values = lstm
    real = function_module.LINKERS["c"]

    def failing(graph, cfg):
        raise RuntimeError("the linker failed")

    failing.prepare, failing.many = real.prepare, real.many
    monkeypatch.setitem(function_module.LINKERS, "c", failing)
    f = ts.function(inputs, grads, mode=ts.Mode(linker="c"))
    for _ in range(2):
        with pytest.raises(RuntimeError, match="the linker failed"):
            f(*values)
