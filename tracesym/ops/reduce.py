"""Reductions over axes and cumulative scans, numpy semantics throughout.

`axis` is an int, a tuple of ints, or None (every axis); negative axes count from the end;
`keepdims` keeps the reduced axes as size-1 dims.  One `Reduce` Op covers `sum prod max min
all any`; `mean var std` are compositions over it, their element count read from the symbolic
shape so unknown sizes work.  `ArgReduce` (argmax/argmin), `LogSumExp` and `CumOp`
(cumsum/cumprod) are Ops of their own.
"""

from __future__ import annotations

import builtins
import functools
import math

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


def _one_axis(axis, ndim) -> int:
    """A single int axis (numpy's argmax/cumsum take no tuples), made non-negative."""
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int or None, got {axis!r}")
    return normalize_axis(axis, ndim)[0]


def _check_axes(op, x, axes):
    if list(axes) != sorted(set(axes)) or builtins.any(not 0 <= a < x.ndim for a in axes):
        raise ShapeError(f"{op}: axes {axes} are invalid for a {x.ndim}-d tensor "
                         "(use the tensor-level function, which normalizes them)")


def _reduced_shape(shape, axes, keepdims, one=1):
    return tuple(one if i in axes else s for i, s in enumerate(shape)
                 if keepdims or i not in axes)


def _dtype_name(dtype):
    return None if dtype is None else np.dtype(dtype).name


_NP = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "all": np.all, "any": np.any}


@functools.lru_cache(maxsize=None)
def _reduce_dtype(kind, dtype, acc):
    kw = {"dtype": acc} if acc is not None else {}
    return np.asarray(_NP[kind](np.zeros(1, dtype), **kw)).dtype.name


class Reduce(Op):
    """`kind` (sum, prod, max, min, all, any) over `axis` (a sorted tuple), as numpy.

    `dtype` is numpy's accumulator/result dtype argument of sum and prod (None: numpy's
    default, which widens small integers and booleans to the platform integer).  The gradient
    of max/min goes, whole, to every position equal to the extremum (Theano's choice): with
    ties, each tied position gets the full output gradient.  The gradient of prod is exact also
    where the input has zeros."""

    __props__ = ("kind", "axis", "keepdims", "dtype")

    def __init__(self, kind, axis, keepdims=False, dtype=None):
        if kind not in _NP:
            raise ValueError(f"unknown reduction {kind!r}; expected one of {sorted(_NP)}")
        if dtype is not None and kind not in ("sum", "prod"):
            raise TypeError(f"{kind} takes no dtype argument")
        self.kind, self.axis, self.keepdims = kind, tuple(axis), bool(keepdims)
        self.dtype = _dtype_name(dtype)

    def make_node(self, x):
        x = as_variable(x)
        _check_axes(self, x, self.axis)
        if self.kind in ("max", "min"):
            for a in self.axis:
                if x.type.shape[a] == 0:
                    raise ShapeError(f"{self.kind} over axis {a} of size 0: an empty reduction "
                                     f"has no identity ({x.type.short()})")
        dtype = _reduce_dtype(self.kind, x.dtype, self.dtype)
        shape = _reduced_shape(x.type.shape, self.axis, self.keepdims)
        return Apply(self, [x], [TensorType(dtype, shape).make_variable()])

    def perform(self, node, inputs):
        kw = {"dtype": self.dtype} if self.dtype is not None else {}
        r = _NP[self.kind](inputs[0], axis=self.axis, keepdims=self.keepdims, **kw)
        return (np.asarray(r, dtype=node.outputs[0].dtype),)

    def L_op(self, inputs, outputs, output_grads):
        (x,), (out,), (gz,) = inputs, outputs, output_grads
        if gz is None or x.dtype[0] not in "fc" or out.dtype[0] not in "fc":
            return [None]  # also all/any, whose outputs are boolean
        from .elemwise import cast, eq
        from .shape import broadcast_to, shape

        if not self.keepdims:
            gz = expand(gz, self.axis)
            out = expand(out, self.axis)
        if self.kind == "sum":
            g = broadcast_to(gz, shape(x))
        elif self.kind == "prod":
            g = _prod_grad(x, gz, self.axis)
        else:
            g = gz * eq(x, out)
        return [cast(g, x.dtype)]

    def infer_shape(self, node, input_shapes):
        one = as_variable(np.int64(1))
        return [_reduced_shape(input_shapes[0], self.axis, self.keepdims, one)]


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


def _reduce(kind, doc):
    def f(x, axis=None, keepdims=False):
        x = as_variable(x)
        return Reduce(kind, normalize_axis(axis, x.ndim), keepdims)(x)

    f.__name__ = kind
    f.__doc__ = doc
    return f


