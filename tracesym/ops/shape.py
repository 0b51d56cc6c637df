"""Shape Ops: reading a shape, and reshaping, transposing and broadcasting tensors.

Shapes are int64 vectors; `x.shape[i]` is an int64 scalar.  Static sizes (from the type) are
used where known, so `x.shape[0]` of an `fmatrix` of static shape (600, 784) is a constant.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, Constant, Variable, as_variable
from ..trace.types import TensorType
from .base import Op


class Shape(Op):
    """The shape of a tensor as an int64 vector."""

    differentiable = False

    def make_node(self, x):
        x = as_variable(x)
        return Apply(self, [x], [TensorType("int64", (x.ndim,)).make_variable()])

    def perform(self, node, inputs):
        return (np.asarray(inputs[0].shape, dtype=np.int64),)

    def L_op(self, inputs, outputs, output_grads):
        return [None]

    def infer_shape(self, node, input_shapes):
        return [(as_variable(np.int64(node.inputs[0].ndim)),)]


class ShapeI(Op):
    """Dimension `i` of a tensor's shape, an int64 scalar."""

    __props__ = ("i",)
    differentiable = False

    def __init__(self, i):
        self.i = int(i)

    def make_node(self, x):
        x = as_variable(x)
        if not 0 <= self.i < x.ndim:
            raise ShapeError(f"dimension {self.i} out of range for a {x.ndim}-d tensor")
        return Apply(self, [x], [TensorType("int64", ()).make_variable()])

    def perform(self, node, inputs):
        return (np.asarray(inputs[0].shape[self.i], dtype=np.int64),)

    def L_op(self, inputs, outputs, output_grads):
        return [None]

    def infer_shape(self, node, input_shapes):
        return [()]


def shape(x) -> Variable:
    """`x.shape` as a symbolic int64 vector."""
    x = as_variable(x)
    return Shape()(x)


def shape_i(x, i) -> Variable:
    """`x.shape[i]`: a constant when the static shape knows it."""
    x = as_variable(x)
    i = i + x.ndim if i < 0 else i
    s = x.type.shape[i] if 0 <= i < x.ndim else None
    if s is not None:
        return as_variable(np.int64(s))
    return ShapeI(i)(x)


def broadcast_shape_of(input_shapes, inputs):
    """Symbolic broadcast shape of elementwise inputs, choosing per dim the input whose size
    decides it (a static size > 1 if any, else the largest at run time)."""
    from .elemwise import maximum

    nd = max(len(s) for s in input_shapes)
    out = []
    for d in range(nd):
        cands = []
        for shp, v in zip(input_shapes, inputs):
            k = d - (nd - len(shp))
            if k < 0:
                continue
            st = v.type.shape[k]
            if st is not None and st != 1:
                cands = [shp[k]]
                break
            if st != 1:
                cands.append(shp[k])
        if not cands:
            out.append(as_variable(np.int64(1)))
        else:
            r = cands[0]
            for c in cands[1:]:
                r = maximum(r, c)
            out.append(r)
    return tuple(out)


class SumToShape(Op):
    """Sum `g` down to `shape` by the reverse of numpy broadcasting: the gradient of an
    implicit broadcast whose size-1 dims are only known when the function runs."""

    def make_node(self, g, shp):
        g, shp = as_variable(g), as_variable(shp)
        if shp.ndim != 1 or shp.type.shape[0] is None:
            raise ShapeError("SumToShape needs a shape vector of static length")
        n = shp.type.shape[0]
        if n > g.ndim:
            raise ShapeError(f"cannot sum a {g.ndim}-d tensor to {n} dims")
        out_shape = g.type.shape[g.ndim - n:]
        out_shape = tuple(s if s == 1 else None for s in out_shape)
        return Apply(self, [g, shp], [TensorType(g.dtype, out_shape).make_variable()])

    def perform(self, node, inputs):
        g, shp = inputs
        lead = g.ndim - len(shp)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(shp) if s == 1 and g.shape[lead + i] != 1)
        r = g.sum(axis=axes, keepdims=True) if axes else g
        if lead:
            r = r.reshape(r.shape[lead:])
        if r.shape != tuple(shp):
            raise ValueError(f"cannot sum shape {g.shape} to {tuple(shp)}")
        return (r,)

    def L_op(self, inputs, outputs, output_grads):
        g, shp = inputs
        return [broadcast_to(output_grads[0], shape(g)), None]

    def infer_shape(self, node, input_shapes):
        shp = node.inputs[1]
        from .subtensor import getitem

        return [tuple(getitem(shp, i) for i in range(shp.type.shape[0]))]


class BroadcastTo(Op):
    """numpy.broadcast_to (a read-only view; copied where the output must be written)."""

    def make_node(self, x, *dims):
        x = as_variable(x)
        dims = [as_variable(d) for d in dims]
        if len(dims) < x.ndim:
            raise ShapeError(f"cannot broadcast a {x.ndim}-d tensor to {len(dims)} dims")
        static = []
        for k, d in enumerate(dims):
            static.append(int(d.data) if isinstance(d, Constant) else None)
        xs = (None,) * (len(dims) - x.ndim) + x.type.shape
        for a, b in zip(xs, static):
            if a is not None and b is not None and a != 1 and a != b:
                raise ShapeError(f"cannot broadcast shape {x.type.shape} to {tuple(static)}")
        return Apply(self, [x, *dims], [TensorType(x.dtype, static).make_variable()])

    def perform(self, node, inputs):
        x, *dims = inputs
        return (np.broadcast_to(x, tuple(int(d) for d in dims)),)

    def L_op(self, inputs, outputs, output_grads):
        from .elemwise import sum_to

        x = inputs[0]
        return [sum_to(output_grads[0], x)] + [None] * (len(inputs) - 1)

    def infer_shape(self, node, input_shapes):
        return [tuple(node.inputs[1:])]


