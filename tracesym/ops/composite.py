"""Scalar programs: the straight-line scalar body of an elementwise node.

A `Program` is what every backend turns into one loop: its inputs (by dtype), a list of
`Step`s, each one row of the scalar table applied to earlier values, and which values are the
outputs.  A plain `Elemwise` node is a one-step program (`program_of`); a fused node holds a
longer one.  The numpy `evaluate` is the reference the compiled loops are tested against.

A value reference (`Ref`) is `("in", i)` (input i), `("step", j)` (the result of step j), or
`("const", value, dtype)` (a scalar constant folded into the body).

`Composite` is the Op of a fused node: it holds a `Program`, evaluates it with numpy, and
differentiates it by expanding the steps back into `Elemwise` ops, so the gradient comes from
the same rows of the scalar table as the unfused graph's.  `InplaceComposite` writes outputs
into input buffers (chosen by the `inplace` rewrite).  `CompositeReduce` reduces the one
output of a program (`sum(x * y)` as one node).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, as_variable
from ..trace.types import TensorType, broadcast_shapes
from . import scalar as S
from .base import Op
from .elemwise import Elemwise, add, elemwise_op
from .inplace import check_can_hold


@dataclass(frozen=True)
class Step:
    op: str  # a name in scalar.TABLE
    args: tuple  # Refs
    dtype: str  # the result's dtype: numpy's for the arguments' dtypes


@dataclass(frozen=True)
class Program:
    in_dtypes: tuple
    steps: tuple
    outputs: tuple  # Refs, one per output

    def dtype_of(self, ref) -> str:
        kind = ref[0]
        if kind == "in":
            return self.in_dtypes[ref[1]]
        if kind == "step":
            return self.steps[ref[1]].dtype
        return ref[2]

    @property
    def out_dtypes(self) -> tuple:
        return tuple(self.dtype_of(r) for r in self.outputs)

    def evaluate(self, inputs) -> list:
        """The outputs for numpy `inputs` (broadcast against each other), step by step with
        each row's numpy implementation, so the result is what the unfused graph gives.  A
        ufunc row writes into the array of an earlier step that nothing reads afterwards
        when it has the result's dtype and shape (fewer allocations, the same values)."""
        vals = []
        last = self._last_reads()

        def get(ref):
            if ref[0] == "in":
                return inputs[ref[1]]
            if ref[0] == "step":
                return vals[ref[1]]
            return np.asarray(ref[1], dtype=ref[2])

        with np.errstate(all="ignore"):
            for j, st in enumerate(self.steps):
                args = [get(a) for a in st.args]
                impl = S.TABLE[st.op].impl
                out = None
                if isinstance(impl, np.ufunc) and impl.nout == 1:
                    dead = [v for a, v in zip(st.args, args) if a[0] == "step" and last[a[1]] == j
                            and type(v) is np.ndarray and v.dtype == st.dtype
                            and not any(v is x for x in inputs)]
                    if dead and dead[0].shape == np.broadcast_shapes(*map(np.shape, args)):
                        out = dead[0]
                r = impl(*args) if out is None else impl(*args, out=out)
                vals.append(np.asarray(r, dtype=st.dtype))
            return [get(r) for r in self.outputs]

    def _last_reads(self) -> list:
        """For each step, the last step that reads it (len(steps) for an output)."""
        last = list(range(len(self.steps)))
        for j, st in enumerate(self.steps):
            for a in st.args:
                if a[0] == "step":
                    last[a[1]] = j
        for r in self.outputs:
            if r[0] == "step":
                last[r[1]] = len(self.steps)
        return last

    def input_deps(self) -> tuple:
        """For each output, the positions of the inputs it depends on (a frozenset): its
        shape is their broadcast shape."""
        deps = []

        def of(ref):
            if ref[0] == "in":
                return frozenset((ref[1],))
            return deps[ref[1]] if ref[0] == "step" else frozenset()

        for st in self.steps:
            deps.append(frozenset().union(*map(of, st.args)))
        return tuple(of(r) for r in self.outputs)

    def check(self):
        """Raise TypeError/ValueError naming the first malformed part: an unknown scalar op,
        a wrong arity, a reference to a missing input or to a later step, or a step whose
        dtype is not what numpy gives for its arguments' dtypes."""
        for i, d in enumerate(self.in_dtypes):
            if np.dtype(d).name != d:
                raise TypeError(f"program input {i}: {d!r} is not a dtype name (use {np.dtype(d).name!r})")
        for j, st in enumerate(self.steps):
            so = S.TABLE.get(st.op)
            if so is None:
                raise ValueError(f"program step {j}: {st.op!r} is not a row of the scalar table")
            if len(st.args) != so.nin:
                raise ValueError(f"program step {j}: {st.op} takes {so.nin} arguments, got {len(st.args)}")
            dts = [self._checked_dtype(a, j, f"step {j} ({st.op})") for a in st.args]
            want = so.out_dtype(dts)
            if want != st.dtype:
                raise TypeError(f"program step {j}: {st.op} of {', '.join(dts)} gives {want}, "
                                f"but the step says {st.dtype}")
        if not self.outputs:
            raise ValueError("a program needs at least one output")
        for k, r in enumerate(self.outputs):
            self._checked_dtype(r, len(self.steps), f"output {k}")

    def _checked_dtype(self, ref, n_steps, where):
        kind = ref[0] if isinstance(ref, tuple) and ref else None
        if kind == "in" and len(ref) == 2 and 0 <= ref[1] < len(self.in_dtypes):
            return self.in_dtypes[ref[1]]
        if kind == "step" and len(ref) == 2 and 0 <= ref[1] < n_steps:
            return self.steps[ref[1]].dtype
        if kind == "const" and len(ref) == 3:
            return np.dtype(ref[2]).name
        raise ValueError(f"program {where}: {ref!r} is not a reference to an input (of "
                         f"{len(self.in_dtypes)}), an earlier step or a ('const', value, dtype)")

    def render(self, limit=240) -> str:
        """The outputs as formulas over inputs `i0, i1, ...`, comma-separated (what
        `Composite` prints).  A formula longer than `limit` characters is cut with `…`."""
        texts = []

        def text(ref):
            if ref[0] == "in":
                return f"i{ref[1]}", _ATOM
            if ref[0] == "step":
                return texts[ref[1]]
            t = str(np.asarray(ref[1], dtype=ref[2])[()])
            return t, (_UNARY if t.startswith("-") else _ATOM)

        for st in self.steps:
            so = S.TABLE[st.op]
            args = [text(a) for a in st.args]
            if so.infix and so.nin == 2:
                p = _PREC[so.infix]
                (lt, lp), (rt, rp) = args
                left_assoc = p not in (_PREC["**"], _PREC["<"])  # ** groups right; a < b < c chains
                lt = lt if lp > p or (lp == p and left_assoc) else f"({lt})"
                rt = rt if rp > p or (rp == p and p == _PREC["**"]) else f"({rt})"
                t = f"{lt} {so.infix} {rt}"
            elif so.infix:
                (at, ap), = args
                t, p = f"{so.infix}{at if ap > _UNARY else f'({at})'}", _UNARY
            else:
                t, p = f"{st.op}({', '.join(a for a, _ in args)})", _ATOM
            texts.append((t if len(t) <= limit else t[:limit] + "…", p))
        return ", ".join(text(r)[0] for r in self.outputs)


