"""`Elemwise`: a scalar op from the table in `scalar.py` mapped over broadcast tensors, and the
tensor-level functions (`add`, `exp`, `where`, ...) that build it.

Dtypes follow numpy (NEP 50): the output dtype is what numpy's implementation gives for the
input dtypes, and Python scalars are weak (`float32_tensor * 2.0` stays float32).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, Variable, as_variable
from ..trace.types import TensorType, broadcast_shapes
from . import scalar as S
from .base import Op

_PY_SCALARS = (bool, int, float, complex)


class Elemwise(Op):
    """Apply `scalar_op` elementwise with numpy broadcasting (also for a dim that is only
    known to be 1 when the function runs)."""

    __props__ = ("scalar_op",)

    def __init__(self, scalar_op: S.ScalarOp):
        self.scalar_op = scalar_op

    def __str__(self):
        return f"Elemwise{{{self.scalar_op.name}}}"

    def make_node(self, *inputs):
        so = self.scalar_op
        if len(inputs) != so.nin:
            raise TypeError(f"{so.name} takes {so.nin} inputs, got {len(inputs)}")
        inputs = [as_variable(x) for x in inputs]
        shape = broadcast_shapes(*(v.type.shape for v in inputs), where=f" in {so.name}")
        dtype = so.out_dtype([v.dtype for v in inputs])
        return Apply(self, inputs, [TensorType(dtype, shape).make_variable()])

    def perform(self, node, inputs):
        with np.errstate(all="ignore"):
            return (self.scalar_op.impl(*inputs),)

    def L_op(self, inputs, outputs, output_grads):
        from . import elemwise as T  # the tensor-level functions the rows' gradients use

        gz = output_grads[0]
        so = self.scalar_op
        out = outputs[0]
        if gz is None or out.dtype[0] not in "fc":
            return [None] * len(inputs)
        if so.grad is None:
            return [None] * len(inputs)
        grads = so.grad(T, inputs, out, gz)
        result = []
        for x, g in zip(inputs, grads):
            if g is None or x.dtype[0] not in "fc":
                result.append(None)
                continue
            g = as_variable(g)
            if g.dtype != x.dtype:
                g = cast(g, x.dtype)
            result.append(sum_to(g, x))
        return result

    def infer_shape(self, node, input_shapes):
        from .shape import broadcast_shape_of

        return [broadcast_shape_of(input_shapes, node.inputs)]


def sum_to(g: Variable, x: Variable) -> Variable:
    """Reduce a gradient `g` computed on the broadcast shape back to `x`'s shape: sum leading
    dims, and every dim that `x` has as size 1 (statically or, for unknown dims, at run time)."""
    from .reduce import sum as _sum
    from .shape import SumToShape, shape

    if g.ndim > x.ndim:
        g = _sum(g, axis=tuple(range(g.ndim - x.ndim)))
    static_axes = tuple(i for i, (a, b) in enumerate(zip(x.type.shape, g.type.shape)) if a == 1 and b != 1)
    if static_axes:
        g = _sum(g, axis=static_axes, keepdims=True)
    if any(a is None and b != 1 for a, b in zip(x.type.shape, g.type.shape)) and not _same_shape(x, g):
        g = SumToShape()(g, shape(x))
    return g


def _same_shape(x, g):
    """True when g is known to have x's shape (static shapes equal and fully known)."""
    return None not in x.type.shape and x.type.shape == g.type.shape


_ops: dict[str, Elemwise] = {}


def elemwise_op(name: str) -> Elemwise:
    op = _ops.get(name)
    if op is None:
        op = _ops[name] = Elemwise(S.TABLE[name])
    return op


def _strong_dtype(x):
    if isinstance(x, Variable):
        return x.dtype
    if isinstance(x, (np.ndarray, np.generic)):
        return x.dtype
    return None


