"""Neural-network basics: `softmax`, `logsoftmax`, `relu`, `elu`, `one_hot`, the cross-entropy
losses, `batch_normalization` and `dropout`.  (`sigmoid` and `softplus` are rows of the
elementwise table.)

Softmax-like Ops act on the last axis by default (numpy/JAX convention); `axis=None` means
over all elements, and a tuple of axes is accepted.  Their numpy implementations subtract the
maximum first, so logits of +-1000 give finite, exact results.
"""

from __future__ import annotations

import numpy as np

from ..config import config
from ..errors import ShapeError
from ..trace.graph import Apply, Constant, Variable, as_variable
from ..trace.types import TensorType, broadcast_shapes
from .base import Op
from .reduce import _check_axes, _float_dtype, expand, normalize_axis
from .reduce import sum as _sum


def _float_input(op, x):
    x = as_variable(x)
    if x.dtype[0] == "c":
        raise TypeError(f"{op} of complex input ({x.type.short()}) is not supported")
    return x


def _work(x, dtype):
    """`x` as the dtype the computation runs in: at least float32 (float16 rounds back)."""
    return np.asarray(x).astype(np.promote_types(dtype, np.float32), copy=False)


class Softmax(Op):
    """exp(x) / sum(exp(x)) over `axis` (a sorted tuple), computed as exp(x - max) / sum(...).
    Integer input gives numpy's float type for it (float64 for int64)."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = tuple(axis)

    def make_node(self, x):
        x = _float_input("softmax", x)
        _check_axes(self, x, self.axis)
        return Apply(self, [x], [TensorType(_float_dtype(x.dtype), x.type.shape).make_variable()])

    def perform(self, node, inputs):
        dtype = node.outputs[0].dtype
        x = _work(inputs[0], dtype)
        if x.size == 0:
            return (np.empty(x.shape, dtype),)
        with np.errstate(invalid="ignore"):
            e = np.exp(x - np.max(x, axis=self.axis, keepdims=True))
            e /= np.sum(e, axis=self.axis, keepdims=True)
        return (e.astype(dtype, copy=False),)

    def L_op(self, inputs, outputs, output_grads):
        from .elemwise import cast

        (x,), (sm,), (g,) = inputs, outputs, output_grads
        if g is None or x.dtype[0] != "f":
            return [None]
        return [SoftmaxGrad(self.axis)(cast(g, sm.dtype), sm)]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0])]


class SoftmaxGrad(Op):
    """The gradient of softmax over `axis`: (dy - sum(dy * sm, axis)) * sm, for the output
    gradient `dy` and the softmax output `sm` (same dtype; numpy broadcasting).  An Op of its
    own so a rewrite can recognise the gradient of log(softmax(x)), `dy = g / sm`, and replace
    it by the logsoftmax gradient, which stays finite where sm underflows to 0."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = tuple(axis)

    def make_node(self, dy, sm):
        dy, sm = _float_input("softmax_grad", dy), _float_input("softmax_grad", sm)
        if dy.dtype != sm.dtype or dy.dtype[0] != "f":
            raise TypeError(f"softmax_grad: dy ({dy.type.short()}) and sm ({sm.type.short()}) "
                            "must have the same float dtype")
        if dy.ndim != sm.ndim:
            raise ShapeError(f"softmax_grad: dy ({dy.type.short()}) and sm ({sm.type.short()}) "
                             "must have the same number of dimensions")
        _check_axes(self, sm, self.axis)
        shape = broadcast_shapes(dy.type.shape, sm.type.shape, where=" in softmax_grad")
        return Apply(self, [dy, sm], [TensorType(sm.dtype, shape).make_variable()])

    def perform(self, node, inputs):
        dtype = node.outputs[0].dtype
        dy, sm = (_work(v, dtype) for v in inputs)
        with np.errstate(invalid="ignore", over="ignore"):
            r = (dy - np.sum(dy * sm, axis=self.axis, keepdims=True)) * sm
        return (np.asarray(r, dtype=dtype),)

    def L_op(self, inputs, outputs, output_grads):
        """out = (dy - s) * sm with s = sum(dy * sm): d/d dy is softmax_grad(g, sm) itself,
        d/d sm is g * (dy - s) - dy * sum(g * sm)."""
        from .elemwise import _keeps_shape, cast, sum_to

        (dy, sm), (g,) = inputs, output_grads
        if g is None:
            return [None, None]
        g = cast(g, sm.dtype)
        gdy = SoftmaxGrad(self.axis)(g, sm)
        s = _sum(dy * sm, self.axis, keepdims=True)
        gsm = g * (dy - s) - dy * _sum(g * sm, self.axis, keepdims=True)
        return [v if _keeps_shape(x, inputs) else sum_to(v, x)
                for v, x in ((gdy, dy), (gsm, sm))]

    def infer_shape(self, node, input_shapes):
        from .shape import broadcast_shape_of

        return [broadcast_shape_of(input_shapes, node.inputs)]