# Python's operator precedence, so a rendered formula reads as the expression it computes
_PREC = {"|": 2, "^": 3, "&": 4, "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6, "**": 8}
_PREC.update(dict.fromkeys(("<", "<=", ">", ">=", "==", "!="), 1))
_UNARY, _ATOM = 7, 9


def program_of(node) -> Program:
    """The scalar program of an elementwise Apply node: its Op's own `program` where it has
    one (a fused node), else the one step of a plain `Elemwise`."""
    prog = getattr(node.op, "program", None)
    if prog is not None:
        return prog
    if not isinstance(node.op, Elemwise):
        raise TypeError(f"{node.op} is not an elementwise Op")
    step = Step(node.op.scalar_op.name, tuple(("in", i) for i in range(len(node.inputs))),
                node.outputs[0].dtype)
    return Program(tuple(v.dtype for v in node.inputs), (step,), (("step", 0),))


class Composite(Op):
    """Elementwise ops fused into one node: `program` maps the inputs (broadcast against each
    other, as numpy does) to the outputs, one value per element.  The fusion rewrite builds
    it; each output's type is what the unfused Elemwise chain gives."""

    __props__ = ("program",)

    def __init__(self, program: Program):
        if not isinstance(program, Program):
            raise TypeError(f"Composite takes a Program, got {type(program).__name__}")
        program.check()
        self.program = program

    def __str__(self):
        return f"Composite{{{self.program.render()}}}"

    __repr__ = __str__

    def make_node(self, *inputs):
        prog = self.program
        if len(inputs) != len(prog.in_dtypes):
            raise TypeError(f"{self} takes {len(prog.in_dtypes)} inputs, got {len(inputs)}")
        inputs = [as_variable(x) for x in inputs]
        for i, (v, dt) in enumerate(zip(inputs, prog.in_dtypes)):
            if v.dtype != dt:
                raise TypeError(f"{self}: input {i} must have dtype {dt}, got {v.label()} "
                                f"({v.type.short()}); cast it first")
        shapes = []

        def shape(ref):
            if ref[0] == "in":
                return inputs[ref[1]].type.shape
            return shapes[ref[1]] if ref[0] == "step" else ()

        for j, st in enumerate(prog.steps):
            try:
                shapes.append(broadcast_shapes(*map(shape, st.args)))
            except ShapeError as e:
                raise ShapeError(f"{e} in step {j} ({st.op}) of {self}") from None
        outs = [TensorType(prog.dtype_of(r), shape(r)).make_variable() for r in prog.outputs]
        return Apply(self, inputs, outs)

    def perform(self, node, inputs):
        outs = self.program.evaluate(inputs)
        result, seen = [], set(map(id, inputs))
        for o in outs:  # an output that is an input, or another output, gets its own buffer
            result.append(np.array(o, copy=True) if id(o) in seen else o)
            seen.add(id(o))
        return result

    def L_op(self, inputs, outputs, output_grads):
        """Expand the program into Elemwise ops on `inputs` and push the gradients back
        through them step by step with `Elemwise.L_op` (the scalar table's rows).  A step
        that is an output is this node's output itself, so no forward value is recomputed."""
        prog = self.program
        own = {}
        for k, r in enumerate(prog.outputs):
            if r[0] == "step":
                own.setdefault(r[1], outputs[k])
        vals = []

        def get(ref):
            if ref[0] == "in":
                return inputs[ref[1]]
            if ref[0] == "step":
                return vals[ref[1]]
            return as_variable(np.asarray(ref[1], dtype=ref[2]))

        needed = _needs_grad(prog, output_grads)
        for j, st in enumerate(prog.steps):
            v = own.get(j)
            if v is None and needed[j]:
                v = elemwise_op(st.op)(*map(get, st.args))
            vals.append(v)
        terms: dict = {}
        for r, g in zip(prog.outputs, output_grads):
            if g is not None and r[0] != "const":
                terms.setdefault(r, []).append(g)
        for j in reversed(range(len(prog.steps))):
            gs = terms.pop(("step", j), None)
            if not gs:
                continue
            st = prog.steps[j]
            args = list(map(get, st.args))
            grads = elemwise_op(st.op).L_op(args, [vals[j]], [_total(gs)])
            for a, g in zip(st.args, grads):
                if g is not None and a[0] != "const":
                    terms.setdefault(a, []).append(g)
        return [_total(terms[("in", i)]) if ("in", i) in terms else None
                for i in range(len(inputs))]

    def infer_shape(self, node, input_shapes):
        from .shape import broadcast_shape_of

        out = []
        for deps in self.program.input_deps():
            ids = sorted(deps)
            out.append(broadcast_shape_of([input_shapes[i] for i in ids], [node.inputs[i] for i in ids])
                       if ids else ())
        return out


def _needs_grad(prog, output_grads) -> list:
    """Which steps the backward pass visits (an output with a gradient depends on them)."""
    needed = [False] * len(prog.steps)
    for r, g in zip(prog.outputs, output_grads):
        if g is not None and r[0] == "step":
            needed[r[1]] = True
    for j in reversed(range(len(prog.steps))):
        if needed[j]:
            for a in prog.steps[j].args:
                if a[0] == "step":
                    needed[a[1]] = True
    return needed


def _total(terms):
    total = terms[0]
    for t in terms[1:]:
        total = add(total, t)
    return total


class InplaceComposite(Composite):
    """`Composite` whose outputs are written into input buffers: `inplace_pattern` maps an
    output to the input it overwrites (kept as sorted pairs so the Op hashes).  Each
    overwritten input has its output's dtype and shape and is one of the inputs that output
    reads.  The program is evaluated first, then copied into the buffers, so an input is
    never read after it is overwritten.  A read-only buffer (a constant's data, a broadcast
    view) is left alone: the output is then a new array, as for `Composite`."""

    __props__ = ("program", "inplace_pattern")

    def __init__(self, program, inplace_pattern):
        super().__init__(program)
        pairs = inplace_pattern.items() if isinstance(inplace_pattern, dict) else inplace_pattern
        self.inplace_pattern = tuple(sorted((int(o), int(i)) for o, i in pairs))
        outs = [o for o, _ in self.inplace_pattern]
        ins = [i for _, i in self.inplace_pattern]
        if len(set(outs)) != len(outs) or len(set(ins)) != len(ins) or not outs:
            raise ValueError(f"inplace_pattern must map distinct outputs to distinct inputs, got "
                             f"{dict(self.inplace_pattern)}")
        deps = program.input_deps()
        for o, i in self.inplace_pattern:
            if not 0 <= o < len(deps) or i not in deps[o]:
                raise ValueError(f"inplace_pattern {o}: {i}: output {o} does not exist or does not "
                                 f"read input {i}, so input {i} cannot hold it")
        self.destroy_map = {o: [i] for o, i in self.inplace_pattern}

    def __str__(self):
        where = ",".join(f"{o}<-i{i}" for o, i in self.inplace_pattern)
        return f"Composite{{{self.program.render()}; inplace:{where}}}"

    __repr__ = __str__

    def make_node(self, *inputs):
        node = super().make_node(*inputs)
        for o, i in self.inplace_pattern:
            check_can_hold(self, node, o, i)
        return node

    def perform(self, node, inputs):
        outs = list(super().perform(node, inputs))
        for o, i in self.inplace_pattern:
            buf = inputs[i]
            if type(buf) is not np.ndarray or not buf.flags.writeable:
                continue
            if buf.shape != np.shape(outs[o]):
                raise ShapeError(f"{self}: output {o} has shape {np.shape(outs[o])}, input {i} "
                                 f"{buf.shape}: it cannot hold the output")
            np.copyto(buf, outs[o], casting="unsafe")
            outs[o] = buf
        return outs


class CompositeReduce(Op):
    """`reduce_op(program(inputs))` as one node: a reduction (a `Reduce` Op: sum, prod, max,
    min, all, any over its axes) of the one output of a scalar program, so the elementwise
    values are consumed as they are made instead of first filling an array.  The program is
    `pre_program`, not `program`: the node is not elementwise (`program_of` refuses it).
    Types, gradient and shape are those of the two Ops it stands for."""

    __props__ = ("pre_program", "reduce_op")

    def __init__(self, pre_program: Program, reduce_op):
        from .reduce import Reduce

        if not isinstance(reduce_op, Reduce):
            raise TypeError(f"CompositeReduce takes a Reduce Op, got {reduce_op}")
        self.elemwise = Composite(pre_program)
        if len(pre_program.outputs) != 1:
            raise ValueError(f"the program of a CompositeReduce has one output, got "
                             f"{len(pre_program.outputs)}: {pre_program.render()}")
        self.pre_program, self.reduce_op = pre_program, reduce_op

    def __str__(self):
        return f"{self.reduce_op}{{{self.pre_program.render()}}}"

    __repr__ = __str__

    def make_node(self, *inputs):
        node = self.elemwise.make_node(*inputs)
        out = self.reduce_op.make_node(node.outputs[0]).outputs[0]
        return Apply(self, node.inputs, [out.type.make_variable()])

    def perform(self, node, inputs):
        from .reduce import _NP

        (v,) = self.pre_program.evaluate(inputs)
        r = self.reduce_op
        kw = {"dtype": r.dtype} if r.dtype is not None else {}
        out = np.asarray(_NP[r.kind](v, axis=r.axis, keepdims=r.keepdims, **kw),
                         dtype=node.outputs[0].dtype)
        if any(np.shares_memory(out, x) for x in inputs if isinstance(x, np.ndarray)):
            out = out.copy()  # an empty reduction of an input returns the input itself
        return (out,)

    def L_op(self, inputs, outputs, output_grads):
        """Through the reduction to the program's output, then through the program."""
        inner = self.elemwise(*inputs)
        (g,) = self.reduce_op.L_op([inner], outputs, output_grads)
        if g is None:
            return [None] * len(inputs)
        return self.elemwise.L_op(inputs, [inner], [g])

    def infer_shape(self, node, input_shapes):
        (shp,) = self.elemwise.infer_shape(node, input_shapes)
        return self.reduce_op.infer_shape(node, [shp])


__all__ = ["Step", "Program", "program_of", "Composite", "InplaceComposite", "CompositeReduce"]
