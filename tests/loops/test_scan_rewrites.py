"""Rewrites of scan: outputs nobody reads removed, only the last state kept when only it is
read (O(1) memory), loop-invariant work hoisted, scans over the same steps merged, and the inner
graph rewritten with the function's own mode.  Each rewritten function computes what the
unrewritten one (mode NONE) does."""

import tracemalloc

import numpy as np

import tracesym as ts
from tracesym.loops import Scan


def scans(f):
    return [n for n in f.graph.toposort() if isinstance(n.op, Scan)]



def inner_op_names(node):
    return [str(n.op) for n in ts.Graph(node.op.inner_inputs, node.op.inner_outputs).toposort()]


def both(inputs, outputs, *values):
    fast = ts.function(inputs, outputs)
    ref = ts.function(inputs, outputs, mode="NONE")
    got, want = fast(*values), ref(*values)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, w, rtol=1e-10)  # C and numpy kernels round apart
    return fast


def test_unused_outputs_and_the_state_only_they_need_are_removed(rng):
    x, w = ts.dvector("x"), ts.dscalar("w")

    def step(a, h, c, w):
        return h + a, c * w + h, a * 3  # c is read by nobody but itself

    (hs, cs, triple), _ = ts.scan(step, sequences=x,
                                  outputs_info=[ts.constant(0.0), ts.constant(1.0), None],
                                  non_sequences=w)
    f = both([x, w], hs, rng.normal(size=5), 0.5)
    (node,) = scans(f)
    assert node.op.n_rec == 1 and node.op.n_nit == 0 and node.op.n_non_seqs == 0
    assert len(node.inputs) == 3  # n_steps, x, the initial state of h


def test_a_state_read_by_a_used_output_is_kept(rng):
    x = ts.dvector("x")
    (hs, cs), _ = ts.scan(lambda a, h, c: (h + c, c + a), sequences=x,
                          outputs_info=[ts.constant(0.0), ts.constant(1.0)])
    f = both([x], hs, rng.normal(size=5))
    assert scans(f)[0].op.n_rec == 2


def test_only_the_last_state_is_kept_in_constant_memory():
    h0, n = ts.dvector("h0"), ts.lscalar("n")
    hs, _ = ts.scan(lambda h: h * 0.999 + 1.0, outputs_info=h0, n_steps=n)
    last = ts.function([h0, n], hs[-1])
    (node,) = scans(last)
    assert node.op.keep_last == (True,)
    full = ts.function([h0, n], hs)
    assert scans(full)[0].op.keep_last == (False,)
    h = np.zeros(1000)  # 8 kB a state; 10,000 states would be 80 MB
    tracemalloc.start()
    try:
        got = last(h, 10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
    a = 0.999 ** 10_000  # h_n = a^n h_0 + (1 - a^n) / (1 - 0.999)
    np.testing.assert_allclose(got, a * h + (1 - a) / (1 - 0.999), rtol=1e-9)


def test_the_last_state_of_a_two_tap_recurrence_is_kept_in_a_ring(rng):
    x0, x = ts.dvector("x0"), ts.dvector("x")
    fib, _ = ts.scan(lambda a, f2, f1: f1 + f2 * a, sequences=x,
                     outputs_info=dict(initial=x0, taps=[-2, -1]))
    xv, x0v = rng.normal(size=7), np.array([1.0, 2.0])
    last = both([x0, x], fib[-1], x0v, xv)
    assert scans(last)[0].op.keep_last == (True,)
    want = list(x0v)
    for a in xv:
        want.append(want[-1] + want[-2] * a)
    np.testing.assert_allclose(last(x0v, xv), want[-1])
    np.testing.assert_allclose(last(x0v, xv[:0]), x0v[-1])  # no step: the last initial row


def test_reduce_keeps_one_row_and_gradients_still_see_every_state(rng):
    x = ts.dvector("x")
    r, _ = ts.reduce(lambda a, acc: acc * a + 1, x, ts.constant(0.5))
    f = both([x], r, rng.normal(size=6))
    assert scans(f)[0].op.keep_last == (True,)
    g = both([x], ts.grad(r, x), rng.normal(size=6))
    assert all(not any(s.op.keep_last) for s in scans(g) if s.op.n_rec and s.op.name is None)


def test_loop_invariant_work_is_hoisted(rng):
    X, h0, W = ts.dmatrix("X"), ts.dvector("h0"), ts.dmatrix("W")
    H, _ = ts.scan(lambda x, h, W: ts.tanh(x + h @ ts.exp(W).T), sequences=X, outputs_info=h0,
                   non_sequences=W)
    f = both([X, h0, W], H, rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(3, 3)))
    (node,) = scans(f)
    assert not any("exp" in s for s in inner_op_names(node))
    outer = [str(n.op) for n in f.graph.toposort()]
    assert "Elemwise{exp}" in outer


