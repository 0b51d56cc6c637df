"""Random streams: distributions (moments with tolerances from the sample size), draws that
change every call, reseeding, symbolic sizes, dtypes, errors, and the default updates that
advance the generator states next to a function's own updates."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError, UpdateError
from tracesym.ops.random import StandardNormal

N = 200_000  # draws per moment check
Z = 6.0      # tolerance in standard errors (the seed is fixed, so a pass is reproducible)


def draw(out, *args, inputs=(), **kw):
    return ts.function(list(inputs), out, **kw)(*args)


def check_mean_var(x, mean, var, fourth_central=None):
    """Sample mean within Z standard errors of `mean` and sample variance within Z standard
    errors of `var` (its standard error from the distribution's fourth central moment;
    3 var^2 for a normal)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    m4 = 3 * var ** 2 if fourth_central is None else fourth_central
    assert abs(x.mean() - mean) <= Z * np.sqrt(var / n), (x.mean(), mean)
    assert abs(x.var() - var) <= Z * np.sqrt((m4 - var ** 2) / n), (x.var(), var)


# -- distributions --------------------------------------------------------------------------

def test_normal_moments_and_dtype():
    rs = ts.random.RandomStream(1)
    x = draw(rs.normal((N,), avg=2.0, std=3.0, dtype="float64"))
    assert x.dtype == np.float64 and x.shape == (N,)
    check_mean_var(x, 2.0, 9.0)


