"""Tensor constructors (`full zeros ones full_like arange eye identity`) and repetition
(`repeat`, `tile`).

Constructors materialise their result (`Alloc`), unlike `broadcast_to`'s read-only view, so a
later in-place Op may write into it.  Shapes are ints, symbolic integer scalars, tuples mixing
both, or a symbolic integer vector of static length; the default float dtype is
`config.floatX`.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import config
from ..errors import ShapeError
from ..trace.graph import Apply, Constant, Variable, as_variable
from ..trace.types import TensorType
from . import elemwise as E
from . import reduce as R
from .base import Op
from .shape import (_const_int, _int64, _int_scalars, broadcast_node, broadcast_to, dimshuffle,
                    expand_dims, prod_dims, ravel, reshape, shape, shape_i, shape_tuple, static_or)


# ---------------------------------------------------------------------------------------------
# filled tensors
# ---------------------------------------------------------------------------------------------

class Alloc(Op):
    """A new writeable tensor of the shape given by the integer scalar inputs after `value`,
    holding `value` broadcast into it (numpy.full with an array fill value)."""

    def make_node(self, value, *dims):
        return broadcast_node(self, value, dims)

    def perform(self, node, inputs):
        value, *dims = inputs
        out = np.empty(tuple(int(d) for d in dims), dtype=node.outputs[0].dtype)
        out[...] = value
        return (out,)

    def L_op(self, inputs, outputs, output_grads):
        value, gz = inputs[0], output_grads[0]
        g = None if gz is None else E.sum_to(gz, value)
        return [g] + [None] * (len(inputs) - 1)

    def infer_shape(self, node, input_shapes):
        return [static_or(node, node.inputs[1:])]


def full(shape, fill_value, dtype=None):
    """numpy.full: a tensor of `shape` filled with `fill_value` (a number, an array or a
    symbolic tensor, broadcast); its dtype is `dtype`, else the fill value's (a Python float
    gives `config.floatX`)."""
    dims = shape_tuple(shape)
    if isinstance(fill_value, Variable):
        value = fill_value if dtype is None else E.cast(fill_value, dtype)
    else:
        value = as_variable(fill_value if dtype is None else np.asarray(fill_value, dtype=dtype))
    return Alloc()(value, *dims)


def zeros(shape, dtype=None):
    """numpy.zeros; the dtype defaults to `config.floatX`."""
    return full(shape, 0, config.floatX if dtype is None else dtype)


def ones(shape, dtype=None):
    """numpy.ones; the dtype defaults to `config.floatX`."""
    return full(shape, 1, config.floatX if dtype is None else dtype)


def full_like(x, fill_value, dtype=None):
    """A tensor of `x`'s shape filled with `fill_value` (dtype: `dtype`, else `x`'s)."""
    x = as_variable(x)
    return full(shape(x), fill_value, np.dtype(x.dtype if dtype is None else dtype).name)


# ---------------------------------------------------------------------------------------------
# arange, eye
# ---------------------------------------------------------------------------------------------

class ARange(Op):
    """numpy.arange(start, stop, step, dtype) of three real scalars.  Its gradient treats the
    length as fixed: d/d start is the sum of the output gradient, d/d step its dot with
    0, 1, 2, ...; stop only moves the length, which has no derivative."""

    __props__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype).name

    def make_node(self, start, stop, step):
        ins = [as_variable(v) for v in (start, stop, step)]
        for v in ins:
            if v.ndim != 0 or v.dtype[0] not in "iuf":
                raise TypeError(f"arange: start, stop and step must be real scalars, got {v.type.short()}")
        vals = [v.data[()] if isinstance(v, Constant) else None for v in ins]
        if vals[2] is not None and vals[2] == 0:
            raise ValueError("arange: step must not be zero")
        length = None
        if None not in vals:
            a, b, s = (x.item() for x in vals)
            if all(isinstance(x, int) for x in (a, b, s)):
                length = max(0, -((a - b) // s))
            else:
                length = max(0, math.ceil((b - a) / s))
        return Apply(self, ins, [TensorType(self.dtype, (length,)).make_variable()])

    def perform(self, node, inputs):
        start, stop, step = (v[()] for v in inputs)
        if step == 0:
            raise ValueError("arange: step must not be zero")
        return (np.arange(start, stop, step, dtype=self.dtype),)

    def L_op(self, inputs, outputs, output_grads):
        (start, _, step), gz = inputs, output_grads[0]
        if gz is None or self.dtype[0] != "f":
            return [None] * 3
        gstart = E.cast(R.sum(gz), start.dtype) if start.dtype[0] == "f" else None
        gstep = None
        if step.dtype[0] == "f":
            ramp = ARange(gz.dtype)(_int64(0), shape_i(outputs[0], 0), _int64(1))
            gstep = E.cast(R.sum(gz * ramp), step.dtype)
        return [gstart, None, gstep]

    def infer_shape(self, node, input_shapes):
        start, stop, step = node.inputs
        if all(v.dtype[0] in "iu" for v in node.inputs):
            n = E.neg(E.floor_divide(E.sub(start, stop), step))
        else:
            n = E.cast(E.ceil(E.true_divide(E.sub(stop, start), step)), "int64")
        return [static_or(node, (E.maximum(E.cast(n, "int64"), 0),))]


def _arange_input(v):
    """A bound as a Variable: Python floats stay float64 (numpy's precision for the length and
    values), booleans count as int64."""
    if not isinstance(v, Variable):
        v = np.asarray(v)
        if v.dtype.kind == "c":
            raise TypeError("arange: complex bounds are not supported")
        v = v.astype("int64") if v.dtype == bool else v
    v = as_variable(v)
    return E.cast(v, "int64") if v.dtype == "bool" else v


def _arange_dtype(vals):
    """numpy's result dtype for constant bounds; for symbolic ones int64 when every bound is an
    integer, else the promoted float type of the bounds (Python numbers weak), so float32
    graphs stay float32."""
    if not any(isinstance(v, Variable) for v in vals):
        samples = [np.asarray(v).dtype.type(k) if isinstance(v, (np.ndarray, np.generic)) else type(v)(k)
                   for v, k in zip(vals, (0, 1, 1))]
        return np.arange(*samples).dtype.name
    parts = [np.dtype(v.dtype) if isinstance(v, Variable) else
             (np.asarray(v).dtype if isinstance(v, (np.ndarray, np.generic)) else v) for v in vals]
    dt = np.result_type(*parts)
    return "int64" if dt.kind in "biu" else dt.name


def arange(start, stop=None, step=1, dtype=None):
    """numpy.arange with constant or symbolic scalar bounds: `ts.arange(y.shape[0])`."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = _arange_dtype((start, stop, step))
    return ARange(dtype)(*[_arange_input(v) for v in (start, stop, step)])


