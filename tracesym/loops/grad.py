"""Backpropagation through time: the gradient of a `Scan` is another scan, going backwards.

Step t of the forward loop writes buffer row `lag + t` of each recurrent output and reads rows
`lag + t + tap`.  The backward loop visits t = n-1 ... 0 and carries, per recurrent output, a
window of `lag` pending gradients: `w_k` is what later steps sent to row `t + k`
(k = 1..lag).  Step t's vector-Jacobian product takes `w_lag` plus the row's own output
gradient, sends a contribution to each tapped row (which shifts into the window), and adds
to accumulators for the non-sequences; sequence gradients come out one row per step.  After
step 0 the window holds the initial rows' gradients.  With `truncate_gradient=k` only the last
k steps are visited and nothing reaches the initial state unless k covers every step.
"""

from __future__ import annotations

from ..config import config
from ..errors import GradientError
from ..trace.graph import Constant, clone_replace


def _is_float(v):
    return v.dtype[0] in "fc"


def _sum(terms):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


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
        windows = {}
        for r in d_rec:
            windows[r], a = a[:lags[r]], a[lags[r]:]
        accs, nonv = a[:len(d_nons)], a[len(d_nons):]
        replace = dict(zip(i_seqs, xs))
        for phs, vals in zip(i_taps, taps):
            replace.update(zip(phs, vals))
        replace.update(zip(i_nons, nonv))
        fouts = clone_replace(op.inner_outputs, replace)
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
        return new_windows + new_accs + seq_out

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
        grads[1 + i] = set_subtensor(zeros_like(seqs[i])[n - nb:n], rev)
    return grads


__all__ = ["scan_grad"]
