"""The `Scan` Op: one node holding a whole step function (its inner graph) and running it
`n_steps` times.

Layout, shared by the inner graph and the node's outer inputs and outputs:

  inner inputs   [sequence slices] [one per tap of each recurrent output] [non-sequences]
  inner outputs  [new value of each recurrent output] [per-step outputs (not fed back)]
  outer inputs   n_steps, [sequences], [initial rows of each recurrent output], [non-sequences]
  outer outputs  [buffer of each recurrent output] [stacked per-step outputs]

A sequence is read at row t on step t (`ts.scan` slices sequences with taps beforehand, one
outer sequence per tap).  Recurrent output r with taps (negative ints) has `lag = -min(taps)`
initial rows; its buffer holds `lag + n_steps` rows, row `lag + t` written by step t, and tap
k of step t reads row `lag + t + k`.  With `keep_last[r]` the Op keeps a ring of `lag + 1`
rows and returns only the final row (shape `(1, ...)`): O(1) memory in the number of steps.

A Scan of a compiled function (`compiled_scan`) runs its step specialised to the shapes of
each call's values: the step as traced, on placeholders of those static shapes, rewritten with
the function's mode and lowered once per signature (at most `MAX_SPECIALIZED`).  Static
shapes prove what the symbolic ones cannot across the loop's boundary (a gradient's sums to a
shape vanish, elementwise work fuses into one kernel); a step that does not type on them, or
a loop over ever new shapes, runs the step compiled for any shapes.

The loop runs in Python (`_loop_source`: a call of the step's runner per step), or, where the
linker made the step one C call that can loop (the C linker's entry, `Graph.looped`), in one
C call over all steps (`_c_steps`): about 20 ns a step instead of a microsecond.
"""

from __future__ import annotations

from concurrent import futures

import numpy as np

from ..errors import ScanError, TracesymError
from ..ops.base import Op
from ..trace.graph import Apply, Constant, Graph, applies_between, as_variable
from ..trace.types import TensorType


def structure_key(inner_inputs, inner_outputs) -> tuple:
    """A hashable description of an inner graph up to renaming of its variables, so two scans
    tracing the same step merge."""
    ref = {id(v): ("in", i) for i, v in enumerate(inner_inputs)}
    key = [tuple(v.type for v in inner_inputs)]
    for k, node in enumerate(applies_between(inner_inputs, inner_outputs)):
        args = []
        for v in node.inputs:
            r = ref.get(id(v))
            if r is None:
                r = ("c", v.signature()) if isinstance(v, Constant) else ("free", id(v))
            args.append(r)
        key.append((node.op, tuple(args)))
        for j, o in enumerate(node.outputs):
            ref[id(o)] = ("n", k, j)
    key.append(tuple(ref.get(id(o)) or ("c", o.signature()) for o in inner_outputs))
    return tuple(key)


def row_type(t: TensorType) -> TensorType:
    """The type of one row of a value of type `t`."""
    return TensorType(t.dtype, t.shape[1:])