class LogSoftmax(Op):
    """log(softmax(x)) over `axis`, computed as (x - max) - log(sum(exp(x - max))): exact
    where the naive form rounds softmax to 0 and takes log(0)."""

    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = tuple(axis)

    def make_node(self, x):
        x = _float_input("logsoftmax", x)
        _check_axes(self, x, self.axis)
        return Apply(self, [x], [TensorType(_float_dtype(x.dtype), x.type.shape).make_variable()])

    def perform(self, node, inputs):
        dtype = node.outputs[0].dtype
        x = _work(inputs[0], dtype)
        if x.size == 0:
            return (np.empty(x.shape, dtype),)
        with np.errstate(invalid="ignore", divide="ignore"):
            xm = x - np.max(x, axis=self.axis, keepdims=True)
            r = xm - np.log(np.sum(np.exp(xm), axis=self.axis, keepdims=True))
        return (r.astype(dtype, copy=False),)

    def L_op(self, inputs, outputs, output_grads):
        from .elemwise import exp

        (x,), (out,), (g,) = inputs, outputs, output_grads
        if g is None or x.dtype[0] != "f":
            return [None]
        return [g - exp(out) * _sum(g, self.axis, keepdims=True)]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0])]


def softmax(x, axis=-1):
    """The softmax over `axis` (default the last; None: over all elements)."""
    x = as_variable(x)
    return Softmax(normalize_axis(axis, x.ndim))(x)


def logsoftmax(x, axis=-1):
    """log(softmax(x)) over `axis` (default the last; None: over all elements), stable."""
    x = as_variable(x)
    return LogSoftmax(normalize_axis(axis, x.ndim))(x)


log_softmax = logsoftmax


def relu(x):
    """max(0, x) elementwise, keeping nan; its gradient is 0 for x <= 0, also at the kink
    (where `maximum(x, 0)` would split a tie)."""
    from .elemwise import invert, le, where

    return where(invert(le(x, 0)), x, 0)


# ------------------------------------------------------------------------------------------
# one-hot codes and cross-entropy
# ------------------------------------------------------------------------------------------

def _check_labels(labels, n):
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        bad = labels[(labels < 0) | (labels >= n)].flat[0]
        raise ValueError(f"label {bad} is out of range: labels must be in [0, {n})")


class OneHot(Op):
    """One-hot codes of integer `labels`: a new axis of size `num_classes` at `axis`, 1 at
    the label and 0 elsewhere, in `dtype`.  A label outside [0, num_classes) is an error
    (a wrong label must not silently become an all-zero row)."""

    __props__ = ("axis", "dtype")
    differentiable = False

    def __init__(self, axis, dtype):
        self.axis, self.dtype = int(axis), np.dtype(dtype).name

    def make_node(self, labels, num_classes):
        labels, n = as_variable(labels), as_variable(num_classes)
        if labels.dtype[0] not in "iu":
            raise TypeError(f"one_hot: labels must be integers, got {labels.type.short()}")
        if n.ndim != 0 or n.dtype[0] not in "iu":
            raise TypeError(f"one_hot: num_classes must be an integer scalar, got {n.type.short()}")
        if not 0 <= self.axis <= labels.ndim:
            raise ShapeError(f"one_hot: axis {self.axis} is out of bounds for a "
                             f"{labels.ndim + 1}-d result")
        k = int(n.data) if isinstance(n, Constant) else None
        shape = labels.type.shape[:self.axis] + (k,) + labels.type.shape[self.axis:]
        return Apply(self, [labels, n], [TensorType(self.dtype, shape).make_variable()])

    def perform(self, node, inputs):
        labels, n = inputs
        n = int(n)
        _check_labels(labels, n)
        classes = np.arange(n).reshape((n,) + (1,) * (labels.ndim - self.axis))
        return (np.equal(np.expand_dims(labels, self.axis), classes).astype(self.dtype),)

    def L_op(self, inputs, outputs, output_grads):
        return [None, None]

    def infer_shape(self, node, input_shapes):
        shp, n = input_shapes[0], node.inputs[1]
        if n.dtype != "int64":
            from .elemwise import cast

            n = cast(n, "int64")
        return [tuple(shp[:self.axis]) + (n,) + tuple(shp[self.axis:])]


