"""Gradient-shaping Ops: the identity forward, a modified gradient backward.

`stop_gradient` (Theano's `disconnected_grad`) cuts the path: the cost does not depend on
`x` through it.  `zero_grad` keeps the path but passes zeros (so `grad` reports no
disconnected input), `grad_clip` clips the passing gradient elementwise, `grad_scale`
multiplies it.  Their `perform` returns the input array itself: nothing is copied.
"""

from __future__ import annotations

import numpy as np

from ..ops.base import Op
from ..trace.graph import Apply, as_variable

__all__ = ["stop_gradient", "disconnected_grad", "zero_grad", "grad_clip", "grad_scale",
           "StopGradient", "ZeroGrad", "GradClip", "GradScale"]


class _Identity(Op):
    """Shared forward of the gradient-shaping Ops: the output is the first input."""

    abstract = True
    view_map = {0: [0]}

    def make_node(self, x, *rest):
        x = as_variable(x)
        return Apply(self, [x, *rest], [x.type.make_variable()])

    def perform(self, node, inputs):
        return (inputs[0],)

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]


class StopGradient(_Identity):
    """Identity whose output does not depend differentiably on its input."""

    differentiable = False

    def L_op(self, inputs, outputs, output_grads):
        return [None]


class ZeroGrad(_Identity):
    """Identity with a zero gradient (still connected: `grad` gives zeros, not an error)."""

    def L_op(self, inputs, outputs, output_grads):
        from ..ops.elemwise import zeros_like

        return [zeros_like(inputs[0])]


class GradClip(_Identity):
    """Identity whose gradient is clipped elementwise to [lo, hi]."""

    __props__ = ("lo", "hi")

    def __init__(self, lo, hi):
        lo, hi = float(lo), float(hi)
        if lo > hi:
            raise ValueError(f"grad_clip: the lower bound {lo} exceeds the upper bound {hi}")
        self.lo, self.hi = lo, hi

    def L_op(self, inputs, outputs, output_grads):
        from ..ops.elemwise import clip

        (gz,) = output_grads
        return [None if gz is None else clip(gz, self.lo, self.hi)]


class GradScale(_Identity):
    """Identity whose gradient is multiplied by the scalar second input (which itself gets
    no gradient)."""

    def make_node(self, x, s):
        s = as_variable(s)
        if s.ndim != 0:
            raise TypeError(f"grad_scale: the scale must be a scalar, got {s.type.short()}")
        return super().make_node(x, s)

    def L_op(self, inputs, outputs, output_grads):
        from ..ops.elemwise import cast

        (x, s), (gz,) = inputs, output_grads
        if gz is None:
            return [None, None]
        return [cast(gz * s, x.dtype), None]


def stop_gradient(x):
    """`x` in the forward pass; in `grad`, a constant (no gradient flows through it)."""
    return StopGradient()(x)


disconnected_grad = stop_gradient


def zero_grad(x):
    """`x` in the forward pass; its gradient is zero."""
    return ZeroGrad()(x)


def grad_clip(x, lo, hi):
    """`x` in the forward pass; the gradient flowing back through it is clipped to [lo, hi]."""
    return GradClip(lo, hi)(x)


def grad_scale(x, s):
    """`x` in the forward pass; the gradient flowing back through it is multiplied by `s`
    (a number or a symbolic scalar)."""
    x = as_variable(x)
    if isinstance(s, (int, float, np.number)):
        s = as_variable(np.asarray(s, dtype=x.dtype if x.dtype[0] in "fc" else "float64"))
    return GradScale()(x, s)
