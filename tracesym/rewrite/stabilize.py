"""Numerical-stability rewrites (phase `stabilize`): expressions that round an intermediate to
0, 1 or inf, replaced by equal ones that do not.

Each rule keeps the result's dtype (casting the operand it passes on when a constant had
widened it) and fires only where the constant it removes cannot broadcast the other operand,
so the shape stays the same too.  Integer sums (`log(1 + i)`) are left alone: they are exact,
and moving the 1 would change where they overflow.

The gradient of `log(softmax(x))` that `grad` builds before any rewrite holds
`SoftmaxGrad(g / softmax(x), softmax(x))`; `softmax_grad_of_log` turns it into the logsoftmax
gradient, so the gradient of a softmax cross-entropy written the user's way,
`-log(softmax(x))[arange(n), y].mean()`, is finite and exact for any logits; and
`softmax_cross_entropy_grad_from_scatter` makes that gradient (a one-hot scatter of the
output gradient minus its row sums times the softmax) the one Op SoftmaxCrossEntropyGrad.
"""

from __future__ import annotations

import math

import numpy as np

from ..ops import elemwise as E
from ..ops.basic import Alloc, ARange
from ..ops.elemwise import Elemwise
from ..ops.nnet import (LogSoftmax, Softmax, SoftmaxCrossEntropy, SoftmaxCrossEntropyGrad,
                        SoftmaxGrad)
from ..ops.reduce import LogSumExp, Reduce
from ..ops.reduce import sum as _sum
from ..ops.shape import BroadcastTo, DimShuffle, ShapeI, broadcast_shape_of, broadcast_to, shape_i
from ..ops.subtensor import SYM, AdvancedIncSubtensor, AdvancedSubtensor, IncSubtensor
from ..trace.graph import Constant
from .engine import node_rewriter
from .shapes import shape_facts

TAGS = ("stabilize",)
#: the most terms `log(a + b + ... + 1)` looks through for the 1, and the most Ops a size is
#: traced back through (keeps a rule visit O(1))
MAX_TERMS = 8
#: Ops whose output has the shape of their first input
_SAME_SHAPE = (Softmax, LogSoftmax, IncSubtensor, AdvancedIncSubtensor)


# -- matching helpers ------------------------------------------------------------------------

def _scalar(v):
    """The scalar op name of the Elemwise computing `v`, or None."""
    node = v.owner
    return node.op.scalar_op.name if node is not None and isinstance(node.op, Elemwise) else None


def _is(node, name):
    return node.op.scalar_op.name == name


def _is_const(v, value) -> bool:
    return isinstance(v, Constant) and v.data.size > 0 and bool(np.all(v.data == value))


def _broadcasts(c, x) -> bool:
    """Whether constant `c` could enlarge `x` when the two are broadcast together."""
    if c.ndim > x.ndim:
        return True
    return any(b != 1 and a != b for a, b in zip(x.type.shape[x.ndim - c.ndim:], c.type.shape))


def _other(node, value):
    """For a binary Elemwise node with a constant `value` that does not broadcast the other
    input: that other input; else None."""
    a, b = node.inputs
    if _is_const(a, value) and not _broadcasts(a, b):
        return b
    if _is_const(b, value) and not _broadcasts(b, a):
        return a
    return None


def _one_minus(v):
    """`x` for a float `v = 1 - x` (the 1 not broadcasting x), else None."""
    node = v.owner
    if _scalar(v) != "sub" or v.dtype[0] != "f":
        return None
    one, x = node.inputs
    return x if _is_const(one, 1) and not _broadcasts(one, x) else None


def _add_terms(v):
    """The terms of a float sum `a + b + ...` (through nested adds of the same dtype), left to
    right, at most MAX_TERMS of them; None when there are more."""
    terms, stack = [], [v]
    while stack:
        t = stack.pop()
        if _scalar(t) == "add" and t.dtype == v.dtype:
            stack.extend(reversed(t.owner.inputs))
        else:
            terms.append(t)
        if len(terms) + len(stack) > MAX_TERMS:
            return None
    return terms


def _arange_length(v):
    """`n` (a Variable, or an int for a constant index) when `v` is 0, 1, ..., n - 1, else None."""
    node = v.owner
    if node is not None and isinstance(node.op, ARange):
        start, stop, step = node.inputs
        if _is_const(start, 0) and _is_const(step, 1) and stop.dtype[0] in "iu":
            return stop
        return None
    if isinstance(v, Constant) and v.ndim == 1 and v.dtype[0] in "iu" and np.array_equal(
            v.data, np.arange(v.data.shape[0])):
        return v.data.shape[0]
    return None


