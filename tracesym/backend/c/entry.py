"""One C call per function call, where every node of the schedule is a C kernel.

For such a schedule the linker renders, in the kernels' own module, an entry function that
calls every kernel in order (`render`): graph inputs and outputs are its pointer arguments,
intermediates and constants come from a table of pointers, and each kernel's metadata
(element count of a contiguous loop, or the strided loop's or reduction's int64 layout) from
a table of metadata pointers.

Matrix products of two float32 or float64 matrices run there too, through numpy's own CBLAS
(`blas.py`) where it is found: W7's chain of 1,000 products of 16x16 matrices and 1,000
elementwise kernels is then one C call.

Both tables depend only on the layout (shape and strides) of the arguments, so they are
built once per layout (`Plan`) and kept: a plan owns the intermediates' buffers, reused by
every call with that layout (private buffers, as in the module doc of `linker`).  A call
then costs the layout check, one `np.empty` per output (or the big output of the call
before, which the caller dropped) and the one C call (`fast_runner`).
Layouts a plan does not cover (zero-size arrays, non-contiguous arguments, shapes that do not
broadcast) and kernels that report a status (a numpy error) go to the per-node runner, which
runs or raises as usual.
"""

from __future__ import annotations

import math
import sys
import weakref

import numpy as np

from ...ops.blas import Gemm
from ...ops.shape import Concatenate, DimShuffle
from ...ops.subtensor import Subtensor
from . import blas

ENTRY = "ts_entry"
#: the entry and its loop call kernels and move pointers: -O1 compiles them in two thirds
#: of -O3's time (25 against 37 ms for W5's steps), and they run as fast
GLUE = '__attribute__((optimize("O1")))'
#: outputs of this many bytes or more are recycled once their caller drops them
#: (`fast_runner`): below it, malloc hands back memory already mapped
RECYCLE_BYTES = 1 << 20


def eligible(kinds, n_nodes, out_slots, made) -> bool:
    """Whether one entry can run the whole schedule: every node is an elementwise or reduction
    kernel, a product through CBLAS, a view or a concatenation (`entry_kind`), and every
    output is made by one of them other than a view (in `made`); an output returned twice
    is then copied (a "copy" node of the program).  The entry gives every node a buffer of
    its own, so the outputs are new arrays even where a node is in place (`destroy_map`):
    its input is then left as it was, which no later node reads."""
    return (n_nodes > 0 and all(kinds.get(k, ("",))[0] in ("elemwise", "reduce", "view", "concat")
                                or kinds.get(k) in BLAS_KINDS or _gemm_of(kinds.get(k))
                                for k in range(n_nodes))
            and set(out_slots) <= made)


#: (kind, key) of the matrix products the entry runs through CBLAS (`blas.py`)
BLAS_KINDS = {("matmul", "float64"), ("matmul", "float32")}
_C_TYPES = {"float64": "double", "float32": "float"}


def entry_kind(node):
    """(kind, key) of a node without a kernel that the entry runs itself, else None: a view
    ("view": `DimShuffle`, `Subtensor` of constant bounds; the plan finds its byte offset,
    the entry adds it to its input's pointer) or a concatenation of arrays of its dtype
    ("concat": row by row)."""
    op = node.op
    if isinstance(op, DimShuffle) or (type(op) is Subtensor and len(node.inputs) == 1):
        return ("view", None)
    dt = node.outputs[0].dtype
    if isinstance(op, Concatenate) and all(v.dtype == dt for v in node.inputs):
        return ("concat", dt)
    return None


def uses_blas(program) -> bool:
    """Whether an entry's program calls CBLAS (its pointers to set: `blas.bind`)."""
    return any(kind == "matmul" or _gemm_of((kind, key)) for kind, key, *_ in program)


def _gemm_of(kind) -> str | None:
    """The dtype of a `Gemm` node the entry runs through CBLAS (kind ("op", node), where
    `gemm.py` gives it a step), else None."""
    if kind is None or kind[0] != "op" or type(kind[1].op) is not Gemm:
        return None
    node = kind[1]
    dt = node.outputs[0].dtype
    return dt if ("matmul", dt) in BLAS_KINDS and all(
        v.dtype == dt for v in node.inputs) and blas.cblas() is not None else None

