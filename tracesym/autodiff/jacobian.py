"""Full derivative matrices: `jacobian`, `hessian`, and the Hessian-vector product.

A Jacobian is built row by row: row k is the vector-Jacobian product with the k-th unit
vector, so the expression needs a static shape (a loop over a length known only at run time
needs `scan`).  Rows are stacked along a new leading axis, once per dimension of the
expression, so `jacobian(expr, wrt)` has shape `expr.shape + wrt.shape`.
"""

from __future__ import annotations

import numpy as np

from ..errors import GradientError
from ..trace.graph import Variable, as_variable
from .grad import _check_wrt, grad
from .linear import Lop

__all__ = ["jacobian", "hessian", "hessian_vector_product", "hvp"]


def _stack(rows):
    """`rows` (same type) stacked along a new leading axis."""
    from .. import ops as O

    if hasattr(O, "stack"):
        return O.stack(rows, axis=0)
    if hasattr(O, "concatenate"):
        return O.concatenate([O.expand_dims(r, 0) for r in rows], axis=0)
    raise GradientError("jacobian needs ts.stack or ts.concatenate, which this build lacks")


def _nest(flat, shape):
    """Stack a flat row-major list of rows into nested leading dims of `shape`."""
    if len(shape) == 1:
        return _stack(flat)
    step = len(flat) // shape[0]
    return _stack([_nest(flat[k * step:(k + 1) * step], shape[1:]) for k in range(shape[0])])


def _empty(w, shape):
    from ..ops.shape import broadcast_to, shape_i

    zero = as_variable(np.zeros((), dtype=w.dtype))
    return broadcast_to(zero, [*shape, *(shape_i(w, i) for i in range(w.ndim))])


def jacobian(expr, wrt, consider_constant=None, disconnected_inputs="raise"):
    """d expr / d wrt, of shape `expr.shape + wrt.shape` (a list of them for a list `wrt`).

    `expr` needs a static shape: one reverse pass is built per element.  A scalar `expr`
    gives `grad(expr, wrt)`.
    """
    if not isinstance(expr, Variable):
        raise GradientError(f"jacobian: expr must be a symbolic tensor, got {type(expr).__name__}")
    items, rebuild = _check_wrt(wrt)
    if expr.ndim == 0:
        return grad(expr, wrt, consider_constant=consider_constant,
                    disconnected_inputs=disconnected_inputs)
    shape = expr.type.shape
    if None in shape:
        raise GradientError(
            f"jacobian: {expr.label()} has type {expr.type.short()}; the length of each of its "
            "dimensions must be static (known while tracing) to build one row per element. "
            "Give the inputs static shapes (ts.tensor(dtype, shape=(3,))) or use ts.scan")
    n = int(np.prod(shape))
    if n == 0:
        return rebuild([_empty(w, shape) for w in items])
    rows = [[] for _ in items]
    for k in range(n):
        unit = np.zeros(n, dtype=expr.dtype)
        unit[k] = 1
        gs = Lop(expr, items, unit.reshape(shape), consider_constant=consider_constant,
                 disconnected_inputs=disconnected_inputs if k == 0 else "ignore")
        for r, g in zip(rows, gs):
            r.append(g)
    return rebuild([_nest(r, shape) for r in rows])


def hessian(cost, wrt, consider_constant=None, disconnected_inputs="raise"):
    """The matrix of second derivatives of the scalar `cost`: `jacobian(grad(cost, w), w)`
    for each `w` (a list of them for a list `wrt`).  Each `w` needs a static shape."""
    items, rebuild = _check_wrt(wrt)
    out = []
    for w in items:
        g = grad(cost, w, consider_constant=consider_constant, disconnected_inputs=disconnected_inputs)
        out.append(jacobian(g, w, consider_constant=consider_constant, disconnected_inputs="ignore"))
    return rebuild(out)


def hessian_vector_product(cost, wrt, v, consider_constant=None, disconnected_inputs="raise"):
    """H . v without forming H: `grad(sum(grad(cost, wrt) * v), wrt)`.  `v` matches `wrt`
    (a tensor of its shape, or a list for a list `wrt`)."""
    from ..ops.elemwise import mul
    from ..ops.reduce import sum as _sum
    from .grad import _seed

    items, rebuild = _check_wrt(wrt)
    vs = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(vs) != len(items):
        raise GradientError(f"hessian_vector_product: {len(items)} wrt variable(s) but {len(vs)} vector(s)")
    gs = grad(cost, items, consider_constant=consider_constant, disconnected_inputs=disconnected_inputs)
    dot = None
    for g, w, x in zip(gs, items, vs):
        term = _sum(mul(g, _seed(w, x, "hessian_vector_product vector")))
        dot = term if dot is None else dot + term
    return rebuild(grad(dot, items, consider_constant=consider_constant, disconnected_inputs="ignore"))


hvp = hessian_vector_product
