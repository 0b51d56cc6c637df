"""2-d convolution of NCHW images with OIHW filters: `conv2d` and its two gradients.

`y = conv2d(x, w)` is bilinear in (x, w).  Its gradient with respect to x (`Conv2dGradInputs`,
the "transposed convolution") and with respect to w (`Conv2dGradWeights`) are the two adjoints
of the same bilinear form <conv2d(x, w), gy>, so the three Ops share one parameter set and the
gradient of each is built from the other two: every order of derivative stays a convolution.

The numpy implementations are im2col + one batched BLAS product per call: the padded input is
viewed as windows (`sliding_windows`, no copy), copied once into a (C*kh*kw, patches) matrix and
multiplied by the filters.  The gradient with respect to the input adds the patch gradients back
(`add_windows`), one vectorised slice-add per filter tap, never a loop over pixels.  These
are the reference; the C linker runs the three Ops with C im2col/col2im (backend/c/nnet.py).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ShapeError
from ..trace.graph import Apply, as_variable
from ..trace.source import user_source
from ..trace.types import TensorType
from .base import Op
from .scalar import float_dtype
from .shape import _fmt_shape, _int_scalars, _static_value, shape_i, static_or


# ---------------------------------------------------------------------------------------------
# im2col and its adjoint
# ---------------------------------------------------------------------------------------------

def sliding_windows(xp, ksize, stride, dilation, out_hw):
    """The windows of the last two axes of `xp`: a read-only view of shape
    `xp.shape[:-2] + out_hw + ksize`, window (i, j) starting at (i * stride, j * stride) and
    taking every `dilation`-th element (numpy's `sliding_window_view`, strided and dilated,
    without its per-call overhead)."""
    for n, o, k, s, d in zip(xp.shape[-2:], out_hw, ksize, stride, dilation):
        if o < 0 or (o > 0 and (o - 1) * s + d * (k - 1) >= n):
            raise ValueError(f"{o} windows of {k} taps (stride {s}, dilation {d}) do not fit "
                             f"in {n} elements")
    sh, sw = xp.strides[-2:]
    strides = xp.strides[:-2] + (sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1])
    return as_strided(xp, xp.shape[:-2] + tuple(out_hw) + tuple(ksize), strides, writeable=False)


def add_windows(cols, padded_hw, stride, dilation):
    """The adjoint of `sliding_windows`: `cols` of shape `ksize + lead + out_hw + (n,)` summed
    into a zero array of shape `lead + padded_hw + (n,)`, each tap (a, b) one strided
    slice-add.  The batch axis comes last so that every slice-add runs over long contiguous
    rows (five times faster than over rows of `wo` elements)."""
    kh, kw, (ho, wo) = cols.shape[0], cols.shape[1], cols.shape[-3:-1]
    out = np.zeros(cols.shape[2:-3] + tuple(padded_hw) + cols.shape[-1:], cols.dtype)
    (sh, sw), (dh, dw) = stride, dilation
    for a in range(kh):
        rows = slice(a * dh, a * dh + sh * ho, sh)
        for b in range(kw):
            out[..., rows, b * dw:b * dw + sw * wo:sw, :] += cols[a, b]
    return out


def _here():
    src = user_source()
    return f"\n  at {src}" if src else ""


def _pair(value, what, minimum):
    """`value` (an int or a pair of ints) as a pair of ints >= minimum, or a ShapeError."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if (len(pair) != 2 or not all(isinstance(p, (int, np.integer)) for p in pair)
            or min(pair) < minimum):
        raise ShapeError(f"{what} must be an int or a pair of ints >= {minimum}, got {value!r}"
                         + _here())
    return tuple(int(p) for p in pair)


def _border(mode):
    if isinstance(mode, str):
        if mode == "valid":
            return (0, 0)
        if mode in ("full", "half"):
            return mode
        raise ShapeError(f"conv2d: border_mode must be 'valid', 'full', 'half', an int or a pair "
                         f"(ph, pw), got {mode!r}" + _here())
    return _pair(mode, "conv2d: border_mode padding", 0)


