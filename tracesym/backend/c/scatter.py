"""A C step for `AdvancedIncSubtensor` incrementing rows: `inc_subtensor(x[idx], y)` with one
integer index array on the first axis, the gradient of an embedding lookup `W[idx]`.

numpy's `np.add.at` handles repeated indices one element at a time (28 ms for a 3200 x 256
embedding gradient); the kernel adds whole rows, in the order of `idx` as `np.add.at` does,
so the sums round the same.  The values' rows are read where they lie, through the strides
of up to two index dims (a loop's output read backwards is not copied first); only rows that
are not contiguous are.  Every index is checked before anything is written: an index
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
                    int64_t n0, int64_t n1, int64_t ys0, int64_t ys1, int64_t rows, int64_t w) {
  for (int64_t r = 0; r < n0 * n1; r++)
    if (idx[r] < -rows || idx[r] >= rows) return 1;
  for (int64_t i = 0; i < n0; i++)
    for (int64_t j = 0; j < n1; j++) {
      const int64_t r = idx[i * n1 + j];
      {T} *restrict o = out + (r < 0 ? r + rows : r) * w;
      const {T} *restrict v = y + i * ys0 + j * ys1;
      #pragma omp simd
      for (int64_t k = 0; k < w; k++) o[k] += v[k];
    }
  return 0;
}
"""
_DECL = ("int ts_inc_rows_{t}({T} *out, const {T} *y, const int64_t *idx, int64_t n0, "
         "int64_t n1, int64_t ys0, int64_t ys1, int64_t rows, int64_t w);\n")


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
            y = np.broadcast_to(y, idx.shape + x.shape[1:])
        except ValueError:
            return list(perform(node, args))  # numpy's error
        w = math.prod(x.shape[1:])
        steps = _row_steps(y, idx.ndim, w)
        if steps is None:  # rows of y that are not C-contiguous, or indices of 3+ dims
            y = np.ascontiguousarray(y)
            steps = (1, idx.size, 0, w)
        out = x if op.inplace and x.flags.writeable else x.copy()
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        first = y[(slice(0, 1),) * y.ndim]  # its first element: where the steps start
        if fn(fb(ctype, out), fb(ctype, first), fb("int64_t[]", idx), *steps, x.shape[0], w):
            return list(perform(node, args))  # an index out of range: numpy's error
        return [out]

    return step


def _row_steps(y, k, w):
    """(n0, n1, step0, step1) walking y's rows (its first `k` dims, k <= 2) in order, a row
    of `w` elements at y + i * step0 + j * step1 (steps in elements, of any sign: the rows
    of a loop's output read backwards pass as they are), or None where a row is not
    C-contiguous."""
    if k > 2 or not y.size:
        return None
    size = y.itemsize
    inner = np.lib.stride_tricks.as_strided(y, y.shape[k:], y.strides[k:])
    if not inner.flags.c_contiguous or any(s % size for s in y.strides[:k]):
        return None
    shape, strides = (1, 1, *y.shape[:k])[-2:], (0, 0, *y.strides[:k])[-2:]
    return shape[0], shape[1], strides[0] // size, strides[1] // size


#: Op type -> (parts(node), make(node, lib, ffi)), as in `rows.EMBEDDED`
EMBEDDED = {AdvancedIncSubtensor: (_parts, _inc_rows)}