def one_hot(labels, num_classes, axis=-1, dtype=None):
    """One-hot codes of integer `labels` (jax.nn.one_hot): the class axis is inserted at
    `axis` (default last); `dtype` defaults to `config.floatX`."""
    labels = as_variable(labels)
    ax = normalize_axis(axis, labels.ndim + 1)[0]
    return OneHot(ax, dtype or config.floatX)(labels, num_classes)


def _labelled_logits(logits, labels, axis, dtype):
    """(the logits in the working dtype, the labels' shape) after checking the labels against
    them: the logits' shape without `axis`, every label a class."""
    x = _work(logits, dtype)
    want = x.shape[:axis] + x.shape[axis + 1:]
    if labels.shape != want:
        raise ValueError(f"labels of shape {labels.shape} do not match logits of shape "
                         f"{x.shape} without axis {axis}")
    _check_labels(labels, x.shape[axis])
    return x, want


def _labelled_prefix(logits, labels, axis):
    """The logits cut to the positions the labels cover along the other axis of a 2-D
    `logits` (the first len(labels) rows for axis 1), numpy's IndexError where the labels
    are more than the logits have, as indexing [arange(n), labels] raises."""
    other = 1 - axis
    n, size = labels.shape[0], logits.shape[other]
    if n > size:
        raise IndexError(f"index {size} is out of bounds for axis {other} with size {size}")
    return logits[:n] if other == 0 else logits[:, :n]


def _prefix_types(name, logits, labels, axis):
    """Check a `prefix` Op's operands: 2-D logits, 1-D labels no longer than the logits'
    other axis where both are static."""
    if logits.ndim != 2 or labels.ndim != 1:
        raise ShapeError(f"{name}: prefix labels need 2-D logits and 1-D labels, got "
                         f"{logits.type.short()} and {labels.type.short()}")
    n, size = labels.type.shape[0], logits.type.shape[1 - axis]
    if n is not None and size is not None and n > size:
        raise ShapeError(f"{name}: {n} labels for logits {logits.type.short()} with {size} "
                         f"along axis {1 - axis}")


