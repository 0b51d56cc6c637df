"""Rewrites of `Scan` nodes, and compiling their inner graphs with the enclosing function's mode.

The rules run in the outer graph's phases like any other; each builds a new Scan and replaces
every output of the old one, so the old node is pruned.  In `merge`: a forward loop that its
gradient extended with the values the backward step reads replaces the plain one.  In
`canonicalize`: hoist loop-invariant work, hoist work on the sequences alone (one batched
product before the loop), push a weight gradient accumulated over the steps out as one product,
drop outputs nobody reads, merge independent scans over the same steps, and write the gradient
of a product sliced into parts (an LSTM's gates) as one concatenation instead of increments of
zeros; in `specialize`: keep only the last state where only it is read.  After the outer
graph is rewritten, each Scan's inner graph is rewritten with the same mode (nested scans too)
and told which linker lowers it (`compile_scans`, one of `function`'s lowering hooks); when it
runs, the step is rewritten again on the static shapes of the call's values (`op.py`).
"""

from __future__ import annotations

import networkx as nx

from ..rewrite.engine import node_rewriter
from ..rewrite.mode import get_mode, rewrite_graph
from ..ops.blas import MatMul
from ..ops.elemwise import Elemwise
from ..ops.basic import Alloc
from ..ops.checks import CheckSizes
from ..ops.shape import Concatenate, DimShuffle, SumToShape, shape_i, transpose
from ..ops.subtensor import IncSubtensor, Subtensor
from ..trace import function as _function
from ..trace.graph import Constant, Graph, applies_between, clone_replace, leaves
from .op import Scan
from .warm import warmer


def _read(graph, v) -> bool:
    return v in graph and (graph.out_degree(v) > 0 or any(o is v for o in graph.outputs))


def _replace_all(node, new_node, extra=None):
    """{old output: new output} for every output of `node`, plus `extra` pairs (first, so the
    old node loses those clients before its outputs are swapped)."""
    repl = dict(extra or {})
    repl.update(zip(node.outputs, new_node.outputs))
    return repl


# -- outputs nobody reads --------------------------------------------------------------------

def prune(node, needed):
    """A node computing only outputs `needed` (indices) of the Scan `node`, and the inner
    outputs and inputs they depend on; returns {old output: new output}, or None when
    everything is needed already."""
    op = node.op
    _, i_taps, _ = op.split_inner()
    need = set(needed)
    while True:  # a recurrent output read by a needed one is needed too
        used = {id(v) for v in leaves(op.inner_inputs, [op.inner_outputs[i] for i in need])}
        more = {r for r in range(op.n_rec) if r not in need and any(id(p) in used for p in i_taps[r])}
        if not more:
            break
        need |= more
    used = {id(v) for v in leaves(op.inner_inputs, [op.inner_outputs[i] for i in need])}
    rec = [r for r in range(op.n_rec) if r in need]
    nit = [k for k in range(op.n_nit) if op.n_rec + k in need]
    n, seqs, inits, nons = op.split_outer(node.inputs)
    i_seqs, _, i_nons = op.split_inner()
    keep_s = [i for i, p in enumerate(i_seqs) if id(p) in used]
    keep_n = [j for j, p in enumerate(i_nons) if id(p) in used]
    if len(rec) == op.n_rec and len(nit) == op.n_nit and len(keep_s) == len(seqs) \
            and len(keep_n) == len(nons):
        return None
    if not rec and not nit:
        return None
    inner_in = ([i_seqs[i] for i in keep_s] + [p for r in rec for p in i_taps[r]]
                + [i_nons[j] for j in keep_n])
    inner_out = [op.inner_outputs[r] for r in rec] + [op.inner_outputs[op.n_rec + k] for k in nit]
    new_op = op.clone(inner_inputs=inner_in, inner_outputs=inner_out, n_seqs=len(keep_s),
                      taps=[op.taps[r] for r in rec], n_nit=len(nit),
                      keep_last=[op.keep_last[r] for r in rec])
    new = new_op.make_node(n, *[seqs[i] for i in keep_s], *[inits[r] for r in rec],
                           *[nons[j] for j in keep_n])
    olds = [node.outputs[r] for r in rec] + [node.outputs[op.n_rec + k] for k in nit]
    return dict(zip(olds, new.outputs))


