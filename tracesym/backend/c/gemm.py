"""A C step for `Gemm` (`beta*z + alpha*(x @ y)`, ops/blas.py): one call of the CBLAS of the
scipy-openblas32 wheel writing into z's buffer, where the numpy `perform` makes the product
in a temporary and adds it to z in a second pass (an SGD update of a 784 x 500 weight: two
more passes over 1.5 MB).

It runs where the Op is in place (the `inplace` rewrite proved nothing else reads z), z is a
C-contiguous, writeable float32 or float64 matrix of the product's shape sharing no memory
with x or y, beta is not 0 (BLAS would skip z, where numpy propagates its NaN), and CBLAS
takes the layouts of x and y (`entry.blas_meta`); otherwise, and where the wheel is not
installed, the `perform`.
"""

from __future__ import annotations

import functools

import numpy as np

from ...ops.blas import Gemm
from . import cache, entry

_TYPES = {"float32": ("float", "s"), "float64": ("double", "d")}

_TEMPLATE = r"""
void scipy_cblas_{g}gemm(int, int, int, int, int, int, {T}, const {T} *, int, const {T} *, int,
                        {T}, {T} *, int);

/* c = beta * c + alpha * a @ b; m: M, N, K, a transposed, b transposed, lda, ldb */
void ts_gemm_{t}(const int64_t *m, {T} alpha, const {T} *a, const {T} *b, {T} beta, {T} *c) {
  scipy_cblas_{g}gemm(101, m[3] ? 112 : 111, m[4] ? 112 : 111, (int)m[0], (int)m[1], (int)m[2],
                     alpha, a, (int)m[5], b, (int)m[6], beta, c, (int)m[1]);
}
"""
_DECL = ("void ts_gemm_{t}(const int64_t *m, {T} alpha, const {T} *a, const {T} *b, {T} beta, "
         "{T} *c);\n")


def _fill(text, t):
    T, g = _TYPES[t]
    return text.replace("{T}", T).replace("{t}", t).replace("{g}", g)


@functools.lru_cache(maxsize=None)
def _module(compiledir):
    return cache.load("".join(_fill(_TEMPLATE, t) for t in _TYPES),
                      "".join(_fill(_DECL, t) for t in _TYPES), compiledir,
                      header="#include <stdint.h>\n", blas=True)


def _first(a):
    """A C-contiguous view of matrix `a`'s first element: cffi's pointer to it, whatever the
    layout (BLAS reads the rest through the leading dimension)."""
    return a if a.flags.c_contiguous else a[:1, :1]


def _gemm(node, compiledir):
    dt = node.outputs[0].dtype
    if not node.op.inplace or dt not in _TYPES or cache.blas_libs() is None:
        return None
    mod = _module(compiledir)
    fn = getattr(mod.lib, f"ts_gemm_{dt}")
    fb, ctype = mod.ffi.from_buffer, f"{_TYPES[dt][0]}[]"
    perform = node.op.perform

    def step(args):
        z, alpha, x, y, beta = args
        meta = None
        if (type(z) is np.ndarray and z.dtype == x.dtype == y.dtype == dt
                and z.flags.c_contiguous and z.flags.writeable and z.size
                and z.shape == (x.shape[0], y.shape[1]) and x.shape[1] == y.shape[0]
                and x.shape[1] and beta != 0
                and not (np.may_share_memory(z, x) or np.may_share_memory(z, y))):
            meta = entry.blas_meta(x, y)
        if meta is None:
            return list(perform(node, args))
        fn(fb("int64_t[]", np.asarray(meta, np.int64)), alpha[()], fb(ctype, _first(x)),
           fb(ctype, _first(y)), beta[()], fb(ctype, z))
        return [z]

    return step


STEPS = {Gemm: _gemm}
