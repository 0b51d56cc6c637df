"""The C linker: the optimized graph lowered once into a flat schedule over storage slots,
elementwise nodes and reductions running generated C, products running numpy's matmul, Ops
with a hand-written C step running that (`OP_STEPS`, modules of their own: convolution and
pooling in `nnet.py`; `EMBEDDED`, kernels compiled in the function's module: softmax-like
rows and argmax in `rows.py`, row increments of an embedding gradient in `scatter.py`, GEMM
updates through numpy's CBLAS in `gemm.py`), and every other Op its numpy `perform`, all in
the same schedule.

All kernels of one function are rendered into one C module, cached on disk (`cache.py`);
the scan steps a function lowers together share one (`link_many`).  The elementwise driver
is an object compiled once per cache directory that every module links.  Identical kernels
(same program, dtypes, ndim) share code.

Storage follows the numpy linker: a slot is dropped after its last reader, destructive nodes
(`destroy_map`) write into their input's buffer.  A slot is *private* when a kernel that
always allocates its result produces it, it is not an output of the function, and every
reader is such a kernel that neither destroys nor views it: no array the caller can see ever
aliases it, so its buffer is kept and reused by the next call when the shape repeats.
Private buffers make a compiled function non-reentrant: do not call one function from two
threads at once.

The schedule runs as generated straight-line Python (`_schedule_source`): a call costs one
Python call per node and no interpretation of the schedule.

Before a kernel runs, its inputs are checked against what the C code assumes (dtype, ndim),
except where that is known at link time: constants, outputs of C kernels, and, in
`runner.validated` (what a Function calls, having checked its arguments), the graph inputs.
The contiguous loop runs only when every array operand is C-contiguous with the output's
shape, the strided loop otherwise.  `runner.fallbacks` lists the nodes that run in numpy
because the C backend has no kernel for them, with the reason; `runner.fresh` says which
outputs of `runner.validated` are always new arrays no other output or input aliases.

Where every node is an elementwise or reduction kernel or a product of two float matrices
(numpy's CBLAS, `blas.py`), `runner.validated` is one C call (`entry.py`): the kernels run in order from one
entry function over buffers planned once per layout of the arguments.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...ops.blas import MatMul
from ...ops.composite import CompositeReduce, program_of
from ...ops.elemwise import Elemwise
from ...ops.reduce import Reduce
from ...trace.context import op_error
from ..slots import Slots, checked_order
from . import blas, cache, cgen, entry, rows
from .gemm import EMBEDDED as _GEMM_EMBEDDED
from .nnet import STEPS as _NNET_STEPS
from .rows import EMBEDDED as _ROWS_EMBEDDED
from .scatter import EMBEDDED as _SCATTER_EMBEDDED

#: Op type -> make(node, compiledir): the step running a node of that Op with a hand-written
#: kernel module of its own, shared by every function (`nnet.py`), or None to run its
#: `perform`
OP_STEPS = dict(_NNET_STEPS)
#: Op type -> (parts(node), make(node, lib, ffi)): Ops whose hand-written kernels are parts
#: rendered into the function's own module (`rows.py`, `scatter.py`, `gemm.py`; parts None:
#: `perform`)
EMBEDDED = {**_ROWS_EMBEDDED, **_SCATTER_EMBEDDED, **_GEMM_EMBEDDED}


def _ident(op) -> str:
    """A C identifier naming a node's kernel after its Op."""
    s = getattr(getattr(op, "scalar_op", None), "name", None) or type(op).__name__.lower()
    return "".join(ch if ch.isalnum() else "_" for ch in s)[:24]


