"""In-place rewriting (phase `inplace`, the last): an Op that would allocate its result writes
it into an input's buffer instead, wherever no one else can see that buffer change.

`Elemwise` becomes `InplaceElemwise`, a fused `Composite` `InplaceComposite` (each output
into an input of its own), `IncSubtensor` / `AdvancedIncSubtensor` write into `x` instead
of a copy of it, and a BLAS update (`Gemm`, `Gemv`, `Ger`) into its `z` where `z` is proven
to have the result's shape (`rewrite/shapes.py`).  An input's buffer may be overwritten only
when

  1. it was computed by this call: never a function input (the caller's array), a constant
     or a shared variable's storage (the next call reads it);
  2. no other node reads it: the overwriting node is its only client (apart from `Shape`
     and `ShapeI`, which read nothing an in-place write changes), and it is not one of the
     graph's outputs (or update values);
  3. the same holds up its chain of aliases: a view (`view_map`) or an earlier overwrite
     (`destroy_map`) shares memory with its source, so the source, and every other view of
     it, must be read by nothing but the chain itself; a broadcast view (read-only, with
     repeated elements) is never written;
  4. it already has the output's dtype and shape: only an input that nothing broadcasts
     (its static size is known and not 1, every other input has size 1 there, or it is known
     to have the same shape as the other input) can hold the result.

The analysis (`AliasInfo`) is also the verifier the numpy linker runs on any graph with
destructive nodes (`check_destroyers`), so a hand-built graph that would overwrite a live
value fails at compile time with a message, not with wrong numbers.
"""

from __future__ import annotations

from ..errors import TracesymError
from ..ops.blas import Gemm, Gemv, Ger
from ..ops.composite import Composite, InplaceComposite
from ..ops.elemwise import Elemwise
from ..ops.inplace import InplaceElemwise
from ..ops.shape import BroadcastTo, Shape, ShapeI
from ..ops.subtensor import AdvancedIncSubtensor, IncSubtensor
from .engine import graph_pass
from .shapes import update_holds_result

#: Ops whose views must never be written: read-only, and one element may appear many times
READONLY_VIEWS = (BroadcastTo,)
#: Ops that read only their input's shape, which overwriting the input in place keeps: they
#: may read a buffer before or after it is overwritten
SHAPE_READERS = (Shape, ShapeI)
_SET_OPS = (IncSubtensor, AdvancedIncSubtensor)
#: BLAS updates, which write into `z` where it is proven to have the result's shape
_BLAS_UPDATES = (Gemm, Gemv, Ger)


class DestroyError(TracesymError, ValueError):
    """A destructive (in-place) node would overwrite a value that something else still reads,
    or that belongs to the caller (an input, a constant, a shared variable).  The `inplace`
    rewrite never builds such a graph; build the graph from the ordinary (functional) Ops and
    let the rewrite choose where to work in place."""


def aliased_inputs(node, i) -> list[int]:
    """Positions of the inputs that output `i` of `node` may share memory with: those it
    overwrites (`destroy_map`) and those it may be a view of (`view_map`)."""
    op = node.op
    return [*getattr(op, "destroy_map", {}).get(i, ()), *getattr(op, "view_map", {}).get(i, ())]


def _covers(v, others) -> bool:
    """True when broadcasting `v` with `others` statically gives `v`'s own shape."""
    for w in others:
        if w is v:
            continue
        if w.ndim > v.ndim:
            return False
        for a, b in zip(v.type.shape[v.ndim - w.ndim:], w.type.shape):
            if not (b == 1 or (a is not None and a != 1)):
                return False
    return True