@node_rewriter([Scan], tags=("canonicalize", "scan"))
def scan_remove_unused(graph, node):
    """scan outputs nobody reads (and the sequences, non-sequences and recurrent states only
    they needed) -> a scan without them."""
    needed = {i for i, o in enumerate(node.outputs) if _read(graph, o)}
    return prune(node, needed)


# -- loop-invariant code ---------------------------------------------------------------------

@node_rewriter([Scan], tags=("canonicalize", "scan"))
def scan_hoist_invariant(graph, node):
    """inner f(non-sequences, constants) -> f computed once before the loop and passed in as
    a non-sequence."""
    op = node.op
    _, _, i_nons = op.split_inner()
    inv = {id(p) for p in i_nons}
    hoisted = []
    for nd in applies_between(op.inner_inputs, op.inner_outputs):
        if not getattr(nd.op, "foldable", True):
            continue
        if all(id(v) in inv or isinstance(v, Constant) for v in nd.inputs) \
                and any(id(v) in inv for v in nd.inputs):
            hoisted.append(nd)
            inv.update(id(o) for o in nd.outputs)
    if not hoisted:
        return None
    inner = {id(o) for nd in hoisted for o in nd.outputs}
    frontier, seen = [], set()
    for nd in applies_between(op.inner_inputs, op.inner_outputs):
        if nd in hoisted:
            continue
        for v in nd.inputs:
            if id(v) in inner and id(v) not in seen:
                seen.add(id(v))
                frontier.append(v)
    for o in op.inner_outputs:
        if id(o) in inner and id(o) not in seen:
            seen.add(id(o))
            frontier.append(o)
    _, _, _, nons = op.split_outer(node.inputs)
    outer = clone_replace(frontier, dict(zip(i_nons, nons)))
    fresh = [v.type.make_variable(name=v.name) for v in frontier]
    inner_out = clone_replace(op.inner_outputs, dict(zip(frontier, fresh)))
    new_op = op.clone(inner_inputs=op.inner_inputs + fresh, inner_outputs=inner_out)
    return _replace_all(node, new_op.make_node(*node.inputs, *outer))


# -- work that depends only on the sequences ------------------------------------------------

def _batched(nd, ins, from_seq):
    """The outputs of `nd` applied to whole sequences (`ins`, one more leading dim where
    `from_seq`), or None where that is not the same Op on stacked rows."""
    op = nd.op
    if isinstance(op, Elemwise):
        if all(v.ndim == nd.outputs[0].ndim for v, s in zip(nd.inputs, from_seq) if s):
            return op.make_node(*ins).outputs
    elif isinstance(op, MatMul):
        if from_seq[0] and not from_seq[1] and nd.inputs[1].ndim == 2:
            return [_rows_product(*ins)]
    elif isinstance(op, Subtensor) and len(nd.inputs) == 1:
        return Subtensor(((None, None, None),) + op.idx_list).make_node(ins[0]).outputs
    elif isinstance(op, DimShuffle):
        order = (0,) + tuple(d if d == "x" else d + 1 for d in op.new_order)
        return DimShuffle(order).make_node(ins[0]).outputs
    return None


def _rows_product(x, w):
    """`x @ w` for x of 2+ dims and a matrix w, as one (rows, k) @ (k, m) product: numpy's
    stacked matmul runs one small product per leading index, several times slower."""
    if x.ndim == 2:
        return x @ w
    lead = [shape_i(x, i) for i in range(x.ndim - 1)]
    return (x.reshape((-1, shape_i(x, -1))) @ w).reshape(tuple(lead) + (shape_i(w, 1),))


