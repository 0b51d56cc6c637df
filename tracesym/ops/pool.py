"""2-d pooling over the last two axes: `pool_2d` (Theano's) and its gradients.

Modes, as in Theano: "max"; "sum"; "average_exc_pad", the mean of the window's elements that
lie inside the image; "average_inc_pad", which also counts the zero padding (but never the
part of a window that `ignore_border=False` lets hang past the padded image).  "average" is
"average_exc_pad".  With no padding the two averages agree.

Gradients: average and sum pooling are linear, so `AvgPoolGrad` (the adjoint, spreading each
output gradient over its window) and the pooling itself are each other's gradients.  Max
pooling routes each output gradient to the window's maximum, the first one where several tie
(so the input gradient sums to the output gradient, as PyTorch's does); that routing is linear
in the gradient, and `MaxPoolGrad` and `MaxPoolGradGrad` (reading the gradient at each
window's maximum) are adjoints of each other.

The numpy implementations here are the reference; the C linker runs these Ops with the C
loops of backend/c/nnet.py.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, as_variable
from ..trace.types import TensorType
from . import elemwise as E
from .base import Op
from .conv import _here, _pair
from .scalar import float_dtype
from .shape import _int_scalars, _static_value, shape_i, static_or

MODES = ("max", "sum", "average_exc_pad", "average_inc_pad")


def _out_size(n, k, s, p, ignore_border, maximum):
    """Theano's pooled size of a dim of size n (an int or a symbolic int64 scalar)."""
    if ignore_border:
        return maximum((n + 2 * p - k) // s + 1, 0)
    if s >= k:
        return (n - 1) // s + 1
    return maximum((n - 1 - k) // s + 1, 0) + 1


class _PoolOp(Op):
    """Pooling parameters: window `ws`, `stride`, zero padding `pad` (each a pair), whether
    windows must lie inside the (padded) image (`ignore_border`), and the mode."""

    abstract = True
    __props__ = ("ws", "ignore_border", "stride", "pad", "mode")

    def __init__(self, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
        self.ws = _pair(ws, "pool_2d: ws", 1)
        self.stride = self.ws if stride is None else _pair(stride, "pool_2d: stride", 1)
        self.pad = _pair(pad, "pool_2d: pad", 0)
        self.ignore_border = bool(ignore_border)
        mode = "average_exc_pad" if mode == "average" else mode
        if mode not in MODES:
            raise ValueError(f"pool_2d: mode must be one of {', '.join(MODES)} or 'average', "
                             f"got {mode!r}")
        self.mode = mode
        if self.pad != (0, 0) and not self.ignore_border:
            raise ShapeError(f"pool_2d: pad={self.pad} needs ignore_border=True" + _here())
        if self.pad[0] >= self.ws[0] or self.pad[1] >= self.ws[1]:
            raise ShapeError(f"pool_2d: pad={self.pad} must be smaller than ws={self.ws} (a "
                             "window would hold only padding)" + _here())

    def _params(self):
        return self.ws, self.ignore_border, self.stride, self.pad, self.mode

    def out_hw(self, h, w, maximum=max):
        return tuple(_out_size(n, k, s, p, self.ignore_border, maximum)
                     for n, k, s, p in zip((h, w), self.ws, self.stride, self.pad))

    def static_out_hw(self, h, w):
        return tuple(None if n is None else self.out_hw(n, n)[i] for i, n in enumerate((h, w)))

    def sym_out_hw(self, h, w):
        return self.out_hw(h, w, E.maximum)

    # numpy helpers
    def _extent(self, h, w):
        """The padded array's size: the padded image, extended where `ignore_border=False`
        lets the last window hang past it."""
        ho, wo = self.out_hw(h, w)
        return tuple(max(n + 2 * p, (max(o, 1) - 1) * s + k) for n, o, s, k, p
                     in zip((h, w), (ho, wo), self.stride, self.ws, self.pad))

    def _padded(self, x, fill):
        (ph, pw), (h, w) = self.pad, x.shape[-2:]
        ext = self._extent(h, w)
        if ext == (h, w):
            return x
        xp = np.full(x.shape[:-2] + ext, fill, x.dtype)
        xp[..., ph:ph + h, pw:pw + w] = x
        return xp

    def _taps(self, xp, h, w):
        """(tap, view) for each position in the window, row-major: view[..., i, j] is that
        element of window (i, j).  Pooling is a few whole-array operations per tap."""
        (k0, k1), (s0, s1), (ho, wo) = self.ws, self.stride, self.out_hw(h, w)
        for a in range(k0):
            for b in range(k1):
                yield a * k1 + b, xp[..., a:a + s0 * ho:s0, b:b + s1 * wo:s1]

    def _counts(self, h, w, dtype):
        """How many elements each window averages over: (ho, wo)."""
        if self.mode in ("max", "sum"):
            return np.ones((1, 1), dtype)
        (ph, pw) = self.pad
        mask = np.zeros(self._extent(h, w), dtype)
        if self.mode == "average_inc_pad":
            mask[:h + 2 * ph, :w + 2 * pw] = 1
        else:
            mask[ph:ph + h, pw:pw + w] = 1
        return sum(v for _, v in self._taps(mask, h, w))

    def _argmax(self, x):
        """The in-window index (row-major) of each window's first maximum."""
        low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        taps = self._taps(self._padded(x, low), *x.shape[-2:])
        _, best = next(taps)
        best, idx = best.copy(), np.zeros(best.shape, np.intp)
        for t, v in taps:
            better = v > best
            np.copyto(best, v, where=better)
            np.copyto(idx, t, where=better)
        return idx

    def _scatter(self, x_shape, dtype, part):
        """The input-shaped sum over taps t of `part(t)` (pooled shape) placed at tap t of its
        window: the adjoint of reading the windows."""
        (ph, pw), (h, w) = self.pad, x_shape[-2:]
        gxp = np.zeros(x_shape[:-2] + self._extent(h, w), dtype)
        for t, v in self._taps(gxp, h, w):
            v += part(t)  # a view into gxp
        return gxp[..., ph:ph + h, pw:pw + w]

    def _check_input(self, x):
        x = as_variable(x)
        if x.ndim < 2:
            raise ShapeError(f"pool_2d: the input must have at least 2 dims (pooling acts on the "
                             f"last two), got {x.type.short()}" + _here())
        if x.dtype[0] not in "iuf":
            raise TypeError(f"pool_2d: the input must be real numbers, got {x.type.short()}")
        return x

    def _out_dtype(self, x):
        return x.dtype if self.mode == "max" else float_dtype(x.dtype).name


class Pool2d(_PoolOp):
    """Pool the last two axes of x in windows of `ws` moved by `stride`; leading axes (batch,
    channels) are kept.  Max pooling keeps the dtype; sum and average give a float."""

    def make_node(self, x):
        x = self._check_input(x)
        shape = x.type.shape[:-2] + self.static_out_hw(*x.type.shape[-2:])
        return Apply(self, [x], [TensorType(self._out_dtype(x), shape).make_variable()])

    def perform(self, node, inputs):
        (x,), dtype = inputs, node.outputs[0].dtype
        h, w = x.shape[-2:]
        if self.mode == "max":
            low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
            taps = self._taps(self._padded(x, low), h, w)
            out = next(taps)[1].copy()
            for _, v in taps:
                np.maximum(out, v, out=out)
            return (out,)
        taps = self._taps(self._padded(np.asarray(x, dtype), 0), h, w)
        out = next(taps)[1].copy()
        for _, v in taps:
            out += v
        if self.mode != "sum":
            out /= self._counts(h, w, dtype)
        return (out,)

    def L_op(self, inputs, outputs, output_grads):
        (x,), (gz,) = inputs, output_grads
        if gz is None or x.dtype[0] != "f":
            return [None]
        if self.mode == "max":
            g = MaxPoolGrad(*self._params())(x, gz)
        else:
            g = AvgPoolGrad(*self._params())(gz, shape_i(x, -2), shape_i(x, -1))
        return [E.cast(g, x.dtype) if g.dtype != x.dtype else g]

    def infer_shape(self, node, input_shapes):
        (shp,) = input_shapes
        return [static_or(node, tuple(shp[:-2]) + self.sym_out_hw(*shp[-2:]))]


class MaxPoolGrad(_PoolOp):
    """The gradient of max pooling: `gz` (the pooled shape) routed to each window's first
    maximum in x, summed where windows overlap; the result has x's shape."""

    def make_node(self, x, gz):
        x, gz = self._check_input(x), as_variable(gz)
        if gz.ndim != x.ndim:
            raise ShapeError(f"max-pool gradient: gz {gz.type.short()} and x {x.type.short()} "
                             "must have the same number of dims")
        dtype = np.promote_types(x.dtype, gz.dtype).name
        return Apply(self, [x, gz], [TensorType(dtype, x.type.shape).make_variable()])

    def perform(self, node, inputs):
        x, gz = inputs
        idx = self._argmax(x)
        if gz.shape != idx.shape:
            raise ValueError(f"max-pool gradient: gz has shape {gz.shape}, the pooled shape "
                             f"is {idx.shape}")
        return (self._scatter(x.shape, node.outputs[0].dtype, lambda t: (idx == t) * gz),)

    def L_op(self, inputs, outputs, output_grads):
        (x, gz), (g,) = inputs, output_grads
        if g is None:
            return [None, None]
        return [None, MaxPoolGradGrad(*self._params())(x, E.cast(g, gz.dtype))]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0])]


