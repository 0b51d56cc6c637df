"""The reference linker: run each Op's numpy `perform` in topological order.

The graph is lowered once into a flat program over storage slots, so a call is one loop of
Python calls with no graph walking."""

from __future__ import annotations

import numpy as np

from ..trace.context import op_error
from ..trace.graph import Constant


def link_numpy(graph, config):
    slot: dict[int, int] = {}
    init: list = []

    def slot_of(v):
        i = slot.get(id(v))
        if i is None:
            i = slot[id(v)] = len(init)
            init.append(v.data if isinstance(v, Constant) else None)
        return i

    in_slots = [slot_of(v) for v in graph.inputs]
    program = []
    for node in graph.toposort():
        ins = [slot_of(v) for v in node.inputs]
        outs = [slot_of(v) for v in node.outputs]
        dts = [np.dtype(o.type.dtype) for o in node.outputs]
        program.append((node.op.perform, node, ins, outs, dts))
    out_slots = [slot_of(v) for v in graph.outputs]

    def run(values):
        storage = list(init)
        for i, v in zip(in_slots, values):
            storage[i] = v
        for perform, node, ins, outs, dts in program:
            args = [storage[i] for i in ins]
            try:
                res = perform(node, args)
            except Exception as e:
                raise op_error(node, args, e) from e
            for i, r, dt in zip(outs, res, dts):
                if type(r) is not np.ndarray or r.dtype != dt:
                    r = np.asarray(r, dtype=dt)
                storage[i] = r
        return [storage[i] for i in out_slots]

    return run
