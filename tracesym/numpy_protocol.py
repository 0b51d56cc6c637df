"""numpy's dispatch protocols on symbolic tensors: `np.exp(x)`, `np.add(x, 1)` and
`np.sum(x, axis=0)` build the same graph as `ts.exp(x)`, `ts.add(x, 1)` and `ts.sum(x,
axis=0)`, and an ndarray on the left of an operator (`arr * x`) defers to the tensor.

Ufuncs (`__array_ufunc__`) go through an explicit table, since a ufunc's name is not always
tracesym's (`np.remainder` is `mod`); one outside it raises a TypeError saying so.  Other numpy
functions (`__array_function__`) go to the tracesym function of the same name; where there is
none, numpy raises its own TypeError.
"""

from __future__ import annotations

import inspect

import numpy as np

from . import ops as O

_UFUNCS = {
    np.add: O.add, np.subtract: O.sub, np.multiply: O.mul, np.true_divide: O.true_divide,
    np.floor_divide: O.floor_divide, np.remainder: O.mod, np.power: O.power, np.negative: O.neg,
    np.positive: lambda x: x, np.absolute: O.abs, np.sign: O.sign,
    np.reciprocal: O.reciprocal, np.square: O.sqr, np.sqrt: O.sqrt, np.exp: O.exp,
    np.exp2: O.exp2, np.expm1: O.expm1, np.log: O.log, np.log2: O.log2, np.log10: O.log10,
    np.log1p: O.log1p, np.sin: O.sin, np.cos: O.cos, np.tan: O.tan, np.arcsin: O.arcsin,
    np.arccos: O.arccos, np.arctan: O.arctan, np.arctan2: O.arctan2, np.sinh: O.sinh,
    np.cosh: O.cosh, np.tanh: O.tanh, np.floor: O.floor, np.ceil: O.ceil, np.rint: O.round,
    np.trunc: O.trunc, np.maximum: O.maximum, np.minimum: O.minimum, np.isnan: O.isnan,
    np.isinf: O.isinf, np.isfinite: O.isfinite, np.less: O.lt, np.less_equal: O.le,
    np.greater: O.gt, np.greater_equal: O.ge, np.equal: O.eq, np.not_equal: O.neq,
    np.bitwise_and: O.and_, np.bitwise_or: O.or_, np.bitwise_xor: O.xor, np.invert: O.invert,
    np.logical_and: O.logical_and, np.logical_or: O.logical_or,
    np.logical_xor: O.logical_xor, np.logical_not: O.logical_not, np.matmul: O.matmul,
}
#: ufunc.reduce and ufunc.accumulate as tracesym reductions and scans (numpy's default axis 0)
_REDUCE = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
           np.logical_and: "all", np.logical_or: "any"}
_ACCUMULATE = {np.add: "cumsum", np.multiply: "cumprod"}


def _no_out(ufunc, kwargs):
    out = kwargs.pop("out", None)
    if out is not None and any(o is not None for o in (out if isinstance(out, tuple) else (out,))):
        raise TypeError(f"np.{ufunc.__name__}(..., out=...): a symbolic tensor cannot be written "
                        "into; use the returned tensor")


def _check_kwargs(what, kwargs, allowed=()):
    extra = sorted(k for k in kwargs if k not in allowed)
    if extra:
        raise TypeError(f"{what}: keyword argument(s) {', '.join(extra)} are not supported on "
                        "symbolic tensors" + (f" (only {', '.join(allowed)})" if allowed else ""))


def array_ufunc(ufunc, method, inputs, kwargs):
    """`Tensor.__array_ufunc__`: the tracesym function for `ufunc`, or a TypeError."""
    kwargs = dict(kwargs)
    _no_out(ufunc, kwargs)
    name = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    if method == "__call__" and ufunc in _UFUNCS:
        _check_kwargs(name, kwargs)
        return _UFUNCS[ufunc](*inputs)
    if method == "reduce" and ufunc in _REDUCE:
        _check_kwargs(name, kwargs, ("axis", "keepdims"))
        return getattr(O, _REDUCE[ufunc])(inputs[0], axis=kwargs.get("axis", 0),
                                           keepdims=kwargs.get("keepdims", False))
    if method == "accumulate" and ufunc in _ACCUMULATE:
        _check_kwargs(name, kwargs, ("axis",))
        return getattr(O, _ACCUMULATE[ufunc])(inputs[0], axis=kwargs.get("axis", 0))
    raise TypeError(f"{name} is not supported on symbolic tensors (tracesym has no equivalent "
                    "Op); express it with tracesym functions")


def array_function(func, args, kwargs):
    """`Tensor.__array_function__`: `np.<name>(...)` as `tracesym.<name>(...)`, for functions
    of numpy's main namespace that tracesym also has (NotImplemented otherwise, and numpy
    raises TypeError).  Arguments tracesym's function does not take raise a TypeError naming
    the function."""
    import tracesym

    name = getattr(func, "__name__", None)
    impl = getattr(tracesym, name, None) if getattr(func, "__module__", None) == "numpy" else None
    if impl is None or not callable(impl) or isinstance(impl, type):
        return NotImplemented
    try:
        inspect.signature(impl).bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"np.{name} on a symbolic tensor calls tracesym.{name}, which does not "
                        f"take these arguments: {e}") from None
    except ValueError:  # a callable without an introspectable signature: let it check
        pass
    return impl(*args, **kwargs)
