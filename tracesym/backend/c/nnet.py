"""C steps for the convolution and pooling Ops (ops/conv.py, ops/pool.py).

Convolutions run image by image on OpenMP's threads, each thread with its own tile: the
image's patches (rows = (channel, filter tap), columns = output pixels, im2col of one image)
are copied into the tile, which stays in cache, and multiplied there by a register-blocked
product (`ts_gemm`).  The forward product lands in the output's layout; the input gradient
multiplies the transposed filters by the image's output gradient and adds the patches back
(col2im) into the image; the filter gradient sums, over ranges of images, the output
gradient times the transposed patches.  Against one im2col matrix of the whole batch and
numpy's BLAS this writes no patch matrix to memory (LeNet's second layer's was 64 MiB: 9 ms
to write on one core, against 22 ms for its product), needs no transposing copies, does the
thin products of few-channel layers well (BLAS took 16 ms for one that takes 10 ms here), and
keeps going when another process takes a core: threads take images as they come (dynamic
schedule), where a threaded BLAS call waits for its slowest thread (a 2-thread product ran
up to 20 times slower on a 2-core machine while other work ran).  The filter gradient's sums
do not depend on that schedule: each range of images (`TS_BLOCKS` at most) has its own
buffer, and they are added in order.

Pooling windows are clipped to the image, as Theano's are.  The forward loop goes tap by tap
along each output row (a branch-free maximum; sums in numpy's order).  Max pooling's gradient
finds each window's first maximum and adds the output gradient there:
one pass reading x and writing the input gradient, no dense comparison of x with the
upsampled maximum and no stored argmax (reading x again costs what reading an index array
would).  `MaxPoolGradGrad` reads `g` at the same positions; sum and average pooling's
gradient spreads each output gradient over its window.  Planes are shared among threads.

The kernels take float32 or float64 (every array of one node the same dtype); other nodes
run their numpy `perform`, which stays the reference the tests compare these steps with.
One fixed module holds every kernel, compiled once per cache directory.
"""

from __future__ import annotations

import numpy as np

from ...ops.conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from ...ops.pool import AvgPoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool2d
from . import cache
from .cgen import PARALLEL_MIN

_DECLS = """
int ts_conv_fwd_{t}({T} *x, {T} *f, {T} *y, long long *p, long long n, long long g, long long og);
int ts_conv_gw_{t}({T} *x, {T} *gy, {T} *gw, long long *p, long long n, long long g, long long og);
int ts_conv_gx_{t}({T} *wt, {T} *gy, {T} *gx, long long *p, long long n, long long g, long long og);
void ts_pool_{t}({T} *x, {T} *out, long long *p, long long planes, int mode);
void ts_pool_grad_{t}({T} *x, {T} *gz, {T} *gx, long long *p, long long planes, int mode);
void ts_maxpool_gradgrad_{t}({T} *x, {T} *g, {T} *out, long long *p, long long planes);
"""

# p (conv): c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo
# p (pool): h, w, ho, wo, kh, kw, sh, sw, ph, pw
# Pooling over at least PARALLEL_MIN input elements and convolutions of at least TS_PAR_MACS
# multiply-adds run on OpenMP's threads, which take TS_CHUNK images or TS_PLANES pooling
# planes at a time.  The filter gradient multiplies several images' patches at once up to a
# depth of TS_GW_DEPTH pixels.  ts_gemm's blocks are up to TS_MR rows x TS_NV vectors of
# TS_VEC bytes: 16 x 64 with AVX-512's 32 registers, 8 x 32 with AVX2's 16.
_HEADER = f"""
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#define TS_PAR_MIN {PARALLEL_MIN}
#define TS_PAR_MACS (1LL << 20)
#define TS_CHUNK 4
#define TS_BLOCKS 16
#define TS_GW_BYTES (1LL << 26)
#define TS_GW_DEPTH 256
#define TS_PLANES 64
#ifdef __AVX512F__
#define TS_VEC 64
#define TS_MR 16
#else
#define TS_VEC 32
#define TS_MR 8
#endif
#define TS_NV 1
#define TS_FMA optimize("fp-contract=fast")
"""

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

/* Whether pooling parameters p are 2x2 windows with stride 2, all inside the image: max
   pooling's common case, with loops of its own (ts_max2_{f32,f64}). */
