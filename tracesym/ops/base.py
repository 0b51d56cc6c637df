"""The Op base class: one class per operation, holding all of its facets.

An Op declares
  * `make_node(*inputs) -> Apply`: checks and converts inputs, infers output types;
  * `perform(node, inputs) -> sequence of ndarrays`: the numpy reference, always present;
  * `L_op(inputs, outputs, output_grads) -> input grads` (or the simpler `grad(inputs,
    output_grads)`): the symbolic vector-Jacobian product, built from Ops;
  * optionally `R_op(inputs, eval_points)` and `infer_shape(node, input_shapes)`.

Ops are compared and hashed by their `__props__`, so equal Ops applied to the same inputs
merge.  Every concrete Op class is listed in `OP_REGISTRY`, which the gradient tests walk.
"""

from __future__ import annotations

from ..errors import GradientError
from ..trace.context import apply

OP_REGISTRY: list[type] = []


class Op:
    abstract = True  # subclasses that are not concrete Ops say so too
    __props__: tuple = ()
    #: False for Ops whose outputs do not depend differentiably on any input (argmax, shape...)
    differentiable = True
    #: False for Ops constant folding must not evaluate at compile time (random draws)
    foldable = True
    #: {output index: [input index]}: the output is written into that input's buffer
    destroy_map: dict = {}
    #: {output index: [input index]}: the output may be a view of that input (no copy)
    view_map: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not cls.__dict__.get("abstract", False):
            OP_REGISTRY.append(cls)

    def _props(self):
        return tuple(getattr(self, p) for p in self.__props__)

    def __eq__(self, other):
        return type(self) is type(other) and self._props() == other._props()

    def __hash__(self):
        return hash((type(self), self._props()))

    def __str__(self):
        props = self._props()
        if not props:
            return type(self).__name__
        return f"{type(self).__name__}{{{', '.join(_fmt(p) for p in props)}}}"

    __repr__ = __str__

    def __call__(self, *inputs):
        return apply(self, *inputs)

    def make_node(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__}.make_node")

    def perform(self, node, inputs):
        raise NotImplementedError(f"{type(self).__name__}.perform")

    def L_op(self, inputs, outputs, output_grads):
        """Vector-Jacobian product.  `output_grads[i]` is None where output i is disconnected
        from the cost.  Returns one entry per input: a Variable, or None for an input the
        outputs do not depend on differentiably (integer indices, shapes)."""
        return self.grad(inputs, output_grads)

    def grad(self, inputs, output_grads):
        raise GradientError(f"{self} defines no gradient")

    def R_op(self, inputs, eval_points):
        """Jacobian-vector product, or None to let `Rop` use the double-Lop construction."""
        return None

    def infer_shape(self, node, input_shapes):
        """Symbolic output shapes (tuples of int64 scalars) from the inputs' shapes, or None
        when the Op cannot say without computing its output."""
        return None


def _fmt(p):
    if isinstance(p, tuple):
        return "(" + ",".join(map(str, p)) + ("," if len(p) == 1 else "") + ")"
    return str(p)