class Eye(Op):
    """numpy.eye(n, m, k) from three integer scalars: ones on the k-th diagonal."""

    __props__ = ("dtype",)
    differentiable = False

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype).name

    def make_node(self, n, m, k):
        n, m, k = _int_scalars(self, (n, m, k))
        static = [_const_int(n), _const_int(m)]
        if any(s is not None and s < 0 for s in static):
            raise ShapeError(f"eye: negative dimensions are not allowed, got {static}")
        return Apply(self, [n, m, k], [TensorType(self.dtype, static).make_variable()])

    def perform(self, node, inputs):
        n, m, k = (int(v) for v in inputs)
        return (np.eye(n, m, k, dtype=self.dtype),)

    def L_op(self, inputs, outputs, output_grads):
        return [None] * 3

    def infer_shape(self, node, input_shapes):
        return [static_or(node, node.inputs[:2])]


def eye(N, M=None, k=0, dtype=None):
    """numpy.eye: an N x M tensor (M defaults to N) with ones on diagonal `k`; N, M and k may
    be symbolic integer scalars.  The dtype defaults to `config.floatX`."""
    n, m, kk = (shape_tuple(v)[0] for v in (N, N if M is None else M, k))
    return Eye(config.floatX if dtype is None else dtype)(n, m, kk)


