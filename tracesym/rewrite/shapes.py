"""Shape rewrites (phase `canonicalize`, tag `shapes`; again in `specialize` for what the
BLAS updates leave): a shape is computed from the inputs' shapes, not by running the Op whose
output it measures.

`x.shape` / `x.shape[i]` of an Op's output becomes the Op's `infer_shape` of its inputs'
shapes (static sizes as constants), so `(x @ w).shape` compiles to no product and
`exp(x).shape[0]` to `x.shape[0]`.  The rule applies when

  * the Op is computed anyway (some other node reads its values, or it is returned): only
    where the size is known to be a constant or a dim of one of the graph's leaves (a
    formula would cost more than `ShapeI` of the result, which is there anyway);
  * the Op is there only to be measured: where the Op cannot fail on sizes that its inferred
    shape does not check.  Broadcasting (`Elemwise`, `BroadcastTo`, `Alloc`), the inner dims
    of `MatMul`, the dims `DimShuffle` drops, `Reshape`'s element count and `Concatenate`'s
    other dims are then compared at run time by a `CheckSizes` node on the shape's path, so a
    function that would have failed still fails, naming the Op and the sizes.  Ops that can
    fail otherwise (an index out of range, `max` of an empty axis, ...) are left to run.

The same analysis (`ShapeFacts`) proves two tensors have one shape: `SumToShape(g, shape(x))`
is `g` where g's dims trace back to x's, also through an equality a matrix product computed
in this graph guarantees (the product would have failed otherwise), which removes the sums a
gradient adds for dims that only might be broadcast.  The `inplace` pass uses it to let a
BLAS update write into `z`.
"""

from __future__ import annotations

import weakref

import numpy as np

from ..ops import elemwise as E
from ..ops.basic import Alloc
from ..ops.blas import Gemm, Gemv, MatMul
from ..ops.checks import CheckSizes
from ..ops.composite import Composite
from ..ops.elemwise import Elemwise
from ..ops.reduce import Reduce
from ..ops.shape import (BroadcastTo, Concatenate, DimShuffle, Reshape, Shape, ShapeI, SumToShape,
                         prod_dims, shape_i, stack)
from ..ops.subtensor import Subtensor
from ..trace.graph import Constant, as_variable
from ..trace.types import TensorType
from .engine import node_rewriter

TAGS = ("canonicalize", "shapes")
SHAPE_READERS = (Shape, ShapeI)


def _int64(v):
    return as_variable(np.int64(v))


# -- proving sizes equal ---------------------------------------------------------------------

