"""Canonical algebra (phase `canonicalize`): one normal form for sums and products, algebraic
identities that remove work, and chains of shape Ops collapsed into one.

Every rule keeps its node's dtype and shape.  Where a simplification would narrow the dtype
(`int_x + 0.0` is float) the operand is cast, which is what numpy's ufunc does to it first;
where a constant would broadcast the other operand to a bigger shape, the identity rules do
not fire, and the rules that produce a fresh tensor (`x * 0`, `x - x`, `x / x`) allocate it
with the broadcast shape of all the node's inputs.  A constant is also recognised through a
fill or broadcast of it (`zeros_like(x)`, a gradient's seed), and two tensors are known to
have one shape when `shape_root` traces both back to the same tensor (`exp(x)` and
`full_like(x, 3)`), so the identities apply where static shapes are unknown.

Like Theano's FAST_RUN, a few identities hold for finite values only, and are applied anyway
(each rule's docstring says where): `x * 0 -> 0` where x is inf or nan, `x - x -> 0` where x is
inf, `x / x -> 1` where x is 0, inf or nan, `exp(log(x)) -> x` where x < 0, `log(exp(x)) -> x`
where exp(x) overflows, `x ** 0.5 -> sqrt(x)` at -inf and -0.0, `x + 0 -> x` at -0.0, and
`sum(broadcast_to(x, s)) -> sum(x) * n` where x is inf or nan and n is 0.
Reassociating a float sum or product (gathering its constants) changes its rounding.
"""

from __future__ import annotations

import numpy as np

from ..ops import elemwise as E
from ..ops.basic import Alloc
from ..ops.blas import MatMul
from ..ops.elemwise import Elemwise
from ..ops.reduce import Reduce
from ..ops.shape import (BroadcastTo, DimShuffle, Reshape, Shape, ShapeI, SumToShape,
                         broadcast_shape_of, broadcast_to, dimshuffle, prod_dims, reshape, shape_i)
from ..trace.graph import Constant, as_variable
from .engine import compatible, node_rewriter
from .merge import FOLD_MAX_BYTES

TAGS = ("canonicalize",)
#: how many Ops `shape_root` and `_uniform` follow back (keeps a visit O(1))
MAX_DEPTH = 4


# -- matching helpers ------------------------------------------------------------------------

def _scalar(v):
    """The scalar op name of the Elemwise computing `v`, or None."""
    node = v.owner
    return node.op.scalar_op.name if node is not None and isinstance(node.op, Elemwise) else None


def _is(node, name):
    return node.op.scalar_op.name == name


_FILLS = (Alloc, BroadcastTo, DimShuffle)


def _uniform(v):
    """The one value every element of `v` holds (a numpy scalar) where `v` is a constant or a
    fill, broadcast or dimshuffle of one (`zeros_like(x)`, a gradient's seed), else None."""
    for _ in range(MAX_DEPTH):
        if v.owner is None or not isinstance(v.owner.op, _FILLS):
            break
        v = v.owner.inputs[0]
    if not isinstance(v, Constant) or v.data.size == 0:
        return None
    flat = v.data.reshape(-1)
    first = flat[0]
    return first if (flat.size == 1 or bool(np.all(flat == first))) else None


def _is_const(v, value) -> bool:
    u = _uniform(v)
    return u is not None and bool(u == value)


def _static_covers(x, w) -> bool:
    """True when `w` has no more dims than `x` and, along each, static size 1 or x's own
    static size (not 1): broadcasting cannot enlarge x."""
    if w is x:
        return True
    if w.ndim > x.ndim:
        return False
    return all(b == 1 or (a is not None and a == b)
               for a, b in zip(x.type.shape[x.ndim - w.ndim:], w.type.shape))


def _covers(x, others) -> bool:
    """True when broadcasting `x` with `others` cannot enlarge it: each other operand is
    statically no bigger (`_static_covers`) or is known to have x's shape (`shape_root`)."""
    root = None
    for w in others:
        if _static_covers(x, w):
            continue
        if root is None:
            root = shape_root(x)
        if w.ndim != x.ndim or shape_root(w) is not root:
            return False
    return True


def _other_operand(node, value):
    """For a binary Elemwise with a constant `value` operand that cannot broadcast the other
    one: that other operand; else None."""
    a, b = node.inputs
    if _is_const(b, value) and _covers(a, [b]):
        return a
    if _is_const(a, value) and _covers(b, [a]):
        return b
    return None


