"""The elementwise kernels on every memory layout, against the numpy reference
(`Program.evaluate` on contiguous copies, and the numpy linker on the unrewritten graph).

The strided loop collapses dims and runs rows whose innermost stride is one element for every
operand through the same vector loop as the contiguous kernel (column slices, row-strided
3-D views, broadcast outer dims, an input broadcast along the innermost dim through a buffer
holding its value); everything else (negative or gapped innermost strides) takes the general
loop.  Rows of any length are covered, since a row's last `n % TAIL` elements run padded
through the vector loop, and rows shorter than `TAIL` run packed together."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.backend.c import cgen, linker
from tracesym.ops.composite import Composite, Program, Step
from tracesym.trace.types import TensorType

ND = 3


def _w1(dt):
    """sigmoid(x*y + 1.5) * tanh(x) + exp(-x*x), and x*y on its own (two outputs)."""
    c = ("const", 1.5, dt)
    steps = (Step("mul", (("in", 0), ("in", 1)), dt), Step("add", (("step", 0), c), dt),
             Step("sigmoid", (("step", 1),), dt), Step("tanh", (("in", 0),), dt),
             Step("mul", (("step", 2), ("step", 3)), dt), Step("neg", (("in", 0),), dt),
             Step("mul", (("step", 5), ("in", 0)), dt), Step("exp", (("step", 6),), dt),
             Step("add", (("step", 4), ("step", 7)), dt))
    return Program((dt, dt), steps, (("step", 8), ("step", 0)))


def _ints(dt):
    """a * b + a // 3, and maximum(a, b)."""
    steps = (Step("mul", (("in", 0), ("in", 1)), dt),
             Step("floor_divide", (("in", 0), ("const", 3, dt)), dt),
             Step("add", (("step", 0), ("step", 1)), dt),
             Step("maximum", (("in", 0), ("in", 1)), dt))
    return Program((dt, dt), steps, (("step", 2), ("step", 3)))


def _where():
    """where(c, exp(a), -a) with a bool condition."""
    steps = (Step("exp", (("in", 1),), "float64"), Step("neg", (("in", 1),), "float64"),
             Step("where", (("in", 0), ("step", 0), ("step", 1)), "float64"))
    return Program(("bool", "float64"), steps, (("step", 2),))


def _power():
    steps = (Step("power", (("in", 0), ("in", 1)), "int64"),)
    return Program(("int64", "int64"), steps, (("step", 0),))


def _partial():
    """exp(x) * y, and exp(x) + 1 (which reads x alone)."""
    steps = (Step("exp", (("in", 0),), "float64"), Step("mul", (("step", 0), ("in", 1)), "float64"),
             Step("add", (("step", 0), ("const", 1.0, "float64")), "float64"))
    return Program(("float64", "float64"), steps, (("step", 1), ("step", 2)))


PROGRAMS = {"float64": _w1("float64"), "float32": _w1("float32"), "int64": _ints("int64"),
            "int8": _ints("int8"), "bool": _where(), "power": _power(), "partial": _partial()}


@pytest.fixture(scope="module")
def kernels(compiledir):
    nodes = [Composite(p).make_node(*[TensorType(d, (None,) * ND).make_variable()
                                      for d in p.in_dtypes]) for p in PROGRAMS.values()]
    kinds, fallbacks = linker._plan(nodes)
    assert not fallbacks and all(kind == "elemwise" for kind, _ in kinds.values())
    return dict(zip(PROGRAMS, linker.kernel_steps(nodes, compiledir)))


def _values(rng, key, role, shape):
    dt = PROGRAMS[key].in_dtypes[role]
    if dt == "bool":
        return rng.random(shape) < 0.5
    if key == "power":
        return rng.integers(-3, 4, shape) if role == 0 else rng.integers(0, 5, shape)
    if dt.startswith("int"):
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    v = rng.normal(0, 3, shape)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 40.0, -40.0])
    v = np.where(rng.random(shape) < 0.1, special[rng.integers(0, len(special), shape)], v)
    return v.astype(dt)


def _same(got, want, key):
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        if g.dtype.kind == "f":
            eps = np.finfo(g.dtype).eps  # libmvec: a few ulp
            np.testing.assert_allclose(g, w, rtol=8 * eps, atol=8 * eps, equal_nan=True,
                                       err_msg=key)
            assert (np.isinf(g) == np.isinf(w)).all() and (np.isnan(g) == np.isnan(w)).all()
        else:
            np.testing.assert_array_equal(g, w, err_msg=key)


def _check(kernels, key, args):
    """The kernel (built for ND-d inputs: fewer dims get leading length-1 ones) against
    numpy on contiguous copies."""
    args = [a[(None,) * (ND - a.ndim)] for a in args]
    want = PROGRAMS[key].evaluate([np.ascontiguousarray(a) for a in args])
    got = kernels[key](list(args))
    _same(got, want, key)
    return got


