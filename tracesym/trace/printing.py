"""Printing graphs as deterministic text.

`debugprint` shows the graph as an indented tree, one typed line per node; a node reached a
second time is printed as `··· id C` instead of again, so shared subexpressions are visible
and the output stays linear in the graph's size.  `pprint` writes an expression as a formula
(`exp((x * 2.0))`).  `to_dot` writes Graphviz DOT text (`to_svg` renders it when Graphviz's
`dot` program is installed).  All only read the graph, so their text is stable for golden tests.

An Op holding a graph of its own (a loop body) exposes it as `inner_inputs` and
`inner_outputs`, lists of Variables; debugprint prints that graph indented under the node and
to_dot draws it as a cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .graph import Apply, Constant, Graph, SharedVariable, Variable, applies_between, leaves

__all__ = ["debugprint", "pprint", "to_dot", "to_svg"]


def _id_name(n: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: spreadsheet-style column names."""
    s = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def _graph_of(obj, rewritten=True):
    """The Graph behind a compiled function (`ts.function` or `@ts.compile`): the rewritten
    one, or with `rewritten=False` the graph as traced; else None."""
    if isinstance(obj, Graph):
        return obj
    # Function, and CompiledFunction (its last trace)
    graph = getattr(obj, "graph" if rewritten else "unoptimized_graph", None)
    return graph if isinstance(graph, Graph) else None


def _roots(obj, rewritten=True) -> list[tuple[str, Variable]]:
    """(heading, variable) for every tree to print."""
    if isinstance(obj, Variable):
        return [("", obj)]
    if isinstance(obj, Apply):
        return [("", o) for o in obj.outputs]
    graph = _graph_of(obj, rewritten)
    if graph is not None:
        n = graph.n_outputs
        return ([("", o) for o in graph.outputs[:n]]
                + [(f"Update {t.label()} <- ", o) for t, o in zip(graph.update_targets, graph.outputs[n:])])
    if isinstance(obj, (list, tuple)):
        return [r for item in obj for r in _roots(item, rewritten)]
    raise TypeError(f"debugprint: expected a variable, a list of them, a compiled function or a "
                    f"Graph, got {type(obj).__name__}")


def inner_graph(op):
    """(inner inputs, inner outputs) of an Op that holds a graph of its own, else None."""
    ins, outs = getattr(op, "inner_inputs", None), getattr(op, "inner_outputs", None)
    if ins is None or outs is None:
        return None
    return list(ins), list(outs)


class _TreePrinter:
    def __init__(self, print_type: bool, ids: bool):
        self.print_type = print_type
        self.ids = ids
        self.assigned: dict[int, str] = {}  # id() of an Apply (or of a leaf) -> its id letters
        self.inner_index: dict[int, int] = {}  # id() of an inner input -> its position

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
        if id(v) in self.inner_index:
            parts[0] = f"*{self.inner_index[id(v)]} {parts[0]}"
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
        # an explicit stack: graphs may be deeper than Python's recursion limit.  An entry is
        # (variable or a line of text, prefix of its line, prefix of the lines below it)
        stack = [(root, heading, "")]
        while stack:
            v, first, rest = stack.pop()
            if isinstance(v, str):
                lines.append(first + v)
                continue
            text, expand = self.describe(v)
            lines.append(first + text)
            if not expand:
                continue
            inner = inner_graph(v.owner.op)
            children = list(v.owner.inputs)
            if inner is not None:  # the inner graph comes last, as one more child
                children.append("inner graph:")
                for i, x in enumerate(inner[0]):
                    self.inner_index[id(x)] = i
                for o in reversed(inner[1]):
                    stack.append((o, rest + "    ", rest + "    "))
            for i in reversed(range(len(children))):
                last = i == len(children) - 1
                stack.append((children[i], rest + (" └─ " if last else " ├─ "),
                              rest + ("    " if last else " │  ")))


