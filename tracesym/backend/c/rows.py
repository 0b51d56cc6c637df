"""C steps for row-wise Ops over the last axis: `Softmax`, `LogSoftmax`,
`SoftmaxCrossEntropy` and its gradient (ops/nnet.py), and argmax / argmin (`ArgReduce`,
ops/reduce.py); and a float sum over the leading axes, which adds whole rows (`Reduce`, where
the generated reduction kernel would walk columns).

Per row the maximum, x - max, exp of that (one SIMD loop over the whole array, so short rows
vectorize too), its sum accumulated in double, then exp(x - max) / sum, (x - max) - log(sum),
the cross-entropy (max - x[label]) + log(sum), or its gradient dy * (exp(x - max) / sum -
one_hot(label)): the formulas of the Ops' `perform`, with work space kept between calls
instead of numpy's temporaries.  Float32 and float64, the output of the input's dtype (argmax / argmin: also
int32, int64 and uint8; numpy's rule, the first NaN or else the first extreme); other dtypes,
other axes and empty arrays run the `perform`, which also raises the error for a label out
of range (the kernel reports the row).
The loops are serial (an OpenMP `parallel for simd` made the exp loop 5x slower when it
ran on one thread).  Each kernel of a dtype is a part (`parts`) rendered into the module of
the function that uses it: no module, wrapper and link of their own to compile cold, and only
the kernels the function calls.
"""

from __future__ import annotations

import functools

import numpy as np

from ...ops.nnet import LogSoftmax, Softmax, SoftmaxCrossEntropy, SoftmaxCrossEntropyGrad
from ...ops.reduce import ArgReduce, Reduce

_DECLS = {
    "softmax": "void ts_softmax_rows_{t}({T} *x, {T} *out, {T} *mx, {T} *w, int64_t n, int64_t k, "
               "int logsm);\n",
    "sce": "int64_t ts_sce_rows_{t}({T} *x, int64_t *labels, {T} *out, {T} *mx, {T} *w, int64_t n, "
           "int64_t k);\n",
    "sce_grad": "int64_t ts_sce_grad_rows_{t}({T} *dy, int64_t dstep, {T} *x, int64_t *labels, "
                "{T} *out, {T} *mx, int64_t n, int64_t k);\n",
    "lead_sum": "void ts_lead_sum_{t}({T} *x, {T} *out, double *acc, int64_t n, int64_t k);\n",
}