def identity(n, dtype=None):
    """numpy.identity: the n x n identity (dtype defaults to `config.floatX`)."""
    return eye(n, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# repetition
# ---------------------------------------------------------------------------------------------

class Repeat(Op):
    """numpy.repeat along `axis`: each element repeated by an int64 scalar count, or by a
    vector with one count per element (or a single count)."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = int(axis)

    def make_node(self, x, repeats):
        x, r = as_variable(x), as_variable(repeats)
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"repeat: axis {self.axis} is out of bounds for a {x.ndim}-d tensor")
        if r.ndim > 1 or r.dtype[0] not in "iu":
            raise TypeError(f"repeat: repeats must be an integer scalar or vector, got {r.type.short()}")
        n = x.type.shape[self.axis]
        k = r.type.shape[0] if r.ndim else None
        if k is not None and n is not None and k not in (1, n):
            raise ShapeError(f"repeat: {k} repeat counts for an axis of size {n} ({x.type.short()})")
        size = None
        if isinstance(r, Constant):
            if (r.data < 0).any():
                raise ShapeError(f"repeat: negative repeat counts are not allowed: {r.data}")
            if r.data.size == 1:
                c = int(r.data.reshape(-1)[0])
                size = 0 if c == 0 else (None if n is None else n * c)
            else:
                size = int(r.data.sum())
        shape = x.type.shape[:self.axis] + (size,) + x.type.shape[self.axis + 1:]
        return Apply(self, [x, r], [TensorType(x.dtype, shape).make_variable()])

    def perform(self, node, inputs):
        x, r = inputs
        return (np.repeat(x, r, axis=self.axis),)

    def L_op(self, inputs, outputs, output_grads):
        (x, r), gz = inputs, output_grads[0]
        if gz is None:
            return [None, None]
        ax = self.axis
        if r.ndim == 0:  # (.., n*r, ..) -> (.., n, r, ..), summed over the copies
            dims = [shape_i(x, d) for d in range(x.ndim)]
            g = R.sum(reshape(gz, tuple(dims[:ax + 1]) + (r,) + tuple(dims[ax + 1:])), axis=ax + 1)
        else:  # scatter-add each copy back to the element it came from
            from .subtensor import inc_subtensor

            idx = Repeat(0)(arange(shape_i(x, ax)), r)
            g = inc_subtensor(E.zeros_like(x)[(slice(None),) * ax + (idx,)], gz)
        return [g, None]

    def infer_shape(self, node, input_shapes):
        shp, (x, r) = input_shapes[0], node.inputs
        n = shp[self.axis]
        if r.ndim == 0:
            size = E.mul(n, r)
        else:
            k, s = r.type.shape[0], R.sum(r)
            if k == 1:
                size = E.mul(n, s)
            elif k is not None:
                size = s
            else:
                size = E.where(E.eq(shape_i(r, 0), 1), E.mul(n, s), s)
        return [static_or(node, shp[:self.axis] + (size,) + shp[self.axis + 1:])]


def repeat(x, repeats, axis=None):
    """numpy.repeat: `repeats` is an int, a sequence of ints, or a symbolic integer scalar or
    vector; `axis=None` repeats the elements of the flattened tensor."""
    x = as_variable(x)
    if axis is None:
        x, axis = ravel(x), 0
    elif x.ndim == 0:
        raise ShapeError(f"repeat: axis {axis} is out of bounds for a 0-d tensor")
    else:
        axis = R.normalize_axis(axis, x.ndim)[0]
    r = as_variable(repeats if isinstance(repeats, Variable) else np.asarray(repeats))
    if r.dtype[0] not in "iu":
        raise TypeError(f"repeat: repeats must be integers, got {r.type.short()}")
    r = as_variable(r.data.astype("int64")) if isinstance(r, Constant) else E.cast(r, "int64")
    return Repeat(axis)(x, r)


def tile(x, reps):
    """numpy.tile: `x` repeated `reps` times per dim (ints or symbolic int scalars); the
    shorter of `x.ndim` and `len(reps)` is padded with leading 1s.  Built from broadcast_to
    and reshape, whose gradients give tile's."""
    x = as_variable(x)
    reps = shape_tuple(reps)
    nd = max(x.ndim, len(reps))
    reps = (_int64(1),) * (nd - len(reps)) + reps
    x = expand_dims(x, tuple(range(nd - x.ndim))) if nd > x.ndim else x
    dims = [shape_i(x, d) for d in range(nd)]
    order, big, out = [], [], []
    for d, (r, n) in enumerate(zip(reps, dims)):
        if _const_int(r) != 1:
            order.append("x")
            big.append(r)
        order.append(d)
        big.append(n)
        out.append(prod_dims([r, n]))
    if len(order) == nd:
        return x
    return reshape(broadcast_to(dimshuffle(x, *order), tuple(big)), tuple(out))


__all__ = ["Alloc", "ARange", "Eye", "Repeat", "full", "zeros", "ones", "full_like", "arange",
           "eye", "identity", "repeat", "tile"]
