"""Compiling a function pauses Python's cyclic garbage collector, and always restores it."""

import gc

import numpy as np
import pytest

import tracesym as ts
from tracesym.trace import function as F


@pytest.fixture
def spy_linker(monkeypatch):
    """A linker that records whether the collector ran while it linked (and can fail)."""
    seen = []

    def link(graph, config):
        seen.append(gc.isenabled())
        if link.fail:
            raise RuntimeError("link failed")
        return F.LINKERS["numpy"](graph, config)

    link.fail = False
    monkeypatch.setitem(F.LINKERS, "spy", link)
    return seen, link


def test_the_collector_is_paused_while_compiling_and_running_after(spy_linker):
    seen, _ = spy_linker
    assert gc.isenabled()
    x = ts.dvector("x")
    f = ts.function([x], ts.exp(x) + 1, mode=ts.Mode(linker="spy"))
    assert seen == [False] and gc.isenabled()
    np.testing.assert_allclose(f(np.zeros(3)), 2.0)


def test_the_collector_runs_again_after_a_failed_compile(spy_linker):
    seen, link = spy_linker
    link.fail = True
    x = ts.dvector("x")
    with pytest.raises(RuntimeError, match="link failed"):
        ts.function([x], ts.exp(x), mode=ts.Mode(linker="spy"))
    assert seen == [False] and gc.isenabled()


def test_a_caller_that_paused_the_collector_keeps_it_paused(spy_linker):
    seen, _ = spy_linker
    x = ts.dvector("x")
    gc.disable()
    try:
        ts.function([x], ts.exp(x), mode=ts.Mode(linker="spy"))
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert seen == [False]
