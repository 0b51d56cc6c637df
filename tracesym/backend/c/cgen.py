"""C source for elementwise programs and reductions.

`render_elemwise(name, program, scalars, ndim)` turns a scalar `Program` (ops/composite.py)
into two C functions: `<name>_contig` for operands that are C-contiguous and all of the
output's shape, and `<name>_strided`, an n-d loop over byte strides (broadcast dims have
stride 0, negative strides work).  Both run one `restrict` row loop that the compiler
vectorizes, calling libmvec for exp, tanh, ...: contig over the whole array, strided over
each row once its dims are collapsed, through `ts_drive` (`DRIVER`, an object shared by every module),
which gathers operands of other strides into buffers and packs short rows.
Every element, a row's last ones included, goes through the same vector code, so a value
does not depend on where it lies in memory.  From `parallel_min` elements on (fewer for a
program calling math functions than for arithmetic alone), either splits its work over
OpenMP's threads.  Inputs listed in `scalars` have a static shape of all ones:
they are loaded once, outside the loop.

Each step of the program computes in numpy's loop dtype for its arguments (`loop_dtypes`:
`int64 < float32` compares in float64) and stores its result in the step's own dtype, so
the kernel gives what the unfused numpy graph gives.  The expression of a step is the `c`
column of its scalar-table row; helpers the rows name (`ts_floordiv`, `ts_max`, ...) are
type-generic macros over per-dtype inline functions in `HEADER`, written to numpy's
semantics (floor division and modulo towards -inf, 0 for an integer division by zero, no
trap on INT_MIN // -1, NaN-propagating maximum).  Integer power to a negative exponent sets
the kernel's status to 1, which the runner turns into numpy's ValueError.

`render_reduce` renders a reduction (sum prod max min all any) of the output of a program
(an elementwise-fed reduction; a plain one reduces its input) over the trailing dims of a
strided view whose leading dims are kept.
"""

from __future__ import annotations

import math

import numpy as np

from ...ops import scalar as S

# dtype -> (C type of a value, C type of its storage)
CTYPES = {
    "bool": ("_Bool", "uint8_t"),
    "int8": ("int8_t", "int8_t"), "int16": ("int16_t", "int16_t"),
    "int32": ("int32_t", "int32_t"), "int64": ("int64_t", "int64_t"),
    "uint8": ("uint8_t", "uint8_t"), "uint16": ("uint16_t", "uint16_t"),
    "uint32": ("uint32_t", "uint32_t"), "uint64": ("uint64_t", "uint64_t"),
    "float32": ("float", "float"), "float64": ("double", "double"),
}
_SIGNED = ("int8", "int16", "int32", "int64")
_UNSIGNED = ("uint8", "uint16", "uint32", "uint64")
_FLOATS = ("float32", "float64")

#: loops of at least this many elements run on OpenMP's threads (OMP_NUM_THREADS)
#: where the compiler supports OpenMP; below it, starting threads costs more than it saves.
#: A program of arithmetic alone is bound by memory: threads pay from PARALLEL_MIN_CHEAP on
#: (on 2 cores, `x + x * c` over 392K float32 took 39 us on one thread, 67 us on two)
PARALLEL_MIN = 1 << 17
PARALLEL_MIN_CHEAP = 1 << 20
#: scalar ops that call a math function: what makes a program worth threads early
_MATH_OPS = frozenset({"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos",
                       "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh",
                       "sigmoid", "softplus", "erf", "erfc", "power", "pow"})


def parallel_min(program) -> int:
    """The element count from which `program`'s loops run on threads."""
    return PARALLEL_MIN if any(st.op in _MATH_OPS for st in program.steps) else PARALLEL_MIN_CHEAP
#: elements per block of a threaded contiguous loop (a multiple of any vector width)
BLOCK = 1 << 14
#: row loops run in blocks of TAIL elements, a row's last n % TAIL in a block of their own
#: (a multiple of the widest vector of float32, so no element takes a scalar path)
TAIL = 16
#: elements per `_row` call of a strided loop that packs short rows or gathers operands
PACK = 256

STATUS = {1: (ValueError, "Integers to negative integer powers are not allowed."),
          2: (ValueError, "zero-size array to reduction operation {kind} which has no identity")}


def _fn(dt, body_int, body_uint, body_bool, body_float):
    """The body of a per-dtype helper for dtype `dt` (`T`, `U` stand for its C types)."""
    if dt in _SIGNED:
        body = body_int
    elif dt in _UNSIGNED:
        body = body_uint
    elif dt == "bool":
        body = body_bool
    else:
        body = body_float
    if body is None:
        return None
    t = CTYPES[dt][0]
    suffix = "f" if dt == "float32" else ""
    return body.replace("T", t).replace("U", "u" + t if dt in _SIGNED else t).replace("@f", suffix)


