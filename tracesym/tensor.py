"""The symbolic `Tensor`: numpy-style operators and methods on traced variables, the ready-made
types in Theano's naming (`fmatrix`, `lvector`, ...), `tensor`, `constant` and `shared`.

Every operator and method here is one call into a function of `tracesym.ops`; this module
holds the surface, not the math.
"""

from __future__ import annotations

import numpy as np

from . import ops as O
from .config import config
from .errors import TracerBoolConversionError
from .trace import context as _ctx
from .trace.graph import Constant, SharedVariable, Variable, as_variable
from .trace.types import TensorType


def _eager_value(v):
    if _ctx.eager_enabled() and v.has_test_value():
        return _ctx.test_value(v)
    return None


class Tensor(Variable):
    """A symbolic tensor.  Arithmetic follows numpy (broadcasting, NEP 50 dtypes); `==` is
    identity, as for any Python object used as a dict key: use `ts.eq(a, b)` elementwise."""

    __array_priority__ = 1000

    # metadata ---------------------------------------------------------------------------
    @property
    def shape(self):
        """The symbolic shape, an int64 vector; `x.shape[i]` is a constant when static."""
        return O.shape(self)

    @property
    def size(self):
        return O.prod(O.shape(self))

    @property
    def T(self):
        return O.transpose(self)

    @property
    def mT(self):
        return O.swapaxes(self, -1, -2)

    # arithmetic -------------------------------------------------------------------------
    def __add__(self, o): return O.add(self, o)
    def __radd__(self, o): return O.add(o, self)
    def __sub__(self, o): return O.sub(self, o)
    def __rsub__(self, o): return O.sub(o, self)
    def __mul__(self, o): return O.mul(self, o)
    def __rmul__(self, o): return O.mul(o, self)
    def __truediv__(self, o): return O.true_divide(self, o)
    def __rtruediv__(self, o): return O.true_divide(o, self)
    def __floordiv__(self, o): return O.floor_divide(self, o)
    def __rfloordiv__(self, o): return O.floor_divide(o, self)
    def __mod__(self, o): return O.mod(self, o)
    def __rmod__(self, o): return O.mod(o, self)
    def __pow__(self, o): return O.power(self, o)
    def __rpow__(self, o): return O.power(o, self)
    def __matmul__(self, o): return O.matmul(self, o)
    def __rmatmul__(self, o): return O.matmul(o, self)
    def __neg__(self): return O.neg(self)
    def __pos__(self): return self
    def __abs__(self): return O.abs(self)
    def __invert__(self): return O.invert(self)
    def __and__(self, o): return O.and_(self, o)
    def __rand__(self, o): return O.and_(o, self)
    def __or__(self, o): return O.or_(self, o)
    def __ror__(self, o): return O.or_(o, self)
    def __xor__(self, o): return O.xor(self, o)
    def __rxor__(self, o): return O.xor(o, self)
    def __lt__(self, o): return O.lt(self, o)
    def __le__(self, o): return O.le(self, o)
    def __gt__(self, o): return O.gt(self, o)
    def __ge__(self, o): return O.ge(self, o)
    __hash__ = Variable.__hash__

    # Python protocols that need a concrete value -------------------------------------
    def __bool__(self):
        v = _eager_value(self)
        if v is not None:
            return bool(v)
        return Variable.__bool__(self)

    def _concrete(self, kind):
        v = _eager_value(self)
        if v is not None:
            return kind(v)
        raise TracerBoolConversionError(
            f"{kind.__name__}() of symbolic {self.label()} ({self.type.short()}): its value is only "
            "known when the compiled function runs; keep it symbolic, or use ts.eager()")

    def __int__(self): return self._concrete(int)
    def __float__(self): return self._concrete(float)
    def __index__(self): return self._concrete(int)

    def __len__(self):
        n = self.type.shape[0] if self.ndim else None
        if n is None:
            raise TypeError(f"len() of {self.label()} ({self.type.short()}): its first dimension "
                            "is not known statically; use x.shape[0]")
        return n

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        return O.getitem(self, key)

    def __setitem__(self, key, value):
        raise TypeError("symbolic tensors are immutable: use ts.set_subtensor(x[key], value) or "
                        "ts.inc_subtensor(x[key], value), which return the updated tensor")

    # numpy interoperability ---------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        v = _eager_value(self)
        if v is not None:
            return np.asarray(v, dtype=dtype)
        raise TracerBoolConversionError(
            f"cannot convert symbolic {self.label()} ({self.type.short()}) to a numpy array while "
            "tracing; use tracesym functions on it, or ts.eager()")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from .numpy_protocol import array_ufunc

        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from .numpy_protocol import array_function

        if not all(issubclass(t, (Tensor, np.ndarray)) for t in types):
            return NotImplemented  # another array library's turn
        return array_function(func, args, kwargs)

    # methods ----------------------------------------------------------------------------
    def astype(self, dtype): return O.cast(self, dtype)
    def sum(self, axis=None, dtype=None, keepdims=False):
        return O.sum(self, axis=axis, dtype=dtype, keepdims=keepdims)
    def prod(self, axis=None, dtype=None, keepdims=False):
        return O.prod(self, axis=axis, dtype=dtype, keepdims=keepdims)
    def mean(self, axis=None, dtype=None, keepdims=False):
        return O.mean(self, axis=axis, dtype=dtype, keepdims=keepdims)
    def var(self, axis=None, dtype=None, *, ddof=0, keepdims=False):
        return O.var(self, axis=axis, dtype=dtype, keepdims=keepdims, ddof=ddof)
    def std(self, axis=None, dtype=None, *, ddof=0, keepdims=False):
        return O.std(self, axis=axis, dtype=dtype, keepdims=keepdims, ddof=ddof)
    def max(self, axis=None, *, keepdims=False): return O.max(self, axis=axis, keepdims=keepdims)
    def min(self, axis=None, *, keepdims=False): return O.min(self, axis=axis, keepdims=keepdims)
    def argmax(self, axis=None, *, keepdims=False): return O.argmax(self, axis=axis, keepdims=keepdims)
    def argmin(self, axis=None, *, keepdims=False): return O.argmin(self, axis=axis, keepdims=keepdims)
    def all(self, axis=None, *, keepdims=False): return O.all(self, axis=axis, keepdims=keepdims)
    def any(self, axis=None, *, keepdims=False): return O.any(self, axis=axis, keepdims=keepdims)
    def cumsum(self, axis=None): return O.cumsum(self, axis=axis)
    def cumprod(self, axis=None): return O.cumprod(self, axis=axis)
    def dot(self, o): return O.dot(self, o)
    def clip(self, a_min=None, a_max=None): return O.clip(self, a_min, a_max)
    def round(self): return O.round(self)
    def reshape(self, *shape):
        return O.reshape(self, shape[0] if len(shape) == 1 else shape)
    def flatten(self, ndim=1): return O.flatten(self, ndim)
    def ravel(self): return O.flatten(self, 1)
    def transpose(self, *axes):
        return O.transpose(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else (axes or None))
    def dimshuffle(self, *order): return O.dimshuffle(self, *order)
    def squeeze(self, axis=None): return O.squeeze(self, axis)
    def repeat(self, repeats, axis=None): return O.repeat(self, repeats, axis)
    def swapaxes(self, a, b): return O.swapaxes(self, a, b)

    def __repr__(self):
        v = _eager_value(self)
        if v is not None:
            return f"Tensor({np.array2string(np.asarray(v), threshold=20)}, {self.type.short()})"
        return f"{self.label()}: {self.type.short()}"


