"""Indexing with numpy's semantics, and Theano's functional updates of an indexed region.

`getitem(x, key)` splits a numpy index into a static part, kept in the Op's `idx_list` prop,
and a symbolic part, the Op's inputs after `x`.  `idx_list` has one entry per position of the
key once `...` is expanded (trailing full slices dropped, so `x[1]` and `x[1, :]` are the same
Op):

  * `None` inserts a new axis;
  * an int picks one position;
  * a tuple `(start, stop, step)` is a slice whose parts are None, ints or `SYM`;
  * `SYM` marks a symbolic input: an integer scalar, an integer index array or a boolean mask;
  * `...` stays only where it stands for no dims between advanced indices, because numpy
    then still treats them as not adjacent.

Basic keys (ints, slices, None) build `Subtensor`, anything with an index array or a mask
`AdvancedSubtensor`.  `set_subtensor(x[key], v)` / `inc_subtensor(x[key], v)` read `x` and the
key back from the indexing node and build `IncSubtensor` / `AdvancedIncSubtensor`, which copy
`x` before writing: graphs are functional, no input is ever modified (the `inplace` rewrite
drops the copy where `x` is an intermediate nobody else reads).
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import IndexingError, ShapeError
from ..trace.graph import Apply, Constant, Variable, as_variable
from ..trace.types import TensorType, broadcast_shapes
from .base import Op

#: the `idx_list` marker of an index part that is a symbolic input
SYM = "?"
_FULL = (None, None, None)



# ---------------------------------------------------------------------------------------------
# parsing a key
# ---------------------------------------------------------------------------------------------

def _is_int_dtype(dtype) -> bool:
    return np.dtype(dtype).kind in "iu"


def _bad_index(pos, what):
    return IndexingError(
        f"index {pos} is {what}: only integers, slices (`:`), None (np.newaxis), `...`, integer "
        "arrays and boolean arrays are valid indices")


def _slice_part(p, pos, which):
    """A slice bound as None, an int, or a symbolic integer scalar."""
    if p is None:
        return None
    if isinstance(p, (int, np.integer)):
        return int(p)
    if isinstance(p, Variable) or isinstance(p, np.ndarray):
        v = as_variable(p)
        if v.ndim == 0 and _is_int_dtype(v.dtype):
            return int(v.data) if isinstance(v, Constant) else v
        raise _bad_index(pos, f"a slice whose {which} is a {v.type.short()} tensor (slice bounds "
                              "must be integer scalars)")
    raise _bad_index(pos, f"a slice whose {which} is {type(p).__name__} {p!r} (slice bounds must "
                          "be integers)")


def _classify(k, pos):
    """(kind, value) for one key entry; kind is none, ellipsis, int, slice or array."""
    if k is None:
        return "none", None
    if k is Ellipsis:
        return "ellipsis", None
    if isinstance(k, slice):
        parts = tuple(_slice_part(p, pos, w) for p, w in zip((k.start, k.stop, k.step),
                                                                ("start", "stop", "step")))
        if parts[2] == 1:
            parts = parts[:2] + (None,)
        if parts[2] == 0:
            raise IndexingError(f"index {pos}: slice step cannot be zero")
        return "slice", parts
    if isinstance(k, (bool, np.bool_)):
        return "array", as_variable(np.asarray(k))  # numpy: a 0-d boolean mask
    if isinstance(k, (int, np.integer)):
        return "int", int(k)
    if isinstance(k, Variable):
        if k.dtype == "bool":
            return "array", k
        if not _is_int_dtype(k.dtype):
            raise _bad_index(pos, f"a {k.type.short()} tensor ({k.label()})")
        if k.ndim == 0:
            return "int", int(k.data) if isinstance(k, Constant) else k
        return "array", k
    if isinstance(k, (list, tuple, np.ndarray)):
        if not isinstance(k, np.ndarray) and _holds_variable(k):
            raise _bad_index(pos, "a list holding symbolic tensors; build one index tensor with "
                                  "ts.stack first")
        arr = np.asarray(k)
        if not isinstance(k, np.ndarray) and arr.size == 0:
            arr = arr.astype(np.int64)  # numpy reads `x[[]]` as an empty integer index
        if arr.dtype.kind == "b":
            return "array", as_variable(arr)
        if not _is_int_dtype(arr.dtype):
            raise _bad_index(pos, f"an array of dtype {arr.dtype}")
        if arr.ndim == 0:
            return "int", int(arr)
        return "array", as_variable(arr)
    if isinstance(k, (float, complex, np.floating, np.complexfloating)):
        raise _bad_index(pos, f"the {type(k).__name__} {k!r}; cast it with int()")
    raise _bad_index(pos, f"of type {type(k).__name__}")


def _holds_variable(seq) -> bool:
    return any(isinstance(e, Variable) or isinstance(e, (list, tuple)) and _holds_variable(e)
               for e in seq)


def _consumed(kind, value):
    if kind in ("none", "ellipsis"):
        return 0
    if kind == "array" and value.dtype == "bool":
        return value.ndim
    return 1


def parse_key(x, key):
    """`(idx_list, inputs, advanced)` for `x[key]`: the static index, the symbolic inputs in
    order, and whether the key needs advanced indexing."""
    if not isinstance(key, tuple):
        key = (key,)
    items = [_classify(k, pos) for pos, k in enumerate(key)]
    n_ell = sum(kind == "ellipsis" for kind, _ in items)
    if n_ell > 1:
        raise IndexingError("an index can only have a single ellipsis ('...')")
    used = sum(_consumed(*it) for it in items)
    if used > x.ndim:
        raise IndexingError(f"too many indices for a {x.ndim}-d tensor ({x.type.short()}): "
                            f"{used} were indexed")
    advanced = any(kind == "array" for kind, _ in items)
    idx_list, inputs = [], []
    for kind, value in items:
        if kind == "ellipsis":
            # an empty `...` still separates advanced indices (numpy), so it stays
            idx_list.extend([_FULL] * (x.ndim - used) if x.ndim > used or not advanced else [...])
        elif kind == "none":
            idx_list.append(None)
        elif kind == "slice":
            parts = []
            for p in value:
                if isinstance(p, Variable):
                    inputs.append(p)
                    p = SYM
                parts.append(p)
            idx_list.append(tuple(parts))
        elif isinstance(value, Variable):
            inputs.append(value)
            idx_list.append(SYM)
        else:
            idx_list.append(value)
    while idx_list and idx_list[-1] == _FULL and Ellipsis not in idx_list:
        idx_list.pop()
    return tuple(idx_list), inputs, advanced


def _resolve(idx_list, values):
    """The index with each `SYM` replaced by the next of `values` (variables or arrays)."""
    it = iter(values)
    out = []
    for e in idx_list:
        if type(e) is tuple:
            out.append(slice(*(next(it) if isinstance(p, str) else p for p in e)))
        elif isinstance(e, str):
            out.append(next(it))
        else:
            out.append(e)
    if next(it, None) is not None:
        raise ValueError("more index inputs than the index has symbolic parts")
    return out


def _np_key(idx_list, values) -> tuple:
    """The numpy key for concrete index values (scalars as ints, arrays as they are)."""
    key = []
    for e in _resolve(idx_list, values):
        if isinstance(e, slice):
            e = slice(*(None if p is None else int(p) for p in (e.start, e.stop, e.step)))
        elif isinstance(e, np.ndarray) and e.ndim == 0 and e.dtype.kind != "b":
            e = int(e)
        key.append(e)
    return tuple(key)


@functools.lru_cache(maxsize=None)
def _basic_key(idx_list):
    """`_np_key` of a basic index (ints, slices, None, Ellipsis; every symbolic part a
    scalar) as a function of the index values, generated once per index: a slice `x[:n]`
    taken every call costs a tuple, not a walk of the index."""
    parts, n = [], 0
    for e in idx_list:
        if type(e) is tuple:
            bounds = []
            for p in e:
                bounds.append(f"int(v[{n}])" if isinstance(p, str) else repr(p))
                n += isinstance(p, str)
            parts.append(f"slice({', '.join(bounds)})")
        elif isinstance(e, str):
            parts.append(f"int(v[{n}])")
            n += 1
        else:
            parts.append(repr(e))
    return eval(f"lambda v: ({''.join(p + ', ' for p in parts)})")  # noqa: S307 (our text)


def _n_sym(idx_list) -> int:
    return sum(sum(isinstance(p, str) for p in e) if type(e) is tuple else isinstance(e, str)
               for e in idx_list)


def fmt_index(idx_list) -> str:
    """numpy-like text of an index: `1, ?:, None, ?` (`?` is a symbolic part)."""
    def part(p):
        return "" if p is None else str(p)

    out = []
    for e in idx_list:
        if type(e) is tuple:
            s = f"{part(e[0])}:{part(e[1])}" + (f":{part(e[2])}" if e[2] is not None else "")
            out.append(s)
        else:
            out.append("..." if e is Ellipsis else str(e))
    return ", ".join(out)


# ---------------------------------------------------------------------------------------------
# the layout and static shape of an indexing result
# ---------------------------------------------------------------------------------------------

def _is_array(e) -> bool:
    return isinstance(e, Variable) and (e.ndim > 0 or e.dtype == "bool")


def layout(ndim, entries):
    """numpy's layout of `x[entries]` for an `ndim`-d x.

    Returns `(dims, adv)`: `dims` lists the output dims in order, each `("new",)` for None,
    `("slice", d, s)` for dim d of x cut by slice s (or kept whole), or `("adv",)` for the block
    of broadcast advanced indices; `adv` lists `(entry, d)` for each advanced index and the
    first dim of x it consumes.  With any index array present, integer indices are advanced
    too; advanced indices that are not adjacent put their block first (numpy's rule)."""
    advanced = any(_is_array(e) for e in entries)
    dims, adv, adv_pos = [], [], []
    block_at = None
    d = 0
    for pos, e in enumerate(entries):
        if e is None:
            dims.append(("new",))
        elif e is Ellipsis:
            continue
        elif isinstance(e, slice):
            dims.append(("slice", d, e))
            d += 1
        elif advanced:
            if block_at is None:
                block_at = len(dims)
                dims.append(("adv",))
            adv.append((e, d))
            adv_pos.append(pos)
            d += e.ndim if isinstance(e, Variable) and e.dtype == "bool" else 1
        else:
            d += 1
    dims.extend(("slice", k, slice(None)) for k in range(d, ndim))
    if adv_pos and adv_pos != list(range(adv_pos[0], adv_pos[-1] + 1)) and block_at != 0:
        dims.insert(0, dims.pop(block_at))
    return dims, adv


def _slice_len(n, s):
    """Static length of slice `s` of a dim of static size `n` (None when unknown)."""
    parts = (s.start, s.stop, s.step)
    if n == 0:
        return 0
    if n is not None and not any(isinstance(p, Variable) for p in parts):
        return len(range(*s.indices(n)))
    if s.start is None and s.stop is None and s.step in (None, -1):
        return n
    return None


def _check_int(i, n, d):
    if n is not None and not -n <= i < n:
        raise IndexingError(f"index {i} is out of bounds for axis {d} with size {n}")


def _adv_shape(e, d, xshape):
    """Static shape an advanced index contributes to the broadcast, checking what it can."""
    if isinstance(e, int):
        _check_int(e, xshape[d], d)
        return ()
    if e.dtype == "bool":
        for k, (m, n) in enumerate(zip(e.type.shape, xshape[d:d + e.ndim])):
            if m is not None and n is not None and m != n:
                raise IndexingError(
                    f"boolean index did not match indexed tensor along axis {d + k}; size of axis "
                    f"is {n} but size of corresponding boolean axis is {m}")
        if isinstance(e, Constant):
            return (int(np.count_nonzero(e.data)),)
        return (0 if 0 in e.type.shape else None,)
    return e.type.shape


def _check_array_bounds(e, d, n):
    """Out-of-range entries of a constant index array (numpy checks them only when the
    broadcast index is not empty)."""
    if isinstance(e, Constant) and e.dtype != "bool" and e.ndim and n is not None:
        lo, hi = int(e.data.min()), int(e.data.max())
        if lo < -n or hi >= n:
            _check_int(lo if lo < -n else hi, n, d)


def index_static_shape(x, entries):
    """Static shape of `x[entries]` (entries from `_resolve` over variables)."""
    xshape = x.type.shape
    dims, adv = layout(x.ndim, entries)
    if not adv:
        d = 0
        for e in entries:
            if isinstance(e, int):
                _check_int(e, xshape[d], d)
            if e is not None and e is not Ellipsis:
                d += 1
    adv_shape = ()
    if adv:
        shapes = [_adv_shape(e, d, xshape) for e, d in adv]
        try:
            adv_shape = broadcast_shapes(*shapes)
        except ShapeError:
            raise IndexingError("shape mismatch: indexing arrays could not be broadcast together "
                                f"with shapes {' '.join(map(str, shapes))}") from None
        if None not in adv_shape and 0 not in adv_shape:
            for e, d in adv:
                _check_array_bounds(e, d, xshape[d])
    out = []
    for dim in dims:
        if dim[0] == "new":
            out.append(1)
        elif dim[0] == "slice":
            out.append(_slice_len(xshape[dim[1]], dim[2]))
        else:
            out.extend(adv_shape)
    return tuple(out)


def _check_inputs(op, x, inputs, allow_arrays):
    """Each symbolic part is of a kind its position allows."""
    if len(inputs) != _n_sym(op.idx_list):
        raise TypeError(f"{op} takes {_n_sym(op.idx_list)} index input(s), got {len(inputs)}")
    it = iter(inputs)
    for pos, e in enumerate(op.idx_list):
        if type(e) is tuple:
            for p in e:
                if isinstance(p, str):
                    v = next(it)
                    if v.ndim != 0 or not _is_int_dtype(v.dtype):
                        raise _bad_index(pos, f"a slice with a {v.type.short()} bound (slice "
                                              "bounds must be integer scalars)")
        elif isinstance(e, str):
            v = next(it)
            if v.dtype != "bool" and not _is_int_dtype(v.dtype):
                raise _bad_index(pos, f"a {v.type.short()} tensor ({v.label()})")
            if not allow_arrays and (v.ndim or v.dtype == "bool"):
                raise _bad_index(pos, f"an index array ({v.type.short()}) in a basic index; use "
                                      "AdvancedSubtensor")
    entries = _resolve(op.idx_list, inputs)
    used = sum(0 if e is None or e is Ellipsis else
               e.ndim if isinstance(e, Variable) and e.dtype == "bool" else 1 for e in entries)
    if used > x.ndim:
        raise IndexingError(f"too many indices for a {x.ndim}-d tensor ({x.type.short()})")
    return entries


# ---------------------------------------------------------------------------------------------
# Ops
# ---------------------------------------------------------------------------------------------

class _IndexOp(Op):
    """Shared parts of the indexing Ops: the `idx_list` prop and its printing."""

    abstract = True
    __props__ = ("idx_list",)
    advanced = False

    def __init__(self, idx_list):
        self.idx_list = tuple(idx_list)

    def __str__(self):
        return f"{type(self).__name__}{{{fmt_index(self.idx_list)}}}"

    __repr__ = __str__

    def _entries(self, x, inputs):
        return _check_inputs(self, x, inputs, self.advanced)


class _GetOp(_IndexOp):
    """`x[key]`: the parts Subtensor and AdvancedSubtensor share."""

    abstract = True

    def make_node(self, x, *inputs):
        x = as_variable(x)
        inputs = [as_variable(v) for v in inputs]
        shape = index_static_shape(x, self._entries(x, inputs))
        return Apply(self, [x, *inputs], [TensorType(x.dtype, shape).make_variable()])

    def perform(self, node, inputs):
        x, *rest = inputs
        if not rest:  # a constant key (a gate's columns in a loop step): made once
            key = self.__dict__.get("_key")
            if key is None:
                key = self._key = _np_key(self.idx_list, ())
            return (np.asarray(x[key]),)
        if not self.advanced:
            return (np.asarray(x[_basic_key(self.idx_list)(rest)]),)
        return (np.asarray(x[_np_key(self.idx_list, rest)]),)

    def L_op(self, inputs, outputs, output_grads):
        x, *rest = inputs
        (gz,) = output_grads
        if gz is None or x.dtype[0] not in "fc":
            return [None] * len(inputs)
        from .elemwise import zeros_like

        inc = AdvancedIncSubtensor if self.advanced else IncSubtensor
        return [inc(self.idx_list)(zeros_like(x), gz, *rest)] + [None] * len(rest)

    def infer_shape(self, node, input_shapes):
        return [index_shape_of(node, input_shapes)]


class Subtensor(_GetOp):
    """`x[key]` for a basic key (ints, slices with constant or symbolic bounds, None): a view
    of x in numpy."""

    view_map = {0: [0]}


class AdvancedSubtensor(_GetOp):
    """`x[key]` for a key holding integer index arrays or boolean masks, mixed with anything
    basic (numpy's advanced indexing: always a copy).  The gradient accumulates over repeated
    indices."""

    advanced = True

    def make_node(self, x, *inputs):
        node = super().make_node(x, *inputs)
        if not any(_is_array(v) for v in node.inputs[1:]):
            raise TypeError(f"{self} has no index array; use Subtensor")
        return node


def _const(n):
    return as_variable(np.int64(n))


def index_shape_of(node, input_shapes):
    """Symbolic shape of `x[idx]` for a node whose inputs are x and the index parts, as int64
    scalars: constants where the output's static shape knows a size, else from x's shape,
    slice lengths, index shapes and mask counts."""
    from .elemwise import cast, eq, where
    from .reduce import sum as _sum

    x, *inputs = node.inputs
    xshape = input_shapes[0]
    shape_of = {id(v): shp for v, shp in zip(inputs, input_shapes[1:])}
    entries = _resolve(node.op.idx_list, inputs)
    dims, adv = layout(x.ndim, entries)
    adv_dims = []
    if adv:
        shapes = []  # per index: (static size, symbolic size) per dim
        for e, _ in adv:
            if isinstance(e, int) or e.ndim == 0 and e.dtype != "bool":
                shapes.append(())
            elif e.dtype == "bool":
                shapes.append(((None, cast(_sum(e), "int64")),))
            else:
                shapes.append(tuple(zip(e.type.shape, shape_of[id(e)])))
        nd = max(len(s) for s in shapes)
        for k in range(nd):
            cands = [s[k - nd + len(s)] for s in shapes if k - nd + len(s) >= 0]
            cands = [sym for st, sym in cands if st != 1]
            r = cands[0] if cands else _const(1)
            for c in cands[1:]:
                r = where(eq(r, 1), c, r)  # broadcasting: 1 gives way, also to 0
            adv_dims.append(r)
    out = []
    for dim in dims:
        if dim[0] == "new":
            out.append(None)
        elif dim[0] == "adv":
            out.extend(adv_dims)
        else:
            d, s = dim[1], dim[2]
            if s.start is None and s.stop is None and s.step in (None, -1):
                out.append(xshape[d])
            else:
                parts = (s.start, s.stop, s.step)
                sym = [p for p in parts if isinstance(p, Variable)]
                idx = tuple(SYM if isinstance(p, Variable) else p for p in parts)
                out.append(SliceLength(idx)(xshape[d], *sym))
    static = node.outputs[0].type.shape
    return tuple(_const(st) if st is not None else v for st, v in zip(static, out))


class SliceLength(Op):
    """The length of a slice of a dim of size `n` (numpy's rules, also for negative steps and
    out-of-range bounds): the shape of a slice with symbolic bounds or size."""

    __props__ = ("parts",)
    differentiable = False

    def __init__(self, parts):
        self.parts = tuple(parts)

    def make_node(self, n, *sym):
        n = as_variable(n)
        sym = [as_variable(v) for v in sym]
        for v in (n, *sym):
            if v.ndim != 0 or not _is_int_dtype(v.dtype):
                raise TypeError(f"{self}: expected integer scalars, got {v.type.short()}")
        if len(sym) != sum(isinstance(p, str) for p in self.parts):
            raise TypeError(f"{self}: wrong number of symbolic bounds")
        return Apply(self, [n, *sym], [TensorType("int64", ()).make_variable()])

    def perform(self, node, inputs):
        n, *sym = inputs
        it = iter(sym)
        s = slice(*(int(next(it)) if isinstance(p, str) else p for p in self.parts))
        return (np.asarray(len(range(*s.indices(int(n)))), dtype=np.int64),)

    def L_op(self, inputs, outputs, output_grads):
        return [None] * len(inputs)

    def infer_shape(self, node, input_shapes):
        return [()]


def _has_int_arrays(inputs) -> bool:
    """True when an integer index array may repeat a position (then writes can collide)."""
    return any(v.ndim > 0 and v.dtype != "bool" for v in inputs)


class _SetOp(_IndexOp):
    """A copy of `x` with `x[key]` replaced by or incremented by `y`: the parts IncSubtensor
    and AdvancedIncSubtensor share.  With `inplace` (chosen only by the `inplace` rewrite, once
    it has proved nothing else reads `x`) the write goes into `x`'s own buffer instead of a
    copy; a read-only `x` is still copied."""

    abstract = True
    __props__ = ("idx_list", "set_instead_of_inc", "inplace")

    def __init__(self, idx_list, set_instead_of_inc=False, inplace=False):
        super().__init__(idx_list)
        self.set_instead_of_inc = bool(set_instead_of_inc)
        self.inplace = bool(inplace)
        if self.inplace:
            self.destroy_map = {0: [0]}

    def __str__(self):
        verb = "set" if self.set_instead_of_inc else "inc"
        mark = ", inplace" if self.inplace else ""
        return f"{type(self).__name__}{{{verb}, {fmt_index(self.idx_list)}{mark}}}"

    __repr__ = __str__

    def make_node(self, x, y, *inputs):
        x, y = as_variable(x), as_variable(y)
        inputs = [as_variable(v) for v in inputs]
        target = index_static_shape(x, self._entries(x, inputs))
        what = "set_subtensor" if self.set_instead_of_inc else "inc_subtensor"
        if not np.can_cast(y.dtype, x.dtype, "same_kind"):
            raise TypeError(f"{what}: cannot write {y.dtype} values into a {x.dtype} tensor without "
                            f"losing information; cast them with .astype('{x.dtype}')")
        if y.ndim > len(target):
            raise ShapeError(f"{what}: a value of {y.ndim} dims ({y.type.short()}) cannot be "
                             f"broadcast to the indexed shape of {len(target)} dims")
        try:
            broadcast_shapes(target, y.type.shape)
        except ShapeError:
            raise ShapeError(f"{what}: a value of shape {y.type.short()} cannot be broadcast to "
                             f"the indexed shape {TensorType(x.dtype, target).short()}") from None
        for a, b in zip(reversed(target), reversed(y.type.shape)):
            if a is not None and b is not None and b != 1 and a != b:
                raise ShapeError(f"{what}: value shape {y.type.short()} does not fit the indexed "
                                 f"shape {TensorType(x.dtype, target).short()}")
        return Apply(self, [x, y, *inputs], [x.type.make_variable()])

    def perform(self, node, inputs):
        x, y, *rest = inputs
        out = x if self.inplace and type(x) is np.ndarray and x.flags.writeable else x.copy()
        key = _np_key(self.idx_list, rest) if self.advanced else _basic_key(self.idx_list)(rest)
        if self.set_instead_of_inc:
            out[key] = y
        elif self.advanced and _has_int_arrays(node.inputs[2:]):
            np.add.at(out, key, y)
        else:
            out[key] += y
        return (out,)

    def L_op(self, inputs, outputs, output_grads):
        x, y, *rest = inputs
        (gz,) = output_grads
        if gz is None:
            return [None] * len(inputs)
        from .elemwise import cast, sum_to, where

        gx = gy = None
        sub = AdvancedSubtensor if self.advanced else Subtensor
        if x.dtype[0] in "fc":
            gx = gz
            if self.set_instead_of_inc:
                gx = type(self)(self.idx_list, True)(gz, np.zeros((), gz.dtype), *rest)
        if y.dtype[0] in "fc":
            g = sub(self.idx_list)(gz, *rest)
            if self.set_instead_of_inc and self.advanced and _has_int_arrays(rest):
                g = where(LastWriteMask(self.idx_list)(x, *rest), g, 0)
            gy = cast(sum_to(g, y), y.dtype)
        return [gx, gy] + [None] * len(rest)

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]