def _static_int(n):
    if isinstance(n, int):
        return n
    return int(n.data) if isinstance(n, Constant) else None


def _is_dim(n, i, *variables) -> bool:
    """Whether scalar `n` is dimension `i` of one of `variables` (by construction or by value)."""
    if n.owner is not None and isinstance(n.owner.op, ShapeI):
        return n.owner.op.i == i and any(n.owner.inputs[0] is v for v in variables)
    k = _static_int(n)
    return k is not None and any(v.type.shape[i] == k for v in variables)


# -- log(1 + x), exp(x) - 1 ------------------------------------------------------------------

@node_rewriter([Elemwise], tags=TAGS)
def log1p_from_log_add(graph, node):
    """log(1 + x) -> log1p(x); also log(x + 1) and log(a + 1 + b) (a constant 1 among the
    terms of a float sum)."""
    if not _is(node, "log") or _scalar(node.inputs[0]) != "add":
        return None
    s, out = node.inputs[0], node.outputs[0]
    if s.dtype[0] != "f":
        return None
    terms = _add_terms(s)
    if terms is None:
        return None
    for k, t in enumerate(terms):
        if _is_const(t, 1):
            rest = terms[:k] + terms[k + 1:]
            x = rest[0]
            for r in rest[1:]:
                x = E.add(x, r)
            if _broadcasts(t, x):
                return None
            return [E.log1p(E.cast(x, out.dtype))]
    return None


@node_rewriter([Elemwise], tags=TAGS)
def log1mexp(graph, node):
    """log(1 - exp(x)) -> where(x < -log 2, log1p(-exp(x)), log(-expm1(x))): each branch
    where it is exact (Maechler's log1mexp), never log(0) for x near 0 nor 1 - 1 for x << 0."""
    if not _is(node, "log"):
        return None
    e = _one_minus(node.inputs[0])
    if e is None or _scalar(e) != "exp":
        return None
    x = E.cast(e.owner.inputs[0], node.outputs[0].dtype)
    return [E.where(E.lt(x, -math.log(2)), E.log1p(E.neg(E.exp(x))), E.log(E.neg(E.expm1(x))))]


@node_rewriter([Elemwise], tags=TAGS)
def log1p_from_log_one_minus(graph, node):
    """log(1 - x) -> log1p(-x) (other than 1 - exp(x) and 1 - sigmoid(x), which have their own
    rules)."""
    if not _is(node, "log"):
        return None
    x = _one_minus(node.inputs[0])
    if x is None or _scalar(x) in ("exp", "sigmoid"):
        return None
    return [E.log1p(E.neg(E.cast(x, node.outputs[0].dtype)))]


@node_rewriter([Elemwise], tags=TAGS)
def softplus_from_log1p_exp(graph, node):
    """log1p(exp(x)) -> softplus(x), finite where exp(x) overflows (so log(1 + exp(x)) ends
    there too)."""
    if not _is(node, "log1p") or _scalar(node.inputs[0]) != "exp":
        return None
    x = node.inputs[0].owner.inputs[0]
    return [E.softplus(E.cast(x, node.outputs[0].dtype))]


@node_rewriter([Elemwise], tags=TAGS)
def expm1_from_exp_minus_one(graph, node):
    """exp(x) - 1 -> expm1(x); also exp(x) + (-1) and -1 + exp(x)."""
    out = node.outputs[0]
    if out.dtype[0] != "f":
        return None
    if _is(node, "sub"):
        e, one = node.inputs
        if not (_is_const(one, 1) and not _broadcasts(one, e)):
            return None
    elif _is(node, "add"):
        e = _other(node, -1)
        if e is None:
            return None
    else:
        return None
    if _scalar(e) != "exp":
        return None
    return [E.cast(E.expm1(e.owner.inputs[0]), out.dtype)]


# -- sigmoid ------------------------------------------------------------------------------