class TensorConstant(Constant, Tensor):
    """A constant tensor."""


class TensorSharedVariable(SharedVariable, Tensor):
    """A shared tensor variable (see `shared`)."""


TensorType.variable_class = Tensor
TensorType.constant_class = TensorConstant


def tensor(dtype=None, shape=(), name=None, test_value=None):
    """A new placeholder: `ts.tensor("float32", shape=(None, 784), name="x")`."""
    return TensorType(dtype or config.floatX, shape)(name, test_value=test_value)


def constant(value, dtype=None, name=None):
    """A constant tensor holding `value` (a lone Python float gets `config.floatX`)."""
    c = as_variable(value, dtype=None) if dtype is None else as_variable(np.asarray(value, dtype=dtype))
    if name is not None:
        c = TensorConstant(c.type, c.data, name=name)
    return c


def shared(value, name=None, borrow=False, shape=None):
    """A variable with a persistent value, an implicit input of every function using it.

    The type's dtype and ndim are the value's; its static shape is unknown (None) unless
    `shape=` gives it, so `set_value` may change sizes, as in Theano."""
    arr = np.array(value, copy=not borrow) if not isinstance(value, np.ndarray) or not borrow else value
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"shared: cannot hold {arr.dtype} data")
    if shape is None:
        shape = (None,) * arr.ndim
    t = TensorType(arr.dtype, shape)
    t.filter(arr, what=f"shared value {name or ''}".strip())
    return TensorSharedVariable(t, arr, name=name)


# ready-made types in Theano's naming -----------------------------------------------------
_KINDS = {"scalar": (), "vector": (None,), "matrix": (None, None), "row": (1, None),
          "col": (None, 1), "tensor3": (None,) * 3, "tensor4": (None,) * 4, "tensor5": (None,) * 5}
_PREFIX = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32", "d": "float64",
           "c": "complex64", "z": "complex128"}


class _FloatXType:
    """A bare name (`ts.matrix`) whose dtype is `config.floatX` when it is used."""

    def __init__(self, shape, name):
        self.shape, self.__name__ = shape, name

    @property
    def type(self):
        return TensorType(config.floatX, self.shape)

    def __call__(self, name=None, test_value=None, dtype=None):
        return TensorType(dtype or config.floatX, self.shape)(name, test_value=test_value)

    def __repr__(self):
        return f"ts.{self.__name__}"


TYPES = {}
for _k, _shape in _KINDS.items():
    for _p, _dt in _PREFIX.items():
        TYPES[_p + _k] = TensorType(_dt, _shape)
    TYPES[_k] = _FloatXType(_shape, _k)
globals().update(TYPES)

__all__ = ["Tensor", "TensorType", "TensorConstant", "TensorSharedVariable", "tensor", "constant",
           "shared", *TYPES]