class IncSubtensor(_SetOp):
    """A copy of `x` with `x[key]` replaced by (`set_instead_of_inc`) or incremented by `y`,
    broadcast to the indexed shape; basic keys."""


class AdvancedIncSubtensor(_SetOp):
    """`IncSubtensor` for a key with index arrays or masks.  Incrementing accumulates over
    repeated indices (`np.add.at`); setting keeps the last write, as numpy's assignment."""

    advanced = True


class LastWriteMask(_IndexOp):
    """For each element of `x[key]`, whether an assignment `x[key] = v` keeps it: False where a
    later duplicate index overwrites the same position.  The gradient of a set with repeated
    indices flows only to the values that land."""

    differentiable = False
    advanced = True

    def make_node(self, x, *inputs):
        x = as_variable(x)
        inputs = [as_variable(v) for v in inputs]
        shape = index_static_shape(x, self._entries(x, inputs))
        return Apply(self, [x, *inputs], [TensorType("bool", shape).make_variable()])

    def perform(self, node, inputs):
        x, *rest = inputs
        key = _np_key(self.idx_list, rest)
        shape = np.empty(x.shape, dtype=np.bool_)[key].shape
        ids = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
        slots = np.full(x.shape, -1, dtype=np.int64)
        slots[key] = ids
        return (slots[key] == ids,)

    def L_op(self, inputs, outputs, output_grads):
        return [None] * len(inputs)

    def infer_shape(self, node, input_shapes):
        return [index_shape_of(node, input_shapes)]