def _plan(nodes):
    """({node index: (kind, key)} for the nodes with a C kernel, where key holds what
    renders it; {node: why it runs in numpy} for the elementwise and reduction nodes that
    cannot)."""
    kinds, fallbacks = {}, {}
    for k, node in enumerate(nodes):
        op = node.op
        if isinstance(op, (Reduce, CompositeReduce)):
            if isinstance(op, Reduce):
                rop, prog = op, cgen.identity(node.inputs[0].dtype)
            else:
                rop, prog = op.reduce_op, op.pre_program
            scalars = _scalars(node) if prog.steps else frozenset()
            out_dt = node.outputs[0].dtype
            why = (cgen.reduce_unsupported(rop.kind, prog, out_dt) or _partial(node, prog)
                   or _keeps_innermost(node, rop)
                   or (None if prog.steps else _kept_inside(node, rop)))
            if why is None:
                kinds[k] = ("reduce", (rop.kind, prog, scalars, out_dt))
            elif rows.is_leading_sum(node):  # rows.py adds whole rows
                kinds[k] = ("op", node)
            else:
                fallbacks[node] = why
        elif isinstance(op, MatMul):
            kinds[k] = ("matmul", _blas_dtype(node))
        elif type(op) in OP_STEPS or type(op) in EMBEDDED:
            kinds[k] = ("op", node)
        elif getattr(op, "program", None) is not None or isinstance(op, Elemwise):
            prog = program_of(node)
            scalars = _scalars(node)
            why = cgen.unsupported(prog)
            if why is None:
                nd = max((v.ndim for v in node.inputs), default=0)
                kinds[k] = ("elemwise", (prog, scalars, nd))
            else:
                fallbacks[node] = why
    return kinds, fallbacks


def _blas_dtype(node) -> str | None:
    """The dtype of a product of two float matrices of the output's dtype, which the entry
    can run through CBLAS (where the wheel is installed); else None."""
    dt = node.outputs[0].dtype
    if (("matmul", dt) in entry.BLAS_KINDS and all(v.ndim == 2 and v.dtype == dt
                                                   for v in node.inputs)
            and blas.cblas() is not None):
        return dt
    return None


def _scalars(node) -> frozenset:
    """The inputs of static shape all ones: loaded once, outside the loop."""
    return frozenset(i for i, v in enumerate(node.inputs) if all(s == 1 for s in v.type.shape))


def _keeps_innermost(node, rop) -> str | None:
    """Why a reduction that keeps the innermost axis runs in numpy: the kernel walks each
    output's reduced elements with a stride (40x numpy's time for a bias gradient summed over
    the two leading axes), where numpy adds whole rows in memory order."""
    nd = max(v.ndim for v in node.inputs)
    if nd and (nd - 1) not in rop.axis and len(rop.axis):
        return "it keeps the innermost axis, which numpy reduces in memory order"
    return None


def _kept_inside(node, rop) -> str | None:
    """Why a plain reduction keeping an axis inside a reduced one runs in numpy (a bias
    gradient of NCHW, summed over (0, 2, 3)): the kernel walks each output's elements across
    the outer axis (2.7 ms for (500, 50, 8, 8) on one thread) where numpy adds them in memory
    order (0.7 ms)."""
    nd = node.inputs[0].ndim
    kept = [d for d in range(nd) if d not in rop.axis]
    if kept and rop.axis and min(rop.axis) < max(kept):
        return "it keeps an axis inside a reduced one, which numpy reduces in memory order"
    return None


def _partial(node, prog) -> str | None:
    """Why a fused reduction's program cannot be looped over its inputs' broadcast shape."""
    if not set(range(len(node.inputs))) <= prog.input_deps()[0]:
        return "its program does not read every input"
    return None


def _compile(nodes, kinds, compiledir, wholes=()):
    """One module holding every distinct kernel once, named after the first node that uses
    it: (kernel key -> name, lib, ffi).  `wholes`: per schedule that one entry runs
    (`entry.render`), added to the module, (tag, program, input slots, output slots, whether
    it runs a loop's steps: `Graph.looped`)."""
    names = {}
    ops = {key: nodes[k] for k, (kind, key) in kinds.items()
           if kind == "op" and type(nodes[k].op) in OP_STEPS}
    embedded = {key: nodes[k] for k, (kind, key) in kinds.items()
                if kind == "op" and type(nodes[k].op) in EMBEDDED}
    extra = {}  # part key -> (source, declarations) of the embedded Ops' kernels
    for key, node in list(embedded.items()):
        got = EMBEDDED[type(node.op)][0](node)
        if got is None:
            del embedded[key]
            names[key] = _perform_step(node)
        else:
            extra.update((pk, (src, decl)) for pk, src, decl in got)
    pool = ThreadPoolExecutor(2) if ops else None  # their modules build while this one does
    made = {key: pool.submit(OP_STEPS[type(node.op)], node, compiledir)
            for key, node in ops.items()}
    try:
        res = _compile_kernels(nodes, kinds, compiledir, wholes, names, list(extra.values()))
    finally:
        if pool is not None:
            pool.shutdown()
    for key, node in ops.items():  # the step itself goes in `names`
        names[key] = made[key].result() or _perform_step(node)
    for key, node in embedded.items():
        names[key] = EMBEDDED[type(node.op)][1](node, *res[1:])
    return res


