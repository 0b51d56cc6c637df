"""Run the benchmark workloads one after the other, each in its own process.

    python bench/run.py                 # every workload, full rounds and compile times
    python bench/run.py --quick         # fewer rounds (about ten seconds without peers)
    python bench/run.py w3 --quick      # just some of them

W1 to W4 and W6 time tracesym with both linkers ("c", the default, and "numpy") side by side in
one process; W7 runs once per linker (`TRACESYM_FLAGS=linker=...`), each run with its own
numpy reference.  Peers (PyTensor, JAX, PyTorch) are compared when they are importable in the
same environment; none of them is a dependency of tracesym.  Exits non-zero when a workload fails or a system
computes a different result from numpy's: the timings would not mean anything then.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = {"w1": "w1_elemwise.py", "w2": "w2_overhead.py", "w3": "w3_logreg.py",
             "w4": "w4_mlp.py", "w5": "w5_lstm.py", "w6": "w6_lenet.py", "w7": "w7_biggraph.py"}
#: workloads whose script takes the linker from the configuration: run once per linker
PER_LINKER = {"w5": ("numpy", "c"), "w7": ("numpy", "c")}


def with_linker(linker: str) -> dict:
    """The environment with `linker=` set in TRACESYM_FLAGS (other flags kept)."""
    flags = [f for f in os.environ.get("TRACESYM_FLAGS", "").split(",")
             if f and not f.startswith("linker=")]
    return dict(os.environ, TRACESYM_FLAGS=",".join(flags + [f"linker={linker}"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                    help=f"some of {', '.join(WORKLOADS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds, fewer compile children")
    ap.add_argument("--no-compile-times", action="store_true",
                    help="skip the cold/warm compile children (W3, W7)")
    args = ap.parse_args()
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    failed = []
    for name in args.workloads or list(WORKLOADS):
        cmd = [sys.executable, os.path.join(HERE, WORKLOADS[name])]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--no-compile-times"] if args.no_compile_times and name in ("w3", "w5", "w7") else []
        for linker in PER_LINKER.get(name, (None,)):
            label = name if linker is None else f"{name} linker={linker}"
            print(f"\n#### {label}: {' '.join(os.path.basename(c) for c in cmd[1:])}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.call(cmd, env=None if linker is None else with_linker(linker))
            print(f"#### {label}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            if rc:
                failed.append(label)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
