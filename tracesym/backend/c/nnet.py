"""C steps for the convolution and pooling Ops (ops/conv.py, ops/pool.py).

Convolutions are im2col + GEMM.  The patches of a chunk of B images are copied by a C kernel
into a reused (C*kh*kw, B*ho*wo) buffer, rows = (channel, filter tap), columns = (image,
output pixel), so each of the three Ops is one BLAS product per chunk and group (numpy's
matmul, `out=` into reused buffers), and the input gradient is the product followed by the
C adjoint of im2col (col2im, adding each patch back).  Chunks bound the buffer's memory; they
are big (`CHUNK_BYTES`) because every threaded BLAS call synchronises its threads, and on a
busy machine, where a thread waits for a time slice, seven 4 MiB chunks made a convolution
four times slower than one product over the whole batch.  Each step keeps its buffer
between calls (a compiled function is not reentrant anyway, see linker.py).

Pooling windows are clipped to the image, as Theano's are.  The forward loop goes tap by tap
along each output row (a branch-free maximum; sums in numpy's order).  Max pooling's gradient
finds each window's first maximum and adds the output gradient there:
one pass reading x and writing the input gradient, no dense comparison of x with the
upsampled maximum and no stored argmax (reading x again costs what reading an index array
would).  `MaxPoolGradGrad` reads `g` at the same positions; sum and average pooling's
gradient spreads each output gradient over its window.

The kernels take float32 or float64 (every array of one node the same dtype); other nodes
run their numpy `perform`, which stays the reference the tests compare these steps with.
One fixed module holds every kernel, compiled once per cache directory.
"""

from __future__ import annotations

import numpy as np

from ...ops.conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from ...ops.pool import AvgPoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool2d
from . import cache

#: the patch buffer of one chunk of images holds at most about this many bytes (a whole
#: LeNet batch of 500 is one chunk)
CHUNK_BYTES = 1 << 26

_DECLS = """
void ts_im2col_{t}({T} *x, {T} *cols, long long *p, long long n, long long sn, long long sr);
void ts_col2im_{t}({T} *cols, {T} *x, long long *p, long long n, long long sn, long long sr);
void ts_pool_{t}({T} *x, {T} *out, long long *p, long long planes, int mode);
void ts_pool_grad_{t}({T} *x, {T} *gz, {T} *gx, long long *p, long long planes, int mode);
void ts_maxpool_gradgrad_{t}({T} *x, {T} *g, {T} *out, long long *p, long long planes);
"""

# p (conv): c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo
# p (pool): h, w, ho, wo, kh, kw, sh, sw, ph, pw
_COMMON = r"""
/* The first j in [0, wo) with 0 <= j * s - p + off, and one past the last with it < w:
   the output columns whose input column lies inside the image. */
static inline void ts_span(long long w, long long wo, long long s, long long p, long long off,
                           long long *lo, long long *hi) {
  long long a = p - off, b = w + p - off;          /* need a <= j * s < b */
  long long l = a <= 0 ? 0 : (a + s - 1) / s;
  long long h = b <= 0 ? 0 : (b + s - 1) / s;
  *lo = l < wo ? l : wo;
  *hi = h < wo ? h : wo;
  if (*hi < *lo) *hi = *lo;
}

/* The window of output (i, j), clipped: rows [*r0, *r1), columns [*c0, *c1) of the image,
   and the count an average divides by (mode 3 counts the padding too). */
static inline void ts_window(long long *p, long long i, long long j, int mode, long long *r0,
                             long long *r1, long long *c0, long long *c1, long long *count) {
  long long h = p[0], w = p[1], kh = p[4], kw = p[5], sh = p[6], sw = p[7], ph = p[8], pw = p[9];
  long long y0 = i * sh - ph, x0 = j * sw - pw, y1 = y0 + kh, x1 = x0 + kw;
  *r0 = y0 > 0 ? y0 : 0; *r1 = y1 < h ? y1 : h;
  *c0 = x0 > 0 ? x0 : 0; *c1 = x1 < w ? x1 : w;
  if (mode == 3) {
    long long ye = y1 < h + ph ? y1 : h + ph, xe = x1 < w + pw ? x1 : w + pw;
    *count = (ye - y0) * (xe - x0);
  } else {
    *count = (*r1 - *r0) * (*c1 - *c0);
  }
}
"""