class SoftmaxCrossEntropy(Op):
    """-log(softmax(logits)[label]) along `axis` (an int), for integer `labels` of the logits'
    shape without that axis.  Computed as (max - logits[label]) + log(sum(exp(logits - max))),
    finite and exact for logits of +-1000; its gradient is softmax(logits) - one_hot(labels),
    never a division by a rounded probability.

    With `prefix` (2-D logits, 1-D labels), the labels may be fewer than the logits' other
    axis: they label its first len(labels) positions, the losses of
    `logsoftmax(x)[arange(len(y)), y]` without cutting x (rewrite/stabilize.py)."""

    __props__ = ("axis", "prefix")

    def __init__(self, axis, prefix=False):
        self.axis = int(axis)
        self.prefix = bool(prefix)

    def make_node(self, logits, labels):
        logits, labels = _float_input("softmax_cross_entropy", logits), as_variable(labels)
        if labels.dtype[0] not in "iu":
            raise TypeError(f"softmax_cross_entropy: labels must be integers, got "
                            f"{labels.type.short()} (for probabilities, pass them with the "
                            "logits' shape)")
        _check_axes(self, logits, (self.axis,))
        if self.prefix:
            _prefix_types("softmax_cross_entropy", logits, labels, self.axis)
            out = TensorType(_float_dtype(logits.dtype), labels.type.shape).make_variable()
            return Apply(self, [logits, labels], [out])
        rest = logits.type.shape[:self.axis] + logits.type.shape[self.axis + 1:]
        if labels.ndim != len(rest):
            raise ShapeError(f"softmax_cross_entropy: labels {labels.type.short()} must have the "
                             f"shape of logits {logits.type.short()} without axis {self.axis}")
        shape = []
        for a, b in zip(rest, labels.type.shape):
            if a is not None and b is not None and a != b:
                raise ShapeError(f"softmax_cross_entropy: labels {labels.type.short()} do not match "
                                 f"logits {logits.type.short()} without axis {self.axis}")
            shape.append(a if a is not None else b)
        out = TensorType(_float_dtype(logits.dtype), shape).make_variable()
        return Apply(self, [logits, labels], [out])

    def perform(self, node, inputs):
        logits, labels = inputs
        if self.prefix:
            logits = _labelled_prefix(logits, labels, self.axis)
        dtype = node.outputs[0].dtype
        x, want = _labelled_logits(logits, labels, self.axis, dtype)
        if labels.size == 0:
            return (np.empty(want, dtype),)
        idx = np.expand_dims(labels, self.axis)
        m = np.max(x, axis=self.axis, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (m - np.take_along_axis(x, idx, self.axis)
                 + np.log(np.sum(np.exp(x - m), axis=self.axis, keepdims=True)))
        return (r.reshape(want).astype(dtype, copy=False),)

    def L_op(self, inputs, outputs, output_grads):
        (logits, labels), (g,) = inputs, output_grads
        if g is None or logits.dtype[0] != "f":
            return [None, None]
        return [SoftmaxCrossEntropyGrad(self.axis, self.prefix)(g, logits, labels), None]

    def infer_shape(self, node, input_shapes):
        """The labels' shape (`perform` requires the logits' without the axis to equal it):
        a size read from the labels, which are nearer the inputs (`y.shape[0]` where the
        logits are sliced to its length)."""
        return [tuple(input_shapes[1])]


class SoftmaxCrossEntropyGrad(Op):
    """The gradient of softmax_cross_entropy(logits, labels) with respect to the logits, for
    the output gradient `dy` (broadcast to the labels' shape): dy * (softmax(logits) -
    one_hot(labels)) along `axis`.  One Op, so the C backend makes it in one pass over the
    logits, where the expression would build a one-hot matrix and a softmax of its own.
    With `prefix` (see `SoftmaxCrossEntropy`), the positions past the labels get 0."""

    __props__ = ("axis", "prefix")

    def __init__(self, axis, prefix=False):
        self.axis = int(axis)
        self.prefix = bool(prefix)

    def make_node(self, dy, logits, labels):
        dy = _float_input("softmax_cross_entropy_grad", dy)
        ce = SoftmaxCrossEntropy(self.axis, self.prefix).make_node(logits, labels)
        rest = ce.outputs[0].type.shape
        if dy.ndim > len(rest):
            raise ShapeError(f"softmax_cross_entropy_grad: dy {dy.type.short()} has more "
                             f"dimensions than the labels {ce.inputs[1].type.short()}")
        for a, b in zip(reversed(rest), reversed(dy.type.shape)):
            if b not in (1, None) and a is not None and a != b:
                raise ShapeError(f"softmax_cross_entropy_grad: dy {dy.type.short()} does not "
                                 f"broadcast to the labels' shape {ce.inputs[1].type.short()}")
        x = ce.inputs[0]
        out = TensorType(_float_dtype(x.dtype), x.type.shape).make_variable()
        return Apply(self, [dy, x, ce.inputs[1]], [out])

    def perform(self, node, inputs):
        dy, logits, labels = inputs
        if self.prefix:  # the labelled positions' gradient, zeros past them
            out = np.zeros(logits.shape, node.outputs[0].dtype)
            cut = _labelled_prefix(logits, labels, self.axis)
            plain = SoftmaxCrossEntropyGrad(self.axis)
            out[:cut.shape[0], :cut.shape[1]] = plain.perform(node, [dy, cut, labels])[0]
            return (out,)
        dtype = node.outputs[0].dtype
        x, want = _labelled_logits(logits, labels, self.axis, dtype)
        d = np.expand_dims(np.broadcast_to(_work(dy, dtype), want), self.axis)
        if x.size == 0:
            return (np.empty(x.shape, dtype),)
        code = np.equal(np.expand_dims(labels, self.axis), np.arange(x.shape[self.axis]).reshape(
            (-1,) + (1,) * (x.ndim - self.axis - 1)))
        with np.errstate(invalid="ignore"):
            sm = np.exp(x - np.max(x, axis=self.axis, keepdims=True))
            sm /= np.sum(sm, axis=self.axis, keepdims=True)
            return (np.asarray(d * (sm - code), dtype=dtype),)

    def L_op(self, inputs, outputs, output_grads):
        """out = e * (sm - code) with e = dy expanded: d/d dy is sum(g * (sm - code), axis),
        d/d logits is softmax_grad(g * e, sm)."""
        from .elemwise import cast, sum_to
        from .shape import shape_i

        (dy, logits, labels), (g,) = inputs, output_grads
        if g is None:
            return [None, None, None]
        if self.prefix:  # the plain Op's gradient on the labelled positions, zeros past them
            from .subtensor import getitem, set_subtensor
            from .elemwise import zeros_like

            n = shape_i(labels, 0)
            key = (slice(None, n),) if self.axis == 1 else (slice(None), slice(None, n))
            plain = SoftmaxCrossEntropyGrad(self.axis)
            cut = getitem(logits, key)
            gdy, glog, _ = plain.L_op([dy, cut, labels], [plain(dy, cut, labels)],
                                      [getitem(g, key)])
            return [gdy, set_subtensor(getitem(zeros_like(logits), key), glog), None]
        g = cast(g, outputs[0].dtype)
        sm = Softmax((self.axis,))(logits)
        code = OneHot(self.axis, sm.dtype)(labels, shape_i(logits, self.axis))
        gdy = sum_to(cast(_sum(g * (sm - code), self.axis), dy.dtype), dy)
        e = expand(cast(dy, sm.dtype), tuple(range(labels.ndim - dy.ndim)) + (self.axis,))
        return [gdy, SoftmaxGrad((self.axis,))(g * e, sm), None]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[1])]