# name: (params, int, uint, bool, float); `T` is the value type, `U` its unsigned twin,
# `@f` the libm suffix (f for float32)
_HELPERS = {
    "floordiv": ("T a, T b", """{
  if (b == 0) return 0;
  if (b == -1) return (T)(0 - (U)a);  /* no trap on INT_MIN // -1; wraps like numpy */
  T q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) q -= 1;
  return q;
}""", "{ return b == 0 ? 0 : a / b; }", None, """{
  if (b == 0) return a / b;
  T mod = fmod@f(a, b), div = (a - mod) / b, fd;
  if (mod != 0) { if ((b < 0) != (mod < 0)) div -= 1; }
  if (div != 0) { fd = floor@f(div); if (div - fd > (T)0.5) fd += 1; }
  else fd = copysign@f((T)0, a / b);
  return fd;
}"""),
    "mod": ("T a, T b", """{
  if (b == 0 || b == -1) return 0;
  T r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}""", "{ return b == 0 ? 0 : a % b; }", None, """{
  if (b == 0) return fmod@f(a, b);
  T mod = fmod@f(a, b);
  if (mod != 0) { if ((b < 0) != (mod < 0)) mod += b; }
  else mod = copysign@f((T)0, b);
  return mod;
}"""),
    "pow": ("T a, T b, int *err", """{
  if (b < 0) { *err = 1; return 0; }
  U r = 1, x = (U)a, e = (U)b;
  while (e) { if (e & 1) r *= x; x *= x; e >>= 1; }
  return (T)r;
}""", """{
  T r = 1, x = a, e = b;
  while (e) { if (e & 1) r *= x; x *= x; e >>= 1; }
  return r;
}""", None, "{ return pow@f(a, b); }"),
    "abs": ("T a", "{ return a < 0 ? (T)(0 - (U)a) : a; }", "{ return a; }", "{ return a; }",
            "{ return fabs@f(a); }"),
    "sign": ("T a", "{ return (T)((a > 0) - (a < 0)); }", "{ return a > 0; }", None,
             "{ return a > 0 ? 1 : (a < 0 ? -1 : (a == 0 ? 0 : a)); }"),
    "reciprocal": ("T a", "{ return (T)(1.0 / a); }", "{ return (T)(1.0 / a); }", None,
                   "{ return 1 / a; }"),
    "max": ("T a, T b", "{ return a >= b ? a : b; }", "{ return a >= b ? a : b; }",
            "{ return a | b; }", "{ return (a > b || isnan(a)) ? a : b; }"),
    "min": ("T a, T b", "{ return a <= b ? a : b; }", "{ return a <= b ? a : b; }",
            "{ return a & b; }", "{ return (a < b || isnan(a)) ? a : b; }"),
    "sigmoid": ("T a", None, None, None, """{  /* one division, no branch: vectorizes */
  T e = exp@f(-fabs@f(a));
  return (a >= 0 ? (T)1 : e) / (1 + e);
}"""),
    "tanh": ("T a", None, None, None, """{  /* from expm1, as glibc's scalar tanh: libmvec's
     SIMD tanh costs 2.3x as much; inf, nan and -0.0 come out as numpy's */
  const T e = expm1@f(-2 * fabs@f(a));
  return copysign@f(-e / (e + 2), a);
}"""),
    "sigmoid_tanh": ("T a, T b", None, None, None, """{  /* sigmoid(a) * tanh(b) with one
     division (a gate times a squashed state: LSTM, GRU): both fractions have numerators in
     [0, 1] and denominators in [1, 2], so their products neither overflow nor underflow */
  const T e = exp@f(-fabs@f(a)), m = expm1@f(-2 * fabs@f(b));
  return copysign@f(((a >= 0 ? (T)1 : e) * -m) / ((1 + e) * (m + 2)), b);
}"""),
    "softplus": ("T a", None, None, None,
                 "{ return (a > 0 || isnan(a) ? a : 0) + log1p@f(exp@f(-fabs@f(a))); }"),
    "isnan": ("T a", "{ return 0; }", "{ return 0; }", "{ return 0; }", "{ return isnan(a); }"),
    "isinf": ("T a", "{ return 0; }", "{ return 0; }", "{ return 0; }", "{ return isinf(a); }"),
    "isfinite": ("T a", "{ return 1; }", "{ return 1; }", "{ return 1; }",
                 "{ return isfinite(a); }"),
    "invert": ("T a", "{ return (T)~a; }", "{ return (T)~a; }", "{ return !a; }", None),
    "floor": ("T a", "{ return a; }", "{ return a; }", "{ return a; }", "{ return floor@f(a); }"),
    "ceil": ("T a", "{ return a; }", "{ return a; }", "{ return a; }", "{ return ceil@f(a); }"),
    "round": ("T a", "{ return a; }", "{ return a; }", "{ return a; }", "{ return nearbyint@f(a); }"),
    "trunc": ("T a", "{ return a; }", "{ return a; }", "{ return a; }", "{ return trunc@f(a); }"),
}
_BOOL_RESULT = {"isnan", "isinf", "isfinite"}
#: helpers that report an error through the kernel's status `ts_err`
_ERR_HELPERS = [name for name, (params, *_) in _HELPERS.items() if "err" in params]


#: libm functions glibc's libmvec has SIMD versions of (its accuracy: at most 4 ULP)
VECTOR_MATH = {"exp": 1, "exp2": 1, "expm1": 1, "log": 1, "log2": 1, "log10": 1, "log1p": 1,
               "erf": 1, "erfc": 1, "sin": 1, "cos": 1, "tan": 1, "asin": 1, "acos": 1,
               "atan": 1, "sinh": 1, "cosh": 1, "tanh": 1, "atan2": 2, "pow": 2}


_COLLAPSE = """\
/* The strided loop's dims made fewer: size-1 dims dropped, and a dim merged into the one
   before it where every operand's step over that one equals a whole run of this one.
   meta = shape[nd], then nd byte strides per operand; shape and st receive the collapsed
   ones (st with pitch nd).  Returns how many dims are left (at least 1), -1 if empty. */
static int ts_collapse(int nd, int nops, const int64_t *meta, int64_t *shape, int64_t *st)
{
  const int64_t *ms = meta + nd;
  int m = 0;
  for (int d = 0; d < nd; d++) {
    const int64_t n = meta[d];
    if (n == 0) return -1;
    if (n == 1) continue;
    int merge = m > 0;
    for (int o = 0; merge && o < nops; o++) merge = st[o * nd + m - 1] == ms[o * nd + d] * n;
    if (merge) shape[m - 1] *= n;
    else shape[m++] = n;
    for (int o = 0; o < nops; o++) st[o * nd + m - 1] = ms[o * nd + d];
  }
  if (m == 0) {
    shape[0] = 1;
    for (int o = 0; o < nops; o++) st[o * nd] = 0;
    m = 1;
  }
  return m;
}

/* Whether none of the m strides `st` is 0. */
static int ts_nonzero(const int64_t *st, int m)
{
  for (int d = 0; d < m; d++) if (st[d] == 0) return 0;
  return 1;
}

/* A kernel's vector row loop: n elements of unit-stride operands p (arrays, then outputs),
   its scalar inputs read from its arguments a. */
typedef int (*ts_row_fn)(int64_t n, char **p, char *const *a);
int ts_drive(int64_t lo, int64_t hi, int m, int nd, const int64_t *shape, const int64_t *st,
             int nin, int nops, const int *size, char *const *base, char *const *a,
             ts_row_fn row);
int ts_par_drive(int64_t rows, int m, int nd, const int64_t *shape, const int64_t *st,
                 int nin, int nops, const int *size, char *const *base, char *const *a,
                 ts_row_fn row);
int ts_par_contig(int64_t n, int nops, const int *size, char *const *base, char *const *a,
                  ts_row_fn row);
int ts_threads(void);"""