@node_rewriter([Elemwise], tags=TAGS)
def log_sigmoid_to_softplus(graph, node):
    """log(sigmoid(x)) -> -softplus(-x), and log(sigmoid(-x)) -> -softplus(x) (a float -x:
    an integer one may have wrapped around)."""
    if not _is(node, "log") or _scalar(node.inputs[0]) != "sigmoid":
        return None
    dtype = node.outputs[0].dtype
    x = node.inputs[0].owner.inputs[0]
    if _scalar(x) == "neg" and x.dtype[0] == "f":
        return [E.neg(E.softplus(E.cast(x.owner.inputs[0], dtype)))]
    return [E.neg(E.softplus(E.neg(E.cast(x, dtype))))]


@node_rewriter([Elemwise], tags=TAGS)
def log_one_minus_sigmoid_to_softplus(graph, node):
    """log(1 - sigmoid(x)) -> -softplus(x)."""
    if not _is(node, "log"):
        return None
    s = _one_minus(node.inputs[0])
    if s is None or _scalar(s) != "sigmoid":
        return None
    return [E.neg(E.softplus(E.cast(s.owner.inputs[0], node.outputs[0].dtype)))]


# -- softmax, logsumexp ----------------------------------------------------------------------

@node_rewriter([Elemwise], tags=TAGS)
def log_softmax_to_logsoftmax(graph, node):
    """log(softmax(x, axis)) -> logsoftmax(x, axis)."""
    if not _is(node, "log"):
        return None
    sm = node.inputs[0]
    if sm.owner is None or not isinstance(sm.owner.op, Softmax):
        return None
    return [LogSoftmax(sm.owner.op.axis)(sm.owner.inputs[0])]


@node_rewriter([ShapeI], tags=TAGS)
def shape_of_logsoftmax(graph, node):
    """shape_i(logsoftmax(x), i) -> shape_i(x, i), so a size read off log(softmax(x)) (as the
    gradient of its indexing does) does not keep the matrix computed once
    `softmax_cross_entropy_from_indexing` has made it unnecessary."""
    v = node.inputs[0]
    if v.owner is None or not isinstance(v.owner.op, LogSoftmax):
        return None
    return [shape_i(v.owner.inputs[0], node.op.i)]


@node_rewriter([Elemwise], tags=TAGS)
def log_sum_exp_to_logsumexp(graph, node):
    """log(sum(exp(x), axis, keepdims)) -> logsumexp(x, axis, keepdims)."""
    if not _is(node, "log"):
        return None
    s, out = node.inputs[0], node.outputs[0]
    op = s.owner.op if s.owner is not None else None
    if not isinstance(op, Reduce) or op.kind != "sum" or s.dtype != out.dtype:
        return None
    e = s.owner.inputs[0]
    if _scalar(e) != "exp" or e.dtype[0] != "f":
        return None
    return [LogSumExp(op.axis, op.keepdims)(E.cast(e.owner.inputs[0], out.dtype))]


def _divided_by(dy, sm):
    """`gz` where `dy` is gz / sm (or gz * reciprocal(sm)), else None."""
    name = _scalar(dy)
    if name == "true_divide":
        gz, d = dy.owner.inputs
        return gz if d is sm else None
    if name == "mul":
        for a, b in (dy.owner.inputs, reversed(dy.owner.inputs)):
            if _scalar(b) == "reciprocal" and b.owner.inputs[0] is sm:
                return a
    return None


def _dim_source(v, a):
    """A (variable, axis) with the length of axis `a` of `v`, reached by following a few Ops
    whose output has an input's shape, and Alloc's size inputs read off another shape."""
    for _ in range(MAX_TERMS):
        node = v.owner
        if node is None:
            break
        op = node.op
        if isinstance(op, _SAME_SHAPE) or isinstance(op, Elemwise) and len(node.inputs) == 1:
            v = node.inputs[0]
        elif isinstance(op, Alloc) and node.inputs[1 + a].owner is not None and isinstance(
                node.inputs[1 + a].owner.op, ShapeI):
            d = node.inputs[1 + a].owner
            v, a = d.inputs[0], d.op.i
        else:
            break
    return v, a


def _full_along(gz, sm, axes):
    """`gz` broadcast against `sm` unless it is known to be full along `axes` already, from
    its static shape or from where its sizes come from (elsewhere broadcasting commutes with
    the sum over `axes`)."""
    def full(a):
        n = gz.type.shape[a]
        if n is not None and (n != 1 or sm.type.shape[a] == 1):
            return True
        (u, i), (w, k) = _dim_source(gz, a), _dim_source(sm, a)
        return u is w and i == k

    if gz.ndim == sm.ndim and all(full(a) for a in axes):
        return gz
    dims = broadcast_shape_of([tuple(shape_i(v, k) for k in range(v.ndim)) for v in (gz, sm)],
                              [gz, sm])
    return broadcast_to(gz, dims)