def softmax_cross_entropy(logits, labels, axis=-1):
    """The cross-entropy of softmax(logits) along `axis` against `labels`, one loss per
    example (not averaged).  Integer `labels` (the logits' shape without `axis`) are class
    indices; float `labels` of the logits' shape are target probabilities, giving
    -sum(labels * logsoftmax(logits), axis)."""
    logits, labels = as_variable(logits), as_variable(labels)
    ax = normalize_axis(axis, logits.ndim)[0]
    if labels.dtype[0] == "f":
        if labels.ndim != logits.ndim:
            raise ShapeError(f"softmax_cross_entropy: probability labels {labels.type.short()} "
                             f"must have the logits' dimensions ({logits.type.short()})")
        return -_sum(labels * logsoftmax(logits, ax), ax)
    return SoftmaxCrossEntropy(ax)(logits, labels)


def categorical_crossentropy(coding_dist, true_dist):
    """Theano's categorical cross-entropy over the last axis of `coding_dist` (probabilities).

    `true_dist` is either integer class labels (one fewer dimension): -log(coding[label]);
    or a distribution of coding's shape: -sum(true * log(coding)), where a 0 in `true_dist`
    contributes 0 even against a 0 probability.  For logits, `softmax_cross_entropy` is the
    stable choice."""
    from .elemwise import eq, log, where

    coding, true = as_variable(coding_dist), as_variable(true_dist)
    if coding.ndim == 0:
        raise ShapeError("categorical_crossentropy: coding_dist must have a class axis")
    if true.ndim == coding.ndim:
        return -_sum(true * log(where(eq(true, 0), 1, coding)), -1)
    if true.ndim == coding.ndim - 1 and true.dtype[0] in "iu":
        from .shape import shape_i

        mask = OneHot(coding.ndim - 1, "bool")(true, shape_i(coding, -1))
        return -log(_sum(where(mask, coding, 0), -1))
    raise ShapeError(f"categorical_crossentropy: true_dist {true.type.short()} must be integer "
                     f"labels with one dimension fewer than coding_dist {coding.type.short()}, "
                     "or a distribution of its shape")