_TEMPLATE = r"""

/* cols[i * sn + r * sr + y * wo + x] = x_pad[i, ch, y * sh + a * dh, x * sw + b * dw] for
   image i < n, row r = (ch * kh + a) * kw + b. */
void ts_im2col_{t}({T} *x, {T} *cols, long long *p, long long n, long long sn, long long sr) {
  long long c = p[0], h = p[1], w = p[2], kh = p[3], kw = p[4], ph = p[5], pw = p[6];
  long long sh = p[7], sw = p[8], dh = p[9], dw = p[10], ho = p[11], wo = p[12];
  for (long long i = 0; i < n; i++)
    for (long long ch = 0; ch < c; ch++) {
      const {T} *src = x + (i * c + ch) * h * w;
      for (long long a = 0; a < kh; a++)
        for (long long b = 0; b < kw; b++) {
          {T} *dst = cols + i * sn + ((ch * kh + a) * kw + b) * sr;
          long long lo, hi;
          ts_span(w, wo, sw, pw, b * dw, &lo, &hi);
          for (long long y = 0; y < ho; y++, dst += wo) {
            long long yy = y * sh - ph + a * dh;
            if (yy < 0 || yy >= h) {
              for (long long xo = 0; xo < wo; xo++) dst[xo] = 0;
              continue;
            }
            const {T} *row = src + yy * w - pw + b * dw;
            for (long long xo = 0; xo < lo; xo++) dst[xo] = 0;
            if (sw == 1)
              for (long long xo = lo; xo < hi; xo++) dst[xo] = row[xo];
            else
              for (long long xo = lo; xo < hi; xo++) dst[xo] = row[xo * sw];
            for (long long xo = hi; xo < wo; xo++) dst[xo] = 0;
          }
        }
    }
}

/* The adjoint of im2col: x (zeroed here) gets every patch element added back. */
void ts_col2im_{t}({T} *cols, {T} *x, long long *p, long long n, long long sn, long long sr) {
  long long c = p[0], h = p[1], w = p[2], kh = p[3], kw = p[4], ph = p[5], pw = p[6];
  long long sh = p[7], sw = p[8], dh = p[9], dw = p[10], ho = p[11], wo = p[12];
  for (long long i = 0; i < n; i++)
    for (long long ch = 0; ch < c; ch++) {
      {T} *img = x + (i * c + ch) * h * w;
      for (long long k = 0; k < h * w; k++) img[k] = 0;
      for (long long a = 0; a < kh; a++)
        for (long long b = 0; b < kw; b++) {
          const {T} *src = cols + i * sn + ((ch * kh + a) * kw + b) * sr;
          long long lo, hi;
          ts_span(w, wo, sw, pw, b * dw, &lo, &hi);
          for (long long y = 0; y < ho; y++, src += wo) {
            long long yy = y * sh - ph + a * dh;
            if (yy < 0 || yy >= h) continue;
            {T} *row = img + yy * w - pw + b * dw;
            if (sw == 1)
              for (long long xo = lo; xo < hi; xo++) row[xo] += src[xo];
            else
              for (long long xo = lo; xo < hi; xo++) row[xo * sw] += src[xo];
          }
        }
    }
}


/* The offset in its plane of the window's first maximum (NaN-blind, as `>` is). */
static inline long long ts_argmax_{t}(const {T} *x, long long w, long long r0, long long r1,
                                   long long c0, long long c1) {
  long long best = r0 * w + c0;
  {T} m = x[best];
  for (long long r = r0; r < r1; r++)
    for (long long q = c0; q < c1; q++)
      if (x[r * w + q] > m) { m = x[r * w + q]; best = r * w + q; }
  return best;
}

/* mode 0 max (NaN-propagating, as np.maximum), 1 sum, 2 average over the image elements,
   3 average counting the padding.  Tap by tap, as the numpy version adds, each tap a
   branch-free loop along the output row. */
void ts_pool_{t}({T} *x, {T} *out, long long *p, long long planes, int mode) {
  long long h = p[0], w = p[1], ho = p[2], wo = p[3], kh = p[4], kw = p[5];
  long long sh = p[6], sw = p[7], ph = p[8], pw = p[9];
  for (long long k = 0; k < planes; k++)
    for (long long i = 0; i < ho; i++) {
      const {T} *xp = x + k * h * w;
      {T} *o = out + (k * ho + i) * wo;
      for (long long j = 0; j < wo; j++) o[j] = mode == 0 ? -__builtin_inf() : 0;
      for (long long a = 0; a < kh; a++) {
        long long r = i * sh - ph + a;
        if (r < 0 || r >= h) continue;
        for (long long b = 0; b < kw; b++) {
          const {T} *src = xp + r * w - pw + b;
          long long lo, hi;
          ts_span(w, wo, sw, pw, b, &lo, &hi);
          if (mode == 0)
            for (long long j = lo; j < hi; j++) {
              {T} v = src[j * sw];
              o[j] = (v > o[j] || v != v) ? v : o[j];
            }
          else
            for (long long j = lo; j < hi; j++) o[j] += src[j * sw];
        }
      }
      if (mode >= 2)
        for (long long j = 0; j < wo; j++) {
          long long r0, r1, c0, c1, count;
          ts_window(p, i, j, mode, &r0, &r1, &c0, &c1, &count);
          o[j] /= ({T})count;
        }
    }
}

/* gx (zeroed here, x's plane shape) gets each gz at its window's first maximum of x (mode 0),
   or divided by the count over the window (modes 1-3; x unused). */
void ts_pool_grad_{t}({T} *x, {T} *gz, {T} *gx, long long *p, long long planes, int mode) {
  long long h = p[0], w = p[1], ho = p[2], wo = p[3];
  for (long long k = 0; k < planes; k++) {
    const {T} *gp = gz + k * ho * wo;
    {T} *dp = gx + k * h * w;
    for (long long e = 0; e < h * w; e++) dp[e] = 0;
    for (long long i = 0; i < ho; i++)
      for (long long j = 0; j < wo; j++) {
        long long r0, r1, c0, c1, count;
        ts_window(p, i, j, mode, &r0, &r1, &c0, &c1, &count);
        if (mode == 0) {
          dp[ts_argmax_{t}(x + k * h * w, w, r0, r1, c0, c1)] += gp[i * wo + j];
          continue;
        }
        {T} v = mode == 1 ? gp[i * wo + j] : gp[i * wo + j] / ({T})count;
        for (long long r = r0; r < r1; r++)
          for (long long q = c0; q < c1; q++) dp[r * w + q] += v;
      }
  }
}

/* out[i, j] = g at the first maximum of x in window (i, j). */
void ts_maxpool_gradgrad_{t}({T} *x, {T} *g, {T} *out, long long *p, long long planes) {
  long long h = p[0], w = p[1], ho = p[2], wo = p[3];
  for (long long k = 0; k < planes; k++)
    for (long long i = 0; i < ho; i++)
      for (long long j = 0; j < wo; j++) {
        long long r0, r1, c0, c1, count;
        ts_window(p, i, j, 0, &r0, &r1, &c0, &c1, &count);
        long long at = ts_argmax_{t}(x + k * h * w, w, r0, r1, c0, c1);
        out[(k * ho + i) * wo + j] = g[k * h * w + at];
      }
}
"""

