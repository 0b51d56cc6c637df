"""numpy's dispatch protocols on symbolic tensors: `np.exp(x)` and `np.sum(x, axis=0)` build
the same graph as `ts.exp(x)` and `ts.sum(x, axis=0)`."""

from __future__ import annotations

import numpy as np

from . import ops as O

_UFUNCS = {
    np.add: O.add, np.subtract: O.sub, np.multiply: O.mul, np.true_divide: O.true_divide,
    np.floor_divide: O.floor_divide, np.remainder: O.mod, np.power: O.power, np.negative: O.neg,
    np.positive: lambda x: x, np.absolute: O.abs, np.sign: O.sign, np.reciprocal: O.reciprocal,
    np.square: O.sqr, np.sqrt: O.sqrt, np.exp: O.exp, np.exp2: O.exp2, np.expm1: O.expm1,
    np.log: O.log, np.log2: O.log2, np.log10: O.log10, np.log1p: O.log1p, np.sin: O.sin,
    np.cos: O.cos, np.tan: O.tan, np.arcsin: O.arcsin, np.arccos: O.arccos, np.arctan: O.arctan,
    np.arctan2: O.arctan2, np.sinh: O.sinh, np.cosh: O.cosh, np.tanh: O.tanh, np.floor: O.floor,
    np.ceil: O.ceil, np.rint: O.round, np.trunc: O.trunc, np.maximum: O.maximum,
    np.minimum: O.minimum, np.isnan: O.isnan, np.isinf: O.isinf, np.less: O.lt,
    np.less_equal: O.le, np.greater: O.gt, np.greater_equal: O.ge, np.equal: O.eq,
    np.not_equal: O.neq, np.bitwise_and: O.and_, np.bitwise_or: O.or_, np.bitwise_xor: O.xor,
    np.invert: O.invert, np.logical_and: O.and_, np.logical_or: O.or_, np.logical_xor: O.xor,
}
_REDUCE = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
           np.logical_and: "all", np.logical_or: "any"}


def array_ufunc(ufunc, method, inputs, kwargs):
    if kwargs.get("out") is not None:
        raise TypeError(f"np.{ufunc.__name__}(..., out=) cannot write into a symbolic tensor")
    if method == "__call__" and ufunc is np.matmul:
        return O.matmul(*inputs)
    if method == "__call__" and ufunc in _UFUNCS:
        if set(kwargs) - {"out"}:
            raise TypeError(f"np.{ufunc.__name__}: keyword arguments {sorted(kwargs)} are not "
                            "supported on symbolic tensors")
        return _UFUNCS[ufunc](*inputs)
    if method == "reduce" and ufunc in _REDUCE:
        kwargs.pop("out", None)
        return getattr(O, _REDUCE[ufunc])(inputs[0], axis=kwargs.get("axis", 0),
                                           keepdims=kwargs.get("keepdims", False))
    return NotImplemented


def array_function(func, args, kwargs):
    """Dispatch `np.<name>(...)` to the tracesym function of the same name."""
    import tracesym

    impl = getattr(tracesym, func.__name__, None)
    if impl is None or not callable(impl):
        return NotImplemented
    return impl(*args, **kwargs)
