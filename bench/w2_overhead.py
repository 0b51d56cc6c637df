"""W2, call overhead: out = ((x*2 + 1)**2).sum() on a 10-element float64 vector.

Prints the time per call of the compiled function against numpy's eager expression and the
peers that are installed (PyTensor, JAX, PyTorch).  Run: python bench/w2_overhead.py [--quick]
"""

import _harness as H  # noqa: I001  (first: sets up the allocator)

import argparse

import numpy as np

import tracesym as ts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    x = np.linspace(-1.0, 1.0, 10)
    ref = ((x * 2 + 1) ** 2).sum()

    xs = ts.dvector("x")
    f = ts.function([xs], ((xs * 2 + 1) ** 2).sum())
    systems = {"numpy": lambda: ((x * 2 + 1) ** 2).sum(), "tracesym": lambda: f(x)}

    peers = H.optional_peers()
    if "pytensor" in peers:
        import pytensor.tensor as pt

        v = pt.dvector("x")
        pf = peers["pytensor"].function([v], ((v * 2 + 1) ** 2).sum())
        systems["pytensor"] = lambda: pf(x)
    if "jax" in peers:
        peers["jax"].config.update("jax_enable_x64", True)
        jf = peers["jax"].jit(lambda a: ((a * 2 + 1) ** 2).sum())
        xj = peers["jax"].numpy.asarray(x)
        systems["jax jit"] = lambda: jf(xj).block_until_ready()
    if "torch" in peers:
        xt = peers["torch"].from_numpy(x.copy())
        systems["torch eager"] = lambda: ((xt * 2 + 1) ** 2).sum()

    for name, fn in systems.items():
        got = float(fn())
        assert abs(got - ref) <= 1e-12 * abs(ref), (name, got, ref)
    stats = H.bench(systems, rounds=5 if args.quick else 15, inner=1000)
    H.report("W2 time per call (10-element float64 vector)", stats)


if __name__ == "__main__":
    main()
