"""`ts.scan` and the loops built on it (`map`, `reduce`, `foldl`, `foldr`), with Theano's
semantics.

The step function is traced once on fresh placeholders into its own graph: a sequence slice
has the sequence's type minus the leading dim; a recurrent output's taps have its initial
state's type (one tap, `[-1]`) or that type minus the leading dim (other taps, the initial
value then holding one row per lag).  Outer variables the step closes over become extra
non-sequences (refused with `strict=True`); shared variables the step updates become
recurrent outputs whose final row is the update.
"""

from __future__ import annotations

import numpy as np

from ..errors import ScanError, UpdateError
from ..trace import context as _ctx
from ..trace.function import check_update_target, default_updates, update_expression
from ..trace.graph import Constant, applies_between, as_variable, clone_replace
from ..trace.source import user_source
from .op import Scan, row_type


def _as_list(x):
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _test_value(v, index=None):
    """v's debug value (or its row `index`) when test values are on and v has one."""
    if _ctx._test_value_mode() == "off" or not v.has_test_value():
        return None
    val = _ctx.test_value(v)
    if index is None:
        return val
    return val[index] if -val.shape[0] <= index < val.shape[0] else None


def _placeholder(type, name, test_value=None):
    p = type.make_variable(name=name)
    if test_value is not None:
        p.tag.test_value = np.asarray(test_value, dtype=type.dtype)
    return p


def _where(fn):
    code = getattr(fn, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno} ({fn.__name__})" if code else repr(fn)


class _Seq:
    def __init__(self, entry, k):
        if isinstance(entry, dict):
            unknown = set(entry) - {"input", "taps"}
            if unknown or "input" not in entry:
                raise ScanError(f"scan: sequence {k} must be a tensor or dict(input=..., taps=[...]); "
                                f"got keys {sorted(entry)}")
            self.var, self.taps = as_variable(entry["input"]), list(entry.get("taps") or [0])
        else:
            self.var, self.taps = as_variable(entry), [0]
        if self.var.ndim < 1:
            raise ScanError(f"scan: sequence {k} ({self.var.label()}, {self.var.type.short()}) is a "
                            "scalar; a sequence needs a leading dimension to loop over")
        self.taps = [int(t) for t in self.taps]
        self.k = k

    def steps(self, span):
        """The static number of steps (rows less the taps' span), or None."""
        rows = self.var.type.shape[0]
        return None if rows is None else max(rows - span, 0)

    def describe(self):
        span = max(self.taps) - min(self.taps)
        taps = f", taps {self.taps}: {span} step(s) fewer than rows" if span else ""
        return f"sequence {self.k} ({self.var.label()}{taps})"


class _Out:
    """One entry of outputs_info: None (not fed back) or an initial state with taps."""

    def __init__(self, entry, k):
        self.init, self.taps = None, None
        if isinstance(entry, dict):
            unknown = set(entry) - {"initial", "taps"}
            if unknown:
                raise ScanError(f"scan: outputs_info[{k}] has unknown keys {sorted(unknown)}; use "
                                "dict(initial=..., taps=[...])")
            if entry.get("initial") is not None:
                self.init = as_variable(entry["initial"])
                self.taps = [int(t) for t in (entry.get("taps") or [-1])]
        elif entry is not None:
            self.init, self.taps = as_variable(entry), [-1]
        if self.taps is not None:
            if any(t >= 0 for t in self.taps):
                raise ScanError(f"scan: outputs_info[{k}] has taps {self.taps}; output taps must be "
                                "negative (-1 is the previous step)")
            self.mit = self.taps != [-1]
            if self.mit and self.init.ndim < 1:
                raise ScanError(f"scan: outputs_info[{k}] has taps {self.taps}, so its initial value "
                                "needs a leading dimension holding one row per lag; got a scalar")

    @property
    def recurrent(self):
        return self.init is not None

    @property
    def tap_type(self):
        return row_type(self.init.type) if self.mit else self.init.type


def _split_result(res, fn):
    """(outputs, updates) from whatever the step function returned."""
    if isinstance(res, dict):
        return [], res
    if isinstance(res, (tuple, list)) and len(res) == 2 and isinstance(res[1], dict):
        return _as_list(res[0]), res[1]
    if isinstance(res, (tuple, list)):
        return list(res), {}
    if res is None:
        raise ScanError(f"scan: the step function {_where(fn)} returned None; return its outputs")
    return [res], {}