# Flat passes, so that exp runs as one SIMD loop over all n*k elements (libmvec) even when
# rows are short (W3's are 10 wide): o = x - rowmax (mx[i] = the max), e = exp(o), then per
# row the sum of e and the result.  A row's max and sum are plain loops for rows shorter
# than SHORT (a vector reduction's set-up costs more there), vector reductions otherwise.
# The max ignores NaN (`>` is false): a NaN makes the row's sum NaN, so the row's results
# are NaN either way, as numpy's max propagating it gives.  The helpers the kernels share
# are compiled once in each compile unit that holds a kernel of their dtype.
_HELPERS = r"""
#ifndef TS_ROWS_{t}
#define TS_ROWS_{t}
static inline {T} ts_rowmax_{t}(const {T} *restrict r, int64_t k) {
  {T} m = r[0];
  if (k < SHORT) {
    for (int64_t j = 1; j < k; j++) m = r[j] > m ? r[j] : m;
  } else {
    #pragma omp simd reduction(max:m)
    for (int64_t j = 1; j < k; j++) m = r[j] > m ? r[j] : m;
  }
  return m;
}

static void ts_shift_{t}(const {T} *restrict x, {T} *restrict o, {T} *restrict mx,
                         int64_t n, int64_t k) {
  if (k < SHORT) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {  /* four rows at once: four chains of compares, not one */
      const {T} *r = x + i * k;
      {T} m0 = r[0], m1 = r[k], m2 = r[2 * k], m3 = r[3 * k];
      for (int64_t j = 1; j < k; j++) {
        m0 = r[j] > m0 ? r[j] : m0;
        m1 = r[k + j] > m1 ? r[k + j] : m1;
        m2 = r[2 * k + j] > m2 ? r[2 * k + j] : m2;
        m3 = r[3 * k + j] > m3 ? r[3 * k + j] : m3;
      }
      mx[i] = m0, mx[i + 1] = m1, mx[i + 2] = m2, mx[i + 3] = m3;
    }
    for (; i < n; i++) mx[i] = ts_rowmax_{t}(x + i * k, k);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < k; j++) o[i * k + j] = x[i * k + j] - mx[i];
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    const {T} *r = x + i * k;
    const {T} m = mx[i] = ts_rowmax_{t}(r, k);
    {T} *q = o + i * k;
    #pragma omp simd
    for (int64_t j = 0; j < k; j++) q[j] = r[j] - m;
  }
}

static void ts_exp_{t}(const {T} *a, {T} *e, int64_t len) {
  #pragma omp simd
  for (int64_t i = 0; i < len; i++) e[i] = {exp}(a[i]);
}

static inline double ts_rowsum_{t}(const {T} *restrict e, int64_t k) {
  double s = 0;
  if (k < SHORT) {
    for (int64_t j = 0; j < k; j++) s += e[j];
  } else {
    #pragma omp simd reduction(+:s)
    for (int64_t j = 0; j < k; j++) s += e[j];
  }
  return s;
}

/* each row's sum, in double, rounded to sums[i]; short rows four at once (each row still
   added in its own order) */
static void ts_rowsums_{t}(const {T} *restrict e, {T} *restrict sums, int64_t n, int64_t k) {
  int64_t i = 0;
  if (k < SHORT)
    for (; i + 4 <= n; i += 4) {
      const {T} *r = e + i * k;
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int64_t j = 0; j < k; j++) {
        s0 += r[j];
        s1 += r[k + j];
        s2 += r[2 * k + j];
        s3 += r[3 * k + j];
      }
      sums[i] = ({T})s0, sums[i + 1] = ({T})s1, sums[i + 2] = ({T})s2, sums[i + 3] = ({T})s3;
    }
  for (; i < n; i++) sums[i] = ({T})ts_rowsum_{t}(e + i * k, k);
}

static int64_t ts_bad_label_{t}(const int64_t *labels, int64_t n, int64_t k) {
  for (int64_t i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= k) return i + 1;
  return 0;
}
#endif
"""
#: kernel name -> its C: one part each, so a function compiles only the kernels it uses
_KERNELS = {
    "softmax": r"""
/* softmax (logsm = 0) or logsoftmax (logsm = 1) of n rows of k elements; mx (n) and
   w (n * k, logsoftmax only) are work space */
void ts_softmax_rows_{t}({T} *x, {T} *out, {T} *mx, {T} *w, int64_t n, int64_t k, int logsm) {
  ts_shift_{t}(x, out, mx, n, k);
  ts_exp_{t}(out, logsm ? w : out, n * k);
  ts_rowsums_{t}(logsm ? w : out, mx, n, k);  /* the maxima are spent: mx holds the sums */
  for (int64_t i = 0; i < n; i++) {
    {T} *restrict o = out + i * k;
    if (logsm) {
      const {T} ls = {log}(mx[i]);
      #pragma omp simd
      for (int64_t j = 0; j < k; j++) o[j] = o[j] - ls;
    } else {
      const {T} d = mx[i];
      #pragma omp simd
      for (int64_t j = 0; j < k; j++) o[j] = o[j] / d;
    }
  }
}
""",
    "sce": r"""
/* -log(softmax(row)[label]) per row, mx (n) and w (n * k) work space; 1 + the first row
   whose label is out of [0, k) */
int64_t ts_sce_rows_{t}({T} *x, int64_t *labels, {T} *out, {T} *mx, {T} *w, int64_t n, int64_t k) {
  const int64_t bad = ts_bad_label_{t}(labels, n, k);
  if (bad) return bad;
  ts_shift_{t}(x, w, mx, n, k);
  ts_exp_{t}(w, w, n * k);
  ts_rowsums_{t}(w, out, n, k);
  #pragma omp simd
  for (int64_t i = 0; i < n; i++) out[i] = (mx[i] - x[i * k + labels[i]]) + {log}(out[i]);
  return 0;
}
""",
    "lead_sum": r"""
/* the sum of n rows of k elements, in double: whole rows added in memory order */
void ts_lead_sum_{t}({T} *x, {T} *out, double *acc, int64_t n, int64_t k) {
  for (int64_t j = 0; j < k; j++) acc[j] = 0;
  for (int64_t i = 0; i < n; i++) {
    const {T} *restrict r = x + i * k;
    #pragma omp simd
    for (int64_t j = 0; j < k; j++) acc[j] += r[j];
  }
  for (int64_t j = 0; j < k; j++) out[j] = ({T})acc[j];
}
""",
    "sce_grad": r"""
/* dy[i * dstep] * (softmax(row i) - one_hot(label i)) per row, mx (n) work space; 1 + the
   first row whose label is out of [0, k) */
int64_t ts_sce_grad_rows_{t}({T} *dy, int64_t dstep, {T} *x, int64_t *labels, {T} *out, {T} *mx,
                             int64_t n, int64_t k) {
  const int64_t bad = ts_bad_label_{t}(labels, n, k);
  if (bad) return bad;
  ts_shift_{t}(x, out, mx, n, k);
  ts_exp_{t}(out, out, n * k);
  ts_rowsums_{t}(out, mx, n, k);  /* the maxima are spent: mx holds the sums */
  for (int64_t i = 0; i < n; i++) {
    {T} *restrict o = out + i * k;
    const {T} d = dy[i * dstep], s = mx[i];
    const int64_t y = labels[i];
    #pragma omp simd
    for (int64_t j = 0; j < k; j++) o[j] = d * (o[j] / s - ({T})(j == y));
  }
  return 0;
}
""",
}

