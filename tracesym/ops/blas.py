"""Matrix products: `matmul` (numpy's, batched with broadcasting), `dot`, `tensordot`, `inner`,
`vdot`, `outer`; and the BLAS updates `Gemm`, `Gemv`, `Ger` (a product scaled and added to a
tensor), which only the `specialize` rewrites build.

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


# ---------------------------------------------------------------------------------------------
# BLAS updates: products scaled and added to a tensor in one Op
# ---------------------------------------------------------------------------------------------

class _BlasUpdate(Op):
    """`beta*z + alpha*product(x, y)` (GEMM, GEMV, GER), which the `specialize` rewrites form
    from the separate matmul, scale and add.  `z` broadcasts against the product as in numpy's
    add; `alpha` and `beta` are 0-d; everything has one float dtype, the result's.

    The numpy `perform` computes the product with numpy's BLAS (`matmul`, `multiply.outer`),
    folds `alpha` into whichever of the product and its two operands is smallest, and adds
    `beta*z` into the product's fresh buffer; so the sum costs one pass over the result.  With
    `inplace` (chosen by the `inplace` rewrite) the result goes into `z`'s buffer when `z` has
    the result's shape (else a new array, so the output need not have `z`'s shape)."""

    abstract = True
    __props__ = ("inplace",)
    #: ndim of z, x, y
    ndims: tuple = ()
    has_beta = True

    def __init__(self, inplace=False):
        self.inplace = bool(inplace)
        self.destroy_map = {0: [0]} if self.inplace else {}

    def __str__(self):
        return f"{type(self).__name__}{{inplace}}" if self.inplace else type(self).__name__

    __repr__ = __str__

    def _split(self, inputs):
        """(z, alpha, x, y, beta), with beta None for an Op without one."""
        if self.has_beta:
            return inputs
        z, alpha, x, y = inputs
        return z, alpha, x, y, None

    def make_node(self, *inputs):
        name = type(self).__name__.lower()
        n = 5 if self.has_beta else 4
        if len(inputs) != n:
            raise TypeError(f"{name} takes {n} inputs, got {len(inputs)}")
        inputs = [as_variable(v) for v in inputs]
        z, alpha, x, y, beta = self._split(inputs)
        dtype = z.dtype
        if dtype[0] != "f":
            raise TypeError(f"{name}: z must be a float tensor, got {z.type.short()}; integer "
                            "products use ts.matmul")
        roles = [("z", z, self.ndims[0]), ("alpha", alpha, 0), ("x", x, self.ndims[1]),
                 ("y", y, self.ndims[2])] + [("beta", beta, 0)] * self.has_beta
        for role, v, nd in roles:
            if v.ndim != nd or v.dtype != dtype:
                raise TypeError(f"{name}: {role} must be a {nd}-d {dtype} tensor (the dtype of "
                                f"z), got {v.type.short()}")
        pshape = self._product_static(x, y)
        shape = broadcast_shapes(z.type.shape, pshape, where=f" (z and the product of {name})")
        return Apply(self, inputs, [TensorType(dtype, shape).make_variable()])

    def perform(self, node, inputs):
        z, alpha, x, y, beta = self._split(inputs)
        alpha = alpha[()]
        beta = 1 if beta is None else beta[()]
        with np.errstate(all="ignore"):
            p = self._scaled_product(x, y, alpha)
            shape = p.shape if z.shape == p.shape else np.broadcast_shapes(z.shape, p.shape)
            if (self.inplace and z.shape == shape and type(z) is np.ndarray
                    and z.flags.writeable):
                if beta != 1:
                    np.multiply(z, beta, out=z)
                return (np.add(z, p, out=z),)
            if p.shape == shape:
                return (np.add(p, z if beta == 1 else z * beta, out=p),)
            return (z * beta + p,)

    def _scaled_product(self, x, y, alpha):
        """alpha * product(x, y), alpha applied to the smallest of x, y and the product."""
        if alpha == 1:
            return self._product(x, y)
        size = self._product_size(x, y)
        if x.size < min(y.size, size):
            return self._product(x * alpha, y)
        if y.size < size:
            return self._product(x, y * alpha)
        p = self._product(x, y)
        p *= alpha
        return p

    def L_op(self, inputs, outputs, output_grads):
        from .reduce import sum as _sum

        z, alpha, x, y, beta = self._split(inputs)
        g = output_grads[0]
        if g is None:
            return [None] * len(inputs)
        p = self._product_sym(x, y)
        gp = E.sum_to(g, p)
        gx, gy = self._product_grads(x, y, E.mul(gp, alpha))
        gz = E.sum_to(g if beta is None else E.mul(g, beta), z)
        galpha = _sum(E.mul(gp, p))
        if beta is None:
            return [gz, galpha, gx, gy]
        return [gz, galpha, gx, gy, _sum(E.mul(g, z))]

    def infer_shape(self, node, input_shapes):
        z, _, x, y, _ = self._split(node.inputs)
        sz, _, sx, sy, _ = self._split(input_shapes)
        # a stand-in for the product, which broadcast_shape_of only asks for its static shape
        p = TensorType(z.dtype, self._product_static(x, y)).make_variable()
        return [static_or(node, broadcast_shape_of([tuple(sz), self._product_dims(sx, sy)], [z, p]))]


class Gemm(_BlasUpdate):
    """`beta*z + alpha*(x @ y)` for matrices x (m, k), y (k, n) and z (m, n)."""

    ndims = (2, 2, 2)

    def _product_static(self, x, y):
        (m, k), (k2, n) = x.type.shape, y.type.shape
        if k is not None and k2 is not None and k != k2:
            raise ShapeError(f"gemm: shapes {_fmt_shape(x.type.shape)} and "
                             f"{_fmt_shape(y.type.shape)} are not aligned: {k} != {k2}")
        return (m, n)

    def _product(self, x, y):
        return np.matmul(x, y)

    def _product_size(self, x, y):
        return x.shape[0] * y.shape[1]

    def _product_sym(self, x, y):
        return matmul(x, y)

    def _product_dims(self, sx, sy):
        return (sx[0], sy[1])

    def _product_grads(self, x, y, g):
        return matmul(g, transpose(y)), matmul(transpose(x), g)


class Gemv(_BlasUpdate):
    """`beta*z + alpha*(a @ x)` for a matrix a (m, n) and vectors x (n,) and z (m,); `x @ a`
    is `Gemv` of `a.T`."""

    ndims = (1, 2, 1)

    def _product_static(self, a, x):
        (m, n), (n2,) = a.type.shape, x.type.shape
        if n is not None and n2 is not None and n != n2:
            raise ShapeError(f"gemv: shapes {_fmt_shape(a.type.shape)} and "
                             f"{_fmt_shape(x.type.shape)} are not aligned: {n} != {n2}")
        return (m,)

    def _product(self, a, x):
        return np.matmul(a, x)

    def _product_size(self, a, x):
        return a.shape[0]

    def _product_sym(self, a, x):
        return matmul(a, x)

    def _product_dims(self, sa, sx):
        return (sa[0],)

    def _product_grads(self, a, x, g):
        return outer(g, x), matmul(transpose(a), g)


class Ger(_BlasUpdate):
    """`a + alpha*outer(x, y)` for vectors x (m,), y (n,) and a matrix a (m, n): the rank-1
    update of a matrix."""

    ndims = (2, 1, 1)
    has_beta = False

    def _product_static(self, x, y):
        return x.type.shape + y.type.shape

    def _product(self, x, y):
        return np.multiply.outer(x, y)

    def _product_size(self, x, y):
        return x.size * y.size

    def _product_sym(self, x, y):
        return outer(x, y)

    def _product_dims(self, sx, sy):
        return (sx[0], sy[0])

    def _product_grads(self, x, y, g):
        return matmul(g, y), matmul(transpose(g), x)


__all__ = ["MatMul", "matmul", "dot", "tensordot", "inner", "vdot", "outer", "Gemm", "Gemv",
           "Ger"]
