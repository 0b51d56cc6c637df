"""Merging equal subgraphs and folding constants: the cheap rewrites every mode but NONE runs."""

from __future__ import annotations

import numpy as np

from ..trace.graph import Constant
from .engine import graph_pass, node_rewriter

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
                graph.replace(v, keep)
    seen: dict = {}
    for node in graph.toposort():
        if node not in graph:
            continue
        key = (node.op, tuple(map(id, node.inputs)))
        other = seen.get(key)
        if other is None:
            seen[key] = node
            continue
        for old, new in zip(node.outputs, other.outputs):
            if old in graph:
                if not new.name and old.name:
                    new.name = old.name
                graph.replace(old, new)
                graph.rewrite_log.append(("merge", str(node.op)))


@node_rewriter(None, tags=("canonicalize", "fast_compile"))
def constant_folding(graph, node):
    """op(constants...) -> constant, when the Op is deterministic and the result is small."""
    if not node.inputs or not all(isinstance(v, Constant) for v in node.inputs):
        return None
    if not getattr(node.op, "foldable", True):
        return None
    for o in node.outputs:
        if None not in o.type.shape and np.prod(o.type.shape, dtype=np.int64) * np.dtype(o.dtype).itemsize > FOLD_MAX_BYTES:
            return None
    try:
        with np.errstate(all="ignore"):
            values = node.op.perform(node, [v.data for v in node.inputs])
    except Exception:
        return None  # leave the error to run time, where it names the user's line
    out = []
    for o, val in zip(node.outputs, values):
        val = np.asarray(val, dtype=o.dtype)
        if val.nbytes > FOLD_MAX_BYTES:
            return None
        out.append(o.type.clone(shape=val.shape).constant_class(o.type.clone(shape=val.shape), val))
    return out


__all__ = ["merge", "constant_folding"]