def promote_inputs(*xs):
    """Convert mixed inputs to Variables with numpy's NEP 50 rules: Python scalars are weak
    and take the dtype the other operands give them."""
    if not any(isinstance(x, _PY_SCALARS) and not isinstance(x, np.generic) for x in xs):
        return [as_variable(x) for x in xs]
    strong = [d for d in map(_strong_dtype, xs) if d is not None]
    out = []
    for x in xs:
        if isinstance(x, _PY_SCALARS) and not isinstance(x, np.generic):
            if strong:
                dt = np.result_type(*[np.dtype(d) for d in strong], x)
                if np.dtype(dt).kind == "b" and not isinstance(x, bool):
                    dt = np.result_type(x)
                out.append(as_variable(np.asarray(x, dtype=dt)))
            else:
                out.append(as_variable(x))
        else:
            out.append(as_variable(x))
    return out


def elemwise(name, *xs):
    return elemwise_op(name)(*promote_inputs(*xs))


def _unary(name):
    def f(x):
        return elemwise(name, x)

    f.__name__ = name
    f.__doc__ = f"Elementwise {name}, as numpy's."
    return f


def _binary(name):
    def f(x, y):
        return elemwise(name, x, y)

    f.__name__ = name
    f.__doc__ = f"Elementwise {name} with numpy broadcasting."
    return f


add, sub, mul, true_divide, floor_divide, mod, power = map(
    _binary, ("add", "sub", "mul", "true_divide", "floor_divide", "mod", "power"))
maximum, minimum, arctan2 = map(_binary, ("maximum", "minimum", "arctan2"))
lt, le, gt, ge, eq, neq = map(_binary, ("lt", "le", "gt", "ge", "eq", "neq"))
and_, or_, xor = map(_binary, ("and_", "or_", "xor"))
(neg, abs, sign, reciprocal, sqr, sqrt, exp, exp2, expm1, log, log2, log10, log1p, sigmoid,
 softplus, erf, erfc, sin, cos, tan, arcsin, arccos, arctan, sinh, cosh, tanh, floor, ceil, round,
 trunc, isnan, isinf, invert) = map(_unary, (
    "neg", "abs", "sign", "reciprocal", "sqr", "sqrt", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "sigmoid", "softplus", "erf", "erfc", "sin", "cos", "tan", "arcsin",
    "arccos", "arctan", "sinh", "cosh", "tanh", "floor", "ceil", "round", "trunc", "isnan",
    "isinf", "invert"))
divide = true_divide
subtract, multiply, negative, absolute = sub, mul, neg, abs
less, less_equal, greater, greater_equal, equal, not_equal = lt, le, gt, ge, eq, neq
bitwise_and, bitwise_or, bitwise_xor, bitwise_not = and_, or_, xor, invert


def where(cond, x, y):
    """`x` where `cond` is true, else `y` (numpy.where with three arguments)."""
    return elemwise("where", cond, x, y)


def clip(x, a_min, a_max):
    """Limit `x` to [a_min, a_max]; `None` leaves that side open."""
    if a_min is None and a_max is None:
        raise ValueError("clip: at least one of a_min and a_max must be given")
    if a_min is None:
        return minimum(x, a_max)
    if a_max is None:
        return maximum(x, a_min)
    return elemwise("clip", x, a_min, a_max)


def cast(x, dtype):
    """`x` converted to `dtype` (numpy's astype); a no-op when it already has it."""
    x = as_variable(x)
    dtype = np.dtype(dtype).name
    if x.dtype == dtype:
        return x
    return elemwise_op(f"cast_{dtype}")(x)


def zeros_like(x, dtype=None):
    from .basic import full_like

    return full_like(x, 0, dtype)


def ones_like(x, dtype=None):
    from .basic import full_like

    return full_like(x, 1, dtype)


__all__ = [
    "Elemwise", "add", "sub", "mul", "true_divide", "floor_divide", "mod", "power", "maximum",
    "minimum", "arctan2", "lt", "le", "gt", "ge", "eq", "neq", "and_", "or_", "xor", "neg", "abs",
    "sign", "reciprocal", "sqr", "sqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
    "sigmoid", "softplus", "erf", "erfc", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh",
    "cosh", "tanh", "floor", "ceil", "round", "trunc", "isnan", "isinf", "invert", "divide",
    "subtract", "multiply", "negative", "absolute", "less", "less_equal", "greater",
    "greater_equal", "equal", "not_equal", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_not", "where", "clip", "cast", "zeros_like", "ones_like",
]
