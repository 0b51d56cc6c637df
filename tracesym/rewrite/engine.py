"""The rewrite engine: local rules indexed by Op type, whole-graph passes, ordered phases, and
an equilibrium driver.

A local rule is a small function `(graph, node) -> replacements | None` registered with
`@node_rewriter([OpType, ...], tags=(...))`; its docstring states the identity it applies.
Replacements are a list aligned with `node.outputs` (None keeps an output) or a dict
`{old_variable: new_variable}`.  The engine, not the rule, checks that a replacement keeps the
type (dtype, ndim, broadcast pattern, no conflicting static size), copies the user's source
line and name onto what the rule built, and records which rule fired where
(`graph.rewrite_log`).

A graph pass is `(graph) -> None` that mutates the graph as a whole (merge, fusion, in-place),
registered with `@graph_pass(phase, tags=...)`.

Phases run in the order of `PHASES`.  In each phase the passes registered for it run first,
then its local rules until none fires; then the graph is merged again.  Every rule and pass is
also tagged with its own name and its phase, so `Mode(exclude=["local_log1p"])` or
`Mode(exclude=["stabilize"])` turns it off.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from ..errors import TracesymError
from ..trace.graph import Constant, as_variable

#: the phases, in the order they run
PHASES = ("merge", "canonicalize", "stabilize", "specialize", "fusion", "inplace")
#: rule firings allowed per graph node in one phase; more means rules undo each other
MAX_FIRINGS_PER_NODE = 20


class RewriteError(TracesymError, RuntimeError):
    """A rewrite misbehaved: its replacement changed a variable's type, or rules kept undoing
    each other (the message names them).  Exclude the rule (by name or tag) in the mode to work
    around it: `ts.Mode(exclude=["rule_name"])`."""


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

    def __repr__(self):
        return f"<pass {self.name} [{self.phase}]>"


@dataclass
class RewriteDB:
    rules: list = field(default_factory=list)
    passes: list = field(default_factory=list)

    def names(self):
        return {r.name for r in self.rules} | {p.name for p in self.passes}

    def _check_name(self, name):
        if name in self.names():
            raise ValueError(f"a rewrite named {name!r} is already registered; pass name=... "
                             "or remove the old one first (REWRITES.remove(name))")

    def remove(self, name):
        """Unregister the rule or pass called `name` (to redefine it, e.g. in a notebook)."""
        if name not in self.names():
            raise KeyError(f"no rewrite named {name!r} is registered")
        self.rules = [r for r in self.rules if r.name != name]
        self.passes = [p for p in self.passes if p.name != name]


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
    names one.  A user's own Op gets rules the same way::

        @ts.node_rewriter([MyOp], tags=("canonicalize",))
        def my_op_of_zero(graph, node):
            "my_op(0) -> 0"
            x, = node.inputs
            if isinstance(x, ts.Constant) and not x.data.any():
                return [x]

    Return None to leave the node alone, or its replacements: a list aligned with
    `node.outputs` (None keeps an output) or a dict `{old: new}`.  Each replacement must have
    the replaced variable's dtype, ndim and broadcast pattern.
    """
    ops = (ops,) if isinstance(ops, type) else tuple(ops) if ops is not None else ()
    bad = [o for o in ops if not isinstance(o, type)]
    if bad:
        raise TypeError(f"node_rewriter watches Op classes, got {bad!r}")

    def deco(fn):
        ph = _phase_of(tags, phase)
        rname = name or fn.__name__
        rule = LocalRule(rname, fn, ops, frozenset(tags) | {ph, "fast_run", rname}, ph)
        db._check_name(rule.name)
        db.rules.append(rule)
        fn.rule = rule
        return fn

    return deco


def graph_pass(phase, tags=(), name=None, db=REWRITES):
    """Register a whole-graph pass `(graph) -> None` that runs at the start of `phase`."""
    phase = _phase_of((), phase)

    def deco(fn):
        pname = name or fn.__name__
        p = GraphPass(pname, fn, frozenset(tags) | {phase, "fast_run", pname}, phase)
        db._check_name(p.name)
        db.passes.append(p)
        fn.graph_pass = p
        return fn

    return deco


# -- applying replacements ------------------------------------------------------------------

def compatible(old, new) -> bool:
    """Whether a value of TensorType `new` may stand where one of type `old` was expected: the
    same dtype, ndim and broadcast pattern (a static size 1 stays 1), and no static size that
    contradicts the other's.  A replacement may know more sizes than the original, not fewer
    broadcastable ones."""
    return old.dtype == new.dtype and old.ndim == new.ndim and all(
        (a is None or b is None or a == b) and (a != 1 or b == 1)
        for a, b in zip(old.shape, new.shape))