@node_rewriter([Scan], tags=("canonicalize", "scan"))
def scan_hoist_sequence_work(graph, node):
    """inner f(x_t, non-sequences) for a sequence x -> f(x) computed for every step at once
    before the loop (one batched product instead of one per step), read as a new sequence."""
    op = node.op
    n, seqs, inits, nons = op.split_outer(node.inputs)
    i_seqs, _, i_nons = op.split_inner()
    # a sequence walked backwards (`u[::-1]`) is batched in u's own order, which keeps the
    # arrays' strides positive; `rev` holds the values kept in that order
    outer, rev = {}, set()
    for p, v in zip(i_seqs, seqs):
        u = _reversed_of(v)
        outer[id(p)] = v[:n] if u is None else u[shape_i(u, 0) - n:]
        if u is not None:
            rev.add(id(p))
    outer.update((id(p), v) for p, v in zip(i_nons, nons))
    from_seq = {id(p) for p in i_seqs}

    def value(v, backwards):
        x = outer.get(id(v), v)
        return x[::-1] if id(v) in rev and not backwards else x

    hoisted = set()
    for nd in applies_between(op.inner_inputs, op.inner_outputs):
        if not getattr(nd.op, "foldable", True) or not any(id(v) in from_seq for v in nd.inputs):
            continue
        if not all(id(v) in outer or isinstance(v, Constant) for v in nd.inputs):
            continue
        backwards = all(id(v) in rev for v in nd.inputs if id(v) in from_seq)
        new = _batched(nd, [value(v, backwards) for v in nd.inputs],
                       [id(v) in from_seq for v in nd.inputs])
        if new is None:
            continue
        hoisted.add(id(nd))
        for o, no in zip(nd.outputs, new):
            outer[id(o)] = no
            from_seq.add(id(o))
            if backwards:
                rev.add(id(o))
    hoisted = _drop_elementwise_tails(op, hoisted)
    if not hoisted:
        return None
    frontier, seen = [], set()
    for nd in applies_between(op.inner_inputs, op.inner_outputs):
        if id(nd) not in hoisted:
            for v in nd.inputs:
                if v.owner is not None and id(v.owner) in hoisted and id(v) not in seen:
                    seen.add(id(v))
                    frontier.append(v)
    for o in op.inner_outputs:
        if o.owner is not None and id(o.owner) in hoisted and id(o) not in seen:
            seen.add(id(o))
            frontier.append(o)
    fresh = [v.type.make_variable(name=v.name) for v in frontier]
    inner_out = clone_replace(op.inner_outputs, dict(zip(frontier, fresh)))
    k = op.n_seqs
    new_op = op.clone(inner_inputs=op.inner_inputs[:k] + fresh + op.inner_inputs[k:],
                      inner_outputs=inner_out, n_seqs=k + len(fresh))
    new = new_op.make_node(n, *seqs, *[value(v, False) for v in frontier], *inits, *nons)
    return _replace_all(node, new)


def _drop_elementwise_tails(op, hoisted):
    """`hoisted` without the elementwise nodes whose values the loop itself reads (directly or
    through other such nodes): left in the step they fuse into its own elementwise kernel and
    cost next to nothing, where hoisted they would be one more pass over whole sequences and
    one more sequence for every step to read.  Elementwise work feeding a hoisted product
    stays hoisted with it."""
    nodes = applies_between(op.inner_inputs, op.inner_outputs)
    kept = set(hoisted)
    read_in_loop = {id(o) for o in op.inner_outputs}
    for nd in reversed(nodes):
        if id(nd) not in kept:
            read_in_loop.update(id(v) for v in nd.inputs)
        elif isinstance(nd.op, Elemwise) and any(id(o) in read_in_loop for o in nd.outputs):
            kept.discard(id(nd))
            read_in_loop.update(id(v) for v in nd.inputs)
    return kept


def _reversed_of(v):
    """u where `v` is `u[::-1]`, else None."""
    nd = v.owner
    if nd is not None and isinstance(nd.op, Subtensor) and len(nd.inputs) == 1 \
            and nd.op.idx_list == ((None, None, -1),):
        return nd.inputs[0]
    return None


# -- gradients of weights accumulated over the steps -----------------------------------------

