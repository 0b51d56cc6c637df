"""The graph verifier: checks the invariants every rewrite must keep, so a rule that breaks one
is caught right after its phase instead of as wrong numbers at run time.

`check_graph(graph)` re-runs every Apply's `make_node` on its current inputs and compares the
re-inferred output types with the stored ones; checks that the graph is a DAG, that its
outputs are in it, that `Apply.inputs` / `Variable.owner` agree with the networkx edges, that
every leaf is an input, a constant or a shared variable, and that no node is dead (computes
nothing an output needs).  `rewrite_graph(graph, mode, check=True)` runs it after each phase;
the tests' `checked_rewrites` fixture turns that on for every compile (`mode.CHECK_GRAPHS`).
"""

from __future__ import annotations

import networkx as nx

from ..config import config
from ..errors import TracesymError
from ..trace.graph import Apply, Constant, SharedVariable, Variable, ancestors

#: problems listed in one error message (the rest are counted)
MAX_LISTED = 8


class InvalidGraphError(TracesymError, RuntimeError):
    """A graph breaks an invariant: a node whose stored type is not what its Op infers from its
    inputs, a cycle, an input or output missing, edges that disagree with `Apply.inputs`, a
    free variable, or a dead node.  Raised after a rewrite phase, it means a rewrite of that
    phase is wrong: exclude it (`ts.Mode(exclude=[name])`) and report the graph."""


def _agree(a, b) -> bool:
    """Same dtype and ndim, and no static size the two know differently.  (A stored type may
    know less than re-inference does once rewrites made the inputs more precise.)"""
    return a.dtype == b.dtype and a.ndim == b.ndim and all(
        x is None or y is None or x == y for x, y in zip(a.shape, b.shape))


def _where(node) -> str:
    src = node.source
    return f" (from {src.filename}:{src.lineno})" if src else ""


def _node_problems(graph, node) -> list[str]:
    out = []
    for i, x in enumerate(node.inputs):
        if x not in graph:
            out.append(f"{node.op}: input {i} ({x.label()}) is not in the graph")
        elif not graph.has_edge(x, node) or i not in graph.edges[x, node]["positions"]:
            out.append(f"{node.op}: no edge for input {i} ({x.label()})")
    for x, _, data in graph.in_edges(node, data=True):
        for i in data.get("positions", ()):
            if i >= len(node.inputs) or node.inputs[i] is not x:
                out.append(f"{node.op}: an edge says {x.label()} is input {i}, Apply.inputs disagrees")
    for j, o in enumerate(node.outputs):
        if o.owner is not node or o.index != j:
            out.append(f"{node.op}: output {j} ({o.label()}) has a different owner or index")
        elif o in graph and not graph.has_edge(node, o):
            out.append(f"{node.op}: no edge to output {j} ({o.label()})")
    try:
        fresh = node.op.make_node(*node.inputs)
    except Exception as e:  # the Op rejects the inputs a rewrite gave it
        return out + [f"{node.op}{_where(node)}: make_node rejects its inputs "
                      f"({', '.join(x.type.short() for x in node.inputs)}): {type(e).__name__}: {e}"]
    if len(fresh.outputs) != len(node.outputs):
        return out + [f"{node.op}{_where(node)}: has {len(node.outputs)} outputs, make_node "
                      f"gives {len(fresh.outputs)}"]
    for j, (o, f) in enumerate(zip(node.outputs, fresh.outputs)):
        if not _agree(f.type, o.type):
            out.append(f"{node.op}{_where(node)}: output {j} ({o.label()}) has type "
                       f"{o.type.short()}, but make_node infers {f.type.short()} from inputs "
                       f"({', '.join(x.type.short() for x in node.inputs)})")
    return out


def _problems_of(graph, n, inputs, live) -> list[str]:
    if isinstance(n, Apply):
        out = _node_problems(graph, n)
        if not any(id(o) in live for o in n.outputs):
            out.append(f"{n.op}{_where(n)}: dead node (no output depends on it)")
        return out
    if not isinstance(n, Variable):
        return [f"{n!r}: neither a Variable nor an Apply"]
    if n.owner is not None:
        return [] if n.owner in graph else [f"{n.label()}: its owner {n.owner.op} is not in the graph"]
    out = []
    if id(n) not in inputs and not isinstance(n, (Constant, SharedVariable)):
        out.append(f"{n.label()} ({n.type.short()}): a free variable (not an input, a constant "
                   "or a shared variable)")
    if id(n) not in live and id(n) not in inputs and graph.out_degree(n) == 0:
        out.append(f"{n.label()}: dead leaf (nothing uses it)")
    return out


def graph_problems(graph) -> list[str]:
    """Every broken invariant of `graph`, as messages (empty when it is sound)."""
    out = [f"output {k} ({o.label()}) is not in the graph" for k, o in enumerate(graph.outputs)
           if o not in graph]
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        out.append("the graph has a cycle through " +
                   " -> ".join(str(getattr(u, "op", u)) for u, _ in cycle))
        return out  # the rest assumes a DAG
    inputs = set(map(id, graph.inputs))
    live = set(map(id, ancestors([o for o in graph.outputs if o in graph], graph.inputs)))
    with config.change(compute_test_value="off"):  # make_node again, without debug values
        for n in graph.nodes:
            out += _problems_of(graph, n, inputs, live)
    return out


def check_graph(graph, when: str = ""):
    """Raise InvalidGraphError listing what is wrong with `graph`; return it when sound."""
    problems = graph_problems(graph)
    if problems:
        more = len(problems) - MAX_LISTED
        head = f"{when}: " if when else ""
        raise InvalidGraphError(f"{head}invalid graph {graph!r}:\n  " + "\n  ".join(problems[:MAX_LISTED])
                                + (f"\n  ... and {more} more" if more > 0 else ""))
    return graph


def check_after_phase(graph, phase, fired):
    """`check_graph` for `run_phases`: the message names the phase and the rewrites that fired
    in it (`fired`: their `rewrite_log` entries)."""
    names = sorted({name for name, _ in fired})
    return check_graph(graph, f"after phase {phase} (rewrites that fired in it: "
                              f"{', '.join(names) or 'none'})")