def test_inner_graph_is_rewritten_with_the_functions_mode(rng):
    x = ts.dvector("x")
    out, _ = ts.scan(lambda a, h: ts.log(1 + h * a), sequences=x, outputs_info=ts.constant(0.5))
    fast = both([x], out, rng.uniform(size=4))
    assert any("log1p" in s for s in inner_op_names(scans(fast)[0]))
    plain = ts.function([x], out, mode="FAST_COMPILE")
    assert not any("log1p" in s for s in inner_op_names(scans(plain)[0]))
    np.testing.assert_allclose(plain(np.full(3, 0.5)), fast(np.full(3, 0.5)))


def test_sequence_only_work_is_one_batched_product(rng):
    X, h0, W, U = ts.dtensor3("X"), ts.dmatrix("h0"), ts.dmatrix("W"), ts.dmatrix("U")
    H, _ = ts.scan(lambda x, h, W, U: ts.tanh(ts.exp(x[:, :3]) @ W + h @ U), sequences=X,
                   outputs_info=h0, non_sequences=[W, U])
    values = [rng.normal(size=(5, 2, 4)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3)),
              rng.normal(size=(3, 3))]
    f = both([X, h0, W, U], H, *values)
    (node,) = scans(f)
    assert not any("exp" in s for s in inner_op_names(node))
    assert node.op.n_seqs == 1 and node.op.inner_inputs[0].ndim == 2
    products = [n for n in f.graph.toposort() if "MatMul" in str(n.op)]
    # x_t[:, :3] @ W for every t at once, as one (steps * rows, 3) @ (3, 3) product
    assert [(n.inputs[0].ndim, n.inputs[1].ndim) for n in products] == [(2, 2)]
    both([X, h0, W, U], ts.grad(H.sum(), [W, U, h0]), *values)


def test_weight_gradient_is_one_product_after_the_loop(rng):
    X, h0, W = ts.dtensor3("X"), ts.dmatrix("h0"), ts.dmatrix("W")
    H, _ = ts.scan(lambda x, h, W: ts.tanh(x + h @ W), sequences=X, outputs_info=h0,
                   non_sequences=W)
    values = [rng.normal(size=(5, 2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3))]
    f = both([X, h0, W], ts.grad((H ** 2).sum(), [W, h0, X]), *values)
    assert "scan_push_out_accumulated_product" in [r for r, _ in f.graph.rewrite_log]
    backward = [n for n in scans(f) if n.op.name == "grad"][0]
    assert backward.op.n_rec == 1  # only the gradient flowing back through h is carried
    assert sum("MatMul" in s or "Gemm" in s for s in inner_op_names(backward)) == 1


def test_accumulated_product_of_transposed_steps_reads_their_rows(rng):
    """acc + s_t @ v_t with s = X.transpose(0, 2, 1) reversed (what BPTT passes for h_t.T):
    after the loop, the rows of X stacked and transposed (a view for BLAS), where the steps
    of s side by side would be a transposing copy."""
    X, V, a0 = ts.dtensor3("X"), ts.dtensor3("V"), ts.dmatrix("a0")
    acc, _ = ts.scan(lambda s, v, a: a + s @ v, sequences=[X.transpose(0, 2, 1)[::-1], V],
                     outputs_info=a0)
    values = [rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 4)), rng.normal(size=(3, 4))]
    f = both([X, V, a0], acc[-1], *values)
    assert "scan_push_out_accumulated_product" in [r for r, _ in f.graph.rewrite_log]
    assert not [n for n in f.graph.toposort() if "DimShuffle{(1,0,2)}" in str(n.op)]
    x, v, a = values
    np.testing.assert_allclose(f(*values), a + sum(x[::-1][t].T @ v[t] for t in range(5)))


