"""The reference linker: run each Op's numpy `perform` in topological order.

The graph is lowered once into a flat program over storage slots, so a call is one loop of
Python calls with no graph walking.  Every call gets fresh storage (no buffer outlives the
call except the arrays it returns), and a slot is dropped after its last reader, so memory an
intermediate holds is freed as soon as possible.

Destructive nodes (`destroy_map`, chosen by the `inplace` rewrite) return the input buffer
they overwrote, which becomes their output slot's value.  Before lowering, a graph that has
any is checked (`check_destroyers`): no overwritten value may be read by anyone else.
"""

from __future__ import annotations

import numpy as np

from ..trace.context import op_error
from .slots import Slots, checked_order


def link_numpy(graph, config):
    nodes = checked_order(graph)
    slot_of = Slots()
    init = slot_of.init
    in_slots = [slot_of(v) for v in graph.inputs]
    steps = []
    last_read: dict[int, int] = {}
    for k, node in enumerate(nodes):
        ins = [slot_of(v) for v in node.inputs]
        outs = [slot_of(v) for v in node.outputs]
        dts = [np.dtype(o.type.dtype) for o in node.outputs]
        steps.append((node.op.perform, node, ins, outs, dts))
        for i in ins:
            last_read[i] = k
        for i in outs:
            last_read.setdefault(i, k)  # an output nobody reads dies where it is made
    out_slots = [slot_of(v) for v in graph.outputs]
    keep = set(out_slots)
    frees: list[list[int]] = [[] for _ in steps]
    for i, k in last_read.items():
        if i not in keep:
            frees[k].append(i)
    program = [step + (tuple(f),) for step, f in zip(steps, frees)]

    def run(values):
        storage = list(init)
        for i, v in zip(in_slots, values):
            storage[i] = v
        for perform, node, ins, outs, dts, dead in program:
            args = [storage[i] for i in ins]
            try:
                res = perform(node, args)
            except Exception as e:
                raise op_error(node, args, e) from e
            for i, r, dt in zip(outs, res, dts):
                if type(r) is not np.ndarray or r.dtype != dt:
                    r = np.asarray(r, dtype=dt)
                storage[i] = r
            for i in dead:
                storage[i] = None
        return [storage[i] for i in out_slots]

    return run