def _columns(rng, key, shape):
    """Inputs of `shape` as column slices `a[..., :w]`, `a[..., w:]` of arrays twice as wide
    (views, not C-contiguous where w > 1)."""
    w = shape[-1]
    out = []
    for role in range(len(PROGRAMS[key].in_dtypes)):
        a = _values(rng, key, role, shape[:-1] + (2 * w,))
        out.append(a[..., w:] if role % 2 else a[..., :w])
    return out


@pytest.mark.parametrize("key", [k for k in PROGRAMS if k != "partial"])
@pytest.mark.parametrize("width", [1, 7, 16, 17, 100])
def test_column_slices(kernels, key, width, rng):
    """As in an LSTM cell: every row unit-stride, rows of any length (a vector tail)."""
    args = _columns(rng, key, (3, 5, width))
    got = _check(kernels, key, args)
    if width > 1:  # the same vector loop as the contiguous kernel: the same bits
        for g, c in zip(got, kernels[key]([np.ascontiguousarray(x) for x in args])):
            np.testing.assert_array_equal(g, c)


@pytest.mark.parametrize("key", ["float64", "float32", "int8", "bool"])
def test_row_strided_3d_views(kernels, key, rng):
    x = _values(rng, key, 0, (4, 7, 9))
    y = _values(rng, key, 1, (4, 7, 9))
    _check(kernels, key, [x[:, 1:6, :], y[:, 2:7, :]])  # inner two dims collapse to rows of 45
    _check(kernels, key, [x[:, :, 2:8], y[:, :, 3:]])  # rows of 6
    _check(kernels, key, [x[::2, ::3], y[1::2, :3]])  # outer dims gapped, rows unit-stride
    _check(kernels, key, [x[:3, 2], y[:3, 2]])


@pytest.mark.parametrize("key", [k for k in PROGRAMS if k != "partial"])
@pytest.mark.parametrize("width", [1, 3, 10, 15])
def test_many_short_rows_are_packed(kernels, key, width, rng):
    """Rows shorter than a vector block go through the vector loop packed together, over
    several packs (more than cgen.PACK elements), with the same bits as contiguous copies."""
    rows = 3 * cgen.PACK // width + 1
    x = _values(rng, key, 0, (1, rows, width))
    y = _values(rng, key, 1, (1, 1, width))
    got = _check(kernels, key, [x, y])  # y broadcast along the outer dim
    # (rows of 1 collapse into one row with y broadcast along it: the general loop)
    for g, c in [] if width == 1 else zip(got, kernels[key]([x, np.ascontiguousarray(np.broadcast_to(y, x.shape))])):
        np.testing.assert_array_equal(g, c)
    _check(kernels, key, _columns(rng, key, (2, rows, width)))


@pytest.mark.parametrize("key", ["float64", "float32", "int64", "bool"])
def test_negative_and_gapped_inner_strides(kernels, key, rng):
    x = _values(rng, key, 0, (5, 34))
    y = _values(rng, key, 1, (5, 34))
    _check(kernels, key, [x[:, ::-1], y])
    _check(kernels, key, [x[::-1], y[::-1, ::-1]])
    _check(kernels, key, [x[:, ::2], y[:, 1::2]])
    _check(kernels, key, [x.T, y.T])
    _check(kernels, key, [np.asfortranarray(x), y])


@pytest.mark.parametrize("key", ["float64", "float32", "int64", "bool"])
def test_broadcast_dims(kernels, key, rng):
    x = _values(rng, key, 0, (6, 40))
    y = _values(rng, key, 1, (6, 40))
    _check(kernels, key, [x, y[:1]])  # broadcast outer dim: rows stay unit-stride
    _check(kernels, key, [x[:, 3:], y[0, 3:]])  # fewer dims
    _check(kernels, key, [x, y[:, :1]])  # broadcast along the innermost dim
    _check(kernels, key, [x[:1, :1], y[:, 5:9]])
    _check(kernels, key, [x[2, 2], y])  # 0-d


@pytest.mark.parametrize("key", [k for k in PROGRAMS if k != "partial"])
@pytest.mark.parametrize("width", [3, 16, 45, cgen.PACK, 2 * cgen.PACK + 5])
def test_input_broadcast_along_the_inner_dim(kernels, key, width, rng):
    """A conv bias (1, C, 1) against (N, C, W): its value fills a buffer that goes through
    the vector loop with the other operand's rows (in chunks of PACK, or packed when short),
    giving the same bits as a contiguous broadcast copy."""
    shape = (2, 3, width)
    for bias in (0, 1):
        args = [_values(rng, key, role, (1, 3, 1) if role == bias else shape) for role in (0, 1)]
        got = _check(kernels, key, args)
        full = [np.ascontiguousarray(np.broadcast_to(a, shape)) for a in args]
        for g, c in zip(got, kernels[key](full)):
            np.testing.assert_array_equal(g, c)


