"""W7, a big graph: a chain of 2,000 ops from one input x, a 16x16 float64 matrix.  1,000
times: h = u(h), u cycling through sin, tanh, cos and sigmoid, then h = h @ h.  The work per
call is small; what this measures is the price of a big graph: tracing it, rewriting and
linking it (compile), the first run, and then the steady time per call.

Compared: numpy (eager, the reference), tracesym (FAST_RUN, and FAST_COMPILE: merge and
constant folding only), and PyTensor (C/CVM), JAX and PyTorch when installed.  Each result is
checked against numpy's first.  Compile times are measured in fresh processes: cold (empty
compile caches) and warm (the caches the cold run filled), as in W3; then in one process,
interleaved, the time per call.

Run: python bench/w7_biggraph.py [--quick] [--no-compile-times] [--only "tracesym,jax jit"]
"""

import _harness as H  # noqa: I001  (first: environment and allocator)

import os
import sys
import time

H.setup_caches()

import numpy as np  # noqa: E402

NOPS, S = 2000, 16


def make_input():
    return np.random.default_rng(0).uniform(-1.0, 1.0, (S, S))


def chain(h, unary):
    """The workload, for any library: `unary` is its (sin, tanh, cos, sigmoid)."""
    for i in range(NOPS // 2):
        h = unary[i % 4](h)
        h = h @ h
    return h


def numpy_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def build_numpy(x):
    ops = (np.sin, np.tanh, np.cos, numpy_sigmoid)
    t0 = time.perf_counter()
    r = chain(x, ops)
    return (lambda: chain(x, ops)), {"trace": 0.0, "compile": 0.0, "run_once": time.perf_counter() - t0}, r


def build_tracesym(x, mode="FAST_RUN"):
    import tracesym as ts

    t0 = time.perf_counter()
    xs = ts.dmatrix("x")
    h = chain(xs, (ts.sin, ts.tanh, ts.cos, ts.sigmoid))
    t1 = time.perf_counter()
    f = ts.function([xs], h, mode=mode)
    t2 = time.perf_counter()
    r = f(x)
    t3 = time.perf_counter()
    from tracesym.rewrite.mode import rewrite_graph

    rewrite_graph(f.unoptimized_graph, f.mode)  # again, to split the compile time
    t4 = time.perf_counter()
    return (lambda: f(x)), {"trace": t1 - t0, "compile": t2 - t1, "run_once": t3 - t2,
                            "of which rewrite": t4 - t3,
                            "nodes after rewrites": len(f.graph.apply_nodes())}, r


def build_pytensor(x, mode="CVM"):
    import pytensor
    import pytensor.tensor as pt

    t0 = time.perf_counter()
    xs = pt.dmatrix("x")
    h = chain(xs, (pt.sin, pt.tanh, pt.cos, pt.sigmoid))
    t1 = time.perf_counter()
    f = pytensor.function([xs], h, mode=mode)
    t2 = time.perf_counter()
    r = f(x)
    t3 = time.perf_counter()
    return (lambda: f(x)), {"trace": t1 - t0, "compile": t2 - t1, "run_once": t3 - t2,
                            "nodes after rewrites": len(f.maker.fgraph.apply_nodes)}, r


def build_jax(x):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    jf = jax.jit(lambda h: chain(h, (jnp.sin, jnp.tanh, jnp.cos, jax.nn.sigmoid)))
    xj = jnp.asarray(x)
    t0 = time.perf_counter()
    lowered = jf.lower(xj)  # tracing the Python loop
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    r = compiled(xj).block_until_ready()
    t3 = time.perf_counter()
    return (lambda: compiled(xj).block_until_ready()), {"trace": t1 - t0, "compile": t2 - t1,
                                                         "run_once": t3 - t2}, np.asarray(r)


def build_torch(x, compiled=False):
    import torch

    xt = torch.from_numpy(x.copy())
    ops = (torch.sin, torch.tanh, torch.cos, torch.sigmoid)
    if not compiled:
        t0 = time.perf_counter()
        r = chain(xt, ops)
        return (lambda: chain(xt, ops)), {"trace": 0.0, "compile": 0.0,
                                          "run_once": time.perf_counter() - t0}, r.numpy()
    cf = torch.compile(lambda h: chain(h, ops), dynamic=False)
    t0 = time.perf_counter()
    r = cf(xt)  # traces, compiles and runs once: not separable
    return (lambda: cf(xt)), {"trace": 0.0, "compile": time.perf_counter() - t0, "run_once": 0.0}, r.numpy()


SYSTEMS = {  # name -> (library imported, builder); the first is the reference
    "numpy": ("numpy", build_numpy),
    "tracesym": ("tracesym", build_tracesym),
    "tracesym FAST_COMPILE": ("tracesym", lambda x: build_tracesym(x, "FAST_COMPILE")),
    "pytensor C (CVM)": ("pytensor", build_pytensor),
    "jax jit": ("jax", build_jax),
    "torch eager": ("torch", build_torch),
    "torch.compile": ("torch", lambda x: build_torch(x, compiled=True)),
}
COMPILE_CHILDREN = ("tracesym", "tracesym FAST_COMPILE", "pytensor C (CVM)", "jax jit", "torch.compile")


def child(system):
    """In a fresh process: import the library, trace, compile, run once; print the times."""
    lib, build = SYSTEMS[system]
    t0 = time.perf_counter()
    __import__(lib)
    t1 = time.perf_counter()
    _, timing, _ = build(make_input())
    H.child_result({"import": t1 - t0, **timing})


def fmt(v):
    return H.fmt_time(v) if isinstance(v, float) else str(v)


def report_compile(results: dict):
    print("\n== W7 time to first result in a fresh process (trace + compile + first run, after the "
          "import)")
    width = max(len(n) for n in results)
    print(f"{'system':<{width}}  {'cold':>9}  {'warm':>9}  details (cold)")
    for name, r in results.items():
        def first(d):
            if d is None or "error" in d:
                return "ERR" if d else "-"
            return H.fmt_time(d["trace"] + d["compile"] + d["run_once"])

        cold = r["cold"]
        det = "" if "error" in cold else ", ".join(f"{k} {fmt(v)}" for k, v in cold.items() if k != "wall")
        print(f"{name:<{width}}  {first(cold):>9}  {first(r['warm']):>9}  {det}")
        for d in (cold, r["warm"]):
            if d is not None and "error" in d:
                print(f"#   {name}: {d['error'][-600:]}")
    sys.stdout.flush()


def compile_ratios(timings: dict, label: str):
    """tracesym's compile time against each peer's, from one run."""
    ours = timings.get("tracesym", {}).get("compile")
    if not ours:
        return
    peers = [(n, t["compile"]) for n, t in timings.items()
             if not n.startswith(("tracesym", "numpy", "torch eager")) and t.get("compile")]
    if peers:
        print(f"# {label}: tracesym compile {H.fmt_time(ours)}; "
              + ", ".join(f"{n} {H.fmt_time(c)} ({c / ours:.1f}x tracesym's)" for n, c in peers))


def main():
    args = H.arg_parser(__doc__, "fewer rounds; compile times of tracesym only").parse_args()
    if args.child:
        return child(args.child)

    x = make_input()
    skipped, failures, fns, timings, ref = {}, [], {}, {}, None
    for name in H.wanted(SYSTEMS, args.only):
        lib, build = SYSTEMS[name]
        if lib in H.PEERS and H.peer(lib, skipped) is None:
            continue
        try:
            fns[name], timings[name], r = build(x)
        except Exception as e:
            H.skip(name, f"{type(e).__name__}: {e}"[:300], skipped)
            continue
        if ref is None:
            ref = r
        elif not H.check(f"W7 {name} output", r, ref, 1e-9, failures):
            del fns[name]
    H.env_report()
    print("# in process (imports done, caches warm): "
          + "; ".join(f"{n}: " + ", ".join(f"{k} {fmt(v)}" for k, v in t.items()) for n, t in timings.items()))
    compile_ratios(timings, "in process")

    stats = H.bench(fns, rounds=5 if args.quick else 11, inner=5, settle=0.1)
    H.report(f"W7 time per call of the {NOPS}-op chain, 16x16 float64", stats)

    if not args.no_compile_times:
        children = ["tracesym"] if args.quick else [n for n in COMPILE_CHILDREN if n in fns]
        results = {n: H.cold_warm(os.path.abspath(__file__), n, timeout=420) for n in children}
        if results:
            report_compile(results)
            compile_ratios({n: r["cold"] for n, r in results.items() if "error" not in r["cold"]}, "cold")
    H.print_skipped(skipped)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
