"""Matrix products: `matmul` (numpy's, batched with broadcasting), `dot`, `tensordot`, `inner`,
`vdot`, `outer`.

One Op, `MatMul`, computes every product.  `dot` of N-d tensors and `tensordot` transpose and
reshape their operands around a 2-d `MatMul`, so their gradients and shapes come from those
Ops; `outer` is a broadcast multiply.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, as_variable
from ..trace.types import TensorType, broadcast_shapes
from . import elemwise as E
from .base import Op
from .shape import (_fmt_shape, broadcast_shape_of, broadcast_to, expand_dims, prod_dims, ravel, reshape, shape_i,
                    squeeze, static_or, swapaxes, transpose)


@functools.lru_cache(maxsize=None)
def _matmul_dtype(da, db):
    return np.matmul(np.ones((1, 1), da), np.ones((1, 1), db)).dtype.name


class MatMul(Op):
    """numpy.matmul: a 1-d operand is a row (first) or a column (second) vector whose added
    dim is dropped from the result; dims before the last two are batch dims, broadcast.  The
    dtype is numpy's (integers and booleans included).  The gradient of each operand sums over
    the batch dims it was broadcast along."""

    def make_node(self, a, b):
        a, b = as_variable(a), as_variable(b)
        for i, v in enumerate((a, b)):
            if v.ndim == 0:
                raise ShapeError(f"matmul: operand {i} ({v.type.short()}) does not have enough "
                                 "dimensions; use * (or ts.dot) to multiply by a scalar")
        sa = (1,) + a.type.shape if a.ndim == 1 else a.type.shape
        sb = b.type.shape + (1,) if b.ndim == 1 else b.type.shape
        if sa[-1] is not None and sb[-2] is not None and sa[-1] != sb[-2]:
            raise ShapeError(
                f"matmul: shapes {_fmt_shape(a.type.shape)} and {_fmt_shape(b.type.shape)} are not "
                f"aligned: {sa[-1]} (dim {a.ndim - 1} of the first) != {sb[-2]} (dim "
                f"{max(b.ndim - 2, 0)} of the second)")
        batch = broadcast_shapes(sa[:-2], sb[:-2], where=" (the batch dims of matmul)")
        shape = batch + sa[-2:-1] * (a.ndim > 1) + sb[-1:] * (b.ndim > 1)
        dtype = _matmul_dtype(a.dtype, b.dtype)
        return Apply(self, [a, b], [TensorType(dtype, shape).make_variable()])

    def perform(self, node, inputs):
        return (np.matmul(*inputs),)

    def L_op(self, inputs, outputs, output_grads):
        (a, b), gz = inputs, output_grads[0]
        if gz is None:
            return [None, None]
        # work on the 2-d (or batched) forms, where both gradients are products again
        a2 = expand_dims(a, 0) if a.ndim == 1 else a
        b2 = expand_dims(b, -1) if b.ndim == 1 else b
        g2 = expand_dims(gz, gz.ndim) if b.ndim == 1 else gz
        g2 = expand_dims(g2, g2.ndim - 1) if a.ndim == 1 else g2
        grads = []
        for x, x2, g, drop in ((a, a2, lambda: matmul(g2, swapaxes(b2, -1, -2)), 0),
                               (b, b2, lambda: matmul(swapaxes(a2, -1, -2), g2), -1)):
            if x.dtype[0] not in "fc":
                grads.append(None)
                continue
            gx = E.sum_to(g(), x2)
            gx = squeeze(gx, drop) if x.ndim == 1 else gx
            grads.append(E.cast(gx, x.dtype))
        return grads

    def infer_shape(self, node, input_shapes):
        (a, b), (sa, sb) = node.inputs, input_shapes
        batch = broadcast_shape_of([tuple(sa[:-2]), tuple(sb[:-2])], [a, b])
        shp = batch + tuple(sa[-2:-1]) * (a.ndim > 1) + tuple(sb[-1:]) * (b.ndim > 1)
        return [static_or(node, shp)]


def matmul(a, b):
    """numpy.matmul (the `@` operator)."""
    return MatMul()(as_variable(a), as_variable(b))


def dot(a, b):
    """numpy.dot: a product with a scalar, the inner product of vectors, matrix products, and
    for N-d tensors the sum over the last axis of `a` and the second-to-last of `b`."""
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return E.mul(a, b)
    if a.ndim <= 2 and b.ndim <= 2:
        return MatMul()(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [max(b.ndim - 2, 0)]))


def _axes_list(axes, ndim, which):
    axes = [axes] if isinstance(axes, (int, np.integer)) else list(axes)
    out = []
    for ax in axes:
        if not isinstance(ax, (int, np.integer)):
            raise TypeError(f"tensordot: axes must be ints, got {ax!r}")
        if not -ndim <= ax < ndim:
            raise ShapeError(f"tensordot: axis {ax} is out of bounds for the {which} operand "
                             f"({ndim}-d)")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"tensordot: repeated axis in {axes} of the {which} operand")
    return out


def tensordot(a, b, axes=2):
    """numpy.tensordot: sum the products of `a` and `b` over `axes` (an int N: the last N of
    `a` with the first N of `b`; or a pair of axis sequences).  The result holds `a`'s other
    dims, then `b`'s.  Summed dims must have equal sizes: checked while tracing where the
    static shapes know them, else when the function runs."""
    a, b = as_variable(a), as_variable(b)
    if isinstance(axes, (int, np.integer)):
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ShapeError(f"tensordot: axes={axes} is invalid for operands of {a.ndim} and "
                             f"{b.ndim} dims")
        ax_a, ax_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise TypeError(f"tensordot: axes must be an int or a pair of axis sequences, got "
                            f"{axes!r}") from None
        ax_a, ax_b = _axes_list(ax_a, a.ndim, "first"), _axes_list(ax_b, b.ndim, "second")
        if len(ax_a) != len(ax_b):
            raise ShapeError(f"tensordot: {len(ax_a)} axes of the first operand against "
                             f"{len(ax_b)} of the second")
    for i, j in zip(ax_a, ax_b):
        si, sj = a.type.shape[i], b.type.shape[j]
        if si is not None and sj is not None and si != sj:
            raise ShapeError(f"tensordot: shape-mismatch for sum: dim {i} of {a.type.short()} has "
                             f"size {si}, dim {j} of {b.type.short()} has size {sj}")
    free_a = [d for d in range(a.ndim) if d not in ax_a]
    free_b = [d for d in range(b.ndim) if d not in ax_b]
    dims_a, dims_b = [shape_i(a, d) for d in free_a], [shape_i(b, d) for d in free_b]
    sum_a, sum_b = [shape_i(a, i) for i in ax_a], [shape_i(b, j) for j in ax_b]
    at, bt = transpose(a, free_a + ax_a), transpose(b, ax_b + free_b)
    if sum(a.type.shape[i] is None or b.type.shape[j] is None for i, j in zip(ax_a, ax_b)) > 1:
        # the product of the summed sizes may agree where the sizes do not: broadcasting each
        # operand to the other's summed sizes (views) fails unless every pair is equal
        at = broadcast_to(at, dims_a + sum_b)
        bt = broadcast_to(bt, sum_a + dims_b)
    a2 = reshape(at, (prod_dims(dims_a), prod_dims(sum_a)))
    b2 = reshape(bt, (prod_dims(sum_b), prod_dims(dims_b)))
    return reshape(MatMul()(a2, b2), tuple(dims_a + dims_b))


def inner(a, b):
    """numpy.inner: the sum over the last axes of `a` and `b` (a product with a scalar)."""
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return E.mul(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


def vdot(a, b):
    """numpy.vdot for real tensors: the dot product of the flattened operands."""
    a, b = as_variable(a), as_variable(b)
    if a.dtype[0] == "c":
        raise TypeError(f"vdot of complex {a.type.short()} needs a conjugate, which tracesym "
                        "does not provide; use ts.dot(ts.ravel(a), ts.ravel(b)) if that is meant")
    return MatMul()(ravel(a), ravel(b))


def outer(a, b):
    """numpy.outer: `a` and `b` flattened, every product of one element of each."""
    return E.mul(expand_dims(ravel(a), 1), expand_dims(ravel(b), 0))


__all__ = ["MatMul", "matmul", "dot", "tensordot", "inner", "vdot", "outer"]
