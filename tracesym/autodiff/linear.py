"""Jacobian products of non-scalar expressions: `Lop` (vector-Jacobian, reverse mode) and `Rop`
(Jacobian-vector, forward mode).

`Rop` walks forward from `wrt`, using each Op's `R_op` where it defines one.  For the other
Ops it uses the double-Lop identity node by node: an Op's `L_op` is linear in its output
gradients `u`, so the Jacobian-vector product of its outputs is `d/du <L_op(u), v>`; the
result does not depend on `u`'s value, and the node's own outputs (same types) stand in for
`u` in it.
"""

from __future__ import annotations

import numpy as np

from ..errors import GradientError, NullGradientError
from ..trace.graph import Variable, applies_between
from .grad import (NullGrad, _check_static, _check_wrt, _connected, _is_float, _node_error, _seed,
                   grad)

__all__ = ["Lop", "Rop"]


def _as_list(x):
    if isinstance(x, (list, tuple)):
        return list(x), type(x)
    return [x], (lambda xs: xs[0])


def Lop(f, wrt, eval_points, consider_constant=None, disconnected_inputs="raise",
        return_disconnected="zero"):
    """The vector-Jacobian product `eval_points^T . d f / d wrt`.

    `f` is a variable or a list of them, `eval_points` one array or variable of each `f`'s
    shape; the result matches `wrt` (a variable or a list).
    """
    fs, _ = _as_list(f)
    evs, _ = _as_list(eval_points)
    if len(fs) != len(evs):
        raise GradientError(f"Lop: {len(fs)} expression(s) but {len(evs)} eval point(s)")
    known = {}
    for v, e in zip(fs, evs):
        if not isinstance(v, Variable):
            raise GradientError(f"Lop: f must be symbolic variables, got {v!r}")
        known[v] = _seed(v, e, "Lop eval point")
    return grad(None, wrt, consider_constant=consider_constant, known_grads=known,
                disconnected_inputs=disconnected_inputs, return_disconnected=return_disconnected)


def Rop(f, wrt, eval_points, disconnected_outputs="raise", return_disconnected="zero"):
    """The Jacobian-vector product `d f / d wrt . eval_points`.

    `wrt` is a variable or a list, `eval_points` one array or variable of each `wrt`'s shape;
    the result matches `f` (a variable or a list).  An `f` that does not depend on any `wrt`
    raises `DisconnectedInputError` (`disconnected_outputs="warn"` or `"ignore"`), then gives
    zeros, None or `DISCONNECTED` as `return_disconnected` says (as in `grad`).
    """
    from .grad import _disconnected

    fs, rebuild = _as_list(f)
    ws, _ = _check_wrt(wrt)
    evs, _ = _as_list(eval_points)
    if len(ws) != len(evs):
        raise GradientError(f"Rop: {len(ws)} wrt variable(s) but {len(evs)} eval point(s)")
    for v in fs:
        if not isinstance(v, Variable):
            raise GradientError(f"Rop: f must be symbolic variables, got {v!r}")
    tangents = {}
    for w, e in zip(ws, evs):
        if _is_float(w):
            tangents[id(w)] = _seed(w, e, "Rop eval point")
    dep, path = _connected(fs, ws, [])
    for node in path:
        ev = [tangents.get(id(x)) if _is_float(x) else None for x in node.inputs]
        if all(e is None for e in ev):
            continue
        outs = node.op.R_op(node.inputs, ev)
        if outs is None:
            outs = _rop_by_double_lop(node, ev)
        elif len(outs) != len(node.outputs):
            raise GradientError(f"{node.op}.R_op returned {len(outs)} results for "
                                f"{len(node.outputs)} outputs (a bug in the Op)")
        for o, t in zip(node.outputs, outs):
            if t is not None and _is_float(o):
                tangents[id(o)] = _check_tangent(node, o, t)

    from ..ops.elemwise import zeros_like

    results = []
    for v in fs:
        t = tangents.get(id(v))
        if t is None and id(v) in dep:
            t = zeros_like(v)
        elif t is None:
            t = _disconnected(v, disconnected_outputs, return_disconnected,
                              f"Rop: {v.label()} ({v.type.short()}) does not depend on any wrt; pass "
                              "disconnected_outputs='ignore' (or 'warn') if a zero product is intended")
        results.append(t)
    return rebuild(results)


def _check_tangent(node, o, t):
    if not isinstance(t, Variable) or t.dtype != o.dtype or t.ndim != o.ndim:
        got = t.type.short() if isinstance(t, Variable) else repr(t)
        raise GradientError(f"{node.op}: the forward-mode product of output {o.index} is {got}, "
                            f"expected {o.type.short()} (a bug in the Op)")
    _check_static(o, t, lambda: f"{node.op}: forward-mode product of output {o.index}")
    return t


def _substitute(outputs, replace, stop):
    """`outputs` with the variables whose ids key `replace` swapped for their values (none of
    which is an ancestor of `stop`).  Nodes are re-applied through their Op's `__call__`, so
    they are traced like any other."""
    memo = dict(replace)
    for node in applies_between(stop, outputs):
        new_inputs = [memo.get(id(v), v) for v in node.inputs]
        if all(a is b for a, b in zip(new_inputs, node.inputs)):
            continue
        new = node.op(*new_inputs)
        for old, nv in zip(node.outputs, new if isinstance(new, list) else [new]):
            memo[id(old)] = nv
    return [memo.get(id(o), o) for o in outputs]


def _dummy(o, j):
    """A fresh variable of output o's type (with a test value where o has one, so tracing
    with test values on keeps working)."""
    u = o.type.make_variable(name=f"u{j}")
    if o.has_test_value():
        u.tag.test_value = np.zeros_like(o.get_test_value())
    return u


def _rop_by_double_lop(node, ev):
    """Output tangents of `node` for input tangents `ev`, from its `L_op` alone."""
    from ..ops.elemwise import mul
    from ..ops.reduce import sum as _sum

    us = [_dummy(o, j) if _is_float(o) else None for j, o in enumerate(node.outputs)]
    try:
        in_grads = node.op.L_op(node.inputs, node.outputs, us)
    except (GradientError, NotImplementedError) as e:
        raise _node_error(node, e) from e
    s = None
    for i, (g, v) in enumerate(zip(in_grads, ev)):
        if g is None or v is None:
            continue
        if isinstance(g, NullGrad):
            raise NullGradientError(f"Rop: {g.describe()}")
        term = _sum(mul(g, v))
        s = term if s is None else s + term
    if s is None:
        return [None] * len(node.outputs)
    live = [u for u in us if u is not None]
    # nothing before this node depends on u: stopping the walks there keeps Rop O(n)
    known = [*node.inputs, *node.outputs, *(v for v in ev if v is not None)]
    gs = grad(s, live, consider_constant=known, disconnected_inputs="ignore",
              return_disconnected="none")
    back = {id(u): o for u, o in zip(us, node.outputs) if u is not None}
    done = _substitute([g for g in gs if g is not None], back, known)
    it = iter(done)
    by_u = {id(u): (next(it) if g is not None else None) for u, g in zip(live, gs)}
    return [None if u is None else by_u[id(u)] for u in us]
