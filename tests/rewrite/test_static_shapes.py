"""Rewrites that static shapes decide: a broadcast to the shape a tensor is known to have
already is the tensor itself.  Results are compared with mode NONE."""

import numpy as np

import tracesym as ts
from tracesym.ops.shape import BroadcastTo


def broadcasts(f):
    return [n for n in f.graph.apply_nodes() if isinstance(n.op, BroadcastTo)]


def test_broadcast_to_a_tensors_own_static_shape_is_removed(rng):
    x = ts.tensor("float64", shape=(2, 3), name="x")
    y = ts.exp(ts.broadcast_to(x, (2, 3))) * 2
    f = ts.function([x], y)
    xv = rng.normal(size=(2, 3))
    np.testing.assert_allclose(f(xv), ts.function([x], y, mode="NONE")(xv))
    assert not broadcasts(f)


def test_a_broadcast_that_grows_a_dim_or_whose_sizes_are_unknown_stays(rng):
    x, v = ts.tensor("float64", shape=(1, 3), name="x"), ts.dmatrix("v")
    n = ts.iscalar("n")
    y = ts.broadcast_to(x, (2, 3)) * 2 + ts.broadcast_to(v, (n, 3))
    f = ts.function([x, v, n], y)
    xv, vv = rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    np.testing.assert_allclose(f(xv, vv, 2), ts.function([x, v, n], y, mode="NONE")(xv, vv, 2))
    assert len(broadcasts(f)) == 2
