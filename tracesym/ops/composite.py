"""Scalar programs: the straight-line scalar body of an elementwise node.

A `Program` is what every backend turns into one loop: its inputs (by dtype), a list of
`Step`s, each one row of the scalar table applied to earlier values, and which values are the
outputs.  A plain `Elemwise` node is a one-step program (`program_of`); a fused node holds a
longer one.  The numpy `evaluate` is the reference the compiled loops are tested against.

A value reference (`Ref`) is `("in", i)` (input i), `("step", j)` (the result of step j), or
`("const", value, dtype)` (a scalar constant folded into the body).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import scalar as S
from .elemwise import Elemwise


@dataclass(frozen=True)
class Step:
    op: str  # a name in scalar.TABLE
    args: tuple  # Refs
    dtype: str  # the result's dtype: numpy's for the arguments' dtypes


@dataclass(frozen=True)
class Program:
    in_dtypes: tuple
    steps: tuple
    outputs: tuple  # Refs, one per output

    def dtype_of(self, ref) -> str:
        kind = ref[0]
        if kind == "in":
            return self.in_dtypes[ref[1]]
        if kind == "step":
            return self.steps[ref[1]].dtype
        return ref[2]

    @property
    def out_dtypes(self) -> tuple:
        return tuple(self.dtype_of(r) for r in self.outputs)

    def evaluate(self, inputs) -> list:
        """The outputs for numpy `inputs` (broadcast against each other), step by step with
        each row's numpy implementation, so the result is what the unfused graph gives."""
        vals = []

        def get(ref):
            if ref[0] == "in":
                return inputs[ref[1]]
            if ref[0] == "step":
                return vals[ref[1]]
            return np.asarray(ref[1], dtype=ref[2])

        with np.errstate(all="ignore"):
            for st in self.steps:
                r = S.TABLE[st.op].impl(*[get(a) for a in st.args])
                vals.append(np.asarray(r, dtype=st.dtype))
            return [get(r) for r in self.outputs]


def program_of(node) -> Program:
    """The scalar program of an elementwise Apply node: its Op's own `program` where it has
    one (a fused node), else the one step of a plain `Elemwise`."""
    prog = getattr(node.op, "program", None)
    if prog is not None:
        return prog
    if not isinstance(node.op, Elemwise):
        raise TypeError(f"{node.op} is not an elementwise Op")
    step = Step(node.op.scalar_op.name, tuple(("in", i) for i in range(len(node.inputs))),
                node.outputs[0].dtype)
    return Program(tuple(v.dtype for v in node.inputs), (step,), (("step", 0),))