def _loop_source(seq_ndims, taps, lags, kinds, tap_ndims, n_nit, n_non_seqs) -> str:
    """Python source of `loop(run, lo, n, seqs, nons, bufs, state, shapes, error, ys)`, which
    runs steps lo..n-1 and returns (the final value of each recurrent output, the stacked
    per-step outputs).  Locals: `s<k>` sequences, `c<j>` non-sequences, `b<r>` buffers or
    rings, `p<r>` the latest value of a recurrent output, `w<r>` its row shape, `y<k>`/`u<k>`
    a per-step output's stack and row shape (`ys`, or allocated on the first step, when the
    shape is known).  A row is read as `x[t, ...]` where `x[t]` would be a numpy scalar
    rather than an array."""
    def names(prefix, count):
        return "".join(f"{prefix}{i}, " for i in range(count))

    def row(ndim):
        return "" if ndim else ", ..."

    n_rec = len(taps)
    lines = ["def loop(run, lo, n, seqs, nons, bufs, state, shapes, error, ys):"]
    for prefix, count, src in (("s", len(seq_ndims), "seqs"), ("c", n_non_seqs, "nons"),
                               ("b", n_rec, "bufs"), ("p", n_rec, "state"),
                               ("w", n_rec, "shapes")):
        if count:
            lines.append(f"    {names(prefix, count)}= {src}")
    if n_nit:
        lines.append(f"    {names('y', n_nit)}= ys")
        lines.append(f"    {names('u', n_nit)}= "
                     + "".join(f"None if y{k} is None else y{k}.shape[1:], " for k in range(n_nit)))
    args = [f"s{k}[t{row(nd)}]" for k, nd in enumerate(seq_ndims)]
    for r, (tp, lag, kind, nd) in enumerate(zip(taps, lags, kinds, tap_ndims)):
        for k in tp:
            if kind in ("last", "carry"):
                args.append(f"p{r}")
            elif kind == "ring":
                args.append(f"b{r}[(t + {lag + k}) % {lag + 1}]")
            else:
                args.append(f"b{r}[t + {lag + k}{row(nd)}]")
    args += [f"c{j}" for j in range(n_non_seqs)]
    lines += ["    for t in range(lo, n):", f"        o = run([{', '.join(args)}])"]
    for r, (lag, kind) in enumerate(zip(lags, kinds)):
        lines += [f"        p{r} = o[{r}]",
                  f"        if p{r}.shape != w{r}:", f"            error({r}, p{r}.shape, w{r}, t)"]
        if kind == "ring":
            lines.append(f"        b{r}[(t + {lag}) % {lag + 1}] = p{r}")
        elif kind != "last":
            lines.append(f"        b{r}[t + {lag}] = p{r}")
    for k in range(n_nit):
        lines += [f"        v = o[{n_rec + k}]",
                  f"        if v.shape != u{k}:",
                  f"            if t:", f"                error({n_rec + k}, v.shape, u{k}, t)",
                  f"            u{k} = v.shape", f"            y{k} = empty((n,) + u{k}, v.dtype)",
                  f"        y{k}[t] = v"]
    lines.append(f"    return [{names('p', n_rec)}], [{names('y', n_nit)}]")
    return "\n".join(lines) + "\n"


#: the most shape signatures one Scan specialises its step to; values of other shapes run the
#: step compiled for any shapes
MAX_SPECIALIZED = 4


def _non_key(v):
    """A non-sequence's part of the shapes a step is specialised to: (shape, None), or (shape,
    values) for a short integer vector (a shape the step reads, hoisted out of the loop),
    whose values the specialised step then holds as constants."""
    shape = np.shape(v)
    if type(v) is np.ndarray and v.dtype.kind in "iu" and v.ndim == 1 and v.size <= 8:
        return shape, tuple(v.tolist())
    return shape, None


def lower_together(ops, graphs, cfg) -> list:
    """Each scan op's step graph lowered under config `cfg` (`_Inner`), the graphs of a
    linker that links several at once (`many`: its kernels in one module) together."""
    from ..trace.function import LINKERS

    by_linker: dict = {}
    for j, op in enumerate(ops):
        by_linker.setdefault(op.linker or cfg.linker, []).append(j)
    inners = [None] * len(ops)
    for g in graphs:
        g.looped = True
    for name, js in by_linker.items():
        link = LINKERS[name]
        many = getattr(link, "many", None)
        runs = many([graphs[j] for j in js], cfg) if many else [link(graphs[j], cfg) for j in js]
        for j, run in zip(js, runs):
            inners[j] = ops[j]._inner(graphs[j], run)
    return inners


class _Inner:
    """A lowered step: its `graph`, `run`, `trusted` (the runner trusting its inputs' dtypes
    and ndims, or None), `products` (indices of the non-sequences a matrix product reads
    directly)."""

    __slots__ = ("graph", "run", "trusted", "products")

    def __init__(self, graph, run, trusted, products):
        self.graph, self.run, self.trusted, self.products = graph, run, trusted, products


def _read_by_products(graph, first_non) -> tuple:
    """Indices (among the non-sequences, inputs `first_non` on) of the inputs of `graph` that
    a matrix product reads directly."""
    from ..ops.blas import MatMul, _BlasUpdate

    pos = {id(p): j for j, p in enumerate(graph.inputs[first_non:])}
    return tuple(sorted({pos[id(v)] for nd in graph.toposort()
                         if isinstance(nd.op, (MatMul, _BlasUpdate))
                         for v in nd.inputs if id(v) in pos}))