#: `ts_drive` (declared in HEADER), the strided loop of every elementwise kernel: compiled
#: once per cache directory, an object every module links (`cache.shared_object`)
DRIVER = r"""
#ifdef _OPENMP
#include <omp.h>
#endif
/* n elements of `size` bytes from src (byte step ss; 0: one value, repeated) to dst (ds) */
__attribute__((noinline, optimize("O2")))
static void ts_copy(char *restrict dst, int64_t ds, const char *restrict src, int64_t ss,
                    int64_t n, int size)
{
  if (ss == 0 && ds == size && (size == 4 || size == 8)) {  /* a fill, in vectors */
    if (size == 4) {
      const uint32_t v = *(const uint32_t *)src;
      #pragma omp simd
      for (int64_t j = 0; j < n; j++) ((uint32_t *)dst)[j] = v;
    } else {
      const uint64_t v = *(const uint64_t *)src;
      #pragma omp simd
      for (int64_t j = 0; j < n; j++) ((uint64_t *)dst)[j] = v;
    }
    return;
  }
  switch (size) {  /* a gather or scatter: scalar (a vector gather is slower here) */
  case 1: for (int64_t j = 0; j < n; j++) *(uint8_t *)(dst + j * ds) = *(const uint8_t *)(src + j * ss); break;
  case 2: for (int64_t j = 0; j < n; j++) *(uint16_t *)(dst + j * ds) = *(const uint16_t *)(src + j * ss); break;
  case 4: for (int64_t j = 0; j < n; j++) *(uint32_t *)(dst + j * ds) = *(const uint32_t *)(src + j * ss); break;
  default: for (int64_t j = 0; j < n; j++) *(uint64_t *)(dst + j * ds) = *(const uint64_t *)(src + j * ss);
  }
}

/* A short run of n unit-stride elements (a packed row), copied in line */
__attribute__((always_inline))
static inline void ts_copy_short(char *restrict dst, const char *restrict src, int64_t n, int size)
{
  if (size == 4) for (int64_t j = 0; j < n; j++) ((uint32_t *)dst)[j] = ((const uint32_t *)src)[j];
  else if (size == 8) for (int64_t j = 0; j < n; j++) ((uint64_t *)dst)[j] = ((const uint64_t *)src)[j];
  else memcpy(dst, src, n * size);
}

/* Rows lo..hi of the m collapsed dims (`shape`, byte strides `st` of pitch nd) of nops
   operands (`base`: nin inputs, then outputs; `size`: their element sizes) through `row`,
   which every element goes through, whatever its layout.  A row whose operands all step by
   one element goes straight in.  Other rows go in chunks of up to TS_PACK elements: an
   operand stepping by one element is passed in place, an input of another step gathered
   into a buffer (of step 0, broadcast along the row: filled once for as long as it reads
   the same value), an output written to one and scattered after.  Rows shorter than
   TS_TAIL go together, up to TS_PACK elements a call (a call per short row would cost more
   than its arithmetic): an operand whose rows follow each other in memory is passed in
   place, others are packed (a row broadcast to all: packed once).  One copy of this loop
   serves every kernel: a kernel's own code is its vector loop alone.  -O2: -O3 takes four
   times as long to compile it, for a loop that copies. */
__attribute__((optimize("O2", "no-tree-loop-distribute-patterns")))
int ts_drive(int64_t lo, int64_t hi, int m, int nd, const int64_t *shape, const int64_t *st,
             int nin, int nops, const int *size, char *const *base, char *const *a,
             ts_row_fn row)
{
  int ts_err = 0;
  int64_t idx[nd], step[nops], outer[nops], got[nops];
  char *ptr[nops], *p[nops];
  const char *filled[nops];
  uint64_t buf[nops][TS_PACK];
  const int64_t len = shape[m - 1];
  const int pack = len < TS_TAIL && m > 1;
  int unit = 1;
  for (int o = 0; o < nops; o++) {
    ptr[o] = base[o];
    filled[o] = NULL;
    step[o] = st[o * nd + m - 1];
    outer[o] = m > 1 ? st[o * nd + m - 2] : 0;
    unit &= step[o] == size[o];
  }
  int64_t r = lo;
  for (int d = m - 2; d >= 0; d--) {
    idx[d] = r % shape[d];
    r /= shape[d];
    for (int o = 0; o < nops; o++) ptr[o] += idx[d] * st[o * nd + d];
  }
  for (int64_t row_ = lo; row_ < hi;) {
    int64_t g = 1;  /* rows this pass, within one run of dim m - 2 */
    if (pack) {
      g = TS_PACK / len;
      if (g > hi - row_) g = hi - row_;
      if (g > shape[m - 2] - idx[m - 2]) g = shape[m - 2] - idx[m - 2];
      for (int o = 0; o < nops; o++) {
        if (step[o] == size[o] && (g == 1 || outer[o] == len * size[o])) {
          p[o] = ptr[o];
          continue;
        }
        p[o] = (char *)buf[o];
        if (o >= nin || (filled[o] == ptr[o] && got[o] == g)) continue;
        for (int64_t q = 0; q < g; q++) {
          char *b = p[o] + q * len * size[o];
          const char *src = ptr[o] + q * outer[o];
          if (step[o] == size[o]) ts_copy_short(b, src, len, size[o]);
          else ts_copy(b, size[o], src, step[o], len, size[o]);
        }
        filled[o] = outer[o] == 0 ? ptr[o] : NULL;
        got[o] = g;
      }
      ts_err |= row(g * len, p, a);
      for (int o = nin; o < nops; o++) {
        if (p[o] == ptr[o]) continue;
        for (int64_t q = 0; q < g; q++) {
          const char *b = (char *)buf[o] + q * len * size[o];
          if (step[o] == size[o]) ts_copy_short(ptr[o] + q * outer[o], b, len, size[o]);
          else ts_copy(ptr[o] + q * outer[o], step[o], b, size[o], len, size[o]);
        }
      }
    } else if (unit) {
      ts_err |= row(len, ptr, a);
    } else {
      for (int64_t c = 0; c < len; c += TS_PACK) {
        const int64_t n = len - c < TS_PACK ? len - c : TS_PACK;
        for (int o = 0; o < nops; o++) {
          if (step[o] == size[o]) {
            p[o] = ptr[o] + c * size[o];
            continue;
          }
          p[o] = (char *)buf[o];
          if (o >= nin || (step[o] == 0 && filled[o] == ptr[o] && got[o] >= n)) continue;
          ts_copy(p[o], size[o], ptr[o] + c * step[o], step[o], n, size[o]);
          filled[o] = step[o] == 0 ? ptr[o] : NULL;
          got[o] = n;
        }
        ts_err |= row(n, p, a);
        for (int o = nin; o < nops; o++)
          if (step[o] != size[o])
            ts_copy(ptr[o] + c * step[o], step[o], (char *)buf[o], size[o], n, size[o]);
      }
    }
    row_ += g;
    for (int d = m - 2; d >= 0; d--) {  /* the next row: g further along dim m - 2 */
      const int64_t k = d == m - 2 ? g : 1;
      idx[d] += k;
      for (int o = 0; o < nops; o++) ptr[o] += k * st[o * nd + d];
      if (idx[d] < shape[d]) break;
      for (int o = 0; o < nops; o++) ptr[o] -= st[o * nd + d] * shape[d];
      idx[d] = 0;
    }
  }
  return ts_err;
}

/* Whether loops may go on OpenMP's threads: built with OpenMP, and more than one thread */
int ts_threads(void)
{
#ifdef _OPENMP
  return omp_get_max_threads() > 1;
#else
  return 0;
#endif
}

/* `ts_drive` over all rows, in up to 64 parts on OpenMP's threads */
int ts_par_drive(int64_t rows, int m, int nd, const int64_t *shape, const int64_t *st,
                 int nin, int nops, const int *size, char *const *base, char *const *a,
                 ts_row_fn row)
{
  int ts_err = 0;
  const int64_t nc = rows < 64 ? rows : 64;
  #pragma omp parallel for schedule(dynamic) reduction(|:ts_err)
  for (int64_t c = 0; c < nc; c++)
    ts_err |= ts_drive(rows * c / nc, rows * (c + 1) / nc, m, nd, shape, st, nin, nops, size,
                       base, a, row);
  return ts_err;
}

/* A contiguous loop of n elements in blocks of TS_BLOCK on OpenMP's threads */
int ts_par_contig(int64_t n, int nops, const int *size, char *const *base, char *const *a,
                  ts_row_fn row)
{
  int ts_err = 0;
  const int64_t nb = (n + TS_BLOCK - 1) / TS_BLOCK;
  #pragma omp parallel for schedule(dynamic) reduction(|:ts_err)
  for (int64_t b = 0; b < nb; b++) {
    char *p[nops];
    const int64_t lo = b * TS_BLOCK;
    for (int o = 0; o < nops; o++) p[o] = base[o] + lo * size[o];
    ts_err |= row(n - lo < TS_BLOCK ? n - lo : TS_BLOCK, p, a);
  }
  return ts_err;
}
"""