class ShapeFacts:
    """Symbolic dims of a graph's variables.  A dim's key is an int (a known size), a dim of a
    leaf `(var, i)`, or a fresh object for a size nothing else is known to share; keys are
    merged (union-find) where a matrix product the graph computes for its values requires two
    sizes to be equal.  A product read only by `Shape` nodes is no evidence: a rewrite relying
    on it may remove it, and its check with it.

    Rewrites keep every variable's value, so a variable's keys stay true as the graph changes.
    The products of the graph when the analysis starts, and those met later while computing
    keys, are the evidence, taken once they are computed for their values (`observe`).  (A product a later rewrite removes as dead, after serving as
    evidence, leaves its equality standing: like Theano's shape feature, the analysis trusts
    that the graph it started from runs.)"""

    def __init__(self):
        self._dims: dict = {}
        self._parent: dict = {}
        self._pending: list = []

    def observe(self, graph):
        """Merge the sizes that the products met so far equate, if `graph` computes them."""
        waiting = []
        for node in self._pending:
            if node not in graph:
                continue
            if not _computed_anyway(graph, node):
                waiting.append(node)
                continue
            x, y = node.inputs[2:4] if isinstance(node.op, (Gemm, Gemv)) else node.inputs
            self._union(self.dims(x)[-1], self.dims(y)[-2 if y.ndim > 1 else 0])
        self._pending = waiting

    def find(self, k):
        while not isinstance(k, int) and k in self._parent:
            k = self._parent[k]
        return k

    def _union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a is b or isinstance(a, int) and isinstance(b, int):
            return
        if isinstance(a, int):
            a, b = b, a
        self._parent[a] = b

    def same(self, a, b) -> bool:
        a, b = self.find(a), self.find(b)
        return a is b or isinstance(a, int) and a == b

    def dims(self, v) -> tuple:
        """The keys of `v`'s dims (computed for its ancestors first, without recursion)."""
        memo, stack = self._dims, [v]
        while stack:
            u = stack[-1]
            if u in memo:
                stack.pop()
                continue
            node = u.owner
            if node is None:
                memo[u] = tuple(s if s is not None else (u, k) for k, s in enumerate(u.type.shape))
                stack.pop()
                continue
            if all(None not in o.type.shape for o in node.outputs):  # Shape, sizes, ...
                memo.update((o, o.type.shape) for o in node.outputs)
                stack.pop()
                continue
            todo = [w for w in node.inputs if w not in memo]
            if todo:
                stack.extend(todo)
                continue
            for o, keys in zip(node.outputs, self._node_dims(node)):
                memo[o] = tuple(s if s is not None else k for s, k in zip(o.type.shape, keys))
            if isinstance(node.op, (MatMul, Gemm, Gemv)):
                self._pending.append(node)
            stack.pop()
        return memo[v]

    def scalar(self, d):
        """The key of an int64 scalar that is a size: a constant, `ShapeI` or a checked size."""
        while d.owner is not None and isinstance(d.owner.op, CheckSizes):
            d = d.owner.inputs[0]
        if isinstance(d, Constant) and d.ndim == 0:
            return int(d.data)
        if d.owner is not None and isinstance(d.owner.op, ShapeI):
            return self.dims(d.owner.inputs[0])[d.owner.op.i]
        return object()

    def vector(self, shp):
        """The keys of an int64 shape vector (`Shape`, a constant, or a stack of sizes), or
        None."""
        node = shp.owner
        if isinstance(shp, Constant):
            return tuple(int(s) for s in shp.data)
        if node is not None and isinstance(node.op, Shape):
            return self.dims(node.inputs[0])
        if node is not None and isinstance(node.op, Concatenate) and all(
                u.owner is not None and isinstance(u.owner.op, DimShuffle) and u.owner.inputs[0].ndim == 0
                for u in node.inputs):
            return tuple(self.scalar(u.owner.inputs[0]) for u in node.inputs)
        return None

    def _node_dims(self, node):
        """Keys of each output's dims: the common Ops directly, the others through their
        `infer_shape` on stand-in sizes (fresh keys where it cannot say)."""
        op, ins = node.op, node.inputs
        if isinstance(op, (Elemwise, Composite)):
            deps = op.program.input_deps() if isinstance(op, Composite) else [range(len(ins))]
            by_deps: dict = {}  # outputs reading the same inputs share their (fresh) keys
            return [by_deps.setdefault((tuple(sorted(d)), o.ndim), self._broadcast(
                [self.dims(ins[i]) for i in sorted(d)], [ins[i].type.shape for i in sorted(d)], o.ndim))
                for d, o in zip(deps, node.outputs)]
        if isinstance(op, DimShuffle):
            x = self.dims(ins[0])
            return [tuple(1 if d == "x" else x[d] for d in op.new_order)]
        if isinstance(op, MatMul):
            (a, b), out = ins, node.outputs[0]
            da, db = self.dims(a), self.dims(b)
            nb = out.ndim - (a.ndim > 1) - (b.ndim > 1)
            batch = self._broadcast([da[:-2], db[:-2]], [a.type.shape[:-2], b.type.shape[:-2]], nb)
            return [tuple(batch) + da[-2:-1] * (a.ndim > 1) + db[-1:] * (b.ndim > 1)]
        if isinstance(op, SumToShape):
            target = self.vector(ins[1])
            return [target if target is not None else tuple(object() for _ in range(node.outputs[0].ndim))]
        if isinstance(op, (BroadcastTo, Alloc)):
            return [tuple(map(self.scalar, ins[1:]))]
        infer = getattr(op, "infer_shape", None)
        stand_in = [tuple(_size(u.type.shape[k], i, k) for k in range(u.ndim)) for i, u in enumerate(ins)]
        try:
            shapes = infer(node, stand_in) if infer else None
        except Exception:  # an Op that cannot say: its dims are its own
            shapes = None
        if shapes is None:
            return [tuple(object() for _ in range(o.ndim)) for o in node.outputs]
        return [tuple(self.dims(ins[_STAND_IN[d][0]])[_STAND_IN[d][1]] if d in _STAND_IN else self.scalar(d)
                      for d in shp) for shp in shapes]

    def _broadcast(self, dims, statics, nd):
        """Per dim, the key shared by every operand (keys, static shape) that may decide it
        (all those not of static size 1), else a fresh one."""
        out = []
        for d in range(nd):
            keys = [self.find(k[d - nd + len(k)]) for k, st in zip(dims, statics)
                    if d - nd + len(k) >= 0 and st[d - nd + len(k)] != 1]
            if not keys:
                out.append(1)
            elif all(self.same(keys[0], k) for k in keys[1:]):
                out.append(keys[0])
            else:
                out.append(object())
        return out


#: int64 scalars standing in for dim k of input i in `infer_shape` calls, reused across
#: calls (building variables is what costs), and the (i, k) each stands for
_STAND_INS: list = []
_STAND_IN: dict = {}
_CONSTANTS: dict = {}


