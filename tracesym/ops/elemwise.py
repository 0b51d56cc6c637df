"""`Elemwise`: a scalar op from the table in `scalar.py` mapped over broadcast tensors, and the
tensor-level functions (`add`, `exp`, `where`, ...) that build it.

Dtypes follow numpy (NEP 50): the output dtype is what numpy's implementation gives for the
input dtypes, and Python scalars are weak (`float32_tensor * 2.0` stays float32).
"""

from __future__ import annotations

import math

import numpy as np

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
        with np.errstate(all="ignore"):  # numpy's values (inf, nan, 0 for x // 0), no warnings
            return (self.scalar_op.impl(*inputs),)

    def L_op(self, inputs, outputs, output_grads):
        from . import elemwise as T  # the tensor-level functions the rows' gradients use

        gz = output_grads[0]
        so = self.scalar_op
        out = outputs[0]
        if (gz is None or so.grad is None or out.dtype[0] not in "fc"
                or not any(x.dtype[0] in "fc" for x in inputs)):
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
            result.append(g if _keeps_shape(x, inputs) else sum_to(g, x))
        return result

    def infer_shape(self, node, input_shapes):
        from .shape import broadcast_shape_of

        return [broadcast_shape_of(input_shapes, node.inputs)]


def _keeps_shape(x, inputs) -> bool:
    """True when no other input can broadcast `x`, so the output (and its gradient) has x's
    shape: `x * 2.0`, `exp(x)`, `x + b` with b of static size 1 where x's size is unknown."""
    for v in inputs:
        if v is x:
            continue
        if v.ndim > x.ndim:
            return False
        for a, b in zip(x.type.shape[x.ndim - v.ndim:], v.type.shape):
            if b != 1 and (a is None or a == 1):
                return False
    return True


def sum_to(g: Variable, x: Variable) -> Variable:
    """Reduce a gradient `g` computed on the broadcast shape back to `x`'s shape: sum leading
    dims, and every dim that `x` has as size 1 (statically or, for unknown dims, at run time)."""
    from .reduce import sum as _sum
    from .shape import SumToShape, shape

    if g.ndim > x.ndim:
        g = _sum(g, axis=tuple(range(g.ndim - x.ndim)))
    static_axes = tuple(i for i, (a, b) in enumerate(zip(x.type.shape, g.type.shape))
                        if a == 1 and b != 1)
    if static_axes:
        g = _sum(g, axis=static_axes, keepdims=True)
    if any(a is None and b != 1 for a, b in zip(x.type.shape, g.type.shape)):
        g = SumToShape()(g, shape(x))  # an unknown dim of x may be 1 where g's is not
    return g


_ops: dict[str, Elemwise] = {}


def elemwise_op(name: str) -> Elemwise:
    op = _ops.get(name)
    if op is None:
        op = _ops[name] = Elemwise(S.TABLE[name])
    return op


def _is_weak(x) -> bool:
    """A Python number (not a numpy scalar, which subclasses float and int but is strong)."""
    return isinstance(x, _PY_SCALARS) and not isinstance(x, np.generic)


def promote_inputs(*xs, name="elemwise", ints="raise", impl=None):
    """Convert mixed inputs to Variables with numpy 2's rules (NEP 50): a Python number is
    weak and takes the dtype numpy would convert it to next to the other operands
    (`float32 * 2.0` -> float32, `int8 + 1.5` -> float64, `int8 / 1000` -> float64: for a
    ufunc `impl`, the input dtype of the loop numpy picks); with no other operand it becomes
    int64, bool or `config.floatX`.

    A Python int outside the integer dtype it would take raises OverflowError, as in numpy
    (`int8 + 1000`).  `ints="compare"` gives it a dtype that holds it instead (numpy's
    comparisons: `int8 < 1000` is all True); `ints="saturate"` clamps it into the dtype
    (numpy's clip bounds: `clip(int8, 0, 1000)` stays int8).
    """
    if not any(map(_is_weak, xs)):
        return [as_variable(x) for x in xs]
    vs = [None if _is_weak(x) else as_variable(x) for x in xs]
    strong = [np.dtype(v.dtype) for v in vs if v is not None]
    if not strong:  # only Python numbers: all take their common default dtype
        dt = np.result_type(*map(_default_dtype, xs))
        return [_weak_constant(x, dt, [dt], name, ints) for x in xs]
    loop = _loop_dtypes(impl, xs, vs)
    out = []
    for k, (x, v) in enumerate(zip(xs, vs)):
        if v is None:
            dt = loop[k] if loop is not None else np.result_type(*strong, x)
            v = _weak_constant(x, dt, strong, name, ints)
        out.append(v)
    return out


