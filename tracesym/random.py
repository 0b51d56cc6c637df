"""Random streams: `ts.random.RandomStream(seed)` makes symbolic random draws.

    rs = ts.random.RandomStream(42)
    noise = rs.normal(x.shape, std=0.1)          # a symbolic tensor, a new draw every call
    f = ts.function([x], x + noise)
    f(a), f(a)                                    # two different draws
    rs.seed(42); f(a)                             # the first draw again

Each draw gets its own generator state, a shared variable (a uint64[6] PCG64 state, see
`tracesym.ops.random`) whose `default_update` is the state after the draw.  `function` applies
default updates of the shared variables a graph uses, unless the user gives an explicit update
for one or passes `no_default_updates`, so every call advances the states.  Draws stop the
gradient (the state is not differentiable), but `normal` and `uniform` are location/scale
arithmetic around a standard draw, so their gradient with respect to `avg`/`std` or
`low`/`high` is the reparameterisation one.

Inside `scan` a draw's state is a step update like any other (scan collects the default
updates of the shared variables its step uses), carried through the loop as a recurrent value:
each step draws the next numbers of one generator, and the final state becomes one of the
updates scan returns.
"""

from __future__ import annotations

import numpy as np

from .config import config
from .ops import elemwise as E
from .ops.random import (Binomial, Choice, Integers, Permutation, StandardNormal,
                         StandardUniform, check_fits, new_state)
from .ops.shape import _static_value, broadcast_shape_of, shape_i, shape_tuple
from .tensor import shared
from .trace.graph import Constant, Variable, as_variable


def _float_dtype(what, dtype):
    dt = np.dtype(config.floatX if dtype is None else dtype)
    if dt.kind != "f":
        raise TypeError(f"{what}: dtype must be a float type, got {dt.name}; use integers() or "
                        "binomial() for integer draws")
    return dt.name


def _is_const(v, value) -> bool:
    return isinstance(v, Constant) and v.ndim == 0 and v.data == value


class RandomStream:
    """A source of symbolic random draws, reproducible from `seed` (an int or None).

    Each draw method returns a symbolic tensor and registers a new generator state (a shared
    variable) with its default update in `state_updates`.  `seed(n)` resets every state this
    stream has made so the draws repeat from the start, as a new `RandomStream(n)` making the
    same draws in the same order would."""

    def __init__(self, seed=None):
        self._seeds = np.random.SeedSequence(seed)
        #: (state shared variable, its next value) for every draw, in creation order
        self.state_updates: list[tuple[Variable, Variable]] = []

    def seed(self, seed=None):
        """Reseed: every state gets the value it would have in a fresh `RandomStream(seed)`."""
        self._seeds = np.random.SeedSequence(seed)
        for state, _ in self.state_updates:
            state.set_value(new_state(self._seeds.spawn(1)[0]), borrow=True)

    def _draw(self, op, *inputs):
        state = shared(new_state(self._seeds.spawn(1)[0]), name=f"rng{len(self.state_updates)}",
                       borrow=True, shape=(6,))
        nxt, value = op(state, *inputs)
        state.default_update = nxt
        self.state_updates.append((state, nxt))
        return value

    @staticmethod
    def _size(what, size, params):
        """`size` as int64 scalars; None means the parameters' broadcast shape."""
        if size is None:
            shapes = [tuple(shape_i(p, k) for k in range(p.ndim)) for p in params]
            return broadcast_shape_of(shapes, params) if any(shapes) else ()
        dims = shape_tuple(size)
        check_fits(what, params, tuple(_static_value(d) for d in dims))
        return dims

    # -- continuous ----------------------------------------------------------------------
    def normal(self, size=None, avg=0.0, std=1.0, dtype=None):
        """Draws from N(avg, std**2) of shape `size` (ints, int scalars or a symbolic shape
        such as `x.shape`; None: the broadcast shape of avg and std); dtype defaults to
        `config.floatX`."""
        dtype = _float_dtype("normal", dtype)
        avg, std = as_variable(avg), as_variable(std)
        z = self._draw(StandardNormal(dtype), *self._size("normal", size, [avg, std]))
        if not _is_const(std, 1):
            z = std * z
        if not _is_const(avg, 0):
            z = avg + z
        return E.cast(z, dtype)

    def uniform(self, size=None, low=0.0, high=1.0, dtype=None):
        """Draws from the uniform distribution on [low, high) of shape `size` (as in
        `normal`); dtype defaults to `config.floatX`."""
        dtype = _float_dtype("uniform", dtype)
        low, high = as_variable(low), as_variable(high)
        u = self._draw(StandardUniform(dtype), *self._size("uniform", size, [low, high]))
        if not (_is_const(low, 0) and _is_const(high, 1)):
            u = low + (high - low) * u
        return E.cast(u, dtype)

    # -- discrete ------------------------------------------------------------------------
    def binomial(self, size=None, n=1, p=0.5, dtype="int64"):
        """Successes in `n` trials of probability `p` (a Bernoulli draw for n=1), of shape
        `size`; `dtype` may be any numeric type or bool (a mask)."""
        n, p = as_variable(n), as_variable(p)
        return self._draw(Binomial(dtype), n, p, *self._size("binomial", size, [n, p]))

    def integers(self, low, high=None, size=None, dtype="int64"):
        """Uniform integers in [low, high); with one bound, in [0, low) (numpy's
        `Generator.integers`)."""
        if high is None:
            low, high = 0, low
        low, high = as_variable(low), as_variable(high)
        return self._draw(Integers(dtype), low, high, *self._size("integers", size, [low, high]))

    def choice(self, a, size=None, replace=True, p=None):
        """Elements drawn from `a`: an integer n (or int scalar) draws from 0..n-1; a tensor
        draws rows along its first axis (`a[indices]`, so the gradient reaches `a`).  `p`: the
        probabilities, a float vector, uniform when None."""
        a = as_variable(a)
        if not isinstance(replace, (bool, np.bool_)):
            raise TypeError(f"choice: replace must be True or False, got {replace!r}")
        if a.ndim == 0 and a.dtype[0] in "iu":
            n, pool = a, None
        elif a.ndim >= 1:
            n, pool = shape_i(a, 0), a
        else:
            raise TypeError(f"choice: a must be an integer or a tensor with at least one "
                            f"dimension, got {a.type.short()}")
        inputs = [n] if p is None else [n, as_variable(p)]
        dims = () if size is None else shape_tuple(size)
        idx = self._draw(Choice(replace, p is not None), *inputs, *dims)
        return idx if pool is None else pool[idx]

    def permutation(self, n):
        """A random permutation of 0..n-1 for an integer n (or int scalar); of a tensor's rows
        for a tensor (`x[permutation(x.shape[0])]`, so the gradient reaches it)."""
        x = as_variable(n)
        if x.ndim == 0:
            return self._draw(Permutation(), x)
        return x[self._draw(Permutation(), shape_i(x, 0))]


__all__ = ["RandomStream"]