def _const_int(v):
    return int(v.data) if isinstance(v, Constant) and v.ndim == 0 else None


def _dims(v):
    """v's sizes as int64 scalars: constants where its static shape knows them, else read
    off the variable furthest back with v's shape, so that `exp(x) * 0` needs x's shape, not
    exp(x)."""
    root = shape_root(v)
    return tuple(shape_i(root, k) if s is None else as_variable(np.int64(s))
                 for k, s in enumerate(v.type.shape))


def _filled(node, value):
    """A new tensor holding `value`, with the dtype of `node`'s output and the broadcast shape
    of its inputs (computed from the inputs, never from the output being replaced): the shape
    of one input where the others cannot enlarge it."""
    out, ins = node.outputs[0], node.inputs
    whole = next((v for v in ins if v.ndim == out.ndim and _covers(v, ins)), None)
    dims = _dims(whole) if whole is not None else broadcast_shape_of([_dims(v) for v in ins], ins)
    return Alloc()(as_variable(np.asarray(value, dtype=out.dtype)), *dims)


def _same_size(x, j, d) -> bool:
    """Whether int64 scalar `d` is known to equal dimension `j` of `x`."""
    s = x.type.shape[j]
    if s is not None:
        return _const_int(d) == s
    return d.owner is not None and isinstance(d.owner.op, ShapeI) and d.owner.op.i == j and \
        d.owner.inputs[0] is x


def _shape_source(v):
    """For a fill or broadcast `v` whose sizes are all read off one tensor of v's rank
    (`zeros_like(x)`, `broadcast_to(g, x.shape)`): that tensor, else None."""
    dims = v.owner.inputs[1:]
    x = next((d.owner.inputs[0] for d in dims if d.owner is not None
              and isinstance(d.owner.op, ShapeI)), None)
    if x is None or x.ndim != len(dims) or not all(_same_size(x, j, d) for j, d in enumerate(dims)):
        return None
    return x


def _is_output(graph, v) -> bool:
    return any(o is v for o in graph.outputs)


def _sole_client(graph, v):
    """The Apply that is `v`'s only reader (and `v` no output of the graph), else None."""
    if v not in graph or _is_output(graph, v):
        return None
    clients = graph.clients(v)
    return clients[0][0] if len(clients) == 1 else None


def shape_root(v, depth=MAX_DEPTH):
    """The variable furthest back (at most `depth` Ops) that `v` is known to have the shape
    of: through an Elemwise, the input that no other input can broadcast; through a fill or
    broadcast, the tensor its sizes are read off (`_shape_source`); through `SumToShape(g,
    shape(x))`, x.  Two tensors with one root have one shape."""
    for _ in range(depth):
        node = v.owner
        if node is None:
            break
        w = None
        if isinstance(node.op, Elemwise):
            w = next((u for u in node.inputs if u.ndim == v.ndim
                      and all(_static_covers(u, o) for o in node.inputs)), None)
        elif isinstance(node.op, (Alloc, BroadcastTo)):
            w = _shape_source(v)
        elif isinstance(node.op, SumToShape):
            s = node.inputs[1].owner
            w = s.inputs[0] if s is not None and isinstance(s.op, Shape) else None
        if w is None or w.ndim != v.ndim:
            break
        v = w
    return v


def same_shape(v, x) -> bool:
    """True when `v` is known to have `x`'s shape: it is `x`, both static shapes are fully
    known and equal, or both have one `shape_root`."""
    if v is x:
        return True
    if v.ndim != x.ndim:
        return False
    if None not in x.type.shape and v.type.shape == x.type.shape:
        return True
    return shape_root(v) is shape_root(x)


# -- sums and products ---------------------------------------------------------------------

_IDENTITY = {"add": 0, "mul": 1}
_UFUNC = {"add": np.add, "mul": np.multiply}


def _link(graph, v, name, dtype) -> bool:
    """Whether `v` is an inner node of a `name` chain of `dtype`: computed by that Elemwise in
    that dtype, and read only by the next node up the chain."""
    return (_scalar(v) == name and v.dtype == dtype and _sole_client(graph, v) is not None)


