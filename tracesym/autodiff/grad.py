"""Reverse-mode differentiation: `grad` and the backpropagation walk it shares with `Lop`.

The walk visits only the Apply nodes on a path from some `wrt` to the cost (or to a variable
given in `known_grads`), latest first.  Gradient contributions to a variable are collected in a
list and summed once, when the variable's owner is visited, so the gradient of an n-node chain
is O(n) nodes.  Each Op's `L_op` result is checked against its input's type: a wrong dtype,
ndim or static shape is a bug in that Op, reported with its name rather than silently cast.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import DisconnectedInputError, GradientError, NullGradientError
from ..trace.graph import Constant, Variable, applies_between, as_variable

__all__ = ["grad", "NullGrad", "grad_undefined", "DISCONNECTED", "Disconnected"]


class NullGrad:
    """A gradient that is mathematically undefined (returned by an Op's `L_op` through
    `grad_undefined`).  It propagates backwards; reaching a `wrt` with it raises
    `NullGradientError` unless `grad(..., null_gradients="return")`."""

    __slots__ = ("op", "index", "reason")

    def __init__(self, op, index, reason=""):
        self.op, self.index, self.reason = op, index, reason

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"the gradient of {self.op} with respect to its input {self.index} is undefined{why}"

    def __repr__(self):
        return f"NullGrad({self.op}, input {self.index})"


def grad_undefined(op, i, reason="") -> NullGrad:
    """What an `L_op` returns for input `i` whose gradient does not exist (not merely zero)."""
    return NullGrad(op, i, reason)


class Disconnected:
    """The marker `grad(..., return_disconnected="disconnected")` gives for a `wrt` the cost
    does not depend on."""

    def __repr__(self):
        return "DISCONNECTED"

    def __bool__(self):
        return False


DISCONNECTED = Disconnected()


def _is_float(v) -> bool:
    return v.dtype[0] in "fc"


def _label(v):
    return v.label() if isinstance(v, Variable) else repr(v)


def _check_wrt(wrt):
    if isinstance(wrt, (list, tuple)):
        items, rebuild = list(wrt), type(wrt)
    else:
        items, rebuild = [wrt], lambda xs: xs[0]
    for w in items:
        if not isinstance(w, Variable):
            raise GradientError(f"grad: wrt must be symbolic variables, got {type(w).__name__} {w!r}")
        if isinstance(w, Constant):
            raise GradientError(f"grad: cannot differentiate with respect to the constant {w.label()} "
                                f"({w.type.short()}); use a placeholder or a shared variable")
    return items, rebuild


def _seed(var, g, what):
    """A user-given gradient (`known_grads`, `Lop` eval points) as a Variable of var's type."""
    from ..ops.elemwise import cast

    if isinstance(g, (NullGrad, Disconnected)) or g is None:
        return g
    if not isinstance(g, Variable):
        g = as_variable(np.asarray(g, dtype=var.dtype))
    if g.ndim != var.ndim:
        raise GradientError(f"{what} for {var.label()} ({var.type.short()}) has {g.ndim} dimension(s) "
                            f"({g.type.short()}); it must have {var.ndim}")
    _check_static(var, g, lambda: f"{what} for {var.label()}")
    if g.dtype != var.dtype:
        if not _is_float(var) or (g.dtype[0] == "c" and var.dtype[0] != "c"):
            raise GradientError(f"{what} for {var.label()} ({var.type.short()}) has dtype {g.dtype}")
        g = cast(g, var.dtype)
    return g


def _check_static(var, g, what):
    for a, b in zip(var.type.shape, g.type.shape):
        if a is not None and b is not None and a != b:
            raise GradientError(f"{what()}: gradient of static shape {g.type.short()} does not match "
                                f"{var.type.short()}")


def _sum_terms(terms):
    """One gradient from a variable's contributions; a NullGrad wins over numbers."""
    from ..ops.elemwise import add

    for t in terms:
        if isinstance(t, NullGrad):
            return t
    total = terms[0]
    for t in terms[1:]:
        total = add(total, t)
    return total


