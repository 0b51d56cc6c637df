"""W2, call overhead: out = ((x*2 + 1)**2).sum() on a 10-element float64 vector.

The work is a few nanoseconds, so the time per call is the price of calling a compiled function
at all: argument checks, dispatch, running the kernels (fused into one reduction; with linker
"c" one C call, `backend/c/entry.py`), returning.  Compared with numpy
evaluating the expression eagerly and, when they are installed, PyTensor, JAX and PyTorch, each
given its native input prepared once.  tracesym is timed with both linkers ("numpy", the
default, and "c"), through `ts.function` and through `@ts.compile` (which adds its
trace-signature lookup); every call validates its argument's dtype and ndim.

Run: python bench/w2_overhead.py [--quick]
"""

import _harness as H  # noqa: I001  (first: environment and allocator)

import argparse
import sys
import time

H.setup_caches()

import numpy as np  # noqa: E402

import tracesym as ts  # noqa: E402


def expr(a):
    return ((a * 2 + 1) ** 2).sum()


def systems_under_test(x, skipped, quick):
    """{name: callable} for numpy, tracesym and every importable peer; also compile times."""
    compile_s = {}
    systems = {"python no-op call (floor)": lambda: None, "numpy": lambda: expr(x)}

    for linker in ("numpy", "c"):
        mode = ts.Mode(linker=linker)
        t0 = time.perf_counter()
        xs = ts.dvector("x")
        f = ts.function([xs], expr(xs), mode=mode)
        f(x)
        compile_s[f"tracesym function {linker}"] = time.perf_counter() - t0
        systems[f"tracesym function {linker}"] = lambda f=f: f(x)

        @ts.compile(mode=mode)
        def g(a: ts.dvector):
            return expr(a)

        g(x)
        systems[f"tracesym @compile {linker}"] = lambda g=g: g(x)

    pytensor = H.peer("pytensor", skipped)
    if pytensor is not None:
        import pytensor.tensor as pt

        v = pt.dvector("x")
        for label, trust in (("pytensor (default mode)", False), ("pytensor trust_input", True)):
            try:
                t0 = time.perf_counter()
                pf = pytensor.function([v], expr(v))
                pf.trust_input = trust
                pf(x)
                compile_s[label] = time.perf_counter() - t0
                systems[label] = lambda pf=pf: pf(x)
            except Exception as e:
                H.skip(label, repr(e)[:300], skipped)

    jax = H.peer("jax", skipped)
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
        jf = jax.jit(expr)
        xj = jax.numpy.asarray(x)
        t0 = time.perf_counter()
        jf(xj).block_until_ready()
        compile_s["jax jit"] = time.perf_counter() - t0
        systems["jax jit"] = lambda: jf(xj).block_until_ready()

    torch = H.peer("torch", skipped)
    if torch is not None:
        xt = torch.from_numpy(x.copy())
        systems["torch eager"] = lambda: expr(xt)
        if not quick:
            try:
                tf = torch.compile(expr, dynamic=False)
                t0 = time.perf_counter()
                tf(xt)
                compile_s["torch.compile"] = time.perf_counter() - t0
                systems["torch.compile"] = lambda: tf(xt)
            except Exception as e:
                H.skip("torch.compile", repr(e)[:300], skipped)
    return systems, compile_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, no torch.compile")
    args = ap.parse_args()
    x = np.linspace(-1.0, 1.0, 10)
    ref = float(expr(x))
    skipped, failures = {}, []
    systems, compile_s = systems_under_test(x, skipped, args.quick)
    H.env_report()
    for name in list(systems):
        if name.startswith("python"):
            continue
        out = systems[name]()
        if not H.check(f"W2 {name}", float(out), ref, 1e-14, failures):
            del systems[name]
    stats = H.bench(systems, rounds=5 if args.quick else 15, inner=1000, settle=0.05, rewarm=0.02)
    H.report("W2 time per call, ((x*2 + 1)**2).sum() on 10 float64", stats)
    print("# compile + first call, in process: "
          + ", ".join(f"{k} {H.fmt_time(v)}" for k, v in compile_s.items()))
    H.print_skipped(skipped)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