def apply_replacements(graph, node, repl, rule_name):
    """Swap `node`'s outputs for a rule's replacements, after checking their types.  Returns
    the Apply nodes the replacements brought into the graph (in dependency order), or None
    when nothing changed."""
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
        if not compatible(old.type, new.type):
            raise RewriteError(f"rewrite {rule_name} replaced {old.label()} ({old.type.short()}) by "
                               f"{new.label()} ({new.type.short()}): a rewrite must keep the dtype, "
                               "ndim and broadcast pattern")
        checked.append((old, new))
    added, changed = [], False
    for old, new in checked:
        if old is new or old not in graph:
            continue
        built = _new_applies(graph, new, old, rule_name)
        for a in built:
            for v in a.outputs:
                v.source = old.source
        if new.owner is not None and not new.name and old.name and new not in graph:
            new.name = old.name
        replace(graph, old, new)
        graph.rewrite_log.append((rule_name, str(node.op)))
        added.extend(built)
        changed = True
    return added if changed else None


def replace(graph, old, new):
    """`graph.replace`, also dropping `old` when it is a leaf (a constant) nothing uses now."""
    graph.replace(old, new)
    if old.owner is None and old in graph and not graph.out_degree(old) and \
            not any(old is v for v in graph.outputs) and not any(old is v for v in graph.inputs):
        graph.remove_node(old)


def _new_applies(graph, var, old, rule_name):
    """The Apply nodes a rewrite just built (not yet in the graph) that compute `var`, each
    after the nodes computing its inputs."""
    order, seen = [], set()
    stack = [(var, False)]
    while stack:
        v, done = stack.pop()
        node = v.owner
        if done:
            order.append(node)
            continue
        if v is old:
            raise RewriteError(f"rewrite {rule_name} replaced {old.label()} by an expression "
                               "that uses it: the graph would have a cycle")
        if v in graph or isinstance(v, Constant) or node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((v, True))
        stack.extend((x, False) for x in reversed(node.inputs))
    return order


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


def _fighting(recent, why) -> RewriteError:
    names = [n for n, _ in Counter(recent).most_common(6)]
    return RewriteError(f"rewrites did not settle ({why}); still firing: {', '.join(names)}. "
                        f"They undo each other; exclude one (ts.Mode(exclude=[{names[0]!r}])) "
                        "and report the graph")


def run_local_rules(graph, rules):
    """Apply `rules` until none fires.

    Each sweep visits the nodes in dependency order; the nodes a replacement builds are
    visited at once, so a chain of rewrites down a long graph settles in one sweep; a sweep in
    which nothing fires ends the phase.  Rules that keep firing without end (two rules undoing
    each other) raise RewriteError naming them after `MAX_FIRINGS_PER_NODE` firings per node
    of the graph, which bounds the number of sweeps too."""
    index = _Index(rules)
    budget = MAX_FIRINGS_PER_NODE * (graph.number_of_nodes() + 50)
    recent: deque = deque(maxlen=64)
    total = 0
    while True:
        work = graph.toposort()
        work.reverse()
        fired = 0
        while work:
            node = work.pop()
            for rule in index.for_op(node.op):
                if node not in graph:
                    break
                repl = rule.fn(graph, node)
                if repl is None or repl is False:
                    continue
                added = apply_replacements(graph, node, repl, rule.name)
                if added is None:
                    continue
                fired += 1
                recent.append(rule.name)
                if total + fired > budget:
                    raise _fighting(recent, f"{total + fired} firings on a graph of "
                                            f"{graph.number_of_nodes()} nodes")
                work.extend(reversed(added))
        if not fired:
            return
        total += fired


def run_phases(graph, enabled: Callable[[frozenset], bool], db=REWRITES, check=None):
    """Run every phase's enabled passes and rules on `graph` (in place).  `check(graph, phase,
    fired)`, when given, runs after each phase with the `rewrite_log` entries of that phase
    (the graph verifier, in tests)."""
    merge_passes = [p for p in db.passes if p.phase == "merge" and enabled(p.tags)]
    for phase in PHASES:
        start = len(graph.rewrite_log)
        for p in db.passes:
            if p.phase == phase and enabled(p.tags):
                p.fn(graph)
        rules = [r for r in db.rules if r.phase == phase and enabled(r.tags)]
        if rules:
            run_local_rules(graph, rules)
            for p in merge_passes:
                p.fn(graph)
        if check is not None:
            check(graph, phase, graph.rewrite_log[start:])
    return graph