# ---------------------------------------------------------------------------------------------
# the shared parameter set
# ---------------------------------------------------------------------------------------------

class _ConvOp(Op):
    """Parameters of a 2-d convolution.  `border_mode` is (ph, pw) zero padding, "full"
    (dilation * (k - 1)) or "half" (dilation * (k // 2), which keeps the size for odd k and
    stride 1); `filter_flip` flips the filters spatially (a true convolution, Theano's default)
    instead of cross-correlating."""

    abstract = True
    __props__ = ("border_mode", "subsample", "filter_dilation", "groups", "filter_flip")

    def __init__(self, border_mode=(0, 0), subsample=(1, 1), filter_dilation=(1, 1), groups=1,
                 filter_flip=True):
        self.border_mode = _border(border_mode)
        self.subsample = _pair(subsample, "conv2d: subsample", 1)
        self.filter_dilation = _pair(filter_dilation, "conv2d: filter_dilation", 1)
        if not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ShapeError(f"conv2d: groups must be a positive int, got {groups!r}" + _here())
        self.groups = int(groups)
        self.filter_flip = bool(filter_flip)

    def _params(self):
        return self.border_mode, self.subsample, self.filter_dilation, self.groups, self.filter_flip

    # sizes, for ints (static or concrete) and for symbolic int64 scalars alike
    def pads(self, kh, kw):
        dh, dw = self.filter_dilation
        if self.border_mode == "full":
            return dh * (kh - 1), dw * (kw - 1)
        if self.border_mode == "half":
            return dh * (kh // 2), dw * (kw // 2)
        return self.border_mode

    def out_hw(self, h, w, kh, kw):
        """Output height and width for input h x w and filters kh x kw (may be <= 0: too
        large a filter)."""
        ph, pw = self.pads(kh, kw)
        (sh, sw), (dh, dw) = self.subsample, self.filter_dilation
        return ((h + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
                (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)

    def static_out_hw(self, h, w, kh, kw):
        if h is None or kh is None:
            oh = None
        else:
            oh = self.out_hw(h, 1, kh, 1)[0]
        if w is None or kw is None:
            ow = None
        else:
            ow = self.out_hw(1, w, 1, kw)[1]
        return oh, ow

    # checks shared by make_node (static shapes) and perform (concrete ones)
    def check_channels(self, c, o, cg, error, where=""):
        g = self.groups
        if c is not None and cg is not None and c != cg * g:
            raise error(f"conv2d: the input has {c} channels but the filters expect {cg} per "
                        f"group x {g} group(s) = {cg * g} (filters are (out_channels, "
                        f"in_channels // groups, kh, kw)){where}")
        if o is not None and o % g:
            raise error(f"conv2d: {o} output channels (filters' dim 0) do not split into "
                        f"groups={g}{where}")
        if c is not None and c % g:
            raise error(f"conv2d: {c} input channels do not split into groups={g}{where}")

    def check_fits(self, h, w, kh, kw, error, where=""):
        for n, k, d, o, axis in zip((h, w), (kh, kw), self.filter_dilation,
                                    self.static_out_hw(h, w, kh, kw), ("height", "width")):
            if o is not None and o < 1:
                p = self.pads(k, k)[0 if axis == "height" else 1]
                raise error(
                    f"conv2d: the filters' {axis} {k} (dilation {d}: extent {d * (k - 1) + 1}) is "
                    f"larger than the input's {axis} {n} padded by {p} on each side "
                    f"(border_mode={self.border_mode!r}){where}")

    # the numpy kernels: x (N, C, H, W), w (O, C/g, kh, kw), gy (N, O, ho, wo)
    def _cols(self, x, kh, kw, ho, wo):
        """im2col: the (g, C/g*kh*kw, N*ho*wo) patch matrix of x (one copy, whose inner loops
        run along image rows)."""
        n, c, h, w = x.shape
        ph, pw = self.pads(kh, kw)
        if ph or pw:
            xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), x.dtype)
            xp[:, :, ph:ph + h, pw:pw + w] = x
        else:
            xp = x
        win = sliding_windows(xp, (kh, kw), self.subsample, self.filter_dilation, (ho, wo))
        g = self.groups
        win = win.reshape(n, g, c // g, ho, wo, kh, kw).transpose(1, 2, 5, 6, 0, 3, 4)
        return win.reshape(g, (c // g) * kh * kw, n * ho * wo)

    def _filters(self, w):
        """The filters as the correlation kernel, (g, O/g, C/g*kh*kw)."""
        if self.filter_flip:
            w = w[:, :, ::-1, ::-1]
        o = w.shape[0]
        return w.reshape(self.groups, o // self.groups, -1)

    def forward(self, x, w, dtype):
        x, w = np.asarray(x, dtype), np.asarray(w, dtype)
        n, o, (kh, kw) = x.shape[0], w.shape[0], w.shape[2:]
        self.check_channels(x.shape[1], o, w.shape[1], ValueError)
        self.check_fits(*x.shape[2:], kh, kw, ValueError)
        ho, wo = self.out_hw(*x.shape[2:], kh, kw)
        y = np.matmul(self._filters(w), self._cols(x, kh, kw, ho, wo))  # (g, O/g, N*ho*wo)
        y = y.reshape(self.groups, o // self.groups, n, ho, wo).transpose(2, 0, 1, 3, 4)
        return y.reshape(n, o, ho, wo)

    def _gy_checked(self, gy, n, n_out, h, w, kh, kw):
        ho, wo = self.out_hw(h, w, kh, kw)
        if gy.shape != (n, n_out, ho, wo):
            raise ValueError(f"conv2d gradient: the output gradient has shape {gy.shape}, but "
                             f"{n} images of {h}x{w} and {n_out} filters of {kh}x{kw} give "
                             f"{(n, n_out, ho, wo)}")
        return ho, wo

    def grad_weights(self, x, gy, kh, kw, dtype):
        x, gy = np.asarray(x, dtype), np.asarray(gy, dtype)
        n, c = x.shape[:2]
        o, g = gy.shape[1], self.groups
        self.check_channels(c, o, c // g, ValueError)
        self.check_fits(*x.shape[2:], kh, kw, ValueError)
        ho, wo = self._gy_checked(gy, n, o, *x.shape[2:], kh, kw)
        gyg = gy.reshape(n, g, o // g, ho, wo).transpose(1, 2, 0, 3, 4).reshape(g, o // g, -1)
        gw = np.matmul(gyg, self._cols(x, kh, kw, ho, wo).transpose(0, 2, 1))
        gw = gw.reshape(o, c // g, kh, kw)
        return gw[:, :, ::-1, ::-1].copy() if self.filter_flip else gw

    def grad_inputs(self, w, gy, h, wd, dtype):
        w, gy = np.asarray(w, dtype), np.asarray(gy, dtype)
        (o, cg, kh, kw), n, g = w.shape, gy.shape[0], self.groups
        self.check_channels(cg * g, o, cg, ValueError)
        self.check_fits(h, wd, kh, kw, ValueError)
        ho, wo = self._gy_checked(gy, n, o, h, wd, kh, kw)
        og = o // g
        wt = self._filters(w).reshape(g, og, cg, kh, kw).transpose(0, 3, 4, 2, 1)
        gyt = gy.reshape(n, g, og, ho * wo).transpose(1, 2, 3, 0).reshape(g, og, ho * wo * n)
        cols = np.matmul(wt.reshape(g, kh * kw * cg, og), gyt)  # (g, kh*kw*C/g, ho*wo*N)
        cols = cols.reshape(g, kh, kw, cg, ho, wo, n).transpose(1, 2, 0, 3, 4, 5, 6)
        ph, pw = self.pads(kh, kw)
        gxp = add_windows(cols, (h + 2 * ph, wd + 2 * pw), self.subsample, self.filter_dilation)
        gx = gxp[:, :, ph:ph + h, pw:pw + wd, :].transpose(4, 0, 1, 2, 3)  # (N, g, C/g, h, w)
        return gx.reshape(n, g * cg, h, wd)


def _float4d(what, v):
    v = as_variable(v)
    if v.ndim != 4:
        raise ShapeError(f"conv2d: {what} must be 4-d, got {v.type.short()}" + _here())
    if v.dtype[0] not in "biuf":
        raise TypeError(f"conv2d: {what} must be real, got {v.type.short()}")
    return v


def _dtype(a, b):
    return float_dtype(np.promote_types(a.dtype, b.dtype)).name


def _shape_dims(op, h, w):
    h, w = _int_scalars(op, (h, w))
    return h, w, _static_value(h), _static_value(w)


def _cast(v, dtype):
    from .elemwise import cast

    return v if v is None or v.dtype == dtype else cast(v, dtype)


# ---------------------------------------------------------------------------------------------
# the Ops
# ---------------------------------------------------------------------------------------------

class Conv2d(_ConvOp):
    """y[n, o] = sum over the input channels of o's group of x[n, c] (*) w[o, c]: images x
    (N, C, H, W), filters w (O, C // groups, kh, kw), result (N, O, ho, wo)."""

    def make_node(self, x, w):
        x, w = _float4d("input", x), _float4d("filters", w)
        (n, c, h, wd), (o, cg, kh, kw) = x.type.shape, w.type.shape
        where = (f" (input {_fmt_shape(x.type.shape)}, filters {_fmt_shape(w.type.shape)})"
                 + _here())
        self.check_channels(c, o, cg, ShapeError, where)
        self.check_fits(h, wd, kh, kw, ShapeError, where)
        out = TensorType(_dtype(x, w), (n, o) + self.static_out_hw(h, wd, kh, kw))
        return Apply(self, [x, w], [out.make_variable()])

    def perform(self, node, inputs):
        return (self.forward(*inputs, node.outputs[0].dtype),)

    def L_op(self, inputs, outputs, output_grads):
        (x, w), (gy,) = inputs, output_grads
        if gy is None:
            return [None, None]
        gx = Conv2dGradInputs(*self._params())(w, gy, shape_i(x, 2), shape_i(x, 3))
        gw = Conv2dGradWeights(*self._params())(x, gy, shape_i(w, 2), shape_i(w, 3))
        return [_cast(gx, x.dtype) if x.dtype[0] == "f" else None,
                _cast(gw, w.dtype) if w.dtype[0] == "f" else None]

    def infer_shape(self, node, input_shapes):
        (n, _, h, w), (o, _, kh, kw) = input_shapes
        return [static_or(node, (n, o) + self.out_hw(h, w, kh, kw))]


class Conv2dGradInputs(_ConvOp):
    """The gradient of conv2d with respect to its input (a transposed convolution): from the
    filters w, the output gradient gy and the input's height and width (a strided convolution
    maps several input sizes to one output size), the (N, C, h, w) input gradient."""

    def make_node(self, w, gy, h, wd):
        w, gy = _float4d("filters", w), _float4d("output gradient", gy)
        h, wd, sh, sw = _shape_dims(self, h, wd)
        (o, cg, kh, kw), (n, go, gh, gw) = w.type.shape, gy.type.shape
        where = (f" (filters {_fmt_shape(w.type.shape)}, output gradient "
                 f"{_fmt_shape(gy.type.shape)})" + _here())
        if o is not None and go is not None and o != go:
            raise ShapeError(f"conv2d gradient: {go} output-gradient channels for {o} filters"
                             + where)
        c = cg * self.groups if cg is not None else None
        self.check_channels(c, o, cg, ShapeError, where)
        out = TensorType(_dtype(w, gy), (n, c, sh, sw))
        return Apply(self, [w, gy, h, wd], [out.make_variable()])

    def perform(self, node, inputs):
        w, gy, h, wd = inputs
        return (self.grad_inputs(w, gy, int(h), int(wd), node.outputs[0].dtype),)

    def L_op(self, inputs, outputs, output_grads):
        (w, gy, _, _), (g,) = inputs, output_grads
        if g is None:
            return [None] * 4
        gw = Conv2dGradWeights(*self._params())(g, gy, shape_i(w, 2), shape_i(w, 3))
        ggy = Conv2d(*self._params())(g, w)
        return [_cast(gw, w.dtype), _cast(ggy, gy.dtype), None, None]

    def infer_shape(self, node, input_shapes):
        (_, cg, _, _), (n, _, _, _) = input_shapes[:2]
        h, wd = node.inputs[2:]
        return [static_or(node, (n, cg * self.groups, h, wd))]


class Conv2dGradWeights(_ConvOp):
    """The gradient of conv2d with respect to its filters: from the input x, the output
    gradient gy and the filters' height and width, the (O, C // groups, kh, kw) gradient."""

    def make_node(self, x, gy, kh, kw):
        x, gy = _float4d("input", x), _float4d("output gradient", gy)
        kh, kw, skh, skw = _shape_dims(self, kh, kw)
        (n, c, h, wd), (gn, o, gh, gw) = x.type.shape, gy.type.shape
        where = (f" (input {_fmt_shape(x.type.shape)}, output gradient "
                 f"{_fmt_shape(gy.type.shape)})" + _here())
        cg = c // self.groups if c is not None else None
        self.check_channels(c, o, cg, ShapeError, where)
        out = TensorType(_dtype(x, gy), (o, cg, skh, skw))
        return Apply(self, [x, gy, kh, kw], [out.make_variable()])

    def perform(self, node, inputs):
        x, gy, kh, kw = inputs
        return (self.grad_weights(x, gy, int(kh), int(kw), node.outputs[0].dtype),)

    def L_op(self, inputs, outputs, output_grads):
        (x, gy, _, _), (g,) = inputs, output_grads
        if g is None:
            return [None] * 4
        gx = Conv2dGradInputs(*self._params())(g, gy, shape_i(x, 2), shape_i(x, 3))
        ggy = Conv2d(*self._params())(x, g)
        return [_cast(gx, x.dtype), _cast(ggy, gy.dtype), None, None]

    def infer_shape(self, node, input_shapes):
        (_, c, _, _), (_, o, _, _) = input_shapes[:2]
        kh, kw = node.inputs[2:]
        return [static_or(node, (o, c // self.groups, kh, kw))]


def conv2d(input, filters, border_mode="valid", subsample=(1, 1), filter_flip=True,
           filter_dilation=(1, 1), groups=1):
    """2-d convolution of `input` (N, C, H, W) with `filters` (O, C // groups, kh, kw), as
    Theano's `conv2d`: result (N, O, ho, wo).

    `border_mode`: "valid" (no padding), "full" (pad by dilation * (k - 1): every partial
    overlap), "half" (pad by dilation * (k // 2): the same size for odd k), an int, or a pair
    (ph, pw) of zero-padding sizes.  `subsample`: the stride (sh, sw).  `filter_dilation`: the
    spacing (dh, dw) between filter taps.  `groups`: split the channels into this many
    independent convolutions.  `filter_flip=True` (the default, as in Theano) flips the filters
    spatially, a true convolution; `filter_flip=False` cross-correlates, as PyTorch's and most
    deep-learning libraries' "convolution" does.  A filter learned one way works the other way
    flipped."""
    op = Conv2d(border_mode, subsample, filter_dilation, groups, filter_flip)
    return op(input, filters)


__all__ = ["Conv2d", "Conv2dGradInputs", "Conv2dGradWeights", "conv2d"]