_ARG_DECL = "void ts_argreduce_rows_{t}({T} *x, int64_t *out, int64_t n, int64_t k, int mn);\n"

# numpy's rule: the first NaN wins, else the first extreme (`v != v` is false for integers)
_ARG_TEMPLATE = r"""
void ts_argreduce_rows_{t}({T} *x, int64_t *out, int64_t n, int64_t k, int mn) {
  for (int64_t i = 0; i < n; i++) {
    const {T} *r = x + i * k;
    {T} m = r[0];
    int64_t b = 0;
    if (m == m)
      for (int64_t j = 1; j < k; j++) {
        const {T} v = r[j];
        if (v != v) { b = j; break; }
        if (mn ? v < m : v > m) { m = v; b = j; }
      }
    out[i] = b;
  }
}
"""

_TYPES = {"float32": ("float", "expf", "logf"), "float64": ("double", "exp", "log")}
#: rows shorter than this take plain loops for their max and sum (see _TEMPLATE)
SHORT = 32
_ARG_TYPES = {**_TYPES, "int32": ("int32_t",), "int64": ("int64_t",), "uint8": ("uint8_t",)}


def _fill(text, t):
    T, *fns = _ARG_TYPES[t]
    text = text.replace("{T}", T).replace("{t}", t)
    return text.replace("{exp}", fns[0]).replace("{log}", fns[1]) if fns else text


@functools.lru_cache(maxsize=None)
def parts(dt, kernel) -> tuple:
    """The (key, C source, declarations) part of row kernel `kernel` ("arg": argmax /
    argmin, any of `_ARG_TYPES`; else one of `_KERNELS`, floats) of dtype `dt`, rendered into
    the module of the function that uses it."""
    if kernel == "arg":
        return ((f"rows_arg_{dt}", _fill(_ARG_TEMPLATE, dt), _fill(_ARG_DECL, dt)),)
    # -O2: their long loops are `omp simd` ones, vectorised as at -O3, and gcc takes a quarter
    # less time over them (W3 cold 0.46 -> 0.43 s, the same step time)
    src = (f"#define SHORT {SHORT}\n#pragma GCC push_options\n#pragma GCC optimize(\"O2\")\n"
           + _fill(_HELPERS + _KERNELS[kernel], dt) + "#pragma GCC pop_options\n")
    return ((f"rows_{kernel}_{dt}", src, _fill(_DECLS[kernel], dt)),)


class _Work:
    """A step's work space, kept between calls (as the linker's private buffers are: a
    compiled function is not reentrant): `work(n, m)` -> arrays of n and m elements."""

    def __init__(self, dtype):
        self.dtype, self.bufs = dtype, (np.empty(0, dtype), np.empty(0, dtype))

    def __call__(self, n, m):
        a, b = self.bufs
        if a.size < n or b.size < m:
            a, b = self.bufs = (np.empty(max(n, a.size), self.dtype),
                                np.empty(max(m, b.size), self.dtype))
        return a, b


def _float_dtype(node):
    """The dtype of the node's float input and output, when they agree; else None."""
    dt = node.outputs[0].dtype
    x = node.inputs[0]
    if dt not in _TYPES or x.dtype != dt or x.ndim == 0:
        return None
    return dt


def _last_axis(node):
    return _last_axis_of(node.op.axis, node.inputs[0])


def _last_axis_of(axis, x):
    return axis == (x.ndim - 1,) or axis == x.ndim - 1


