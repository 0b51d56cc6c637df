"""Merging equal subgraphs and folding constants: the cheap rewrites every mode but NONE runs.

Dead code needs no pass of its own: a graph holds only what its outputs need, and every
replacement (`Graph.replace`, `engine.replace`) removes what no longer leads to an output.
"""

from __future__ import annotations

import numpy as np

from ..trace.graph import Constant
from .engine import graph_pass, node_rewriter, replace

#: constants bigger than this are left to be computed at run time, not materialised
FOLD_MAX_BYTES = 1 << 20


@graph_pass("merge", tags=("fast_compile",))
def merge(graph):
    """Common subexpressions: equal constants become one, and two nodes applying equal Ops to
    the same inputs become one."""
    consts: dict = {}
    for v in list(graph.nodes):
        if isinstance(v, Constant) and v in graph:
            keep = consts.setdefault(v.signature(), v)
            if keep is not v:
                replace(graph, v, keep)
    seen: dict = {}
    for node in graph.toposort():
        if node not in graph:
            continue
        key = (node.op, tuple(map(id, node.inputs)))
        try:
            other = seen.setdefault(key, node)
        except TypeError:  # an Op with unhashable props: it merges with nothing
            continue
        if other is node:
            continue
        for old, new in zip(node.outputs, other.outputs):
            if old in graph:
                if not new.name and old.name:
                    new.name = old.name
                replace(graph, old, new)
                graph.rewrite_log.append(("merge", str(node.op)))


@node_rewriter(None, tags=("canonicalize", "fast_compile"))
def constant_folding(graph, node):
    """op(constants...) -> constant, when the Op is deterministic and the result is small."""
    if not node.inputs or not all(isinstance(v, Constant) for v in node.inputs):
        return None
    if not getattr(node.op, "foldable", True) or getattr(node.tag, "unfoldable", False):
        return None
    for o in node.outputs:
        if None not in o.type.shape and \
                np.prod(o.type.shape, dtype=np.int64) * np.dtype(o.dtype).itemsize > FOLD_MAX_BYTES:
            return None  # known too big before computing it
    try:
        with np.errstate(all="ignore"):
            values = node.op.perform(node, [v.data for v in node.inputs])
    except Exception:  # leave the error to run time, where it names the user's line
        node.tag.unfoldable = True  # and spare the later sweeps computing it again
        return None
    out = []
    for o, val in zip(node.outputs, values):
        val = np.asarray(val, dtype=o.dtype)
        if val.nbytes > FOLD_MAX_BYTES:
            node.tag.unfoldable = True
            return None
        out.append(o.type.clone(shape=val.shape).constant_class(o.type.clone(shape=val.shape), val))
    return out


@node_rewriter(None, tags=("specialize", "fast_compile"))
def constant_folding_late(graph, node):
    """`constant_folding` again, for what later phases' rules build from constants (the
    negated scale of a cross-entropy gradient)."""
    return constant_folding(graph, node)


__all__ = ["merge", "constant_folding", "constant_folding_late"]