def _chain_terms(graph, node, name, dtype):
    """The leaves of the `name` chain rooted at `node`, left to right, and whether the chain is
    already left-deep (no inner node as a right operand)."""
    terms, left_deep = [], not _link(graph, node.inputs[1], name, dtype)
    stack = [node.inputs[1], node.inputs[0]]
    while stack:
        v = stack.pop()
        if _link(graph, v, name, dtype):
            a, b = v.owner.inputs
            left_deep = left_deep and not _link(graph, b, name, dtype)
            stack += [b, a]
        else:
            terms.append(v)
    return terms, left_deep


def _fold(consts, name, dtype):
    """The constants combined by `name` in `dtype` (numpy's result where their shapes
    broadcast), or None when the result would be too big to keep in the graph."""
    with np.errstate(all="ignore"):
        value = consts[0].data.astype(dtype)
        for c in consts[1:]:
            value = _UFUNC[name](value, c.data.astype(dtype))
    value = np.asarray(value, dtype=dtype)
    return None if value.nbytes > FOLD_MAX_BYTES else as_variable(value)


@node_rewriter([Elemwise], tags=TAGS)
def canonical_chain(graph, node):
    """A sum (or product) of terms as one left-deep chain, the terms in their order, the
    constants gathered and folded into one at the end: `2 * x * 3 -> x * 6`, `x + 1 + y + 2 ->
    (x + y) + 3`, `c + x -> x + c`, `x + (y + z) -> (x + y) + z`.

    The chain is the tree of `add` (or `mul`) nodes of one dtype, each read only by the next:
    a node shared with other readers is a term, so no work is duplicated.  The rule fires at
    the root of such a tree (inner nodes leave it to their root), so a visit costs the size of
    a tree only its root owns.  Every partial result keeps the chain's dtype (a first term of a
    narrower dtype is cast, as numpy casts it in the original), so integer chains wrap exactly
    as before; float chains round differently, as any reassociation does."""
    name = node.op.scalar_op.name
    if name not in _IDENTITY:
        return None
    out = node.outputs[0]
    dtype = out.dtype
    if out.dtype == "bool":
        return None
    parent = _sole_client(graph, out)
    if (parent is not None and isinstance(parent.op, Elemwise) and _is(parent, name)
            and parent.outputs[0].dtype == dtype):
        return None  # an inner node: the root rebuilds the whole chain
    terms, left_deep = _chain_terms(graph, node, name, dtype)
    if any(np.promote_types(t.dtype, dtype) != np.dtype(dtype) for t in terms):
        return None
    consts = [t for t in terms if isinstance(t, Constant)]
    rest = [t for t in terms if not isinstance(t, Constant)]
    if not rest:
        return None  # constant folding's case
    if left_deep and (not consts or (len(consts) == 1 and terms[-1] is consts[0])):
        return None  # already canonical
    if len(consts) > 1:
        folded = _fold(consts, name, dtype)
        if folded is None:
            return None
        consts = [folded]
    first = rest[0]
    second = rest[1] if len(rest) > 1 else consts[0] if consts else None
    if first.dtype != dtype and np.promote_types(first.dtype, second.dtype) != np.dtype(dtype):
        first = E.cast(first, dtype)
    acc = first
    for t in rest[1:] + consts:
        acc = E.elemwise_op(name)(acc, t)
    return [acc]


@node_rewriter([Elemwise], tags=TAGS)
def add_zero(graph, node):
    """x + 0 -> x, 0 + x -> x and x - 0 -> x (x cast to the sum's dtype where the 0 widened
    it).  Not where the 0 would broadcast x.  At x = -0.0, numpy's -0.0 + 0.0 is +0.0."""
    if _is(node, "add"):
        x = _other_operand(node, 0)
    elif _is(node, "sub"):
        x, zero = node.inputs
        x = x if _is_const(zero, 0) and _covers(x, [zero]) else None
    else:
        return None
    return None if x is None else [E.cast(x, node.outputs[0].dtype)]


@node_rewriter([Elemwise], tags=TAGS)
def mul_one(graph, node):
    """x * 1 -> x, 1 * x -> x and x / 1 -> x (x cast to the result's dtype).  Not where the 1
    would broadcast x, nor for complex results: numpy's complex (inf + 0j) * 1 is inf + nanj."""
    if node.outputs[0].dtype[0] == "c":
        return None
    if _is(node, "mul"):
        x = _other_operand(node, 1)
    elif _is(node, "true_divide"):
        x, one = node.inputs
        x = x if _is_const(one, 1) and _covers(x, [one]) else None
    else:
        return None
    return None if x is None else [E.cast(x, node.outputs[0].dtype)]