class Scan(Op):
    """A loop over `n_steps` running the step function held as `inner_inputs` ->
    `inner_outputs`.  Built by `ts.scan`; see the module docstring for the layout."""

    __props__ = ("n_seqs", "taps", "n_nit", "keep_last", "truncate_gradient", "name", "key")

    def __init__(self, inner_inputs, inner_outputs, n_seqs, taps, n_nit, keep_last=None,
                 truncate_gradient=-1, name=None, linker=None):
        self.inner_inputs = list(inner_inputs)
        self.inner_outputs = list(inner_outputs)
        self.n_seqs = int(n_seqs)
        self.taps = tuple(tuple(int(k) for k in t) for t in taps)
        self.n_nit = int(n_nit)
        self.keep_last = tuple(keep_last) if keep_last is not None else (False,) * len(self.taps)
        self.truncate_gradient = int(truncate_gradient)
        self.name = name
        #: the linker the inner graph is compiled with (None: `config.linker` at first run)
        self.linker = linker
        self.n_taps = sum(len(t) for t in self.taps)
        self.n_non_seqs = len(self.inner_inputs) - self.n_seqs - self.n_taps
        if self.n_non_seqs < 0 or len(self.inner_outputs) != len(self.taps) + self.n_nit \
                or len(self.keep_last) != len(self.taps):
            raise ValueError("Scan: inner inputs/outputs do not match the declared layout")
        self.lags = tuple(-min(t) for t in self.taps)
        self.key = structure_key(self.inner_inputs, self.inner_outputs)
        self._loop_fn = self._generic = None
        #: (mode, inner outputs as traced) where the step is specialised to the shapes of each
        #: call's values: set by `compiled_scan`
        self.specialize = None
        self._special: dict = {}  # shapes of the inner inputs -> _Inner
        self._warming: dict = {}  # shapes -> Future of the step being lowered (`warm`)
        self._kinds = self._storage_kinds()
        self._compiled: dict = {}

    def __str__(self):
        return f"Scan{{{self.name}}}" if self.name else "Scan"

    __repr__ = __str__

    # -- layout helpers ------------------------------------------------------------------------
    @property
    def n_rec(self) -> int:
        return len(self.taps)

    def split_outer(self, inputs):
        """(n_steps, sequences, initial rows, non-sequences) from the node's inputs."""
        s, r = 1 + self.n_seqs, 1 + self.n_seqs + self.n_rec
        return inputs[0], list(inputs[1:s]), list(inputs[s:r]), list(inputs[r:])

    def split_inner(self):
        """(sequence slices, [tap placeholders per recurrent output], non-sequences)."""
        ins = self.inner_inputs
        seqs, k, taps = ins[:self.n_seqs], self.n_seqs, []
        for t in self.taps:
            taps.append(ins[k:k + len(t)])
            k += len(t)
        return seqs, taps, ins[k:]

    def clone(self, **changes):
        """This Scan with some constructor arguments changed."""
        args = dict(inner_inputs=self.inner_inputs, inner_outputs=self.inner_outputs,
                    n_seqs=self.n_seqs, taps=self.taps, n_nit=self.n_nit, keep_last=self.keep_last,
                    truncate_gradient=self.truncate_gradient, name=self.name, linker=self.linker)
        args.update(changes)
        return Scan(**args)

    # -- type inference ------------------------------------------------------------------------
    def make_node(self, n_steps, *outer):
        n_steps = as_variable(n_steps)
        if n_steps.ndim != 0 or n_steps.dtype[0] not in "iu":
            raise ScanError(f"{self}: n_steps must be an integer scalar, got {n_steps.type.short()}")
        if n_steps.dtype != "int64":
            from ..ops.elemwise import cast

            n_steps = cast(n_steps, "int64")
        outer = [as_variable(v) for v in outer]
        want = self.n_seqs + self.n_rec + self.n_non_seqs
        if len(outer) != want:
            raise ScanError(f"{self} takes {want} inputs after n_steps, got {len(outer)}")
        _, seqs, inits, nons = self.split_outer([n_steps] + outer)
        i_seqs, i_taps, i_nons = self.split_inner()
        for k, (v, p) in enumerate(zip(seqs, i_seqs)):
            self._check(v, p.type, f"sequence {k}", lead=True)
        for r, (v, ps) in enumerate(zip(inits, i_taps)):
            self._check(v, ps[0].type, f"initial state of output {r}", lead=True)
        for k, (v, p) in enumerate(zip(nons, i_nons)):
            self._check(v, p.type, f"non-sequence {k}", lead=False)
        outs = []
        for r, ps in enumerate(i_taps):
            lead = 1 if self.keep_last[r] else None
            outs.append(TensorType(ps[0].dtype, (lead,) + ps[0].type.shape).make_variable())
        for o in self.inner_outputs[self.n_rec:]:
            outs.append(TensorType(o.dtype, (None,) + o.type.shape).make_variable())
        return Apply(self, [n_steps] + outer, outs)

    def _check(self, v, inner_type, what, lead):
        ndim = inner_type.ndim + (1 if lead else 0)
        shape = v.type.shape[1:] if lead else v.type.shape
        ok = v.dtype == inner_type.dtype and v.ndim == ndim and all(
            a is None or b is None or a == b for a, b in zip(shape, inner_type.shape))
        if not ok:
            raise ScanError(f"{self}: {what} has type {v.type.short()}, but the step function was "
                            f"traced for {'rows of ' if lead else ''}{inner_type.short()}")

    def infer_shape(self, node, input_shapes):
        n = node.inputs[0]
        init_shapes = input_shapes[1 + self.n_seqs:1 + self.n_seqs + self.n_rec]
        out = []
        for r, shp in enumerate(init_shapes):
            lead = as_variable(np.int64(1)) if self.keep_last[r] else n + shp[0]
            out.append((lead,) + tuple(shp[1:]))
        for o in self.inner_outputs[self.n_rec:]:
            if None in o.type.shape:
                return None
            out.append((n,) + tuple(as_variable(np.int64(s)) for s in o.type.shape))
        return out

    # -- running -------------------------------------------------------------------------------
    def runner(self):
        """The inner graph lowered once by the linker: values in, output values out."""
        if self._generic is None:
            self._generic = self._lower(Graph(self.inner_inputs, self.inner_outputs))
        return self._generic.run

    def _lower(self, graph) -> "_Inner":
        from ..config import config
        from ..trace.function import LINKERS

        cfg = config.snapshot()
        graph.looped = True
        return self._inner(graph, LINKERS[self.linker or cfg.linker](graph, cfg))

    def _inner(self, graph, run) -> "_Inner":
        # a state fed back as-is (the ring of `keep_last`) must have its taps' type for the
        # runner that trusts its inputs' dtypes and ndims
        _, i_taps, _ = self.split_inner()
        fed_back_typed = all((p.dtype, p.ndim) == (o.dtype, o.ndim)
                             for o, ps in zip(graph.outputs, i_taps) for p in ps)
        trusted = getattr(run, "validated", None) if fed_back_typed else None
        return _Inner(graph, run, trusted, _read_by_products(graph, self.n_seqs + self.n_taps))

    @staticmethod
    def signature(seqs, inits, nons) -> tuple:
        """The shapes of the values a step is specialised to (see `specialize`)."""
        return (tuple(a.shape[1:] for a in seqs), tuple(a.shape[1:] for a in inits),
                tuple(map(_non_key, nons)))

    def _inner_for(self, seqs, inits, nons) -> "_Inner":
        """The lowered step for values of these shapes: the step specialised to them (see
        `specialize`) where it can be, else the step as compiled for any shapes."""
        if self.specialize is None:
            self.runner()
            return self._generic
        sig = self.signature(seqs, inits, nons)
        inner = self._special.get(sig)
        if inner is None:
            pending = self._warming.pop(sig, None)
            if pending is not None:
                inner = pending.result()
            elif len(self._special) < MAX_SPECIALIZED:
                graph = self._rewritten(sig)
                inner = None if graph is None else self._lower(graph)
            if inner is None:
                self.runner()
                inner = self._generic
            if len(self._special) < MAX_SPECIALIZED:
                self._special[sig] = inner
        return inner

    def warm(self, sig):
        """The step specialised to the shapes `sig` before the loop runs: (its graph, a new
        Future the caller resolves with the lowered step, `_Inner`), (graph, None) where it
        is lowered already, or None where the step is not specialised to them.  The loop
        takes the future's step when it meets those shapes."""
        if self.specialize is None:
            return None
        if sig in self._special:
            return self._special[sig].graph, None
        if len(self._special) + len(self._warming) >= MAX_SPECIALIZED or sig in self._warming:
            return None
        graph = self._rewritten(sig)
        if graph is None:
            return None
        self._warming[sig] = pending = futures.Future()
        return graph, pending

    def _rewritten(self, sig):
        """The step traced again on inputs of the static shapes `sig` and rewritten with the
        function's mode; None where the step does not type on them (its shapes are then
        checked as it runs, which names the user's line)."""
        from ..trace.graph import clone_replace
        from ..rewrite.engine import RewriteError
        from ..rewrite.mode import rewrite_graph
        from .rewrites import compile_scans

        mode, outputs = self.specialize
        seq_rows, init_rows, non_keys = sig
        shapes = list(seq_rows) + [r for r, t in zip(init_rows, self.taps) for _ in t] + \
            [k[0] for k in non_keys]
        values = [None] * (len(shapes) - len(non_keys)) + [k[1] for k in non_keys]
        fresh, replace = [], {}
        for p, shp, val in zip(self.inner_inputs, shapes, values):
            if len(shp) != p.ndim or any(a is not None and a != b
                                         for a, b in zip(p.type.shape, shp)):
                return None
            # a size of 1 stays unknown: static, it would make the dim broadcastable
            static = tuple(None if d == 1 and a is None else d for a, d in zip(p.type.shape, shp))
            fresh.append(TensorType(p.dtype, static).make_variable(name=p.name))
            replace[p] = fresh[-1] if val is None else \
                as_variable(np.array(val, dtype=p.dtype).reshape(shp))
        try:
            outs = clone_replace(outputs, replace)
        except (TracesymError, TypeError, ValueError, IndexError):
            return None  # the generic step raises it as it runs, naming the line
        try:
            return compile_scans(rewrite_graph(Graph(fresh, outs), mode), mode)
        except RewriteError:  # a rule that cannot keep the types it was given: run as compiled
            return None

    def _typed(self, node, inputs) -> bool:
        """Whether the outer values are arrays of exactly the node's input types, so every row
        and state the loop passes in is one too (what the trusting runner needs)."""
        return all(type(a) is np.ndarray and a.dtype == v.type.np_dtype and a.ndim == v.ndim
                   for a, v in zip(inputs, node.inputs))

    def perform(self, node, inputs):
        n_steps, seqs, inits, nons = self.split_outer(inputs)
        n = int(n_steps)
        if n < 0:
            raise ScanError(f"{self}: n_steps is {n}; it must be >= 0")
        for k, s in enumerate(seqs):
            if s.shape[0] < n:
                raise ScanError(f"{self}: sequence {k} has {s.shape[0]} rows, fewer than the "
                                f"{n} steps asked for")
        inner = self._inner_for(seqs, inits, nons)
        run = inner.run
        if inner.trusted is not None and self._typed(node, inputs):
            run = inner.trusted
        if n > 1 and inner.products:
            nons = self._contiguous(nons, inner.products)
        bufs, state = [], []
        for r, (init, lag, kind) in enumerate(zip(inits, self.lags, self._kinds)):
            if init.shape[0] != lag:
                raise ScanError(f"{self}: output {r} has taps {list(self.taps[r])}, which need "
                                f"{lag} initial row(s); got {init.shape[0]}")
            buf = None
            if kind == "ring":  # references, never written in place
                buf = [init[i, ...] for i in range(lag)] + [None]
            elif kind != "last":
                buf = np.empty((lag + n,) + init.shape[1:], dtype=init.dtype)
                buf[:lag] = init
            bufs.append(buf)
            state.append(init[lag - 1, ...])
        lo, ys = 0, [None] * self.n_nit
        if n > 1 and getattr(run, "loop", None) is not None and "ring" not in self._kinds:
            lo, ys = self._c_steps(run.loop, n, seqs, nons, bufs, state, inits)
        if lo < n:
            state, nit = self._loop()(run, lo, n, seqs, nons, bufs, state,
                                      [init.shape[1:] for init in inits], self._shape_error, ys)
        else:
            nit = ys
        results = []
        for r, (init, lag, kind) in enumerate(zip(inits, self.lags, self._kinds)):
            if kind == "last":
                results.append(np.array(state[r], dtype=init.dtype)[None])
            elif kind == "ring":
                results.append(np.array(bufs[r][(n - 1 + lag) % (lag + 1)], dtype=init.dtype)[None])
            else:
                results.append(bufs[r])
        for k, v in enumerate(nit):
            if v is None:  # no step ran: the row shape is what the types know (else 0)
                o = self.inner_outputs[self.n_rec + k]
                v = np.empty((0,) + tuple(0 if s is None else s for s in o.type.shape), o.dtype)
            results.append(v)
        return results

    def _c_steps(self, loop, n, seqs, nons, bufs, state, inits):
        """Run the steps in one C call, where the step is one C entry with a loop (`run.loop`,
        `entry.render_loop`): (steps done, the per-step outputs' stacks).  Each argument is a
        row of an array, a step further each step: a sequence's row, a tap's row of its
        output's buffer, or the other row of a pair (an output of which only the last value
        is kept).  `state` becomes the latest value of each recurrent output."""
        walks = [(s, s.strides[0], 0, 0) for s in seqs]
        outs, pairs = [], {}
        for r, (taps, lag, kind, init) in enumerate(zip(self.taps, self.lags, self._kinds, inits)):
            if kind == "last":  # step t reads row (t + 1) % 2 and writes row t % 2
                pair = pairs[r] = np.empty((2,) + init.shape[1:], init.dtype)
                pair[1] = state[r]
                walks.append((pair, pair.strides[0], 1, 2))
                outs.append((pair, pair.strides[0], 0, 2))
                continue
            buf = bufs[r]
            walks += [(buf, buf.strides[0], lag + k, 0) for k in taps]
            outs.append((buf, buf.strides[0], lag, 0))
        args = [a[off % ring if ring else off, ...] for a, _, off, ring in walks]
        walks += [(c, 0, 0, 0) for c in nons]
        plan = loop.plan(args + list(nons))
        if plan is None or any((a.shape[1:], a.dtype) != got
                               for (a, *_), got in zip(outs, plan.outs)):
            return 0, [None] * self.n_nit  # the loop in Python says what is wrong
        ys = [np.empty((n,) + shape, dt) for shape, dt in plan.outs[self.n_rec:]]
        done = loop(plan, walks + outs + [(y, y.strides[0], 0, 0) for y in ys], 0, n)
        if done:
            for r, lag in enumerate(self.lags):
                state[r] = (pairs[r][(done - 1) % 2, ...] if r in pairs
                            else bufs[r][done - 1 + lag, ...])
        return done, ys

    @staticmethod
    def _contiguous(nons, which):
        """`nons` with each matrix `which` names made C-contiguous once: a product reads it
        on every step, BLAS runs a transposed operand (the `W.T` of a backward step) about
        1.4x slower, and numpy copies any other strided one on each call."""
        nons = list(nons)
        for j in which:
            v = nons[j]
            if type(v) is np.ndarray and v.ndim >= 2 and not v.flags.c_contiguous:
                nons[j] = np.ascontiguousarray(v)
        return nons

    def _storage_kinds(self):
        """How the loop keeps each recurrent output: "last" (only its latest value, in a
        local), "ring" (`keep_last` with several taps: the last `lag + 1` values), "carry" (a
        full buffer, and the latest value in a local that the next step reads) or "buffer"
        (taps read from the buffer, whose rows have the initial state's dtype)."""
        _, i_taps, _ = self.split_inner()
        kinds = []
        for r, (taps, ps) in enumerate(zip(self.taps, i_taps)):
            o = self.inner_outputs[r]
            if self.keep_last[r]:
                kinds.append("last" if taps == (-1,) else "ring")
            else:
                same = (o.dtype, o.ndim) == (ps[0].dtype, ps[0].ndim)
                kinds.append("carry" if taps == (-1,) and same else "buffer")
        return tuple(kinds)

    def _loop(self):
        """The loop over the steps as Python generated for this layout (`_loop_source`),
        compiled once: per step one list of inputs, one call of the inner runner, a shape
        check and a write per output, nothing else."""
        if self._loop_fn is None:
            i_seqs, i_taps, _ = self.split_inner()
            src = _loop_source([p.ndim for p in i_seqs], self.taps, self.lags, self._kinds,
                               [ps[0].ndim for ps in i_taps], self.n_nit, self.n_non_seqs)
            scope = {"empty": np.empty}
            exec(compile(src, f"<loop of {self}>", "exec"), scope)
            self._loop_fn = scope["loop"]
        return self._loop_fn

    def _shape_error(self, i, got, want, t):
        src = self.inner_outputs[i].source
        where = f"\n  the step's output was created at {src}" if src else ""
        raise ScanError(f"{self}: on step {t} output {i} of the step function has shape "
                        f"{tuple(got)}, but earlier steps (or its initial state) have shape "
                        f"{tuple(want)}; a scan output keeps one shape through the loop{where}")

    # -- gradient ------------------------------------------------------------------------------
    def L_op(self, inputs, outputs, output_grads):
        from .grad import scan_grad

        return scan_grad(self, inputs, outputs, output_grads)


__all__ = ["Scan"]
