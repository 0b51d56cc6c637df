"""A C step for `AdvancedIncSubtensor` incrementing rows: `inc_subtensor(x[idx], y)` with one
integer index array on the first axis, the gradient of an embedding lookup `W[idx]`.

numpy's `np.add.at` handles repeated indices one element at a time (28 ms for a 3200 x 256
embedding gradient); the kernel adds whole rows, in the order of `idx` as `np.add.at` does,
so the sums round the same.  Every index is checked before anything is written: an index
out of range leaves `x` untouched and runs the `perform`, which raises numpy's IndexError.
Other keys, dtypes and set_subtensor run the `perform`.
"""

from __future__ import annotations

import math

import numpy as np

from ...ops.subtensor import AdvancedIncSubtensor, _np_key

_TYPES = {"float32": "float", "float64": "double"}

_TEMPLATE = r"""
int ts_inc_rows_{t}({T} *restrict out, const {T} *restrict y, const int64_t *restrict idx,
                    int64_t n, int64_t rows, int64_t w) {
  for (int64_t r = 0; r < n; r++)
    if (idx[r] < -rows || idx[r] >= rows) return 1;
  for (int64_t r = 0; r < n; r++) {
    {T} *restrict o = out + (idx[r] < 0 ? idx[r] + rows : idx[r]) * w;
    const {T} *restrict v = y + r * w;
    #pragma omp simd
    for (int64_t j = 0; j < w; j++) o[j] += v[j];
  }
  return 0;
}
"""
_DECL = ("int ts_inc_rows_{t}({T} *out, const {T} *y, const int64_t *idx, int64_t n, "
         "int64_t rows, int64_t w);\n")


def _fill(text, t):
    return text.replace("{T}", _TYPES[t]).replace("{t}", t)


def _parts(node):
    """The kernel's part for the function's module (`linker.EMBEDDED`), or None where the
    node runs `perform`."""
    op = node.op
    dt = node.outputs[0].dtype
    if op.set_instead_of_inc or dt not in _TYPES or node.inputs[0].ndim == 0:
        return None
    return [(f"inc_rows_{dt}", _fill(_TEMPLATE, dt), _fill(_DECL, dt))]


def _inc_rows(node, lib, ffi):
    op = node.op
    dt = node.outputs[0].dtype
    fn = getattr(lib, f"ts_inc_rows_{dt}")
    fb, ctype = ffi.from_buffer, f"{_TYPES[dt]}[]"
    perform = op.perform

    def step(args):
        x, y, *rest = args
        key = _np_key(op.idx_list, rest)
        idx = key[0] if key else None
        if (type(x) is not np.ndarray or x.dtype != dt or not x.flags.c_contiguous
                or not x.size or np.asarray(y).dtype != dt
                or type(idx) is not np.ndarray or idx.dtype.kind not in "iu" or not idx.size
                or any(not isinstance(k, slice) or k != slice(None) for k in key[1:])):
            return list(perform(node, args))
        try:
            y = np.ascontiguousarray(np.broadcast_to(y, idx.shape + x.shape[1:]))
        except ValueError:
            return list(perform(node, args))  # numpy's error
        out = x if op.inplace and x.flags.writeable else x.copy()
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        if fn(fb(ctype, out), fb(ctype, y), fb("int64_t[]", idx), idx.size, x.shape[0],
              math.prod(x.shape[1:])):
            return list(perform(node, args))  # an index out of range: numpy's error
        return [out]

    return step


#: Op type -> (parts(node), make(node, lib, ffi)), as in `rows.EMBEDDED`
EMBEDDED = {AdvancedIncSubtensor: (_parts, _inc_rows)}