def _compile_kernels(nodes, kinds, compiledir, wholes, names, extra=()):
    """`_compile` of the generated kernels and the `extra` (source, declarations) parts
    (`names` receives the kernels' names)."""
    parts, decls = [src for src, _ in extra], [decl for _, decl in extra]
    shared, by_count = [], {}  # pointer count -> the elementwise kernels taking that many
    for k, (kind, key) in kinds.items():
        if kind in ("op", "matmul") or key in names:
            continue
        name = f"k{len(names)}_{_ident(nodes[k].op)}"
        names[key] = name
        if kind == "reduce":
            src, decl = cgen.render_reduce(name, *key)
            decls.append(decl)
        else:
            src, decl = cgen.render_elemwise(name, *key)
            by_count.setdefault(_pointers(key[0]), []).append((name, decl))
        parts.append(src)
    if any(kind == "elemwise" and key[2] > 0 for kind, key in kinds.values()):
        shared.append(cgen.DRIVER)  # the loops of kernels over arrays (not 0-d ones)
    protos = "".join(decls) + "".join(d for ks in by_count.values() for _, d in ks)
    for count, ks in by_count.items():  # the kernels' prototypes first: it may be a unit
        src, decl = cgen.render_dispatch(count, [name for name, _ in ks])
        parts.append(protos + src)
        decls.append(decl)
    for tag, program, ins, outs, loop in wholes:
        src, decl = entry.render(program, names, ins, outs, tag, loop)
        parts.append(protos + src)
        decls.append(decl)
    if not parts and not shared:
        return names, None, None
    mod = cache.load(parts, "".join(decls), compiledir, header=cgen.HEADER, shared=shared)
    for tag, program, *_ in wholes:
        if entry.uses_blas(program):
            blas.bind(mod.lib, mod.ffi, entry.blas_prefix(tag))
    return names, mod.lib, mod.ffi


def kernel_steps(nodes, compiledir) -> list:
    """For each node (Apply, not necessarily in one graph), the callable that runs it from
    a list of input arrays, as a compiled function would: its C kernel where it has one,
    all compiled in one module; else its numpy `perform`.  For tests and tools."""
    kinds, _ = _plan(nodes)
    names, lib, ffi = _compile(nodes, kinds, compiledir)
    return [_step(k, node, kinds, names, lib, ffi, [False] * len(node.outputs), False)
            for k, node in enumerate(nodes)]


def _step(k, node, kinds, names, lib, ffi, private, trusted):
    """`trusted`: every input is known to have the dtype and ndim of its variable's type,
    so the kernel need not check them on each call."""
    kind, key = kinds.get(k, ("perform", None))
    if kind == "elemwise":
        return _elemwise_step(node, lib, ffi, names[key], *key, private, trusted)
    if kind == "reduce":
        return _reduce_step(node, lib, ffi, names[key], *key[1:3], private[0], trusted)
    if kind == "matmul":
        return _matmul_step(node, private[0])
    if kind == "op":
        return names[key]
    return _perform_step(node)


def link_c(graph, config):
    """The runner of `graph`: runner(input values) -> output values (see the module doc)."""
    return link_many([graph], config)[0]


def link_many(graphs, config) -> list:
    """The runners of `graphs` (as `link_c` makes each), their kernels compiled in one module:
    one wrapper to compile and one link for all (a function's scan steps, lowered at once)."""
    planned = [_Planned(g, str(j) if j else "") for j, g in enumerate(graphs)]
    nodes, kinds = [], {}
    for p in planned:
        kinds.update((len(nodes) + k, v) for k, v in p.kinds.items())
        nodes += p.nodes
    names, lib, ffi = _compile(nodes, kinds, config.compiledir,
                               [p.whole for p in planned if p.whole is not None])
    return [p.link(names, lib, ffi) for p in planned]


