"""Tensor types: a dtype and a static shape whose entries are known ints or `None`.

A dimension is broadcastable when its static size is 1.  Types compare by value and are
hashable, so they key caches and merge.  The variable class a type makes is set by
`tracesym.tensor` (the symbolic `Tensor` with numpy-style operators), which keeps this layer
free of the operator surface.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


class TensorType:
    variable_class = None  # set by tracesym.tensor
    constant_class = None

    __slots__ = ("dtype", "shape", "_hash")

    def __init__(self, dtype, shape):
        dt = np.dtype(dtype)
        if dt.kind not in "biufc":
            raise TypeError(f"unsupported tensor dtype {dt}")
        shape = tuple(None if s is None else int(s) for s in shape)
        if any(s is not None and s < 0 for s in shape):
            raise ValueError(f"static shape entries must be >= 0 or None, got {shape}")
        object.__setattr__(self, "dtype", dt.name)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "_hash", hash((dt.name, shape)))

    def __setattr__(self, *_):
        raise AttributeError("TensorType is immutable")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple:
        return tuple(s == 1 for s in self.shape)

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

    def clone(self, dtype=None, shape=None) -> "TensorType":
        return TensorType(self.dtype if dtype is None else dtype, self.shape if shape is None else shape)

    def __eq__(self, other):
        return isinstance(other, TensorType) and self.dtype == other.dtype and self.shape == other.shape

    def __hash__(self):
        return self._hash

    def __repr__(self):
        dims = ", ".join("?" if s is None else str(s) for s in self.shape)
        return f"TensorType({self.dtype}, ({dims}{',' if self.ndim == 1 else ''}))"

    def short(self) -> str:
        """`float32[?,10]`: the form debugprint uses."""
        return f"{self.dtype}[{','.join('?' if s is None else str(s) for s in self.shape)}]"

    def make_variable(self, name=None):
        """A fresh variable of this type (the symbolic Tensor class)."""
        return self.variable_class(self, name=name)

    def __call__(self, name=None, test_value=None):
        """`ts.fmatrix("x")`: a new named placeholder of this type."""
        from .graph import placeholder

        return placeholder(self, name=name, test_value=test_value)

    def is_super(self, other: "TensorType") -> bool:
        """True when every value of `other` is a valid value of self."""
        return (self.dtype == other.dtype and self.ndim == other.ndim
                and all(a is None or a == b for a, b in zip(self.shape, other.shape)))

    def filter(self, value, allow_downcast=False, what="value", error=InputError):
        """Convert a value to an ndarray of this type, or raise `error` (InputError) saying why.

        numpy data casts only when nothing is lost (int32 data for an int64 input); Python
        numbers and lists of them are weak, as in numpy: they take this dtype when their values
        survive (0.1 for a float32 input; 300 for an int8 one does not).  Any other cast needs
        `allow_downcast`.
        """
        target = self.np_dtype
        if type(value) is np.ndarray and value.dtype == target:
            arr = value
        elif _is_python_data(value):
            arr = self._convert_weak(value, allow_downcast, what, error)
        else:
            try:
                arr = np.asarray(value)
            except (ValueError, TypeError) as e:
                raise error(f"{what}: cannot convert {type(value).__name__} to an array: {e}") from None
            if arr.dtype != target:
                if arr.dtype.kind not in "biufc":
                    raise error(f"{what}: expected a {self.dtype} array, got {arr.dtype} data")
                if not allow_downcast and not np.can_cast(arr.dtype, target, "safe"):
                    raise error(
                        f"{what}: expected {self.dtype}, got {arr.dtype}; casting would lose "
                        f"information. Cast it yourself (x.astype('{self.dtype}')) or pass "
                        "allow_input_downcast=True")
                if arr.dtype.kind == "c" and target.kind != "c":
                    arr = arr.real  # allowed to lose the imaginary part: say so to numpy
                with np.errstate(all="ignore"):
                    arr = arr.astype(target)
        if arr.ndim != self.ndim:
            raise error(f"{what}: expected {self.ndim} dimension(s) ({self.short()}), "
                        f"got an array of shape {arr.shape}")
        for i, (s, a) in enumerate(zip(self.shape, arr.shape)):
            if s is not None and s != a:
                raise error(f"{what}: dimension {i} must have size {s} ({self.short()}), "
                            f"got an array of shape {arr.shape}")
        return arr

    def _convert_weak(self, value, allow_downcast, what, error):
        """Python numbers as this dtype: a float may round to the dtype's precision (as numpy
        does with `float32_array * 0.1`), but nothing may overflow or lose its integer value."""
        target = self.np_dtype
        if isinstance(value, int) and not isinstance(value, bool) and target.kind in "iu":
            info = np.iinfo(target)
            if not info.min <= value <= info.max and not allow_downcast:
                raise error(f"{what}: the Python int {value} does not fit {self.dtype} "
                            f"[{info.min}, {info.max}]")
        try:
            src = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise error(f"{what}: cannot convert {type(value).__name__} to an array: {e}") from None
        if src.dtype.kind not in "biufc":
            raise error(f"{what}: expected {self.dtype} data, got {type(value).__name__} "
                        f"({src.dtype})")
        if src.dtype.kind == "c" and target.kind != "c":
            if np.any(src.imag) and not allow_downcast:
                raise error(f"{what}: complex data {_brief(value)} for a {self.dtype} input "
                            "would lose its imaginary part; pass allow_input_downcast=True")
            src = src.real
        with np.errstate(all="ignore"):
            arr = src.astype(target)
        if allow_downcast:
            return arr
        if target.kind in "fc":
            lossless = bool(np.all(np.isfinite(arr) | ~np.isfinite(src)))
        else:
            lossless = bool(np.array_equal(arr, src))
        if not lossless:
            raise error(f"{what}: {_brief(value)} does not fit {self.dtype} exactly; cast it "
                        "yourself or pass allow_input_downcast=True")
        return arr

    def value_zeros(self, shape):
        return np.zeros(shape, dtype=self.dtype)


def _is_python_data(value) -> bool:
    """A Python number, or a list/tuple (of lists) of them: numpy's weakly typed values."""
    if isinstance(value, np.generic):
        return False
    if isinstance(value, (bool, int, float, complex)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_python_data(v) for v in value)
    return False


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def broadcast_shapes(*shapes, where=""):
    """numpy broadcasting of static shapes with unknown (None) sizes.

    A dim that is None stays None unless some other input fixes it to a size > 1; a known
    mismatch (3 against 4) raises at trace time.
    """
    from ..errors import ShapeError

    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = [s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError(f"shapes {' and '.join(_fmt_shape(s) for s in shapes)} cannot be "
                             f"broadcast together{where}")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def _fmt_shape(s):
    return "(" + ", ".join("?" if d is None else str(d) for d in s) + ("," if len(s) == 1 else "") + ")"
