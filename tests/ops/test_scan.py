"""The `Scan` Op itself: its gradient cases (checked by verify_grad here and by the op-coverage
test), type checks in make_node, shape inference, equality of identical loops, and the
buffer layout its perform implements."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import ScanError
from tracesym.loops import Scan


def _u(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, size=shape)


def _rnn(X, h0, W):
    return ts.scan(lambda x, h, W: ts.tanh(x + h @ W), sequences=X, outputs_info=h0,
                   non_sequences=W)[0]


def _taps(x0, x):
    """A second-order recurrence on output taps [-2, -1] driven by a sequence."""
    return ts.scan(lambda xt, a, b: ts.sin(a) * 0.5 + b * xt, sequences=x,
                   outputs_info=dict(initial=x0, taps=[-2, -1]))[0]


def _seq_taps(x, w):
    return ts.scan(lambda a, b, c, w: a * b - c * w, sequences=dict(input=x, taps=[-1, 0, 2]),
                   non_sequences=w)[0]


def _backwards(x, h0):
    return ts.scan(lambda xt, h: h * ts.cos(xt) + xt, sequences=x, outputs_info=h0,
                   go_backwards=True)[0]


def _two_states_and_a_per_step_output(x, w):
    def step(xt, h, c, w):
        c2 = c + xt * w
        return ts.tanh(h + c2), c2, h * xt
    return ts.scan(step, sequences=x, outputs_info=[ts.constant(0.1), ts.constant(0.2), None],
                   non_sequences=w)[0][2]


def _closure(x, w):
    return ts.scan(lambda xt, h: h * w + xt ** 2, sequences=x, outputs_info=ts.constant(0.0))[0]


def _nested(X):
    def row(r, acc):
        inner = ts.scan(lambda a, t: t + ts.sin(a * acc), sequences=r,
                        outputs_info=ts.constant(0.0))[0]
        return acc * 0.5 + inner[-1]
    return ts.scan(row, sequences=X, outputs_info=ts.constant(1.0))[0]


GRAD_CASES = {
    Scan: [
        (_rnn, [_u(4, 3), _u(3, seed=1), _u(3, 3, seed=2)]),
        (_taps, [_u(2), _u(5, seed=1)]),
        (_seq_taps, [_u(6), _u(seed=1)]),
        (_backwards, [_u(4), _u(seed=1)]),
        (_two_states_and_a_per_step_output, [_u(5), _u(seed=1)]),
        (_closure, [_u(4), _u(seed=1)]),
        (_nested, [_u(3, 2)]),
    ],
}


@pytest.mark.parametrize("i", range(len(GRAD_CASES[Scan])))
def test_verify_grad(i):
    fun, points = GRAD_CASES[Scan][i]
    out = fun(*[ts.tensor("float64", (None,) * p.ndim) for p in points])
    assert any(isinstance(v.owner.op, Scan) for v in ts.Graph([], [out]).nodes
               if isinstance(v, ts.Variable) and v.owner is not None)
    ts.verify_grad(fun, points, rng=np.random.default_rng(i))


def _scan_node(out):
    return next(n for n in ts.Graph([], [out]).toposort() if isinstance(n.op, Scan))


def test_inner_graph_attributes_and_layout():
    X, h0 = ts.dmatrix("X"), ts.dvector("h0")
    out = _rnn(X, h0, ts.dmatrix("W"))
    op = _scan_node(out).op
    assert [v.type.short() for v in op.inner_inputs] == ["float64[?]", "float64[?]", "float64[?,?]"]
    assert [v.type.short() for v in op.inner_outputs] == ["float64[?]"]
    assert (op.n_seqs, op.taps, op.n_nit, op.n_non_seqs) == (1, ((-1,),), 0, 1)


def test_identical_scans_are_equal_and_merge():
    X, h0, W = ts.dmatrix("X"), ts.dvector("h0"), ts.dmatrix("W")
    a, b = _rnn(X, h0, W), _rnn(X, h0, W)
    assert _scan_node(a).op == _scan_node(b).op
    assert hash(_scan_node(a).op) == hash(_scan_node(b).op)
    other = ts.scan(lambda x, h, W: ts.tanh(x - h @ W), sequences=X, outputs_info=h0,
                    non_sequences=W)[0]
    assert _scan_node(other).op != _scan_node(a).op
    f = ts.function([X, h0, W], [a, b])
    assert sum(isinstance(n.op, Scan) for n in f.graph.toposort()) == 1


def test_make_node_checks_outer_types():
    node = _scan_node(_rnn(ts.dmatrix("X"), ts.dvector("h0"), ts.dmatrix("W")))
    n, X, init, W = node.inputs
    with pytest.raises(ScanError, match="sequence 0 has type float32"):
        node.op.make_node(n, ts.fmatrix("X32"), init, W)
    with pytest.raises(ScanError, match="non-sequence 0 has type float64"):
        node.op.make_node(n, X, init, ts.dvector("w"))
    with pytest.raises(ScanError, match="n_steps must be an integer scalar"):
        node.op.make_node(ts.dscalar("n"), X, init, W)


def test_perform_buffers_hold_the_initial_rows(rng):
    """Outer outputs of the node: the recurrent buffer (lag + n rows) and per-step outputs."""
    x0, x = ts.dvector("x0"), ts.dvector("x")
    out = ts.scan(lambda xt, a, b: (a + b * xt, a * 2), sequences=x,
                  outputs_info=[dict(initial=x0, taps=[-2, -1]), None])[0][0]
    node = _scan_node(out)
    x0v, xv = rng.normal(size=2), rng.normal(size=3)
    buf, doubled = node.op.perform(node, [np.int64(3), xv, x0v, ])
    ref = list(x0v)
    for t in range(3):
        ref.append(ref[-2] + ref[-1] * xv[t])
    np.testing.assert_allclose(buf, ref)
    np.testing.assert_allclose(doubled, 2 * np.array(ref[:3]))


def test_infer_shape():
    x0, x = ts.dvector("x0"), ts.dmatrix("x")
    out = ts.scan(lambda xt, a, b: (a + b, xt.sum()), sequences=x,
                  outputs_info=[dict(initial=x0, taps=[-3, -1]), None])[0][0]
    node = _scan_node(out)
    shapes = node.op.infer_shape(node, [ts.shape(v) for v in node.inputs])
    f = ts.function([x0, x], [ts.stack(list(s)) for s in shapes])
    got = f(np.zeros(3), np.zeros((4, 2)))
    np.testing.assert_array_equal(got[0], [7])
    np.testing.assert_array_equal(got[1], [4])