class _Planned:
    """A graph's schedule before its kernels are compiled: nodes in order, their kernels
    (`_plan`), storage slots, and the whole-schedule entry where one applies (`tag` names it
    among the module's)."""

    def __init__(self, graph, tag):
        self.graph = graph
        self.nodes = nodes = checked_order(graph)
        self.kinds, self.fallbacks = _plan(nodes)
        kinds = self.kinds
        self.slot_of = slot_of = Slots()
        self.in_slots = [slot_of(v) for v in graph.inputs]
        self.out_slots = out_slots = [slot_of(v) for v in graph.outputs]
        self.fresh = fresh = {}  # slot -> producing node index, for kernels that always allocate
        for k, node in enumerate(nodes):
            if k in kinds and not getattr(node.op, "destroy_map", None):
                for v in node.outputs:
                    fresh[slot_of(v)] = k
        self.whole = None
        whole = {k: kinds.get(k) or entry.entry_kind(n) for k, n in enumerate(nodes)}
        whole = {k: kind for k, kind in whole.items() if kind is not None}
        if entry.eligible(whole, len(nodes), out_slots, {slot_of(v) for k, n in enumerate(nodes)
                                                         if whole.get(k, ("",))[0] != "view"
                                                         for v in n.outputs}):
            program = [(*whole[k], self.ins_of(n), self.outs_of(n)) for k, n in enumerate(nodes)]
            outs = []
            for s in out_slots:  # an output returned again: a copy, in a slot of its own
                if s in outs:
                    copy = slot_of.extra()
                    program.append(("copy", None, [s], [copy]))
                    s = copy
                outs.append(s)
            self.whole = (tag, program, self.in_slots, outs, graph.looped)

    def ins_of(self, node):
        return [self.slot_of(v) for v in node.inputs]

    def outs_of(self, node):
        return [self.slot_of(v) for v in node.outputs]

    def link(self, names, lib, ffi):
        """The runner, once the module holding the kernels (`lib`, `ffi`) is loaded."""
        graph, nodes, kinds, fresh = self.graph, self.nodes, self.kinds, self.fresh
        slot_of, ins_of, outs_of = self.slot_of, self.ins_of, self.outs_of
        init, in_slots, out_slots = slot_of.init, self.in_slots, self.out_slots
        # outputs made by a kernel that always allocates, and returned once, alias nothing
        out_fresh = [i in fresh and out_slots.count(i) == 1 for i in out_slots]
        private = set(fresh) - set(out_slots)
        last_read: dict[int, int] = {}
        for k, node in enumerate(nodes):
            ins = ins_of(node)
            aliased = {i for lst in getattr(node.op, "destroy_map", {}).values() for i in lst}
            aliased |= {i for lst in getattr(node.op, "view_map", {}).values() for i in lst}
            for pos, i in enumerate(ins):
                if k not in kinds or pos in aliased:
                    private.discard(i)
                last_read[i] = k
            for v in node.outputs:
                last_read.setdefault(slot_of(v), k)
        keep = set(out_slots)
        frees: list[list[int]] = [[] for _ in nodes]
        for i, k in last_read.items():
            if i not in keep:
                frees[k].append(i)

        # slots whose values have their variable's dtype and ndim: constants are typed arrays,
        # C kernels and matmul allocate their outputs so
        consts = [i for i, c in enumerate(init) if c is not None]
        typed = set(consts) | {slot_of(v) for k, node in enumerate(nodes) if k in kinds
                               for v in node.outputs}
        code = compile(_schedule_source([(ins_of(n), outs_of(n), frees[k])
                                         for k, n in enumerate(nodes)], in_slots, out_slots, consts),
                       f"<tracesym schedule {graph.name or 'graph'}>", "exec")
        steps = {}  # (node index, trusted) -> step; a step both runners trust is shared

        def runner(known):
            """The schedule's `run`, its steps trusting the slots in `known` to be typed."""
            scope = {f"c{i}": init[i] for i in consts}
            scope["fail"] = lambda k, args, e: op_error(nodes[k], args, e)
            for k, node in enumerate(nodes):
                key = (k, all(i in known for i in ins_of(node)))
                if key not in steps:
                    steps[key] = _step(k, node, kinds, names, lib, ffi,
                                       [o in private for o in outs_of(node)], key[1])
                scope[f"f{k}"] = steps[key]
            exec(code, scope)
            return scope["run"]

        run = runner(typed)
        # for a caller that passes arrays of exactly the inputs' dtypes and ndims (a Function
        # checks its arguments; shared values are checked when set)
        run.validated = runner(typed | set(in_slots))
        if self.whole is not None:
            tag, program, _, entry_outs = self.whole[:4]
            pad = [None] * (len(program) - len(nodes))  # the program's copies of an output
            trusted = [steps.get((k, True)) or steps[(k, False)] for k in range(len(nodes))]
            per_node = run.validated
            copies = [j for j, f in enumerate(out_fresh) if not f]

            def slow(values):
                """The per-node runner, its outputs made fresh as the entry's always are."""
                res = per_node(values)
                for j in copies:
                    res[j] = res[j].copy()
                return res

            run.validated = entry.fast_runner(
                getattr(lib, entry.ENTRY + tag), ffi,
                lambda values: entry.make_plan(nodes + pad, program, trusted + pad, ffi, values,
                                               in_slots, entry_outs, init),
                slow, [v.ndim for v in graph.inputs], [v.ndim for v in graph.outputs],
                getattr(lib, entry.ENTRY + tag + "_loop") if self.whole[4] else None)
            out_fresh = [True] * len(out_slots)
        run.fallbacks = self.fallbacks
        run.fresh = out_fresh
        run.module = lib
        return run


