"""The step of a compiled scan specialised to the static shapes of each call's values (what
they let the rewrites remove from an LSTM's backward step, one lowering per signature up to a
limit, the step compiled for any shapes where one does not type), and what the loop prepares
once per call: C-contiguous operands of the step's products."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError
from tracesym.loops import Scan
from tracesym.loops.op import MAX_SPECIALIZED

T, B, H = 4, 3, 5
SHAPE_OPS = ("Shape", "ShapeI", "SumToShape", "BroadcastTo", "CheckSizes", "IncSubtensor")


def scans(f):
    return [n for n in f.graph.toposort() if isinstance(n.op, Scan)]


def op_names(graph):
    return [type(n.op).__name__ for n in graph.toposort()]


def lstm_grads(A, Wh):
    """An LSTM on a precomputed input projection A (T, B, 4H), the gates sliced from one
    product, as the W5 workload writes it; gradients of a cost of its hidden states."""
    def step(a_x, h, c, Wh):
        a = a_x + h @ Wh
        i, f = ts.sigmoid(a[:, :H]), ts.sigmoid(a[:, H:2 * H])
        g, o = ts.tanh(a[:, 2 * H:3 * H]), ts.sigmoid(a[:, 3 * H:])
        c_new = f * c + i * g
        return o * ts.tanh(c_new), c_new

    zero = ts.zeros((B, H), dtype="float64")
    (hs, _), _ = ts.scan(step, sequences=A, outputs_info=[zero, zero], non_sequences=Wh)
    return ts.grad((hs ** 2).sum(), [A, Wh])


@pytest.fixture
def lstm(rng):
    A, Wh = ts.dtensor3("A"), ts.dmatrix("Wh")
    values = [rng.normal(size=(T, B, 4 * H)), rng.normal(size=(H, 4 * H)) * 0.5]
    return [A, Wh], lstm_grads(A, Wh), values


@pytest.mark.parametrize("linker", ["numpy", "c"])
def test_lstm_backward_step_specialised_is_one_kernel_a_concatenation_and_a_product(lstm, linker):
    inputs, grads, values = lstm
    f = ts.function(inputs, grads, mode=ts.Mode(linker=linker))
    want = ts.function(inputs, grads, mode="NONE")(*values)
    for got, w in zip(f(*values), want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)
    (backward,) = [n for n in scans(f) if n.op.name == "grad"]
    generic = op_names(ts.Graph(backward.op.inner_inputs, backward.op.inner_outputs))
    assert any(name in SHAPE_OPS for name in generic)  # sizes unknown until the call
    (inner,) = backward.op._special.values()
    names = op_names(inner.graph)
    assert not [name for name in names if name in SHAPE_OPS]
    assert names.count("Concatenate") == 1 and names.count("MatMul") == 1
    assert names.count("Composite") == 1  # every elementwise part of the step, fused


def test_forward_stores_no_row_the_backward_step_reads_only_for_its_shape(lstm):
    """The gate pre-activation's size is computed from sizes the step has (a broadcast of
    the input row's and the product's), so the forward loop does not store it."""
    inputs, grads, values = lstm
    f = ts.function(inputs, grads)
    (backward,) = [n for n in scans(f) if n.op.name == "grad"]
    g = ts.Graph(backward.op.inner_inputs, backward.op.inner_outputs)
    _, seqs, _, _ = backward.op.split_outer(backward.inputs)
    stored = 0
    for p, v in zip(backward.op.inner_inputs, seqs):
        while v.owner is not None and not isinstance(v.owner.op, Scan):
            v = v.owner.inputs[0]  # through the views of a buffer
        if v.owner is not None:  # a row the forward loop stored
            stored += 1
            readers = {type(nd.op).__name__ for nd, _ in g.clients(p)}
            assert readers - {"Shape", "ShapeI"}, p
    assert stored


def test_each_signature_is_specialised_up_to_a_limit(rng):
    x, h0, W = ts.dtensor3("x"), ts.dmatrix("h0"), ts.dmatrix("W")
    hs, _ = ts.scan(lambda a, h, W: ts.tanh(a + h @ W), sequences=x, outputs_info=h0,
                    non_sequences=W)
    f = ts.function([x, h0, W], hs)
    (node,) = scans(f)
    Wv = rng.normal(size=(2, 2))
    for rows in range(1, MAX_SPECIALIZED + 3):
        xv, hv = rng.normal(size=(3, rows, 2)), rng.normal(size=(rows, 2))
        want, h = [], hv
        for a in xv:
            h = np.tanh(a + h @ Wv)
            want.append(h)
        np.testing.assert_allclose(f(xv, hv, Wv), want)
        assert len(node.op._special) == min(rows, MAX_SPECIALIZED)
    f(rng.normal(size=(5, 1, 2)), rng.normal(size=(1, 2)), Wv)  # a known signature again
    assert len(node.op._special) == MAX_SPECIALIZED


def test_a_step_that_does_not_type_on_the_call_shapes_fails_as_it_runs():
    """Rows of 3 added to a state of 2 do not broadcast: the specialised step cannot be
    built, and the step compiled for any shapes raises when it runs, naming the scan."""
    x, h0 = ts.dmatrix("x"), ts.dvector("h0")
    hs, _ = ts.scan(lambda a, h: h * 2 + a, sequences=x, outputs_info=h0)
    f = ts.function([x, h0], hs)
    with pytest.raises(OpRuntimeError, match="Scan"):
        f(np.ones((4, 3)), np.ones(2))
    (node,) = scans(f)
    (inner,) = node.op._special.values()
    assert inner.graph.outputs == node.op.inner_outputs  # the generic step


def test_a_transposed_weight_the_step_multiplies_by_is_made_contiguous_once(rng):
    x, h0, W = ts.dtensor3("x"), ts.dmatrix("h0"), ts.dmatrix("W")
    hs, _ = ts.scan(lambda a, h, W: ts.tanh(a + h @ W.T), sequences=x, outputs_info=h0,
                    non_sequences=W)
    f = ts.function([x, h0, W], hs, mode=ts.Mode(linker="c"))
    xv, hv, Wv = rng.normal(size=(4, 2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3))
    want, h = [], hv
    for a in xv:
        h = np.tanh(a + h @ Wv.T)
        want.append(h)
    np.testing.assert_allclose(f(xv, hv, Wv), want)
    (node,) = scans(f)
    (inner,) = node.op._special.values()
    _, _, _, nons = node.op.split_outer(node.inputs)
    assert [str(nons[j].owner.op) for j in inner.products] == ["DimShuffle{(1,0)}"]
    seen = []
    run = inner.trusted

    def spy(values):
        seen.append(values[-1])
        return run(values)

    inner.trusted = spy
    np.testing.assert_allclose(f(xv, hv, Wv), want)
    assert seen and all(v.flags.c_contiguous for v in seen)


def test_elementwise_work_on_sequences_stays_in_the_loop_unless_a_product_reads_it(rng):
    X, h0, W = ts.dtensor3("X"), ts.dmatrix("h0"), ts.dmatrix("W")
    H_, _ = ts.scan(lambda x, h, W: ts.tanh(ts.exp(x) * 2 + h @ W) + ts.sin(x[:, :2] @ W),
                    sequences=X, outputs_info=h0, non_sequences=W)
    values = rng.normal(size=(4, 3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
    f = ts.function([X, h0, W], H_)
    np.testing.assert_allclose(f(*values), ts.function([X, h0, W], H_, mode="NONE")(*values))
    (node,) = scans(f)
    inner = [str(n.op) for n in ts.Graph(node.op.inner_inputs, node.op.inner_outputs).toposort()]
    # exp and sin fuse into the step's kernel rather than each being a pass over the steps;
    # the product of the sequence alone is still one batched product before the loop
    assert any("exp" in s for s in inner) and any("sin" in s for s in inner)
    outer = [str(n.op) for n in f.graph.toposort() if not isinstance(n.op, Scan)]
    assert "MatMul" in outer


def test_a_batch_of_one_is_specialised_without_making_its_dim_broadcastable(rng):
    """A size of 1 stays unknown in the specialised step: as a static 1 it would type the dim
    as broadcastable, which sizes the gradient proves equal to it (of a product) are not."""
    A, Wh = ts.dtensor3("A"), ts.dmatrix("Wh")

    def step(a_x, h, c):
        a = a_x + h @ Wh
        c = ts.sigmoid(a[:, :H]) * c + ts.tanh(a[:, H:2 * H])
        return ts.sigmoid(a[:, 2 * H:]) * ts.tanh(c), c

    zero = ts.zeros((A.shape[1], H), dtype="float64")
    (hs, _), _ = ts.scan(step, sequences=A, outputs_info=[zero, zero])
    grads = ts.grad((hs.reshape((-1, H)) @ Wh[:, :2] ** 2).sum(), [A, Wh])
    values = rng.normal(size=(T, 1, 3 * H)), rng.normal(size=(H, 3 * H))
    f = ts.function([A, Wh], grads)
    for got, want in zip(f(*values), ts.function([A, Wh], grads, mode="NONE")(*values)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for node in scans(f):
        (inner,) = node.op._special.values()
        assert inner.graph.outputs != node.op.inner_outputs  # specialised, not the fallback