def debugprint(obj, file=None, print_type=True, ids=True, rewritten=True):
    """Print the graph of `obj` (a variable, a list of them, a compiled function, or a Graph)
    as an indented tree, one line per node: the Op (or a leaf: an input by name, a constant by
    value, a shared variable by name), an id, the type (`float32[?,10]`) and the name.

    A compiled function prints every output, then each update as `Update W <- ...`.  A node
    already printed appears again only as `··· id C`; with `ids=False` every occurrence is
    printed in full.  A node whose Op has an inner graph is followed by `inner graph:` and that
    graph's outputs, indented, its inputs marked by position (`*0 x_t`).  `file=None` prints
    to stdout; `file="str"` returns the text instead; any other `file` is written to and
    returned.  `rewritten=False` prints a compiled function's graph as traced, before any
    rewrite.
    """
    printer = _TreePrinter(print_type, ids)
    lines: list[str] = []
    for heading, var in _roots(obj, rewritten):
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


# -- Graphviz ---------------------------------------------------------------------------------

#: DOT attributes of each kind of node: variables are boxes, Apply nodes ellipses
STYLES = {
    "input": 'shape=box, style=filled, fillcolor="palegreen"',
    "shared": 'shape=box, style=filled, fillcolor="lightgoldenrod1"',
    "constant": 'shape=box, style="filled,dashed", fillcolor="grey92"',
    "output": 'shape=box, style=filled, fillcolor="lightskyblue"',
    "variable": "shape=box",
    "apply": "shape=ellipse",
}
#: file extensions `to_dot(obj, path)` renders with Graphviz instead of writing DOT text
RENDERED = ("svg", "png", "pdf")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _DotWriter:
    """DOT statements for a graph, with node ids (`n0`, `n1`, ...) in a deterministic order."""

    def __init__(self, hide_unnamed: bool):
        self.hide_unnamed = hide_unnamed
        self.ids: dict[int, str] = {}
        self.roles: dict[int, str] = {}  # id() of a variable -> "output 0", "update W", ...

    def declared(self, obj) -> bool:
        return id(obj) in self.ids

    def declare(self, obj, label: str, kind: str, lines: list, indent: str) -> str:
        name = self.ids[id(obj)] = f"n{len(self.ids)}"
        lines.append(f"{indent}{name} [label={_quote(label)}, {STYLES[kind]}];")
        return name

    def hidden(self, v: Variable) -> bool:
        return self.hide_unnamed and v.owner is not None and not v.name and id(v) not in self.roles

    def variable(self, v: Variable, lines, indent, inner_inputs=()):
        if self.declared(v) or self.hidden(v):
            return
        role = self.roles.get(id(v))
        if isinstance(v, Constant):
            kind = "constant"
        elif isinstance(v, SharedVariable):
            kind = "shared"
        elif role is not None:
            kind = "output"
        elif v.owner is None:
            kind = "input"
        else:
            kind = "variable"
        head = [role] if role else []
        if any(v is x for x in inner_inputs):
            head.append(f"inner input {next(i for i, x in enumerate(inner_inputs) if x is v)}")
        if v.owner is None or v.name:
            head.append(v.label())
        label = "\n".join(head + [v.type.short()])
        self.declare(v, label, kind, lines, indent)

    def body(self, inputs, outputs, lines, indent, inner_inputs=()):
        """Declare and connect everything `outputs` need from `inputs`."""
        for v in leaves(inputs, outputs):
            self.variable(v, lines, indent, inner_inputs)
        for node in applies_between(inputs, outputs):
            if self.declared(node):
                continue
            me = self.declare(node, str(node.op), "apply", lines, indent)
            multi_in, multi_out = len(node.inputs) > 1, len(node.outputs) > 1
            for i, x in enumerate(node.inputs):
                self.variable(x, lines, indent, inner_inputs)
                attrs = [f"label={_quote(str(i))}"] if multi_in else []
                if self.hidden(x):  # an unnamed intermediate: an edge between Apply nodes
                    src = self.ids[id(x.owner)]
                    attrs = [f"label={_quote((f'{i}: ' if multi_in else '') + x.type.short())}"]
                else:
                    src = self.ids[id(x)]
                lines.append(f"{indent}{src} -> {me}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
            for j, o in enumerate(node.outputs):
                self.variable(o, lines, indent, inner_inputs)
                if not self.hidden(o):
                    lines.append(f"{indent}{me} -> {self.ids[id(o)]}" +
                                 (f" [label={_quote(str(j))}]" if multi_out else "") + ";")
            inner = inner_graph(node.op)
            if inner is not None:
                self.cluster(node, me, inner, lines, indent)

    def cluster(self, node, me, inner, lines, indent):
        ins, outs = inner
        for k, o in enumerate(outs):
            self.roles.setdefault(id(o), f"inner output {k}")
        lines.append(f"{indent}subgraph cluster_{me} {{")
        lines.append(f"{indent}  label={_quote(f'inner graph of {node.op}')}; style=dashed;")
        start = len(self.ids)
        for v in ins:  # every inner input, used or not, in order
            self.variable(v, lines, indent + "  ", ins)
        self.body(ins, outs, lines, indent + "  ", ins)
        lines.append(f"{indent}}}")
        first = next((n for n in self.ids.values() if int(n[1:]) >= start), None)
        if first is not None:
            lines.append(f"{indent}{me} -> {first} [lhead=cluster_{me}, style=dotted, arrowhead=none];")


def _dot_roots(obj, rewritten=True):
    """(inputs, [(role, output)], [(shared, update value)], graph name) of what to draw."""
    graph = _graph_of(obj, rewritten)
    if graph is not None:
        n = graph.n_outputs
        roles = [(f"output {k}", o) for k, o in enumerate(graph.outputs[:n])]
        roles += [(f"update {t.label()}", o) for t, o in zip(graph.update_targets, graph.outputs[n:])]
        name = getattr(obj, "name", None) or graph.graph.get("name") or "tracesym"
        return graph.inputs, roles, list(zip(graph.update_targets, graph.outputs[n:])), name
    roots = [v for _, v in _roots(obj, rewritten)]
    return [], [(f"output {k}", o) for k, o in enumerate(roots)], [], "tracesym"


def to_dot(obj, path=None, hide_unnamed=False, rewritten=True) -> str:
    """The graph of `obj` (a variable, a list of them, a compiled function or a Graph) as
    Graphviz DOT text, as Theano's pydotprint drew it: variables are boxes (inputs green,
    shared variables yellow, constants grey and dashed, outputs blue), Apply nodes ellipses
    labelled with their Op, edges numbered by input position where an Op has several.
    `hide_unnamed=True` leaves out unnamed intermediate variables; the edge between the two
    Apply nodes then carries the variable's type.  An Op with an inner graph has it drawn
    beside it as a dashed cluster.  `rewritten=False` draws a compiled function's graph as
    traced.

    `path`: also write the result there, rendered by Graphviz's `dot` program when the name
    ends in .svg, .png or .pdf, else as DOT text."""
    inputs, roles, updates, name = _dot_roots(obj, rewritten)
    w = _DotWriter(hide_unnamed)
    for role, v in roles:
        w.roles.setdefault(id(v), role)
    lines = [f"digraph {_quote(name)} {{", "  compound=true;",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];']
    for v in inputs:
        w.variable(v, lines, "  ")
    w.body(inputs, [v for _, v in roles], lines, "  ")
    for target, value in updates:
        w.variable(target, lines, "  ")
        lines.append(f"  {w.ids[id(value)]} -> {w.ids[id(target)]} "
                     "[style=dashed, label=\"update\", constraint=false];")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        ext = os.path.splitext(str(path))[1].lstrip(".").lower()
        if ext in RENDERED:
            data = _render(text, ext)
            if data is None:
                raise RuntimeError(f"to_dot: writing {path} needs Graphviz's `dot` program on PATH "
                                   "(e.g. `apt install graphviz`); write a .dot file instead")
            with open(path, "wb") as f:
                f.write(data)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return text


def _render(dot_text: str, fmt: str) -> bytes | None:
    """`dot -T<fmt>` of the text, or None when Graphviz is missing or fails."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        p = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 and p.stdout else None


def to_svg(obj, hide_unnamed=False) -> str | None:
    """The graph of `obj` as SVG text, or None when Graphviz's `dot` program is not on PATH or
    fails (what a notebook's `_repr_svg_` wants: never an error)."""
    data = _render(to_dot(obj, hide_unnamed=hide_unnamed), "svg")
    return data.decode("utf-8", "replace") if data is not None else None