def _blas_operand(x):
    """(transposed, leading dimension) of a 2-D array for CBLAS, or None for a layout with
    neither stride one element (or overlapping rows)."""
    n, (s0, s1) = x.itemsize, x.strides
    if s1 == n and s0 % n == 0 and s0 // n >= max(x.shape[1], 1):
        return 0, s0 // n
    if s0 == n and s1 % n == 0 and s1 // n >= max(x.shape[0], 1):
        return 1, s1 // n
    return None


def blas_meta(a, b):
    """The metadata of `ts_matmul` for 2-D arrays a (M, K) and b (K, N), or None where CBLAS
    cannot take them (a layout `_blas_operand` refuses, a size past 32 bits)."""
    pa, pb = _blas_operand(a), _blas_operand(b)
    if pa is None or pb is None:
        return None
    m = [a.shape[0], b.shape[1], a.shape[1], pa[0], pb[0], pa[1], pb[1]]
    return m if max(m) < 2**31 else None


def render(program, names, in_slots, out_slots, tag: str = "", loop: bool = False
           ) -> tuple[str, str]:
    """(C source, cdef) of `ts_entry<tag>(m, t, i0.., o0..)`, and with `loop` of
    `ts_entry<tag>_loop`, which calls it for the steps of a loop (`render_loop`).
    `program`: per node (kind, kernel key, input slots, output slots); `names`: kernel key
    -> C name; `tag` tells apart the entries of several schedules in one module (their
    tables and BLAS pointers too).  m[k] is node k's metadata: for an elementwise node
    [1, n] (contiguous loop over n elements) or [0, strided metadata...], for the others
    what `make_plan` says; t[j] the pointer of the j-th other slot (in order of
    `table_slots`).

    The nodes are a table of numbers the entry walks (`ts_prog`: a case per kind and number of
    pointers, the kernel, the pointers' slots), with the kernels in tables of function
    pointers: the source grows by a few numbers per node, where a line of calls per node made
    W7's 2,000-node entry take seconds to compile."""
    slots = list(in_slots) + list(out_slots) + table_slots(program, in_slots, out_slots)
    pos = {s: j for j, s in enumerate(slots)}
    fns = {"elemwise": [], "reduce": []}  # distinct kernel names, by kind
    cases, prog = [], []
    for kind, key, ins, outs in program:
        n = len(ins) + len(outs)
        if kind == "op":  # a Gemm (`eligible`)
            kind = "gemm"
            key = _gemm_of(("op", key))
        case = (kind, key if kind in ("matmul", "gemm") else n)
        if case not in cases:
            cases.append(case)
        if kind in ("matmul", "gemm", "view", "concat", "copy"):
            fn = 0
        else:
            name = names[key]
            if name not in fns[kind]:
                fns[kind].append(name)
            fn = fns[kind].index(name)
        prog += [cases.index(case), fn] + [pos[s] for s in ins + outs]
    params = ", ".join(["int64_t **m", "char **t"] + [f"char *i{j}" for j in range(len(in_slots))]
                       + [f"char *o{j}" for j in range(len(out_slots))])
    gemm = uses_blas(program)
    blas_tag = blas_prefix(tag)
    src = [blas.decls(blas_tag)] if gemm else []
    src.append("typedef void (*ts_any)(void);")
    for table, kind, suffix in (("ts_fc", "elemwise", "_contig"), ("ts_fs", "elemwise", "_strided"),
                                ("ts_fr", "reduce", "")):
        if fns[kind]:
            src.append(f"static const ts_any {table}{tag}[] = "
                       f"{{{', '.join(f'(ts_any){n}{suffix}' for n in fns[kind])}}};")
    src.append(f"static const int32_t ts_prog{tag}[] = {{{', '.join(map(str, prog))}}};")
    src += [f"{GLUE} int {ENTRY}{tag}({params})", "{", f"  char *p[{max(len(slots), 1)}];"]
    src += [f"  p[{j}] = i{j};" for j in range(len(in_slots))]
    src += [f"  p[{len(in_slots) + j}] = o{j};" for j in range(len(out_slots))]
    first = len(in_slots) + len(out_slots)
    if len(slots) > first:
        src.append(f"  for (int j = {first}; j < {len(slots)}; j++) p[j] = t[j - {first}];")
    src += [f"  const int32_t *c = ts_prog{tag};", f"  for (int64_t k = 0; k < {len(program)}; k++) {{",
            "    int s = 0;", "    switch (c[0]) {"]
    for i, (kind, arg) in enumerate(cases):
        if kind == "matmul":
            call = (f"ts{blas_tag}_gemm_{arg}(m[k], 1, (void *)p[c[2]], (void *)p[c[3]], 0, "
                    "(void *)p[c[4]]);")
            n = 3
        elif kind == "gemm":  # z, alpha, x, y, beta -> beta*z + alpha*x@y in z's copy; m[k]:
            # the product's metadata, then z's bytes.  beta 0: BLAS would not read z, whose
            # NaNs numpy keeps (a status: the per-node runner runs it)
            t = _C_TYPES[arg]
            call = (f"{{ const {t} beta = *(const {t} *)p[c[6]];\n"
                    "        if (beta == 0) { s = 3; break; }\n"
                    "        memcpy(p[c[7]], p[c[2]], m[k][7]);\n"
                    f"        ts{blas_tag}_gemm_{arg}(m[k], *(const {t} *)p[c[3]], "
                    "(void *)p[c[4]], (void *)p[c[5]], beta, (void *)p[c[7]]); }")
            n = 6
        elif kind == "view":  # m[k][0]: the view's byte offset in its input
            call = "p[c[3]] = p[c[2]] + m[k][0];"
            n = 2
        elif kind == "copy":  # m[k][0] bytes
            call = "memcpy(p[c[3]], p[c[2]], m[k][0]);"
            n = 2
        elif kind == "concat":  # m[k]: rows, the output's row bytes, each input's row bytes
            n = arg
            call = ("{ char *o = p[c[" + str(1 + n) + "]];\n"
                    f"        for (int j = 0; j < {n - 1}; j++) {{\n"
                    "          const char *a = p[c[2 + j]];\n"
                    "          const int64_t b = m[k][2 + j];\n"
                    "          for (int64_t r = 0; r < m[k][0]; r++)\n"
                    "            memcpy(o + r * m[k][1], a + r * b, b);\n"
                    "          o += b;\n        } }")
        else:
            n = arg
            ptrs = ", ".join(f"p[c[{2 + j}]]" for j in range(n))
            chars = ", char *" * n
            if kind == "elemwise":
                call = (f"s = m[k][0] ? ((int (*)(int64_t{chars}))ts_fc{tag}[c[1]])(m[k][1], {ptrs})"
                        f"\n             : ((int (*)(const int64_t *{chars}))ts_fs{tag}[c[1]])"
                        f"(m[k] + 1, {ptrs});")
            else:
                call = f"s = ((int (*)(const int64_t *{chars}))ts_fr{tag}[c[1]])(m[k], {ptrs});"
        src += [f"    case {i}:  /* {kind} {arg} */", f"      {call}",
                f"      c += {2 + n};", "      break;"]
    src += ["    }", "    if (s) return s;", "  }", "  return 0;", "}"]
    cdef = f"int {ENTRY}{tag}({params});\n" + (blas.setter(blas_tag) if gemm else "")
    if loop:
        loop_src, loop_cdef = render_loop(tag, len(in_slots) + len(out_slots))
        src.append(loop_src)
        cdef += loop_cdef
    return "\n".join(src) + "\n", cdef