def _header() -> str:
    lines = ["#include <stdint.h>", "#include <string.h>", "#include <tgmath.h>",
             f"#define TS_TAIL {TAIL}", f"#define TS_PACK {PACK}", f"#define TS_BLOCK {BLOCK}",
             "typedef _Bool npy_bool;",
             "#ifdef TS_LIBMVEC  /* row loops call libmvec's SIMD versions of these */"]
    for fn, nargs in VECTOR_MATH.items():
        for t, f in (("double", fn), ("float", fn + "f")):
            lines.append(f"#pragma omp declare simd notinbranch\n{t} ({f})("
                         f"{', '.join([t] * nargs)});")
    lines.append("#endif")
    lines += ["static inline uint64_t ts_f2u_float(float a) "
              "{ return a < 0 ? (uint64_t)(int64_t)a : (uint64_t)a; }",
              "static inline uint64_t ts_f2u_double(double a) "
              "{ return a < 0 ? (uint64_t)(int64_t)a : (uint64_t)a; }",
              "#define ts_wrap_u(a) _Generic((a), float: ts_f2u_float((float)(a)), "
              "double: ts_f2u_double((double)(a)), default: (uint64_t)(a))"]
    lines += [f"typedef {CTYPES[d][0]} npy_{d};" for d in CTYPES if d != "bool"]
    lines.append(_COLLAPSE)
    for name, (params, *bodies) in _HELPERS.items():
        cases = []
        for dt in CTYPES:
            body = _fn(dt, *bodies)
            if body is None:
                continue
            t = CTYPES[dt][0]
            ret = "_Bool" if name in _BOOL_RESULT else t
            p = params.replace("T", t)
            lines.append(f"static inline {ret} ts_{name}_{dt}({p}) {body}")
            cases.append(f"{t}: ts_{name}_{dt}")
        args = ", ".join(p.split()[-1].lstrip("*") for p in params.split(", "))
        call_args = args.replace("err", "&ts_err")
        macro_args = ", ".join(a for a in args.split(", ") if a != "err")
        lines.append(f"#define ts_{name}({macro_args}) _Generic((a), {', '.join(cases)})"
                     f"({call_args})")
    return "\n".join(lines) + "\n"


HEADER = _header()


# -- dtypes and literals ------------------------------------------------------------------------

def unsupported(program) -> str | None:
    """Why `program` cannot run in C (the caller falls back to numpy), or None."""
    dts = set(program.in_dtypes) | {st.dtype for st in program.steps} | set(program.out_dtypes)
    for st in program.steps:
        for a in st.args:
            if a[0] == "const":
                dts.add(a[2])
    bad = sorted(d for d in dts if d not in CTYPES)
    if bad:
        return f"dtype {', '.join(bad)} has no C loop (float16 and complex run in numpy)"
    for st in program.steps:
        if st.op not in S.TABLE:
            return f"{st.op} is not in the scalar table (a scalar op of its own runs in numpy)"
        loop = loop_dtypes(st, [program.dtype_of(a) for a in st.args])
        if st.op in ("lt", "le", "gt", "ge", "eq", "neq") and len(set(loop)) > 1:
            return f"{st.op} of {' and '.join(loop)} compares mixed-sign integers (numpy loop)"
        if any(d not in CTYPES for d in loop):
            return f"{st.op} computes in {', '.join(loop)}, which has no C loop"
    return None