@node_rewriter([Elemwise], tags=TAGS)
def mul_zero(graph, node):
    """x * 0 -> zeros, of the product's dtype and broadcast shape.  As in Theano's FAST_RUN
    this also gives 0 where x is inf or nan (numpy: nan)."""
    if not _is(node, "mul"):
        return None
    if not any(_is_const(v, 0) for v in node.inputs):
        return None
    return [_filled(node, 0)]


@node_rewriter([Elemwise], tags=TAGS)
def sub_self(graph, node):
    """x - x -> zeros of x's shape and dtype.  Also where x is inf or nan (numpy: nan), as in
    Theano."""
    if not _is(node, "sub") or node.inputs[0] is not node.inputs[1]:
        return None
    return [_filled(node, 0)]


@node_rewriter([Elemwise], tags=TAGS)
def div_self(graph, node):
    """x / x -> ones, for float (and complex) x only: integer 0 / 0 is nan in numpy, and a
    float x gives 1 also where x is 0, inf or nan (numpy: nan), as Theano's rewrite does."""
    if not _is(node, "true_divide") or node.inputs[0] is not node.inputs[1]:
        return None
    if node.inputs[0].dtype[0] not in "fc":
        return None
    return [_filled(node, 1)]


@node_rewriter([Elemwise], tags=TAGS)
def neg_neg(graph, node):
    """-(-x) -> x (exact in every dtype: integer negation wraps both ways)."""
    if not _is(node, "neg") or _scalar(node.inputs[0]) != "neg":
        return None
    return [node.inputs[0].owner.inputs[0]]


@node_rewriter([Elemwise], tags=TAGS)
def exp_log(graph, node):
    """exp(log(x)) -> x (cast to the float dtype).  Applied unconditionally, as in Theano:
    where x < 0 numpy gives nan and the rewrite x."""
    if not _is(node, "exp") or _scalar(node.inputs[0]) != "log":
        return None
    return [E.cast(node.inputs[0].owner.inputs[0], node.outputs[0].dtype)]


@node_rewriter([Elemwise], tags=TAGS)
def log_exp(graph, node):
    """log(exp(x)) -> x (cast to the float dtype); also exact where exp(x) overflows.  Not for
    complex x: log returns the principal branch, so log(exp(4j)) is (4 - 2 pi)j."""
    if not _is(node, "log") or _scalar(node.inputs[0]) != "exp" or node.outputs[0].dtype[0] == "c":
        return None
    return [E.cast(node.inputs[0].owner.inputs[0], node.outputs[0].dtype)]


@node_rewriter([Elemwise], tags=TAGS)
def where_constant(graph, node):
    """where(True, a, b) -> a and where(False, a, b) -> b (cast to the result's dtype), for a
    condition that is one constant value (as gradients build: `where(eq(2.0, 0), 0, g)`).  Not
    where the other operands would broadcast the chosen one."""
    if not _is(node, "where"):
        return None
    cond, a, b = node.inputs
    truth = _uniform(cond)
    if truth is None:
        return None
    chosen = a if truth else b
    if chosen.ndim != node.outputs[0].ndim or not _covers(chosen, node.inputs):
        return None
    return [E.cast(chosen, node.outputs[0].dtype)]


def _broadcast_value(v):
    """`x` for v = broadcast_to(x, s) or a fill of x (Alloc), else None."""
    node = v.owner
    fill = node is not None and isinstance(node.op, (Alloc, BroadcastTo))
    return node.inputs[0] if fill else None


@node_rewriter([Elemwise], tags=TAGS)
def implicit_broadcast(graph, node):
    """f(broadcast_to(v, s), y) -> f(v, y), also for a fill (`full_like(y, v)`, a gradient's
    seed), where another operand already has the result's shape: the Elemwise broadcasts v
    itself, and the filled tensor is neither built nor its shape computed."""
    ins = node.inputs
    whole = [k for k, w in enumerate(ins) if w.ndim == node.outputs[0].ndim and _covers(w, ins)]
    if not whole:
        return None
    keep = next((k for k in whole if _broadcast_value(ins[k]) is None), whole[0])
    new = [w if k == keep or _broadcast_value(w) is None else _broadcast_value(w)
           for k, w in enumerate(ins)]
    if all(a is b for a, b in zip(new, ins)):
        return None
    out = node.op(*new)  # not where only the broadcast made a size statically 1
    return [out] if compatible(node.outputs[0].type, out.type) else None


