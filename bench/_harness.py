"""Timing harness for the benchmark workloads (bench/README.md).

Import it before numpy, torch or jax.  On import it

* drops `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE`, which pin OpenBLAS to a slower kernel on
  some machines (for benchmark runs only; tests and CI keep the environment as it is);
* re-executes the script with glibc told to keep the memory it frees
  (`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1 TiB`).  The VMs these numbers come from hand
  freed pages back to the host, so memory that is freed and touched again page-faults, and a
  big-array timing would depend on what ran before it.  `TRACESYM_BENCH_MALLOC=default` keeps
  the plain allocator (and says so in the report).

`bench(systems)` times the systems interleaved: every round times each system once (a block of
`inner` calls), in an order that rotates between rounds.  Before each block it collects garbage,
sleeps `settle` seconds (thread pools of the system timed just before spin for a while and
would steal one of two cores) and re-warms the system untimed for `rewarm` seconds, so a block
measures the steady state of a loop.  Figures are medians over rounds of the per-call time.

Cold and warm compile times are measured in child processes (`cold_warm`): cold is a fresh
process with empty cache directories, warm a fresh process with the caches the cold one filled.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SCRUBBED = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.pop(v, None) is not None]
RETAIN = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
MALLOC = os.environ.get("TRACESYM_BENCH_MALLOC", "retain")
if MALLOC == "retain" and any(os.environ.get(k) != v for k, v in RETAIN.items()):
    os.environ.update(RETAIN)
    os.execv(sys.executable, [sys.executable] + sys.argv)

PEERS = ("pytensor", "jax", "torch")
CACHE_ROOT = os.environ.get("TRACESYM_BENCH_CACHE",
                            os.path.join(tempfile.gettempdir(), "tracesym-bench-cache"))


# -- environment -------------------------------------------------------------------------------

def setup_caches(root: str = CACHE_ROOT):
    """Point every system's on-disk compile cache under `root` (set before importing them), so
    benchmarks never touch a user's caches and a child process can start from empty ones."""
    os.makedirs(root, exist_ok=True)
    flags = [f for f in os.environ.get("TRACESYM_FLAGS", "").split(",") if f and
             not f.startswith("compiledir=")]
    os.environ["TRACESYM_FLAGS"] = ",".join(flags + [f"compiledir={os.path.join(root, 'tracesym')}"])
    flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f and
             not f.startswith("base_compiledir=")]
    os.environ["PYTENSOR_FLAGS"] = ",".join(flags + [f"base_compiledir={os.path.join(root, 'pytensor')}"])
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(root, "jax")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(root, "inductor")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def peer(name: str, skipped: dict):
    """Import an optional peer library, or record why it is missing and return None."""
    try:
        return __import__(name)
    except Exception as e:  # not installed, or broken: a benchmark goes on without it
        skipped[name] = f"not importable ({type(e).__name__}: {e})"[:200]
        return None


def env_report():
    """Print what the figures depend on: versions, cores, BLAS threads, allocator mode."""
    import platform

    import numpy as np

    import tracesym

    libs = [f"tracesym {tracesym.__version__}", f"numpy {np.__version__}"]
    for name in PEERS:
        mod = sys.modules.get(name)
        if mod is not None:
            libs.append(f"{name} {getattr(mod, '__version__', '?')}")
    print(f"# python {platform.python_version()}, {os.cpu_count()} cpus; " + ", ".join(libs))
    try:
        import threadpoolctl

        for p in threadpoolctl.threadpool_info():
            print(f"#   threadpool: {p.get('internal_api')} {p.get('version')}, "
                  f"{p.get('num_threads')} threads ({os.path.basename(p.get('filepath') or '')})")
    except ImportError:
        pass
    mode = "retain (" + ", ".join(f"{k}={v}" for k, v in RETAIN.items()) + ")" \
        if MALLOC == "retain" else MALLOC
    print(f"# malloc: {mode}" + (f"; unset for this run: {', '.join(SCRUBBED)}" if SCRUBBED else ""))
    sys.stdout.flush()


# -- numerical agreement -----------------------------------------------------------------------

def max_rel_err(a, b) -> float:
    """max|a - b| / max|b|: a norm-wise relative error that tolerates zeros in `b`."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b), initial=0.0) / max(float(np.max(np.abs(b), initial=0.0)), 1e-300))


def check(label: str, value, ref, rtol: float, failures: list) -> bool:
    """Compare a system's result with the reference; print the verdict, remember failures."""
    err = max_rel_err(value, ref)
    ok = err <= rtol
    if not ok:
        failures.append(label)
    print(f"# check {label}: max rel err {err:.1e} (tol {rtol:.0e}) {'ok' if ok else 'MISMATCH'}")
    sys.stdout.flush()
    return ok



def check_trainers(workload: str, objs: dict, first: dict, names, n_steps: int,
                   cost_tol: float, param_tol: float, failures: list):
    """Compare every trainer's first `n_steps` costs and its parameters after them with
    numpy's (`first` from `build_trainers`); drop a trainer that differs from `objs`: its
    timing would not mean anything."""
    ref_costs, ref_params = first["numpy"][1], first["numpy"][2]
    print(f"# numpy costs of the first {n_steps} steps: " + " ".join(f"{c:.6f}" for c in ref_costs))
    for name in [n for n in objs if n != "numpy"]:
        _, costs, params = first[name]
        ok = check(f"{workload} {name} costs", costs, ref_costs, cost_tol, failures)
        for label, p, pr in zip(names, params, ref_params):
            ok &= check(f"{workload} {name} {label} after {n_steps} steps", p, pr, param_tol,
                        failures)
        if not ok:
            del objs[name]