def shape_tuple(shp) -> tuple:
    """A shape given as ints, scalars or a symbolic vector, as a tuple of int64 scalars."""
    from .subtensor import getitem

    if isinstance(shp, Variable) and shp.ndim == 1:
        n = shp.type.shape[0]
        if n is None:
            raise ShapeError("a shape vector must have a static length")
        if isinstance(shp, Constant):
            return tuple(as_variable(np.int64(s)) for s in shp.data)
        if shp.owner is not None and isinstance(shp.owner.op, Shape):
            return tuple(shape_i(shp.owner.inputs[0], i) for i in range(n))
        return tuple(getitem(shp, i) for i in range(n))
    if isinstance(shp, (int, np.integer, Variable)):
        shp = (shp,)
    out = []
    for s in shp:
        v = as_variable(np.int64(s) if isinstance(s, (int, np.integer)) else s)
        if v.ndim != 0 or v.dtype[0] not in "iu":
            raise ShapeError(f"shape entries must be integer scalars, got {v.type.short()}")
        out.append(v if v.dtype == "int64" else _as_int64(v))
    return tuple(out)


def _as_int64(v):
    from .elemwise import cast

    return cast(v, "int64")


def broadcast_to(x, shp):
    """`numpy.broadcast_to(x, shape)`; `shape` may mix ints and symbolic scalars."""
    return BroadcastTo()(x, *shape_tuple(shp))


class DimShuffle(Op):
    """Theano's dimshuffle: permute dims and insert broadcastable ones.  `new_order` lists
    input dims and 'x' for a new size-1 dim; input dims left out must have size 1."""

    __props__ = ("new_order",)

    def __init__(self, new_order):
        self.new_order = tuple(new_order)

    def make_node(self, x):
        x = as_variable(x)
        used = [d for d in self.new_order if d != "x"]
        if sorted(set(used)) != sorted(used) or any(not 0 <= d < x.ndim for d in used):
            raise ShapeError(f"dimshuffle{self.new_order}: invalid for a {x.ndim}-d tensor")
        for d in range(x.ndim):
            if d not in used and x.type.shape[d] not in (1, None):
                raise ShapeError(f"dimshuffle{self.new_order} drops dim {d} of size {x.type.shape[d]}; "
                                 "only size-1 dims can be dropped")
        shape = tuple(1 if d == "x" else x.type.shape[d] for d in self.new_order)
        return Apply(self, [x], [TensorType(x.dtype, shape).make_variable()])

    def perform(self, node, inputs):
        (x,) = inputs
        used = [d for d in self.new_order if d != "x"]
        dropped = [d for d in range(x.ndim) if d not in used]
        if any(x.shape[d] != 1 for d in dropped):
            raise ValueError(f"dimshuffle drops dims {dropped} of shape {x.shape}, which are not 1")
        y = x.transpose(used + dropped)
        y = y.reshape(y.shape[:len(used)])
        return (_insert_axes(y, self.new_order),)

    def L_op(self, inputs, outputs, output_grads):
        (x,), (gz,) = inputs, output_grads
        if gz is None:
            return [None]
        used = [d for d in self.new_order if d != "x"]
        # drop the inserted dims, then invert the permutation, then re-insert dropped ones
        kept = [i for i, d in enumerate(self.new_order) if d != "x"]
        g = DimShuffle(tuple(kept))(gz) if len(kept) != len(self.new_order) else gz
        inv = [used.index(d) for d in sorted(used)]
        order = []
        j = 0
        for d in range(x.ndim):
            if d in used:
                order.append(inv[j])
                j += 1
            else:
                order.append("x")
        if order != list(range(len(used))):
            g = DimShuffle(tuple(order))(g)
        return [g]

    def infer_shape(self, node, input_shapes):
        (shp,) = input_shapes
        one = as_variable(np.int64(1))
        return [tuple(one if d == "x" else shp[d] for d in self.new_order)]


def _insert_axes(y, new_order):
    shape = []
    it = iter(y.shape)
    for d in new_order:
        shape.append(1 if d == "x" else next(it))
    return y.reshape(shape)


def dimshuffle(x, *order):
    """`x.dimshuffle(1, 'x', 0)`: Theano's permute-and-broadcast."""
    if len(order) == 1 and isinstance(order[0], (list, tuple)):
        order = tuple(order[0])
    x = as_variable(x)
    if tuple(order) == tuple(range(x.ndim)):
        return x
    return DimShuffle(order)(x)


def expand_dims(x, axis):
    """numpy.expand_dims: insert size-1 dims at `axis` (an int or a tuple) of the result."""
    x = as_variable(x)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    nd = x.ndim + len(axes)
    axes = sorted(a % nd if -nd <= a < nd else _bad_axis(a, nd) for a in axes)
    order, it = [], iter(range(x.ndim))
    for d in range(nd):
        order.append("x" if d in axes else next(it))
    return dimshuffle(x, *order)


def _bad_axis(a, nd):
    raise ShapeError(f"axis {a} is out of bounds for a {nd}-d result")


def transpose(x, axes=None):
    """numpy.transpose: reverse the dims, or permute them by `axes`."""
    x = as_variable(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(a % x.ndim for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"axes {axes} are not a permutation of the {x.ndim} dims")
    return dimshuffle(x, *axes)


__all__ = ["DimShuffle", "dimshuffle", "expand_dims", "transpose", "Shape", "ShapeI", "SumToShape", "BroadcastTo", "shape", "shape_i", "broadcast_to"]
