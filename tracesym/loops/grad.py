"""Backpropagation through time: the gradient of a `Scan` is another scan, going backwards.

Step t of the forward loop writes buffer row `lag + t` of each recurrent output and reads rows
`lag + t + tap`.  The backward loop visits t = n-1 ... 0 and carries, per recurrent output, a
window of `lag` pending gradients: `w_k` is what later steps sent to row `t + k`
(k = 1..lag).  Step t's vector-Jacobian product takes `w_lag` plus the row's own output
gradient, sends a contribution to each tapped row (which shifts into the window), and adds
to accumulators for the non-sequences; sequence gradients come out one row per step.  After
step 0 the window holds the initial rows' gradients.  With `truncate_gradient=k` only the last
k steps are visited and nothing reaches the initial state unless k covers every step.

The values of the forward step that the products need are stored by the forward loop, one row
per step, and read back rather than recomputed (`_residuals`, `_read_stored`).
"""

from __future__ import annotations

from ..config import config
from ..errors import GradientError
from ..trace.graph import Constant, applies_between, as_variable, clone_replace, leaves, rebuild


def _is_float(v):
    return v.dtype[0] in "fc"


def _sum(terms):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _residuals(op, inputs, outputs):
    """The forward step's values that depend on the step (not only on non-sequences) and
    whose shapes follow from the shapes of the step's inputs (so they stack: every step has
    the same), and each one stacked over the steps: the forward outputs' own rows where it is
    one, else an extra per-step output of the same loop extended with them (`scan_subsumed`
    then runs the two loops as one).  The backward step reads these rows instead of
    recomputing the values; the ones it does not read are pruned with the sequences nobody
    reads."""
    from ..ops.shape import shape_i

    n = inputs[0]
    i_seqs, i_taps, _ = op.split_inner()
    varying = {id(v) for v in i_seqs} | {id(p) for ps in i_taps for p in ps}
    fixed = set(varying)  # varying values of a shape that is the same on every step
    kept = []
    for nd in applies_between(op.inner_inputs, op.inner_outputs):
        if not any(id(v) in varying for v in nd.inputs):
            continue
        varying.update(id(o) for o in nd.outputs)
        if any(id(v) in varying and id(v) not in fixed for v in nd.inputs):
            continue
        in_shapes = [tuple(shape_i(v, d) for d in range(v.ndim)) for v in nd.inputs]
        shapes = nd.op.infer_shape(nd, in_shapes)
        if shapes is None:
            continue
        dims = [as_variable(d) for shp in shapes for d in shp]
        if any(id(v) in varying for v in leaves([d for s in in_shapes for d in s], dims)):
            continue  # the shape depends on the values (a mask's selection)
        fixed.update(id(o) for o in nd.outputs)
        kept += nd.outputs
    rows = {}
    for r in range(op.n_rec):
        rows.setdefault(id(op.inner_outputs[r]), outputs[r][op.lags[r]:op.lags[r] + n])
    for k in range(op.n_nit):
        rows.setdefault(id(op.inner_outputs[op.n_rec + k]), outputs[op.n_rec + k][:n])
    extra = [v for v in kept if id(v) not in rows]
    if extra:
        more = op.clone(inner_outputs=op.inner_outputs + extra, n_nit=op.n_nit + len(extra))
        stacked = more.make_node(*inputs).outputs[len(outputs):]
        rows.update((id(v), s) for v, s in zip(extra, stacked))
    return kept, [rows[id(v)] for v in kept]


def _shape_vector(dims, shape):
    """The int64 vector of `dims`: `x.shape` where they are x's own sizes, else stacked."""
    from ..ops.shape import Shape, ShapeI, stack

    x = next((d.owner.inputs[0] for d in dims if d.owner is not None), None)
    if x is not None and x.ndim == len(dims) and all(
            d.owner is not None and isinstance(d.owner.op, ShapeI) and d.owner.inputs[0] is x
            and d.owner.op.i == k or isinstance(d, Constant) and d.data == x.type.shape[k]
            for k, d in enumerate(dims)):
        return Shape()(x)
    return stack(dims) if dims else shape


