"""A scan whose step is one C entry runs all its steps in one C call (`Scan._c_steps`,
`entry.render_loop`): every storage kind of a recurrent output, per-step outputs, backwards
sequences and matrix products, against numpy loops; a step that fails, or a C loop cut
short, hands the rest of the loop to Python."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.backend.c import cache, entry
from tracesym.errors import TracesymError

pytestmark = pytest.mark.skipif(cache.toolchain_problem() is not None, reason="no C toolchain")

C = ts.Mode(linker="c")


@pytest.fixture
def c_loops(monkeypatch):
    """The (first step, last step + 1, steps done) of every C loop run from now on."""
    runs = []
    call = entry.Loop.__call__

    def counted(self, plan, walks, lo, hi):
        done = call(self, plan, walks, lo, hi)
        runs.append((lo, hi, done))
        return done

    monkeypatch.setattr(entry.Loop, "__call__", counted)
    return runs


def test_a_running_sum_and_its_last_value(rng, c_loops):
    x = ts.dvector("x")
    hs, _ = ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.constant(0.0))
    xv = rng.normal(size=50)
    every, last = ts.function([x], hs, mode=C), ts.function([x], hs[-1], mode=C)
    np.testing.assert_allclose(every(xv), np.cumsum(xv), rtol=1e-12)
    np.testing.assert_allclose(last(xv), xv.sum(), rtol=1e-12)
    assert c_loops == [(0, 50, 50)] * 2


def test_output_taps_and_n_steps(c_loops):
    h0 = ts.dmatrix("h0")
    out, _ = ts.scan(lambda h2, h1: h1 + 0.5 * h2, outputs_info=dict(initial=h0, taps=[-2, -1]),
                     n_steps=12)
    f = ts.function([h0], out, mode=C)
    init = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])
    rows = list(init)
    for _ in range(12):
        rows.append(rows[-1] + 0.5 * rows[-2])
    np.testing.assert_allclose(f(init), np.array(rows[2:]), rtol=1e-12)
    assert c_loops == [(0, 12, 12)]


def test_a_backwards_rnn_with_a_matrix_product_and_a_per_step_output(rng, c_loops):
    xs, h0, w = ts.dtensor3("xs"), ts.dmatrix("h0"), ts.dmatrix("w")

    def step(x_t, h, w_):
        new = ts.tanh(ts.dot(h, w_) + x_t)
        return new, (new * new).sum(axis=1)

    (hs, norms), _ = ts.scan(step, sequences=xs, outputs_info=[h0, None], non_sequences=w,
                             go_backwards=True)
    f = ts.function([xs, h0, w], [hs, norms], mode=C)
    xv, hv, wv = rng.normal(size=(20, 4, 6)), rng.normal(size=(4, 6)), rng.normal(size=(6, 6)) * 0.4
    want_h, want_n, h = [], [], hv
    for x_t in xv[::-1]:
        h = np.tanh(h @ wv + x_t)
        want_h.append(h)
        want_n.append((h * h).sum(axis=1))
    got_h, got_n = f(xv, hv, wv)
    np.testing.assert_allclose(got_h, want_h, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_n, want_n, rtol=1e-10, atol=1e-12)
    assert c_loops == [(0, 20, 20)]


@pytest.mark.parametrize("kept", ["all", "last"])
def test_a_loop_cut_short_goes_on_in_python(rng, monkeypatch, kept):
    x = ts.dmatrix("x")
    (hs, doubled), _ = ts.scan(lambda a, h: (h * 0.9 + a, 2 * a), sequences=x,
                               outputs_info=[ts.zeros(3), None])
    f = ts.function([x], [hs if kept == "all" else hs[-1], doubled], mode=C)
    call = entry.Loop.__call__
    cut = []

    def three_steps(self, plan, walks, lo, hi):  # as if step 3's entry had reported a status
        cut.append(hi)
        return call(self, plan, walks, lo, min(hi, lo + 3))

    monkeypatch.setattr(entry.Loop, "__call__", three_steps)
    xv = rng.normal(size=(9, 3))
    want, h = [], np.zeros(3)
    for a in xv:
        h = h * 0.9 + a
        want.append(h)
    got_h, got_d = f(xv)
    np.testing.assert_allclose(got_h, want if kept == "all" else want[-1], rtol=1e-12)
    np.testing.assert_allclose(got_d, 2 * xv, rtol=1e-12)
    assert cut == [9]


def test_a_failing_step_raises_as_in_the_loop_in_python(c_loops):
    e = ts.lvector("e")
    hs, _ = ts.scan(lambda k, h: h + 2 ** k, sequences=e, outputs_info=ts.constant(np.int64(0)))
    f = ts.function([e], hs, mode=C)
    ev = np.arange(8, dtype=np.int64)
    np.testing.assert_array_equal(f(ev), np.cumsum(2 ** ev))
    ev[5] = -1
    with pytest.raises((TracesymError, ValueError), match="negative integer powers"):
        f(ev)
    assert c_loops == [(0, 8, 8), (0, 8, 5)]  # the C loop stopped at the step that failed


def test_layouts_the_entry_does_not_take_run_in_python(rng, c_loops):
    x = ts.dmatrix("x")
    hs, _ = ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.zeros(3))
    f = ts.function([x], hs, mode=C)
    xv = rng.normal(size=(7, 6))[:, ::2]  # rows that skip every other element
    np.testing.assert_allclose(f(xv), np.cumsum(xv, axis=0), rtol=1e-12)
    np.testing.assert_allclose(f(np.ones((1, 3))), np.ones((1, 3)))  # one step: no C loop
    assert c_loops == []


def test_a_sequence_of_repeated_rows(c_loops):
    x = ts.dmatrix("x")
    hs, _ = ts.scan(lambda a, h: h * 2 + a, sequences=x, outputs_info=ts.zeros(3))
    f = ts.function([x], hs, mode=C)
    xv = np.broadcast_to(np.array([1.0, 2.0, 3.0]), (6, 3))  # every row the same memory
    want, h = [], np.zeros(3)
    for a in xv:
        h = h * 2 + a
        want.append(h)
    np.testing.assert_allclose(f(xv), want, rtol=1e-12)
    assert c_loops == [(0, 6, 6)]