def _captured(inner_in, outputs):
    """Outer variables the traced step uses, in first-use order: the leaves and outer results
    that an inner node (or an output) reads, constants excluded."""
    inner = {id(v) for v in inner_in}
    found, seen = [], set()

    def note(v):
        if id(v) not in inner and id(v) not in seen and not isinstance(v, Constant):
            seen.add(id(v))
            found.append(v)

    for node in applies_between(inner_in, outputs):
        if any(id(v) in inner for v in node.inputs):
            for v in node.inputs:
                note(v)
            inner.update(id(o) for o in node.outputs)
    for o in outputs:
        note(o)
    return found


def _esc(text):
    """`text` as a literal part of a `str.format` template."""
    return text.replace("{", "{{").replace("}", "}}")


def _same_steps(seqs, lengths, where):
    """The number of steps of a scan without `n_steps`: every sequence must give the same one.
    Static lengths that differ fail now; the others are compared when the function runs, by
    one `CheckSizes` node on the step count (its error names the scan call's line)."""
    from ..ops.checks import CheckSizes

    at = f"\n  scan called at {where}" if where else ""
    (n, n_static), first = lengths[0], seqs[0].describe()
    checks, sizes = [], []
    for s, (rows, static) in zip(seqs[1:], lengths[1:]):
        if static is not None and n_static is not None:
            if static != n_static:
                raise ScanError(f"scan: the sequences give different numbers of steps: {first} "
                                f"gives {n_static}, {s.describe()} gives {static}; slice them "
                                f"to one length, or pass n_steps to use the first n_steps{at}")
            continue
        msg = (_esc(f"the sequences give different numbers of steps: {first} gives ") + "{a}, "
               + _esc(s.describe()) + " gives {b}; slice them to one length, or pass n_steps")
        checks.append(("eq", msg))
        sizes += [n, rows]
    return CheckSizes("scan", checks)(n, *sizes) if checks else n


def _check_output(k, out, want, fn):
    ok = out.dtype == want.dtype and out.ndim == want.ndim and all(
        a is None or b is None or a == b for a, b in zip(out.type.shape, want.shape))
    if not ok:
        src = f"\n  the step's output was created at {out.source}" if out.source else ""
        what = ("dtype" if out.dtype != want.dtype else
                "number of dimensions" if out.ndim != want.ndim else "static shape")
        fix = f"; cast it with .astype('{want.dtype}')" if what == "dtype" else ""
        raise ScanError(f"scan: output {k} of the step function {_where(fn)} has type "
                        f"{out.type.short()}, but its initial state (outputs_info[{k}]) has type "
                        f"{want.short()}: the {what} differs{fix}{src}")