def _rows_dtype(node):
    """The dtype of a softmax-like node's kernel, or None where it runs `perform`."""
    dt = _float_dtype(node)
    return dt if dt is not None and _last_axis(node) else None


def _softmax(node, lib, ffi):
    dt = _rows_dtype(node)
    fn = getattr(lib, f"ts_softmax_rows_{dt}")
    fb, ctype = ffi.from_buffer, f"{_TYPES[dt][0]}[]"
    log = int(isinstance(node.op, LogSoftmax))
    perform = node.op.perform
    nd = node.inputs[0].ndim
    work = _Work(dt)

    def step(args):
        x = args[0]
        if type(x) is not np.ndarray or x.dtype != dt or x.ndim != nd or not x.size:
            return list(perform(node, args))
        x = np.ascontiguousarray(x)
        out = np.empty(x.shape, dt)
        k = x.shape[-1]
        mx, w = work(x.size // k, x.size if log else 1)
        fn(fb(ctype, x), fb(ctype, out), fb(ctype, mx), fb(ctype, w), x.size // k, k, log)
        return [out]

    return step


def _softmax_cross_entropy(node, lib, ffi):
    dt = _rows_dtype(node)
    fn = getattr(lib, f"ts_sce_rows_{dt}")
    fb, ctype = ffi.from_buffer, f"{_TYPES[dt][0]}[]"
    perform = node.op.perform
    nd = node.inputs[0].ndim
    work = _Work(dt)

    prefix = node.op.prefix

    def step(args):
        x, labels = args
        if prefix and type(x) is np.ndarray and type(labels) is np.ndarray and labels.ndim == 1:
            if labels.shape[0] > x.shape[0]:
                return list(perform(node, args))  # numpy's IndexError
            x = x[:labels.shape[0]]  # the labelled rows
        if (type(x) is not np.ndarray or x.dtype != dt or x.ndim != nd or not x.size
                or type(labels) is not np.ndarray or labels.dtype.kind not in "iu"
                or labels.shape != x.shape[:-1]):
            return list(perform(node, args))  # numpy's result, or its error
        if labels.dtype == np.uint64 and labels.max() > np.iinfo(np.int64).max:
            return list(perform(node, args))
        x = np.ascontiguousarray(x)
        lab = np.ascontiguousarray(labels, dtype=np.int64)
        out = np.empty(x.shape[:-1], dt)
        k = x.shape[-1]
        mx, w = work(x.size // k, x.size)
        if fn(fb(ctype, x), fb("int64_t[]", lab), fb(ctype, out), fb(ctype, mx), fb(ctype, w),
              x.size // k, k):
            return list(perform(node, args))  # a label out of range: perform's error
        return [out]

    return step


def _sce_grad_dtype(node):
    dt = node.outputs[0].dtype
    dy, x = node.inputs[:2]
    if dt not in _TYPES or x.dtype != dt or dy.dtype != dt or not _last_axis_of(node.op.axis, x):
        return None
    return dt


def _softmax_cross_entropy_grad(node, lib, ffi):
    """dy broadcast to the labels' shape: a stride of 0 for one value, else a contiguous
    array of one value per row."""
    dt = _sce_grad_dtype(node)
    x = node.inputs[1]
    fn = getattr(lib, f"ts_sce_grad_rows_{dt}")
    fb, ctype = ffi.from_buffer, f"{_TYPES[dt][0]}[]"
    perform = node.op.perform
    nd = x.ndim
    work = _Work(dt)

    prefix = node.op.prefix

    def step(args):
        d, x, labels = args
        full = None
        if prefix and type(x) is np.ndarray and type(labels) is np.ndarray and labels.ndim == 1:
            if labels.shape[0] > x.shape[0] or x.dtype != dt:
                return list(perform(node, args))  # numpy's IndexError, or a dtype to convert
            full = np.empty(x.shape, dt)  # the labelled rows' gradient, zeros past them
            full[labels.shape[0]:] = 0
            x = x[:labels.shape[0]]
        if (type(x) is not np.ndarray or x.dtype != dt or x.ndim != nd or not x.size
                or type(d) is not np.ndarray or d.dtype != dt
                or type(labels) is not np.ndarray or labels.dtype.kind not in "iu"
                or labels.shape != x.shape[:-1] or labels.dtype == np.uint64):
            return list(perform(node, args))  # numpy's result, or its error
        if d.size == 1:
            dstep = 0
        else:
            d, dstep = np.ascontiguousarray(np.broadcast_to(d, labels.shape)), 1
        x = np.ascontiguousarray(x)
        lab = np.ascontiguousarray(labels, dtype=np.int64)
        out = np.empty(x.shape, dt) if full is None else full[:x.shape[0]]
        k = x.shape[-1]
        mx, _ = work(x.size // k, 0)
        if fn(fb(ctype, d), dstep, fb(ctype, x), fb("int64_t[]", lab), fb(ctype, out),
              fb(ctype, mx), x.size // k, k):
            return list(perform(node, args))  # a label out of range: perform's error
        return [out if full is None else full]

    return step


def is_leading_sum(node) -> bool:
    """Whether `node` is a `Reduce` summing floats over some leading axes (not all)."""
    op, x = node.op, node.inputs[0]
    return (type(op) is Reduce and op.kind == "sum" and node.outputs[0].dtype in _TYPES
            and x.dtype == node.outputs[0].dtype and 0 < len(op.axis) < x.ndim
            and op.axis == tuple(range(len(op.axis))))


def _leading_sum(node, lib, ffi):
    """A float sum over the leading axes of a C-contiguous array (a bias gradient): rows
    added whole into a double accumulator, where numpy's (and the generated kernel's) walk
    each column with a stride.  Other layouts run the `perform`."""
    op, x = node.op, node.inputs[0]
    dt = node.outputs[0].dtype
    fn = getattr(lib, f"ts_lead_sum_{dt}")
    fb, ctype = ffi.from_buffer, f"{_TYPES[dt][0]}[]"
    perform = op.perform
    r, nd = len(op.axis), x.ndim
    acc = _Work("float64")

    def step(args):
        a = args[0]
        if type(a) is not np.ndarray or a.dtype != dt or a.ndim != nd or not a.flags.c_contiguous:
            return list(perform(node, args))
        kept = a.shape[r:]
        out = np.empty(((1,) * r if op.keepdims else ()) + kept, dt)
        k = out.size
        fn(fb(ctype, a), fb(ctype, out), fb("double[]", acc(k, 0)[0]), a.size // k if k else 0, k)
        return [out]

    return step


def _arg_dtype(node):
    """The dtype of an argmax / argmin along the last axis (or of a vector), else None."""
    x, op = node.inputs[0], node.op
    last = op.axis == x.ndim - 1 or (op.axis is None and x.ndim == 1)
    return x.dtype if x.dtype in _ARG_TYPES and x.ndim and last else None


def _argreduce(node, lib, ffi):
    """argmax / argmin along the last axis (or of a vector)."""
    x = node.inputs[0]
    op = node.op
    fn = getattr(lib, f"ts_argreduce_rows_{x.dtype}")
    fb, ctype = ffi.from_buffer, f"{_ARG_TYPES[x.dtype][0]}[]"
    mn = int(op.kind == "argmin")
    perform = op.perform

    def step(args):
        a = args[0]
        if type(a) is not np.ndarray or a.dtype != x.dtype or a.ndim != x.ndim or not a.size:
            return list(perform(node, args))  # numpy's result, or its error for an empty axis
        a = np.ascontiguousarray(a)
        k = a.shape[-1]
        out = np.empty(a.shape[:-1] + ((1,) if op.keepdims else ()), np.int64)
        fn(fb(ctype, a), fb("int64_t[]", out), a.size // k, k, mn)
        return [out]

    return step


def _embedded(dtype_of, make, kernel):
    """(parts(node), make(node, lib, ffi)) for `linker.EMBEDDED`: the part of `kernel` in
    the node's dtype, or None where it runs `perform`."""
    def parts_of(node):
        dt = dtype_of(node)
        return None if dt is None else parts(dt, kernel)
    return parts_of, make


def _lead_dtype(node):
    return node.outputs[0].dtype if is_leading_sum(node) else None


#: Op type -> (parts(node), make(node, lib, ffi)): the C parts the node's step needs in its
#: function's module (None: it runs `perform`), and its step once the module is loaded
EMBEDDED = {Softmax: _embedded(_rows_dtype, _softmax, "softmax"),
            LogSoftmax: _embedded(_rows_dtype, _softmax, "softmax"),
            SoftmaxCrossEntropy: _embedded(_rows_dtype, _softmax_cross_entropy, "sce"),
            SoftmaxCrossEntropyGrad: _embedded(_sce_grad_dtype, _softmax_cross_entropy_grad,
                                               "sce_grad"),
            ArgReduce: _embedded(_arg_dtype, _argreduce, "arg"),
            Reduce: _embedded(_lead_dtype, _leading_sum, "lead_sum")}