class MaxPoolGradGrad(_PoolOp):
    """For each max-pooling window of x, the value of `g` (x's shape) at the window's first
    maximum: the pooled shape.  The adjoint of `MaxPoolGrad` in its gradient argument."""

    def make_node(self, x, g):
        x, g = self._check_input(x), as_variable(g)
        if g.ndim != x.ndim:
            raise ShapeError(f"max-pool gradient: g {g.type.short()} and x {x.type.short()} "
                             "must have the same number of dims")
        shape = x.type.shape[:-2] + self.static_out_hw(*x.type.shape[-2:])
        return Apply(self, [x, g], [TensorType(g.dtype, shape).make_variable()])

    def perform(self, node, inputs):
        x, g = inputs
        if g.shape != x.shape:
            raise ValueError(f"max-pool gradient: g has shape {g.shape}, x has {x.shape}")
        idx = self._argmax(x)
        out = np.zeros(idx.shape, g.dtype)
        for t, v in self._taps(self._padded(g, 0), *x.shape[-2:]):
            np.copyto(out, v, where=idx == t)
        return (out,)

    def L_op(self, inputs, outputs, output_grads):
        (x, g), (gz,) = inputs, output_grads
        if gz is None:
            return [None, None]
        return [None, MaxPoolGrad(*self._params())(x, E.cast(gz, g.dtype))]

    def infer_shape(self, node, input_shapes):
        shp = input_shapes[0]
        return [static_or(node, tuple(shp[:-2]) + self.sym_out_hw(*shp[-2:]))]


