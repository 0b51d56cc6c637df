"""Elementwise fusion (phase `fusion`): each maximal connected group of elementwise nodes
becomes one `Composite` node, whose scalar program a backend runs as one loop over the
elements, with no intermediate arrays.

Groups grow along producer -> consumer edges, producers first, sweeping the edges again while
any merge succeeds.  Two groups joined by an edge merge when

  1. no work is duplicated: a value the group computes is computed once; one that is also
     read outside the group (or returned) becomes an output of the fused node, which may
     therefore have several outputs;
  2. no cycle appears: there is no other path between the two groups, through nodes outside
     them (contracting an edge of a DAG makes a cycle exactly when such a path exists), which
     the quotient graph of the groups (a networkx DiGraph) answers;
  3. the loop has one shape: every output has the broadcast shape of all the group's inputs,
     provably at trace time (an input the output does not read is broadcast to it: its
     static sizes are 1 where the output's are not known to be > 1);
  4. the group reads at most `MAX_INPUTS` arrays.  0-d constants are not inputs: they are
     folded into the program as `("const", value, dtype)`.

Only exact `Elemwise` nodes of the scalar table and `Composite` nodes fuse (in-place variants
are chosen later, by the `inplace` phase).  A group of one node stays as it is.

Then a reduction whose input is a single-output elementwise node, read by nothing else,
absorbs it: `sum(x * y)` becomes one `CompositeReduce` node.
"""

from __future__ import annotations

import networkx as nx

from ..ops import scalar as S
from ..ops.composite import Composite, CompositeReduce, Program, Step, program_of
from ..ops.elemwise import Elemwise
from ..ops.reduce import Reduce
from ..trace.graph import Constant
from .engine import graph_pass, node_rewriter
from .inplace import _covers

#: the most arrays one fused node reads (a C loop takes one pointer and strides per input)
MAX_INPUTS = 32


def fusable(node) -> bool:
    op = node.op
    if type(op) is Composite:
        return True
    return type(op) is Elemwise and S.TABLE.get(op.scalar_op.name) is op.scalar_op


def _is_folded(v) -> bool:
    """A 0-d constant: part of the program, not an input."""
    return isinstance(v, Constant) and v.ndim == 0


class _Group:
    """A group's interface, kept up to date as groups merge: the arrays it reads from outside
    (a bitset over `_Groups.var`), the values it computes that are read outside it or returned,
    and for each of those the inputs it depends on (a bitset)."""

    __slots__ = ("members", "inputs", "outputs", "reads")

    def __init__(self, members, inputs, outputs, reads):
        self.members, self.inputs, self.outputs, self.reads = members, inputs, outputs, reads


class _Groups:
    """Disjoint groups of fusable nodes, and the quotient graph they induce on all Apply nodes
    (one vertex per group; every other node is a vertex of its own) with a topological rank
    for each vertex, which bounds the search for a second path between two groups."""

    def __init__(self, graph, order):
        self.graph = graph
        self.rep = {node: node for node in order}
        self.rank = {node: k for k, node in enumerate(order)}
        self.quotient = nx.DiGraph()
        self.quotient.add_nodes_from(order)
        for node in order:
            for v in node.inputs:
                if v.owner is not None and v.owner in self.rep:
                    self.quotient.add_edge(v.owner, node)
        self.returned = set(map(id, graph.outputs))
        self.bit: dict = {}  # id(variable) -> its bit in the input bitsets
        self.var: list = []  # bit position -> variable
        self.groups = {node: self._single(node) for node in order if fusable(node)}

    def _bit(self, v) -> int:
        b = self.bit.get(id(v))
        if b is None:
            b = self.bit[id(v)] = 1 << len(self.var)
            self.var.append(v)
        return b

    def _single(self, node):
        bits = [0 if _is_folded(v) else self._bit(v) for v in node.inputs]
        deps = node.op.program.input_deps() if isinstance(node.op, Composite) else None
        outputs, reads = {}, {}
        for k, o in enumerate(node.outputs):
            if o in self.graph and (id(o) in self.returned or self.graph.out_degree(o)):
                outputs[id(o)] = o
                reads[id(o)] = _union(bits if deps is None else [bits[i] for i in deps[k]])
        return _Group([node], _union(bits), outputs, reads)

    def find(self, node):
        r = self.rep[node]
        while self.rep[r] is not r:
            r = self.rep[r]
        self.rep[node] = r
        return r

    def _other_path(self, a, b) -> bool:
        """Whether the quotient graph has a path a -> ... -> b besides the edge a -> b (only
        vertices ranked below b can lie on one)."""
        q, top = self.quotient, self.rank[b]
        stack = [s for s in q.successors(a) if s is not b and self.rank[s] < top]
        seen = set(stack)
        while stack:
            n = stack.pop()
            for s in q.successors(n):
                if s is b:
                    return True
                if s not in seen and self.rank[s] < top:
                    seen.add(s)
                    stack.append(s)
        return False

    def _merged(self, a, b):
        """The interface of groups a and b together (a's outputs that only b read vanish,
        b's dependences on them become a's inputs), or None where conditions 3-4 fail."""
        A, B = self.groups[a], self.groups[b]
        subst = {self.bit[k]: A.reads[k] for k in A.outputs if self.bit.get(k, 0) & B.inputs}
        fed = _union(subst)
        inputs = A.inputs | (B.inputs & ~fed)
        if inputs.bit_count() > MAX_INPUTS:
            return None
        outputs, reads = {}, {}
        for k, o in A.outputs.items():
            if k in self.returned or any(c not in self.rep or self.find(c) not in (a, b)
                                         for c in self.graph.successors(o)):
                outputs[k], reads[k] = o, A.reads[k]
        for k, o in B.outputs.items():
            r = B.reads[k]
            for bit, r_a in subst.items():
                if r & bit:
                    r = (r & ~bit) | r_a
            outputs[k], reads[k] = o, r
        for k, o in outputs.items():
            missing = inputs & ~reads[k]
            while missing:
                low = missing & -missing
                if not _covers(o, [self.var[low.bit_length() - 1]]):
                    return None
                missing ^= low
        return _Group(A.members + B.members, inputs, outputs, reads)

    def try_merge(self, a, b) -> bool:
        """Merge group `a` into the group `b` of its consumer, if conditions 1-4 hold."""
        if self._other_path(a, b):
            return False
        group = self._merged(a, b)
        if group is None:
            return False
        q = self.quotient
        late_succ = any(self.rank[s] < self.rank[b] for s in q.successors(a) if s is not b)
        early_pred = any(self.rank[p] > self.rank[a] for p in q.predecessors(b) if p is not a)
        nx.contracted_nodes(q, b, a, self_loops=False, copy=False)
        if not late_succ:
            pass  # b's rank still orders the merged vertex after all its predecessors
        elif not early_pred:
            self.rank[b] = self.rank[a]
        else:
            self.rank = {n: k for k, n in enumerate(nx.topological_sort(q))}
        self.rep[a] = b
        self.groups[b] = group
        del self.groups[a]
        return True

    def interface(self, members):
        """(inputs, outputs) of a finished group, in first-use order."""
        inside = set(members)
        inputs, seen = [], set()
        for node in members:
            for v in node.inputs:
                if v.owner in inside or id(v) in seen or _is_folded(v):
                    continue
                seen.add(id(v))
                inputs.append(v)
        outputs = [o for node in members for o in node.outputs if o in self.graph and (
            id(o) in self.returned or any(c not in inside for c in self.graph.successors(o)))]
        return inputs, outputs