# ---------------------------------------------------------------------------------------------
# user-facing functions
# ---------------------------------------------------------------------------------------------

def getitem(x, key):
    """`x[key]` with numpy's semantics: ints (negative too), slices with constant or symbolic
    integer bounds, None, `...`, integer index arrays (numpy arrays, lists, int tensors) and
    boolean masks.  `x.shape[i]` is a constant where the static shape knows it."""
    from .shape import Shape, shape_i

    x = as_variable(x)
    if (x.owner is not None and isinstance(x.owner.op, Shape) and isinstance(key, (int, np.integer))
            and not isinstance(key, (bool, np.bool_))):
        n = x.owner.inputs[0].ndim
        if not -n <= key < n:
            raise IndexingError(f"index {key} is out of bounds for the shape of a {n}-d tensor")
        return shape_i(x.owner.inputs[0], int(key))
    idx_list, inputs, advanced = parse_key(x, key)
    op = AdvancedSubtensor(idx_list) if advanced else Subtensor(idx_list)
    return op(x, *inputs)


def _update(indexed, value, set_instead_of_inc, what):
    from .elemwise import promote_inputs

    node = getattr(indexed, "owner", None)
    if node is None or type(node.op) not in (Subtensor, AdvancedSubtensor):
        raise TypeError(f"{what}: the first argument must be an indexing expression such as "
                        f"x[2:5] or x[idx], got {indexed!r}")
    x, *rest = node.inputs
    if isinstance(value, Variable):
        value = as_variable(value)
    else:
        value = promote_inputs(x, value)[1]
    inc = AdvancedIncSubtensor if node.op.advanced else IncSubtensor
    return inc(node.op.idx_list, set_instead_of_inc)(x, value, *rest)


def set_subtensor(indexed, value):
    """A copy of `x` with `x[key]` replaced by `value` (broadcast), given `indexed = x[key]`:
    `ts.set_subtensor(x[:, 0], 0)`.  With repeated indices the last write wins, as in numpy."""
    return _update(indexed, value, True, "set_subtensor")


def inc_subtensor(indexed, value):
    """A copy of `x` with `value` (broadcast) added to `x[key]`, given `indexed = x[key]`.
    Repeated indices accumulate, like `np.add.at`."""
    return _update(indexed, value, False, "inc_subtensor")


__all__ = ["Subtensor", "AdvancedSubtensor", "IncSubtensor",
           "AdvancedIncSubtensor", "SliceLength", "LastWriteMask", "getitem", "set_subtensor",
           "inc_subtensor"]