def _accumulate(kind):
    def f(x, axis=None, dtype=None, keepdims=False):
        x = as_variable(x)
        dtype = _dtype_name(dtype)
        if dtype is not None and dtype == _reduce_dtype(kind, x.dtype, None):
            dtype = None  # numpy's default already: one Op, so equal graphs merge
        return Reduce(kind, normalize_axis(axis, x.ndim), keepdims, dtype)(x)

    f.__name__ = kind
    f.__doc__ = (f"numpy.{kind} over `axis` (int, tuple or None for all); `dtype` is the "
                 "accumulator and result dtype (default: numpy's, int64 for small ints and bool).")
    return f


sum, prod = _accumulate("sum"), _accumulate("prod")
max = _reduce("max", "numpy.max over `axis`; an empty reduced axis is an error, as in numpy.")
min = _reduce("min", "numpy.min over `axis`; an empty reduced axis is an error, as in numpy.")
all = _reduce("all", "numpy.all over `axis`: True where every element is nonzero.")
any = _reduce("any", "numpy.any over `axis`: True where some element is nonzero.")
amax, amin = max, min


# ------------------------------------------------------------------------------------------
# mean, var, std: compositions, so their gradients come from the Ops they use
# ------------------------------------------------------------------------------------------

def _count(x, axes, dtype, ddof=0):
    """The number of elements `axes` reduce (minus `ddof`, at least 0) as a `dtype` scalar:
    a constant when the static shape knows it, else computed from the run-time shape."""
    from .elemwise import cast, maximum
    from .shape import shape_i

    sizes = [x.type.shape[a] for a in axes]
    if None not in sizes:
        return as_variable(np.asarray(builtins.max(math.prod(sizes) - ddof, 0), dtype=dtype))
    n = shape_i(x, axes[0])
    for a in axes[1:]:
        n = n * shape_i(x, a)
    if ddof:
        n = maximum(n - ddof, 0)
    return cast(n, dtype)


def _real(dtype):
    return {"complex64": "float32", "complex128": "float64"}.get(dtype, dtype)


def _natural(x, dtype):
    """The dtype numpy accumulates a mean/var of `x` in: `dtype` when given, else float64
    for ints and bools and x's own dtype otherwise."""
    if dtype is not None:
        return dtype
    return "float64" if x.dtype[0] in "biu" else x.dtype


def mean(x, axis=None, dtype=None, keepdims=False):
    """numpy.mean: the sum over `axis` divided by the element count.  Integers and booleans
    average to float64, float16 accumulates in float32 (as numpy); the mean over zero elements
    is nan."""
    from .elemwise import cast

    x = as_variable(x)
    axes = normalize_axis(axis, x.ndim)
    dtype = _dtype_name(dtype)
    out_dtype = np.mean(np.zeros(1, x.dtype), dtype=dtype).dtype.name
    acc = "float32" if dtype is None and x.dtype == "float16" else _natural(x, dtype)
    s = sum(x, axes, dtype=acc, keepdims=keepdims)
    return cast(s / _count(x, axes, _real(s.dtype)), out_dtype)


def var(x, axis=None, dtype=None, ddof=0, keepdims=False):
    """numpy.var: the mean squared deviation from the mean, divided by `count - ddof` (at
    least 0, so `ddof >= count` gives inf or nan as numpy does).  Complex input gives a real
    variance (|x - mean|^2)."""
    from .elemwise import abs as _abs, cast

    x = as_variable(x)
    axes = normalize_axis(axis, x.ndim)
    dtype = _dtype_name(dtype)
    out_dtype = np.var(np.zeros(2, x.dtype), dtype=dtype).dtype.name
    acc = _natural(x, dtype)
    s = sum(x, axes, dtype=acc, keepdims=True)
    d = x - s / _count(x, axes, _real(s.dtype))
    sq = _abs(d) * _abs(d) if d.dtype[0] == "c" else d * d
    ss = sum(sq, axes, dtype=acc if acc[0] != "c" else None, keepdims=keepdims)
    return cast(ss / _count(x, axes, _real(ss.dtype), ddof), out_dtype)


def std(x, axis=None, dtype=None, ddof=0, keepdims=False):
    """numpy.std: the square root of `var`."""
    from .elemwise import sqrt

    return sqrt(var(x, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims))


# ------------------------------------------------------------------------------------------
# argmax / argmin
# ------------------------------------------------------------------------------------------

