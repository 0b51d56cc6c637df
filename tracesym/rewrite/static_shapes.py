"""Rewrites that static shapes decide (phase `canonicalize`, tag `shapes`).

A scan's step is rewritten again on the static shapes of each call's values
(`loops/op.py`), where the symbolic proofs of `shapes.py` cannot reach across the loop's
boundary but the types themselves now say that a broadcast changes nothing.
"""

from __future__ import annotations

from ..ops.shape import BroadcastTo
from ..trace.graph import Constant
from .engine import node_rewriter


@node_rewriter([BroadcastTo], tags=("canonicalize", "shapes"))
def broadcast_to_own_shape(graph, node):
    """broadcast_to(x, s) -> x where s is constant and is x's static shape: the view is x."""
    x, *dims = node.inputs
    if len(dims) != x.ndim or None in x.type.shape:
        return None
    if not all(isinstance(d, Constant) and int(d.data) == s for d, s in zip(dims, x.type.shape)):
        return None
    return [x] if node.outputs[0].type == x.type else None


__all__ = ["broadcast_to_own_shape"]