# ------------------------------------------------------------------------------------------
# activations, binary cross-entropy, batch normalization, dropout (composites whose gradients
# the elementwise rows give)
# ------------------------------------------------------------------------------------------

def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) elsewhere.  The negative branch is computed as
    expm1(min(x, 0)), so it is exact near 0 and never overflows (an inf there would make the
    unselected branch's gradient nan); at 0 the gradient is the left one, alpha (as relu's is 0)."""
    from .elemwise import expm1, gt, where

    x = _float_input("elu", x)
    pos = gt(x, 0)
    return where(pos, x, alpha * expm1(where(pos, 0, x)))


def binary_crossentropy(output, target):
    """Theano's -(target * log(output) + (1 - target) * log(1 - output)), elementwise, for
    probabilities `output`.  The stability rewrites make log(1 - output) a log1p, and for
    `output = sigmoid(z)` the whole loss softplus terms; from logits, prefer
    `sigmoid_binary_crossentropy`."""
    from .elemwise import log

    output, target = _float_input("binary_crossentropy", output), as_variable(target)
    return -(target * log(output) + (1 - target) * log(1 - output))


def sigmoid_binary_crossentropy(logits, target):
    """binary_crossentropy(sigmoid(logits), target) computed as softplus(logits) - target *
    logits: finite for any logits, with gradient sigmoid(logits) - target."""
    from .elemwise import softplus

    logits = _float_input("sigmoid_binary_crossentropy", logits)
    return softplus(logits) - as_variable(target) * logits


def batch_normalization(inputs, gamma, beta, mean, std, mode="low_mem"):
    """Theano's batch normalization with given statistics: (inputs - mean) * gamma / std +
    beta, all broadcast numpy-style.  mode="high_mem" computes gamma / std once at the
    parameters' shape (one division per parameter, one more temporary); "low_mem" divides per
    element inside the one elementwise expression.  The values are the same."""
    from .elemwise import true_divide

    if mode not in ("low_mem", "high_mem"):
        raise ValueError(f"batch_normalization: mode must be 'low_mem' or 'high_mem', got {mode!r}")
    inputs = _float_input("batch_normalization", inputs)
    if mode == "high_mem":
        return (inputs - mean) * true_divide(gamma, std) + beta
    return true_divide((inputs - mean) * gamma, std) + beta


def dropout(x, p, rng_stream, training=True):
    """Inverted dropout: each element of `x` is zeroed with probability `p` and the others are
    scaled by 1 / (1 - p), so the expected value is unchanged and evaluation (`training=False`)
    is the identity.  `rng_stream` is a `ts.random.RandomStream`; the mask is a new draw every
    call of the compiled function."""
    from .elemwise import where

    x = _float_input("dropout", x)
    if not training:
        return x
    if not isinstance(p, Variable):
        p = float(p)
        if not 0 <= p < 1:
            raise ValueError(f"dropout: p must be in [0, 1), got {p}")
        if p == 0:
            return x
    from .elemwise import lt
    from .shape import shape

    keep = lt(rng_stream.uniform(shape(x), dtype=x.dtype), 1 - p)  # a Bernoulli(1 - p) mask
    return where(keep, x * (1 / (1 - p)), 0)


__all__ = ["Softmax", "SoftmaxGrad", "LogSoftmax", "OneHot", "SoftmaxCrossEntropy",
           "SoftmaxCrossEntropyGrad", "softmax",
           "logsoftmax", "log_softmax", "relu", "one_hot", "softmax_cross_entropy",
           "categorical_crossentropy", "elu", "binary_crossentropy", "sigmoid_binary_crossentropy",
           "batch_normalization", "dropout"]