def _default_dtype(x):
    """The dtype of a lone Python number: bool, int64, `config.floatX` or its complex type."""
    from ..config import config

    if isinstance(x, bool):
        return np.dtype(bool)
    if isinstance(x, int):
        return np.dtype("int64")
    if isinstance(x, float):
        return np.dtype(config.floatX)
    return np.result_type(config.floatX, np.complex64)


def _loop_dtypes(impl, xs, vs):
    """The input dtypes of the loop the ufunc `impl` runs for these operands (Python numbers
    passed as weak), or None where numpy cannot say (not a ufunc, or no loop: the Op then
    reports the dtypes)."""
    if not isinstance(impl, np.ufunc) or impl.nin != len(xs):
        return None
    spec = []
    for x, v in zip(xs, vs):
        if v is not None:
            spec.append(np.dtype(v.dtype))
        else:
            spec.append(np.dtype(bool) if isinstance(x, bool) else
                        int if isinstance(x, int) else float if isinstance(x, float) else complex)
    try:
        return impl.resolve_dtypes(tuple(spec) + (None,) * impl.nout)[:impl.nin]
    except TypeError:
        return None


def _weak_constant(x, dt, strong, name, ints):
    """Python number `x` as a constant of dtype `dt` (see `promote_inputs` for `ints`)."""
    if isinstance(x, int) and not isinstance(x, bool) and dt.kind in "iu":
        info = np.iinfo(dt)
        if not info.min <= x <= info.max:
            if ints == "saturate":
                x = min(max(x, int(info.min)), int(info.max))
            elif ints == "compare":
                dt = np.result_type(dt, np.min_scalar_type(x))
                if dt.kind not in "iu":  # no integer dtype holds both: any number beyond
                    dt, x = np.dtype("float64"), math.copysign(2.0 ** 65, x)  # every value
            else:
                raise OverflowError(
                    f"{name}: the Python integer {x} is out of bounds for {dt.name}, the dtype "
                    f"numpy 2 gives it next to operands of dtype {', '.join(d.name for d in strong)}; "
                    f"convert an operand first (x.astype('int64'), or np.int64({x}))")
    with np.errstate(all="ignore"):  # float16 + 1e6 is inf in numpy too, without a warning
        return as_variable(np.asarray(x, dtype=dt))


def elemwise(name, *xs):
    return elemwise_op(name)(*promote_inputs(*xs, name=name, impl=S.TABLE[name].impl))


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


def _comparison(name):
    def f(x, y):
        return elemwise_op(name)(*promote_inputs(x, y, name=name, ints="compare",
                                                 impl=S.TABLE[name].impl))

    f.__name__ = name
    f.__doc__ = (f"Elementwise {name} with numpy broadcasting; a Python int beyond the other "
                 "operand's dtype compares by value, as in numpy (`int8 < 1000` is True).")
    return f


add, sub, mul, true_divide, floor_divide, mod, power = map(
    _binary, ("add", "sub", "mul", "true_divide", "floor_divide", "mod", "power"))
maximum, minimum, arctan2 = map(_binary, ("maximum", "minimum", "arctan2"))
lt, le, gt, ge, eq, neq = map(_comparison, ("lt", "le", "gt", "ge", "eq", "neq"))
and_, or_, xor = map(_binary, ("and_", "or_", "xor"))
(neg, abs, sign, reciprocal, sqr, sqrt, exp, exp2, expm1, log, log2, log10, log1p, sigmoid,
 softplus, erf, erfc, sin, cos, tan, arcsin, arccos, arctan, sinh, cosh, tanh, floor, ceil, round,
 trunc, isnan, isinf, isfinite, invert) = map(_unary, (
    "neg", "abs", "sign", "reciprocal", "sqr", "sqrt", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "sigmoid", "softplus", "erf", "erfc", "sin", "cos", "tan", "arcsin",
    "arccos", "arctan", "sinh", "cosh", "tanh", "floor", "ceil", "round", "trunc", "isnan",
    "isinf", "isfinite", "invert"))