def _size(static, i, k):
    if static is not None:
        c = _CONSTANTS.get(static)
        if c is None:
            c = _CONSTANTS[static] = _int64(static)
        return c
    while len(_STAND_INS) <= i:
        _STAND_INS.append([])
    row = _STAND_INS[i]
    while len(row) <= k:
        v = TensorType("int64", ()).make_variable(name=f"size{i}_{len(row)}")
        _STAND_IN[v] = (i, len(row))
        row.append(v)
    return row[k]


_FACTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def shape_facts(graph) -> ShapeFacts:
    """The `ShapeFacts` of `graph` (kept while the graph is rewritten).  Compute the keys to
    compare first, then `observe(graph)`, then compare them."""
    facts = _FACTS.get(graph)
    if facts is None:
        facts = _FACTS[graph] = ShapeFacts()
        for node in list(graph.nodes):  # meet the products there are now
            if isinstance(getattr(node, "op", None), (MatMul, Gemm, Gemv)):
                facts.dims(node.outputs[0])
    return facts


def update_holds_result(graph, node) -> bool:
    """Whether `z` of a BLAS update node (`Gemm`, `Gemv`, `Ger`) has the result's shape, so
    the result may be written into it."""
    facts = shape_facts(graph)
    z, _, x, y = node.inputs[:4]
    dx, dy, dz = facts.dims(x), facts.dims(y), facts.dims(z)
    facts.observe(graph)
    pdims, pstatic = node.op._product_dims(dx, dy), node.op._product_static(x, y)
    return all(facts.same(a, b) or s == 1 for a, b, s in zip(dz, pdims, pstatic))


# -- run-time checks for a removed Op --------------------------------------------------------

def _checks(node, in_shapes, index, out_shape):
    """[(a, b, kind, message)]: the size comparisons `node` makes when it computes output
    `index` that its inferred shape `out_shape` does not; None where the Op may fail in other
    ways."""
    op, ins = node.op, node.inputs
    if isinstance(op, (Elemwise, Composite)):
        deps = op.program.input_deps()[index] if isinstance(op, Composite) else range(len(ins))
        return _broadcast_checks([(ins[k].type.shape, in_shapes[k], f"input {k}") for k in sorted(deps)],
                                 out_shape)
    if isinstance(op, (BroadcastTo, Alloc)):
        return _broadcast_checks([(ins[0].type.shape, in_shapes[0], "the value")], out_shape)
    if isinstance(op, MatMul):
        (a, b), (sa, sb) = ins, in_shapes
        nb = len(out_shape) - (a.ndim > 1) - (b.ndim > 1)
        out = []
        if a.type.shape[-1] is None or b.type.shape[-2 if b.ndim > 1 else 0] is None:
            out.append((sa[-1], sb[-2 if b.ndim > 1 else 0], "eq",
                        "shapes are not aligned: {a} (the last dim of the first operand) != {b} "
                        "(the contracted dim of the second)"))
        batches = [(v.type.shape[:-2], s[:-2], f"the batch dims of operand {k}")
                   for k, (v, s) in enumerate(((a, sa), (b, sb))) if v.ndim > 2]
        return out + _broadcast_checks(batches, out_shape[:nb])
    if isinstance(op, DimShuffle):
        kept = set(op.new_order)
        return [(in_shapes[0][d], _int64(1), "eq", f"dim {d} has size {{a}}; only size-1 dims can be "
                 "dropped") for d in range(ins[0].ndim) if d not in kept and ins[0].type.shape[d] is None]
    if isinstance(op, Reshape):
        return [(prod_dims(in_shapes[0]), prod_dims(out_shape), "eq",
                 "cannot reshape {a} elements into a shape of {b} elements")]
    if isinstance(op, Concatenate):
        return [(s[d], out_shape[d], "eq", f"dim {d} of input {k} has size {{a}}, not {{b}}") for k, (v, s) in enumerate(zip(ins, in_shapes))
                for d in range(v.ndim) if d != op.axis and v.type.shape[d] is None and s[d] is not out_shape[d]]
    if isinstance(op, Reduce) and op.kind not in ("max", "min"):
        return []
    if isinstance(op, Subtensor) and all(e is None or isinstance(e, tuple) for e in op.idx_list):
        return []  # slices and new axes never fail
    if isinstance(op, SHAPE_READERS):
        return []
    return None


def _broadcast_checks(operands, out_shape):
    """Each dim of unknown static size of each operand (static shape, symbolic shape, name) must be
    1 or the result's size.  Where no static size decides a dim, the result is the first such
    operand's size unless it is 1 (`broadcast_shape_of`), which needs no check."""
    nd, out, first = len(out_shape), [], set()
    for static, s, what in operands:
        for j, st in enumerate(static):
            d = nd - len(static) + j
            r = out_shape[d]
            if st is None and not isinstance(r, Constant) and d not in first:
                first.add(d)
                continue
            if st is None and s[j] is not r:
                out.append((s[j], r, "bcast", f"{what} has size {{a}} in dim {j}, "
                            "which does not broadcast to {b}"))
    return out


