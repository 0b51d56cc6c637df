"""BLAS specialisation (phase `specialize`): a matrix product that is scaled and added to a
tensor becomes one `Gemm`, `Gemv` or `Ger`, which scales the smallest operand and adds in the
product's buffer (or, once the `inplace` pass has made it destructive, in z's own buffer).

    z*b + (x @ y)*a  ->  Gemm(z, a, x, y, b)       (also z + ..., z - ..., ... - z)
    z*b + (a @ v)*c  ->  Gemv(z, c, a, v, b)       (v @ a: Gemv of a.T)
    z + outer(x, y)*c -> Ger(z, c, x, y)           (x[:, None] * y[None, :], either order)
    z - a*Gemm(c, al, x, y, b) -> Gemm(z - a*b*c, -a*al, x, y, 1)
                                                   (a sum of updates: an L2-regularised step)

The patterns are read across the canonical form (`canonicalize`): a sum is a left-deep chain
of `add`/`sub` nodes and a scaled product a chain of `mul` nodes whose scalar (0-d) factors may
sit anywhere in it; `neg` flips the sign.  Every node the rewrite absorbs must be read by
nothing else but `Shape` nodes (else the product would be computed twice); everything involved must have the
sum's float dtype (a float32 update never becomes float64; integer products stay `MatMul`),
scalars of a narrower exact dtype cast up; `z` must have the product's ndim and no static
size-1 dim where the product has a bigger one (a broadcast bias is not an update).

A plain product (no `z`) stays `MatMul`, as Theano keeps `Dot22`: `Gemm` with beta 0 would
call the same numpy product and cost an extra argument, and a scaled product alone is
`(x @ y) * a`, one product and one in-place pass either way.
"""

from __future__ import annotations

import numpy as np

from ..ops import elemwise as E
from ..ops.blas import Gemm, Gemv, Ger, MatMul
from ..ops.elemwise import Elemwise
from ..ops.shape import DimShuffle, Shape, ShapeI, transpose
from ..ops.subtensor import Subtensor
from ..trace.graph import Constant, as_variable
from .canonicalize import exact_cast
from .engine import node_rewriter

TAGS = ("specialize", "blas")


def _op_name(v):
    node = v.owner
    return node.op.scalar_op.name if node is not None and type(node.op) is Elemwise else None


def _private(graph, v) -> bool:
    """`v` is read by exactly one node and is not an output of the graph.  Nodes reading only
    its shape do not count: `shape_of_specialized` computes that shape from the inputs once
    the update has absorbed `v`."""
    return (v in graph and not any(o is v for o in graph.outputs)
            and sum(not isinstance(a.op, (Shape, ShapeI)) for a, _ in graph.clients(v)) == 1)


def _scaled_term(graph, v, dtype):
    """`v` as (sign, scalars, factors): v = sign * prod(scalars) * prod(factors), following the
    `mul`/`neg` nodes of `dtype` that only this term reads; scalars are the 0-d factors."""
    sign, scalars, factors, stack = 1, [], [], [v]
    while stack:
        u = stack.pop()
        name = _op_name(u)
        if name in ("mul", "neg") and u.dtype == dtype and (u is v or _private(graph, u)):
            if name == "neg":
                sign = -sign
            stack.extend(reversed(u.owner.inputs))
        elif u.ndim == 0:
            scalars.append(u)
        else:
            factors.append(u)
    return sign, scalars, factors


def _scalar_product(sign, scalars, dtype):
    """The 0-d `dtype` product of `scalars` times `sign` (constants folded here, as this phase
    runs no constant folding), or None when a scalar's dtype does not convert to `dtype`
    exactly."""
    if any(not exact_cast(s.dtype, dtype) for s in scalars):
        return None
    const = np.asarray(sign, dtype=dtype)
    acc = None
    for s in scalars:
        if isinstance(s, Constant):
            const = np.multiply(const, s.data.astype(dtype), dtype=dtype)
        else:
            s = E.cast(s, dtype)
            acc = s if acc is None else E.mul(acc, s)
    if acc is None:
        return as_variable(const)
    return acc if const == 1 else E.neg(acc) if const == -1 else E.mul(acc, as_variable(const))


def _negated(v):
    return as_variable(-v.data) if isinstance(v, Constant) else E.neg(v)


#: how a column (x[:, None]) and a row (y[None, :]) of a vector are written, as DimShuffle
#: orders and as Subtensor keys
_COLUMN = ((0, "x"), [((None, None, None), None)])
_ROW = (("x", 0), [(None,), (None, (None, None, None))])


def _vector_of(v, kind, dtype):
    """The 1-d `dtype` tensor that `v` shows as a column or a row (`kind`), else None."""
    order, keys = kind
    node = v.owner
    if node is None or node.inputs[0].ndim != 1 or node.inputs[0].dtype != dtype:
        return None
    if isinstance(node.op, DimShuffle) and node.op.new_order == order:
        return node.inputs[0]
    if type(node.op) is Subtensor and len(node.inputs) == 1 and node.op.idx_list in keys:
        return node.inputs[0]
    return None