def _accumulated_product(op, r, i_seqs, i_nons):
    """For recurrent output r updated as `acc + [SumToShape](s_t.T @ v_t, shape)` (or `s_t @
    v_t`), with s a sequence and acc read nowhere else: (index of s, whether s_t is
    transposed, v, the shape or None); else None."""
    if op.taps[r] != (-1,):
        return None
    _, i_taps, _ = op.split_inner()
    acc, out = i_taps[r][0], op.inner_outputs[r]
    nd = out.owner
    if nd is None or not isinstance(nd.op, Elemwise) or nd.op.scalar_op.name != "add" \
            or len(nd.inputs) != 2 or not any(v is acc for v in nd.inputs):
        return None
    term = nd.inputs[1] if nd.inputs[0] is acc else nd.inputs[0]
    if term is acc or term.type.shape != out.type.shape and None not in term.type.shape:
        return None
    readers = [n for n in applies_between(op.inner_inputs, op.inner_outputs)
               if any(v is acc for v in n.inputs)]
    if readers != [nd] or any(o is acc for o in op.inner_outputs):
        return None
    shp = None
    if term.owner is not None and isinstance(term.owner.op, SumToShape):
        term, shp = term.owner.inputs
        nons = {id(p) for p in i_nons}
        if any(not isinstance(v, Constant) and id(v) not in nons for v in leaves(op.inner_inputs, [shp])):
            return None
    m = term.owner
    if m is None or not isinstance(m.op, MatMul) or term.ndim != 2 or m.inputs[1].ndim != 2:
        return None
    u, v = m.inputs
    transposed = u.owner is not None and isinstance(u.owner.op, DimShuffle) and \
        u.owner.op.new_order == (1, 0)
    s = u.owner.inputs[0] if transposed else u
    seq = next((i for i, p in enumerate(i_seqs) if p is s), None)
    if seq is None or term.dtype != out.dtype:
        return None
    return seq, transposed, v, shp


def _rows_of_transposed_steps(S):
    """X cut as S is, where the stacked steps S are slices along the steps' axis (reversed,
    a prefix) of X's steps transposed, X.transpose(0, 2, 1); else None.  Then S's steps side
    by side are X's rows stacked, transposed (a view BLAS reads), where they would be a
    transposing copy of S (2 ms of W5's 65 ms step)."""
    cuts = []
    while S.owner is not None and isinstance(S.owner.op, Subtensor) \
            and len(S.owner.op.idx_list) == 1 and type(S.owner.op.idx_list[0]) is tuple:
        cuts.append(S.owner)
        S = S.owner.inputs[0]
    if S.ndim != 3 or S.owner is None or not isinstance(S.owner.op, DimShuffle) \
            or S.owner.op.new_order != (0, 2, 1):
        return None
    x = S.owner.inputs[0]
    for nd in reversed(cuts):
        x = nd.op(x, *nd.inputs[1:])
    return x


@node_rewriter([Scan], tags=("canonicalize", "scan"))
def scan_push_out_accumulated_product(graph, node):
    """acc_T = acc_0 + sum_t s_t.T @ v_t, with only acc_T read -> v_t a per-step output and
    acc_0 + S.T @ V after the loop, S and V the steps stacked: one large product instead of
    one small product and one accumulation per step (the weight gradients of BPTT)."""
    op = node.op
    n, seqs, inits, nons = op.split_outer(node.inputs)
    i_seqs, i_taps, i_nons = op.split_inner()
    for r in range(op.n_rec):
        if op.keep_last[r]:
            continue
        buf = node.outputs[r]
        found = _accumulated_product(op, r, i_seqs, i_nons)
        lasts = found and buf in graph and not any(o is buf for o in graph.outputs) \
            and _last_rows(graph, buf)
        if not lasts:
            continue
        seq, transposed, v, shp = found
        keep = [k for k in range(op.n_rec) if k != r]
        inner_in = (list(i_seqs) + [p for k in keep for p in i_taps[k]] + list(i_nons))
        inner_out = [op.inner_outputs[k] for k in keep] + op.inner_outputs[op.n_rec:] + [v]
        new_op = op.clone(inner_inputs=inner_in, inner_outputs=inner_out,
                          taps=[op.taps[k] for k in keep], n_nit=op.n_nit + 1,
                          keep_last=[op.keep_last[k] for k in keep])
        new = new_op.make_node(n, *seqs, *[inits[k] for k in keep], *nons)
        S, V = seqs[seq][:n], new.outputs[-1]
        # the steps side by side: S2 (k, n*b) @ V2 (n*b, m)
        rows = None if transposed else _rows_of_transposed_steps(S)
        if transposed:
            S2 = S.reshape((-1, S.shape[-1])).T
        elif rows is not None:  # s_t = x_t.T: the rows of x, a transposed view for BLAS
            S2 = rows.reshape((-1, rows.shape[-1])).T
        else:
            S2 = transpose(S, (1, 0, 2)).reshape((S.shape[1], -1))
        prod = S2 @ V.reshape((-1, V.shape[-1]))
        if shp is not None:
            prod = SumToShape()(prod, clone_replace([shp], dict(zip(i_nons, nons)))[0])
        final = inits[r][0] + prod
        repl = {v_: final for v_ in lasts}
        olds = [node.outputs[k] for k in keep] + node.outputs[op.n_rec:]
        repl.update(zip(olds, new.outputs[:-1]))
        return repl
    return None