static inline int ts_is_2x2(const long long *p) {
  return p[4] == 2 && p[5] == 2 && p[6] == 2 && p[7] == 2 && p[8] == 0 && p[9] == 0 &&
         2 * p[2] <= p[0] && 2 * p[3] <= p[1];
}

/* The window of output (i, j), clipped: rows [*r0, *r1), columns [*c0, *c1) of the image,
   and the count an average divides by (mode 3 counts the padding too). */
static inline void ts_window(const long long *p, long long i, long long j, int mode, long long *r0,
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

/* The patches of image x (C, H, W) into tile: row r = (ch * kh + a) * kw + b at tile + r * ld,
   column y * wo + x = x_pad[ch, y * sh + a * dh, x * sw + b * dw]. */
static void ts_tile_{t}(const {T} *x, {T} *tile, const long long *p, long long ld) {
  long long c = p[0], h = p[1], w = p[2], kh = p[3], kw = p[4], ph = p[5], pw = p[6];
  long long sh = p[7], sw = p[8], dh = p[9], dw = p[10], ho = p[11], wo = p[12];
  for (long long b = 0; b < kw; b++) {  /* tap column outermost: one ts_span each */
    long long lo, hi;
    ts_span(w, wo, sw, pw, b * dw, &lo, &hi);
    for (long long ch = 0; ch < c; ch++)
      for (long long a = 0; a < kh; a++) {
        const {T} *src = x + ch * h * w;
        {T} *d = tile + ((ch * kh + a) * kw + b) * ld;
        for (long long y = 0; y < ho; y++, d += wo) {
          long long yy = y * sh - ph + a * dh;
          if (yy < 0 || yy >= h) {
            for (long long xo = 0; xo < wo; xo++) d[xo] = 0;
            continue;
          }
          const {T} *row = src + yy * w - pw + b * dw;
          if (sw == 1 && lo == 0 && hi == wo) {  /* the common case: one copy */
            __builtin_memcpy(d, row, wo * sizeof({T}));
            continue;
          }
          for (long long xo = 0; xo < lo; xo++) d[xo] = 0;
          if (sw == 1)
            for (long long xo = lo; xo < hi; xo++) d[xo] = row[xo];
          else
            for (long long xo = lo; xo < hi; xo++) d[xo] = row[xo * sw];
          for (long long xo = hi; xo < wo; xo++) d[xo] = 0;
        }
      }
  }
}

/* The adjoint of the patches of one image: x (zeroed here) gets row r of cols (at
   cols + r * ld) added back at the positions ts_tile read it from. */
static void ts_col2im_image_{t}(const {T} *cols, {T} *x, const long long *p, long long ld) {
  long long c = p[0], h = p[1], w = p[2], kh = p[3], kw = p[4], ph = p[5], pw = p[6];
  long long sh = p[7], sw = p[8], dh = p[9], dw = p[10], ho = p[11], wo = p[12];
  for (long long k = 0; k < c * h * w; k++) x[k] = 0;
  for (long long b = 0; b < kw; b++) {  /* as in ts_tile */
    long long lo, hi;
    ts_span(w, wo, sw, pw, b * dw, &lo, &hi);
    for (long long ch = 0; ch < c; ch++)
      for (long long a = 0; a < kh; a++) {
        const {T} *src = cols + ((ch * kh + a) * kw + b) * ld;
        {T} *img = x + ch * h * w;
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

/* TS_NV vectors of columns per block of the product below; the rows of its right operand
   are padded to a multiple of them.  The product fuses multiply-adds, as BLAS does (10%
   faster here; the module is otherwise compiled without contraction). */
typedef {T} ts_v{t} __attribute__((vector_size(TS_VEC)));
#define TS_W{t} ((long long)(TS_NV * TS_VEC / sizeof({T})))
#define TS_PAD{t}(n) (((n) + TS_W{t} - 1) / TS_W{t} * TS_W{t})

/* c[i, j] = (add ? c[i, j] : 0) + sum over q < k of a[i * lda + q] * b[q * ldb + j], for
   i < m, j < nc.  Blocks of mr (a constant, at most TS_MR) rows x TS_NV vectors of columns
   keep their sums in registers over the whole k loop (rows past m repeat row i; their sums
   are dropped).  Rows of b must be readable (and finite) up to nc rounded up to TS_W{t}. */
static inline __attribute__((always_inline, TS_FMA)) void ts_gemm_mr_{t}(
    const {T} *a, long long lda, const {T} *b, long long ldb, {T} *c, long long ldc,
    long long m, long long k, long long nc, int add, const int mr) {
  const long long vl = TS_W{t} / TS_NV;
  for (long long j0 = 0; j0 < nc; j0 += TS_W{t}) {
    long long jn = nc - j0 < TS_W{t} ? nc - j0 : TS_W{t};
    for (long long i = 0; i < m; i += mr) {
      const {T} *ar[TS_MR];
      for (int u = 0; u < mr; u++) ar[u] = a + (i + u < m ? i + u : i) * lda;
      ts_v{t} s[TS_MR][TS_NV];
      for (int u = 0; u < mr; u++)
        for (int v = 0; v < TS_NV; v++) s[u][v] = (ts_v{t}){0};
      const {T} *bq = b + j0;
      for (long long q = 0; q < k; q++, bq += ldb) {
        ts_v{t} bv[TS_NV];
        for (int v = 0; v < TS_NV; v++) __builtin_memcpy(&bv[v], bq + v * vl, sizeof bv[v]);
        #pragma GCC unroll 16
        for (int u = 0; u < mr; u++) {
          {T} x = ar[u][q];
          #pragma GCC unroll 4
          for (int v = 0; v < TS_NV; v++) s[u][v] += x * bv[v];
        }
      }
      for (int u = 0; u < mr && i + u < m; u++) {
        {T} *cr = c + (i + u) * ldc + j0;
        if (jn == TS_W{t}) {
          for (int v = 0; v < TS_NV; v++) {
            if (add) {
              ts_v{t} cv;
              __builtin_memcpy(&cv, cr + v * vl, sizeof cv);
              s[u][v] += cv;
            }
            __builtin_memcpy(cr + v * vl, &s[u][v], sizeof s[u][v]);
          }
          continue;
        }
        {T} out[TS_W{t}];
        __builtin_memcpy(out, s[u], sizeof out);
        for (long long j = 0; j < jn; j++) cr[j] = add ? cr[j] + out[j] : out[j];
      }
    }
  }
}

/* ts_gemm_mr with the block height among 16, 12, 10 and 8 (up to TS_MR) that pads m the
   least (LeNet's 50 and 20 filters: 10, against 16's 28% and 60% of wasted rows). */
static __attribute__((TS_FMA)) void ts_gemm_{t}(const {T} *a, long long lda, const {T} *b,
                                                long long ldb, {T} *c, long long ldc,
                                                long long m, long long k, long long nc,
                                                int add) {
#if TS_MR >= 16
  int best = 16;
  for (int mr = 12; mr >= 8; mr -= 2)
    if ((m + mr - 1) / mr * mr < (m + best - 1) / best * best) best = mr;
  if (best == 16) ts_gemm_mr_{t}(a, lda, b, ldb, c, ldc, m, k, nc, add, 16);
  else if (best == 12) ts_gemm_mr_{t}(a, lda, b, ldb, c, ldc, m, k, nc, add, 12);
  else if (best == 10) ts_gemm_mr_{t}(a, lda, b, ldb, c, ldc, m, k, nc, add, 10);
  else ts_gemm_mr_{t}(a, lda, b, ldb, c, ldc, m, k, nc, add, 8);
#else
  ts_gemm_mr_{t}(a, lda, b, ldb, c, ldc, m, k, nc, add, TS_MR);
#endif
}

/* A zeroed per-thread buffer of n elements (NULL where memory ran out). */
static {T} *ts_scratch_{t}(long long n) { return calloc((size_t)(n > 0 ? n : 1), sizeof({T})); }

/* y[i] = f[gi] @ patches(x[i]) per group gi, image by image on OpenMP's threads; each
   image's patch tile stays in cache.  f: (g, og, rg). */
int ts_conv_fwd_{t}({T} *x, {T} *f, {T} *y, long long *p, long long n, long long g,
                    long long og) {
  long long rows = p[0] * p[3] * p[4], rg = rows / g, pix = p[11] * p[12];
  long long ld = TS_PAD{t}(pix), chw = p[0] * p[1] * p[2];
  int err = 0;
  #pragma omp parallel if (n > 1 && n * og * g * rg * pix >= TS_PAR_MACS) reduction(|:err)
  {
    {T} *tile = ts_scratch_{t}(rows * ld);
    err |= tile == NULL;
    #pragma omp for schedule(dynamic, TS_CHUNK)
    for (long long i = 0; i < n; i++) {
      if (tile == NULL) continue;
      ts_tile_{t}(x + i * chw, tile, p, ld);
      for (long long gi = 0; gi < g; gi++)
        ts_gemm_{t}(f + gi * og * rg, rg, tile + gi * rg * ld, ld, y + (i * g + gi) * og * pix,
                    pix, og, rg, pix, 0);
    }
    free(tile);
  }
  return err;
}

/* gw (g, og, rg) = sum over images i of gy[i] @ patches(x[i]).T per group.  The images
   are split into at most TS_BLOCKS ranges (fewer where their buffers would take more than
   TS_GW_BYTES, but at least 2), each summed into a buffer of its own (patches
   transposed in a cache-sized tile), and the buffers are added in order: the result does not
   depend on which thread took which range. */
int ts_conv_gw_{t}({T} *x, {T} *gy, {T} *gw, long long *p, long long n, long long g,
                   long long og) {
  long long rows = p[0] * p[3] * p[4], rg = rows / g, pix = p[11] * p[12];
  long long ld = TS_PAD{t}(pix), ldr = TS_PAD{t}(rg), chw = p[0] * p[1] * p[2];
  long long size = g * og * ldr, nb = n < TS_BLOCKS ? n : TS_BLOCKS;
  long long fit = TS_GW_BYTES / (size * (long long)sizeof({T}));
  if (nb > fit) nb = fit > 2 ? fit : 2;  /* big filters: fewer ranges */
  if (nb > n) nb = n;
  long long bi = pix >= TS_GW_DEPTH ? 1 : TS_GW_DEPTH / pix, ldk = bi * pix, o = g * og;
  {T} *acc = ts_scratch_{t}(nb * size);
  if (acc == NULL) return 1;
  int err = 0;
  #pragma omp parallel if (nb > 1 && n * og * rows * pix >= TS_PAR_MACS) reduction(|:err)
  {
    {T} *tile = ts_scratch_{t}(rows * ld + ldk * g * ldr + o * ldk);
    {T} *tt = tile + rows * ld, *gyb = tt + ldk * g * ldr;
    err |= tile == NULL;
    #pragma omp for schedule(dynamic, 1)
    for (long long blk = 0; blk < nb; blk++) {
      if (tile == NULL) continue;
      long long i1 = n * (blk + 1) / nb;
      for (long long i = n * blk / nb; i < i1; i += bi) {
        long long m = i1 - i < bi ? i1 - i : bi;  /* images i..i+m as one product of depth m*pix */
        for (long long j = 0; j < m; j++) {
          ts_tile_{t}(x + (i + j) * chw, tile, p, ld);
          /* tt[j * pix + q, gi * ldr + r] = tile[gi * rg + r, q], 8 rows at a time */
          for (long long gi = 0; gi < g; gi++)
            for (long long r0 = 0; r0 < rg; r0 += 8) {
              long long nr = rg - r0 < 8 ? rg - r0 : 8;
              const {T} *src = tile + (gi * rg + r0) * ld;
              {T} *dst = tt + j * pix * g * ldr + gi * ldr + r0;
              for (long long q = 0; q < pix; q++)
                for (long long u = 0; u < nr; u++) dst[q * g * ldr + u] = src[u * ld + q];
            }
          for (long long e = 0; e < o; e++)
            __builtin_memcpy(gyb + e * ldk + j * pix, gy + ((i + j) * o + e) * pix,
                             pix * sizeof({T}));
        }
        for (long long gi = 0; gi < g; gi++)
          ts_gemm_{t}(gyb + gi * og * ldk, ldk, tt + gi * ldr, g * ldr,
                      acc + blk * size + gi * og * ldr, ldr, og, m * pix, rg, 1);
      }
    }
    free(tile);
  }
  for (long long e = 0; e < g * og; e++)
    for (long long r = 0; r < rg; r++) {
      double s = 0;
      for (long long b = 0; b < nb; b++) s += acc[b * size + e * ldr + r];
      gw[e * rg + r] = ({T})s;
    }
  free(acc);
  return err;
}

/* gx[i] = col2im(wt[gi] @ gy[i] per group), image by image: the image's patch gradient
   stays in cache.  wt: (g, rg, og), the filters transposed. */
int ts_conv_gx_{t}({T} *wt, {T} *gy, {T} *gx, long long *p, long long n, long long g,
                   long long og) {
  long long rows = p[0] * p[3] * p[4], rg = rows / g, pix = p[11] * p[12];
  long long ld = TS_PAD{t}(pix), o = g * og;
  int err = 0;
  #pragma omp parallel if (n > 1 && n * og * g * rg * pix >= TS_PAR_MACS) reduction(|:err)
  {
    {T} *cols = ts_scratch_{t}(rows * ld + o * ld), *gyp = cols + rows * ld;
    err |= cols == NULL;
    #pragma omp for schedule(dynamic, TS_CHUNK)
    for (long long i = 0; i < n; i++) {
      if (cols == NULL) continue;
      for (long long e = 0; e < o; e++)  /* gy[i] with rows padded to ld */
        __builtin_memcpy(gyp + e * ld, gy + (i * o + e) * pix, pix * sizeof({T}));
      for (long long gi = 0; gi < g; gi++)
        ts_gemm_{t}(wt + gi * rg * og, og, gyp + gi * og * ld, ld, cols + gi * rg * ld, ld,
                    rg, og, pix, 0);
      ts_col2im_image_{t}(cols, gx + i * p[0] * p[1] * p[2], p, ld);
    }
    free(cols);
  }
  return err;
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

/* Max pooling (ts_is_2x2) of plane x (h x w): the general loop's comparisons, in a loop
   over the windows of a row that vectorizes (`restrict` and short vectors: a row of LeNet's
   has 12 windows, and versioned or long-vector loops ran 3-6 times slower). */
static void ts_max2_{t}(const {T} *restrict x, {T} *restrict out, long long w, long long ho,
                        long long wo) {
  for (long long i = 0; i < ho; i++) {
    const {T} *a = x + 2 * i * w, *b = a + w;
    {T} *o = out + i * wo;
    #pragma omp simd simdlen(4)
    for (long long j = 0; j < wo; j++) {
      {T} v0 = a[2 * j], v1 = a[2 * j + 1], v2 = b[2 * j], v3 = b[2 * j + 1], m = v0;
      m = (v1 > m || v1 != v1) ? v1 : m;
      m = (v2 > m || v2 != v2) ? v2 : m;
      o[j] = (v3 > m || v3 != v3) ? v3 : m;
    }
  }
}

/* Its gradient: each window's four elements written once, gz at the first maximum (the
   first element equal to the `>`-maximum; the first element where that is NaN) and 0
   elsewhere, branch-free so that it vectorizes; then the rows and columns no window covers
   zeroed. */
static void ts_max2_grad_{t}(const {T} *restrict x, const {T} *restrict gz, {T} *restrict gx,
                             long long h, long long w, long long ho, long long wo) {
  for (long long i = 0; i < ho; i++) {
    const {T} *a = x + 2 * i * w, *b = a + w, *g = gz + i * wo;
    {T} *da = gx + 2 * i * w, *db = da + w;
    #pragma omp simd simdlen(4)
    for (long long j = 0; j < wo; j++) {
      {T} v0 = a[2 * j], v1 = a[2 * j + 1], v2 = b[2 * j], v3 = b[2 * j + 1], gj = g[j], m = v0;
      m = v1 > m ? v1 : m;
      m = v2 > m ? v2 : m;
      m = v3 > m ? v3 : m;
      int e0 = (v0 == m) | (m != m), e1 = !e0 & (v1 == m), e2 = !(e0 | e1) & (v2 == m);
      da[2 * j] = e0 ? gj : 0;
      da[2 * j + 1] = e1 ? gj : 0;
      db[2 * j] = e2 ? gj : 0;
      db[2 * j + 1] = e0 | e1 | e2 ? 0 : gj;
    }
    for (long long q = 2 * wo; q < w; q++) da[q] = db[q] = 0;
  }
  for (long long e = 2 * ho * w; e < h * w; e++) gx[e] = 0;
}

/* mode 0 max (NaN-propagating, as np.maximum), 1 sum, 2 average over the image elements,
   3 average counting the padding.  Tap by tap, as the numpy version adds, each tap a
   branch-free loop along the output row. */
static void ts_pool_plane_{t}(const {T} *xp, {T} *out, const long long *p, int mode) {
  long long h = p[0], w = p[1], ho = p[2], wo = p[3], kh = p[4], kw = p[5];
  long long sh = p[6], sw = p[7], ph = p[8], pw = p[9];
  if (mode == 0 && ts_is_2x2(p)) {
    ts_max2_{t}(xp, out, w, ho, wo);
    return;
  }
  for (long long i = 0; i < ho; i++) {
    {T} *o = out + i * wo;
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

/* The planes are shared among threads, each plane's loops in a function of its own (inlined
   into an OpenMP loop's body, they were compiled to slower code). */
void ts_pool_{t}({T} *x, {T} *out, long long *p, long long planes, int mode) {
  long long hw = p[0] * p[1], howo = p[2] * p[3];
  #pragma omp parallel for schedule(dynamic, TS_PLANES) if (planes * hw >= TS_PAR_MIN)
  for (long long k = 0; k < planes; k++) ts_pool_plane_{t}(x + k * hw, out + k * howo, p, mode);
}

/* gx (zeroed here, x's plane shape) gets each gz at its window's first maximum of x (mode 0),
   or divided by the count over the window (modes 1-3; x unused). */
static void ts_pool_grad_plane_{t}(const {T} *xp, const {T} *gp, {T} *dp, const long long *p,
                                   int mode) {
  long long h = p[0], w = p[1], ho = p[2], wo = p[3];
  if (mode == 0 && ts_is_2x2(p)) {
    ts_max2_grad_{t}(xp, gp, dp, h, w, ho, wo);
    return;
  }
  for (long long e = 0; e < h * w; e++) dp[e] = 0;
  for (long long i = 0; i < ho; i++)
    for (long long j = 0; j < wo; j++) {
      long long r0, r1, c0, c1, count;
      ts_window(p, i, j, mode, &r0, &r1, &c0, &c1, &count);
      if (mode == 0) {
        dp[ts_argmax_{t}(xp, w, r0, r1, c0, c1)] += gp[i * wo + j];
        continue;
      }
      {T} v = mode == 1 ? gp[i * wo + j] : gp[i * wo + j] / ({T})count;
      for (long long r = r0; r < r1; r++)
        for (long long q = c0; q < c1; q++) dp[r * w + q] += v;
    }
}

void ts_pool_grad_{t}({T} *x, {T} *gz, {T} *gx, long long *p, long long planes, int mode) {
  long long hw = p[0] * p[1], howo = p[2] * p[3];
  #pragma omp parallel for schedule(dynamic, TS_PLANES) if (planes * hw >= TS_PAR_MIN)
  for (long long k = 0; k < planes; k++)
    ts_pool_grad_plane_{t}(mode == 0 ? x + k * hw : x, gz + k * howo, gx + k * hw, p, mode);
}

/* out[i, j] = g at the first maximum of x in window (i, j). */
static void ts_maxpool_gradgrad_plane_{t}(const {T} *xp, const {T} *gp, {T} *out,
                                          const long long *p) {
  long long w = p[1], ho = p[2], wo = p[3];
  for (long long i = 0; i < ho; i++)
    for (long long j = 0; j < wo; j++) {
      long long r0, r1, c0, c1, count;
      ts_window(p, i, j, 0, &r0, &r1, &c0, &c1, &count);
      out[i * wo + j] = gp[ts_argmax_{t}(xp, w, r0, r1, c0, c1)];
    }
}

void ts_maxpool_gradgrad_{t}({T} *x, {T} *g, {T} *out, long long *p, long long planes) {
  long long hw = p[0] * p[1], howo = p[2] * p[3];
  #pragma omp parallel for schedule(dynamic, TS_PLANES) if (planes * hw >= TS_PAR_MIN)
  for (long long k = 0; k < planes; k++)
    ts_maxpool_gradgrad_plane_{t}(x + k * hw, g + k * hw, out + k * howo, p);
}
"""

_TYPES = {"float32": ("f32", "float"), "float64": ("f64", "double")}


def _source():
    """(C source, cdef): the helpers, then the kernels for each dtype."""
    subst = list(_TYPES.values())
    src = _HEADER + _COMMON + "".join(_TEMPLATE.replace("{t}", t).replace("{T}", ct)
                                      for t, ct in subst)
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
        for name in ("conv_fwd", "conv_gw", "conv_gx", "pool", "pool_grad",
                     "maxpool_gradgrad"):
            setattr(self, name, getattr(mod.lib, f"ts_{name}_{t}"))

    def ptr(self, a):
        """A pointer to the data of C-contiguous `a` (which may be empty)."""
        return self.ffi.cast("void *", a.ctypes.data)

    def params(self, values):
        """The int64 parameters as a C array (which keeps its numpy buffer alive)."""
        return self.ffi.from_buffer("long long[]", np.array(values, dtype=np.int64))


def _contig(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


def _check(status):
    if status:
        raise MemoryError("convolution: no memory for the C kernel's work buffers")


# -- convolution -------------------------------------------------------------------------------

def _geometry(op, c, h, w, kh, kw):
    """The kernels' int64 parameters (c, h, w, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo)."""
    return (c, h, w, kh, kw, *op.pads(kh, kw), *op.subsample, *op.filter_dilation,
            *op.out_hw(h, w, kh, kw))


def _conv_forward(node, compiledir):
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    k = _Kernels(compiledir, dtype)

    def step(args):
        x, w = (_contig(a, dtype) for a in args)
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        op.check_channels(c, o, cg, ValueError)
        op.check_fits(h, wd, kh, kw, ValueError)
        geo = _geometry(op, c, h, wd, kh, kw)
        y = np.empty((n, o) + geo[-2:], dtype)
        if y.size and c * kh * kw == 0:
            y[...] = 0
        elif y.size:
            f = _contig(op._filters(w), dtype)  # (g, O/g, C/g*kh*kw)
            _check(k.conv_fwd(k.ptr(x), k.ptr(f), k.ptr(y), k.params(geo), n, op.groups,
                              o // op.groups))
        return [y]

    return step


def _conv_grad_weights(node, compiledir):
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    k = _Kernels(compiledir, dtype)

    def step(args):
        x, gy = (_contig(a, dtype) for a in args[:2])
        kh, kw = int(args[2]), int(args[3])
        n, c, h, wd = x.shape
        o, g = gy.shape[1], op.groups
        op.check_channels(c, o, c // g, ValueError)
        op.check_fits(h, wd, kh, kw, ValueError)
        op._gy_checked(gy, n, o, h, wd, kh, kw)
        gw = np.zeros((o, c // g, kh, kw), dtype)
        if gw.size and gy.size:
            _check(k.conv_gw(k.ptr(x), k.ptr(gy), k.ptr(gw), k.params(_geometry(
                op, c, h, wd, kh, kw)), n, g, o // g))
        return [gw[:, :, ::-1, ::-1].copy() if op.filter_flip else gw]

    return step


def _conv_grad_inputs(node, compiledir):
    op, dtype = node.op, _float_dtype(node)
    if dtype is None:
        return None
    k = _Kernels(compiledir, dtype)

    def step(args):
        w, gy = (_contig(a, dtype) for a in args[:2])
        h, wd = int(args[2]), int(args[3])
        (o, cg, kh, kw), n, g = w.shape, gy.shape[0], op.groups
        c = cg * g
        op.check_channels(c, o, cg, ValueError)
        op.check_fits(h, wd, kh, kw, ValueError)
        op._gy_checked(gy, n, o, h, wd, kh, kw)
        gx = np.empty((n, c, h, wd), dtype)  # the kernel zeroes each image it adds into
        if not (gy.size and cg * kh * kw):
            gx[...] = 0
        elif gx.size:
            wt = _contig(op._filters(w).transpose(0, 2, 1), dtype)  # (g, C/g*kh*kw, O/g)
            _check(k.conv_gx(k.ptr(wt), k.ptr(gy), k.ptr(gx), k.params(_geometry(
                op, c, h, wd, kh, kw)), n, g, o // g))
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