# -- timing ------------------------------------------------------------------------------------

def bench(systems: dict, rounds=11, inner=100, warmup=2, settle=0.1, rewarm=0.03) -> dict:
    """{name: callable} -> {name: {median, min, max, rounds, inner}} in seconds per call."""
    names = list(systems)
    for name in names:
        for _ in range(warmup):
            systems[name]()
    times = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = systems[name]
            gc.collect()
            time.sleep(settle)
            fn()
            t_end = time.perf_counter() + rewarm
            while time.perf_counter() < t_end:
                fn()
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - t0) / inner)
    return {n: {"median": statistics.median(t), "min": min(t), "max": max(t),
                "rounds": rounds, "inner": inner} for n, t in times.items()}


def fmt_time(s) -> str:
    if s is None:
        return "-"
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def report(title: str, stats: dict, ref: str = "numpy"):
    """The table of medians with ratios to `ref`, then each tracesym row against every peer."""
    print(f"\n== {title}")
    width = max(len(n) for n in stats)
    base = stats[ref]["median"]
    print(f"{'system':<{width}}  {'median':>9}  {'min':>9}  {'max':>9}  {'/ ' + ref:>8}  rounds x calls")
    for n, s in stats.items():
        print(f"{n:<{width}}  {fmt_time(s['median']):>9}  {fmt_time(s['min']):>9}  "
              f"{fmt_time(s['max']):>9}  {s['median'] / base:7.2f}x  {s['rounds']}x{s['inner']}")
    for t in (n for n in stats if n.startswith("tracesym")):
        ratios = ", ".join(f"{stats[t]['median'] / stats[n]['median']:.2f}x {n}"
                           for n in stats if n != t and not n.startswith("tracesym") and "floor" not in n)
        print(f"{t} time / other: {ratios}")
    sys.stdout.flush()


def skip(name: str, why: str, skipped: dict):
    skipped[name] = why
    print(f"# skip {name}: {why}")
    sys.stdout.flush()


def print_skipped(skipped: dict):
    for name, why in skipped.items():
        if name in PEERS:
            print(f"# {name}: {why}")


# -- cold / warm compile in child processes ----------------------------------------------------

def child_result(d: dict):
    """What a `--child SYSTEM` run prints for its parent to parse."""
    print("CHILD_RESULT " + json.dumps(d))
    sys.stdout.flush()


def run_child(script: str, system: str, cache_root: str, timeout: float = 300) -> dict:
    env = dict(os.environ, TRACESYM_BENCH_CACHE=cache_root)
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, script, "--child", system], env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("CHILD_RESULT "):
            return {**json.loads(line[len("CHILD_RESULT "):]), "wall": time.perf_counter() - t0}
    return {"error": f"exit {p.returncode}: {(p.stdout[-300:] + p.stderr[-700:]).strip()}"}


def cold_warm(script: str, system: str, timeout: float = 300) -> dict:
    """Cold: fresh process, empty caches; warm: fresh process, the caches the cold run left."""
    root = tempfile.mkdtemp(prefix="tracesym-bench-cold-")
    try:
        cold = run_child(script, system, root, timeout)
        warm = run_child(script, system, root, timeout) if "error" not in cold else None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"cold": cold, "warm": warm}


def report_compile(title: str, results: dict):
    print(f"\n== {title}")
    print("(fresh process; 'first step' = build the graph + gradient + compile + run one step, "
          "after the imports)")
    width = max(len(n) for n in results)
    print(f"{'system':<{width}}  {'cold':>8}  {'warm':>8}  {'import':>8}")
    for name, r in results.items():
        cold, warm = r["cold"], r["warm"]

        def first(x):
            return "-" if x is None else ("ERR" if "error" in x else fmt_time(x["first_step"]))

        imp = fmt_time(cold.get("import"))
        print(f"{name:<{width}}  {first(cold):>8}  {first(warm):>8}  {imp:>8}")
        for x in (cold, warm):
            if x is not None and "error" in x:
                print(f"#   {name}: {x['error'][-600:]}")
    sys.stdout.flush()


# -- the workload scripts' common parts ------------------------------------------------------

def arg_parser(doc: str, quick_help: str = "fewer rounds") -> argparse.ArgumentParser:
    """The options every workload script takes."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--no-compile-times", action="store_true", help="skip the child processes")
    ap.add_argument("--only", help="comma-separated systems to run besides numpy")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    return ap


def wanted(systems: dict, only) -> list:
    """numpy, and the systems `--only` names (all of them without it)."""
    return [n for n in systems if n == "numpy" or not only or n in only.split(",")]


def build_trainers(systems: dict, only, data: tuple, n_steps: int, skipped: dict):
    """Build each wanted system's trainer (`factory(*data)`, an object with `step()` and
    `params()`) and run `n_steps` steps: ({name: trainer}, {name: (seconds, costs, params)}).
    A system whose library is missing or that fails is skipped with its reason."""
    objs, first = {}, {}
    for name in wanted(systems, only):
        lib, factory = systems[name]
        if lib in PEERS and peer(lib, skipped) is None:
            continue
        try:
            t0 = time.perf_counter()
            objs[name] = factory(*data)
            costs = [float(objs[name].step()) for _ in range(n_steps)]
            first[name] = (time.perf_counter() - t0, costs, objs[name].params())
        except Exception as e:
            objs.pop(name, None)
            skip(name, f"{type(e).__name__}: {e}"[:300], skipped)
    return objs, first