def render_loop(tag: str, n_args: int) -> tuple[str, str]:
    """(C source, cdef) of `ts_entry<tag>_loop(lo, hi, m, t, base, walk)`, which runs the
    entry for steps lo..hi-1 of a loop with one plan (m, t): argument i of step j is row
    r = j + walk[3i + 1] (mod walk[3i + 2] where that is not 0) of the array at base[i],
    whose rows are walk[3i] bytes apart (0: the same array every step).  It returns 0, or
    1 + the number of steps done before one whose entry reported a status."""
    args = ", ".join(f"p[{i}]" for i in range(n_args))
    src = [f"{GLUE} int64_t {ENTRY}{tag}_loop(int64_t lo, int64_t hi, int64_t **m, char **t, "
           "char **base, const int64_t *walk)", "{", f"  char *p[{max(n_args, 1)}];",
           "  for (int64_t j = lo; j < hi; j++) {",
           f"    for (int i = 0; i < {n_args}; i++) {{",
           "      const int64_t *w = walk + 3 * i;",
           "      const int64_t r = w[2] ? (j + w[1]) % w[2] : j + w[1];",
           "      p[i] = base[i] + r * w[0];", "    }",
           f"    if ({ENTRY}{tag}(m, t{', ' if n_args else ''}{args})) return j - lo + 1;",
           "  }", "  return 0;", "}"]
    return "\n".join(src) + "\n", (f"int64_t {ENTRY}{tag}_loop(int64_t lo, int64_t hi, "
                                    "int64_t **m, char **t, char **base, const int64_t *walk);\n")