def _read_stored(outs, recomputed, rows):
    """`outs` with each recomputed forward value read from its stored row instead.  A value
    read only for its shape is not stored where its Op tells the shape from sizes the step
    has anyway (`infer_shape` giving constants or sizes of the step's inputs and of rows read
    anyway: `(h @ W).shape`, also through a broadcast's choice between sizes); its stored row's
    shape is read otherwise."""
    from ..ops.shape import Shape, ShapeI, shape_i

    memo = {id(v): r for v, r in zip(recomputed, rows)}
    stored = dict(memo)
    nodes = [nd for nd in applies_between(rows, outs)
             if not all(id(o) in stored for o in nd.outputs)]
    read = {id(v) for nd in nodes if not isinstance(nd.op, (Shape, ShapeI)) for v in nd.inputs}

    row_of = {id(r): id(v) for v, r in zip(recomputed, rows)}
    known: dict = {}

    def dims(v):
        if id(v) not in known:
            known[id(v)] = _dims(v)
        return known[id(v)]

    def _dims(v):
        if id(v) not in stored or id(v) in read:
            return [shape_i(stored.get(id(v), v), d) for d in range(v.ndim)]
        nd = v.owner
        shp = nd.op.infer_shape(nd, [dims(x) if id(x) in stored else
                                     [shape_i(x, d) for d in range(x.ndim)] for x in nd.inputs])
        found = [] if shp is None else [as_variable(d) for d in shp[nd.outputs.index(v)]]
        if shp is None or any(d.dtype != "int64" or not from_sizes(d) for d in found):
            read.add(id(v))  # its row then
            return [shape_i(stored[id(v)], d) for d in range(v.ndim)]
        return found

    def from_sizes(d):
        """Whether scalar `d` is computed from constants and sizes of values the step reads
        anyway (a broadcast's `where(n == 1, m, n)`), which the step specialised to static
        shapes folds away."""
        if isinstance(d, Constant):
            return True
        nd = d.owner
        if nd is None or d.ndim != 0:
            return False
        if isinstance(nd.op, ShapeI):
            x = id(nd.inputs[0])
            return row_of.get(x, x) in read or x not in stored and x not in row_of
        return all(from_sizes(x) for x in nd.inputs)

    sizes = {id(nd.inputs[0]): dims(nd.inputs[0]) for nd in nodes
             if isinstance(nd.op, (Shape, ShapeI)) and id(nd.inputs[0]) in stored}
    for node in nodes:
        d = sizes.get(id(node.inputs[0])) if isinstance(node.op, (Shape, ShapeI)) else None
        if d is not None:
            memo[id(node.outputs[0])] = d[node.op.i] if isinstance(node.op, ShapeI) else \
                _shape_vector(d, node.outputs[0])
            continue
        rebuild(node, memo)
    return [memo.get(id(o), o) for o in outs]


def scan_grad(op, inputs, outputs, output_grads):
    if any(op.keep_last):
        raise GradientError(f"{op} keeps only its last state, so it cannot be differentiated; "
                            "take gradients before rewriting the graph")
    with config.change(compute_test_value="off"):
        return _scan_grad(op, inputs, outputs, output_grads)


