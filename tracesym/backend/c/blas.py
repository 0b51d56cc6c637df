"""The CBLAS that generated C calls for matrix products: numpy's own.

numpy's wheels carry OpenBLAS (`scipy_cblas_dgemm64_`, 64-bit ints), loaded with numpy; C
code calling that same library shares its thread pool with numpy's matmul.  A second BLAS
would keep a pool of its own, whose threads spin after each product while numpy's run: a
step alternating between the two measured 1.5x slower per product on 2 cores.  Where numpy
was built against another BLAS exporting CBLAS (`cblas_dgemm`), that one is used; where none
is found (or only under an unknown name), products run through numpy's matmul.

Modules calling BLAS hold function pointers (`DECLS`), set after loading by `bind`: the
library is the one already in the process, so nothing is linked at build time.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

#: exported names of dgemm / sgemm tried in each library, with the width of their ints
_NAMES = [("scipy_cblas_{p}gemm64_", "int64_t"), ("cblas_{p}gemm64_", "int64_t"),
          ("scipy_cblas_{p}gemm", "int"), ("cblas_{p}gemm", "int")]

#: the C of a module calling BLAS: pointers to dgemm and sgemm (`{I}` their int type), the
#: setter `bind` calls, and ts_gemm_<dtype>(m, alpha, a, b, beta, c): c = beta*c + alpha*a@b
#: row-major, m = (M, N, K, a transposed, b transposed, lda, ldb); every name after `ts`
#: takes a prefix (`{P}`), so that two parts of one module each have their own
DECLS = r"""
typedef void (*ts{P}_dgemm_t)(int, int, int, {I}, {I}, {I}, double, const double *, {I},
                           const double *, {I}, double, double *, {I});
typedef void (*ts{P}_sgemm_t)(int, int, int, {I}, {I}, {I}, float, const float *, {I},
                           const float *, {I}, float, float *, {I});
static ts{P}_dgemm_t ts{P}_dgemm;
static ts{P}_sgemm_t ts{P}_sgemm;
void ts{P}_set_blas(void *d, void *s) { ts{P}_dgemm = (ts{P}_dgemm_t)d; ts{P}_sgemm = (ts{P}_sgemm_t)s; }

static inline void ts{P}_gemm_float64(const int64_t *m, double alpha, const double *a,
                                   const double *b, double beta, double *c)
{
  ts{P}_dgemm(101, m[3] ? 112 : 111, m[4] ? 112 : 111, m[0], m[1], m[2], alpha, a, m[5], b, m[6],
           beta, c, m[1]);
}

static inline void ts{P}_gemm_float32(const int64_t *m, float alpha, const float *a,
                                   const float *b, float beta, float *c)
{
  ts{P}_sgemm(101, m[3] ? 112 : 111, m[4] ? 112 : 111, m[0], m[1], m[2], alpha, a, m[5], b, m[6],
           beta, c, m[1]);
}
"""


def _numpy_blas_paths() -> list:
    """The shared libraries numpy's extension loaded whose name says BLAS (from this
    process's memory map; none where there is no /proc)."""
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy loads its BLAS with the extension; make sure
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if line.rstrip().endswith(".so")
                     or ".so." in line.split()[-1]}
    except OSError:
        return []
    return sorted(p for p in paths if "blas" in p.rsplit("/", 1)[-1].lower())


@functools.lru_cache(maxsize=None)
def cblas():
    """(address of dgemm, address of sgemm, their int type) of numpy's CBLAS, else None."""
    for path in _numpy_blas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, itype in _NAMES:
            try:
                d, s = (getattr(lib, name.format(p=p)) for p in "ds")
            except AttributeError:
                continue
            return (ctypes.cast(d, ctypes.c_void_p).value, ctypes.cast(s, ctypes.c_void_p).value,
                    itype)
    return None


def decls(prefix: str = "") -> str:
    """`DECLS` for the CBLAS found (call only where `cblas()` is not None), its names
    `ts<prefix>_...`."""
    return DECLS.replace("{I}", cblas()[2]).replace("{P}", prefix)


def setter(prefix: str = "") -> str:
    """The declaration of the setter of `decls(prefix)`, for the module's cdef."""
    return f"void ts{prefix}_set_blas(void *d, void *s);\n"


def bind(lib, ffi, prefix: str = ""):
    """Point a loaded module's BLAS pointers (those of `decls(prefix)`) at the library."""
    d, s, _ = cblas()
    getattr(lib, f"ts{prefix}_set_blas")(ffi.cast("void *", d), ffi.cast("void *", s))