def loop_dtypes(step, arg_dtypes) -> tuple:
    """The dtypes numpy's implementation of `step.op` computes in, one per argument."""
    row = S.TABLE[step.op]
    if step.op.startswith("cast_"):
        return tuple(arg_dtypes)
    if step.op == "where":
        return (arg_dtypes[0], step.dtype, step.dtype)
    if isinstance(row.impl, np.ufunc):
        res = row.impl.resolve_dtypes(tuple(np.dtype(d) for d in arg_dtypes) + (None,))
        return tuple(d.name for d in res[:row.nin])
    return (step.dtype,) * len(arg_dtypes)


def literal(value, dtype) -> str:
    """A C expression of type `dtype` with exactly `value`."""
    t = CTYPES[dtype][0]
    v = np.asarray(value, dtype=dtype).item()
    if dtype == "bool":
        return "((_Bool)1)" if v else "((_Bool)0)"
    if dtype in _FLOATS:
        if math.isnan(v):
            return f"(({t})NAN)"
        if math.isinf(v):
            return f"(({t})({'-' if v < 0 else ''}INFINITY))"
        return f"(({t}){float(v).hex()})"
    if dtype in _SIGNED and v == -(1 << 63):
        return "((int64_t)(-9223372036854775807LL - 1))"
    return f"(({t}){v}{'ULL' if dtype in _UNSIGNED else 'LL'})"


# -- elementwise --------------------------------------------------------------------------------

def _body(program, load):
    """(statements loading every input and computing every step, `ref`: the C expression of
    a value reference); `load(i)` is the C expression of input i."""
    lines = []
    names = []

    def ref(r):
        if r[0] == "in":
            return f"v{r[1]}"
        if r[0] == "step":
            return names[r[1]]
        return literal(r[1], r[2])

    fused = _sigmoid_tanh_products(program)
    folded = {i for pair in fused.values() for i in pair}
    for i, dt in enumerate(program.in_dtypes):
        lines.append(f"const {CTYPES[dt][0]} v{i} = {load(i)};")
    for j, st in enumerate(program.steps):
        if j in folded:  # computed inside the product that alone reads it
            names.append(None)
            continue
        if j in fused:
            args = ", ".join(ref(program.steps[i].args[0]) for i in fused[j])
            names.append(f"t{j}")
            lines.append(f"const {CTYPES[st.dtype][0]} t{j} = ts_sigmoid_tanh({args});"
                         "  /* sigmoid * tanh */")
            continue
        arg_dts = [program.dtype_of(a) for a in st.args]
        loop = loop_dtypes(st, arg_dts)
        args = [ref(a) if d == ld else f"(({CTYPES[ld][0]}){ref(a)})"
                for a, d, ld in zip(st.args, arg_dts, loop)]
        name = f"t{j}"
        names.append(name)
        expr = S.TABLE[st.op].c.format(*args)
        lines.append(f"const {CTYPES[st.dtype][0]} {name} = ({CTYPES[st.dtype][0]}){expr};"
                     f"  /* {st.op} */")
    return lines, ref


def _sigmoid_tanh_products(program) -> dict:
    """{step j: (its sigmoid step, its tanh step)} for the float products sigmoid(a) *
    tanh(b) whose two factors nothing else reads: `ts_sigmoid_tanh` computes them with one
    division instead of three (a division costs more than an exp in vector code)."""
    uses = [0] * len(program.steps)
    for r in [a for st in program.steps for a in st.args] + list(program.outputs):
        if r[0] == "step":
            uses[r[1]] += 1
    out = {}
    for j, st in enumerate(program.steps):
        if st.op != "mul" or st.dtype not in _FLOATS or not all(a[0] == "step" for a in st.args):
            continue
        i, k = (a[1] for a in st.args)
        if program.steps[i].op == "tanh":
            i, k = k, i
        pair = (program.steps[i], program.steps[k])
        if ([p.op for p in pair] == ["sigmoid", "tanh"] and uses[i] == uses[k] == 1 and i != k
                and all(p.dtype == st.dtype == program.dtype_of(p.args[0]) for p in pair)):
            out[j] = (i, k)
    return out


def render_elemwise(name: str, program, scalars: frozenset, ndim: int) -> tuple[str, str]:
    """(C source, cdef declarations) of `<name>_contig` and `<name>_strided`.

    contig(n, in0, ..., out0, ...): every operand not in `scalars` is a C-contiguous array of
    n elements.  strided(meta, in0, ..., out0, ...): `meta` holds the output shape (ndim
    values), then ndim byte strides per operand not in `scalars`, inputs then outputs, in
    the output's dims (0 where an input is broadcast).

    Both run `<name>_row`, one `restrict` loop over unit-stride operands that the compiler
    vectorizes (libmvec calls for exp, tanh, ...): contig over the whole array, or over
    blocks on OpenMP's threads; strided over each row of its collapsed dims (`ts_collapse`)
    through the one `ts_drive` (`DRIVER`), which gathers into buffers what does not
    step by one element (a broadcast value, a negative or wider stride) and packs short
    rows.  The kernel's own code is its vector loop: the threaded and strided loops are
    shared by every kernel, compiled once per cache directory (a kernel compiles in a third
    of the time a kernel with loops of its own took)."""
    k = _Elemwise(name, program, scalars, ndim)
    decl = (f"int {name}_contig(int64_t n, {k.params});\n"
            f"int {name}_strided(const int64_t *meta, {k.params});\n")
    if ndim == 0:  # one element (shape arithmetic, a mean's scale): no loops to compile
        return "\n".join(k.one()) + "\n", decl
    funcs = k.row() + [""] + k.rowp() + [""] + k.contig() + [""] + k.strided()
    return "\n".join(funcs) + "\n", decl


def dispatcher(pointers: int) -> str:
    """The name of a module's dispatcher of elementwise kernels taking `pointers` pointers."""
    return f"ts_ew{pointers}"


def kernel_id(name: str) -> int:
    """The number of kernel `name` (`k<number>_...`), its case in its dispatcher."""
    return int(name[1:name.index("_")])