def _schedule_source(program, in_slots, out_slots, consts) -> str:
    """Python source of `run(values)`: the schedule as straight-line code, one local variable
    per storage slot (`s<i>`), one line per step calling `f<k>` with the list of its input
    values, and a slot set to None after its last reader.  No loop, no storage list: the
    interpreter's own locals are the slots.  An exception in step k becomes `fail(k, args, e)`."""
    def names(slots):
        return "".join(f"s{i}, " for i in slots)

    lines = ["def run(values):"]
    if in_slots:
        lines.append(f"    {names(in_slots)}= values")
    lines += [f"    s{i} = c{i}" for i in consts]
    lines.append("    try:")
    for k, (ins, outs, dead) in enumerate(program):
        lines.append(f"        k = {k}; a = [{names(ins)}]")
        lines.append(f"        {names(outs)}= f{k}(a)")
        if dead:
            lines.append(f"        {' = '.join(f's{i}' for i in dead)} = None")
    if not program:
        lines.append("        pass")
    lines += ["    except Exception as e:", "        raise fail(k, a, e) from e",
              f"    return [{names(out_slots)}]"]
    return "\n".join(lines) + "\n"


# -- steps: callables from the input values to the output values ---------------------------------

def _perform_step(node):
    perform = node.op.perform
    dts = [np.dtype(o.type.dtype) for o in node.outputs]

    def step(args):
        res = perform(node, args)
        return [r if type(r) is np.ndarray and r.dtype == dt else np.asarray(r, dtype=dt)
                for r, dt in zip(res, dts)]

    return step


def _check(node, args, dts, nds):
    """Refuse what the kernel was not built for (a wrong dtype or ndim would make the C code
    read the wrong bytes); numpy scalars become 0-d arrays in place."""
    for pos, (a, dt, nd) in enumerate(zip(args, dts, nds)):
        if type(a) is not np.ndarray:
            a = args[pos] = np.asarray(a)
        if a.dtype != dt or a.ndim != nd:
            raise TypeError(f"input {pos} of the C kernel of {node.op} is {a.dtype}[{a.ndim}-d], "
                            f"the kernel was built for {dt}[{nd}-d]")


def _out_buffer(cached, j, shape, dt):
    b = cached[j]
    if b is None or b.shape != shape:
        b = cached[j] = np.empty(shape, dt)
    return b


def _pointers(prog) -> int:
    """How many pointers an elementwise kernel of `prog` takes: its inputs', its outputs'."""
    return len(prog.in_dtypes) + len(prog.outputs)