class ArgReduce(Op):
    """numpy.argmax / argmin (`kind`) along one `axis`; axis None gives the index into the
    flattened tensor.  The first occurrence wins ties; an empty axis is a run-time error."""

    __props__ = ("kind", "axis", "keepdims")
    differentiable = False

    def __init__(self, kind, axis, keepdims=False):
        if kind not in ("argmax", "argmin"):
            raise ValueError(f"unknown arg-reduction {kind!r}")
        self.kind, self.axis, self.keepdims = kind, axis, bool(keepdims)

    def _axes(self, ndim):
        return tuple(range(ndim)) if self.axis is None else (self.axis,)

    def make_node(self, x):
        x = as_variable(x)
        if self.axis is not None:
            _check_axes(self, x, (self.axis,))
        shape = _reduced_shape(x.type.shape, self._axes(x.ndim), self.keepdims)
        return Apply(self, [x], [TensorType("int64", shape).make_variable()])

    def perform(self, node, inputs):
        f = np.argmax if self.kind == "argmax" else np.argmin
        return (np.asarray(f(inputs[0], axis=self.axis, keepdims=self.keepdims), dtype=np.int64),)

    def L_op(self, inputs, outputs, output_grads):
        return [None]

    def infer_shape(self, node, input_shapes):
        one = as_variable(np.int64(1))
        axes = self._axes(node.inputs[0].ndim)
        return [_reduced_shape(input_shapes[0], axes, self.keepdims, one)]


def argmax(x, axis=None, keepdims=False):
    """numpy.argmax: int64 indices of the maxima along `axis` (None: in the flattened tensor)."""
    x = as_variable(x)
    return ArgReduce("argmax", None if axis is None else _one_axis(axis, x.ndim), keepdims)(x)


def argmin(x, axis=None, keepdims=False):
    """numpy.argmin: int64 indices of the minima along `axis` (None: in the flattened tensor)."""
    x = as_variable(x)
    return ArgReduce("argmin", None if axis is None else _one_axis(axis, x.ndim), keepdims)(x)


# ------------------------------------------------------------------------------------------
# logsumexp
# ------------------------------------------------------------------------------------------

def _float_dtype(dtype):
    from .scalar import float_dtype

    return float_dtype(dtype).name


class LogSumExp(Op):
    """log(sum(exp(x))) over `axis`, computed as max + log(sum(exp(x - max))) so large inputs
    do not overflow.  A slice of all -inf gives -inf (not nan), an empty one -inf.  Its
    gradient is the softmax, exp(x - out)."""

    __props__ = ("axis", "keepdims")

    def __init__(self, axis, keepdims=False):
        self.axis, self.keepdims = tuple(axis), bool(keepdims)

    def make_node(self, x):
        x = as_variable(x)
        if x.dtype[0] == "c":
            raise TypeError(f"logsumexp of complex input ({x.type.short()}) is not supported")
        _check_axes(self, x, self.axis)
        shape = _reduced_shape(x.type.shape, self.axis, self.keepdims)
        return Apply(self, [x], [TensorType(_float_dtype(x.dtype), shape).make_variable()])

    def perform(self, node, inputs):
        dtype = node.outputs[0].dtype
        x = inputs[0].astype(np.promote_types(dtype, np.float32), copy=False)
        shape = _reduced_shape(x.shape, self.axis, True)
        if builtins.any(x.shape[a] == 0 for a in self.axis):
            r = np.full(shape, -np.inf, x.dtype)
        else:
            m = np.max(x, axis=self.axis, keepdims=True)
            m = np.where(np.isfinite(m), m, 0)  # all -inf (or a +inf): shift by 0 instead
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                r = np.log(np.sum(np.exp(x - m), axis=self.axis, keepdims=True)) + m
        if not self.keepdims:
            r = r.reshape(_reduced_shape(x.shape, self.axis, False))
        return (np.asarray(r, dtype=dtype),)

    def L_op(self, inputs, outputs, output_grads):
        (x,), (out,), (gz,) = inputs, outputs, output_grads
        if gz is None or x.dtype[0] != "f":
            return [None]
        from .elemwise import cast, exp

        if not self.keepdims:
            gz, out = expand(gz, self.axis), expand(out, self.axis)
        return [cast(gz * exp(x - out), x.dtype)]

    def infer_shape(self, node, input_shapes):
        one = as_variable(np.int64(1))
        return [_reduced_shape(input_shapes[0], self.axis, self.keepdims, one)]


def logsumexp(x, axis=None, keepdims=False):
    """scipy.special.logsumexp without weights: a stable log(sum(exp(x), axis))."""
    x = as_variable(x)
    return LogSumExp(normalize_axis(axis, x.ndim), keepdims)(x)


# ------------------------------------------------------------------------------------------
# cumsum / cumprod
# ------------------------------------------------------------------------------------------

_CUM = {"sum": np.cumsum, "prod": np.cumprod}