def blas_prefix(tag: str) -> str:
    """The prefix of the BLAS pointers of entry `tag` (`blas.decls`)."""
    return f"_e{tag}" if tag else ""


def table_slots(program, in_slots, out_slots) -> list:
    """The slots the entry reads from its pointer table: intermediates and constants."""
    args = set(in_slots) | set(out_slots)
    seen = []
    for _, _, ins, outs in program:
        for s in ins + outs:
            if s not in args and s not in seen:
                seen.append(s)
    return seen


class Plan:
    """The entry's tables for one layout of the arguments, with the buffers they point to;
    `outs`: (shape, dtype) of each output."""

    def __init__(self, ffi, metas, table, keep, outs):
        self.m = ffi.new("int64_t *[]", metas)
        self.t = ffi.new("char *[]", max(len(table), 1))
        for j, p in enumerate(table):
            self.t[j] = p
        self.keep = keep  # the arrays and cdata the tables point into
        self.outs = outs


def make_plan(nodes, program, steps, ffi, values, in_slots, out_slots, init):
    """The `Plan` for arguments `values`, or None when the entry does not cover their layout.
    `nodes` and `steps` line up with `program` (None for its copies of an output); `steps[k]`
    is node k's (elementwise, reduction or product) step: `out_shapes(args)` gives the
    shapes of its outputs, `layout_meta(args, outs)` the metadata of its kernel.  An
    intermediate's buffer is reused by a later intermediate of the same size once its last
    reader has run (or the last reader of a view of it), so a plan holds about what the
    per-node runner's peak does."""
    if not all(a.flags.c_contiguous and a.size for a in values):
        return None
    arrays = {s: init[s] for s in range(len(init)) if init[s] is not None}
    arrays.update(zip(in_slots, values))
    returned = set(out_slots)
    root, last = {}, {}  # a view's slot -> the slot whose memory it is; slot -> last use
    for k, (kind, _, ins, outs) in enumerate(program):
        if kind == "view":
            root[outs[0]] = root.get(ins[0], ins[0])
        last.update((root.get(o, o), k) for o in outs)  # an output nobody reads dies there
        last.update((root.get(i, i), k) for i in ins)
    bufs = {}  # intermediate slot -> its bytes
    free: dict[int, list] = {}  # nbytes -> bytes of intermediates that are dead
    keep, metas = [], []
    for k, (node, (kind, _, ins, oslots)) in enumerate(zip(nodes, program)):
        args = [arrays[s] for s in ins]
        if kind == "view":
            meta = _view_meta(node, args[0], arrays, oslots[0])
        else:
            try:
                shapes = ([args[0].shape] if kind == "copy" else _concat_shapes(node, args)
                          if kind == "concat" else steps[k].out_shapes(args))
            except ValueError:  # shapes that do not broadcast: the per-node runner says where
                return None
            if any(0 in sh for sh in shapes):
                return None
            dts = [args[0].dtype] if kind == "copy" else [np.dtype(v.type.dtype)
                                                          for v in node.outputs]
            for s, sh, dt in zip(oslots, shapes, dts):
                nbytes = math.prod(sh) * dt.itemsize
                pool = free.get(nbytes)
                if s in returned:  # a sample of its layout: each call allocates its own
                    buf = np.empty(nbytes, np.uint8)
                elif pool:
                    buf = bufs[s] = pool.pop()
                else:
                    buf = bufs[s] = np.empty(nbytes, np.uint8)
                    keep.append(buf)
                arrays[s] = buf.view(dt).reshape(sh)
            outs = [arrays[s] for s in oslots]
            meta = ([args[0].nbytes] if kind == "copy" else _concat_meta(node, args, outs[0])
                    if kind == "concat" else steps[k].layout_meta(args, outs))
        if meta is None:  # a layout the kernel does not take
            return None
        meta = np.asarray(meta, np.int64)
        keep.append(meta)
        metas.append(ffi.from_buffer("int64_t[]", meta))
        for s in {root.get(s, s) for s in ins + oslots}:
            if last[s] == k and s in bufs:
                free.setdefault(bufs[s].size, []).append(bufs.pop(s))
    table = [ffi.cast("char *", arrays[s].ctypes.data)  # a constant may be any view: its
             for s in table_slots(program, in_slots, out_slots)]  # strides are in the metadata
    keep += [init[s] for s in range(len(init)) if init[s] is not None] + metas
    return Plan(ffi, metas, table, keep,
                [(arrays[s].shape, arrays[s].dtype) for s in out_slots])


