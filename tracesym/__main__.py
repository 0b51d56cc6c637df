"""Command line: `python -m tracesym cache {list,clear,info}` inspects or empties the kernel
cache in `config.compiledir` (set it with TRACESYM_FLAGS=compiledir=...)."""

from __future__ import annotations

import argparse
import sys
import time


def _cache(action: str) -> int:
    from .backend.c import cache
    from .config import config

    root = config.compiledir
    if action == "list":
        for e in cache.entries(root):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["mtime"]))
            print(f"{e['name']}  {e['bytes']:>9}  {when}  {'ok' if e['ok'] else 'CORRUPT'}")
    elif action == "info":
        es = cache.entries(root)
        problem = cache.toolchain_problem()
        cc = cache.compiler()
        print(f"directory: {root}")
        print(f"entries:   {len(es)} ({sum(e['bytes'] for e in es)} bytes, "
              f"{sum(not e['ok'] for e in es)} corrupt)")
        print(f"compiler:  {cc[0] + ' ' + cc[1] if cc else 'none'}")
        print(f"flags:     {' '.join(cache.flags() + cache.libs())}")
        if problem:
            print(f"C kernels unavailable: {problem}")
    else:
        print(f"removed {cache.clear(root)} entries from {root}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tracesym")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cache", help="the on-disk cache of compiled kernels")
    c.add_argument("action", choices=("list", "clear", "info"))
    args = ap.parse_args(argv)
    return _cache(args.action)


if __name__ == "__main__":
    sys.exit(main())