def _elemwise_step(node, lib, ffi, name, prog, scalars, nd, private, trusted):
    """The kernel loops over the broadcast shape of all inputs.  An output that reads only
    some inputs (in a fused program) has their broadcast shape, possibly smaller: it is
    written through stride 0 along the dims it lacks (the same value, again).  The kernel
    is called through its module's dispatcher of its pointer count (`cgen.render_dispatch`)."""
    call, kid, null = getattr(lib, cgen.dispatcher(_pointers(prog))), cgen.kernel_id(name), ffi.NULL

    dts = [np.dtype(d) for d in prog.in_dtypes]
    nds = [v.ndim for v in node.inputs]
    out_dts = [np.dtype(d) for d in prog.out_dtypes]
    arrays = [i for i in range(len(dts)) if i not in scalars]
    partial = [(j, sorted(d)) for j, d in enumerate(prog.input_deps())
               if not set(range(len(dts))) <= d]
    destroy = {o: lst[0] for o, lst in getattr(node.op, "destroy_map", {}).items()}
    cached = [None] * len(out_dts)
    metas = {}
    fb = ffi.from_buffer
    perform = _perform_step(node)

    plain = not partial and not destroy  # every output a new array of the loop's shape
    zero_d = nd == 0  # every output 0-d too
    broadcasts = {}  # (shape, strides) of every argument -> (loop shape, strided metadata)
    sized = {}  # shape of every argument -> (loop shape, each output's: some read fewer inputs)

    def step(args):
        if not trusted:
            _check(node, args, dts, nds)
        if zero_d:  # one element: the kernel loads every input before it stores, so an
            # output may be its destroyed input whatever else aliases it
            outs = [args[destroy[j]] if j in destroy and args[destroy[j]].flags.writeable
                    else np.empty((), dt) for j, dt in enumerate(out_dts)]
            status = call(kid, null, 1, *[fb(a) for a in args], *[fb(o) for o in outs])
            if status:
                _raise(status)
            return outs
        shapes = [args[i].shape for i in arrays]
        same = bool(shapes) and len(shapes[0]) == nd and shapes.count(shapes[0]) == len(shapes)
        if plain and not same:  # a layout seen before: its loop shape and metadata
            known = broadcasts.get(tuple([(a.shape, a.strides) for a in args]))
            if known is not None:
                shape, meta = known
                outs = [_out_buffer(cached, j, shape, dt) if private[j] else np.empty(shape, dt)
                        for j, dt in enumerate(out_dts)]
                status = call(kid, meta, 0, *[_ptr(fb, a) for a in args],
                              *[_ptr(fb, o) for o in outs])
                if status:
                    _raise(status)
                return outs
        if plain and same:  # the common case, in short: outputs are contiguous, of `shape`
            shape = shapes[0]
            outs = [_out_buffer(cached, j, shape, dt) if private[j] else np.empty(shape, dt)
                    for j, dt in enumerate(out_dts)]
            if 0 in shape:
                return outs
            if all(args[i].flags.c_contiguous for i in arrays):
                status = call(kid, null, math.prod(shape), *[fb(a) for a in args],
                              *[fb(o) for o in outs])
                if status:
                    _raise(status)
                return outs
            return run_strided(args, outs, shape)
        key = tuple([a.shape for a in args])
        known = sized.get(key)
        if known is None:
            shape = shapes[0] if same else _broadcast(
                *shapes, *(args[i].shape for i in scalars), (1,) * nd)
            out_shapes = [shape] * len(out_dts)
            for j, deps in partial:
                out_shapes[j] = _broadcast(*(args[i].shape for i in deps))
            known = _remember(sized, key, (shape, out_shapes))
        shape, out_shapes = known
        if partial and 0 in shape and any(0 not in s for s in out_shapes):
            # the loop runs zero times, but an output is not empty; copies keep it fresh
            return [r.copy() for r in perform(args)]
        outs = []
        for j, dt in enumerate(out_dts):
            d = destroy.get(j)
            buf = args[d] if d is not None else None
            if buf is not None and buf.flags.writeable and buf.shape == out_shapes[j] and not any(
                    a is not buf and np.may_share_memory(a, buf) for a in args):
                outs.append(buf)
            elif private[j]:
                outs.append(_out_buffer(cached, j, out_shapes[j], dt))
            else:
                outs.append(np.empty(out_shapes[j], dt))
        if 0 in shape:
            return outs
        if all(args[i].shape == shape and args[i].flags.c_contiguous for i in arrays) and all(
                o.shape == shape and o.flags.c_contiguous for o in outs):
            status = call(kid, null, math.prod(shape), *[fb(a) for a in args],
                          *[fb(o) for o in outs])
            if status:
                _raise(status)
            return outs
        return run_strided(args, outs, shape)

    def run_strided(args, outs, shape):
        layout = tuple((a.shape, a.strides) for a in args) + tuple(o.strides for o in outs)
        meta = metas.get(layout)
        if meta is None:
            meta = _remember(metas, layout, fb("int64_t[]", _meta(args, arrays, outs, shape, nd)))
        if plain and 0 not in shape:  # outputs new C-contiguous arrays: a layout of the args
            _remember(broadcasts, layout[:len(args)], (shape, meta))
        status = call(kid, meta, 0, *[_ptr(fb, a) for a in args], *[_ptr(fb, o) for o in outs])
        if status:
            _raise(status)
        return outs

    def out_shapes(args):
        shape = _broadcast(*[a.shape for a in args], (1,) * nd)
        res = [shape] * len(out_dts)
        for j, deps in partial:
            res[j] = _broadcast(*(args[i].shape for i in deps))
        return res

    def layout_meta(args, outs):
        """[1, n] where the contiguous loop runs over `args` and the C-contiguous `outs`,
        else [0, strided metadata...]."""
        shape = _broadcast(*[a.shape for a in args], (1,) * nd)
        if all(args[i].shape == shape and args[i].flags.c_contiguous for i in arrays) and all(
                o.shape == shape for o in outs):
            return [1, math.prod(shape)]
        return [0, *_meta(args, arrays, outs, shape, nd)]

    step.out_shapes, step.layout_meta = out_shapes, layout_meta
    return step