_TYPES = {"float32": ("f32", "float"), "float64": ("f64", "double")}


def _source():
    """(C source, cdef): the helpers, then the kernels for each dtype."""
    subst = list(_TYPES.values())
    src = _COMMON + "".join(_TEMPLATE.replace("{t}", t).replace("{T}", ct) for t, ct in subst)
    return src, "".join(_DECLS.replace("{t}", t).replace("{T}", ct) for t, ct in subst)


_SOURCE, _CDEF = _source()


def _module(compiledir):
    return cache.load(_SOURCE, _CDEF, compiledir)


def _float_dtype(node) -> str | None:
    """The one float dtype of every array the node reads and writes, or None."""
    dts = {v.dtype for v in node.inputs if v.ndim} | {v.dtype for v in node.outputs}
    return dts.pop() if len(dts) == 1 and next(iter(dts)) in _TYPES else None


class _Kernels:
    """The module's functions for one dtype, and cffi's pointer conversions."""

    def __init__(self, compiledir, dtype):
        mod = _module(compiledir)
        t = _TYPES[dtype][0]
        self.ffi, self.dtype = mod.ffi, np.dtype(dtype)
        for name in ("im2col", "col2im", "pool", "pool_grad", "maxpool_gradgrad"):
            setattr(self, name, getattr(mod.lib, f"ts_{name}_{t}"))

    def ptr(self, a):
        """A pointer to the data of C-contiguous `a` (which may be empty)."""
        return self.ffi.cast("void *", a.ctypes.data)

    def params(self, values):
        """The int64 parameters as a C array (which keeps its numpy buffer alive)."""
        return self.ffi.from_buffer("long long[]", np.array(values, dtype=np.int64))


