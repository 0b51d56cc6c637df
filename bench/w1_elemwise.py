"""W1, fused elementwise: out = sigmoid(x*y + 1.5) * tanh(x) + exp(-x*x) on float64 and
float32 vectors of n = 10**7 and 10**4.

The fusion rewrite makes this one node, which the C backend runs as one loop (one pass over
x and y, one write of out); the numpy backend evaluates the same fused program step by step
with numpy, and numpy itself evaluates the expression eagerly.  The streaming floor is
np.add(x, y, out=z) on the same arrays: 2 reads + 1 write, the least any system can move.
The C loop runs on OpenMP's threads from `cgen.PARALLEL_MIN` elements on (OMP_NUM_THREADS
sets how many); numpy and the numpy backend run on one.

Run: python bench/w1_elemwise.py [--quick]
"""

import _harness as H  # noqa: I001  (first: environment and allocator)

import argparse
import sys

H.setup_caches()

import numpy as np  # noqa: E402

import tracesym as ts  # noqa: E402


def w1(x, y):
    sig = 1 / (1 + np.exp(-(x * y + 1.5)))
    return sig * np.tanh(x) + np.exp(-x * x)


def w1_sym(x, y):
    return ts.sigmoid(x * y + 1.5) * ts.tanh(x) + ts.exp(-x * x)


def run_w1(n, dtype, quick, failures):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    z = np.empty_like(x)
    xs, ys = ts.vector("x", dtype=dtype), ts.vector("y", dtype=dtype)
    fc = ts.function([xs, ys], w1_sym(xs, ys), mode=ts.Mode(linker="c"))
    fn = ts.function([xs, ys], w1_sym(xs, ys), mode=ts.Mode(linker="numpy"))
    ref = w1(x.astype("float64"), y.astype("float64"))
    systems = {"np.add floor": lambda: np.add(x, y, out=z), "numpy": lambda: w1(x, y),
               "tracesym c": lambda: fc(x, y), "tracesym numpy": lambda: fn(x, y)}
    tol = 1e-5 if dtype == "float32" else 1e-13
    for name in ("tracesym c", "tracesym numpy"):
        if not H.check(f"W1 {name} {dtype} n={n}", systems[name](), ref, tol, failures):
            del systems[name]
    big = n >= 10**6
    stats = H.bench(systems, rounds=3 if quick else (7 if big else 11), inner=1 if big else 200,
                    settle=0.1 if big else 0.03, rewarm=0.0 if big else 0.02)
    H.report(f"W1 {dtype} n={n}", stats)
    floor = stats["np.add floor"]["median"]
    print("# vs the streaming floor: " + ", ".join(
        f"{k} {v['median'] / floor:.2f}x" for k, v in stats.items() if k != "np.add floor"))
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, n = 10**6 for the big case")
    args = ap.parse_args()
    H.env_report()
    failures = []
    big = 10**6 if args.quick else 10**7
    for n in (big, 10**4):
        for dtype in ("float64", "float32"):
            run_w1(n, dtype, args.quick, failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
