"""Timing harness for the benchmark workloads (bench/README.md).

Import it first: it re-executes the script with glibc told to keep freed memory (these VMs
hand freed pages back to the host, so re-touching them page-faults and big-array timings would
depend on what ran before) and drops OpenBLAS tuning variables.

`bench(systems)` times the systems interleaved: each round times every system once (a block of
`inner` calls) in a rotating order, after a short sleep and an untimed re-warm so thread pools
spun up by the previous system do not steal a core.  Figures are medians over rounds.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

_RETAIN = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "1099511627776"}
if any(os.environ.get(k) != v for k, v in _RETAIN.items()):
    os.environ.update(_RETAIN)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(var, None)
    os.execv(sys.executable, [sys.executable] + sys.argv)


def bench(systems: dict, rounds=11, inner=100, settle=0.05, rewarm=0.02):
    """{name: callable} -> {name: (median, min, max) seconds per call}."""
    names = list(systems)
    times = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            fn = systems[n]
            time.sleep(settle)
            t_end = time.perf_counter() + rewarm
            while time.perf_counter() < t_end:
                fn()
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[n].append((time.perf_counter() - t0) / inner)
    return {n: (statistics.median(t), min(t), max(t)) for n, t in times.items()}


def fmt_time(s):
    for unit, k in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s:.3g} s"


def report(title, stats, ref="numpy"):
    """Print median times and ratios to the reference and to every other system."""
    print(f"\n{title}")
    base = stats[ref][0]
    width = max(len(n) for n in stats)
    print(f"  {'system':{width}s}  {'median':>10s}  {'min':>10s}  {'vs ' + ref:>9s}")
    for n, (med, lo, hi) in stats.items():
        print(f"  {n:{width}s}  {fmt_time(med):>10s}  {fmt_time(lo):>10s}  {med / base:8.2f}x")
    ts_names = [n for n in stats if n.startswith("tracesym")]
    for t in ts_names:
        others = ", ".join(f"{stats[t][0] / stats[n][0]:.2f}x {n}" for n in stats if n != t)
        print(f"  {t} relative to: {others}")


def optional_peers():
    """Peer libraries importable here (none of them is a dependency of tracesym)."""
    found = {}
    for name in ("pytensor", "jax", "torch"):
        try:
            found[name] = __import__(name)
        except Exception:
            pass
    return found