def _product(graph, v, dtype, outer_sign):
    """(Op class, alpha, x, y, rest) when `outer_sign * v` is a scaled product this module
    turns into a BLAS update, else None.  `rest` is None, or a term (c, coef) to add to z where
    the product is itself a BLAS update (its own z scaled): `z - a*Gemm(c, al, x, y, b) ->
    Gemm(z - a*b*c, -a*al, x, y, 1)`, which keeps the elementwise part in one fusable
    expression."""
    if not (v.owner is not None and _private(graph, v)):
        return None
    sign, scalars, factors = _scaled_term(graph, v, dtype)
    sign *= outer_sign
    rest = None
    if len(factors) == 1:
        p = factors[0]
        node = p.owner
        if node is None or p.dtype != dtype or (p is not v and not _private(graph, p)):
            return None
        if isinstance(node.op, (Gemm, Gemv, Ger)) and not node.op.inplace:
            c, inner_alpha, x, y = node.inputs[:4]
            inner_beta = node.inputs[4] if node.op.has_beta else as_variable(np.asarray(1, dtype))
            coef = _scalar_product(sign, scalars + [inner_beta], dtype)
            cls, rest, scalars = type(node.op), (c, coef), scalars + [inner_alpha]
        elif isinstance(node.op, MatMul) and p.ndim in (1, 2):
            x, y = node.inputs
            if x.dtype != dtype or y.dtype != dtype:
                return None
            if x.ndim == 2 and y.ndim == 2:
                cls = Gemm
            elif x.ndim == 2 and y.ndim == 1:
                cls = Gemv
            elif x.ndim == 1 and y.ndim == 2:
                cls, x, y = Gemv, transpose(y), x
            else:
                return None
        else:
            return None
    elif len(factors) == 2:
        col, row = factors
        if _vector_of(col, _ROW, dtype) is not None:
            col, row = row, col
        cls, x, y = Ger, _vector_of(col, _COLUMN, dtype), _vector_of(row, _ROW, dtype)
        if x is None or y is None:
            return None
    else:
        return None
    alpha = _scalar_product(sign, scalars, dtype)
    return None if alpha is None else (cls, alpha, x, y, rest)


def _times(v, s):
    """v * s for a 0-d s, with s = 1 and s = -1 spared."""
    if isinstance(s, Constant) and s.data == 1:
        return v
    if isinstance(s, Constant) and s.data == -1:
        return E.neg(v)
    return E.mul(v, s)


def _addend(graph, v, dtype, sign, with_beta):
    """(z, beta) for the term `sign * v` added to the product: `v` itself with beta = sign, or
    with a private scalar product peeled off into beta.  None where `v` cannot be z."""
    if v.dtype != dtype:
        return None
    if with_beta and v.owner is not None and _private(graph, v):
        s, scalars, factors = _scaled_term(graph, v, dtype)
        if len(factors) == 1 and factors[0].dtype == dtype:
            beta = _scalar_product(s * sign, scalars, dtype)
            if beta is not None:
                return factors[0], beta
    if sign < 0 and not with_beta:
        return None
    return v, as_variable(np.asarray(sign, dtype=dtype))


def _fits(z, cls, x, y) -> bool:
    """`z` is an addend of the product's ndim that no static size 1 marks as broadcast."""
    pshape = cls()._product_static(x, y)
    return z.ndim == len(pshape) and not any(
        a == 1 and b != 1 for a, b in zip(z.type.shape, pshape))


@node_rewriter([Elemwise], tags=TAGS)
def blas_update(graph, node):
    """z*b + (x @ y)*a -> Gemm(z, a, x, y, b); matrix-vector products -> Gemv; z + outer(x,
    y)*a -> Ger(z, a, x, y); also with `-` on either side, scalars anywhere in the product
    chain, and z an unscaled term (b = 1)."""
    if type(node.op) is not Elemwise or node.op.scalar_op.name not in ("add", "sub"):
        return None
    out = node.outputs[0]
    dtype = out.dtype
    if dtype[0] != "f":
        return None
    left, right = node.inputs
    neg = -1 if node.op.scalar_op.name == "sub" else 1
    for prod_side, z_side, prod_sign, z_sign in ((right, left, neg, 1), (left, right, 1, neg)):
        match = _product(graph, prod_side, dtype, prod_sign)
        if match is None:
            continue
        cls, alpha, x, y, rest = match
        addend = _addend(graph, z_side, dtype, z_sign, cls.has_beta or rest is not None)
        if addend is None or not _fits(addend[0], cls, x, y):
            continue
        z, beta = addend
        if rest is not None:
            if not _fits(rest[0], cls, x, y):
                continue
            z, beta = E.add(_times(z, beta), _times(*rest)), as_variable(np.asarray(1, dtype))
        args = (z, alpha, x, y, beta) if cls.has_beta else (z, alpha, x, y)
        return [cls()(*args)]
    return None


__all__ = ["blas_update"]