_POWERS = {2: E.sqr, 1: None, 0.5: E.sqrt, -1: E.reciprocal}


@node_rewriter([Elemwise], tags=TAGS)
def pow_constant(graph, node):
    """x ** 2 -> sqr(x), x ** 1 -> x, and for a float result x ** 0.5 -> sqrt(x) and
    x ** -1 -> reciprocal(x) (an integer reciprocal would truncate).  x is cast to the
    result's dtype first, as numpy's power casts it; not where the exponent would broadcast x.
    sqrt differs from power at -inf (nan, not inf) and -0.0 (-0.0, not 0.0), as in Theano."""
    if not _is(node, "power"):
        return None
    x, p = node.inputs
    value = _uniform(p)
    if value is None or not _covers(x, [p]) or np.iscomplexobj(value):
        return None
    dtype = node.outputs[0].dtype
    for k, fn in _POWERS.items():
        if value == k:
            if k in (0.5, -1) and dtype[0] != "f":
                return None
            x = E.cast(x, dtype)
            return [x if fn is None else fn(x)]
    return None


# -- casts ----------------------------------------------------------------------------------

def exact_cast(src, dst) -> bool:
    """Whether every value of dtype `src` converts to `dst` and back unchanged (bool to
    anything; integers to wider integers or to floats with enough mantissa bits; floats to
    wider floats or complex)."""
    s, d = np.dtype(src), np.dtype(dst)
    if s == d or s.kind == "b":
        return True
    if s.kind in "iu" and d.kind in "iu":
        return bool(np.can_cast(s, d, "safe"))
    if s.kind in "iu" and d.kind in "fc":
        return s.itemsize * 8 - (s.kind == "i") <= np.finfo(d).nmant + 1
    if s.kind in "fc" and d.kind in "fc" and (s.kind, d.kind) != ("c", "f"):
        return np.finfo(s).nmant <= np.finfo(d).nmant and np.finfo(s).maxexp <= np.finfo(d).maxexp
    return False


@node_rewriter([Elemwise], tags=TAGS)
def cast_cast(graph, node):
    """cast(cast(x, a), b) -> cast(x, b) where every value of x survives the cast to `a`
    (then converting it to b gives the same result either way); x itself when b is x's
    dtype."""
    if not node.op.scalar_op.name.startswith("cast_"):
        return None
    inner = node.inputs[0]
    name = _scalar(inner)
    if name is None or not name.startswith("cast_"):
        return None
    x = inner.owner.inputs[0]
    if not exact_cast(x.dtype, inner.dtype):
        return None
    return [E.cast(x, node.outputs[0].dtype)]


# -- shapes --------------------------------------------------------------------------------

@node_rewriter([Reshape], tags=TAGS)
def reshape_reshape(graph, node):
    """reshape(reshape(x, s1), s2) -> reshape(x, s2) (the element order is C order either way),
    and reshape(x, s) -> x where s is known to be x's own shape.  The sizes of s2 that the
    static shape knows become constants: a -1 that s1 resolved (`(6,) -> (6, -1)` is (6, 1))
    stays resolved."""
    x, dims = node.inputs[0], node.inputs[1:]
    if x.owner is not None and isinstance(x.owner.op, Reshape):
        known = node.outputs[0].type.shape
        dims = [d if s is None else as_variable(np.int64(s)) for d, s in zip(dims, known)]
        return [reshape(x.owner.inputs[0], tuple(dims))]
    if len(dims) != x.ndim:
        return None
    differ = [j for j, d in enumerate(dims) if not _same_size(x, j, d)]
    if not differ or len(differ) == 1 and _const_int(dims[differ[0]]) == -1:
        return [x]  # a lone -1 among x's own sizes can only be the missing one
    return None


@node_rewriter([DimShuffle], tags=TAGS)
def dimshuffle_chain(graph, node):
    """dimshuffle(dimshuffle(x, a), b) -> dimshuffle(x, a[b]) (transposes, expand_dims and
    squeezes composed into one), and dimshuffle(x, 0, 1, ..., n-1) -> x."""
    x, order = node.inputs[0], node.op.new_order
    if x.owner is not None and isinstance(x.owner.op, DimShuffle):
        inner = x.owner.op.new_order
        x = x.owner.inputs[0]
        order = tuple("x" if d == "x" else inner[d] for d in order)
    elif order != tuple(range(x.ndim)):
        return None
    return [dimshuffle(x, *order)]


