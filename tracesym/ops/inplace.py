"""Destructive (in-place) variants of Ops, which the `inplace` rewrite substitutes where no
other reader can see the overwritten buffer (see `tracesym/rewrite/inplace.py`).

`InplaceElemwise` writes its result into one of its inputs' buffers instead of allocating a
new array.  Nothing builds one from user code: graphs stay functional until the last rewrite
phase, which proves the destroyed input dead before choosing it.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .elemwise import Elemwise


def check_can_hold(op, node, o, i):
    """Raise unless input `i` of `node` can hold output `o` in place: the same dtype, and no
    dimension it would be broadcast along."""
    x, out = node.inputs[i], node.outputs[o]
    if x.dtype != out.dtype:
        raise TypeError(f"{op}: cannot write output {o} ({out.dtype}) into input {i} of dtype "
                        f"{x.dtype}")
    if x.ndim != out.ndim or any(a == 1 and b != 1 for a, b in zip(x.type.shape, out.type.shape)):
        raise ShapeError(f"{op}: input {i} ({x.type.short()}) is broadcast to output {o}'s "
                         f"shape {out.type.short()}, so it cannot hold it")

__all__ = ["InplaceElemwise"]


class InplaceElemwise(Elemwise):
    """`Elemwise` whose output is written into the input named by `inplace_pattern`
    ({output: input}, kept as sorted pairs so the Op hashes).  Elemwise has one output, so the
    pattern is `{0: i}`.  The destroyed input must already have the output's dtype and shape
    (it is not broadcast).

    A scalar op implemented by a numpy ufunc writes through `out=`; any other (`where`, a fused
    Composite) is evaluated and copied into the buffer.  A read-only buffer (a constant's data,
    a broadcast view) is never written: the result is then a new array, as for `Elemwise`.
    Gradient and shape inference are the parent's."""

    __props__ = ("scalar_op", "inplace_pattern")

    def __init__(self, scalar_op, inplace_pattern):
        super().__init__(scalar_op)
        pairs = inplace_pattern.items() if isinstance(inplace_pattern, dict) else inplace_pattern
        self.inplace_pattern = tuple(sorted((int(o), int(i)) for o, i in pairs))
        if [o for o, _ in self.inplace_pattern] != [0]:
            raise ValueError(f"InplaceElemwise has one output: its inplace_pattern must be "
                             f"{{0: input}}, got {dict(self.inplace_pattern)}")
        self.destroy_map = {0: [self.inplace_pattern[0][1]]}

    @property
    def destroyed(self) -> int:
        """The position of the input whose buffer the output overwrites."""
        return self.inplace_pattern[0][1]

    def __str__(self):
        return f"Elemwise{{{self.scalar_op.name},inplace:{self.destroyed}}}"

    __repr__ = __str__

    def make_node(self, *inputs):
        node = super().make_node(*inputs)
        i = self.destroyed
        if not 0 <= i < len(node.inputs):
            raise ValueError(f"{self}: input {i} does not exist ({len(node.inputs)} inputs)")
        check_can_hold(self, node, 0, i)
        return node

    def perform(self, node, inputs):
        buf = inputs[self.destroyed]
        if type(buf) is not np.ndarray or not buf.flags.writeable:
            return super().perform(node, inputs)
        impl = getattr(self.scalar_op, "impl", None)
        if isinstance(impl, np.ufunc) and impl.nout == 1:
            with np.errstate(all="ignore"):
                return (impl(*inputs, out=buf),)
        (r,) = super().perform(node, inputs)
        np.copyto(buf, r, casting="unsafe")
        return (buf,)