@pytest.mark.parametrize("key", ["float64", "int8"])
def test_size_one_and_zero_size_dims(kernels, key, rng):
    x = _values(rng, key, 0, (1, 9, 1, 18))
    y = _values(rng, key, 1, (1, 9, 1, 18))
    _check(kernels, key, [x[0, :, :, ::2], y[0, :, :, 1:10]])
    _check(kernels, key, [x[0, :1, :, :], y[0, :, :, :]])
    _check(kernels, key, [x[0, :, :, 1:2], y[0, :, :, :1]])
    _check(kernels, key, [x[0, :0], y[0, :0]])
    _check(kernels, key, [x[0, :, :, :0], y[0, :, :, 3:3]])


def test_a_status_in_a_strided_row_is_raised(kernels):
    """Integer power to a negative exponent in a column slice of 19: in the row's blocks of
    16 and in the block of its last elements."""
    base = np.full((4, 2 * 19), 2, "int64")
    for col in (0, 18):
        e = base.copy()
        e[3, 19 + col] = -1
        with pytest.raises(ValueError, match="negative integer powers"):
            kernels["power"]([base[None, :, :19], e[None, :, 19:]])
    np.testing.assert_array_equal(kernels["power"]([base[None, :, :19], base[None, :, 19:]])[0], 4)


def test_threaded_blocks_match_rows(kernels, rng):
    """Above `PARALLEL_MIN` (W1's program calls math functions) the contiguous loop runs in
    blocks on threads: it gives the bits
    the strided loop gives row by row on the same values laid out with a gap."""
    for key in ("float64", "float32"):
        x, y = _columns(rng, key, (1, 3, cgen.PARALLEL_MIN // 2 + 5))
        whole = kernels[key]([np.ascontiguousarray(x), np.ascontiguousarray(y)])
        for w, s in zip(whole, _check(kernels, key, [x, y])):
            np.testing.assert_array_equal(w, s)


@st.composite
def views(draw):
    """A key, then for each input: a base shape and a slice per dim (any start, stop, step,
    negative steps included), some dims broadcast (length 1)."""
    key = draw(st.sampled_from(["float64", "float32", "int64", "bool"]))
    nd = draw(st.integers(1, ND))
    shape = draw(st.lists(st.integers(0, 20), min_size=nd, max_size=nd))
    specs = []
    for _ in PROGRAMS[key].in_dtypes:
        dims = []
        for n in shape:
            if draw(st.booleans()) and draw(st.booleans()):
                dims.append((1, 0, 1, 1))  # broadcast
                continue
            step = draw(st.sampled_from([1, 1, 2, -1, -3]))
            pad = draw(st.integers(0, 5))
            dims.append((n, pad, step, n * abs(step) + pad))
        specs.append(dims)
    return key, specs, draw(st.integers(0, 2**31))


@given(views())
def test_any_view(kernels, case):
    key, specs, seed = case
    rng = np.random.default_rng(seed)
    args = []
    for role, dims in enumerate(specs):
        base = _values(rng, key, role, tuple(full for _, _, _, full in dims))
        idx = []
        for n, pad, step, full in dims:
            start = pad if step > 0 else full - 1 - pad
            idx.append(slice(start, start + n * step if start + n * step >= 0 else None, step))
        a = base[tuple(idx)]
        assert a.shape == tuple(n for n, _, _, _ in dims)
        args.append(a)
    _check(kernels, key, args)


def test_lstm_cell_on_column_slices_matches_the_numpy_linker(rng):
    """The fused LSTM cell of a (batch, 4H) gate array, compiled, against the unrewritten
    graph on the numpy linker."""
    a, c = ts.fmatrix("a"), ts.fmatrix("c")
    H = 37
    i, f, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
    cn = ts.sigmoid(f) * c + ts.sigmoid(i) * ts.tanh(g)
    h = ts.sigmoid(o) * ts.tanh(cn)
    fc = ts.function([a, c], [cn, h], mode=ts.Mode(linker="c"))
    ref = ts.function([a, c], [cn, h], mode=ts.Mode(None, linker="numpy"))
    assert not fc._runner.fallbacks
    av = rng.normal(size=(5, 4 * H)).astype("float32")
    cv = rng.normal(size=(5, H)).astype("float32")
    for args in ((av, cv), (av[::-1], cv[:, ::-1]), (av[:1], cv)):
        for g_, w in zip(fc(*args), ref(*args)):
            np.testing.assert_allclose(g_, w, rtol=1e-6, atol=1e-6)


def test_an_output_of_fewer_dims_than_the_loop(kernels, rng):
    """An output that reads only some inputs is written through stride 0 along the dims it
    lacks (the same value again); a loop that big would otherwise run on threads."""
    n = 300
    x = rng.normal(size=(1, n, 2))[..., :1]
    y = rng.normal(size=(1, n, 2 * n))[..., n:]
    got = kernels["partial"]([x, y])
    want = PROGRAMS["partial"].evaluate([np.ascontiguousarray(x), np.ascontiguousarray(y)])
    assert got[1].shape == (1, n, 1)
    _same(got, want, "partial")
