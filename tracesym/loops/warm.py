"""A function's scans specialised before its first call runs them, their kernels compiled at
the same time.

A Scan of a compiled function specialises its step to the shapes of the values it runs on
(`op.py`), which it meets only as it runs: a loop and the loop of its gradient would compile
their steps one after the other, the second once the first has run.  On the first call of a
function with several such scans, `warmer`'s hook works out the shapes each scan will see
from the arguments' shapes: sizes through each Op's `infer_shape`, the small integer vectors
a step reads (shapes hoisted out of it) through the Op's `perform` on the few numbers they
hold.  Each step whose shapes it finds is rewritten there; then all are lowered together on
a thread (the C linker compiles their kernels into one module: one wrapper, one link) while
the call goes on (`Scan.warm`), and while the function's own graph, linked on a thread of
its own since the function was made (`Function`), still compiles.  A scan whose shapes
depend on what the function computes, or were told wrong, specialises as it runs, as
before; the call waits for every step it started before it returns."""

from __future__ import annotations

import threading
from concurrent import futures

import numpy as np

from ..config import config
from ..ops.shape import Shape, ShapeI
from ..trace.graph import Constant, as_variable
from .op import Scan, lower_together

#: the most elements of an integer value worked out through `perform` (shapes, not data)
SMALL = 64


def warmer(graph):
    """`HOOKS["warm"]`: for a graph with two scans or more that specialise their steps,
    warm(values) to call with the first call's values of `graph.inputs`, which starts their
    steps' lowering and returns finish(), to call once the call is done; else None."""
    scans = [n for n in graph.toposort() if isinstance(n.op, Scan) and n.op.specialize is not None]
    if len(scans) < 2:
        return None
    order = graph.toposort()
    order = order[:order.index(scans[-1]) + 1]

    def warm(values):
        todo = []  # (op, signature, step graph, future step): lowered once all are found

        def at_scan(node, sig):
            got = node.op.warm(sig)
            if got is None:
                return None
            step, pending = got
            if pending is not None:
                todo.append((node.op, sig, step, pending))
            return step

        try:
            walk(graph.inputs, values, order, at_scan)
        except Exception:  # noqa: BLE001 (a guess: the scans learn their shapes as they run)
            pass
        if todo:  # under the config of the call, whatever the caller changes meanwhile
            threading.Thread(target=_lower, args=(todo, config.snapshot()),
                             name="tracesym-scans").start()

        def finish():
            futures.wait([pending for *_, pending in todo])
            for op, sig, _, pending in todo:  # a step no loop took: the guess was wrong
                if op._warming.get(sig) is pending:
                    del op._warming[sig]

        return finish

    return warm


def _lower(todo, cfg):
    """Lower the steps of `todo` together (`lower_together`) and hand each to its future."""
    try:
        inners = lower_together([t[0] for t in todo], [t[2] for t in todo], cfg)
    except BaseException as e:  # noqa: BLE001 (each loop that takes its step raises it)
        for *_, pending in todo:
            pending.set_exception(e)
    else:
        for (*_, pending), inner in zip(todo, inners):
            pending.set_result(inner)


def walk(inputs, values, order, at_scan):
    """Work out the shapes of the outputs of `order` (Apply nodes in topological order) from
    the graph `inputs`' `values`; at each Scan that specialises its step whose shapes are
    found, call at_scan(node, signature) -> the step's graph specialised to them (or None):
    its outputs' types give the Scan's outputs' shapes."""
    shapes, small = {}, {}
    for v, a in zip(inputs, values):
        shapes[v] = np.shape(a)
        _keep_small(v, a, small)
    for node in order:
        for v in node.inputs:
            if isinstance(v, Constant) and v not in shapes:
                shapes[v] = np.shape(v.data)
                _keep_small(v, v.data, small)
        if any(v not in shapes for v in node.inputs):
            continue
        try:
            if isinstance(node.op, Scan):
                _through_scan(node, shapes, small, at_scan)
            else:
                _propagate(node, shapes, small)
        except Exception:  # noqa: BLE001 (its outputs stay unknown, and what reads them)
            pass


def _through_scan(node, shapes, small, at_scan):
    op = node.op
    if op.specialize is None:
        return _propagate(node, shapes, small)
    sig = _scan_signature(node, shapes, small)
    step = None if sig is None else at_scan(node, sig)
    if step is None:
        return
    n = int(small[node.inputs[0]])
    _, _, inits, _ = op.split_outer(node.inputs)
    for o, init, lag, last in zip(node.outputs, inits, op.lags, op.keep_last):
        shapes[o] = (1 if last else lag + n,) + tuple(shapes[init][1:])
    for o, inner in zip(node.outputs[op.n_rec:], step.outputs[op.n_rec:]):
        if None not in inner.type.shape:
            shapes[o] = (n,) + inner.type.shape


def _keep_small(v, a, small):
    if v.dtype[0] in "iub" and v.ndim <= 1 and np.size(a) <= SMALL:
        small[v] = np.asarray(a)


def _scan_signature(node, shapes, small):
    n_steps, seqs, inits, nons = node.op.split_outer(node.inputs)
    non_keys = []
    for v in nons:
        shp = shapes[v]
        if v.dtype[0] in "iu" and v.ndim == 1 and shp[0] <= 8:
            if v not in small:
                return None
            non_keys.append((shp, tuple(small[v].tolist())))
        else:
            non_keys.append((shp, None))
    return (tuple(shapes[v][1:] for v in seqs), tuple(shapes[v][1:] for v in inits),
            tuple(non_keys))


def _propagate(node, shapes, small):
    """The shapes (and small integer values) of `node`'s outputs from its inputs'."""
    op, outs = node.op, node.outputs
    if isinstance(op, (Shape, ShapeI)):
        value = _measure(node, shapes)
        shapes[outs[0]] = np.shape(value)
        _keep_small(outs[0], value, small)
        return
    stand_in = [tuple(as_variable(np.int64(d)) for d in shapes[v]) for v in node.inputs]
    memo = {}
    for o, shp in zip(outs, op.infer_shape(node, stand_in)):
        shapes[o] = tuple(int(_evaluate(d, shapes, small, memo)) for d in shp)
    if all(v in small for v in node.inputs) and all(o in shapes and o.dtype[0] in "iub"
                                                    and o.ndim <= 1 and np.prod(shapes[o]) <= SMALL
                                                    for o in outs):
        for o, r in zip(outs, op.perform(node, [small[v] for v in node.inputs])):
            _keep_small(o, r, small)


def _measure(node, shapes):
    """The value of a `Shape` or `ShapeI` node, from its input's shape."""
    shp = shapes[node.inputs[0]]
    return np.int64(shp[node.op.i]) if isinstance(node.op, ShapeI) else np.array(shp, np.int64)


def _evaluate(v, shapes, small, memo):
    """The value of scalar expression `v` (an `infer_shape` result) of constants, known
    small values and the sizes of variables of known shape."""
    if not hasattr(v, "owner"):  # a Python or numpy number
        return v
    if isinstance(v, Constant):
        return v.data
    if v in small:
        return small[v]
    if v not in memo:
        node = v.owner
        if node is None:
            raise KeyError(v)
        if isinstance(node.op, (Shape, ShapeI)):
            memo[v] = _measure(node, shapes)
        else:
            args = [np.asarray(_evaluate(u, shapes, small, memo)) for u in node.inputs]
            memo.update(zip(node.outputs, node.op.perform(node, args)))
    return memo[v]