@node_rewriter([SoftmaxGrad], tags=TAGS)
def softmax_grad_of_log(graph, node):
    """softmax_grad(gz / sm, sm) with sm = softmax(x) -> gz - sum(gz, axis) * sm: the gradient
    of log(softmax(x)) as the logsoftmax gradient, finite where sm underflows to 0."""
    dy, sm = node.inputs
    if sm.owner is None or not isinstance(sm.owner.op, Softmax) or sm.owner.op.axis != node.op.axis:
        return None
    gz = _divided_by(dy, sm)
    if gz is None:
        return None
    gz = _full_along(E.cast(gz, sm.dtype), sm, node.op.axis)
    return [E.cast(gz - _sum(gz, node.op.axis, keepdims=True) * sm, node.outputs[0].dtype)]


# -- softmax cross-entropy with integer labels -----------------------------------------------

def _labelled_rows(x, i0, i1, axis, *same_as_x):
    """For a 2-D `x` indexed by [i0, i1] = [arange(n), y] along `axis` (1; or [y, arange(n)]
    along 0): (x, y broadcast to n labels unless known to be n long, whether the labels may
    cover only the first n rows: n not known to be x's row count; the Ops take that as
    `prefix`), else None.  `same_as_x`: variables known to have x's shape."""
    rows, labels = (i0, i1) if axis == 1 else (i1, i0)
    if labels.ndim != 1 or labels.dtype[0] not in "iu":
        return None
    n = _arange_length(rows)
    if n is None:
        return None
    r = 1 - axis
    if isinstance(n, int):
        rows_match, labels_match = x.type.shape[r] == n, labels.type.shape[0] == n
    else:
        rows_match, labels_match = _is_dim(n, r, x, *same_as_x), _is_dim(n, 0, labels)
    if not labels_match:
        labels = broadcast_to(labels, (n,))
    return x, labels, not rows_match


def _cross_entropy(node):
    """softmax_cross_entropy(x, y) for `logsoftmax(x)[arange(n), y]` (or `[y, arange(n)]` with
    the softmax over axis 0), else None.  Where `n` is not known to be x's row count the Op
    labels the first n rows (`prefix`), and y is broadcast to n labels where it is not known
    to be n long, as the indexing does."""
    if node.op.idx_list != (SYM, SYM):
        return None
    ls, i0, i1 = node.inputs
    if ls.owner is None or not isinstance(ls.owner.op, LogSoftmax) or ls.ndim != 2:
        return None
    if len(ls.owner.op.axis) != 1:
        return None
    (axis,) = ls.owner.op.axis
    found = _labelled_rows(ls.owner.inputs[0], i0, i1, axis, ls)
    return None if found is None else SoftmaxCrossEntropy(axis, found[2])(*found[:2])


@node_rewriter([Elemwise], tags=TAGS)
def softmax_cross_entropy_from_indexing(graph, node):
    """-logsoftmax(x)[arange(n), y] -> softmax_cross_entropy(x, y) (integer labels y; what
    log(softmax(x)) becomes first), one loss per row without the logsoftmax matrix."""
    if not _is(node, "neg"):
        return None
    v = node.inputs[0]
    if v.owner is None or not isinstance(v.owner.op, AdvancedSubtensor):
        return None
    ce = _cross_entropy(v.owner)
    return None if ce is None else [ce]


@node_rewriter([AdvancedSubtensor], tags=TAGS)
def neg_cross_entropy_from_indexing(graph, node):
    """logsoftmax(x)[arange(n), y] -> -softmax_cross_entropy(x, y), where no `-` is applied to
    it directly (as in `-mean(log(softmax(x))[arange(n), y])`)."""
    out, clients = node.outputs[0], graph.clients(node.outputs[0])
    if clients and all(_scalar(a.outputs[0]) == "neg" for a, _ in clients) and not any(
            o is out for o in graph.outputs):
        return None  # softmax_cross_entropy_from_indexing takes the minus sign with it
    ce = _cross_entropy(node)
    return None if ce is None else [E.neg(ce)]


