"""Modes: which rewrites run and which linker runs the result.

`"FAST_RUN"` (the default) runs every rewrite; `"FAST_COMPILE"` only the cheap ones tagged
`fast_compile` (merge, constant folding); `"NONE"` runs none, so the graph is exactly as traced.
`Mode(optimizer=..., linker=..., include=[tags], exclude=[tags])` adjusts a mode by tags or
rule names (every rule is tagged with its name and phase).  A function takes its mode from
`mode=` (also `@ts.compile(mode=...)`), else from `config.mode` (`TRACESYM_FLAGS=mode=...`).
"""

from __future__ import annotations

import contextlib
import gc

from ..config import config
from ..errors import ConfigError
from ..trace.function import LINKERS
from ..trace.graph import Constant, Graph, clone_graph, leaves
from .engine import run_phases
from .verify import check_after_phase, check_graph

OPTIMIZERS = ("fast_run", "fast_compile", None)


class Mode:
    """Which rewrites run (`optimizer`, then `include` / `exclude` by tag or rule name) and
    which linker runs the result (None: `config.linker`)."""

    def __init__(self, optimizer="fast_run", linker=None, include=(), exclude=()):
        if isinstance(optimizer, str):
            optimizer = optimizer.lower()
        if optimizer == "none":
            optimizer = None
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {optimizer!r}; known: 'fast_run', "
                              "'fast_compile', None")
        if linker is not None and linker not in LINKERS:
            raise ConfigError(f"unknown linker {linker!r}; known: {', '.join(map(repr, LINKERS))}")
        for what, tags in (("include", include), ("exclude", exclude)):
            if isinstance(tags, str):
                raise ConfigError(f"Mode({what}=...) takes a list of tags or rule names, got the "
                                  f"string {tags!r}; write {what}=[{tags!r}]")
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


#: run the graph verifier in every `rewrite_graph` whose `check` is not given (tests set it)
CHECK_GRAPHS = False


def rewrite_graph(graph: Graph, mode, check=None) -> Graph:
    """The rewritten copy of `graph` under `mode` (the graph itself when nothing runs).
    `check=True` runs the graph verifier on the input and after every phase; None follows
    `CHECK_GRAPHS`."""
    mode = get_mode(mode)
    if check is None:
        check = CHECK_GRAPHS
    if mode.optimizer is None and not mode.include:
        if check:
            check_graph(graph)
        return graph
    # rules build nodes, which need no debug values
    with _collector_paused(), config.change(compute_test_value="off"):
        outs = clone_graph(graph.inputs, graph.outputs)
        g = Graph(graph.inputs, outs, update_targets=graph.update_targets,
                  name=graph.graph.get("name", ""))
        if check:
            check_graph(g, "before rewriting")
        return run_phases(g, mode.enabled, check=check_after_phase if check else None)


@contextlib.contextmanager
def _collector_paused():
    """Pause Python's cyclic garbage collector while rewriting.  Rewriting allocates many
    small objects that stay alive, which triggers full collections, and each walks every live
    object (the whole traced graph): the compile time of a big graph would grow faster than
    its size.  What the rewrite drops is collected once the collector is back on."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def rewrite(graph_or_outputs, mode="FAST_RUN", inputs=None):
    """Rewrite a graph (or a variable or list of variables) for inspection; returns a Graph.
    `ts.debugprint(ts.rewrite(y))` shows what a function computing `y` would run."""
    if isinstance(graph_or_outputs, Graph):
        return rewrite_graph(graph_or_outputs, mode)
    outs = graph_or_outputs if isinstance(graph_or_outputs, (list, tuple)) else [graph_or_outputs]
    ins = list(inputs) if inputs is not None else [
        v for v in leaves([], outs) if not isinstance(v, Constant)]  # placeholders and shared
    return rewrite_graph(Graph(ins, outs), mode)
