"""Modes: which rewrites run and which linker runs the result.

`"FAST_RUN"` (the default) runs every rewrite; `"FAST_COMPILE"` only the cheap ones tagged
`fast_compile` (merge, constant folding); `"NONE"` runs none, so the graph is exactly as traced.
`Mode(optimizer=..., linker=..., include=[tags], exclude=[tags])` adjusts a mode by tags.
"""

from __future__ import annotations

from ..config import config
from ..errors import ConfigError
from ..trace.graph import Graph, clone_graph
from .engine import run_phases

OPTIMIZERS = ("fast_run", "fast_compile", None)


class Mode:
    def __init__(self, optimizer="fast_run", linker=None, include=(), exclude=()):
        if isinstance(optimizer, str):
            optimizer = optimizer.lower()
        if optimizer == "none":
            optimizer = None
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; known: fast_run, fast_compile, None")
        self.optimizer = optimizer
        self.linker = linker
        self.include = frozenset(include)
        self.exclude = frozenset(exclude)

    def including(self, *tags) -> "Mode":
        return Mode(self.optimizer, self.linker, self.include | set(tags), self.exclude - set(tags))

    def excluding(self, *tags) -> "Mode":
        return Mode(self.optimizer, self.linker, self.include - set(tags), self.exclude | set(tags))

    def enabled(self, tags: frozenset) -> bool:
        """Whether a rewrite with these tags runs in this mode."""
        if tags & self.exclude:
            return False
        if tags & self.include:
            return True
        return self.optimizer is not None and self.optimizer in tags

    def key(self):
        return (self.optimizer, self.linker, tuple(sorted(self.include)), tuple(sorted(self.exclude)))

    def __eq__(self, other):
        return isinstance(other, Mode) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        extra = "".join(f", {k}={sorted(v)}" for k, v in (("include", self.include),
                                                          ("exclude", self.exclude)) if v)
        return f"Mode(optimizer={self.optimizer!r}, linker={self.linker!r}{extra})"


MODES = {"FAST_RUN": Mode("fast_run"), "FAST_COMPILE": Mode("fast_compile"), "NONE": Mode(None)}


def get_mode(mode, cfg=None) -> Mode:
    """A Mode from a Mode, a mode name, or None (`config.mode`)."""
    if isinstance(mode, Mode):
        return mode
    if mode is None:
        mode = (cfg or config).mode
    try:
        return MODES[str(mode).upper()]
    except KeyError:
        raise ConfigError(f"unknown mode {mode!r}: accepted values are {', '.join(MODES)} or a "
                          "ts.Mode") from None


def rewrite_graph(graph: Graph, mode) -> Graph:
    """The rewritten copy of `graph` under `mode` (the graph itself when nothing runs)."""
    mode = get_mode(mode)
    if mode.optimizer is None and not mode.include:
        return graph
    outs = clone_graph(graph.inputs, graph.outputs)
    g = Graph(graph.inputs, outs, update_targets=graph.update_targets, name=graph.graph.get("name", ""))
    with config.change(compute_test_value="off"):  # rules build nodes; no debug values for them
        return run_phases(g, mode.enabled)


def rewrite(graph_or_outputs, mode="FAST_RUN", inputs=None):
    """Rewrite a graph (or a variable or list of variables) for inspection; returns a Graph.
    `ts.debugprint(ts.rewrite(y))` shows what a function computing `y` would run."""
    if isinstance(graph_or_outputs, Graph):
        return rewrite_graph(graph_or_outputs, mode)
    outs = graph_or_outputs if isinstance(graph_or_outputs, (list, tuple)) else [graph_or_outputs]
    from ..trace.graph import leaves

    ins = list(inputs) if inputs is not None else [v for v in leaves([], outs) if v.owner is None]
    return rewrite_graph(Graph(ins, outs), mode)