divide = true_divide
subtract, multiply, negative, absolute, square, remainder = sub, mul, neg, abs, sqr, mod
less, less_equal, greater, greater_equal, equal, not_equal = lt, le, gt, ge, eq, neq
bitwise_and, bitwise_or, bitwise_xor, bitwise_not = and_, or_, xor, invert


def _truth(x):
    return cast(x, "bool")


def logical_and(x, y):
    """numpy.logical_and: the truth values of any dtype, combined (a boolean result)."""
    return and_(_truth(x), _truth(y))


def logical_or(x, y):
    """numpy.logical_or: a boolean result for inputs of any dtype."""
    return or_(_truth(x), _truth(y))


def logical_xor(x, y):
    """numpy.logical_xor: a boolean result for inputs of any dtype."""
    return xor(_truth(x), _truth(y))


def logical_not(x):
    """numpy.logical_not: a boolean result for an input of any dtype."""
    return invert(_truth(x))


def where(cond, x, y):
    """`x` where `cond` is true, else `y` (numpy.where with three arguments).  `cond` may have
    any dtype (nonzero is true) and takes no part in the result's dtype; a Python int that
    does not fit the dtype of the other branch raises OverflowError (numpy would wrap it)."""
    x, y = promote_inputs(x, y, name="where")
    return elemwise_op("where")(as_variable(cond), x, y)


def clip(x, a_min=None, a_max=None):
    """numpy.clip: limit `x` to [a_min, a_max], i.e. minimum(maximum(x, a_min), a_max).

    `None` leaves that side open (both None: `x` itself); an open side is the dtype's
    extreme (-inf, iinfo.min...), so the gradient rule is the same as with both bounds.  A
    Python int bound beyond an integer dtype saturates, as in numpy (`clip(int8, 0, 1000)`
    stays int8)."""
    if a_min is None and a_max is None:
        return as_variable(x)
    given = promote_inputs(*(v for v in (x, a_min, a_max) if v is not None), name="clip",
                           ints="saturate")
    x, bound = given[0], given[1:]
    dt = np.result_type(*(np.dtype(v.dtype) for v in given))
    lo, hi = _dtype_range(dt)
    if lo is None:  # complex: numpy orders it lexicographically; nothing lies beyond
        return minimum(x, bound[0]) if a_min is None else maximum(x, bound[0])
    lo = bound.pop(0) if a_min is not None else as_variable(np.asarray(lo, dt))
    hi = bound.pop(0) if a_max is not None else as_variable(np.asarray(hi, dt))
    return elemwise_op("clip")(x, lo, hi)


def _dtype_range(dt):
    if dt.kind == "f":
        return -np.inf, np.inf
    if dt.kind in "iu":
        return np.iinfo(dt).min, np.iinfo(dt).max
    if dt.kind == "b":
        return False, True
    return None, None


def cast(x, dtype):
    """`x` converted to `dtype` (numpy's astype, without its warnings: complex to real keeps
    the real part); a no-op when it already has it."""
    x = as_variable(x)
    try:
        name = np.dtype(dtype).name
    except TypeError as e:
        raise TypeError(f"cast: {dtype!r} is not a dtype: {e}") from None
    if x.dtype == name:
        return x
    if f"cast_{name}" not in S.TABLE:
        raise TypeError(f"cast: tensors cannot hold {name} data; the dtypes are "
                        f"{', '.join(S.CAST_DTYPES)}")
    return elemwise_op(f"cast_{name}")(x)


def astype(x, dtype):
    """numpy's `x.astype(dtype)` as a function (`cast`)."""
    return cast(x, dtype)


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
    "cosh", "tanh", "floor", "ceil", "round", "trunc", "isnan", "isinf", "isfinite", "invert",
    "divide", "subtract", "multiply", "negative", "absolute", "square", "remainder", "less",
    "less_equal", "greater", "greater_equal", "equal", "not_equal", "bitwise_and", "bitwise_or",
    "bitwise_xor", "bitwise_not", "logical_and", "logical_or", "logical_xor", "logical_not",
    "where", "clip", "cast", "astype", "zeros_like", "ones_like",
]