def _node_error(node, exc):
    where = f"\n  the node was created at {node.source}" if node.source else ""
    return GradientError(f"cannot differentiate through {node.op}: {exc}{where}")


def _check_input_grad(node, i, x, g):
    """`g`, the gradient `node.op.L_op` gave for input `i`, as a checked Variable."""
    if isinstance(g, NullGrad):
        return g
    if not isinstance(g, Variable):
        try:
            g = as_variable(g)
        except TypeError:
            raise GradientError(f"{node.op}.L_op returned {type(g).__name__} {g!r} as the gradient of "
                                f"input {i}; expected a Variable or None (a bug in the Op)") from None

    def what():
        return f"{node.op}.L_op, gradient of input {i} ({x.type.short()}), a bug in the Op"

    if g.dtype != x.dtype or g.ndim != x.ndim:
        where = f"\n  the node was created at {node.source}" if node.source else ""
        raise GradientError(f"{what()}: it returned {g.type.short()}, which has a different "
                            f"{'dtype' if g.dtype != x.dtype else 'number of dimensions'}{where}")
    _check_static(x, g, what)
    return g


def _connected(sources, wrt, blockers):
    """ids of the variables that depend differentiably on some wrt, and the Apply nodes on a
    path from a wrt to the sources, in topological order.  The walk stops at `blockers`, and
    at Ops marked `differentiable = False`."""
    dep = {id(w) for w in wrt}
    path = []
    for node in applies_between(blockers, sources):
        if not node.op.differentiable:
            continue
        if any(id(v) in dep for v in node.inputs):
            path.append(node)
            dep.update(id(o) for o in node.outputs)
    return dep, path


def backprop(seeds, wrt, consider_constant=()):
    """Push the gradients in `seeds` ((var, grad) pairs) back to `wrt`.  Returns (gradients,
    connected): one entry per wrt (a Variable, a NullGrad, or None where no gradient arrived)
    and the ids of the variables some seed depends on differentiably."""
    dep, path = _connected([v for v, _ in seeds], wrt, list(consider_constant))
    terms: dict[int, list] = {}
    for v, g in seeds:
        if g is not None and id(v) in dep:
            terms.setdefault(id(v), []).append(g)

    for node in reversed(path):
        out_grads = []
        for o in node.outputs:
            ts_ = terms.get(id(o))
            out_grads.append(_sum_terms(ts_) if ts_ and _is_float(o) else None)
        if all(g is None for g in out_grads):
            continue
        targets = [i for i, x in enumerate(node.inputs) if id(x) in dep and _is_float(x)]
        if not targets:
            continue
        null = next((g for g in out_grads if isinstance(g, NullGrad)), None)
        if null is not None:
            for i in targets:
                terms.setdefault(id(node.inputs[i]), []).append(null)
            continue
        try:
            in_grads = node.op.L_op(node.inputs, node.outputs, out_grads)
        except (GradientError, NotImplementedError) as e:
            raise _node_error(node, e) from e
        if in_grads is None or len(in_grads) != len(node.inputs):
            raise GradientError(f"{node.op}.L_op returned {0 if in_grads is None else len(in_grads)} "
                                f"gradients for {len(node.inputs)} inputs (a bug in the Op)")
        for i in targets:
            g, x = in_grads[i], node.inputs[i]
            if g is None:
                continue
            terms.setdefault(id(x), []).append(_check_input_grad(node, i, x, g))

    reach = {id(v) for v, _ in seeds}
    for node in reversed(path):
        if any(id(o) in reach for o in node.outputs):
            reach.update(id(x) for x in node.inputs if id(x) in dep)
    results = []
    for w in wrt:
        ts_ = terms.get(id(w))
        results.append(_sum_terms(ts_) if ts_ else None)
    return results, reach