# -- only the last state read ----------------------------------------------------------------

def _is_last_row(nd) -> bool:
    return isinstance(nd.op, Subtensor) and nd.op.idx_list == (-1,) and len(nd.inputs) == 1


def _is_tail(nd) -> bool:
    """`x[s:]` with a constant start."""
    if not isinstance(nd.op, Subtensor) or len(nd.inputs) != 1 or len(nd.op.idx_list) != 1:
        return False
    part = nd.op.idx_list[0]
    return isinstance(part, tuple) and part[1] is None and part[2] is None and \
        (part[0] is None or part[0] >= 0)


def _last_rows(graph, buf):
    """The variables `buf[-1]` (possibly as `buf[s:][-1]`) when those are all anyone reads of
    `buf`, else None."""
    found = []
    for nd, i in graph.clients(buf):
        if i != 0:
            return None
        if _is_last_row(nd):
            found.append(nd.outputs[0])
        elif _is_tail(nd) and not any(o is nd.outputs[0] for o in graph.outputs):
            for nd2, j in graph.clients(nd.outputs[0]):
                if j != 0 or not _is_last_row(nd2):
                    return None
                found.append(nd2.outputs[0])
        else:
            return None
    return found or None


@node_rewriter([Scan], tags=("specialize", "scan"))
def scan_keep_last(graph, node):
    """scan(...)[r][-1], when that is all anyone reads of recurrent output r -> a scan keeping
    one row of r: memory O(1) in the number of steps instead of O(n)."""
    op = node.op
    for r in range(op.n_rec):
        buf = node.outputs[r]
        if op.keep_last[r] or buf not in graph or any(o is buf for o in graph.outputs):
            continue
        lasts = _last_rows(graph, buf)
        if lasts is None:
            continue
        keep = list(op.keep_last)
        keep[r] = True
        new = op.clone(keep_last=keep).make_node(*node.inputs)
        return _replace_all(node, new, {v: new.outputs[r][0] for v in lasts})
    return None


# -- scans over the same steps ----------------------------------------------------------------

def _extends(big, small) -> bool:
    """Whether Scan op `big` runs the step of `small` with more per-step outputs after its own."""
    same = lambda a, b: len(a) == len(b) and all(x is y for x, y in zip(a, b))  # noqa: E731
    return (same(big.inner_inputs, small.inner_inputs) and big.n_nit >= small.n_nit
            and same(big.inner_outputs[:len(small.inner_outputs)], small.inner_outputs)
            and (big.n_seqs, big.taps, big.keep_last, big.truncate_gradient, big.linker)
            == (small.n_seqs, small.taps, small.keep_last, small.truncate_gradient, small.linker))


@node_rewriter([Scan], tags=("merge", "scan"))
def scan_subsumed(graph, node):
    """scan(...) on the same inputs as a scan whose step is the same with more per-step
    outputs (the forward loop extended with the values its gradient reads) -> the larger
    scan's outputs: one loop instead of two.  Runs with the merge, before other rules change
    either step."""
    for other, i in graph.clients(node.inputs[0]):
        if other is not node and i == 0 and isinstance(other.op, Scan) and other.op is not node.op \
                and len(other.inputs) == len(node.inputs) \
                and all(a is b for a, b in zip(other.inputs, node.inputs)) \
                and _extends(other.op, node.op):
            return dict(zip(node.outputs, other.outputs))
    return None


def _merge_partner(graph, node):
    """Another Scan over the same `n_steps` variable, with the same truncate_gradient and
    linker, that neither reads nor is read by `node`'s outputs (directly or not)."""
    op = node.op
    for other, i in graph.clients(node.inputs[0]):
        if other is node or i != 0 or not isinstance(other.op, Scan):
            continue
        if (other.op.truncate_gradient, other.op.linker) != (op.truncate_gradient, op.linker):
            continue
        if nx.has_path(graph, node, other) or nx.has_path(graph, other, node):
            continue
        return other
    return None