def render_dispatch(pointers: int, names) -> tuple[str, str]:
    """(C source, cdef) of `ts_ew<pointers>(k, meta, n, p0, ...)`: elementwise kernel number
    k (`kernel_id`) of `names`, its strided loop over `meta` or, where `meta` is NULL, its
    contiguous one over n elements.  A module exports one such function per pointer count
    instead of two per kernel: cffi's wrapper of an exported function costs gcc about 4 ms,
    W5's function held 18 of them."""
    ps = ", ".join(f"p{i}" for i in range(pointers))
    params = "int k, const int64_t *meta, int64_t n, " + ", ".join(
        f"char *p{i}" for i in range(pointers))
    src = [f'__attribute__((optimize("O1"))) int {dispatcher(pointers)}({params})', "{",
           "  switch (k) {"]
    src += [f"  case {kernel_id(n)}: return meta ? {n}_strided(meta, {ps}) : {n}_contig(n, {ps});"
            for n in names]
    src += ["  }", "  return -1;", "}"]
    return "\n".join(src) + "\n", f"int {dispatcher(pointers)}({params});\n"


class _Elemwise:
    """The C functions of one elementwise kernel, and what they share: operand names
    (`a<i>` inputs, `o<k>` outputs; `s<i>` the values of inputs in `scalars`) and types."""

    def __init__(self, name, program, scalars, ndim):
        self.name, self.program, self.nd = name, program, max(ndim, 1)
        nin, self.nout = len(program.in_dtypes), len(program.outputs)
        self.arrays = [i for i in range(nin) if i not in scalars]
        self.scalars = sorted(scalars)
        self.params = ", ".join([f"char *a{i}" for i in range(nin)]
                                + [f"char *o{k}" for k in range(self.nout)])
        self.sto_in = [CTYPES[dt][1] for dt in program.in_dtypes]
        self.sto_out = [CTYPES[dt][1] for dt in program.out_dtypes]
        self.ops = [f"a{i}" for i in self.arrays] + [f"o{k}" for k in range(self.nout)]
        self.scalar_params = [f"const {CTYPES[program.in_dtypes[i]][0]} s{i}"
                              for i in self.scalars]

    def value(self, i, ptr):
        v = f"*(const {self.sto_in[i]} *)({ptr})"
        return f"({v} != 0)" if self.program.in_dtypes[i] == "bool" else v

    def body(self, load, store):
        """Statements computing every output from `load(i)`, stored by `store(k, value)`."""
        lines, ref = _body(self.program, load)
        for k, r in enumerate(self.program.outputs):
            dt = self.program.out_dtypes[k]
            val = ref(r)
            if self.program.dtype_of(r) != dt:
                val = f"(({CTYPES[dt][0]}){val})"
            lines.append(store(k, f"({self.sto_out[k]}){val}"))
        return lines

    def one(self):
        """`_contig` and `_strided` of a program on 0-d operands: the one element."""
        body = self.body(lambda i: f"s{i}", lambda k, v: f"*({self.sto_out[k]} *)o{k} = {v};")
        args = ", ".join([f"a{i}" for i in range(len(self.program.in_dtypes))]
                         + [f"o{k}" for k in range(self.nout)])
        return ([f"int {self.name}_contig(int64_t n, {self.params})", "{", "  int ts_err = 0;"]
                + self.scalar_loads() + ["  " + x for x in body] + ["  return ts_err;", "}", "",
                f"int {self.name}_strided(const int64_t *meta, {self.params})", "{",
                f"  return {self.name}_contig(1, {args});", "}"])

    def scalar_loads(self):
        return [f"  {p} = {self.value(i, f'a{i}')};"
                for i, p in zip(self.scalars, self.scalar_params)]

    def row_call(self, n, offset=""):
        """A call of `_row` on `n` elements from each operand's pointer + `offset`."""
        args = [f"(const {self.sto_in[i]} *)a{i}{offset}" for i in self.arrays]
        args += [f"({self.sto_out[k]} *)o{k}{offset}" for k in range(self.nout)]
        return f"{self.name}_row({', '.join([n] + args + [f's{i}' for i in self.scalars])})"

    def loop_call(self, n, p, q):
        """A call of `_loop` on `n` elements of inputs `<p><i>` and outputs `<q><k>`."""
        args = [f"{p}{i}" for i in self.arrays] + [f"{q}{k}" for k in range(self.nout)]
        return f"{self.name}_loop({', '.join([n] + args + [f's{i}' for i in self.scalars])})"

    def row(self):
        """`_loop`: typed restrict pointers, a vectorizable loop over blocks of TAIL elements;
        `_row`: n elements, the last n % TAIL in a block of their own (the row's last TAIL,
        or padded to TAIL): every element goes through the one copy of the vector code
        (not inlined: compile time), whatever its place in memory."""
        name, arrays, nout, sto_in, sto_out = (self.name, self.arrays, self.nout, self.sto_in,
                                              self.sto_out)
        sig = ", ".join(["int64_t n"] + [f"const {sto_in[i]} *restrict p{i}" for i in arrays]
                        + [f"{sto_out[k]} *restrict q{k}" for k in range(nout)]
                        + self.scalar_params)

        def load(i):
            if i in self.scalars:
                return f"s{i}"
            return f"(p{i}[i] != 0)" if self.program.in_dtypes[i] == "bool" else f"p{i}[i]"

        body = self.body(load, lambda k, v: f"q{k}[i] = {v};")
        sets_err = any(f"ts_{h}(" in x for x in body for h in _ERR_HELPERS)
        r = [f"__attribute__((noinline)) static int {name}_loop({sig})", "{",
             "  int ts_err = 0;", f"  for (int64_t b = 0; b < n; b += {TAIL}) {{",
             "    #pragma omp simd" + (" reduction(|:ts_err)" if sets_err else ""),
             f"    for (int64_t j = 0; j < {TAIL}; j++) {{", "      const int64_t i = b + j;"]
        r += ["      " + x for x in body]
        r += ["    }", "  }", "  return ts_err;", "}", "",
              f"__attribute__((noinline)) static int {name}_row({sig})", "{",
              f"  const int64_t body = n - n % {TAIL};",
              "  int ts_err = 0;"]
        r += [f"  {sto_out[k]} c{k}[{TAIL}];" for k in range(nout)]
        r += ["  if (body < n) {  /* first (in place, the body overwrites inputs): the last "
              f"{TAIL}", "                      elements, or all n padded with the first */"]
        r += [f"    {sto_in[i]} b{i}[{TAIL}];" for i in arrays]
        r += [f"    if (n < {TAIL})", f"      for (int64_t j = 0; j < {TAIL}; j++) {{"]
        r += [f"        b{i}[j] = p{i}[j < n ? j : 0];" for i in arrays]
        r += ["      }"]
        r += [f"    const {sto_in[i]} *restrict e{i} = n < {TAIL} ? b{i} : p{i} + n - {TAIL};"
              for i in arrays]
        r += [f"    ts_err = {self.loop_call(str(TAIL), 'e', 'c')};", "  }",
              f"  ts_err |= {self.loop_call('body', 'p', 'q')};",
              f"  const int64_t off = n < {TAIL} ? 0 : {TAIL} - (n - body);",
              "  for (int64_t j = 0; j < n - body; j++) {"]
        r += [f"    q{k}[body + j] = c{k}[off + j];" for k in range(nout)]
        return r + ["  }", "  return ts_err;", "}"]

    def operands(self):
        """The arrays `ts_drive` and `ts_par_contig` take: element sizes, operand pointers
        (arrays, then outputs), every argument (for `_rowp`'s scalars)."""
        sizes = [self.sto_in[i] for i in self.arrays] + self.sto_out
        args = ", ".join(f"a{i}" for i in range(len(self.program.in_dtypes)))
        return [f"  static const int size[] = {{{', '.join(f'sizeof({t})' for t in sizes)}}};",
                f"  char *const ops[] = {{{', '.join(self.ops)}}};",
                f"  char *const args[] = {{{args or 'NULL'}}};"]

    def contig(self):
        """The whole array as one row, or blocks of it on OpenMP's threads (`ts_par_contig`:
        the threaded loop is in the driver, once per module)."""
        return ([f"int {self.name}_contig(int64_t n, {self.params})", "{"]
                + [f"  if (n >= {parallel_min(self.program)} && ts_threads()) {{"]
                + ["  " + x for x in self.operands()]
                + [f"    return ts_par_contig(n, {len(self.ops)}, size, ops, args, "
                   f"{self.name}_rowp);", "  }"]
                + self.scalar_loads() + [f"  return {self.row_call('n')};", "}"])

    def rowp(self):
        """`_rowp(n, p, a)`: `_row` behind the one signature `ts_drive` calls, on the
        unit-stride operand pointers p (arrays, then outputs), scalars loaded from the
        arguments a."""
        p = [f"(const {self.sto_in[i]} *)p[{o}]" for o, i in enumerate(self.arrays)]
        p += [f"({t} *)p[{len(self.arrays) + k}]" for k, t in enumerate(self.sto_out)]
        p += [self.value(i, f"a[{i}]") for i in self.scalars]
        return [f"static int {self.name}_rowp(int64_t n, char **p, char *const *a)", "{",
                f"  return {self.name}_row({', '.join(['n'] + p)});", "}"]

    def strided(self):
        """`_strided`: the collapsed dims' rows through `ts_drive` (in `DRIVER`: gathers and
        scatters what is not unit-stride, packs short rows), split over OpenMP's threads
        (`ts_par_drive`) when there are many elements and no output is written through a
        stride of 0 (every element once)."""
        name, nd, ops = self.name, self.nd, self.ops
        nin = len(self.arrays)
        tail = f"m, {nd}, shape, st, {nin}, {len(ops)}, size, ops, args, {name}_rowp)"
        once = " && ".join(f"ts_nonzero(st + {(nin + k) * nd}, m)" for k in range(self.nout))
        return [f"int {name}_strided(const int64_t *meta, {self.params})", "{",
                f"  int64_t shape[{nd}], st[{len(ops) * nd}];",
                f"  const int m = ts_collapse({nd}, {len(ops)}, meta, shape, st);",
                "  if (m < 0) return 0;"] + self.operands() + [
                "  int64_t rows = 1;", "  for (int d = 0; d < m - 1; d++) rows *= shape[d];",
                f"  if (rows > 1 && rows * shape[m - 1] >= {parallel_min(self.program)} && {once}"
                " && ts_threads())",
                f"    return ts_par_drive(rows, {tail};",
                f"  return ts_drive(0, rows, {tail};", "}"]


