"""The rewrite engine: local rules indexed by Op type, whole-graph passes, ordered phases, and
an equilibrium driver.

A local rule is a small function `(graph, node) -> replacements | None` registered with
`@node_rewriter([OpType, ...], tags=(...))`; its docstring states the identity it applies.
Replacements are a list aligned with `node.outputs` (None keeps an output) or a dict
`{old_variable: new_variable}`.  The engine, not the rule, checks that a replacement keeps the
type (dtype, ndim, no conflicting static size), copies the user's source line and name onto
what the rule built, and records which rule fired where (`graph.rewrite_log`).

A graph pass is `(graph) -> None` that mutates the graph as a whole (merge, fusion, in-place),
registered with `@graph_pass(phase, tags=...)`.

Phases run in the order of `PHASES`.  In each phase the passes registered for it run first,
then its local rules repeatedly until nothing fires; then the graph is merged again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import TracesymError
from ..trace.graph import Constant, Variable, as_variable

#: the phases, in the order they run
PHASES = ("merge", "canonicalize", "stabilize", "specialize", "fusion", "inplace")
MAX_ROUNDS = 100


class RewriteError(TracesymError, RuntimeError):
    """A rewrite misbehaved: its replacement changed a variable's type, or rules kept undoing
    each other (the message names them).  Exclude the rule's tag in the mode to work around."""


@dataclass(eq=False)
class LocalRule:
    name: str
    fn: Callable
    ops: tuple
    tags: frozenset
    phase: str

    def __repr__(self):
        return f"<rule {self.name} [{self.phase}]>"


@dataclass(eq=False)
class GraphPass:
    name: str
    fn: Callable
    tags: frozenset
    phase: str


@dataclass
class RewriteDB:
    rules: list = field(default_factory=list)
    passes: list = field(default_factory=list)

    def names(self):
        return {r.name for r in self.rules} | {p.name for p in self.passes}

    def _check_name(self, name):
        if name in self.names():
            raise ValueError(f"a rewrite named {name!r} is already registered")


#: every registered rewrite, the library's and the user's
REWRITES = RewriteDB()


def _phase_of(tags, phase):
    if phase is None:
        phase = next((t for t in tags if t in PHASES), None)
    if phase not in PHASES:
        raise ValueError(f"a rewrite needs a phase, one of {PHASES}; got tags {tuple(tags)}")
    return phase


def node_rewriter(ops, tags=("canonicalize",), phase=None, name=None, db=REWRITES):
    """Register a local rule watching nodes whose Op is an instance of one of `ops` (a type or
    a list of types; None watches every node).  `tags` select it in modes (`fast_run` is
    implied; add `fast_compile` for cheap rules); `phase` defaults to the first tag that
    names one."""
    ops = (ops,) if isinstance(ops, type) else tuple(ops) if ops is not None else ()

    def deco(fn):
        ph = _phase_of(tags, phase)
        rule = LocalRule(name or fn.__name__, fn, ops, frozenset(tags) | {ph, "fast_run"}, ph)
        db._check_name(rule.name)
        db.rules.append(rule)
        fn.rule = rule
        return fn

    return deco


def graph_pass(phase, tags=(), name=None, db=REWRITES):
    """Register a whole-graph pass `(graph) -> None` that runs at the start of `phase`."""

    def deco(fn):
        p = GraphPass(name or fn.__name__, fn, frozenset(tags) | {phase, "fast_run"}, _phase_of((), phase))
        db._check_name(p.name)
        db.passes.append(p)
        fn.graph_pass = p
        return fn

    return deco


# -- applying replacements ------------------------------------------------------------------

def _compatible(old: Variable, new: Variable) -> bool:
    ot, nt = old.type, new.type
    return ot.dtype == nt.dtype and ot.ndim == nt.ndim and all(
        a is None or b is None or a == b for a, b in zip(ot.shape, nt.shape))


def apply_replacements(graph, node, repl, rule_name):
    """Swap `node`'s outputs for a rule's replacements, after checking their types."""
    if isinstance(repl, dict):
        pairs = list(repl.items())
    else:
        repl = list(repl)
        if len(repl) != len(node.outputs):
            raise RewriteError(f"rewrite {rule_name} returned {len(repl)} replacement(s) for "
                               f"{node.op}, which has {len(node.outputs)} output(s)")
        pairs = [(o, r) for o, r in zip(node.outputs, repl) if r is not None]
    checked = []
    for old, new in pairs:
        new = as_variable(new)
        if not _compatible(old, new):
            raise RewriteError(f"rewrite {rule_name} replaced {old.label()} ({old.type.short()}) by "
                               f"{new.label()} ({new.type.short()}): a rewrite must keep the type")
        checked.append((old, new))
    for old, new in checked:
        if old is new or old not in graph:
            continue
        for v in _new_variables(graph, new):
            v.source = old.source
        if new.owner is not None and not new.name and old.name and new not in graph:
            new.name = old.name
        graph.replace(old, new)
        graph.rewrite_log.append((rule_name, str(node.op)))


def _new_variables(graph, var):
    """Variables a rewrite just built (not yet in the graph) that compute `var`."""
    out, stack, seen = [], [var], set()
    while stack:
        v = stack.pop()
        if v in graph or id(v) in seen or isinstance(v, Constant):
            continue
        seen.add(id(v))
        if v.owner is None:
            continue
        out.append(v)
        stack.extend(v.owner.inputs)
    return out


# -- the driver ----------------------------------------------------------------------------

class _Index:
    """Rules of one phase by Op class (walking the MRO), cached per class."""

    def __init__(self, rules):
        self.rules = rules
        self.cache: dict = {}

    def for_op(self, op):
        cls = type(op)
        r = self.cache.get(cls)
        if r is None:
            r = self.cache[cls] = [rule for rule in self.rules if not rule.ops or isinstance(op, rule.ops)]
        return r


def run_local_rules(graph, rules):
    """Apply `rules` until none fires.  Rules that keep firing without end raise RewriteError."""
    index = _Index(rules)
    history: list[dict] = []
    for _ in range(MAX_ROUNDS):
        fired: dict[str, int] = {}
        for node in graph.toposort():
            for rule in index.for_op(node.op):
                if node not in graph:
                    break
                repl = rule.fn(graph, node)
                if repl is None or repl is False:
                    continue
                apply_replacements(graph, node, repl, rule.name)
                fired[rule.name] = fired.get(rule.name, 0) + 1
        if not fired:
            return
        history.append(fired)
    last = sorted(history[-1], key=history[-1].get, reverse=True)
    raise RewriteError(f"rewrites did not settle after {MAX_ROUNDS} rounds; still firing: "
                       f"{', '.join(last[:6])}. Exclude one of them (ts.Mode(exclude=[...])) and "
                       "report the graph")


def run_phases(graph, enabled: Callable[[frozenset], bool], db=REWRITES):
    """Run every phase's enabled passes and rules on `graph` (in place)."""
    merge_passes = [p for p in db.passes if p.phase == "merge" and enabled(p.tags)]
    for phase in PHASES:
        for p in db.passes:
            if p.phase == phase and enabled(p.tags):
                p.fn(graph)
        rules = [r for r in db.rules if r.phase == phase and enabled(r.tags)]
        if rules:
            run_local_rules(graph, rules)
            for p in merge_passes:
                p.fn(graph)
    return graph