@node_rewriter([Scan], tags=("canonicalize", "scan"))
def scan_merge(graph, node):
    """scan_a(n, ...), scan_b(n, ...) over the same n steps, neither reading the other ->
    one scan whose step computes both steps: one loop, one inner call per step instead of
    two.  (`go_backwards` reverses the sequences outside the loop, so it need not match.)"""
    other = _merge_partner(graph, node)
    if other is None:
        return None
    a, b = node.op, other.op
    n, seqs_a, inits_a, nons_a = a.split_outer(node.inputs)
    _, seqs_b, inits_b, nons_b = b.split_outer(other.inputs)
    sa, ta, na = a.split_inner()
    sb, tb, nb = b.split_inner()
    # b's step on new placeholders (so it can sit beside a's even when both come from one
    # traced step), except that a sequence or non-sequence a reads already is a's placeholder
    bind, own = {}, {"seqs": ([], []), "nons": ([], [])}  # b's own: (placeholders, outer)
    for kind, inner_a, outer_a, inner_b, outer_b in (("seqs", sa, seqs_a, sb, seqs_b),
                                                     ("nons", na, nons_a, nb, nons_b)):
        known = {id(v): p for p, v in zip(inner_a, outer_a)}
        for p, v in zip(inner_b, outer_b):
            bind[p] = known.get(id(v))
            if bind[p] is None:
                bind[p] = p.type.make_variable(name=p.name)
                own[kind][0].append(bind[p])
                own[kind][1].append(v)
    taps_b = [[p.type.make_variable(name=p.name) for p in ps] for ps in tb]
    bind.update((p, q) for ps, qs in zip(tb, taps_b) for p, q in zip(ps, qs))
    outs_a, outs_b = a.inner_outputs, clone_replace(b.inner_outputs, bind)
    (s_in, s_out), (n_in, n_out) = own["seqs"], own["nons"]
    inner_in = [*sa, *s_in, *[p for ps in ta + taps_b for p in ps], *na, *n_in]
    inner_out = outs_a[:a.n_rec] + outs_b[:b.n_rec] + outs_a[a.n_rec:] + outs_b[b.n_rec:]
    name = a.name if a.name == b.name else None
    new_op = a.clone(inner_inputs=inner_in, inner_outputs=inner_out, n_seqs=len(sa) + len(s_in),
                     taps=a.taps + b.taps, n_nit=a.n_nit + b.n_nit,
                     keep_last=a.keep_last + b.keep_last, name=name)
    new = new_op.make_node(n, *seqs_a, *s_out, *inits_a, *inits_b, *nons_a, *n_out).outputs
    ra, rb, ka = a.n_rec, b.n_rec, a.n_nit
    repl = dict(zip(node.outputs[:ra], new[:ra]))
    repl.update(zip(other.outputs[:rb], new[ra:ra + rb]))
    repl.update(zip(node.outputs[ra:], new[ra + rb:ra + rb + ka]))
    repl.update(zip(other.outputs[rb:], new[ra + rb + ka:]))
    return repl


# -- the gradient of a step that slices one product into parts ------------------------------

def _add_terms(graph, v, terms):
    """The terms of a tree of `add` nodes rooted at `v`, through inner sums nobody else reads."""
    nd = v.owner
    if nd is not None and isinstance(nd.op, Elemwise) and nd.op.scalar_op.name == "add" and (
            terms is None or len(graph.clients(v)) == 1 and not any(o is v for o in graph.outputs)):
        terms = [] if terms is None else terms
        for x in nd.inputs:
            if x.type != v.type:
                return None
            if _add_terms(graph, x, terms) is None:
                return None
        return terms
    if terms is not None:
        terms.append(v)
    return terms


def _zeros_block(v):
    """(zeros, axis, start, stop) where `v` is `inc_subtensor(zeros[.., start:stop], y)`, zeros
    an `Alloc` of 0 or a constant array of zeros, with constant non-negative bounds on one axis
    and `y` of the slice's shape on the other axes; else None."""
    nd = v.owner
    if nd is None or not isinstance(nd.op, IncSubtensor) or nd.op.set_instead_of_inc \
            or len(nd.inputs) != 2:
        return None
    x, y = nd.inputs
    fill = x.owner
    if isinstance(x, Constant):  # an Alloc of static sizes, folded
        zero = x
    elif fill is not None and isinstance(fill.op, Alloc) and isinstance(fill.inputs[0], Constant):
        zero = fill.inputs[0]
    else:
        return None
    if zero.data.any() or y.dtype != x.dtype or y.ndim != x.ndim:
        return None
    cut = [(d, p) for d, p in enumerate(nd.op.idx_list) if p != (None, None, None)]
    if len(cut) != 1 or not isinstance(cut[0][1], tuple):
        return None
    axis, (start, stop, step) = cut[0]
    if step is not None or any(b is not None and (not isinstance(b, int) or b < 0)
                               for b in (start, stop)) or stop is not None and stop <= (start or 0):
        return None
    if any(d != axis and a is not None and b is not None and a != b for d, (a, b) in
           enumerate(zip(y.type.shape, x.type.shape))):
        return None
    return x, axis, start or 0, stop