def _contig(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


# -- convolution -------------------------------------------------------------------------------

class _Conv:
    """The pieces the three convolution steps share: the kernels, the patch buffer of a chunk
    and the chunk loop."""

    def __init__(self, op, kern):
        self.op, self.k = op, kern
        self.buf = self.prod = None

    def geometry(self, c, h, w, kh, kw):
        op = self.op
        ph, pw = op.pads(kh, kw)
        ho, wo = op.out_hw(h, w, kh, kw)
        return (c, h, w, kh, kw, ph, pw, *op.subsample, *op.filter_dilation, ho, wo), ho, wo

    def chunks(self, n, rows, pixels):
        """(start, stop) of chunks of images whose (rows, pixels) patches fill about
        `CHUNK_BYTES`, and a buffer for the largest chunk's patches."""
        per = max(rows * pixels * self.k.dtype.itemsize, 1)
        b = max(1, min(n, CHUNK_BYTES // per))
        if self.buf is None or self.buf.size < rows * b * pixels:
            self.buf = np.empty(rows * b * pixels, self.k.dtype)
        return [(s, min(s + b, n)) for s in range(0, n, b)]

    def product_buffer(self, shape):
        """A reused array of `shape` for a chunk's product."""
        size = int(np.prod(shape))
        if self.prod is None or self.prod.size < size:
            self.prod = np.empty(size, self.k.dtype)
        return self.prod[:size].reshape(shape)

    def patches(self, x, i0, i1, p, rows, pixels):
        """The (rows, (i1 - i0) * pixels) patch matrix of images i0..i1 of x."""
        b = i1 - i0
        cols = self.buf[:rows * b * pixels].reshape(rows, b * pixels)
        self.k.im2col(self.k.ptr(x[i0:i1]), self.k.ptr(cols), p, b, pixels, b * pixels)
        return cols


def _conv_forward(node, compiledir):
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    conv = _Conv(op, _Kernels(compiledir, dtype))

    def step(args):
        x, w = (_contig(a, dtype) for a in args)
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        op.check_channels(c, o, cg, ValueError)
        op.check_fits(h, wd, kh, kw, ValueError)
        geo, ho, wo = conv.geometry(c, h, wd, kh, kw)
        g, pix, rows = op.groups, ho * wo, c * kh * kw
        y = np.empty((n, o, ho, wo), dtype)
        if y.size == 0:
            return [y]
        if rows == 0:
            y[...] = 0
            return [y]
        filters = op._filters(w)  # (g, O/g, C/g*kh*kw)
        p = conv.k.params(geo)
        for i0, i1 in conv.chunks(n, rows, pix):
            cols = conv.patches(x, i0, i1, p, rows, pix).reshape(g, rows // g, -1)
            prod = np.matmul(filters, cols, out=conv.product_buffer((g, o // g, cols.shape[-1])))
            np.copyto(y[i0:i1].reshape(i1 - i0, o, pix),
                      prod.reshape(o, i1 - i0, pix).transpose(1, 0, 2))
        return [y]

    return step


def _conv_grad_weights(node, compiledir):
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    conv = _Conv(op, _Kernels(compiledir, dtype))

    def step(args):
        x, gy = (_contig(a, dtype) for a in args[:2])
        kh, kw = int(args[2]), int(args[3])
        n, c, h, wd = x.shape
        o, g = gy.shape[1], op.groups
        op.check_channels(c, o, c // g, ValueError)
        op.check_fits(h, wd, kh, kw, ValueError)
        op._gy_checked(gy, n, o, h, wd, kh, kw)
        geo, ho, wo = conv.geometry(c, h, wd, kh, kw)
        pix, rows = ho * wo, c * kh * kw
        gw = np.zeros((g, o // g, rows // g), dtype)
        if gw.size and n * pix:
            p = conv.k.params(geo)
            gyc, part = gy.reshape(n, o, pix), None
            for i0, i1 in conv.chunks(n, rows, pix):
                cols = conv.patches(x, i0, i1, p, rows, pix).reshape(g, rows // g, -1)
                gyt = gyc[i0:i1].transpose(1, 0, 2).reshape(g, o // g, -1)
                if i0 == 0:
                    np.matmul(gyt, cols.transpose(0, 2, 1), out=gw)
                    continue
                part = np.empty_like(gw) if part is None else part
                np.matmul(gyt, cols.transpose(0, 2, 1), out=part)
                gw += part
        gw = gw.reshape(o, c // g, kh, kw)
        return [gw[:, :, ::-1, ::-1].copy() if op.filter_flip else gw]

    return step


def _conv_grad_inputs(node, compiledir):
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    conv = _Conv(op, _Kernels(compiledir, dtype))

    def step(args):
        w, gy = (_contig(a, dtype) for a in args[:2])
        h, wd = int(args[2]), int(args[3])
        (o, cg, kh, kw), n, g = w.shape, gy.shape[0], op.groups
        c = cg * g
        op.check_channels(c, o, cg, ValueError)
        op.check_fits(h, wd, kh, kw, ValueError)
        op._gy_checked(gy, n, o, h, wd, kh, kw)
        geo, ho, wo = conv.geometry(c, h, wd, kh, kw)
        pix, rows = ho * wo, c * kh * kw
        gx = np.empty((n, c, h, wd), dtype)  # col2im zeroes each image it adds into
        if gx.size == 0 or rows == 0 or pix == 0:
            gx[...] = 0
            return [gx]
        wt = op._filters(w).transpose(0, 2, 1)  # (g, C/g*kh*kw, O/g)
        p = conv.k.params(geo)
        gyc = gy.reshape(n, o, pix)
        for i0, i1 in conv.chunks(n, rows, pix):
            b = i1 - i0
            gyt = gyc[i0:i1].transpose(1, 0, 2).reshape(g, o // g, b * pix)
            cols = conv.buf[:rows * b * pix].reshape(g, rows // g, b * pix)
            np.matmul(wt, gyt, out=cols)
            conv.k.col2im(conv.k.ptr(cols), conv.k.ptr(gx[i0:i1]), p, b, pix, b * pix)
        return [gx]

    return step


# -- pooling -----------------------------------------------------------------------------------

_MODE = {"max": 0, "sum": 1, "average_exc_pad": 2, "average_inc_pad": 3}


def _pool_params(op, kern, h, w):
    ho, wo = op.out_hw(h, w)
    return (ho, wo), kern.params((h, w, ho, wo, *op.ws, *op.stride, *op.pad))


def _planes(shape):
    return int(np.prod(shape[:-2], dtype=np.int64))


def _pool(node, compiledir):
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    kern, mode = _Kernels(compiledir, dtype), _MODE[op.mode]

    def step(args):
        x = _contig(args[0], dtype)
        h, w = x.shape[-2:]
        (ho, wo), p = _pool_params(op, kern, h, w)
        out = np.empty(x.shape[:-2] + (ho, wo), dtype)
        if out.size:
            kern.pool(kern.ptr(x), kern.ptr(out), p, _planes(x.shape), mode)
        return [out]

    return step


def _pool_grad(node, compiledir):
    """MaxPoolGrad (x, gz) and AvgPoolGrad (gz, h, w): the input gradient."""
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    kern, mode = _Kernels(compiledir, dtype), _MODE[op.mode]
    is_max = isinstance(op, MaxPoolGrad)

    def step(args):
        if is_max:
            x, gz = (_contig(a, dtype) for a in args)
            shape = x.shape
        else:
            gz, x = _contig(args[0], dtype), None
            shape = gz.shape[:-2] + (int(args[1]), int(args[2]))
        h, w = shape[-2:]
        (ho, wo), p = _pool_params(op, kern, h, w)
        if gz.shape != shape[:-2] + (ho, wo):
            raise ValueError(f"max-pool gradient: gz has shape {gz.shape}, the pooled shape is "
                             f"{shape[:-2] + (ho, wo)}" if is_max else
                             f"pool gradient: gz has shape {gz.shape}, but a {h}x{w} input "
                             f"pools to {(ho, wo)}")
        gx = np.empty(shape, dtype)
        if gx.size:
            kern.pool_grad(kern.ptr(x if is_max else gz), kern.ptr(gz), kern.ptr(gx), p,
                           _planes(shape), mode)
        return [gx]

    return step


def _maxpool_gradgrad(node, compiledir):
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    kern = _Kernels(compiledir, dtype)

    def step(args):
        x, g = (_contig(a, dtype) for a in args)
        if g.shape != x.shape:
            raise ValueError(f"max-pool gradient: g has shape {g.shape}, x has {x.shape}")
        h, w = x.shape[-2:]
        (ho, wo), p = _pool_params(op, kern, h, w)
        out = np.empty(x.shape[:-2] + (ho, wo), dtype)
        if out.size:
            kern.maxpool_gradgrad(kern.ptr(x), kern.ptr(g), kern.ptr(out), p, _planes(x.shape))
        return [out]

    return step


#: Op type -> make(node, compiledir): the node's C step, or None where it runs `perform`
STEPS = {Conv2d: _conv_forward, Conv2dGradWeights: _conv_grad_weights,
         Conv2dGradInputs: _conv_grad_inputs, Pool2d: _pool, MaxPoolGrad: _pool_grad,
         AvgPoolGrad: _pool_grad, MaxPoolGradGrad: _maxpool_gradgrad}