class AliasInfo:
    """Which variables of `graph` may be overwritten, answered in amortised O(1) per query (a
    memo per variable; lookups walk chains iteratively, so long chains do not recurse)."""

    def __init__(self, graph):
        self.graph = graph
        self.inputs = set(map(id, graph.inputs))
        self.outputs = set(map(id, graph.outputs))
        self._owned: dict = {}
        self._shape: dict = {}

    def replaced(self, old, new):
        """Record that the graph now computes `new` in place of `old`."""
        if id(old) in self.outputs:
            self.outputs.discard(id(old))
            self.outputs.add(id(new))

    def _only_reader(self, var, node) -> bool:
        """`var` is not returned, and `node` is the only node that reads its values."""
        return id(var) not in self.outputs and all(
            a is node or isinstance(a.op, SHAPE_READERS) for a in self.graph.successors(var))

    def _sources(self, var):
        """The variables `var` shares memory with (which must then be owned too), or None
        when `var`'s buffer may not be overwritten whatever they are."""
        node = var.owner
        if node is None or id(var) in self.inputs:
            return None
        pos = aliased_inputs(node, var.index)
        if not pos:
            return []
        if isinstance(node.op, READONLY_VIEWS):
            return None
        for o in node.outputs:  # a sibling view of the same source, still read or returned
            if o is not var and o in self.graph and set(aliased_inputs(node, o.index)) & set(pos) \
                    and (self.graph.out_degree(o) or id(o) in self.outputs):
                return None
        srcs = [node.inputs[j] for j in pos]
        if not all(self._only_reader(u, node) for u in srcs):
            return None
        return srcs

    def owned(self, var) -> bool:
        """True when `var`'s buffer was allocated by this call and every variable it may alias
        is read only along the chain that leads to `var`."""
        memo = self._owned
        stack = [var]
        while stack:
            v = stack[-1]
            if v in memo:
                stack.pop()
                continue
            srcs = self._sources(v)
            if srcs is None:
                memo[v] = False
                stack.pop()
                continue
            todo = [u for u in srcs if u not in memo]
            if todo:
                stack.extend(todo)
                continue
            memo[v] = all(memo[u] for u in srcs)
            stack.pop()
        return memo[var]

    def can_destroy(self, node, pos, sole_position=False) -> bool:
        """Whether `node` may overwrite its input `pos`: the input is owned, and `node` is its
        only reader (at that one position, with `sole_position`)."""
        v = node.inputs[pos]
        if not self._only_reader(v, node):
            return False
        if sole_position and len(self.graph.edges[v, node]["positions"]) != 1:
            return False
        return self.owned(v)

    # -- shapes ---------------------------------------------------------------------------
    def _shape_parent(self, v):
        """An input known to have exactly `v`'s shape, or None."""
        node = v.owner
        if node is None:
            return None
        for j in getattr(node.op, "destroy_map", {}).get(v.index, ()):
            return node.inputs[j]  # the output is that input's buffer
        if isinstance(node.op, _SET_OPS):
            return node.inputs[0]
        if isinstance(node.op, (Elemwise, Composite)):
            reads = _reads(node, v.index)
            for u in reads:
                if u.ndim == v.ndim and _covers(u, reads):
                    return u
        return None

    def shape_key(self, v):
        """A variable whose run-time shape is `v`'s: two variables with the same key have equal
        shapes."""
        memo, chain = self._shape, []
        while v not in memo:
            chain.append(v)
            parent = self._shape_parent(v)
            if parent is None:
                memo[v] = v
                break
            v = parent
        key = memo[v]
        for c in chain:
            memo[c] = key
        return key

    def holds_result(self, node, pos, out=0) -> bool:
        """Whether input `pos` of an Elemwise (or Composite) node has the dtype of output
        `out`, which reads it, and the shape of the whole node (so a loop over that shape
        reads each of its elements once, before writing it)."""
        v, reads, out = node.inputs[pos], _reads(node, out), node.outputs[out]
        if v.dtype != out.dtype or v.ndim != out.ndim or not any(v is w for w in reads):
            return False
        for w in node.inputs:
            if w is not v and not _covers(v, [w]) and not (
                    w.ndim == v.ndim and self.shape_key(w) is self.shape_key(v)):
                return False
        return True


def _reads(node, out):
    """The inputs output `out` of an elementwise node depends on (its shape is theirs,
    broadcast)."""
    if isinstance(node.op, Composite):
        return [node.inputs[i] for i in sorted(node.op.program.input_deps()[out])]
    return node.inputs


def _destructive(info, node):
    """An in-place replacement node for `node`, or None where none is safe.

    Built with `make_node`, not by calling the Op: a trace context computing debug values
    would run the destructive `perform` on them, overwriting the test value of the input."""
    op = node.op
    new = None
    if type(op) is Elemwise:
        for pos in range(len(node.inputs)):
            if info.holds_result(node, pos) and info.can_destroy(node, pos):
                new = InplaceElemwise(op.scalar_op, {0: pos})
                break
    elif type(op) is Composite:
        pattern = {}
        for out in range(len(node.outputs)):
            for pos in range(len(node.inputs)):
                if pos not in pattern.values() and info.holds_result(node, pos, out) \
                        and info.can_destroy(node, pos):
                    pattern[out] = pos
                    break
        new = InplaceComposite(op.program, pattern) if pattern else None
    elif isinstance(op, _BLAS_UPDATES) and not op.inplace and info.can_destroy(node, 0, sole_position=True) \
            and update_holds_result(info.graph, node):
        new = type(op)(inplace=True)
    elif isinstance(op, _SET_OPS) and not op.inplace and info.can_destroy(node, 0, sole_position=True):
        new = type(op)(op.idx_list, op.set_instead_of_inc, True)
    return None if new is None else new.make_node(*node.inputs)


@graph_pass("inplace", tags=("inplace",))
def inplace(graph):
    """op(x, ...) -> op_inplace(x, ...), overwriting x, where x is an intermediate that
    nothing else reads (see the module docstring for the conditions)."""
    info = AliasInfo(graph)
    for node in graph.toposort():
        if node not in graph:
            continue
        new_node = _destructive(info, node)
        if new_node is None:
            continue
        for old, new in zip(node.outputs, new_node.outputs):
            new.source, new.name = old.source, old.name
            graph.replace(old, new)
            info.replaced(old, new)
        graph.rewrite_log.append(("inplace", str(node.op)))


def check_destroyers(graph):
    """Raise DestroyError when a destructive node of `graph` overwrites a value that another
    node reads, that the graph returns, or that is not the graph's to overwrite."""
    info = AliasInfo(graph)
    for node in graph.toposort():
        for positions in getattr(node.op, "destroy_map", {}).values():
            for pos in positions:
                if not info.can_destroy(node, pos):
                    v = node.inputs[pos]
                    where = f"\n  the node was created at {node.source}" if node.source else ""
                    raise DestroyError(
                        f"{node.op} overwrites its input {pos} ({v.label()}, {v.type.short()}), "
                        "but that value is a function input, constant or shared variable, is "
                        f"returned, or is still read by another node{where}")


__all__ = ["inplace", "check_destroyers", "AliasInfo", "DestroyError", "aliased_inputs"]