def _union(bits) -> int:
    out = 0
    for b in bits:
        out |= b
    return out


def _build(members, inputs, outputs) -> Composite:
    """The Composite computing `outputs` of the group `members` (in topological order)."""
    ref = {id(v): ("in", k) for k, v in enumerate(inputs)}

    def ref_of(v):
        r = ref.get(id(v))
        return r if r is not None else ("const", v.data.item(), v.dtype)

    steps = []
    for node in members:
        prog, args, base = program_of(node), [ref_of(v) for v in node.inputs], len(steps)

        def local(r):
            if r[0] == "in":
                return args[r[1]]
            return ("step", base + r[1]) if r[0] == "step" else r

        steps.extend(Step(st.op, tuple(map(local, st.args)), st.dtype) for st in prog.steps)
        for o, r in zip(node.outputs, prog.outputs):
            ref[id(o)] = local(r)
    return Composite(Program(tuple(v.dtype for v in inputs), tuple(steps),
                             tuple(ref[id(o)] for o in outputs)))


@graph_pass("fusion", tags=("fusion",))
def fuse_elemwise(graph):
    """f(g(x, y), h(x)) -> Composite{f(g(i0, i1), h(i0))}(x, y) for connected elementwise
    nodes (see the module docstring for when nodes join a group)."""
    order = graph.toposort()
    groups = _Groups(graph, order)
    edges = [(v.owner, node) for node in order if fusable(node) for v in node.inputs
             if v.owner in groups.groups]
    merged = True
    while merged:  # a merge refused for the loop's shape may pass once more producers joined
        merged = False
        for producer, consumer in edges:
            a, b = groups.find(producer), groups.find(consumer)
            if a is not b and groups.try_merge(a, b):
                merged = True
    position = {node: k for k, node in enumerate(order)}
    for group in list(groups.groups.values()):
        if len(group.members) < 2:
            continue
        members = sorted(group.members, key=position.__getitem__)
        inputs, outputs = groups.interface(members)
        new = _build(members, inputs, outputs).make_node(*inputs)
        for old, nv in zip(outputs, new.outputs):
            nv.source, nv.name = old.source, old.name
            graph.replace(old, nv)
        graph.rewrite_log.append(("fuse_elemwise", str(new.op)))


@node_rewriter([Reduce], tags=("fusion",))
def fuse_reduce_of_elemwise(graph, node):
    """reduce(elementwise(x, ...)) -> CompositeReduce{reduce}{program}(x, ...) where the
    reduction is the only reader of the elementwise value (which is not returned): the fused
    node's one output, or a single elementwise node."""
    (x,) = node.inputs
    src = x.owner
    if src is None or src not in graph or not fusable(src) or len(src.outputs) != 1:
        return None
    if any(o is x for o in graph.outputs) or any(c is not node for c in graph.successors(x)):
        return None
    return [CompositeReduce(program_of(src), node.op).make_node(*src.inputs).outputs[0]]


__all__ = ["fuse_elemwise", "fuse_reduce_of_elemwise", "fusable", "MAX_INPUTS"]
