"""Shape Ops: reading a shape, and reshaping, transposing, broadcasting, joining and splitting
tensors, with numpy's semantics (repeating is in `basic`).

Shapes are int64 vectors; `x.shape[i]` is an int64 scalar.  Static sizes (from the type) are
used where known, so `x.shape[0]` of an `fmatrix` of static shape (600, 784) is a constant, and
every Op here infers its output's static shape as precisely as the inputs allow: a `reshape(x,
(x.shape[0], -1))` of a (?, 3, 4) tensor is known to be (?, 12).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, Constant, Variable, as_variable
from ..trace.types import TensorType
from . import elemwise as E
from . import reduce as R
from .base import Op


def _int64(v) -> Variable:
    return as_variable(np.int64(v))


def _const_int(v):
    """The value of an integer scalar known while tracing, else None."""
    if isinstance(v, Constant) and v.ndim == 0:
        return int(v.data)
    return None


def _fmt_shape(s):
    return "(" + ", ".join("?" if d is None else str(d) for d in s) + ("," if len(s) == 1 else "") + ")"


def _int_scalars(op, dims):
    """`dims` as integer scalar Variables, or a TypeError naming `op`."""
    dims = [as_variable(d) for d in dims]
    for d in dims:
        if d.ndim != 0 or d.dtype[0] not in "iu":
            raise TypeError(f"{op}: shape entries must be integer scalars, got {d.type.short()}")
    return dims


# ---------------------------------------------------------------------------------------------
# reading shapes
# ---------------------------------------------------------------------------------------------

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
        return [(_int64(node.inputs[0].ndim),)]


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
        return _int64(s)
    return ShapeI(i)(x)


def shape_tuple(shp) -> tuple:
    """A shape given as ints, scalars or a symbolic vector, as a tuple of int64 scalars."""
    from .subtensor import getitem

    if isinstance(shp, Variable) and shp.ndim == 1:
        n = shp.type.shape[0]
        if n is None:
            raise ShapeError("a shape vector must have a static length")
        if shp.dtype[0] not in "iu":
            raise ShapeError(f"a shape vector must hold integers, got {shp.type.short()}")
        if isinstance(shp, Constant):
            return tuple(_int64(s) for s in shp.data)
        if shp.owner is not None and isinstance(shp.owner.op, Shape):
            return tuple(shape_i(shp.owner.inputs[0], i) for i in range(n))
        return tuple(_as_int64(getitem(shp, i)) for i in range(n))
    if isinstance(shp, (int, np.integer, Variable)):
        shp = (shp,)
    out = []
    for s in shp:
        v = as_variable(np.int64(s) if isinstance(s, (int, np.integer)) else s)
        if v.ndim != 0 or v.dtype[0] not in "iu":
            raise ShapeError(f"shape entries must be integer scalars, got {v.type.short()}")
        out.append(_as_int64(v))
    return tuple(out)


def _as_int64(v):
    return E.cast(v, "int64")


def prod_dims(dims) -> Variable:
    """The product of int64 scalars as one, with the constant ones folded (1 for none)."""
    const, syms = 1, []
    for d in dims:
        c = _const_int(d)
        if c is None:
            syms.append(d)
        else:
            const *= c
    if const == 0 or not syms:
        return _int64(const)
    out = syms[0]
    for s in syms[1:]:
        out = E.mul(out, s)
    return out if const == 1 else E.mul(out, _int64(const))


def _factors(v):
    """An int64 scalar as (constant factor, [(id(x), i) for each unknown dim x.shape[i]]) when
    it is a product of constants and dims (as `flatten` and `x.shape[0] * 3` build), else None.
    Cancelling the dims of two such products decides sizes that no static shape holds."""
    c = _const_int(v)
    if c is not None:
        return c, []
    node = v.owner
    if node is None:
        return None
    if isinstance(node.op, ShapeI):
        x, i = node.inputs[0], node.op.i
        s = x.type.shape[i]
        return (s, []) if s is not None else (1, [(id(x), i)])
    if isinstance(node.op, E.Elemwise) and node.op.scalar_op.name == "mul":
        a, b = _factors(node.inputs[0]), _factors(node.inputs[1])
        if a is None or b is None:
            return None
        return a[0] * b[0], a[1] + b[1]
    return None


def _static_value(v):
    f = _factors(v)
    return f[0] if f is not None and not f[1] else None


def broadcast_shape_of(input_shapes, inputs):
    """Symbolic broadcast shape of elementwise inputs, choosing per dim the input whose size
    decides it (a static size other than 1 if any; else, at run time, the first size that is
    not 1, which is also right when one of them is 0)."""
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
            out.append(_int64(1))
        else:
            r = cands[0]
            for c in cands[1:]:
                r = E.where(E.eq(r, 1), c, r)
            out.append(r)
    return tuple(out)


def static_or(out, shp):
    """The inferred shape `shp` of variable `out`, with each dim its static shape knows as a
    constant (an Apply stands for its first output)."""
    if isinstance(out, Apply):
        out = out.outputs[0]
    return tuple(d if s is None else _int64(s) for s, d in zip(out.type.shape, shp))


# ---------------------------------------------------------------------------------------------
# broadcasting
# ---------------------------------------------------------------------------------------------

class SumToShape(Op):
    """Sum `g` down to `shape` by the reverse of numpy broadcasting: the gradient of an
    implicit broadcast whose size-1 dims are only known when the function runs.  The result is
    `g` itself when nothing needs summing."""

    view_map = {0: [0]}

    def make_node(self, g, shp):
        g, shp = as_variable(g), as_variable(shp)
        if shp.ndim != 1 or shp.type.shape[0] is None or shp.dtype[0] not in "iu":
            raise ShapeError("SumToShape needs an integer shape vector of static length")
        n = shp.type.shape[0]
        if n > g.ndim:
            raise ShapeError(f"cannot sum a {g.ndim}-d tensor to {n} dims")
        if isinstance(shp, Constant):
            target = tuple(int(s) for s in shp.data)
        elif shp.owner is not None and isinstance(shp.owner.op, Shape):
            target = shp.owner.inputs[0].type.shape
        else:
            target = (None,) * n
        out_shape = []
        for a, t in zip(g.type.shape[g.ndim - n:], target):
            if a is not None and t is not None and t not in (1, a):
                raise ShapeError(f"cannot sum a tensor of shape {_fmt_shape(g.type.shape)} to "
                                 f"shape {_fmt_shape(target)}")
            out_shape.append(t if t is not None else (1 if a == 1 else None))
        return Apply(self, [g, shp], [TensorType(g.dtype, out_shape).make_variable()])

    def perform(self, node, inputs):
        g, shp = inputs
        if g.shape == tuple(shp.tolist()):
            return (g,)  # nothing to sum (the common case, taken first)
        lead = g.ndim - len(shp)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(shp) if s == 1 and g.shape[lead + i] != 1)
        r = g.sum(axis=axes, keepdims=True, dtype=g.dtype) if axes else g
        if lead:
            r = r.reshape(r.shape[lead:])
        if r.shape != tuple(shp):
            raise ValueError(f"cannot sum shape {g.shape} to {tuple(shp)}")
        return (r,)

    def L_op(self, inputs, outputs, output_grads):
        g, _ = inputs
        gz = output_grads[0]
        return [None if gz is None else broadcast_to(gz, shape(g)), None]

    def infer_shape(self, node, input_shapes):
        return [static_or(node, shape_tuple(node.inputs[1]))]


def broadcast_node(op, x, dims):
    """The Apply of an Op that broadcasts `x` to the integer scalars `dims` (BroadcastTo,
    Alloc): checks what the static shapes already decide, and knows every size the dims or
    `x` fix (a dim of `x` of static size > 1 fixes the output's)."""
    x = as_variable(x)
    dims = _int_scalars(op, dims)
    if len(dims) < x.ndim:
        raise ShapeError(f"{op}: cannot broadcast a {x.ndim}-d tensor to {len(dims)} dims")
    xs = (None,) * (len(dims) - x.ndim) + x.type.shape
    static = [_static_value(d) for d in dims]
    for k, (a, b) in enumerate(zip(xs, static)):
        if b is not None and b < 0:
            raise ShapeError(f"{op}: negative dimensions are not allowed, got {b}")
        if a is not None and b is not None and a not in (1, b):
            raise ShapeError(f"{op}: cannot broadcast shape {_fmt_shape(x.type.shape)} to "
                             f"{_fmt_shape(static)}")
        if b is None and a not in (None, 1):
            static[k] = a
    return Apply(op, [x, *dims], [TensorType(x.dtype, static).make_variable()])


class BroadcastTo(Op):
    """numpy.broadcast_to (a read-only view; copied where the output must be written)."""

    view_map = {0: [0]}

    def make_node(self, x, *dims):
        return broadcast_node(self, x, dims)

    def perform(self, node, inputs):
        x, *dims = inputs
        return (np.broadcast_to(x, tuple(int(d) for d in dims)),)

    def L_op(self, inputs, outputs, output_grads):
        x, gz = inputs[0], output_grads[0]
        g = None if gz is None else E.sum_to(gz, x)
        return [g] + [None] * (len(inputs) - 1)

    def infer_shape(self, node, input_shapes):
        return [static_or(node, node.inputs[1:])]


def broadcast_to(x, shp):
    """`numpy.broadcast_to(x, shape)`; `shape` may mix ints and symbolic scalars."""
    return BroadcastTo()(x, *shape_tuple(shp))


# ---------------------------------------------------------------------------------------------
# permuting dims
# ---------------------------------------------------------------------------------------------

class DimShuffle(Op):
    """Theano's dimshuffle: permute dims and insert broadcastable ones.  `new_order` lists
    input dims and 'x' for a new size-1 dim; input dims left out must have size 1.  The result
    is a view of the input."""

    __props__ = ("new_order",)
    view_map = {0: [0]}

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
        if "x" not in self.new_order and len(self.new_order) == x.ndim:
            return (x.transpose(self.new_order),)  # a permutation (a transpose): per call
        used = [d for d in self.new_order if d != "x"]
        dropped = [d for d in range(x.ndim) if d not in used]
        if any(x.shape[d] != 1 for d in dropped):
            raise ValueError(f"cannot drop (squeeze) dims {dropped} of shape {x.shape}: their "
                             "size is not 1")
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
        one = _int64(1)
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
    axes = R.normalize_axis(axes, x.ndim + len(axes))
    order, it = [], iter(range(x.ndim))
    for d in range(x.ndim + len(axes)):
        order.append("x" if d in axes else next(it))
    return dimshuffle(x, *order)


def transpose(x, axes=None):
    """numpy.transpose: reverse the dims, or permute them by `axes`."""
    x = as_variable(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    if len(axes) != x.ndim:
        raise ShapeError(f"axes {tuple(axes)} don't match a {x.ndim}-d tensor")
    axes = tuple(R.normalize_axis(a, x.ndim)[0] for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"axes {axes} are not a permutation of the {x.ndim} dims")
    return dimshuffle(x, *axes)


def swapaxes(x, axis1, axis2):
    """numpy.swapaxes: exchange two dims."""
    x = as_variable(x)
    a, b = (R.normalize_axis(v, x.ndim)[0] for v in (axis1, axis2))
    order = list(range(x.ndim))
    order[a], order[b] = b, a
    return dimshuffle(x, *order)


def moveaxis(x, source, destination):
    """numpy.moveaxis: move dims `source` to positions `destination` (ints or sequences),
    keeping the others in order."""
    x = as_variable(x)
    src = (source,) if isinstance(source, (int, np.integer)) else tuple(source)
    dst = (destination,) if isinstance(destination, (int, np.integer)) else tuple(destination)
    if len(src) != len(dst):
        raise ShapeError("moveaxis: source and destination must have the same number of elements")
    src = [R.normalize_axis(a, x.ndim)[0] for a in src]
    dst = [R.normalize_axis(a, x.ndim)[0] for a in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError("moveaxis: repeated axis")
    order = [d for d in range(x.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return dimshuffle(x, *order)


def squeeze(x, axis=None):
    """numpy.squeeze.  With `axis=None` every dim whose *static* size is 1 goes; a dim whose
    size is only known when the function runs must be named in `axis`, and is checked then."""
    x = as_variable(x)
    if axis is None:
        drop = [d for d, s in enumerate(x.type.shape) if s == 1]
    else:
        drop = R.normalize_axis(axis, x.ndim)
        for d in drop:
            if x.type.shape[d] not in (1, None):
                raise ShapeError(f"cannot select an axis to squeeze out which has size not equal "
                                 f"to one: axis {d} of {x.type.short()}")
    if not drop:
        return x
    return DimShuffle(tuple(d for d in range(x.ndim) if d not in drop))(x)


# ---------------------------------------------------------------------------------------------
# reshape
# ---------------------------------------------------------------------------------------------

class Reshape(Op):
    """numpy.reshape of `x` to the int64 scalar inputs after it; one of them may be -1 (the
    size that makes the element count match).  The result is a view where numpy gives one."""

    view_map = {0: [0]}

    def make_node(self, x, *dims):
        x = as_variable(x)
        dims = _int_scalars(self, dims)
        static = _reshape_static(x, dims)
        return Apply(self, [x, *dims], [TensorType(x.dtype, static).make_variable()])

    def perform(self, node, inputs):
        x, *dims = inputs
        return (np.reshape(x, tuple(int(d) for d in dims)),)

    def L_op(self, inputs, outputs, output_grads):
        x, gz = inputs[0], output_grads[0]
        g = None if gz is None else reshape(gz, shape(x))
        return [g] + [None] * (len(inputs) - 1)

    def infer_shape(self, node, input_shapes):
        dims = node.inputs[1:]
        total = prod_dims(input_shapes[0])
        minus1 = [_const_int(d) == -1 for d in dims]
        sure = [f is not None and f[0] >= 0 for f in map(_factors, dims)]  # known >= 0
        if all(m or s for m, s in zip(minus1, sure)):
            missing = E.floor_divide(total, prod_dims([d for d, m in zip(dims, minus1) if not m]))
        else:  # one entry may be -1 at run time: then -prod(entries) is the others' product
            missing = E.floor_divide(total, E.neg(prod_dims(dims)))
        out = [missing if m else d if s else E.where(E.eq(d, -1), missing, d)
               for d, m, s in zip(dims, minus1, sure)]
        return [static_or(node, out)]


def _reshape_static(x, dims):
    """The static shape of `reshape(x, dims)`, raising ShapeError for a reshape that cannot
    work.  Unknown sizes cancel when both sides hold them (`(x.shape[0], -1)`)."""
    static = [_static_value(d) for d in dims]
    neg = [k for k, v in enumerate(static) if v is not None and v < 0]
    shown = _fmt_shape(tuple(static))
    if any(static[k] != -1 for k in neg):
        raise ShapeError(f"reshape: negative dimensions other than -1 are not allowed: {shown}")
    if len(neg) > 1:
        raise ShapeError(f"reshape: can only specify one unknown dimension (-1): {shown}")
    num_c, num_syms = 1, []
    for i, s in enumerate(x.type.shape):
        if s is None:
            num_syms.append((id(x), i))
        else:
            num_c *= s
    den_c, den_syms = 1, []
    for k, d in enumerate(dims):
        if k in neg:
            continue
        f = _factors(d)
        if f is None:
            return _unknown_minus1(static, neg)
        den_c *= f[0]
        den_syms += f[1]
    for s in list(den_syms):
        if s in num_syms:
            num_syms.remove(s)
            den_syms.remove(s)
    if neg and den_c == 0:
        raise ShapeError(f"reshape: cannot infer the -1 of shape {shown} when another entry is 0")
    if num_syms or den_syms:
        return _unknown_minus1(static, neg)
    what = f"cannot reshape {x.type.short()} (size {num_c}) into shape {shown}"
    if neg:
        if num_c % den_c:
            raise ShapeError(f"reshape: {what}")
        static[neg[0]] = num_c // den_c
    elif num_c != den_c:
        raise ShapeError(f"reshape: {what}")
    return static


def _unknown_minus1(static, neg):
    return [None if k in neg else s for k, s in enumerate(static)]


def reshape(x, shape):
    """numpy.reshape: `shape` is an int, a tuple mixing ints and symbolic int scalars (at most
    one -1), or a symbolic int vector of static length.  Reshaping to `x`'s own shape is `x`."""
    x = as_variable(x)
    dims = shape_tuple(shape)
    if len(dims) == x.ndim and all(_same_dim(x, i, d) for i, d in enumerate(dims)):
        return x
    return Reshape()(x, *dims)


def _same_dim(x, i, d):
    s = x.type.shape[i]
    if s is not None:
        return _const_int(d) == s
    return d.owner is not None and d.owner.op == ShapeI(i) and d.owner.inputs[0] is x


def flatten(x, ndim=1):
    """Theano's flatten: keep the first `ndim - 1` dims and join the rest into one (`ndim=1`
    gives a 1-d tensor).  Sizes are multiplied out rather than left as -1, so zero-size
    tensors flatten too."""
    x = as_variable(x)
    ndim = int(ndim)
    if ndim < 1 or (ndim > 1 and ndim > x.ndim):
        raise ShapeError(f"flatten: ndim must be in [1, {max(x.ndim, 1)}] for a {x.ndim}-d tensor, "
                         f"got {ndim}")
    dims = [shape_i(x, d) for d in range(x.ndim)]
    return reshape(x, tuple(dims[:ndim - 1]) + (prod_dims(dims[ndim - 1:]),))


def ravel(x):
    """numpy.ravel: the tensor as 1-d, in C order."""
    return flatten(x, 1)


# ---------------------------------------------------------------------------------------------
# joining and splitting
# ---------------------------------------------------------------------------------------------

class Concatenate(Op):
    """numpy.concatenate along `axis` (non-negative); the dtype is numpy's result type of the
    inputs, and every other dim must agree."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = int(axis)

    def make_node(self, *tensors):
        if not tensors:
            raise ValueError("need at least one array to concatenate")
        xs = [as_variable(t) for t in tensors]
        nd = xs[0].ndim
        shapes = " ".join(t.type.short() for t in xs)
        if nd == 0:
            raise ShapeError("zero-dimensional arrays cannot be concatenated")
        if any(t.ndim != nd for t in xs):
            raise ShapeError(f"concatenate: all the inputs must have the same number of "
                             f"dimensions, got {shapes}")
        if not 0 <= self.axis < nd:
            raise ShapeError(f"concatenate: axis {self.axis} is out of bounds for {nd}-d inputs")
        static = []
        for d in range(nd):
            sizes = [t.type.shape[d] for t in xs]
            if d == self.axis:
                static.append(None if None in sizes else sum(sizes))
                continue
            known = {s for s in sizes if s is not None}
            if len(known) > 1:
                raise ShapeError(f"concatenate along axis {self.axis}: dimension {d} differs "
                                 f"between the inputs {shapes}")
            static.append(known.pop() if known else None)
        dtype = np.result_type(*[t.dtype for t in xs]).name
        return Apply(self, xs, [TensorType(dtype, static).make_variable()])

    def perform(self, node, inputs):
        return (np.concatenate(inputs, axis=self.axis),)

    def L_op(self, inputs, outputs, output_grads):
        gz = output_grads[0]
        if gz is None:
            return [None] * len(inputs)
        if len(inputs) == 1:
            return [E.cast(gz, inputs[0].dtype) if inputs[0].dtype[0] in "fc" else None]
        ends, total = [], None
        for t in inputs[:-1]:
            n = shape_i(t, self.axis)
            total = n if total is None else E.add(total, n)
            ends.append(total)
        pieces = _as_list(Split(self.axis, partition=True)(gz, *ends))
        return [E.cast(p, t.dtype) if t.dtype[0] in "fc" else None for p, t in zip(pieces, inputs)]

    def infer_shape(self, node, input_shapes):
        out = []
        for d in range(node.outputs[0].ndim):
            if d == self.axis:
                total = input_shapes[0][d]
                for s in input_shapes[1:]:
                    total = E.add(total, s[d])
                out.append(total)
            else:
                known = [s[d] for s, t in zip(input_shapes, node.inputs) if t.type.shape[d] is not None]
                out.append(known[0] if known else input_shapes[0][d])
        return [static_or(node, out)]


def _as_list(outs):
    return outs if isinstance(outs, list) else [outs]


def concatenate(tensors, axis=0):
    """numpy.concatenate; `axis=None` joins the flattened tensors."""
    xs = [as_variable(t) for t in tensors]
    if axis is None:
        xs, axis = [ravel(t) for t in xs], 0
    if not xs:
        raise ValueError("need at least one array to concatenate")
    if xs[0].ndim == 0:
        raise ShapeError("zero-dimensional arrays cannot be concatenated")
    return Concatenate(R.normalize_axis(axis, xs[0].ndim)[0])(*xs)


def stack(tensors, axis=0):
    """numpy.stack: join same-shaped tensors along a new `axis`."""
    xs = [as_variable(t) for t in tensors]
    if not xs:
        raise ValueError("need at least one array to stack")
    if any(t.ndim != xs[0].ndim for t in xs):
        raise ShapeError(f"all input arrays must have the same shape, got "
                         f"{' '.join(t.type.short() for t in xs)}")
    axis = R.normalize_axis(axis, xs[0].ndim + 1)[0]
    return Concatenate(axis)(*[expand_dims(t, axis) for t in xs])


class Split(Op):
    """numpy.split along `axis` into `sections` equal parts, or at the int64 scalar inputs
    after `x` (`x[:p0], x[p0:p1], ..., x[pk:]`, numpy's slicing semantics).  `partition` says
    the points are known to be non-decreasing after clipping, so the parts tile `x` and the
    gradient is one concatenation; otherwise each part's gradient is added in place.  Each part
    is a view of `x` (`view_map` grows with the number of parts `make_node` produces)."""

    __props__ = ("axis", "sections", "partition")
    view_map = {0: [0]}

    def __init__(self, axis, sections=None, partition=False):
        self.axis = int(axis)
        self.sections = None if sections is None else int(sections)
        self.partition = bool(partition) or self.sections is not None

    def make_node(self, x, *points):
        x = as_variable(x)
        points = _int_scalars(self, points)
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"split: axis {self.axis} is out of bounds for a {x.ndim}-d tensor")
        if (self.sections is None) == (not points):
            raise TypeError("split: give either sections or split points")
        n = x.type.shape[self.axis]
        if self.sections is not None:
            if self.sections <= 0:
                raise ValueError("split: the number of sections must be larger than 0")
            if n is not None and n % self.sections:
                raise ShapeError(f"array split does not result in an equal division: axis "
                                 f"{self.axis} of {x.type.short()} into {self.sections}")
            sizes = [None if n is None else n // self.sections] * self.sections
        else:
            cs = [_const_int(p) for p in points]
            if n is None or None in cs:
                sizes = [None] * (len(points) + 1)
            else:
                bounds = [0] + cs + [n]
                sizes = [len(range(n)[a:b]) for a, b in zip(bounds, bounds[1:])]
        outs = [TensorType(x.dtype, x.type.shape[:self.axis] + (s,) + x.type.shape[self.axis + 1:])
                .make_variable() for s in sizes]
        if len(outs) > len(self.view_map):  # every part is a view of x, however many there are
            self.view_map = {k: [0] for k in range(len(outs))}
        return Apply(self, [x, *points], outs)

    def perform(self, node, inputs):
        x, *points = inputs
        where = self.sections if self.sections is not None else [int(p) for p in points]
        return tuple(np.split(x, where, axis=self.axis))

    def L_op(self, inputs, outputs, output_grads):
        x, *points = inputs
        gs = [E.zeros_like(o) if g is None else g for g, o in zip(output_grads, outputs)]
        if self.partition:
            g = concatenate(gs, axis=self.axis)
        else:
            from .subtensor import inc_subtensor

            g = E.zeros_like(x)
            bounds = [None] + points + [None]
            for gk, a, b in zip(gs, bounds, bounds[1:]):
                key = (slice(None),) * self.axis + (slice(a, b),)
                g = inc_subtensor(g[key], gk)
        return [g] + [None] * len(points)

    def infer_shape(self, node, input_shapes):
        shp = input_shapes[0]
        n = shp[self.axis]
        if self.sections is not None:
            sizes = [E.floor_divide(n, self.sections)] * self.sections
        else:
            bounds = [_int64(0)] + [_slice_bound(p, n) for p in node.inputs[1:]] + [n]
            sizes = [_nonneg_diff(b, a) for a, b in zip(bounds, bounds[1:])]
        return [static_or(o, shp[:self.axis] + (s,) + shp[self.axis + 1:])
                for o, s in zip(node.outputs, sizes)]


def _slice_bound(p, n):
    """A slice bound `p` of an axis of size `n` as Python resolves it (negative counts from
    the end, then clipped to [0, n])."""
    pc, nc = _const_int(p), _const_int(n)
    if pc is not None and nc is not None:
        return _int64(len(range(nc)[:pc]))
    if pc is not None and pc >= 0:
        return E.minimum(p, n)
    return E.minimum(E.maximum(E.where(E.lt(p, 0), E.add(p, n), p), 0), n)


def _nonneg_diff(b, a):
    bc, ac = _const_int(b), _const_int(a)
    if bc is not None and ac is not None:
        return _int64(max(bc - ac, 0))
    return E.maximum(E.sub(b, a), 0)


def split(x, indices_or_sections, axis=0):
    """numpy.split: a list of parts of `x` along `axis`.  An int splits into that many equal
    parts (an error when the size does not divide); a sequence of ints or symbolic int scalars
    (or a symbolic int vector of static length) gives the split points."""
    x = as_variable(x)
    axis = R.normalize_axis(axis, x.ndim)[0] if x.ndim else _no_axis(axis)
    ios = indices_or_sections
    if isinstance(ios, Variable) and ios.ndim == 0:
        if _const_int(ios) is None:
            raise TypeError("split: a number of sections must be known while tracing (a Python int); "
                            "pass a list of split points for symbolic positions")
        ios = _const_int(ios)
    if isinstance(ios, (int, np.integer)):
        return _as_list(Split(axis, sections=int(ios))(x))
    points = shape_tuple(ios) if isinstance(ios, Variable) else shape_tuple(tuple(ios))
    return _as_list(Split(axis, partition=_is_partition(points, x.type.shape[axis]))(x, *points))


def _no_axis(axis):
    raise ShapeError(f"split: axis {axis} is out of bounds for a 0-d tensor")


def _is_partition(points, n):
    """True when the split points are known to be non-decreasing once resolved."""
    if len(points) <= 1:
        return True
    cs = [_const_int(p) for p in points]
    if None in cs:
        return False
    if n is not None:
        cs = [len(range(n)[:c]) for c in cs]
    elif not (all(c >= 0 for c in cs) or all(c < 0 for c in cs)):
        return False
    return all(a <= b for a, b in zip(cs, cs[1:]))


__all__ = ["Shape", "ShapeI", "SumToShape", "BroadcastTo", "DimShuffle", "Reshape", "Concatenate",
           "Split", "shape", "shape_i", "shape_tuple", "broadcast_to", "dimshuffle",
           "expand_dims", "transpose", "swapaxes", "moveaxis", "squeeze", "reshape", "flatten",
           "ravel", "concatenate", "stack", "split"]