def test_uniform_moments_and_bounds():
    rs = ts.random.RandomStream(2)
    lo, hi = -1.5, 4.0
    x = draw(rs.uniform((N // 2, 2), low=lo, high=hi, dtype="float64"))
    assert x.shape == (N // 2, 2)
    assert x.min() >= lo and x.max() < hi
    w = hi - lo
    check_mean_var(x, (lo + hi) / 2, w ** 2 / 12, fourth_central=w ** 4 / 80)


def test_binomial_moments():
    rs = ts.random.RandomStream(3)
    n, p = 10, 0.3
    x = draw(rs.binomial((N,), n=n, p=p))
    assert x.dtype == np.int64 and x.min() >= 0 and x.max() <= n
    var = n * p * (1 - p)
    # fourth central moment of a binomial: n p q (1 + 3 (n - 2) p q)
    check_mean_var(x, n * p, var, fourth_central=var * (1 + 3 * (n - 2) * p * (1 - p)))


def test_binomial_broadcast_parameters():
    rs = ts.random.RandomStream(4)
    p = np.array([0.0, 0.25, 1.0])
    x = draw(rs.binomial((N // 3, 3), n=1, p=p))
    assert np.all(x[:, 0] == 0) and np.all(x[:, 2] == 1)
    k = N // 3
    assert abs(x[:, 1].mean() - 0.25) <= Z * np.sqrt(0.25 * 0.75 / k)


def test_integers_are_uniform_over_the_range():
    rs = ts.random.RandomStream(5)
    x = draw(rs.integers(3, 8, size=(N,), dtype="int32"))
    assert x.dtype == np.int32 and x.min() == 3 and x.max() == 7
    counts = np.bincount(x - 3, minlength=5)
    assert np.all(np.abs(counts - N / 5) <= Z * np.sqrt(N * 0.2 * 0.8)), counts
    y = draw(rs.integers(4, size=(1000,)))  # one bound: [0, 4)
    assert y.min() == 0 and y.max() == 3


def test_choice_with_probabilities():
    rs = ts.random.RandomStream(6)
    p = np.array([0.1, 0.6, 0.3])
    x = draw(rs.choice(3, size=(N,), p=p))
    freq = np.bincount(x, minlength=3) / N
    assert np.all(np.abs(freq - p) <= Z * np.sqrt(p * (1 - p) / N)), freq


def test_choice_without_replacement_and_from_a_tensor():
    rs = ts.random.RandomStream(7)
    idx = draw(rs.choice(10, size=(10,), replace=False))
    assert sorted(idx) == list(range(10))
    a = ts.dmatrix("a")
    rows = rs.choice(a, size=(2,), replace=False)
    av = np.arange(12.0).reshape(4, 3)
    got = draw(rows, av, inputs=[a])
    assert got.shape == (2, 3)
    rows_of_a = {tuple(v) for v in av}
    assert len({tuple(r) for r in got}) == 2 and all(tuple(r) in rows_of_a for r in got)


def test_permutation_of_n_and_of_rows():
    rs = ts.random.RandomStream(8)
    n = ts.lscalar("n")
    perm = draw(rs.permutation(n), 9, inputs=[n])
    assert perm.dtype == np.int64 and sorted(perm) == list(range(9))
    perms = [tuple(draw(rs.permutation(6))) for _ in range(5)]
    assert len(set(perms)) > 1
    x = ts.dmatrix("x")
    xv = np.arange(10.0).reshape(5, 2)
    got = draw(rs.permutation(x), xv, inputs=[x])
    assert sorted(map(tuple, got)) == sorted(map(tuple, xv))


def test_first_draw_follows_the_documented_seeding():
    """The k-th draw of RandomStream(s) uses PCG64 seeded from the k-th child of
    SeedSequence(s): the same numbers numpy's own Generator gives."""
    rs = ts.random.RandomStream(11)
    a, b = rs.normal((4,), dtype="float64"), rs.uniform((3,), dtype="float64")
    got_a, got_b = draw([a, b])
    kids = np.random.SeedSequence(11).spawn(2)
    gens = [np.random.Generator(np.random.PCG64(k)) for k in kids]
    np.testing.assert_array_equal(got_a, gens[0].standard_normal(4))
    np.testing.assert_array_equal(got_b, gens[1].random(3))


# -- states, updates, reseeding --------------------------------------------------------------

def test_two_calls_differ_and_reseed_reproduces():
    rs = ts.random.RandomStream(42)
    f = ts.function([], [rs.normal((5,)), rs.uniform((2, 2))])
    first, second = f(), f()
    assert not np.array_equal(first[0], second[0]) and not np.array_equal(first[1], second[1])
    rs.seed(42)
    again = f()
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
    np.testing.assert_array_equal(f()[0], second[0])


def test_reseed_equals_a_fresh_stream_and_seeds_differ():
    def sample(rs):
        return ts.function([], rs.integers(1000, size=(20,)))()

    old = ts.random.RandomStream(1)
    g = ts.function([], old.integers(1000, size=(20,)))
    g(), g()
    old.seed(5)
    np.testing.assert_array_equal(g(), sample(ts.random.RandomStream(5)))
    assert not np.array_equal(sample(ts.random.RandomStream(5)), sample(ts.random.RandomStream(6)))


def test_separate_draws_are_independent_not_merged():
    rs = ts.random.RandomStream(3)
    a, b = rs.normal((50,)), rs.normal((50,))
    va, vb = draw([a, b])
    assert not np.array_equal(va, vb)
    assert len(rs.state_updates) == 2


def test_one_draw_used_twice_is_one_value():
    rs = ts.random.RandomStream(3)
    z = rs.normal((6,), dtype="float64")
    s, d = draw([z, z * 2])
    np.testing.assert_array_equal(d, 2 * s)


def test_rewritten_and_unrewritten_graphs_draw_the_same():
    rs = ts.random.RandomStream(9)
    x = ts.dvector("x")
    out = ts.exp(rs.normal(x.shape, avg=x, std=0.5, dtype="float64")) + rs.binomial(x.shape, p=0.5)
    fast = ts.function([x], out)
    ref = ts.function([x], out, mode="NONE")
    xv = np.linspace(-1, 1, 7)
    got = fast(xv)
    rs.seed(9)
    np.testing.assert_allclose(ref(xv), got, rtol=1e-12)


def test_default_updates_next_to_explicit_ones():
    rs = ts.random.RandomStream(0)
    count = ts.shared(np.int64(0), name="count")
    z = rs.normal((3,))
    f = ts.function([], z, updates=[(count, count + 1)])
    a, b = f(), f()
    assert count.get_value() == 2
    assert not np.array_equal(a, b)
    assert {t.name for t, _ in f.updates} == {"count", "rng0"}


def test_explicit_update_and_no_default_updates_win():
    rs = ts.random.RandomStream(0)
    z = rs.normal((3,))
    (state, _), = rs.state_updates
    frozen = ts.function([], z, updates=[(state, state)])
    np.testing.assert_array_equal(frozen(), frozen())
    for no_default in (True, [state]):
        g = ts.function([], z, no_default_updates=no_default)
        np.testing.assert_array_equal(g(), g())
    h = ts.function([], z)
    assert not np.array_equal(h(), h())


def test_givens_reach_draws_and_their_updates():
    rs = ts.random.RandomStream(0)
    x, y = ts.dvector("x"), ts.dvector("y")
    z = rs.normal(x.shape, avg=x, std=1e-3, dtype="float64")
    f = ts.function([y], z, givens={x: y * 2})
    a, b = f(np.ones(3)), f(np.ones(3))
    assert a.shape == (3,) and not np.array_equal(a, b)
    np.testing.assert_allclose(a, 2.0, atol=0.01)
    assert sum(isinstance(n.op, StandardNormal) for n in f.graph.apply_nodes()) == 1


def test_default_update_type_is_checked():
    s = ts.shared(np.zeros(3), name="s")
    s.default_update = ts.cast(s, "int64")
    with pytest.raises(UpdateError, match="shared variable s .*int64"):
        ts.function([], s * 2)


def test_compile_decorator_advances_states():
    rs = ts.random.RandomStream(12)

    @ts.compile
    def noisy(x):
        return x + rs.normal(x.shape, std=1.0, dtype="float64")

    xv = np.zeros(4)
    a, b = noisy(xv), noisy(xv)
    assert not np.array_equal(a, b)


def test_test_values_are_drawn_while_tracing():
    rs = ts.random.RandomStream(1)
    with ts.config.change(compute_test_value="raise"):
        x = ts.dmatrix("x", test_value=np.zeros((2, 5)))
        z = rs.uniform(x.shape)
    assert z.get_test_value().shape == (2, 5)


# -- sizes and dtypes ------------------------------------------------------------------------

def test_symbolic_sizes():
    rs = ts.random.RandomStream(2)
    x = ts.dtensor3("x")
    n = ts.lscalar("n")
    shp = ts.tensor("int64", (2,), name="shp")
    z1 = rs.normal(x.shape)
    z2 = rs.uniform((n, 3))
    z3 = rs.binomial(shp, p=0.5)
    assert z2.type.shape == (None, 3) and z3.ndim == 2
    a, b, c = draw([z1, z2, z3], np.zeros((2, 3, 4)), 5, np.array([4, 1]), inputs=[x, n, shp])
    assert a.shape == (2, 3, 4) and b.shape == (5, 3) and c.shape == (4, 1)


def test_size_none_is_the_parameters_broadcast_shape():
    rs = ts.random.RandomStream(2)
    mu = ts.dvector("mu")
    z = rs.normal(avg=mu, std=np.ones((2, 1)) * 1e-9, dtype="float64")
    got = draw(z, np.arange(3.0), inputs=[mu])
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, np.broadcast_to(np.arange(3.0), (2, 3)), atol=1e-6)
    assert draw(rs.uniform()).shape == ()


def test_static_sizes_are_inferred():
    rs = ts.random.RandomStream(0)
    assert rs.normal((3, 4)).type.shape == (3, 4)
    assert rs.permutation(5).type.shape == (5,)
    assert rs.choice(10, size=(2,)).type.shape == (2,)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_float_dtypes(dtype):
    rs = ts.random.RandomStream(0)
    for z in (rs.normal((100,), dtype=dtype), rs.uniform((100,), low=1.0, high=2.0, dtype=dtype)):
        assert z.dtype == dtype
        assert draw(z).dtype == dtype


def test_default_dtype_is_floatx():
    with ts.config.change(floatX="float32"):
        rs = ts.random.RandomStream(0)
        assert rs.normal((2,)).dtype == "float32" and rs.uniform((2,)).dtype == "float32"


def test_binomial_mask_dtypes():
    rs = ts.random.RandomStream(0)
    m = rs.binomial((1000,), p=0.5, dtype="bool")
    f = rs.binomial((10,), n=3, p=0.5, dtype="float32")
    vm, vf = draw([m, f])
    assert vm.dtype == np.bool_ and 0 < vm.sum() < 1000
    assert vf.dtype == np.float32 and np.all(vf == np.round(vf))


# -- gradients -------------------------------------------------------------------------------

def test_gradient_through_location_and_scale():
    """normal = avg + std * z: d sum / d avg = size, d sum / d std = sum(z), which is
    sum((draw - avg) / std)."""
    rs = ts.random.RandomStream(4)
    mu, sigma = ts.dscalar("mu"), ts.dscalar("sigma")
    z = rs.normal((7,), avg=mu, std=sigma, dtype="float64")
    gmu, gsigma = ts.grad(z.sum(), [mu, sigma])
    d, a, b = draw([z, gmu, gsigma], 1.5, 2.0, inputs=[mu, sigma])
    assert a == 7
    np.testing.assert_allclose(b, np.sum((d - 1.5) / 2.0), rtol=1e-12)


def test_draws_stop_the_gradient():
    rs = ts.random.RandomStream(4)
    x = ts.dvector("x")
    mask = rs.binomial(x.shape, p=0.5, dtype="float64")
    g = ts.grad((x * mask).sum(), x)
    m, gv = draw([mask, g], np.ones(20), inputs=[x])
    np.testing.assert_array_equal(gv, m)


# -- errors ----------------------------------------------------------------------------------

def test_bad_arguments():
    rs = ts.random.RandomStream(0)
    with pytest.raises(TypeError, match="float type"):
        rs.normal((2,), dtype="int32")
    with pytest.raises(TypeError, match="n must be an integer"):
        rs.binomial((2,), n=1.5)
    with pytest.raises(TypeError, match="low and high"):
        rs.integers(0.5, 3.0)
    with pytest.raises(TypeError, match="cannot have dtype"):
        rs.integers(3, dtype="float32")
    with pytest.raises(ShapeError, match="negative"):
        rs.uniform((2, -1))
    with pytest.raises(ShapeError, match="does not broadcast"):
        rs.normal((3,), avg=np.zeros(4))
    with pytest.raises(ShapeError, match="more dimensions"):
        rs.binomial((3,), p=np.full((2, 3), 0.5))
    with pytest.raises(TypeError, match="choice"):
        rs.choice(2.5)
    with pytest.raises(TypeError, match="replace"):
        rs.choice(3, replace="no")
    with pytest.raises(ShapeError, match="probabilities"):
        rs.choice(3, p=np.array([0.5, 0.5]))
    with pytest.raises(TypeError, match="permutation"):
        rs.permutation(2.0)
    with pytest.raises(TypeError, match="state"):
        StandardNormal("float64")(ts.dvector("s"))


def test_bad_values_at_run_time_name_the_op():
    rs = ts.random.RandomStream(0)
    lo = ts.lscalar("lo")
    f = ts.function([lo], rs.integers(lo, 3, size=(2,)))
    assert f(0).shape == (2,)
    with pytest.raises(OpRuntimeError, match="Integers"):
        f(5)
    g = ts.function([], rs.choice(3, size=(5,), replace=False))
    with pytest.raises(OpRuntimeError, match="Choice"):
        g()


def test_a_draw_inside_scan_advances_its_state_every_step():
    """Scan carries the state as a recurrent value when the step returns its update: the
    steps draw consecutive numbers of one generator, and calls continue from there."""
    rs = ts.random.RandomStream(0)
    x0 = ts.dvector("x0")

    def step(x):
        z = rs.normal(x.shape, dtype="float64")
        state, nxt = rs.state_updates[-1]
        return x + z, {state: nxt}

    out, updates = ts.scan(step, outputs_info=[x0], n_steps=4)
    f = ts.function([x0], out, updates=updates)
    a, b = f(np.zeros(2)), f(np.zeros(2))
    gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence(0).spawn(1)[0]))
    np.testing.assert_array_equal(a, np.cumsum(gen.standard_normal((4, 2)), axis=0))
    np.testing.assert_array_equal(b, np.cumsum(gen.standard_normal((4, 2)), axis=0))


def test_a_draw_inside_scan_advances_by_its_default_update():
    rs = ts.random.RandomStream(0)
    x0 = ts.dvector("x0")
    out, updates = ts.scan(lambda x: x + rs.normal(x.shape, dtype="float64"),
                           outputs_info=[x0], n_steps=4)
    f = ts.function([x0], out, updates=updates)
    a, b = f(np.zeros(2)), f(np.zeros(2))
    gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence(0).spawn(1)[0]))
    np.testing.assert_array_equal(a, np.cumsum(gen.standard_normal((4, 2)), axis=0))
    np.testing.assert_array_equal(b, np.cumsum(gen.standard_normal((4, 2)), axis=0))


def test_c_linker_draws_what_the_numpy_linker_draws():
    rs = ts.random.RandomStream(21)
    x = ts.dmatrix("x")
    y = ts.exp(rs.normal(x.shape, dtype="float64")) * x + ts.nnet.dropout(x, 0.5, rs)
    xv = np.arange(12.0).reshape(3, 4)
    results = []
    for linker in ("numpy", "c"):
        rs.seed(21)
        with ts.config.change(linker=linker):
            f = ts.function([x], y)
        results.append([f(xv), f(xv)])
    np.testing.assert_allclose(results[1], results[0], rtol=1e-14)
    assert not np.array_equal(results[0][0], results[0][1])