def _view_meta(node, x, arrays, slot):
    """[byte offset of the view in x], the view itself in `arrays[slot]` (later nodes' metadata
    follow its strides); None where it is empty or not a view of x."""
    try:
        (view,) = node.op.perform(node, [x])
    except (ValueError, IndexError):  # the per-node runner says where
        return None
    offset = view.ctypes.data - x.ctypes.data
    if not (view.size and np.may_share_memory(view, x) and 0 <= offset < x.nbytes):
        return None
    arrays[slot] = view
    return [offset]


def _concat_shapes(node, args):
    axis = node.op.axis
    shape = list(args[0].shape)
    if any(a.shape[:axis] != args[0].shape[:axis] or a.shape[axis + 1:] != args[0].shape[axis + 1:]
           for a in args):
        raise ValueError("concatenate: shapes differ off the axis")
    shape[axis] = sum(a.shape[axis] for a in args)
    return [tuple(shape)]


def _concat_meta(node, args, out):
    """[rows, the output's row bytes, each input's row bytes]: a row is everything from the
    axis on; None where an input is not C-contiguous."""
    axis = node.op.axis
    if not all(a.flags.c_contiguous for a in args):
        return None
    row = [math.prod(a.shape[axis:]) * a.itemsize for a in args]
    return [math.prod(out.shape[:axis]), sum(row), *row]