def _as_wrt_type(g, w):
    """`g` with exactly w's static shape where g's is less precise."""
    if all(a is None or b is not None for a, b in zip(w.type.shape, g.type.shape)):
        return g
    from ..ops.shape import broadcast_to, shape_i

    dims = [s if s is not None else shape_i(g, i) for i, s in enumerate(w.type.shape)]
    return broadcast_to(g, dims)


def grad(cost, wrt, consider_constant=None, disconnected_inputs="raise", known_grads=None,
         return_disconnected="zero", null_gradients="raise"):
    """Symbolic gradient of the scalar `cost` with respect to `wrt` (a variable or a list).

    Each result has its `wrt`'s dtype and static shape; contributions from several uses of a
    variable are added.  A `wrt` the cost does not depend on raises `DisconnectedInputError`
    (`disconnected_inputs="warn"` or `"ignore"` to allow it) and then gives zeros
    (`return_disconnected="zero"`), None (`"none"`) or `DISCONNECTED` (`"disconnected"`).
    `known_grads={var: g}` starts backpropagation from given intermediate gradients (the
    cost may then be None); variables in `consider_constant` pass no gradient to their
    inputs.  Integer and boolean `wrt` get zeros.
    """
    from ..ops.elemwise import ones_like, zeros_like

    if disconnected_inputs not in ("raise", "warn", "ignore"):
        raise ValueError(f"disconnected_inputs must be 'raise', 'warn' or 'ignore', got {disconnected_inputs!r}")
    if return_disconnected not in ("zero", "none", "disconnected"):
        raise ValueError(f"return_disconnected must be 'zero', 'none' or 'disconnected', got {return_disconnected!r}")
    if null_gradients not in ("raise", "return"):
        raise ValueError(f"null_gradients must be 'raise' or 'return', got {null_gradients!r}")
    items, rebuild = _check_wrt(wrt)
    if cost is None and not known_grads:
        raise GradientError("grad: give a cost, or known_grads to start from")
    seeds = []
    if cost is not None:
        if not isinstance(cost, Variable):
            raise GradientError(f"grad: the cost must be a symbolic scalar, got {type(cost).__name__}")
        if cost.ndim != 0:
            raise GradientError(
                f"grad: the cost must be a scalar (0 dimensions), got {cost.label()} of type "
                f"{cost.type.short()}; sum or average it first, or use ts.Lop (a vector-Jacobian "
                "product) or ts.jacobian for a non-scalar expression")
        seeds.append((cost, ones_like(cost) if _is_float(cost) else None))
    for v, g in (known_grads or {}).items():
        if not isinstance(v, Variable):
            raise GradientError(f"known_grads keys must be symbolic variables, got {v!r}")
        seeds.append((v, _seed(v, g, "known_grads")))
    consider = list(consider_constant or ())
    grads, connected = backprop(seeds, items, consider)

    out = []
    for w, g in zip(items, grads):
        if id(w) not in connected:
            g = _disconnected(w, disconnected_inputs, return_disconnected,
                              f"grad: the cost does not depend on {w.label()} ({w.type.short()})"
                              + (f", created at {w.source}" if w.source else "")
                              + "; pass disconnected_inputs='ignore' (or 'warn') if a zero "
                              "gradient is intended")
        elif isinstance(g, NullGrad):
            if null_gradients == "raise":
                raise NullGradientError(f"grad: the gradient with respect to {w.label()} is undefined: "
                                        f"{g.describe()}")
        elif g is None or not _is_float(w):
            g = zeros_like(w)
        else:
            g = _as_wrt_type(g, w)
        out.append(g)
    return rebuild(out)


def _disconnected(w, mode, ret, msg):
    """What `grad` (and `Rop`) give for an unconnected variable `w`: an error, a warning and
    then zeros, None or DISCONNECTED."""
    from ..ops.elemwise import zeros_like

    if mode == "raise":
        raise DisconnectedInputError(msg)
    if mode == "warn":
        warnings.warn(msg, stacklevel=3)
    if ret == "zero":
        return zeros_like(w)
    if ret == "none":
        return None
    return DISCONNECTED