# -- the rules -------------------------------------------------------------------------------

def _computed_anyway(graph, node) -> bool:
    """Some node other than a shape reader reads one of `node`'s outputs, or one is returned."""
    outs = set(map(id, graph.outputs))
    return any(id(o) in outs or any(not isinstance(a.op, SHAPE_READERS) for a in graph.successors(o))
               for o in node.outputs if o in graph)


def _known_size(graph, key):
    """A size known as `key` as an int64 scalar: a constant or a dim of a leaf of `graph`."""
    if isinstance(key, int):
        return _int64(key)
    if isinstance(key, tuple) and key[0] in graph:
        return shape_i(key[0], key[1])
    return None


@node_rewriter([Shape, ShapeI], tags=TAGS)
def shape_of_op(graph, node):
    """shape(op(x...)) -> op.infer_shape(shape(x)...) and shape_i(op(x...), i) -> its entry i:
    constants where static shapes know the size; the Op itself is then not needed for its
    shape (sizes it would have compared are checked by `CheckSizes`, see the module).  Where
    the Op runs anyway, only a size known to be a constant or an input's dim replaces it."""
    x = node.inputs[0]
    i = node.op.i if isinstance(node.op, ShapeI) else None
    static = x.type.shape if i is None else (x.type.shape[i],)
    if None not in static:
        return [as_variable(np.asarray(static if i is None else static[0], dtype="int64"))]
    src = x.owner
    if src is None or isinstance(src.op, SHAPE_READERS + (CheckSizes,)):
        return None
    if _computed_anyway(graph, src):
        facts = shape_facts(graph)
        keys = facts.dims(x)
        facts.observe(graph)
        keys = [facts.find(k) for k in keys]
        if i is not None:
            return None if _known_size(graph, keys[i]) is None else [_known_size(graph, keys[i])]
        # a shape vector read beside the values stays `Shape` (SumToShape reads it) unless constant
        return [as_variable(np.asarray(keys, dtype="int64"))] if all(isinstance(k, int) for k in keys) else None
    infer = getattr(src.op, "infer_shape", None)
    in_shapes = [tuple(shape_i(u, k) for k in range(u.ndim)) for u in src.inputs]
    shapes = infer(src, in_shapes) if infer is not None else None
    checks = None if shapes is None else _checks(src, in_shapes, x.index, tuple(shapes[x.index]))
    if checks is None:
        return None
    if checks:  # sizes that a product computed anyway already equates need no check
        facts = shape_facts(graph)
        keys = [(facts.scalar(a), facts.scalar(b)) for a, b, _, _ in checks]
        facts.observe(graph)
        checks = [c for c, (ka, kb) in zip(checks, keys) if not facts.same(ka, kb)]
    out_shape = tuple(shapes[x.index])
    dims = [E.cast(d, "int64") for d in (out_shape if i is None else (out_shape[i],))]
    if i is not None:
        value = dims[0]
    elif all(isinstance(d, Constant) for d in dims):
        value = as_variable(np.asarray([int(d.data) for d in dims], dtype="int64"))
    else:
        value = stack(dims)
    if checks:
        sizes = [E.cast(s, "int64") for a, b, _, _ in checks for s in (a, b)]
        value = CheckSizes(str(src.op), [(kind, msg) for _, _, kind, msg in checks])(value, *sizes)
    return [value]


@node_rewriter([Shape, ShapeI], tags=("specialize", "shapes"))
def shape_of_specialized(graph, node):
    """`shape_of_op` again after the BLAS updates: the products and scalings they absorb are
    left read only by `Shape` nodes, whose sizes then come from the inputs."""
    return shape_of_op(graph, node)


@node_rewriter([SumToShape], tags=TAGS)
def sum_to_proven_shape(graph, node):
    """SumToShape(g, shape(x)) -> g where g is proven to have x's shape: each dim of g is the
    same symbolic size as x's (traced through the Ops' shape inference, and through the
    equalities the matrix products in the graph require)."""
    g, shp = node.inputs
    facts = shape_facts(graph)
    target = facts.vector(shp)
    if target is None or len(target) != g.ndim:
        return None
    keys = facts.dims(g)
    facts.observe(graph)
    return [g] if all(map(facts.same, keys, target)) else None


__all__ = ["shape_of_op", "shape_of_specialized", "sum_to_proven_shape", "ShapeFacts", "shape_facts",
           "update_holds_result"]