@functools.lru_cache(maxsize=None)
def _cum_dtype(kind, dtype, acc):
    return _CUM[kind](np.zeros(1, dtype), dtype=acc).dtype.name


class CumOp(Op):
    """numpy.cumsum / cumprod (`kind` "sum" / "prod") along `axis`; axis None scans the
    flattened tensor (a 1-d result).  `reverse` scans from the end (the gradient of a cumsum
    is the reversed cumsum of its output gradient).  `dtype` as numpy's.  The cumprod gradient
    is exact also where the input has zeros."""

    __props__ = ("kind", "axis", "dtype", "reverse")

    def __init__(self, kind, axis, dtype=None, reverse=False):
        if kind not in _CUM:
            raise ValueError(f"unknown scan {kind!r}; expected 'sum' or 'prod'")
        if axis is None and reverse:
            raise ValueError("a reversed scan needs an axis")
        self.kind, self.axis, self.reverse = kind, axis, bool(reverse)
        self.dtype = _dtype_name(dtype)

    def make_node(self, x):
        x = as_variable(x)
        if self.axis is None:
            sizes = x.type.shape
            shape = (None if None in sizes else math.prod(sizes),)
        else:
            _check_axes(self, x, (self.axis,))
            shape = x.type.shape
        dtype = _cum_dtype(self.kind, x.dtype, self.dtype)
        return Apply(self, [x], [TensorType(dtype, shape).make_variable()])

    def perform(self, node, inputs):
        (x,), f = inputs, _CUM[self.kind]
        dtype = node.outputs[0].dtype
        if self.reverse:
            r = np.flip(f(np.flip(x, self.axis), axis=self.axis, dtype=dtype), self.axis)
        else:
            r = f(x, axis=self.axis, dtype=dtype)
        return (np.ascontiguousarray(r),)

    def L_op(self, inputs, outputs, output_grads):
        (x,), (out,), (gz,) = inputs, outputs, output_grads
        if gz is None or x.dtype[0] not in "fc" or out.dtype[0] not in "fc":
            return [None]
        from .elemwise import cast

        if self.axis is None:
            from .. import ops as O  # reshape lives in another family; found wherever it is
            from .shape import shape

            xf = O.reshape(x, (_count(x, range(x.ndim), "int64"),))
            g = _cum_grad(self.kind, 0, False, xf, out, gz)
            return [cast(O.reshape(g, shape(x)), x.dtype)]
        return [cast(_cum_grad(self.kind, self.axis, self.reverse, x, out, gz), x.dtype)]

    def infer_shape(self, node, input_shapes):
        (shp,) = input_shapes
        if self.axis is not None:
            return [tuple(shp)]
        n = as_variable(np.int64(1))
        for s in shp:
            n = n * s
        return [(n,)]


def _cum_grad(kind, axis, reverse, x, y, g):
    """The vector-Jacobian product of a scan `y = cum<kind>(x)` along `axis`.

    cumsum: the scan of `g` in the other direction.  cumprod, where the scan meets its first
    zero at z: before z, revscan(g * y) / x (y is 0 from z on); at z, revscan(g * y1) with y1
    the cumprod that skips x_z; after z, 0 (every product there holds x_z)."""
    from .elemwise import eq, where

    def back(t):
        return CumOp("sum", axis, reverse=not reverse)(t)

    if kind == "sum":
        return back(g)
    is_zero = eq(x, 0)
    zeros_so_far = CumOp("sum", axis, reverse=reverse)(is_zero)
    before = eq(zeros_so_far, 0)
    first = is_zero & eq(zeros_so_far, 1)
    y1 = CumOp("prod", axis, reverse=reverse)(where(first, 1, x))
    return where(before, back(g * y) / where(before, x, 1), where(first, back(g * y1), 0))


def _scan(kind):
    def f(x, axis=None, dtype=None):
        x = as_variable(x)
        ax = None if axis is None else _one_axis(axis, x.ndim)
        if ax is None and x.ndim == 1:
            ax = 0  # the flattened tensor is the tensor itself
        dtype = _dtype_name(dtype)
        if dtype is not None and dtype == _cum_dtype(kind, x.dtype, None):
            dtype = None
        return CumOp(kind, ax, dtype)(x)

    f.__name__ = f"cum{kind}"
    f.__doc__ = (f"numpy.cum{kind} along `axis` (None: over the flattened tensor, a 1-d "
                 "result); `dtype` as numpy's.")
    return f


cumsum, cumprod = _scan("sum"), _scan("prod")

__all__ = ["Reduce", "ArgReduce", "LogSumExp", "CumOp", "sum", "prod", "max", "min", "all",
           "any", "amax", "amin", "mean", "var", "std", "argmax", "argmin", "logsumexp",
           "cumsum", "cumprod", "normalize_axis"]
