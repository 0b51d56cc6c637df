"""Random draws as Ops.  Each takes a generator state and returns the next state with the draw.

A state is a uint64 vector of length 6 holding numpy's PCG64 bit-generator state: the 128-bit
state and increment as (high, low) words, then `has_uint32` and `uinteger`.  Being an ordinary
tensor, it lives in a shared variable, advances through an update, and travels through scan or
any backend like any other value.  Every Op here is a pure function of its inputs (the same
state gives the same draw and the same next state), so equal draws may merge; they are never
folded at compile time (`foldable = False`).  Draws are not differentiable: a gradient stops at
them (the location/scale arithmetic of `normal` and `uniform` lives outside the Ops, in
`tracesym.random`, and is differentiable).

The user-facing side, with one state per draw and the updates that advance them, is
`tracesym.random.RandomStream`.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ShapeError
from ..trace.graph import Apply, as_variable
from ..trace.types import TensorType
from .base import Op
from .elemwise import cast
from .shape import _fmt_shape, _int64, _int_scalars, _static_value, static_or

#: the type of a generator state
STATE_TYPE = TensorType("uint64", (6,))
_MASK64 = (1 << 64) - 1
_local = threading.local()


def pack_state(bit_generator_state: dict) -> np.ndarray:
    """A PCG64 `bit_generator.state` dict as a uint64[6] state vector."""
    if bit_generator_state.get("bit_generator") != "PCG64":
        raise ValueError(f"a random state must come from a PCG64 bit generator, got "
                         f"{bit_generator_state.get('bit_generator')!r}")
    s, inc = bit_generator_state["state"]["state"], bit_generator_state["state"]["inc"]
    return np.array([s >> 64, s & _MASK64, inc >> 64, inc & _MASK64,
                     bit_generator_state["has_uint32"], bit_generator_state["uinteger"]],
                    dtype=np.uint64)


def new_state(seed) -> np.ndarray:
    """A fresh state vector seeded from `seed` (an int, None or a `np.random.SeedSequence`)."""
    return pack_state(np.random.PCG64(seed).state)


def generator(state) -> np.random.Generator:
    """A numpy Generator positioned at `state` (a uint64[6] vector); the vector is not changed.
    The bit generator object is reused per thread, as building one costs more than a draw."""
    bg = getattr(_local, "bit_generator", None)
    if bg is None:
        bg = _local.bit_generator = np.random.PCG64(0)
    w = np.asarray(state, dtype=np.uint64).tolist()
    bg.state = {"bit_generator": "PCG64", "state": {"state": (w[0] << 64) | w[1],
                                                    "inc": (w[2] << 64) | w[3]},
                "has_uint32": w[4], "uinteger": w[5]}
    return np.random.Generator(bg)


def check_fits(what, params, static_size):
    """numpy's rule for distribution parameters: each must broadcast to the requested size
    without enlarging it.  Checked where the static shapes decide it."""
    for p in params:
        if p.ndim > len(static_size):
            raise ShapeError(f"{what}: a parameter of shape {p.type.short()} has more dimensions "
                             f"than the size {_fmt_shape(static_size)}")
        for s, d in zip(reversed(p.type.shape), reversed(static_size)):
            if s not in (None, 1) and d is not None and s != d:
                raise ShapeError(f"{what}: a parameter of shape {p.type.short()} does not "
                                 f"broadcast to the size {_fmt_shape(static_size)}")


class RandomOp(Op):
    """A draw: inputs (state, *params, *size) with `nparams` parameters and one int64 scalar
    per output dimension; outputs (next state, draw of `dtype`)."""

    abstract = True
    __props__ = ("dtype",)
    differentiable = False
    foldable = False
    nparams = 0
    #: whether the parameters are per-element, broadcast to the size (numpy's rule)
    params_broadcast = True
    #: the dtype kinds a draw of this distribution may be cast to
    kinds = "f"

    def __init__(self, dtype):
        dt = np.dtype(dtype)
        if dt.kind not in self.kinds:
            raise TypeError(f"{type(self).__name__}: draws cannot have dtype {dt.name}")
        self.dtype = dt.name

    def check_params(self, params):
        """Type checks of the parameters (subclasses)."""

    def make_node(self, state, *rest):
        state = as_variable(state)
        if state.dtype != "uint64" or state.ndim != 1 or state.type.shape[0] not in (None, 6):
            raise TypeError(f"{self}: the generator state must be a uint64 vector of length 6, "
                            f"got {state.type.short()} (make states with ts.random.RandomStream)")
        if len(rest) < self.nparams:
            raise TypeError(f"{self} takes {self.nparams} parameter(s), got {len(rest)}")
        params = [as_variable(p) for p in rest[:self.nparams]]
        self.check_params(params)
        dims = _int_scalars(self, rest[self.nparams:])
        static = tuple(_static_value(d) for d in dims)
        if any(d is not None and d < 0 for d in static):
            raise ShapeError(f"{self}: negative dimensions are not allowed, got size "
                             f"{_fmt_shape(static)}")
        if self.params_broadcast:
            check_fits(str(self), params, static)
        draw = TensorType(self.dtype, static).make_variable()
        return Apply(self, [state, *params, *dims], [STATE_TYPE.make_variable(), draw])

    def draw(self, gen, size, *params):
        raise NotImplementedError

    def perform(self, node, inputs):
        state, *rest = inputs
        params = rest[:self.nparams]
        size = tuple(int(d) for d in rest[self.nparams:])
        gen = generator(state)
        value = np.asarray(self.draw(gen, size, *params)).astype(self.dtype, copy=False)
        return pack_state(gen.bit_generator.state), value

    def L_op(self, inputs, outputs, output_grads):
        return [None] * len(inputs)

    def infer_shape(self, node, input_shapes):
        return [(_int64(6),), static_or(node.outputs[1], node.inputs[1 + self.nparams:])]


def _float_draw(dtype):
    """The dtype numpy draws floats in for an output of `dtype` (float16 rounds from float32)."""
    return np.float64 if dtype == "float64" else np.float32


class StandardNormal(RandomOp):
    """Draws from the standard normal distribution N(0, 1)."""

    def draw(self, gen, size):
        return gen.standard_normal(size, dtype=_float_draw(self.dtype))


class StandardUniform(RandomOp):
    """Draws from the uniform distribution on [0, 1)."""

    def draw(self, gen, size):
        return gen.random(size, dtype=_float_draw(self.dtype))


def _require(what, v, kinds, desc):
    if v.dtype[0] not in kinds:
        raise TypeError(f"{what}: {desc}, got {v.type.short()}")


class Binomial(RandomOp):
    """Draws from Binomial(n, p): successes in `n` trials of probability `p` (both broadcast to
    the size); any numeric or boolean dtype."""

    nparams = 2
    kinds = "iufb"

    def check_params(self, params):
        n, p = params
        _require("binomial", n, "iu", "n must be an integer tensor")
        _require("binomial", p, "iuf", "p must be a real tensor of probabilities")

    def draw(self, gen, size, n, p):
        return gen.binomial(n, p, size)


class Integers(RandomOp):
    """Uniform integers in [low, high) (both broadcast to the size)."""

    nparams = 2
    kinds = "iu"

    def check_params(self, params):
        for v in params:
            _require("integers", v, "iu", "low and high must be integer tensors")

    def draw(self, gen, size, low, high):
        return gen.integers(low, high, size, dtype=self.dtype)


class Choice(RandomOp):
    """Indices in [0, a) drawn with or without `replace`ment, with probabilities `p` (a float
    vector of length a) when `has_p`, else uniformly; int64."""

    __props__ = ("replace", "has_p")
    kinds = "i"
    params_broadcast = False

    def __init__(self, replace=True, has_p=False):
        super().__init__("int64")
        self.replace, self.has_p = bool(replace), bool(has_p)

    @property
    def nparams(self):
        return 2 if self.has_p else 1

    def check_params(self, params):
        if params[0].ndim != 0 or params[0].dtype[0] not in "iu":
            raise TypeError(f"choice: the population size must be an integer scalar, got "
                            f"{params[0].type.short()}")
        if self.has_p:
            p = params[1]
            if p.ndim != 1 or p.dtype[0] not in "f":
                raise TypeError(f"choice: p must be a float vector of probabilities, got "
                                f"{p.type.short()}")
            n = _static_value(params[0])
            if n is not None and p.type.shape[0] not in (None, n):
                raise ShapeError(f"choice: p has {p.type.shape[0]} probabilities for a "
                                 f"population of {n}")

    def draw(self, gen, size, a, p=None):
        return gen.choice(int(a), size, replace=self.replace, p=p)


class Permutation(RandomOp):
    """A random permutation of 0, ..., n - 1 (int64).  Inputs (state, n, n): the population
    size is also the output's one dimension, which gives its shape like any other draw's."""

    __props__ = ()
    nparams = 1
    kinds = "i"
    params_broadcast = False

    def __init__(self):
        super().__init__("int64")

    def make_node(self, state, n):
        n = as_variable(n)
        if n.ndim != 0 or n.dtype[0] not in "iu":
            raise TypeError(f"permutation: n must be an integer scalar, got {n.type.short()}")
        n = cast(n, "int64")
        return super().make_node(state, n, n)

    def perform(self, node, inputs):
        return super().perform(node, inputs[:2])

    def draw(self, gen, size, n):
        return gen.permutation(int(n))


__all__ = ["RandomOp", "StandardNormal", "StandardUniform", "Binomial", "Integers", "Choice",
           "Permutation", "STATE_TYPE", "generator", "new_state", "pack_state"]
