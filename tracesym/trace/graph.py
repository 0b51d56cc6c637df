"""Variables, Apply nodes and the Graph (a networkx DiGraph over both).

The source of truth for structure is `Apply.inputs` (ordered) and `Variable.owner`, as in
Theano: building a node is two attribute writes, which keeps tracing cheap.  A `Graph`
materialises the part between some inputs and outputs as a `networkx.DiGraph` whose nodes are
Variables and Apply nodes; an edge `var -> apply` carries the input positions, an edge
`apply -> var` the output index.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import networkx as nx
import numpy as np

from ..errors import TracerBoolConversionError, UpdateError
from .source import user_source
from .types import TensorType

_ids = itertools.count()


class Variable:
    """A symbolic value of a `TensorType`: a placeholder, an Op's output, a constant or a
    shared variable.  `tag.test_value` holds its debug value when test values are on."""

    def __init__(self, type: TensorType, owner: "Apply | None" = None, index: int | None = None,
                 name: str | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.tag = SimpleNamespace()
        self.source = user_source()
        self.id = next(_ids)

    # numpy-ish metadata -------------------------------------------------------------
    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def broadcastable(self):
        return self.type.broadcastable

    @property
    def static_shape(self):
        return self.type.shape

    def get_test_value(self):
        try:
            return self.tag.test_value
        except AttributeError:
            raise AttributeError(f"{self.label()} has no test value") from None

    def has_test_value(self) -> bool:
        return hasattr(self.tag, "test_value")

    def label(self) -> str:
        if self.name:
            return self.name
        if self.owner is not None:
            return f"{self.owner.op}.out{'' if len(self.owner.outputs) == 1 else self.index}"
        return f"<{self.type.short()}>"

    def clone(self) -> "Variable":
        cp = type(self).__new__(type(self))
        cp.__dict__.update(self.__dict__)
        cp.tag = SimpleNamespace(**vars(self.tag))
        cp.owner, cp.index, cp.id = None, None, next(_ids)
        return cp

    def __bool__(self):
        raise TracerBoolConversionError(
            f"the truth value of symbolic {self.label()} ({self.type.short()}) is not known while "
            "tracing: use ts.where(cond, a, b) for an elementwise choice, ts.scan for a loop, or "
            "run the function under ts.eager()")

    def __hash__(self):
        return object.__hash__(self)

    def __repr__(self):
        return f"{self.label()}"


class Constant(Variable):
    """A fixed value baked into the graph.  Its data is a read-only ndarray; two constants with
    the same type and data are interchangeable (`signature`)."""

    def __init__(self, type: TensorType, data, name=None):
        super().__init__(type, name=name)
        data = np.array(data, dtype=type.dtype, copy=True)
        data.setflags(write=False)
        self.data = data
        self.tag.test_value = data

    def signature(self):
        return (self.type, self.data.tobytes())

    def label(self):
        if self.name:
            return self.name
        if self.data.ndim == 0:
            return str(self.data[()])  # numpy's shortest round-trip text: 2.0, 0.1, 3, True
        if self.data.size <= 4:
            return np.array2string(self.data, separator=", ", formatter={"all": str}).replace("\n", "")
        return f"Constant<{self.type.short()}>"

    def clone(self):
        return self


class SharedVariable(Variable):
    """A variable with a persistent value: an implicit input of every function that uses it,
    changed by the function's updates.  `set_value` keeps the dtype and ndim fixed.

    `default_update`, when set to an expression, is the update every function using this
    variable applies unless it is given an explicit one (how a random state advances)."""

    def __init__(self, type: TensorType, value: np.ndarray, name=None):
        super().__init__(type, name=name)
        self._value = value
        self.default_update: Variable | None = None

    def get_value(self, borrow=False):
        return self._value if borrow else self._value.copy()

    def set_value(self, value, borrow=False):
        """Replace the value.  It must have this variable's dtype (or cast to it without loss,
        as a function argument must) and ndim; `borrow=True` keeps `value` itself when it
        already is an ndarray of the right dtype, instead of a copy."""
        arr = self.type.filter(value, what=f"set_value of shared variable {self.label()}",
                               error=UpdateError)
        self._value = arr if (borrow or arr is not value) else arr.copy()

    def has_test_value(self):
        return True

    def get_test_value(self):
        return self._value

    def clone(self):
        return self


class Apply:
    """One application of an Op to ordered inputs, producing ordered outputs."""

    __slots__ = ("op", "inputs", "outputs", "tag", "__weakref__")

    def __init__(self, op, inputs, outputs):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.tag = SimpleNamespace()
        for i, o in enumerate(self.outputs):
            o.owner, o.index = self, i

    @property
    def out(self):
        return self.outputs[0]

    @property
    def source(self):
        return self.outputs[0].source if self.outputs else None

    def __repr__(self):
        return f"{self.op}({', '.join(map(repr, self.inputs))})"


def placeholder(type: TensorType, name=None, test_value=None) -> Variable:
    v = type.variable_class(type, name=name)
    if test_value is not None:
        v.tag.test_value = type.filter(test_value, what=f"test value of {name or 'placeholder'}")
    return v


def as_variable(x, dtype=None) -> Variable:
    """A Variable for `x`: itself if symbolic, else a Constant of its numpy value.  A lone
    Python float becomes a `config.floatX` constant; Python ints become int64."""
    if isinstance(x, Variable):
        if dtype is not None and x.dtype != np.dtype(dtype).name:
            raise TypeError(f"expected a {np.dtype(dtype).name} variable, got {x.type.short()}")
        return x
    if dtype is None and not isinstance(x, np.generic):
        if isinstance(x, float):
            from ..config import config

            dtype = config.floatX
        elif isinstance(x, bool):
            dtype = "bool"
        elif isinstance(x, int):
            dtype = "int64"
    arr = np.asarray(x, dtype=dtype)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"cannot make a tensor constant from {type(x).__name__} {x!r}")
    t = TensorType(arr.dtype, arr.shape)
    return t.constant_class(t, arr)


def is_leaf(v: Variable) -> bool:
    return v.owner is None


def applies_between(inputs, outputs) -> list[Apply]:
    """The Apply nodes needed to compute `outputs` from `inputs`, in a deterministic
    topological order (each node after all of its inputs' owners)."""
    stop = set(map(id, inputs))
    order, seen = [], set()
    for out in outputs:
        if id(out) in stop or out.owner is None or id(out.owner) in seen:
            continue
        stack = [(out.owner, iter(out.owner.inputs))]
        seen.add(id(out.owner))
        while stack:
            node, it = stack[-1]
            for v in it:
                a = v.owner
                if a is not None and id(v) not in stop and id(a) not in seen:
                    seen.add(id(a))
                    stack.append((a, iter(a.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def leaves(inputs, outputs) -> list[Variable]:
    """Variables the outputs depend on that nothing computes (inputs, constants, shared,
    or free placeholders), in first-use order."""
    stop = set(map(id, inputs))
    seen, out = set(), []

    def visit(v):
        if id(v) not in seen and (v.owner is None or id(v) in stop):
            seen.add(id(v))
            out.append(v)

    for o in outputs:
        visit(o)
    for node in applies_between(inputs, outputs):
        for v in node.inputs:
            visit(v)
    return out


def ancestors(outputs, blockers=()) -> list[Variable]:
    """Every variable the outputs depend on (outputs included), stopping at `blockers`."""
    stop = set(map(id, blockers))
    seen, out, stack = set(), [], list(outputs)
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        out.append(v)
        if v.owner is not None and id(v) not in stop:
            stack.extend(reversed(v.owner.inputs))
    return out


def clone_replace(outputs, replace: dict) -> list[Variable]:
    """Copies of `outputs` with the variables in `replace` swapped for their values.

    Nodes are rebuilt with `op.make_node`, so types are re-inferred from the new inputs
    (a replacement may be more or less specific than the original)."""
    memo = {id(k): v for k, v in replace.items()}
    for node in applies_between(list(replace), outputs):
        rebuild(node, memo)
    return [memo.get(id(o), o) for o in outputs]


def rebuild(node, memo: dict):
    """Where `memo` (id of a variable -> its replacement) replaces an input of `node`, a new
    node on the replaced inputs, its outputs (named and located as the old ones) recorded in
    `memo`."""
    new_inputs = [memo.get(id(v), v) for v in node.inputs]
    if all(a is b for a, b in zip(new_inputs, node.inputs)):
        return
    new = node.op.make_node(*new_inputs)
    for old_o, new_o in zip(node.outputs, new.outputs):
        new_o.name, new_o.source = old_o.name, old_o.source
        memo[id(old_o)] = new_o


def clone_graph(inputs, outputs):
    """Copies of the Apply nodes between `inputs` and `outputs` (leaves are shared, not
    copied), so a rewriter can mutate the copy without touching the user's variables.
    Returns the new outputs."""
    memo: dict[int, Variable] = {}
    for node in applies_between(inputs, outputs):
        new_outs = []
        for o in node.outputs:
            c = type(o).__new__(type(o))
            c.__dict__.update(o.__dict__)
            c.tag = SimpleNamespace(**vars(o.tag))
            c.id = next(_ids)
            new_outs.append(c)
        Apply(node.op, [memo.get(id(v), v) for v in node.inputs], new_outs)
        for o, c in zip(node.outputs, new_outs):
            memo[id(o)] = c
    return [memo.get(id(o), o) for o in outputs]


class Graph(nx.DiGraph):
    """A function's graph: a networkx DiGraph of Variables and Apply nodes, plus the ordered
    `inputs` and `outputs` it computes.  Built once from the Apply structure."""

    #: set on a loop's step before it is linked: it runs many times on rows of the same
    #: layout, which a linker may loop over itself (the C linker's `entry.render_loop`)
    looped = False

    def __init__(self, inputs=(), outputs=(), update_targets=(), **attr):
        super().__init__(**attr)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        #: for a compiled function: the shared variables that the last `len(update_targets)`
        #: outputs are the new values of (the others are the function's own outputs)
        self.update_targets = list(update_targets)
        #: (rule name, op) for every rewrite that fired on this graph, in order
        self.rewrite_log: list[tuple[str, str]] = []
        if self.outputs:
            self._build()

    @property
    def n_outputs(self) -> int:
        """How many of `outputs` are the function's results (the rest are update values)."""
        return len(self.outputs) - len(self.update_targets)

    def _build(self):
        for v in leaves(self.inputs, self.outputs):
            self.add_node(v, kind="variable")
        for node in applies_between(self.inputs, self.outputs):
            self.add_node(node, kind="apply")
            for i, v in enumerate(node.inputs):
                if v not in self:
                    self.add_node(v, kind="variable")
                if self.has_edge(v, node):
                    self.edges[v, node]["positions"].append(i)
                else:
                    self.add_edge(v, node, positions=[i])
            for j, o in enumerate(node.outputs):
                self.add_node(o, kind="variable")
                self.add_edge(node, o, index=j)

    # -- mutation (used by the rewriter, on a graph that `clone_graph` made) ----------------
    def import_var(self, var):
        """Add `var` and whatever computes it (down to variables already here)."""
        new_nodes, seen, stack = [], set(), [var]
        while stack:
            v = stack.pop()
            if v in self or id(v) in seen:
                continue
            seen.add(id(v))
            node = v.owner
            if node is None:
                self.add_node(v, kind="variable")
                continue
            new_nodes.append(node)
            seen.update(id(o) for o in node.outputs)
            stack.extend(node.inputs)
        for node in new_nodes:
            self.add_node(node, kind="apply")
            for j, o in enumerate(node.outputs):
                self.add_node(o, kind="variable")
                self.add_edge(node, o, index=j)
        for node in new_nodes:
            for i, x in enumerate(node.inputs):
                self._link(x, node, i)

    def _link(self, v, node, i):
        if v not in self:
            self.add_node(v, kind="variable")
        if self.has_edge(v, node):
            self.edges[v, node]["positions"].append(i)
        else:
            self.add_edge(v, node, positions=[i])

    def replace(self, old, new):
        """Make every client of `old` (and the graph's outputs) use `new` instead; nodes that no
        longer lead to an output are removed."""
        if old is new:
            return
        self.import_var(new)
        for node in list(self.successors(old)):
            positions = self.edges[old, node]["positions"]
            for i in positions:
                node.inputs[i] = new
                self._link(new, node, i)
            self.remove_edge(old, node)
        self.outputs = [new if o is old else o for o in self.outputs]
        self.prune(old)

    def prune(self, var):
        """Remove `var`'s owner (and, recursively, its inputs' owners) once none of its
        outputs has a client or is an output."""
        outs = set(map(id, self.outputs))
        stack = [var]
        while stack:
            v = stack.pop()
            node = v.owner
            if node is None or node not in self:
                continue
            if any(self.out_degree(o) or id(o) in outs for o in node.outputs if o in self):
                continue
            ins = list(node.inputs)
            for o in node.outputs:
                if o in self:
                    self.remove_node(o)
            self.remove_node(node)
            for x in ins:
                if x in self and not self.out_degree(x) and id(x) not in outs:
                    if x.owner is None:
                        if not any(x is i for i in self.inputs):
                            self.remove_node(x)
                    else:
                        stack.append(x)

    def toposort(self) -> list[Apply]:
        """Apply nodes in a deterministic order that respects dependencies."""
        return applies_between(self.inputs, self.outputs)

    def apply_nodes(self):
        return [n for n in self.nodes if isinstance(n, Apply)]

    def variables(self):
        return [n for n in self.nodes if isinstance(n, Variable)]

    def clients(self, var) -> list[tuple[Apply, int]]:
        return [(a, i) for a in self.successors(var) for i in self.edges[var, a]["positions"]]

    def __repr__(self):
        return (f"Graph({len(self.inputs)} inputs, {len(self.outputs)} outputs, "
                f"{len(self.apply_nodes())} apply nodes)")
