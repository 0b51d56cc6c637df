"""The table of scalar (elementwise) operations.

Adding an elementwise function is one `ScalarOp` row: its name, arity, numpy implementation,
C expression, CUDA expression where it differs from C, and gradient.  `Elemwise` (and later
fusion, codegen and autodiff) read these rows; nothing else lists elementwise math.

`impl` is the numpy reference, and its result dtype for given input dtypes is the row's
output dtype (numpy's promotion, NEP 50).  `c` is a format string over the input expressions
`{0}, {1}, ...`.  `grad(T, inputs, out, gz)` returns one symbolic gradient per input (None:
not differentiable there) built from the tensor-level functions in module `T`; broadcasting
and dtype are handled by `Elemwise.L_op`, not by each row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True, eq=False)
class ScalarOp:
    name: str
    nin: int
    impl: Callable
    c: str
    grad: Callable | None = field(default=None, repr=False)
    cuda: str | None = None
    #: "float": integer inputs are promoted to a float result, as numpy's ufuncs do
    #: "bool": the result is boolean (comparisons, predicates)
    #: "same": integer inputs give an integer result (numpy 2 keeps floor, sign, reciprocal...)
    kind: str = "same"
    #: symbolic form for pprint: an infix operator, or None for `name(args)`
    infix: str | None = None

    def __str__(self):
        return self.name

    def __eq__(self, other):
        return isinstance(other, ScalarOp) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def out_dtype(self, dtypes) -> str:
        return _out_dtype(self, tuple(dtypes))


_dtype_cache: dict = {}


def _out_dtype(op, dtypes):
    """The dtype numpy's implementation gives for arrays of `dtypes` (its own promotion rules),
    or a TypeError naming the op and dtypes it has no loop for (`sub` of booleans, `floor` of
    complex numbers)."""
    key = (op.name, dtypes)
    r = _dtype_cache.get(key)
    if r is None:
        try:
            with np.errstate(all="ignore"):
                r = np.asarray(op.impl(*[np.ones(1, d) for d in dtypes])).dtype.name
        except (TypeError, ValueError, OverflowError) as e:
            raise TypeError(f"{op.name} is not defined for inputs of dtype "
                            f"{', '.join(dtypes)}: {e}") from None
        _dtype_cache[key] = r
    return r


TABLE: dict[str, ScalarOp] = {}


def register(op: ScalarOp) -> ScalarOp:
    if op.name in TABLE:
        raise ValueError(f"scalar op {op.name} is already registered")
    TABLE[op.name] = op
    return op


# numpy implementations numpy does not have under that name -------------------------------

def float_dtype(dtype) -> np.dtype:
    """The dtype numpy's transcendental ufuncs give for `dtype` (int8 -> float16, int32 ->
    float64, float32 -> float32)."""
    return np.exp(np.zeros(0, dtype)).dtype


def _real_float(x, name):
    """`x` as the float dtype numpy's ufuncs would compute it in; these functions have no
    complex form (numpy would silently order complex numbers lexicographically)."""
    x = np.asarray(x)
    if x.dtype.kind == "c":
        raise TypeError(f"{name} is not defined for complex inputs ({x.dtype})")
    return x.astype(float_dtype(x.dtype), copy=False)


def _sigmoid(x):
    x = _real_float(x, "sigmoid")
    e = np.exp(-np.abs(x))  # stable in both tails: exp of a non-positive number only
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    x = _real_float(x, "softplus")
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))  # log(1 + exp(x)), stable


def _libm(fn):
    """A numpy version of a libm function numpy lacks (erf, erfc), exact to libm."""
    vec = np.vectorize(fn, otypes=[np.float64])

    def impl(x):
        x = _real_float(x, fn.__name__)
        return vec(x).astype(x.dtype, copy=False) if x.size else x.copy()

    return impl


def _zero(T, x):
    return T.zeros_like(x)


# gradients needing more than one line ------------------------------------------------------

def _power_grad(T, i, o, g):
    """d(x**y)/dx = y * x**(y-1), and 0 where y == 0 (x**0 is constant even at x == 0, where
    the formula gives 0 * inf).  d(x**y)/dy = x**y * log(x), and 0 at x == 0 (0**y is 0 for
    every y > 0; log(0) would give 0 * -inf)."""
    x, y = i
    gx = T.where(T.eq(y, 0), 0, g * y * T.power(x, y - 1))
    gy = g * o * T.log(T.where(T.eq(x, 0), 1, x))
    return [gx, gy]


def _maximum_grad(T, i, o, g):
    """The larger input gets the gradient; at a tie each gets half of it, so the two still sum
    to `g` (max(x + t, y + t) moves with t) and a central difference agrees."""
    x, y = i
    half = T.where(T.eq(x, y), g * 0.5, 0)
    return [T.where(T.gt(x, y), g, half), T.where(T.lt(x, y), g, half)]


def _minimum_grad(T, i, o, g):
    x, y = i
    half = T.where(T.eq(x, y), g * 0.5, 0)
    return [T.where(T.lt(x, y), g, half), T.where(T.gt(x, y), g, half)]


def _clip_grad(T, i, o, g):
    """numpy's clip is minimum(maximum(x, lo), hi).  The gradient goes to whichever of the
    three the output is: `x` on the closed interval [lo, hi] (boundaries included, as in
    Theano and PyTorch), `lo` below it, `hi` above it and wherever lo > hi."""
    x, lo, hi = i
    to_hi = T.gt(T.maximum(x, lo), hi)
    to_lo = T.lt(x, lo) & ~to_hi
    to_x = ~(to_hi | to_lo)
    return [T.where(to_x, g, 0), T.where(to_lo, g, 0), T.where(to_hi, g, 0)]


def _arctan2_grad(T, i, o, g):
    """atan2(y, x): d/dy = x / (x² + y²), d/dx = -y / (x² + y²)."""
    y, x = i
    r2 = x * x + y * y
    return [g * x / r2, -g * y / r2]


# the table ------------------------------------------------------------------------------
# grad(T, inputs, out, gz): T is the module of tensor-level elementwise functions.
# `c` expressions name helpers (ts_*) for what C has no operator or libm function for, or
# where C's differs from numpy's (floor division and modulo round towards -inf, integer abs,
# integer power, NaN-propagating max/min, rounding that leaves integers exact).  Arguments
# arrive already converted to numpy's loop dtype, and math functions are type-generic.

_rows = [
    # arithmetic
    ScalarOp("add", 2, np.add, "({0} + {1})", lambda T, i, o, g: [g, g], infix="+"),
    ScalarOp("sub", 2, np.subtract, "({0} - {1})", lambda T, i, o, g: [g, -g], infix="-"),
    ScalarOp("mul", 2, np.multiply, "({0} * {1})",
             lambda T, i, o, g: [g * i[1], g * i[0]], infix="*"),
    ScalarOp("true_divide", 2, np.true_divide, "({0} / {1})",
             lambda T, i, o, g: [g / i[1], -g * o / i[1]], infix="/", kind="float"),
    ScalarOp("floor_divide", 2, np.floor_divide, "ts_floordiv({0}, {1})",
             lambda T, i, o, g: [_zero(T, i[0]), _zero(T, i[1])], infix="//"),
    ScalarOp("mod", 2, np.mod, "ts_mod({0}, {1})",
             lambda T, i, o, g: [g, -g * T.floor_divide(i[0], i[1])], infix="%"),
    ScalarOp("power", 2, np.power, "ts_pow({0}, {1})", _power_grad, infix="**"),
    ScalarOp("neg", 1, np.negative, "(-{0})", lambda T, i, o, g: [-g], infix="-"),
    ScalarOp("abs", 1, np.abs, "ts_abs({0})", lambda T, i, o, g: [g * T.sign(i[0])]),
    ScalarOp("sign", 1, np.sign, "ts_sign({0})", lambda T, i, o, g: [_zero(T, i[0])]),
    ScalarOp("reciprocal", 1, np.reciprocal, "ts_reciprocal({0})",
             lambda T, i, o, g: [-g * o * o]),
    ScalarOp("sqr", 1, np.square, "({0} * {0})", lambda T, i, o, g: [g * 2 * i[0]]),
    ScalarOp("sqrt", 1, np.sqrt, "sqrt({0})", lambda T, i, o, g: [g * 0.5 / o], kind="float"),
    ScalarOp("maximum", 2, np.maximum, "ts_max({0}, {1})", _maximum_grad),
    ScalarOp("minimum", 2, np.minimum, "ts_min({0}, {1})", _minimum_grad),
    ScalarOp("clip", 3, np.clip, "ts_min(ts_max({0}, {1}), {2})", _clip_grad),
    ScalarOp("where", 3, np.where, "({0} ? {1} : {2})",
             lambda T, i, o, g: [None, T.where(i[0], g, 0), T.where(i[0], 0, g)]),
    # exponentials and logarithms
    ScalarOp("exp", 1, np.exp, "exp({0})", lambda T, i, o, g: [g * o], kind="float"),
    ScalarOp("exp2", 1, np.exp2, "exp2({0})",
             lambda T, i, o, g: [g * o * math.log(2)], kind="float"),
    ScalarOp("expm1", 1, np.expm1, "expm1({0})", lambda T, i, o, g: [g * T.exp(i[0])],
             kind="float"),  # not o + 1, which rounds away exp(x) for x << 0
    ScalarOp("log", 1, np.log, "log({0})", lambda T, i, o, g: [g / i[0]], kind="float"),
    ScalarOp("log2", 1, np.log2, "log2({0})",
             lambda T, i, o, g: [g / (i[0] * math.log(2))], kind="float"),
    ScalarOp("log10", 1, np.log10, "log10({0})",
             lambda T, i, o, g: [g / (i[0] * math.log(10))], kind="float"),
    ScalarOp("log1p", 1, np.log1p, "log1p({0})", lambda T, i, o, g: [g / (1 + i[0])], kind="float"),
    ScalarOp("sigmoid", 1, _sigmoid, "ts_sigmoid({0})",
             lambda T, i, o, g: [g * o * (1 - o)], kind="float"),
    ScalarOp("softplus", 1, _softplus, "ts_softplus({0})",
             lambda T, i, o, g: [g * T.sigmoid(i[0])], kind="float"),
    ScalarOp("erf", 1, _libm(math.erf), "erf({0})",
             lambda T, i, o, g: [g * (2 / math.sqrt(math.pi)) * T.exp(-i[0] * i[0])], kind="float"),
    ScalarOp("erfc", 1, _libm(math.erfc), "erfc({0})",
             lambda T, i, o, g: [g * (-2 / math.sqrt(math.pi)) * T.exp(-i[0] * i[0])], kind="float"),
    # trigonometry
    ScalarOp("sin", 1, np.sin, "sin({0})", lambda T, i, o, g: [g * T.cos(i[0])], kind="float"),
    ScalarOp("cos", 1, np.cos, "cos({0})", lambda T, i, o, g: [-g * T.sin(i[0])], kind="float"),
    ScalarOp("tan", 1, np.tan, "tan({0})", lambda T, i, o, g: [g * (1 + o * o)], kind="float"),
    ScalarOp("arcsin", 1, np.arcsin, "asin({0})",
             lambda T, i, o, g: [g / T.sqrt(1 - i[0] * i[0])], kind="float"),
    ScalarOp("arccos", 1, np.arccos, "acos({0})",
             lambda T, i, o, g: [-g / T.sqrt(1 - i[0] * i[0])], kind="float"),
    ScalarOp("arctan", 1, np.arctan, "atan({0})",
             lambda T, i, o, g: [g / (1 + i[0] * i[0])], kind="float"),
    ScalarOp("arctan2", 2, np.arctan2, "atan2({0}, {1})", _arctan2_grad, kind="float"),
    ScalarOp("sinh", 1, np.sinh, "sinh({0})", lambda T, i, o, g: [g * T.cosh(i[0])], kind="float"),
    ScalarOp("cosh", 1, np.cosh, "cosh({0})", lambda T, i, o, g: [g * T.sinh(i[0])], kind="float"),
    ScalarOp("tanh", 1, np.tanh, "ts_tanh({0})", lambda T, i, o, g: [g * (1 - o * o)],
             kind="float"),
    # rounding (integers stay integers, as in numpy 2)
    ScalarOp("floor", 1, np.floor, "ts_floor({0})", lambda T, i, o, g: [_zero(T, i[0])]),
    ScalarOp("ceil", 1, np.ceil, "ts_ceil({0})", lambda T, i, o, g: [_zero(T, i[0])]),
    ScalarOp("round", 1, np.round, "ts_round({0})", lambda T, i, o, g: [_zero(T, i[0])]),
    ScalarOp("trunc", 1, np.trunc, "ts_trunc({0})", lambda T, i, o, g: [_zero(T, i[0])]),
    # comparisons and predicates (not differentiable: their outputs are booleans)
    ScalarOp("lt", 2, np.less, "({0} < {1})", infix="<", kind="bool"),
    ScalarOp("le", 2, np.less_equal, "({0} <= {1})", infix="<=", kind="bool"),
    ScalarOp("gt", 2, np.greater, "({0} > {1})", infix=">", kind="bool"),
    ScalarOp("ge", 2, np.greater_equal, "({0} >= {1})", infix=">=", kind="bool"),
    ScalarOp("eq", 2, np.equal, "({0} == {1})", infix="==", kind="bool"),
    ScalarOp("neq", 2, np.not_equal, "({0} != {1})", infix="!=", kind="bool"),
    ScalarOp("isnan", 1, np.isnan, "ts_isnan({0})", kind="bool"),
    ScalarOp("isinf", 1, np.isinf, "ts_isinf({0})", kind="bool"),
    ScalarOp("isfinite", 1, np.isfinite, "ts_isfinite({0})", kind="bool"),
    # bitwise on integers, logical on booleans (numpy's & | ^ ~)
    ScalarOp("and_", 2, np.bitwise_and, "({0} & {1})", infix="&"),
    ScalarOp("or_", 2, np.bitwise_or, "({0} | {1})", infix="|"),
    ScalarOp("xor", 2, np.bitwise_xor, "({0} ^ {1})", infix="^"),
    ScalarOp("invert", 1, np.invert, "ts_invert({0})", infix="~"),
]
for _r in _rows:
    register(_r)

CAST_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float16", "float32", "float64", "complex64", "complex128")
C_TYPES = {"bool": "npy_bool", "int8": "npy_int8", "int16": "npy_int16", "int32": "npy_int32",
           "int64": "npy_int64", "uint8": "npy_uint8", "uint16": "npy_uint16",
           "uint32": "npy_uint32", "uint64": "npy_uint64", "float16": "npy_half",
           "float32": "npy_float32", "float64": "npy_float64", "complex64": "npy_complex64",
           "complex128": "npy_complex128"}


def _cast_row(dtype):
    target = np.dtype(dtype)

    def impl(x):
        x = np.asarray(x)
        if x.dtype.kind == "c" and target.kind in "iuf":
            x = x.real  # an explicit cast drops the imaginary part, without numpy's warning
        return x.astype(target)

    def grad(T, i, o, g):
        return [T.cast(g, i[0].dtype)] if i[0].dtype[0] in "fc" and dtype[0] in "fc" else [None]

    # C's (unsigned char)0.5 is 0, numpy's bool(0.5) is True: compare with zero instead.
    # A negative float to an unsigned type is undefined in C; numpy wraps it through int64.
    c = ("({0} != 0)" if dtype == "bool" else
         f"(({C_TYPES[dtype]})ts_wrap_u({{0}}))" if dtype.startswith("uint") else
         f"(({C_TYPES[dtype]}){{0}})")
    return ScalarOp(f"cast_{dtype}", 1, impl, c, grad)


for _d in CAST_DTYPES:
    register(_cast_row(_d))
