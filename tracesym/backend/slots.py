"""What every linker does first: order the nodes, check the destructive ones, and number the
storage slots the lowered program reads and writes."""

from __future__ import annotations

from ..trace.graph import Constant


def checked_order(graph) -> list:
    """The graph's Apply nodes in topological order, after checking (when it has destructive
    nodes) that no value an in-place node overwrites is read by anyone else."""
    nodes = graph.toposort()
    if any(getattr(node.op, "destroy_map", None) for node in nodes):
        from ..rewrite.inplace import check_destroyers

        check_destroyers(graph)
    return nodes


class Slots:
    """One storage slot per variable, numbered as first asked for (`slots(v)`); `init` holds
    each slot's value before a call: a constant's data, else None."""

    def __init__(self):
        self._index: dict[int, int] = {}
        self.init: list = []

    def __call__(self, v) -> int:
        i = self._index.get(id(v))
        if i is None:
            i = self._index[id(v)] = len(self.init)
            self.init.append(v.data if isinstance(v, Constant) else None)
        return i

    def extra(self) -> int:
        """A new slot that holds no variable (a copy of another slot's value)."""
        self.init.append(None)
        return len(self.init) - 1
