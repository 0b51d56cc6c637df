"""Run-time checks that a rewrite keeps when it removes the Op that would have made them.

The shape rewrites compute `f(x).shape` from `x.shape` without running `f`; where `f` would
have failed on mismatched sizes (broadcasting, the inner dims of a product, a reshape), the
sizes it compared are compared by a `CheckSizes` node on the path of the shape instead, so the
function still fails, naming the Op and the sizes.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, as_variable
from .base import Op

__all__ = ["CheckSizes"]

#: how a pair of sizes (a, b) must agree
KINDS = {"eq": "a == b", "bcast": "a == b or a == 1"}


class CheckSizes(Op):
    """`x` (an int64 shape or size) passed through, after checking that each pair of int64
    scalars after it agrees: `checks` holds one `(kind, message)` per pair, `kind` "eq" (equal)
    or "bcast" (equal, or the first is 1), `message` a format string over the sizes `{a}` and
    `{b}` raised as a ShapeError prefixed by `what` (the Op that was removed)."""

    __props__ = ("what", "checks")
    differentiable = False
    view_map = {0: [0]}

    def __init__(self, what, checks):
        self.what = str(what)
        self.checks = tuple((str(k), str(m)) for k, m in checks)
        for kind, _ in self.checks:
            if kind not in KINDS:
                raise ValueError(f"CheckSizes: unknown check {kind!r}; known: {', '.join(KINDS)}")

    def __str__(self):
        return f"CheckSizes{{{self.what}}}"

    __repr__ = __str__

    def make_node(self, x, *sizes):
        x, sizes = as_variable(x), [as_variable(s) for s in sizes]
        if len(sizes) != 2 * len(self.checks):
            raise TypeError(f"{self}: {len(self.checks)} checks need {2 * len(self.checks)} sizes, "
                            f"got {len(sizes)}")
        for s in sizes:
            if s.ndim != 0 or s.dtype[0] not in "iu":
                raise TypeError(f"{self}: sizes must be integer scalars, got {s.type.short()}")
        return Apply(self, [x, *sizes], [x.type.make_variable()])

    def perform(self, node, inputs):
        x, *sizes = inputs
        for (kind, message), a, b in zip(self.checks, sizes[::2], sizes[1::2]):
            a, b = int(a), int(b)
            if not (a == b or kind == "bcast" and a == 1):
                raise ShapeError(f"{self.what}: {message.format(a=a, b=b)}")
        return (np.asarray(x),)

    def L_op(self, inputs, outputs, output_grads):
        return [None] * len(inputs)

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]