@node_rewriter([Elemwise], tags=TAGS)
def double_neg_cross_entropy(graph, node):
    """-(-softmax_cross_entropy(x, y)) -> softmax_cross_entropy(x, y)."""
    if not _is(node, "neg") or _scalar(node.inputs[0]) != "neg":
        return None
    ce = node.inputs[0].owner.inputs[0]
    if ce.owner is None or not isinstance(ce.owner.op, SoftmaxCrossEntropy):
        return None
    return [ce]


def _softmax_input(p, axis):
    """x where `p` is softmax(x) or exp(logsoftmax(x)) along `axis` alone, else None."""
    if _scalar(p) == "exp":
        p = p.owner.inputs[0]
        want = LogSoftmax
    else:
        want = Softmax
    if p.owner is None or type(p.owner.op) is not want or p.owner.op.axis != (axis,):
        return None
    return p.owner.inputs[0]


def _one_hot_scatter(gz):
    """(zeros, v, i0, i1) where 2-D `gz` is zeros (an Alloc of 0) with v added or set at
    [i0, i1] (index vectors), else None."""
    node = gz.owner
    if node is None or not isinstance(node.op, AdvancedIncSubtensor) or gz.ndim != 2:
        return None
    if node.op.idx_list != (SYM, SYM) or node.inputs[1].ndim > 1:
        return None
    zeros = node.inputs[0]
    if zeros.owner is None or not isinstance(zeros.owner.op, Alloc) or not _is_const(
            zeros.owner.inputs[0], 0):
        return None
    return zeros, *node.inputs[1:]


@node_rewriter([Elemwise], tags=TAGS)
def softmax_cross_entropy_grad_from_scatter(graph, node):
    """gz - sum(gz, axis, keepdims) * softmax(x) -> softmax_cross_entropy_grad(-v, x, y), for
    gz the zeros with v at [arange(n), y] (the gradient of `log(softmax(x))[arange(n), y]`
    that `grad` builds; also with exp(logsoftmax(x))): one pass over the logits instead of a
    one-hot matrix, its row sums and a second softmax.  Where n is not known to be x's row
    count, the Op's `prefix` gives the first n rows theirs and the others zeros."""
    if not _is(node, "sub"):
        return None
    gz, prod = node.inputs
    found = _one_hot_scatter(gz)
    if found is None or _scalar(prod) != "mul":
        return None
    for s, p in (prod.owner.inputs, reversed(prod.owner.inputs)):
        op = s.owner.op if s.owner is not None else None
        if (isinstance(op, Reduce) and op.kind == "sum" and op.keepdims and len(op.axis) == 1
                and s.owner.inputs[0] is gz):
            x = _softmax_input(p, op.axis[0])
            break
    else:
        return None
    out = node.outputs[0]
    if x is None or x.ndim != 2 or not p.dtype == gz.dtype == out.dtype:
        return None
    zeros, v, i0, i1 = found
    facts = shape_facts(graph)
    dz, dx = tuple(map(facts.scalar, zeros.owner.inputs[1:])), facts.dims(x)
    facts.observe(graph)
    if not all(map(facts.same, dz, dx)):
        return None  # the sum would broadcast the two
    (axis,) = op.axis
    rows = _labelled_rows(x, i0, i1, axis, zeros)
    if rows is None:
        return None
    x, labels, prefix = rows
    if v.owner is not None and isinstance(v.owner.op, BroadcastTo) and all(
            d == 1 for d in v.owner.inputs[0].type.shape):
        v = v.owner.inputs[0]  # one value: the Op broadcasts it without a copy
    if v.owner is not None and isinstance(v.owner.op, DimShuffle) and v.owner.op.new_order == (
            ("x",) * (v.ndim - v.owner.inputs[0].ndim) + tuple(range(v.owner.inputs[0].ndim))):
        v = v.owner.inputs[0]  # leading size-1 dims: broadcasting adds them
    return [E.cast(SoftmaxCrossEntropyGrad(axis, prefix)(E.neg(v), x, labels), out.dtype)]


__all__ = ["log1p_from_log_add", "log1mexp", "log1p_from_log_one_minus", "softplus_from_log1p_exp",
           "expm1_from_exp_minus_one", "log_sigmoid_to_softplus",
           "log_one_minus_sigmoid_to_softplus", "log_softmax_to_logsoftmax", "shape_of_logsoftmax",
           "log_sum_exp_to_logsumexp", "softmax_grad_of_log", "softmax_cross_entropy_from_indexing",
           "neg_cross_entropy_from_indexing", "double_neg_cross_entropy",
           "softmax_cross_entropy_grad_from_scatter"]