def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient=-1, go_backwards=False, name=None, strict=False):
    """Loop `fn` over the leading dimension of `sequences`, feeding back `outputs_info`.

    `fn` receives, in order: each sequence's slices (one per tap, `taps=[0]` by default), each
    recurrent output's previous values (one per tap, `[-1]` by default), then the
    non-sequences.  It returns its outputs (a tensor, a tuple or a list), optionally with a
    dict of shared-variable updates: `return h, {counter: counter + 1}`.  Inside `@ts.compile`,
    `ts.update(shared, expr)` in the step works too: each step sees the previous step's value,
    and the final one is applied after the call.

    Returns `(outputs, updates)`: each output stacked over the steps (one output comes back
    unwrapped), and the updates to pass to `ts.function`.  Every sequence must give the same
    number of steps (its rows, less the span of its taps: taps `[-1, 0, 1]` give rows - 2), unlike
    Theano, which silently ran over the shortest; lengths that differ are a ScanError when the
    static shapes show it, else an error naming this call's line when the function runs.  With
    `n_steps`, every sequence must give at least `n_steps` steps, and the first `n_steps` are
    used.  `go_backwards` walks the sequences from the end; `truncate_gradient=k`
    backpropagates through the last k steps only.
    """
    where = user_source()
    seqs = [_Seq(e, k) for k, e in enumerate(_as_list(sequences))]
    outs_given = outputs_info is not None and not (isinstance(outputs_info, (list, tuple))
                                                   and not outputs_info)
    infos = [_Out(e, k) for k, e in enumerate(_as_list(outputs_info))]
    explicit = [as_variable(v) for v in _as_list(non_sequences)]
    if not seqs and n_steps is None:
        raise ScanError("scan: give sequences or n_steps, so the number of steps is known"
                        + (f" (scan at {where})" if where else ""))

    # -- outer sequences, one per tap, each read at row t; and the number of steps ----------
    from ..ops.elemwise import maximum
    from ..ops.shape import expand_dims, shape_i

    outer_seqs, inner_seqs, lengths = [], [], []
    for k, s in enumerate(seqs):
        x = s.var[::-1] if go_backwards else s.var
        lo, span = min(s.taps), max(s.taps) - min(s.taps)
        rows = maximum(shape_i(x, 0) - span, 0) if span else shape_i(x, 0)
        lengths.append((rows, s.steps(span)))
        for tap in s.taps:
            start = tap - lo
            outer_seqs.append(x[start:start + rows] if span else x)
            tv = _test_value(x, start)
            inner_seqs.append(_placeholder(row_type(x.type), f"{s.var.label()}[t{tap:+d}]"
                                           if tap else f"{s.var.label()}[t]", tv))
    if n_steps is None:
        n = _same_steps(seqs, lengths, where)
    else:
        n = as_variable(n_steps)
        if n.ndim != 0 or n.dtype[0] not in "iu":
            raise ScanError(f"scan: n_steps must be an integer scalar, got {n.type.short()}")
        for s, (_, static) in zip(seqs, lengths):
            if isinstance(n, Constant) and static is not None and static < int(n.data):
                raise ScanError(f"scan: {s.describe()} gives {static} steps, fewer than n_steps="
                                f"{int(n.data)}" + (f"\n  scan called at {where}" if where else ""))

    # -- placeholders for recurrent outputs' taps and the explicit non-sequences ------------
    inner_taps = []
    for k, o in enumerate(infos):
        if not o.recurrent:
            inner_taps.append([])
            continue
        phs = []
        for tap in o.taps:
            tv = _test_value(o.init, tap + max(-t for t in o.taps)) if o.mit else _test_value(o.init)
            phs.append(_placeholder(o.tap_type, f"out{k}[t{tap:+d}]", tv))
        inner_taps.append(phs)
    explicit_ph = {}
    fn_nons = []
    for v in explicit:
        if isinstance(v, Constant):
            fn_nons.append(v)
        else:
            p = explicit_ph.get(id(v))
            if p is None:
                p = explicit_ph[id(v)] = _placeholder(v.type, v.name, _test_value(v))
            fn_nons.append(p)

    # -- trace the step --------------------------------------------------------------------
    args = list(inner_seqs) + [p for phs in inner_taps for p in phs] + fn_nons
    frame = _ctx.current_frame()
    if frame is not None:  # inside @compile: ts.update in the step updates after the call
        with _ctx.tracing(_ctx.TraceFrame(eager=frame.eager)) as step_frame:
            res = fn(*args)
        traced_updates = step_frame.updates
    else:
        res, traced_updates = fn(*args), []
    raw_outs, raw_updates = _split_result(res, fn)
    raw_outs = [as_variable(o) for o in raw_outs]
    if outs_given and len(raw_outs) != len(infos):
        raise ScanError(f"scan: the step function {_where(fn)} returned {len(raw_outs)} output(s), "
                        f"but outputs_info has {len(infos)} entries (one per output, None for "
                        "outputs not fed back)" + (f"\n  scan called at {where}" if where else ""))
    if not outs_given:
        infos = [_Out(None, k) for k in range(len(raw_outs))]
        inner_taps = [[] for _ in raw_outs]
    for k, (o, info) in enumerate(zip(raw_outs, infos)):
        if info.recurrent:
            _check_output(k, o, info.tap_type, fn)
    updates = []
    if isinstance(raw_updates, dict):
        raw_updates = list(raw_updates.items())
    for target, expr in raw_updates + traced_updates:
        check_update_target(target)
        if any(t is target for t, _ in updates):
            raise ScanError(f"scan: the step function {_where(fn)} updates shared variable "
                            f"{target.label()} twice")
        updates.append((target, update_expression(target, expr)))
    # shared variables with a default update (a random draw's generator state) advance every
    # step, as they do once per call in a function
    updates += default_updates(args, raw_outs + [e for _, e in updates], updates)

    # -- gather the inner graph ------------------------------------------------------------
    rec = [k for k, i in enumerate(infos) if i.recurrent]
    nit = [k for k, i in enumerate(infos) if not i.recurrent]
    upd_ph = [_placeholder(t.type, t.name, _test_value(t)) for t, _ in updates]
    inner_outs = [raw_outs[k] for k in rec] + [e for _, e in updates] + [raw_outs[k] for k in nit]
    fixed_in = (inner_seqs + [p for k in rec for p in inner_taps[k]] + list(explicit_ph.values()))
    replace = {t: p for (t, _), p in zip(updates, upd_ph)}
    outer_of = {id(explicit_ph[id(v)]): v for v in explicit if id(v) in explicit_ph}
    nons_ph = list(explicit_ph.values())
    for v in _captured(fixed_in + [t for t, _ in updates], inner_outs):
        if id(v) in outer_of:
            continue
        if strict:
            src = f", created at {v.source}" if v.source else ""
            raise ScanError(f"scan(strict=True): the step function {_where(fn)} uses {v.label()} "
                            f"({v.type.short()}{src}) without receiving it; pass it in "
                            "non_sequences")
        p = _placeholder(v.type, v.name, _test_value(v))
        replace[v] = p
        outer_of[id(p)] = v
        nons_ph.append(p)
    if replace:
        inner_outs = clone_replace(inner_outs, replace)
    rec_taps = [inner_taps[k] for k in rec] + [[p] for p in upd_ph]
    inner_in = inner_seqs + [p for phs in rec_taps for p in phs] + nons_ph
    taps = [infos[k].taps for k in rec] + [[-1]] * len(updates)
    op = Scan(inner_in, inner_outs, n_seqs=len(inner_seqs), taps=taps, n_nit=len(nit),
              truncate_gradient=truncate_gradient, name=name)

    # -- the node and its results ----------------------------------------------------------
    inits = []
    for k in rec:
        o = infos[k]
        lag = -min(o.taps)
        inits.append(o.init[:lag] if o.mit else expand_dims(o.init, 0))
    inits += [expand_dims(t, 0) for t, _ in updates]
    outer_nons = [outer_of[id(p)] for p in nons_ph]
    res = op(n, *outer_seqs, *inits, *outer_nons)
    res = res if isinstance(res, list) else [res]
    results = [None] * len(infos)
    for j, k in enumerate(rec):
        results[k] = res[j][-min(infos[k].taps):]
    for j, k in enumerate(nit):
        results[k] = res[len(rec) + len(updates) + j]
    new_values = {t: res[len(rec) + j][-1] for j, (t, _) in enumerate(updates)}
    for target, _ in traced_updates:
        if any(t is target for t, _ in frame.updates):
            raise UpdateError(f"shared variable {target.label()} is updated twice in one call "
                              "(once inside a scan step)")
        frame.updates.append((target, new_values.pop(target)))
    if len(results) == 1:
        return results[0], new_values
    return results, new_values


def map(fn, sequences, non_sequences=None, truncate_gradient=-1, go_backwards=False, name=None):
    """`fn` applied to each row of `sequences`: `scan` with no recurrent output."""
    return scan(fn, sequences=sequences, non_sequences=non_sequences,
                truncate_gradient=truncate_gradient, go_backwards=go_backwards, name=name)


def reduce(fn, sequences, outputs_info, non_sequences=None, go_backwards=False, name=None):
    """The final state of `scan(fn, sequences, outputs_info)`: `fn(x_t, acc)` folded over
    the rows.  Only the last state is kept when compiled (O(1) memory)."""
    outs, updates = scan(fn, sequences=sequences, outputs_info=outputs_info,
                         non_sequences=non_sequences, go_backwards=go_backwards, name=name)
    if isinstance(outs, list):
        return [o[-1] for o in outs], updates
    return outs[-1], updates


def foldl(fn, sequences, outputs_info, non_sequences=None, name=None):
    """`reduce` from the first row to the last."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=False, name=name)


def foldr(fn, sequences, outputs_info, non_sequences=None, name=None):
    """`reduce` from the last row to the first."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=True, name=name)


__all__ = ["scan", "map", "reduce", "foldl", "foldr"]
