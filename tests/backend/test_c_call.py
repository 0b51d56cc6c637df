"""The call path of C-linked functions: what the linker decides once at link time (outputs
that alias nothing, inputs whose types need no check per call) must keep every result a
caller sees as safe as the general checks would, and threaded loops must compute exactly
what serial ones do."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.backend.c import cache, cgen
from tracesym.backend.c.linker import link_c
from tracesym.errors import OpRuntimeError
from tracesym.trace.graph import Graph

C = ts.Mode(linker="c")


def test_kernel_outputs_are_fresh_and_skip_the_alias_checks():
    x = ts.dvector("x")
    f = ts.function([x], [((x * 2 + 1) ** 2).sum(), ts.exp(x)], mode=C)
    assert f._runner.fresh == [True, True] and f._all_fresh
    xv = np.linspace(-1, 1, 10)
    s, e = f(xv)
    s2, e2 = f(xv)
    assert s is not s2 and e is not e2 and not np.shares_memory(e, e2)
    e[:] = 0  # writing a result changes neither the argument nor the next call's result
    np.testing.assert_allclose(f(xv)[1], np.exp(xv), rtol=1e-15)
    np.testing.assert_allclose(s, ((xv * 2 + 1) ** 2).sum(), rtol=1e-14)


def test_outputs_that_may_alias_are_still_copied():
    x = ts.dvector("x")
    y = ts.exp(x)
    w = ts.shared(np.zeros(3), name="w")
    f = ts.function([x], [y, y, x, y[::-1]], updates=[(w, y)], mode=C)
    assert f._runner.fresh[:3] == [False, False, False] and not f._all_fresh
    xv = np.arange(3.0)
    a, b, c, d = f(xv)
    arrays = [a, b, c, d, w.get_value(borrow=True), xv]
    assert not any(np.shares_memory(p, q) for i, p in enumerate(arrays) for q in arrays[i + 1:])
    np.testing.assert_allclose(d, np.exp(xv)[::-1], rtol=1e-15)  # libmvec: within an ulp


def test_static_update_shape_is_still_checked_on_the_fast_path():
    x = ts.dvector("x")
    w = ts.shared(np.zeros(3), name="w", shape=(3,))
    f = ts.function([x], [], updates=[(w, ts.exp(x))], mode=C)
    assert f._all_fresh
    f(np.zeros(3))
    with pytest.raises(ts.UpdateError, match="static shape"):
        f(np.zeros(4))
    np.testing.assert_array_equal(w.get_value(), 1.0)


def test_arguments_are_checked_before_the_unchecked_runner():
    x = ts.dvector("x")
    f = ts.function([x], ts.exp(x) + 1, mode=C)
    np.testing.assert_allclose(f(np.zeros(2, "float32")), 2.0)  # safe cast by the function
    np.testing.assert_allclose(f([0.0, 1.0]), [2.0, np.e + 1])
    big_endian = np.zeros(2, ">f8")
    np.testing.assert_allclose(f(big_endian), 2.0)  # converted, never read as native bytes
    with pytest.raises(ts.InputError, match="dimension"):
        f(np.zeros((2, 2)))


def test_the_plain_runner_checks_what_its_caller_passes():
    """A runner called directly (as scan's loop does) converts numpy scalars and refuses a
    wrong dtype; only `runner.validated` trusts its inputs."""
    x = ts.dscalar("x")
    y = ts.exp(x) * 2
    run = link_c(Graph([x], [y]), ts.config.snapshot())
    np.testing.assert_allclose(run([np.float64(0.0)])[0], 2.0)
    with pytest.raises(OpRuntimeError, match="built for float64"):
        run([np.zeros((), "float32")])
    np.testing.assert_allclose(run.validated([np.zeros(())])[0], 2.0)


def test_threaded_loops_equal_serial_ones():
    """Above `parallel_min` the contiguous loop is split over threads.  Arithmetic must be
    bitwise that of the serial loop (chunks below the threshold, and the strided loop);
    vector math may differ by an ulp where a thread's share starts (its first elements go
    through scalar libm); the error status of any thread is seen."""
    n = cgen.PARALLEL_MIN_CHEAP + 4 * cgen.PARALLEL_MIN + 17  # both programs threaded
    rng = np.random.default_rng(1)
    xv, yv = rng.normal(size=n), rng.normal(size=n)
    x, y = ts.dvector("x"), ts.dvector("y")
    arith = ts.function([x, y], (x * y + 1.5) / (x - y * y), mode=C)
    w1 = ts.function([x, y], ts.sigmoid(x * y + 1.5) * ts.tanh(x) + ts.exp(-x * x), mode=C)
    step = cgen.PARALLEL_MIN // 2
    xs, ys = np.repeat(xv, 2)[::2], np.repeat(yv, 2)[::2]  # strided views: the serial loop
    for f, check in ((arith, np.testing.assert_array_equal),
                     (w1, lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15))):
        whole = f(xv, yv)
        check(whole, np.concatenate([f(xv[i:i + step], yv[i:i + step])
                                     for i in range(0, n, step)]))
        check(whole, f(xs, ys))
    i, j = ts.lvector("i"), ts.lvector("j")
    g = ts.function([i, j], i ** j, mode=C)
    iv, jv = np.full(n, 2), np.ones(n, "int64")
    np.testing.assert_array_equal(g(iv, jv), 2)
    jv[n - 3] = -1  # one negative exponent, in the last thread's share
    with pytest.raises(OpRuntimeError, match="negative integer powers"):
        g(iv, jv)


def test_openmp_is_probed_once_and_in_the_cache_key(monkeypatch):
    if cache.compiler() is None:
        pytest.skip("no C compiler")
    flags = cache.flags()
    assert cache.flags() is flags  # probed once per process
    assert ("-fopenmp" in flags) == cache._probe(cache.compiler()[0])["openmp"]
    key = cache.key_of("int f(void) { return 0; }", "int f(void);")
    other = tuple(f for f in flags if f != "-fopenmp") if "-fopenmp" in flags else flags + (
        "-fopenmp",)
    monkeypatch.setattr(cache, "flags", lambda: other)  # as if the probe had said otherwise
    assert cache.key_of("int f(void) { return 0; }", "int f(void);") != key


def test_schedule_source_is_straight_line_code():
    from tracesym.backend.c.linker import _schedule_source

    src = _schedule_source([([0, 2], [3], [2]), ([3, 1], [4], [3])], [0, 1], [4, 0], [2])
    assert src == (
        "def run(values):\n"
        "    s0, s1, = values\n"
        "    s2 = c2\n"
        "    try:\n"
        "        k = 0; a = [s0, s2, ]\n"
        "        s3, = f0(a)\n"
        "        s2 = None\n"
        "        k = 1; a = [s3, s1, ]\n"
        "        s4, = f1(a)\n"
        "        s3 = None\n"
        "    except Exception as e:\n"
        "        raise fail(k, a, e) from e\n"
        "    return [s4, s0, ]\n")


def test_an_error_names_the_node_that_failed_after_other_steps():
    a, b = ts.lvector("a"), ts.lvector("b")
    c = ts.exp(a.astype("float64")).sum()
    d = (a ** b).sum()  # fails at run time for a negative exponent
    f = ts.function([a, b], [c, d], mode=C)
    with pytest.raises(OpRuntimeError, match="negative integer powers") as e:
        f(np.array([2, 3]), np.array([1, -1]))
    assert "test_c_call.py" in str(e.value)  # the user's line that built the failing node
    np.testing.assert_allclose(f(np.array([2, 3]), np.array([1, 2]))[1], 11)