@node_rewriter([Reduce], tags=TAGS)
def sum_of_broadcast(graph, node):
    """sum(broadcast_to(x, s), axes) -> sum(x, axes) * (the product of the sizes x was
    broadcast to along the summed axes), broadcast along the kept axes x was broadcast along;
    also for `Alloc` (zeros, ones, full).  Each summed axis must be one x lacks or has size 1
    in statically (broadcast), or one whose size is known to be x's (summed in x).  Where x is
    inf or nan and a size summed over is 0 at run time, this gives nan (numpy: 0)."""
    op, y = node.op, node.inputs[0]
    b = y.owner
    if op.kind != "sum" or b is None or not isinstance(b.op, (BroadcastTo, Alloc)):
        return None
    out = node.outputs[0]
    if out.dtype == "bool":
        return None
    x, dims = b.inputs[0], b.inputs[1:]
    lead = len(dims) - x.ndim
    xs = (1,) * lead + x.type.shape
    copies = []
    for a in op.axis:
        if xs[a] == 1:
            copies.append(dims[a])
        elif not _same_size(x, a - lead, dims[a]):
            return None
    spread = [a for a in range(len(dims)) if a not in op.axis and (
        xs[a] == 1 and _const_int(dims[a]) != 1 or a >= lead and xs[a] != 1
        and not _same_size(x, a - lead, dims[a]))]
    if lead:
        x = dimshuffle(x, *(["x"] * lead + list(range(x.ndim))))
    r = Reduce("sum", op.axis, op.keepdims, op.dtype)(x)
    count = prod_dims(copies)
    if _const_int(count) != 1:
        r = E.mul(r, E.cast(count, r.dtype))
    if spread:
        kept = [a for a in range(len(dims)) if op.keepdims or a not in op.axis]
        one = as_variable(np.int64(1))
        r = broadcast_to(r, tuple(one if a in op.axis else dims[a] for a in kept))
    return [r]


@node_rewriter([SumToShape], tags=TAGS)
def sum_to_own_shape(graph, node):
    """SumToShape(g, shape(x)) -> g where g is known to have x's shape (the same fully known
    static shape, or g an elementwise function of x that nothing broadcasts), and
    SumToShape(g, s) -> g for a constant s equal to g's static shape: nothing to sum."""
    g, shp = node.inputs
    if g.ndim != shp.type.shape[0]:
        return None
    if isinstance(shp, Constant):
        ok = g.type.shape == tuple(int(s) for s in shp.data)
    else:
        ok = (shp.owner is not None and isinstance(shp.owner.op, Shape)
              and same_shape(g, shp.owner.inputs[0]))
    return [g] if ok else None


# -- products of matrices --------------------------------------------------------------------

def _negated(v, dtype):
    """`x` for v = -x where negating commutes with a product in `dtype` (any float or
    complex -x; an integer one only in the product's own dtype, where wrapping is linear)."""
    if _scalar(v) != "neg" or not (v.dtype[0] in "fc" or v.dtype == dtype):
        return None
    return v.owner.inputs[0]


@node_rewriter([MatMul], tags=TAGS)
def neg_through_matmul(graph, node):
    """(-a) @ b -> -(a @ b), a @ (-b) -> -(a @ b) and (-a) @ (-b) -> a @ b (also `dot`)."""
    a, b = node.inputs
    dtype = node.outputs[0].dtype
    na, nb = _negated(a, dtype), _negated(b, dtype)
    if na is None and nb is None:
        return None
    prod = MatMul()(a if na is None else na, b if nb is None else nb)
    return [prod if na is not None and nb is not None else E.neg(prod)]


__all__ = ["canonical_chain", "add_zero", "mul_one", "mul_zero", "sub_self", "div_self", "neg_neg",
           "where_constant", "implicit_broadcast", "exp_log", "log_exp", "pow_constant",
           "exact_cast", "cast_cast", "reshape_reshape", "dimshuffle_chain", "sum_of_broadcast",
           "sum_to_own_shape", "neg_through_matmul", "same_shape", "shape_root"]