def _scan_grad(op, inputs, outputs, output_grads):
    from ..autodiff.linear import Lop
    from ..ops.elemwise import cast, ge, minimum, zeros_like
    from ..ops.shape import expand_dims, stack
    from ..ops.subtensor import set_subtensor
    from .scan import scan

    n, seqs, inits, nons = op.split_outer(inputs)
    n_rec, lags = op.n_rec, op.lags
    g_rec, g_nit = output_grads[:n_rec], output_grads[n_rec:]
    bufs = outputs[:n_rec]
    i_seqs, i_taps, i_nons = op.split_inner()

    d_seqs = [i for i, s in enumerate(seqs) if _is_float(s)]
    d_rec = [r for r in range(n_rec) if _is_float(bufs[r])]
    d_nons = [j for j, v in enumerate(nons) if _is_float(v) and not isinstance(v, Constant)]
    cot_rec = [r for r in d_rec if g_rec[r] is not None]
    cot_nit = [k for k, g in enumerate(g_nit) if g is not None and _is_float(outputs[n_rec + k])]

    # sequences of the backward loop, walked from the end
    b_seqs = [s[:n] for s in seqs]
    for r, buf in enumerate(bufs):
        b_seqs += [buf[lags[r] + tap:lags[r] + tap + n] for tap in op.taps[r]]
    b_seqs += [g_rec[r][lags[r]:lags[r] + n] for r in cot_rec]
    b_seqs += [g_nit[k][:n] for k in cot_nit]
    kept, stored = _residuals(op, inputs, outputs)
    b_seqs += stored
    info = [zeros_like(inits[r][0]) for r in d_rec for _ in range(lags[r])]
    info += [zeros_like(nons[j]) for j in d_nons]
    info += [None] * len(d_seqs)

    def step(*a):
        a = list(a)
        xs, a = a[:len(seqs)], a[len(seqs):]
        taps = []
        for t in op.taps:
            taps.append(a[:len(t)])
            a = a[len(t):]
        cot = dict(zip(cot_rec, a[:len(cot_rec)]))
        a = a[len(cot_rec):]
        gn = dict(zip(cot_nit, a[:len(cot_nit)]))
        a = a[len(cot_nit):]
        rows, a = a[:len(kept)], a[len(kept):]
        windows = {}
        for r in d_rec:
            windows[r], a = a[:lags[r]], a[lags[r]:]
        accs, nonv = a[:len(d_nons)], a[len(d_nons):]
        replace = dict(zip(i_seqs, xs))
        for phs, vals in zip(i_taps, taps):
            replace.update(zip(phs, vals))
        replace.update(zip(i_nons, nonv))
        fouts = clone_replace(op.inner_outputs + kept, replace)
        fouts, recomputed = fouts[:len(op.inner_outputs)], fouts[len(op.inner_outputs):]
        seeds: dict = {}
        for r in d_rec:
            terms = [windows[r][-1]] + ([cot[r]] if r in cot else [])
            seeds.setdefault(id(fouts[r]), [fouts[r], []])[1].extend(terms)
        for k in cot_nit:
            o = fouts[n_rec + k]
            seeds.setdefault(id(o), [o, []])[1].append(gn[k])
        wrt = [xs[i] for i in d_seqs] + [p for r in d_rec for p in taps[r]] + [nonv[j] for j in d_nons]
        f = [v for v, _ in seeds.values()]
        grads = (Lop(f, wrt, [_sum(t) for _, t in seeds.values()], disconnected_inputs="ignore",
                     return_disconnected="none") if f else [None] * len(wrt))
        g_seq, grads = grads[:len(d_seqs)], grads[len(d_seqs):]
        new_windows = []
        for r in d_rec:
            contrib = dict(zip(op.taps[r], grads[:len(op.taps[r])]))
            grads = grads[len(op.taps[r]):]
            lag = lags[r]
            for k in range(1, lag + 1):
                terms = [windows[r][k - 2]] if k >= 2 else []
                c = contrib.get(k - 1 - lag)
                if c is not None:
                    terms.append(c)
                new_windows.append(_sum(terms) if terms else zeros_like(windows[r][0]))
        new_accs = [acc if g is None else acc + g for acc, g in zip(accs, grads)]
        seq_out = [g if g is not None else zeros_like(xs[i]) for i, g in zip(d_seqs, g_seq)]
        return _read_stored(new_windows + new_accs + seq_out, recomputed, rows)

    if not info:
        return [None] * len(inputs)
    nb = n if op.truncate_gradient < 0 else minimum(n, op.truncate_gradient)
    res, _ = scan(step, sequences=b_seqs, outputs_info=info, non_sequences=nons, n_steps=nb,
                  go_backwards=True, name=f"grad_of_{op.name}" if op.name else "grad")
    res = res if isinstance(res, list) else [res]

    grads = [None] * len(inputs)
    k = 0
    for r in d_rec:
        lag = lags[r]
        finals = [res[k + i][-1] for i in range(lag)]
        k += lag
        win = expand_dims(finals[0], 0) if lag == 1 else stack(finals)
        if op.truncate_gradient >= 0:
            win = win * cast(ge(op.truncate_gradient, n), win.dtype)
        g = g_rec[r]
        grads[1 + len(seqs) + r] = win if g is None else win + g[:lag]
    for j in d_nons:
        grads[1 + len(seqs) + n_rec + j] = res[k][-1]
        k += 1
    for i in d_seqs:
        rev = res[k][::-1]
        k += 1
        if op.truncate_gradient < 0 and _counts_rows(n, seqs[i]):
            grads[1 + i] = rev  # every row is a step: no zeros around the steps' gradients
        else:
            grads[1 + i] = set_subtensor(zeros_like(seqs[i])[n - nb:n], rev)
    return grads


def _counts_rows(n, seq) -> bool:
    """Whether the step count `n` is `seq.shape[0]` (a scan given no n_steps counts the rows of
    its sequences), possibly through the check that the sequences have one length."""
    from ..ops.checks import CheckSizes
    from ..ops.shape import ShapeI

    if isinstance(n, Constant):
        return seq.type.shape[0] == int(n.data)
    nd = n.owner
    if nd is not None and isinstance(nd.op, CheckSizes):
        sizes = nd.inputs[1:]
        if all(kind == "eq" for kind, _ in nd.op.checks) and any(
                _counts_rows(v, seq) for v in sizes):
            return True
        n = nd.inputs[0]
        nd = n.owner
    return nd is not None and isinstance(nd.op, ShapeI) and nd.op.i == 0 and nd.inputs[0] is seq


__all__ = ["scan_grad"]