def fast_runner(fn, ffi, plan_for, slow, in_ndims, out_ndims, loop_fn=None):
    """`run(values)` calling entry `fn` once with the plan of the arguments' layout (made by
    `plan_for(values)`, None where the entry does not apply: `slow(values)` runs instead).
    The current plan's fields sit in one list, `cur`: [layout, m, t, plan, then per output
    shape, dtype, spare, recycles] (the plan itself keeps alive the buffers m and t point
    into).  An output of `RECYCLE_BYTES` or more is kept as the spare: the next call writes
    into it again where nothing else references it any more (the caller dropped the
    result), instead of a new array whose every page the system must map and zero.
    Where every input is 0-d (a scan's scalar step) the layout is always the same: no key
    is built per call.  With `loop_fn` (the entry's `render_loop`), `run.loop` (a `Loop`)
    runs the steps of a loop in one C call."""
    n_in = len(in_ndims)
    vs = "".join(f"v{j}, " for j in range(n_in))
    key = "(" + "".join(f"v{j}.shape, v{j}.strides, " for j in range(n_in)) + ")"
    src = ["def run(values):"]
    if n_in:
        src.append(f"    {vs}= values")
    if n_in and not any(in_ndims):
        src += [f"    if cur[0] is None and not switch({key}, values):",
                "        return slow(values)"]
    else:
        src += [f"    key = {key}",
                "    if key != cur[0] and not switch(key, values):",
                "        return slow(values)"]
    for j, nd in enumerate(out_ndims):
        c = 4 + 4 * j
        if nd == 0:  # one element: nothing to map
            src.append(f"    o{j} = empty(cur[{c}], cur[{c + 1}])")
            continue
        src += [f"    o{j} = cur[{c + 2}]",  # referenced by cur, o{j} and getrefcount only
                f"    if o{j} is None or refs(o{j}) != 3 or weakrefs(o{j}):",
                f"        o{j} = empty(cur[{c}], cur[{c + 1}])",
                f"        if cur[{c + 3}]:",
                f"            cur[{c + 2}] = o{j}"]
    n_out = len(out_ndims)
    args = "".join(f"fb(v{j}), " for j in range(n_in)) + "".join(
        f"fb(o{j}), " for j in range(n_out))
    src += [f"    if fn(cur[1], cur[2], {args}):",
            "        return slow(values)",
            f"    return [{''.join(f'o{j}, ' for j in range(n_out))}]"]
    plans = {}
    cur = [None]

    def switch(key, values):
        """Make the plan of layout `key` current; False where there is none."""
        plan = plans.get(key)
        if plan is None:
            if len(plans) >= 8:
                plans.clear()
            plan = plans[key] = plan_for(values) or False
        if plan is False:
            return False
        cur[:] = [key, plan.m, plan.t, plan] + [
            x for shape, dt in plan.outs
            for x in (shape, dt, None, math.prod(shape) * dt.itemsize >= RECYCLE_BYTES)]
        return True

    scope = {"cur": cur, "switch": switch, "slow": slow, "empty": np.empty, "fn": fn,
             "fb": ffi.from_buffer, "refs": sys.getrefcount, "weakrefs": weakref.getweakrefcount}
    exec(compile("\n".join(src) + "\n", "<tracesym entry>", "exec"), scope)
    run = scope["run"]
    run.plans = plans

    def plan_of(values):
        key = tuple([x for v in values for x in (v.shape, v.strides)])
        return cur[3] if key == cur[0] or switch(key, values) else None

    if loop_fn is not None:
        run.loop = Loop(loop_fn, ffi, plan_of)
    return run


class Loop:
    """The steps of a loop run by an entry in one C call (`render_loop`): `plan(values)` is
    the entry's `Plan` for a step's inputs (None where the entry does not cover their
    layout), every step of the loop having their layout; the plan's `outs` say what each
    output array's rows must be."""

    def __init__(self, fn, ffi, plan):
        self.fn, self.ffi, self.plan = fn, ffi, plan

    def __call__(self, plan, walks, lo, hi) -> int:
        """Run steps lo..hi-1: `walks` per input then output (array, byte step between its
        rows, row offset, ring: see `render_loop`), an output array's rows C-contiguous, of
        the plan's shape and dtype.  The number of steps done: fewer where an entry reports
        a status (the per-node runner then runs that step, and raises what it meets)."""
        ffi = self.ffi
        base = ffi.new("char *[]", [ffi.cast("char *", a.ctypes.data) for a, *_ in walks])
        walk = np.array([w[1:] for w in walks], np.int64)
        failed = self.fn(lo, hi, plan.m, plan.t, base, ffi.from_buffer("int64_t[]", walk))
        return hi - lo if failed == 0 else failed - 1