# -- reductions ---------------------------------------------------------------------------------

REDUCE_KINDS = ("sum", "prod", "max", "min", "all", "any")


def reduce_unsupported(kind, program, out_dtype) -> str | None:
    if kind not in REDUCE_KINDS:
        return f"{kind} has no C reduction"
    if out_dtype not in CTYPES:
        return f"dtype {out_dtype} has no C loop (float16 and complex run in numpy)"
    return unsupported(program)


def identity(dtype):
    """The program of a plain reduction: its one input, unchanged."""
    from ...ops.composite import Program

    return Program((dtype,), (), (("in", 0),))


def render_reduce(name: str, kind: str, program, scalars: frozenset,
                  out_dtype: str) -> tuple[str, str]:
    """`<name>(meta, in0, ..., out)`: `kind` over the one output of `program` (a plain
    reduction's is its input), without storing the elementwise values.

    meta = [nkeep, nred, shape..., then the byte strides of each input not in `scalars`] of
    the program's broadcast shape, permuted so the leading `nkeep` dims are kept and the
    trailing `nred` reduced; `out` is C-contiguous, of the kept shape.  Float sums and
    products accumulate in double.  Status 2: max/min over an empty axis.  Big reductions
    to several outputs split the outputs over OpenMP's threads (`_part`: each output summed
    in the same order as on one thread, so the same bits)."""
    nin = len(program.in_dtypes)
    arrays = [i for i in range(nin) if i not in scalars]
    (ref,) = program.outputs
    pre = program.dtype_of(ref)
    ot, osto = CTYPES[out_dtype]
    at = "double" if out_dtype in _FLOATS and kind in ("sum", "prod") else ot
    init = {"sum": "0", "prod": "1", "all": "1", "any": "0"}.get(kind, "0")
    update = {"sum": "acc += v;", "prod": "acc *= v;", "max": "acc = ts_max(acc, v);",
              "min": "acc = ts_min(acc, v);", "all": "acc = acc && v;", "any": "acc = acc || v;"}
    first = kind in ("max", "min")

    def value(i, ptr):
        dt = program.in_dtypes[i]
        v = f"*(const {CTYPES[dt][1]} *)({ptr})"
        return f"({v} != 0)" if dt == "bool" else v

    lines, refc = _body(program, lambda i: f"s{i}" if i in scalars else value(i, f"r{i} + i * d{i}"))
    elem = f"({ot})({refc(ref)})" if pre != out_dtype else refc(ref)
    params = ", ".join([f"char *a{i}" for i in range(nin)] + ["char *out"])
    args = ", ".join([f"a{i}" for i in range(nin)] + ["out"])
    sizes = ["  const int64_t nk = meta[0], nr = meta[1], nd = nk + nr;",
             "  const int64_t *shape = meta + 2, *st = meta + 2 + nd;",
             "  int64_t nout = 1, nin = 1;",
             "  for (int64_t d = 0; d < nk; d++) nout *= shape[d];",
             "  for (int64_t d = nk; d < nd; d++) nin *= shape[d];",
             f"  {osto} *o = ({osto} *)out;"]
    main = ([f"int {name}(const int64_t *meta, {params})", "{"] + sizes
            + ["  if (nout == 0) return 0;",
               "  if (nin == 0) {" + (" return 2;" if first else ""),
               f"    for (int64_t j = 0; j < nout; j++) o[j] = ({osto}){init};",
               "    return 0;", "  }", "#ifdef _OPENMP",
               f"  if (nout > 1 && nout * nin >= {parallel_min(program)}) {{",
               "    int ts_err = 0;", "    const int64_t nc = nout < 64 ? nout : 64;",
               "    #pragma omp parallel for schedule(static) reduction(|:ts_err)",
               "    for (int64_t c = 0; c < nc; c++)",
               f"      ts_err |= {name}_part(meta, nout * c / nc, nout * (c + 1) / nc, {args});",
               "    return ts_err;", "  }", "#endif",
               f"  return {name}_part(meta, 0, nout, {args});", "}"])
    # outputs lo..hi: the kept index of `lo` unravelled, then one output after the other
    src = [f"static int {name}_part(const int64_t *meta, int64_t lo, int64_t hi, {params})", "{",
           "  int ts_err = 0;"] + sizes + [
           "  int64_t ik[64], ir[64];", "  (void)nout;",
           "  const int64_t inner = nr > 0 ? shape[nd - 1] : 1;",
           "  for (int64_t d = nk - 1, r = lo; d >= 0; d--) {",
           "    ik[d] = r % shape[d];", "    r /= shape[d];"]
    src += [f"    a{i} += ik[d] * st[{n} * nd + d];" for n, i in enumerate(arrays)]
    src += ["  }"]
    for i in scalars:
        src.append(f"  const {CTYPES[program.in_dtypes[i]][0]} s{i} = {value(i, f'a{i}')};")
    for n, i in enumerate(arrays):
        src.append(f"  const int64_t d{i} = nr > 0 ? st[{n} * nd + nd - 1] : 0;")
    src += ["  for (int64_t j = lo; j < hi; j++) {"]
    src += [f"    char *r{i} = a{i};" for i in arrays]
    src += ["    for (int64_t d = nk; d < nd; d++) ir[d] = 0;",
            f"    {at} acc = {init};"]
    if first:
        src.append("    int started = 0;")
    src.append("    for (;;) {")
    if kind == "sum":
        # rows of unit stride: a loop the compiler vectorizes, with one partial result per
        # vector lane (OpenMP's reduction clause allows that reordering; numpy's pairwise
        # sum reorders too): 4-8x faster than one sequential accumulator
        unit_lines, unit_ref = _body(program, lambda i: f"s{i}" if i in scalars else value(
            i, f"r{i} + i * (int64_t)sizeof({CTYPES[program.in_dtypes[i]][1]})"))
        unit_elem = f"({ot})({unit_ref(ref)})" if pre != out_dtype else unit_ref(ref)
        unit = " && ".join(f"d{i} == (int64_t)sizeof({CTYPES[program.in_dtypes[i]][1]})"
                           for i in arrays) or "1"
        err = " reduction(|:ts_err)" if any(f"ts_{h}(" in x for x in unit_lines
                                             for h in _ERR_HELPERS) else ""
        src += [f"      if ({unit}) {{",
                f"        #pragma omp simd reduction(+:acc){err}",
                "        for (int64_t i = 0; i < inner; i++) {"]
        src += ["          " + x for x in unit_lines]
        src += [f"          const {at} v = ({at}){unit_elem};", f"          {update[kind]}",
                "        }", "      } else"]
    src.append("      for (int64_t i = 0; i < inner; i++) {")
    src += ["        " + x for x in lines]
    src.append(f"        const {at} v = ({at}){elem};")
    if first:
        src.append("        if (!started) { acc = v; started = 1; continue; }")
    src += [f"        {update[kind]}", "      }",
            "      int64_t d = nd - 2;", "      for (; d >= nk; d--) {", "        ir[d]++;"]
    src += [f"        r{i} += st[{n} * nd + d];" for n, i in enumerate(arrays)]
    src.append("        if (ir[d] < shape[d]) break;")
    src += [f"        r{i} -= st[{n} * nd + d] * shape[d];" for n, i in enumerate(arrays)]
    src += ["        ir[d] = 0;", "      }", "      if (d < nk) break;", "    }",
            f"    o[j] = ({osto})({ot})acc;",
            "    int64_t d = nk - 1;", "    for (; d >= 0; d--) {", "      ik[d]++;"]
    src += [f"      a{i} += st[{n} * nd + d];" for n, i in enumerate(arrays)]
    src.append("      if (ik[d] < shape[d]) break;")
    src += [f"      a{i} -= st[{n} * nd + d] * shape[d];" for n, i in enumerate(arrays)]
    src += ["      ik[d] = 0;", "    }", "  }", "  return ts_err;", "}", ""] + main
    return "\n".join(src) + "\n", f"int {name}(const int64_t *meta, {params});\n"