@node_rewriter([Elemwise], tags=("canonicalize", "scan"))
def sum_of_slice_increments_to_concatenate(graph, node):
    """inc_subtensor(zeros[:, 0:a], y0) + inc_subtensor(zeros[:, a:b], y1) + ... +
    inc_subtensor(zeros[:, k:], yk) -> concatenate([y0, ..., yk], axis=1), when the slices tile
    the axis: one copy of each part instead of filling zeros and adding whole arrays (the
    gradient of a product sliced into the gates of a recurrent cell, on every step)."""
    terms = _add_terms(graph, node.outputs[0], None)
    if not terms or len(terms) < 2:
        return None
    blocks = [_zeros_block(t) for t in terms]
    if any(b is None for b in blocks) or len({(id(b[0]), b[1]) for b in blocks}) != 1:
        return None
    zeros, axis = blocks[0][:2]
    order = sorted(range(len(terms)), key=lambda k: blocks[k][2])
    end = 0
    for k in order:
        _, _, start, stop = blocks[k]
        if start != end or end is None:
            return None
        end = stop
    if end is not None and zeros.type.shape[axis] != end:
        return None
    out = Concatenate(axis)(*[terms[k].owner.inputs[1] for k in order])
    # a part that the increment would have broadcast leaves the result smaller: where the
    # static shapes do not show the sizes agree, they are compared when the function runs
    checks, sizes = [], []
    for d, (a, b) in enumerate(zip(out.type.shape, zeros.type.shape)):
        if a is None or a != b:
            checks.append(("eq", f"the parts written into zeros have {{a}} elements along axis "
                                 f"{d}, the zeros {{b}}; broadcast a part before writing it"))
            sizes += [shape_i(out, d), shape_i(zeros, d)]
    return [CheckSizes("inc_subtensor", checks)(out, *sizes) if checks else out]


# -- compiling inner graphs ------------------------------------------------------------------

def compiled_scan(op, mode, linker):
    """`op` with its inner graph rewritten under `mode` and lowered by `linker` (cached)."""
    key = (mode.key(), linker)
    new = op._compiled.get(key)
    if new is None:
        inner = Graph(op.inner_inputs, op.inner_outputs)
        rewritten = rewrite_graph(inner, mode)
        if rewritten is not inner:
            rewritten = compile_scans(rewritten, mode)  # nested scans
        new = op.clone(inner_outputs=rewritten.outputs, linker=linker)
        if rewritten is not inner:  # rewritten again on each call's static shapes when run
            new.specialize = (mode, op.inner_outputs)
        new._compiled[key] = new
        op._compiled[key] = new
    return new


def compile_scans(graph, mode):
    """Swap every Scan of an already rewritten `graph` for its compiled version."""
    from ..config import config

    mode = get_mode(mode)
    linker = mode.linker or config.linker
    for node in graph.toposort():
        if not isinstance(node.op, Scan) or node not in graph:
            continue
        new_op = compiled_scan(node.op, mode, linker)
        if new_op is node.op:
            continue
        new = new_op.make_node(*node.inputs)
        for o, no in zip(node.outputs, new.outputs):
            no.source, no.name = o.source, o.name
            if o in graph:
                graph.replace(o, no)
    return graph


_function.HOOKS["lower"].append(compile_scans)
_function.HOOKS["warm"].append(warmer)

__all__ = ["scan_remove_unused", "scan_merge", "scan_hoist_invariant", "scan_hoist_sequence_work",
           "scan_push_out_accumulated_product", "scan_keep_last",
           "sum_of_slice_increments_to_concatenate", "scan_subsumed",
           "compile_scans", "prune"]
