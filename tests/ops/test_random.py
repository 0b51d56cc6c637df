"""The random Ops themselves, on constant states: pure functions of their inputs (the same
state gives the same draw and next state, the input state is not written), the state encoding
round-trips through numpy's PCG64, and shapes infer.  `GRAD_CASES` multiply by a draw from a
constant state, so the gradient checks and the memory-sharing audit reach every random Op (a
draw itself stops the gradient)."""

import numpy as np

import tracesym as ts
from tracesym.ops.random import (Binomial, Choice, Integers, Permutation, StandardNormal,
                                 StandardUniform, generator, new_state, pack_state)
from tracesym.ops.shape import shape_i

S = ts.constant(new_state(123))


def _n(x):
    return shape_i(x, 0)


GRAD_CASES = {
    StandardNormal: [(lambda x: x * StandardNormal("float64")(S, _n(x), shape_i(x, 1))[1],
                      [np.arange(6.0).reshape(2, 3)])],
    StandardUniform: [(lambda x: x * StandardUniform("float64")(S, _n(x))[1], [np.ones(4)])],
    Binomial: [(lambda x: x * Binomial("float64")(S, 3, 0.5, _n(x))[1], [np.ones(5)])],
    Integers: [(lambda x: x * Integers("int64")(S, -2, 5, _n(x))[1], [np.ones(5)])],
    Choice: [(lambda x: x[Choice(False, True)(S, _n(x), np.full(4, 0.25), _n(x))[1]],
              [np.arange(4.0)])],
    Permutation: [(lambda x: x[Permutation()(S, _n(x))[1]], [np.arange(5.0)])],
}


def test_state_round_trips_through_pcg64():
    bg = np.random.PCG64(7)
    bg.random_raw(3)
    state = pack_state(bg.state)
    assert state.dtype == np.uint64 and state.shape == (6,)
    assert generator(state).bit_generator.state == bg.state


def test_a_draw_is_a_pure_function_of_the_state():
    s = new_state(5)
    s_before = s.copy()
    nxt, z = StandardNormal("float64")(ts.constant(s), 3)
    f = ts.function([], [nxt, z])
    (n1, z1), (n2, z2) = f(), f()
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(s, s_before)
    assert not np.array_equal(n1, s)
    gen = np.random.Generator(np.random.PCG64(5))
    np.testing.assert_array_equal(z1, gen.standard_normal(3))
    np.testing.assert_array_equal(n1, pack_state(gen.bit_generator.state))


def test_infer_shape_gives_the_size():
    n = ts.lscalar("n")
    _, z = StandardUniform("float32")(S, n, 4)
    _, p = Permutation()(S, n)
    (_, zs) = z.owner.op.infer_shape(z.owner, [(6,), (), ()])
    f = ts.function([n], [zs[0], zs[1], p.shape[0]])
    assert [int(v) for v in f(3)] == [3, 4, 3]
