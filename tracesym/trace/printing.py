"""Printing graphs as deterministic text.

`debugprint` shows the graph as an indented tree, one typed line per node; a node reached a
second time is printed as `··· id C` instead of again, so shared subexpressions are visible
and the output stays linear in the graph's size.  `pprint` writes an expression as a formula
(`exp((x * 2.0))`).  Both only read the graph, so their text is stable for golden tests.
"""

from __future__ import annotations

import sys

from .graph import Apply, Graph, SharedVariable, Variable

__all__ = ["debugprint", "pprint"]


def _id_name(n: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: spreadsheet-style column names."""
    s = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def _graph_of(obj):
    """The Graph behind a compiled function (`ts.function` or `@ts.compile`), else None."""
    if isinstance(obj, Graph):
        return obj
    graph = getattr(obj, "graph", None)  # Function, and CompiledFunction (its last trace)
    return graph if isinstance(graph, Graph) else None


def _roots(obj) -> list[tuple[str, Variable]]:
    """(heading, variable) for every tree to print."""
    if isinstance(obj, Variable):
        return [("", obj)]
    if isinstance(obj, Apply):
        return [("", o) for o in obj.outputs]
    graph = _graph_of(obj)
    if graph is not None:
        n = graph.n_outputs
        return ([("", o) for o in graph.outputs[:n]]
                + [(f"Update {t.label()} <- ", o) for t, o in zip(graph.update_targets, graph.outputs[n:])])
    if isinstance(obj, (list, tuple)):
        return [r for item in obj for r in _roots(item)]
    raise TypeError(f"debugprint: expected a variable, a list of them, a compiled function or a "
                    f"Graph, got {type(obj).__name__}")


class _TreePrinter:
    def __init__(self, print_type: bool, ids: bool):
        self.print_type = print_type
        self.ids = ids
        self.assigned: dict[int, str] = {}  # id() of an Apply (or of a leaf) -> its id letters

    def describe(self, v: Variable) -> tuple[str, bool]:
        """(the line's text, whether to print the inputs below it)."""
        key = v.owner if v.owner is not None else v
        multi = v.owner is not None and len(v.owner.outputs) > 1
        suffix = f".{v.index}" if multi else ""
        if self.ids:
            ident = self.assigned.get(id(key))
            if ident is not None:
                return f"··· id {ident}{suffix}", False
            ident = self.assigned[id(key)] = _id_name(len(self.assigned))
        parts = [f"{v.owner.op}{suffix}" if v.owner is not None else v.label()]
        if self.ids:
            parts.append(f"id {ident}")
        if self.print_type:
            parts.append(v.type.short())
        if v.owner is not None and v.name:
            parts.append(repr(v.name))
        if isinstance(v, SharedVariable):
            parts.append("shared")
        return " ".join(parts), v.owner is not None

    def tree(self, root: Variable, heading: str, lines: list[str]):
        # an explicit stack: graphs may be deeper than Python's recursion limit
        stack = [(root, heading, "")]
        while stack:
            v, first, rest = stack.pop()
            text, expand = self.describe(v)
            lines.append(first + text)
            if expand:
                ins = v.owner.inputs
                for i in reversed(range(len(ins))):
                    last = i == len(ins) - 1
                    stack.append((ins[i], rest + (" └─ " if last else " ├─ "),
                                  rest + ("    " if last else " │  ")))


def debugprint(obj, file=None, print_type=True, ids=True):
    """Print the graph of `obj` (a variable, a list of them, a compiled function, or a Graph)
    as an indented tree, one line per node: the Op (or a leaf: an input by name, a constant by
    value, a shared variable by name), an id, the type (`float32[?,10]`) and the name.

    A compiled function prints every output, then each update as `Update W <- ...`.  A node
    already printed appears again only as `··· id C`; with `ids=False` every occurrence is
    printed in full.  `file=None` prints to stdout; `file="str"` returns the text instead; any
    other `file` is written to and returned.
    """
    printer = _TreePrinter(print_type, ids)
    lines: list[str] = []
    for heading, var in _roots(obj):
        printer.tree(var, heading, lines)
    text = "\n".join(lines) + "\n"
    if isinstance(file, str):
        if file != "str":
            raise ValueError(f"debugprint: file must be a stream, None or 'str', got {file!r}")
        return text
    (sys.stdout if file is None else file).write(text)
    return file


def _formula(root: Variable, memo: dict) -> str:
    # post-order over an explicit stack: expressions may be deeper than the recursion limit
    stack = [root]
    while stack:
        v = stack[-1]
        if id(v) in memo:
            stack.pop()
            continue
        node = v.owner
        if node is None:
            memo[id(v)] = v.label()
            stack.pop()
            continue
        todo = [i for i in node.inputs if id(i) not in memo]
        if todo:
            stack.extend(reversed(todo))
            continue
        stack.pop()
        memo[id(v)] = _format_node(v, [memo[id(i)] for i in node.inputs])
    return memo[id(root)]


def _format_node(v: Variable, args: list[str]) -> str:
    node = v.owner
    scalar = getattr(node.op, "scalar_op", None)  # an Elemwise: its row of the scalar table
    infix = getattr(scalar, "infix", None)
    if infix is not None and len(args) == 2:
        return f"({args[0]} {infix} {args[1]})"
    if infix is not None and len(args) == 1:
        a = args[0]
        return f"{infix}({a})" if a[:1] in "-~" else f"{infix}{a}"
    name = scalar.name if scalar is not None else str(node.op)
    r = f"{name}({', '.join(args)})"
    return r + f".out{v.index}" if len(node.outputs) > 1 else r


def pprint(var, file=None) -> str:
    """`var` as a formula: infix for the arithmetic and comparison operators
    (`exp((x * 2.0))`), `op(args)` for everything else; leaves by name (a constant by value).
    Returns the string; also writes it, with a newline, to `file` when one is given.  A list
    gives one line per variable."""
    vars_ = list(var) if isinstance(var, (list, tuple)) else [var]
    for v in vars_:
        if not isinstance(v, Variable):
            raise TypeError(f"pprint: expected a symbolic variable, got {type(v).__name__}")
    memo: dict = {}
    text = "\n".join(_formula(v, memo) for v in vars_)
    if file is not None:
        file.write(text + "\n")
    return text