def test_two_scans_over_the_same_steps_become_one(rng):
    x, y, w = ts.dvector("x"), ts.dmatrix("y"), ts.dscalar("w")
    hs, _ = ts.scan(lambda a, h, w: h * w + a, sequences=x, outputs_info=ts.constant(0.0),
                    non_sequences=w)
    (cs, ds), _ = ts.scan(lambda b, a, c, w: (c * w + b.sum() * a, ts.exp(b) * 2),
                          sequences=[y[::-1], x], outputs_info=[ts.constant(1.0), None],
                          non_sequences=w, n_steps=x.shape[0])
    values = rng.normal(size=5), rng.normal(size=(5, 3)), 0.7
    f = both([x, y, w], [hs, cs, ds], *values)
    (node,) = scans(f)
    assert node.op.n_rec == 2 and node.op.n_nit == 1
    _, seqs, _, nons = node.op.split_outer(node.inputs)
    assert len({id(v) for v in seqs + nons}) == len(seqs + nons)  # x and w passed in once
    assert "scan_merge" in [r for r, _ in f.graph.rewrite_log]
    g = both([x, y, w], ts.grad(hs.sum() + (cs ** 2).sum() + ds.sum(), [x, y, w]), *values)
    assert len([n for n in scans(g) if n.op.name == "grad"]) == 1

    def two_scans(x, y, w):
        hs, _ = ts.scan(lambda a, h, w: ts.tanh(h * w + a), sequences=x,
                        outputs_info=ts.constant(0.0), non_sequences=w)
        cs, _ = ts.scan(lambda b, c: c * b.sum(), sequences=y, outputs_info=ts.constant(1.0),
                        n_steps=x.shape[0])
        return hs * cs

    ts.verify_grad(two_scans, [rng.normal(size=4), rng.normal(size=(4, 2)), np.array(0.7)], rng=rng)


def test_scans_over_different_steps_are_not_merged(rng):
    x, y = ts.dvector("x"), ts.dvector("y")
    hs, _ = ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.constant(0.0))
    gs, _ = ts.scan(lambda b, g: g * b, sequences=y, outputs_info=ts.constant(1.0))
    f = both([x, y], [hs, gs], rng.normal(size=4), rng.normal(size=6))
    assert len(scans(f)) == 2


def test_a_scan_reading_anothers_output_is_not_merged(rng):
    x = ts.dvector("x")
    hs, _ = ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.constant(0.0))
    gs, _ = ts.scan(lambda b, g: g * 0.5 + b, sequences=hs * 2, outputs_info=ts.constant(1.0),
                    n_steps=x.shape[0])
    f = both([x], [hs, gs], rng.normal(size=5))
    assert len(scans(f)) == 2


def _ops(graph_or_node):
    """The Op class names of a graph's (or a Scan's inner graph's) float-valued nodes."""
    nodes = graph_or_node.toposort() if isinstance(graph_or_node, ts.Graph) else \
        ts.Graph(graph_or_node.op.inner_inputs, graph_or_node.op.inner_outputs).toposort()
    return [type(n.op).__name__ for n in nodes if n.outputs[0].dtype.startswith("float")]


def test_gate_gradients_are_concatenated_not_added_into_zeros(rng):
    X, h0, W = ts.dtensor3("X"), ts.dmatrix("h0"), ts.dmatrix("W")

    def step(x, h, W):  # one product sliced into two gates, as an LSTM cell does
        a = x + h @ W
        return ts.sigmoid(a[:, :2]) * ts.tanh(a[:, 2:])

    H, _ = ts.scan(step, sequences=X, outputs_info=h0, non_sequences=W)
    values = [rng.normal(size=(5, 3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(2, 4))]
    f = both([X, h0, W], ts.grad((H ** 2).sum(), [W, h0, X]), *values)
    (grad_scan,) = [n for n in scans(f) if n.op.name == "grad"]
    inner = _ops(grad_scan)
    assert "Concatenate" in inner and "IncSubtensor" not in inner and "Alloc" not in inner


def test_slices_that_do_not_tile_the_axis_keep_their_increments(rng):
    a = ts.dmatrix("a")
    tiled = ts.grad((ts.sin(a[:, :1]) + a[:, 1:3] ** 2).sum() + ts.exp(a[:, 3:]).sum(), a)
    gap = ts.grad((ts.sin(a[:, :1]) + a[:, 2:3] ** 2).sum(), a)  # column 1 gets no gradient
    av = rng.normal(size=(2, 5))
    f = both([a], [tiled, gap], av)
    assert "Concatenate" in _ops(f.graph)
    np.testing.assert_allclose(f(av)[1][:, 1], 0.0)
    g = ts.function([a], gap)
    assert "Concatenate" not in _ops(g.graph) and "IncSubtensor" in _ops(g.graph)
