"""A C step for `Gemm` (`beta*z + alpha*(x @ y)`, ops/blas.py): one call of numpy's own CBLAS
(`blas.py`) writing into z's buffer, where the numpy `perform` makes the product
in a temporary and adds it to z in a second pass (an SGD update of a 784 x 500 weight: two
more passes over 1.5 MB).

It runs on z's own buffer where the Op is in place (the `inplace` rewrite proved nothing
else reads z; z C-contiguous, writeable, sharing no memory with x or y), else on a copy of z
(the weights of a shared variable: 5 us less a W3 step), z being a float32 or float64 matrix of the
product's shape, beta not 0 (BLAS would skip z, where numpy propagates its NaN), and CBLAS
takes the layouts of x and y (`entry.blas_meta`); otherwise, and where no CBLAS is found,
the `perform`.
"""

from __future__ import annotations

import numpy as np

from ...ops.blas import Gemm
from . import blas, entry

_TYPES = {"float32": "float", "float64": "double"}

_WRAPPER = r"""
void ts_gemm_step_{t}(const int64_t *m, {T} alpha, const {T} *a, const {T} *b, {T} beta,
                      {T} *c) { ts_step_gemm_{t}(m, alpha, a, b, beta, c); }
"""
_DECL = ("void ts_gemm_step_{t}(const int64_t *m, {T} alpha, const {T} *a, const {T} *b, "
         "{T} beta, {T} *c);\n")


def _fill(text, t):
    return text.replace("{T}", _TYPES[t]).replace("{t}", t)


def _parts(node):
    """The part calling CBLAS for the function's module (`linker.EMBEDDED`; BLAS names of
    its own, `ts_step_...`), or None where the node runs `perform`."""
    if node.outputs[0].dtype not in _TYPES or blas.cblas() is None:
        return None
    return [("gemm_step", blas.decls("_step") + "".join(_fill(_WRAPPER, t) for t in _TYPES),
             blas.setter("_step") + "".join(_fill(_DECL, t) for t in _TYPES))]


def _first(a):
    """A C-contiguous view of matrix `a`'s first element: cffi's pointer to it, whatever the
    layout (BLAS reads the rest through the leading dimension)."""
    return a if a.flags.c_contiguous else a[:1, :1]


def _gemm(node, lib, ffi):
    dt = node.outputs[0].dtype
    inplace = node.op.inplace
    blas.bind(lib, ffi, "_step")
    fn = getattr(lib, f"ts_gemm_step_{dt}")
    fb, ctype = ffi.from_buffer, f"{_TYPES[dt]}[]"
    perform = node.op.perform

    def step(args):
        z, alpha, x, y, beta = args
        meta = None
        if (type(z) is np.ndarray and z.dtype == x.dtype == y.dtype == dt
                and (not inplace or z.flags.c_contiguous and z.flags.writeable) and z.size
                and z.shape == (x.shape[0], y.shape[1]) and x.shape[1] == y.shape[0]
                and x.shape[1] and beta != 0
                and not (inplace and (np.may_share_memory(z, x) or np.may_share_memory(z, y)))):
            meta = entry.blas_meta(x, y)
        if meta is None:
            return list(perform(node, args))
        if not inplace:  # a copy of z to update: one pass, where numpy's takes three
            z = np.array(z, order="C")
        fn(fb("int64_t[]", np.asarray(meta, np.int64)), alpha[()], fb(ctype, _first(x)),
           fb(ctype, _first(y)), beta[()], fb(ctype, z))
        return [z]

    def out_shapes(args):
        """For the entry (`entry.eligible`): numpy's error where the shapes do not align."""
        z, _, x, y, _ = args
        if x.shape[1] != y.shape[0] or z.shape != (x.shape[0], y.shape[1]):
            raise ValueError(f"gemm: shapes {z.shape}, {x.shape} and {y.shape} do not align")
        return [z.shape]

    def layout_meta(args, outs):
        """The product's metadata (`entry.blas_meta`) and z's bytes, which the entry copies
        into the output first; None where z is not C-contiguous or the product is empty."""
        z, _, x, y, _ = args
        meta = entry.blas_meta(x, y) if x.shape[1] and z.flags.c_contiguous else None
        return None if meta is None else meta + [z.nbytes]

    step.out_shapes, step.layout_meta = out_shapes, layout_meta
    return step


#: Op type -> (parts(node), make(node, lib, ffi)), as in `rows.EMBEDDED`
EMBEDDED = {Gemm: (_parts, _gemm)}