def _broadcast(*shapes) -> tuple:
    """np.broadcast_shapes in a few hundred nanoseconds (numpy's takes microseconds: a step
    computes it on every call); numpy's own raises the error of shapes that do not match."""
    nd = max(map(len, shapes), default=0)
    out = [1] * nd
    for shape in shapes:
        off = nd - len(shape)
        for i, n in enumerate(shape, off):
            if n != out[i]:
                if out[i] == 1:
                    out[i] = n
                elif n != 1:
                    return np.broadcast_shapes(*shapes)
    return tuple(out)


_FIRST = [(slice(0, 1),) * n for n in range(65)]


def _ptr(fb, a):
    """A `char *` to the first element of non-empty array `a` (`fb`: the module's
    `ffi.from_buffer`), for any layout: a one-element view is C-contiguous, and making it
    costs a third of `a.ctypes.data`."""
    return fb(a if a.flags.c_contiguous else a[_FIRST[a.ndim]])


def _raise(status):
    """The numpy error a kernel's nonzero status stands for."""
    cls, msg = cgen.STATUS[status]
    raise cls(msg)


def _remember(metas, layout, meta):
    """Keep the metadata of the last few layouts a kernel saw (a loop calls with the same)."""
    if len(metas) >= 16:
        metas.clear()
    metas[layout] = meta
    return meta


def _meta(args, arrays, outs, shape, nd):
    """The strided loop's int64 metadata: shape, then each array operand's byte strides in
    the output's dims (0 along broadcast dims)."""
    nd1 = max(nd, 1)
    meta = list(shape) if nd else [1]
    for a in [args[i] for i in arrays] + outs:
        pad = nd1 - a.ndim
        meta += [0] * pad + [0 if n == 1 else s for n, s in zip(a.shape, a.strides)]
    return np.array(meta, dtype=np.int64)


