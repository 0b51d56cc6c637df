"""Loops: `scan` (a step function traced once into the inner graph of one `Scan` node), its
gradient (another scan, going backwards), its rewrites, and `map`/`reduce`/`foldl`/`foldr`.

Importing this package registers the scan rewrites and hooks the rewriter so that each
function compiles the inner graphs of its scans with its own mode."""

from . import rewrites, warm  # noqa: F401  (registers the rules and the compile hooks)
from .op import Scan
from .scan import foldl, foldr, map, reduce, scan

__all__ = ["Scan", "scan", "map", "reduce", "foldl", "foldr"]
