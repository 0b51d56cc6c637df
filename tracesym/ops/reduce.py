"""Reductions over axes: `sum prod max min all any` (one `Reduce` Op), and the functions built
on them.  `axis` is an int, a tuple, or None (every axis); `keepdims` as numpy."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, as_variable
from ..trace.types import TensorType
from .base import Op


def normalize_axis(axis, ndim, what="axis") -> tuple:
    """`axis` as a sorted tuple of non-negative ints (None: every axis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ShapeError(f"{what} {a} is out of bounds for a {ndim}-d tensor")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated {what} in {axis}")
    return tuple(sorted(out))


_NP = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "all": np.all, "any": np.any}


class Reduce(Op):
    """`kind` (sum, prod, max, min, all, any) over `axis` (a sorted tuple), as numpy."""

    __props__ = ("kind", "axis", "keepdims")

    def __init__(self, kind, axis, keepdims=False):
        self.kind, self.axis, self.keepdims = kind, tuple(axis), bool(keepdims)

    def make_node(self, x):
        x = as_variable(x)
        for a in self.axis:
            if a >= x.ndim:
                raise ShapeError(f"{self}: axis {a} out of bounds for a {x.ndim}-d tensor")
        if self.kind in ("max", "min"):
            for a in self.axis:
                if x.type.shape[a] == 0:
                    raise ShapeError(f"{self.kind} of an empty axis has no identity")
        dtype = _NP[self.kind](np.zeros((1,) * x.ndim, x.dtype), axis=self.axis).dtype.name if x.ndim else \
            np.asarray(_NP[self.kind](np.zeros((), x.dtype))).dtype.name
        shape = tuple((1 if i in self.axis else s) for i, s in enumerate(x.type.shape)
                      if self.keepdims or i not in self.axis)
        return Apply(self, [x], [TensorType(dtype, shape).make_variable()])

    def perform(self, node, inputs):
        return (np.asarray(_NP[self.kind](inputs[0], axis=self.axis, keepdims=self.keepdims)),)

    def L_op(self, inputs, outputs, output_grads):
        (x,), (out,), (gz,) = inputs, outputs, output_grads
        if gz is None or x.dtype[0] not in "fc":
            return [None]
        from .elemwise import cast
        from .shape import broadcast_to, shape

        if not self.keepdims:
            gz = expand(gz, self.axis)
            out = expand(out, self.axis)
        if self.kind == "sum":
            return [cast(broadcast_to(gz, shape(x)), x.dtype)]
        if self.kind in ("max", "min"):
            from .elemwise import eq

            # the gradient goes to every position that attains the extremum
            return [cast(gz * eq(x, out), x.dtype)]
        if self.kind == "prod":
            return [cast(_prod_grad(x, gz, self.axis), x.dtype)]
        return [None]

    def infer_shape(self, node, input_shapes):
        (shp,) = input_shapes
        one = as_variable(np.int64(1))
        return [tuple(one if i in self.axis else s for i, s in enumerate(shp)
                      if self.keepdims or i not in self.axis)]


def _prod_grad(x, gz, axis):
    """d prod / d x_i = prod of the others, exact also where x has zeros: with no zero it is
    prod/x_i; with one zero only that position gets the product of the rest; with two or
    more every entry is 0."""
    from .elemwise import eq, where

    is_zero = eq(x, 0)
    nzeros = sum(is_zero, axis=axis, keepdims=True)
    x_nz = where(is_zero, 1, x)
    prod_nz = prod(x_nz, axis=axis, keepdims=True)
    g = where(eq(nzeros, 0), prod_nz / x_nz, where(eq(nzeros, 1) & is_zero, prod_nz, 0))
    return gz * g


def expand(x, axis):
    """Re-insert reduced `axis` as size-1 dims (undo keepdims=False)."""
    from .shape import expand_dims

    return expand_dims(x, axis)


def _reduce(kind):
    def f(x, axis=None, keepdims=False):
        x = as_variable(x)
        return Reduce(kind, normalize_axis(axis, x.ndim), keepdims)(x)

    f.__name__ = kind
    f.__doc__ = f"{kind} over `axis` (int, tuple or None for all), as numpy.{kind}."
    return f


sum, prod, max, min, all, any = map(_reduce, ("sum", "prod", "max", "min", "all", "any"))

__all__ = ["Reduce", "sum", "prod", "max", "min", "all", "any", "normalize_axis"]