def _reduce_step(node, lib, ffi, name, prog, scalars, private, trusted):
    """The pre-reduction values have the broadcast shape of the inputs; it is permuted so the
    kept dims lead, and each input gets its broadcast byte strides in that order."""
    fn = getattr(lib, name)
    rop = node.op if isinstance(node.op, Reduce) else node.op.reduce_op
    dts = [np.dtype(d) for d in prog.in_dtypes]
    nds = [v.ndim for v in node.inputs]
    nd = max(nds)
    arrays = [i for i in range(len(dts)) if i not in scalars]
    keep = [d for d in range(nd) if d not in rop.axis]
    order = keep + list(rop.axis)
    out_dt = np.dtype(node.outputs[0].dtype)
    cached = [None]
    metas = {}
    fb = ffi.from_buffer

    prefix = keep == list(range(len(keep)))  # kept dims lead: the out shape is a slice
    one = arrays == [0] and len(dts) == 1  # one array operand: its layout is (shape, strides)
    last_layout = last_meta = None

    def meta_list(pairs, shape):
        """The int64 metadata: kept and reduced dim counts, the permuted shape, then each
        array operand's broadcast byte strides (from its (shape, strides) pair) in that order."""
        m = [len(keep), len(rop.axis)] + [shape[d] for d in order]
        for a_shape, a_strides in pairs:
            st = [0] * (nd - len(a_shape)) + [0 if n == 1 else s
                                              for n, s in zip(a_shape, a_strides)]
            m += [st[d] for d in order]
        return m

    def meta_of(layout, shape):
        """`meta_list` as a C array, remembered per layout."""
        nonlocal last_layout, last_meta
        meta = metas.get(layout)
        if meta is None:
            m = meta_list((layout,) if one else layout, shape)
            meta = _remember(metas, layout, fb("int64_t[]", np.array(m, dtype=np.int64)))
        last_layout, last_meta = layout, meta
        return meta

    def out_shapes(args):
        shape = _broadcast(*[a.shape for a in args])
        if rop.keepdims:
            return [tuple(1 if d in rop.axis else shape[d] for d in range(nd))]
        return [tuple([shape[d] for d in keep])]

    def layout_meta(args, outs):
        """The metadata for `args`, the output being a new C-contiguous array."""
        shape = _broadcast(*[a.shape for a in args])
        return meta_list([(args[i].shape, args[i].strides) for i in arrays], shape)

    def step(args):
        if not trusted:
            _check(node, args, dts, nds)
        if one:
            a = args[0]
            shape = a.shape
            layout = (shape, a.strides)
        else:
            shape = _broadcast(*[a.shape for a in args])
            layout = tuple([(args[i].shape, args[i].strides) for i in arrays])
        kept = shape[:len(keep)] if prefix else tuple([shape[d] for d in keep])
        out = _out_buffer(cached, 0, kept, out_dt) if private else np.empty(kept, out_dt)
        if out.size:
            meta = last_meta if layout == last_layout else meta_of(layout, shape)
            if one:
                status = fn(meta, _ptr(fb, a), fb(out))
            else:
                status = fn(meta, *[_ptr(fb, a) for a in args], fb(out))
            if status:
                cls, msg = cgen.STATUS[status]
                kind = {"max": "maximum", "min": "minimum"}.get(rop.kind, rop.kind)
                raise cls(msg.format(kind=kind))  # a status of the program or the reduction
        if rop.keepdims:
            return [out.reshape(tuple(1 if d in rop.axis else shape[d] for d in range(nd)))]
        return [out]

    step.out_shapes, step.layout_meta = out_shapes, layout_meta
    return step


def _matmul_step(node, private):
    out_dt = np.dtype(node.outputs[0].dtype)
    cached = [None]

    def step(args):
        a, b = args
        if private and a.dtype == b.dtype == out_dt and a.ndim == b.ndim == 2:
            out = _out_buffer(cached, 0, (a.shape[0], b.shape[1]), out_dt)
            if a.shape[1] == b.shape[0]:
                return [np.matmul(a, b, out=out)]
        return [np.asarray(np.matmul(a, b), dtype=out_dt)]

    def out_shapes(args):
        """For the entry (2-D products of `_blas_dtype`): numpy's error where they do not
        align."""
        a, b = args
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned")
        return [(a.shape[0], b.shape[1])]

    step.out_shapes = out_shapes
    step.layout_meta = lambda args, outs: entry.blas_meta(*args)
    return step