class AvgPoolGrad(_PoolOp):
    """The gradient of sum or average pooling: each element of `gz` divided by its window's
    count and spread over the window, for an input whose last two dims are (h, w)."""

    def make_node(self, gz, h, w):
        gz = self._check_input(gz)
        if self.mode == "max":
            raise ValueError("AvgPoolGrad is for the sum and average modes; max pooling's "
                             "gradient is MaxPoolGrad")
        h, w = _int_scalars(self, (h, w))
        shape = gz.type.shape[:-2] + (_static_value(h), _static_value(w))
        out = TensorType(float_dtype(gz.dtype).name, shape)
        return Apply(self, [gz, h, w], [out.make_variable()])

    def perform(self, node, inputs):
        gz, h, w = inputs
        h, w, dtype = int(h), int(w), node.outputs[0].dtype
        if gz.shape[-2:] != self.out_hw(h, w):
            raise ValueError(f"pool gradient: gz has shape {gz.shape}, but a {h}x{w} input "
                             f"pools to {self.out_hw(h, w)}")
        per = np.asarray(gz, dtype) / self._counts(h, w, dtype)
        return (self._scatter(gz.shape[:-2] + (h, w), dtype, lambda t: per),)

    def L_op(self, inputs, outputs, output_grads):
        (gz, _, _), (g,) = inputs, output_grads
        if g is None:
            return [None, None, None]
        r = Pool2d(*self._params())(g)
        return [E.cast(r, gz.dtype) if r.dtype != gz.dtype else r, None, None]

    def infer_shape(self, node, input_shapes):
        shp = input_shapes[0]
        return [static_or(node, tuple(shp[:-2]) + tuple(node.inputs[1:]))]


def pool_2d(x, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
    """Theano's `pool_2d`: pool the last two axes of `x` in windows of `ws` (an int or a pair).

    `stride` defaults to `ws` (windows that do not overlap).  `pad` adds zero borders of
    (ph, pw) on each side (each smaller than the window; needs `ignore_border=True`).
    `ignore_border=True` keeps only windows that lie inside the (padded) image; False adds a
    last, partial window where the image does not divide evenly.  `mode`: "max", "sum",
    "average_exc_pad" (the mean over the window's image elements; "average" means this) or
    "average_inc_pad" (the padding counts as zeros)."""
    return Pool2d(ws, ignore_border, stride, pad, mode)(x)


__all__ = ["Pool2d", "MaxPoolGrad", "MaxPoolGradGrad", "AvgPoolGrad", "pool_2d"]
