"""Property: a rewritten graph computes what the traced one did.

Hypothesis builds small random graphs over 1-3 inputs (float64, float32, int64; shapes that
broadcast against each other, with static sizes known or not) from elementwise arithmetic,
constants that invite the canonical identities (0, 1, 2, 0.5, -1), exp/log pairs, powers,
casts, reductions and shape Ops, and checks that every rewrite (mode FAST_RUN) gives what
mode NONE gives: the same dtype and shape, integers exactly, floats within a tolerance for
the reassociated sums and products, nan where nan.

Some rewrites hold for finite values only (`x * 0 -> 0` where x is inf, `x / x -> 1` at 0,
`log(exp(x)) -> x` where exp overflows; see `tracesym.rewrite.canonicalize`).  The values are
kept in domains where that does not arise: inputs are nonzero and small, only inputs divide,
and logs and powers take positive arguments.  Where the reference is still inf or nan, the
two may differ there only.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts

#: every rewrite, run by the reference linker (the property is about the graph, not codegen)
REWRITTEN = ts.Mode("fast_run", linker="numpy")
DTYPES = ("float64", "float32", "int64")
RTOL = {"float64": 1e-10, "float32": 2e-4}


def _unary(draw, a):
    """A unary expression of `a`; the value keeps its shape."""
    kind = draw(st.sampled_from([
        "neg", "negneg", "abs", "sqr", "pow1", "sqrt", "recip", "explog", "logexp", "tanh",
        "cast", "castcast"]))
    if kind == "neg":
        return -a
    if kind == "negneg":
        return -(-a)
    if kind == "abs":
        return abs(a)
    if kind == "sqr":
        return a ** 2
    if kind == "pow1":
        return a ** 1
    if kind == "sqrt":
        return (abs(a) + 1) ** 0.5
    if kind == "recip":
        return (abs(a) + 1) ** -1.0
    if kind == "explog":
        return ts.exp(ts.log(abs(a) + 1))
    if kind == "logexp":
        return ts.log(ts.exp(ts.tanh(a)))
    if kind == "tanh":
        return ts.tanh(a)
    dtype = draw(st.sampled_from(DTYPES))
    if kind == "cast":
        return a.astype(dtype)
    return a.astype("float64").astype(dtype)


_CONSTANTS = [0, 1, 2, 0.5, -1, 0.0, 1.0, np.float64(0), np.float64(1), np.float64(0.7),
              np.float32(2), np.int64(1), np.int64(3), np.zeros(1), np.ones((1, 1)),
              np.full(1, 3.0, "float32")]


def _binary(draw, a, b, a_is_input, b_is_input):
    kind = draw(st.sampled_from(["add", "sub", "mul", "div", "const_add", "const_mul",
                                 "const_sub", "self_sub", "self_div", "zeros_like", "ones_like"]))
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    if kind == "mul":
        return a * b
    if kind == "div":
        return a / b if b_is_input else a * b  # only inputs are known to be nonzero
    if kind == "self_sub":
        return a - a
    if kind == "self_div":
        return a / a if a_is_input else a * a
    if kind == "zeros_like":
        return ts.zeros_like(a) + b
    if kind == "ones_like":
        return b * ts.ones_like(a)
    c = draw(st.sampled_from(_CONSTANTS))
    first = draw(st.booleans())
    if kind == "const_add":
        return c + a if first else a + c
    if kind == "const_mul":
        return c * a if first else a * c
    return a - c


def _reduce(draw, a, shape):
    axis = draw(st.sampled_from([None] + list(range(len(shape)))))
    keepdims = draw(st.booleans())
    kind = draw(st.sampled_from(["sum", "mean", "max"]))
    return getattr(a, kind)(axis=axis, keepdims=keepdims)


def _reshape(draw, a):
    kind = draw(st.sampled_from(["T", "flat_back", "expand_squeeze", "broadcast_sum",
                                 "transpose_twice", "reshape_twice"]))
    if kind == "T":
        return a.T
    if kind == "flat_back":
        return a.reshape(-1).reshape(a.shape)
    if kind == "expand_squeeze":
        return ts.expand_dims(a, 0).T.squeeze(a.ndim)
    if kind == "broadcast_sum":
        n = draw(st.sampled_from([3, 2, 1]))
        return ts.broadcast_to(a, (n,) + tuple(a.shape)).sum(axis=0)
    if kind == "transpose_twice":
        return a.T.T
    return a.reshape((1, -1)).reshape(-1)


@st.composite
def graphs(draw):
    """(inputs, outputs, values): a random graph and values for its inputs."""
    base = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    inputs, values, pool = [], [], []
    for k in range(draw(st.integers(1, 3))):
        nd = draw(st.integers(0, len(base)))
        shape = tuple(s if draw(st.booleans()) else 1 for s in base[len(base) - nd:])
        static = tuple(s if draw(st.booleans()) else None for s in shape)
        dtype = draw(st.sampled_from(DTYPES))
        x = ts.tensor(dtype, static, name=f"x{k}")
        sign = rng.choice([-1, 1], size=shape)
        mag = rng.integers(1, 4, size=shape) if dtype == "int64" else rng.uniform(0.25, 3, shape)
        v = np.asarray(sign * mag, dtype=dtype)
        inputs.append(x)
        values.append(v)
        pool.append((x, shape, True))
    for _ in range(draw(st.integers(3, 10))):
        # mostly extend the last expression, so that chains of one Op grow
        pick = -1 if draw(st.booleans()) else draw(st.integers(0, len(pool) - 1))
        a, sa, a_in = pool[pick]
        step = draw(st.sampled_from(["unary", "binary", "binary", "binary", "reduce", "shape"]))
        if step == "binary":
            fits = [p for p in pool if _broadcasts(sa, p[1])]
            b, _, b_in = fits[draw(st.integers(0, len(fits) - 1))]
            out = _binary(draw, a, b, a_in, b_in)
        elif step == "reduce" and sa:
            out = _reduce(draw, a, sa)
        elif step == "shape" and sa:
            out = _reshape(draw, a)
        else:
            out = _unary(draw, a)
        pool.append((out, _numpy_shape(out, inputs, values), False))
    outputs = [pool[-1][0]]
    extra = pool[draw(st.integers(0, len(pool) - 1))][0]
    if draw(st.booleans()) and extra is not outputs[0]:
        outputs.append(extra)  # an inner node also returned: chains must keep it
    return inputs, outputs, values


def _broadcasts(a, b) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _numpy_shape(out, inputs, values):
    """The shape of `out`'s value (which later steps must broadcast with)."""
    f = ts.function(inputs, out, mode="NONE", on_unused_input="ignore")
    return np.shape(f(*values))


def _close(got, want, in_dtypes):
    """Equal dtype and shape; integers exactly; floats within the rounding of the narrowest
    float involved (a float64 result computed from float32 data carries float32 rounding,
    which a rewrite may change), relative to the largest value; equal wherever the
    reference is finite."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind not in "fc":
        np.testing.assert_array_equal(got, want)
        return
    finite = np.isfinite(want)
    rtol = max(RTOL[d] for d in {*in_dtypes, want.dtype.name} if d in RTOL)
    scale = max(1.0, float(np.max(np.abs(want[finite]), initial=0.0)))
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=rtol * scale)
    if finite.all():
        assert np.isfinite(got).all()


@given(graphs())
def test_rewritten_graph_computes_what_the_traced_one_did(case):
    inputs, outputs, values = case
    f = ts.function(inputs, outputs, mode=REWRITTEN, on_unused_input="ignore")
    g = ts.function(inputs, outputs, mode="NONE", on_unused_input="ignore")
    for got, want in zip(f(*values), g(*values)):
        _close(got, want, [v.dtype.name for v in values])
