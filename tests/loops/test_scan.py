"""`ts.scan` against hand-written numpy loops: sequences and their taps, recurrent outputs and
their taps, per-step outputs, non-sequences and closures, n_steps, go_backwards, updates of
shared variables, nested scans, zero-length loops, map/reduce/foldl/foldr, debug values, and
the errors a user meets."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError, ScanError

MODES = ["FAST_RUN", "NONE"]


def run(inputs, outputs, *values, mode="FAST_RUN", updates=None):
    return ts.function(inputs, outputs, updates=updates, mode=mode)(*values)


@pytest.mark.parametrize("mode", MODES)
def test_cumulative_sum(mode, rng):
    x = ts.dvector("x")
    out, updates = ts.scan(lambda xt, acc: acc + xt, sequences=x, outputs_info=ts.constant(0.0))
    assert updates == {}
    xv = rng.normal(size=7)
    np.testing.assert_allclose(run([x], out, xv, mode=mode), np.cumsum(xv))


@pytest.mark.parametrize("mode", MODES)
def test_rnn_forward_with_non_sequences_and_closure(mode, rng):
    X, h0, W = ts.dmatrix("X"), ts.dvector("h0"), ts.dmatrix("W")
    b = ts.shared(rng.normal(size=3), name="b")  # closed over: an implicit non-sequence

    def step(xt, h, W):
        return ts.tanh(xt + h @ W + b)

    H, _ = ts.scan(step, sequences=X, outputs_info=h0, non_sequences=W)
    Xv, hv, Wv = rng.normal(size=(6, 3)), rng.normal(size=3), rng.normal(size=(3, 3))
    ref, h = [], hv
    for xt in Xv:
        h = np.tanh(xt + h @ Wv + b.get_value())
        ref.append(h)
    np.testing.assert_allclose(run([X, h0, W], H, Xv, hv, Wv, mode=mode), ref)


@pytest.mark.parametrize("mode", MODES)
def test_fibonacci_output_taps_with_n_steps(mode):
    x0, n = ts.dvector("x0"), ts.lscalar("n")
    fib, _ = ts.scan(lambda a, b: a + b, outputs_info=dict(initial=x0, taps=[-2, -1]), n_steps=n)
    ref = [0.0, 1.0]
    for _ in range(10):
        ref.append(ref[-1] + ref[-2])
    np.testing.assert_array_equal(run([x0, n], fib, np.array([0.0, 1.0]), 10, mode=mode), ref[2:])


def test_output_taps_passed_in_the_order_given():
    x0 = ts.dvector("x0")
    out, _ = ts.scan(lambda prev, prev2: prev - prev2, n_steps=4,
                     outputs_info=dict(initial=x0, taps=[-1, -3]))
    ref = [1.0, 2.0, 4.0]
    for _ in range(4):
        ref.append(ref[-1] - ref[-3])
    np.testing.assert_array_equal(run([x0], out, np.array([1.0, 2.0, 4.0])), ref[3:])


def test_sequence_taps():
    x = ts.dvector("x")
    out, _ = ts.scan(lambda a, b, c: a - 2 * b + c, sequences=dict(input=x, taps=[-1, 0, 1]))
    xv = np.arange(8.0) ** 3
    np.testing.assert_allclose(run([x], out, xv), xv[:-2] - 2 * xv[1:-1] + xv[2:])


def test_power_series():
    """sum_k c_k x^k with the power as a recurrent state and the terms as a per-step output."""
    c, x = ts.dvector("c"), ts.dscalar("x")

    def step(ck, power, x):
        return power * x, ck * power

    (_, terms), _ = ts.scan(step, sequences=c, outputs_info=[ts.constant(1.0), None],
                            non_sequences=x)
    cv = np.array([1.0, -2.0, 0.5, 3.0])
    got = run([c, x], terms.sum(), cv, 1.5)
    np.testing.assert_allclose(got, np.polynomial.polynomial.polyval(1.5, cv))


def test_go_backwards():
    x = ts.dvector("x")
    out, _ = ts.scan(lambda a, acc: acc + a, sequences=x, outputs_info=ts.constant(0.0),
                     go_backwards=True)
    xv = np.arange(1.0, 6.0)
    np.testing.assert_allclose(run([x], out, xv), np.cumsum(xv[::-1]))


@pytest.mark.parametrize("mode", MODES)
def test_sequences_of_different_lengths_fail_when_run_naming_the_scan_line(mode):
    x, y = ts.dvector("x"), ts.dvector("y")
    out, _ = ts.scan(lambda a, b: a * b, sequences=[x, y])  # the line the error names
    f = ts.function([x, y], out, mode=mode)
    np.testing.assert_array_equal(f(np.arange(3.0), np.arange(3.0)), [0.0, 1.0, 4.0])
    different = r"sequence 0 \(x\) gives 3, sequence 1 \(y\) gives 5"
    with pytest.raises(OpRuntimeError, match=different) as info:
        f(np.arange(3.0), np.arange(5.0))
    assert "test_scan.py" in str(info.value) and "# the line the error names" in str(info.value)


def test_sequence_taps_count_in_the_length_check():
    x, y = ts.dvector("x"), ts.dvector("y")
    out, _ = ts.scan(lambda a, b, c, d: a + c - d, sequences=[dict(input=x, taps=[-1, 0, 1]), y])
    f = ts.function([x, y], out)
    xv, yv = np.arange(6.0) ** 2, np.arange(4.0)
    np.testing.assert_array_equal(f(xv, yv), xv[:-2] + xv[2:] - yv)
    with pytest.raises(OpRuntimeError, match=r"sequence 0 \(x, taps \[-1, 0, 1\].*\) gives 4, "
                       r"sequence 1 \(y\) gives 6"):
        f(xv, np.arange(6.0))


def test_static_lengths_that_differ_fail_at_the_scan_call():
    a, b = ts.tensor("float64", (4,), name="a"), ts.tensor("float64", (3,), name="b")
    with pytest.raises(ScanError, match=r"sequence 0 \(a\) gives 4, sequence 1 \(b\) gives 3"
                       r"(.|\n)*scan called at .*test_scan.py"):
        ts.scan(lambda p, q: p + q, sequences=[a, b])
    # taps [-1, 0] leave 3 steps of a's 4 rows: the lengths agree
    out, _ = ts.scan(lambda p, q, r: p + q + r, sequences=[dict(input=a, taps=[-1, 0]), b])
    av, bv = np.arange(4.0), np.arange(3.0) * 10
    np.testing.assert_array_equal(run([a, b], out, av, bv), av[:-1] + av[1:] + bv)


def test_n_steps_reads_the_first_rows_of_sequences_of_any_lengths():
    x, y = ts.dvector("x"), ts.dvector("y")
    out, _ = ts.scan(lambda a, b: a * b, sequences=[x, y], n_steps=2)
    np.testing.assert_array_equal(run([x, y], out, np.arange(3.0), np.arange(5.0)), [0.0, 1.0])
    short = ts.tensor("float64", (3,), name="short")
    with pytest.raises(ScanError, match=r"sequence 0 \(short\) gives 3 steps, fewer than n_steps"):
        ts.scan(lambda a: a, sequences=short, n_steps=4)


def test_n_steps_longer_than_a_sequence_is_a_runtime_error():
    x = ts.dvector("x")
    out, _ = ts.scan(lambda a: a * 2, sequences=x, n_steps=5)
    f = ts.function([x], out)
    np.testing.assert_array_equal(f(np.arange(6.0)), np.arange(5.0) * 2)
    with pytest.raises(OpRuntimeError, match="sequence 0 has 3 rows, fewer than the 5 steps"):
        f(np.arange(3.0))


def test_tuple_list_and_single_returns():
    x = ts.dvector("x")
    (a, b), _ = ts.scan(lambda v: (v + 1, v * 2), sequences=x)
    c, _ = ts.scan(lambda v: [v - 1], sequences=x)
    assert isinstance(c, ts.Variable)  # one output comes back unwrapped
    xv = np.arange(4.0)
    got = run([x], [a, b, c], xv)
    for g, ref in zip(got, [xv + 1, xv * 2, xv - 1]):
        np.testing.assert_array_equal(g, ref)


def test_shared_variable_updates_inside_the_step():
    count = ts.shared(np.float64(0.0), name="count")
    x = ts.dvector("x")

    def step(v):
        return v * count, {count: count + 1}  # reads the value the previous step left

    out, updates = ts.scan(step, sequences=x)
    assert list(updates) == [count]
    f = ts.function([x], out, updates=updates)
    np.testing.assert_array_equal(f(np.ones(4)), [0.0, 1.0, 2.0, 3.0])
    assert count.get_value() == 4.0
    np.testing.assert_array_equal(f(np.ones(2)), [4.0, 5.0])
    assert count.get_value() == 6.0


def test_updates_only_step_and_compile_decorator():
    total = ts.shared(np.zeros(2), name="total")

    @ts.compile
    def accumulate(x: ts.dmatrix):
        _, updates = ts.scan(lambda row: {total: total + row}, sequences=x)
        for target, value in updates.items():
            ts.update(target, value)
        return x.sum()

    xv = np.arange(6.0).reshape(3, 2)
    accumulate(xv)
    np.testing.assert_array_equal(total.get_value(), xv.sum(0))


@pytest.mark.parametrize("mode", MODES)
def test_nested_scans(mode, rng):
    X = ts.dmatrix("X")

    def row_step(row, acc):
        inner, _ = ts.scan(lambda a, t: t + a * acc, sequences=row, outputs_info=ts.constant(0.0))
        return acc + inner[-1]

    out, _ = ts.scan(row_step, sequences=X, outputs_info=ts.constant(1.0))
    Xv = rng.normal(size=(3, 4))
    acc, ref = 1.0, []
    for row in Xv:
        acc = acc + sum(a * acc for a in row)
        ref.append(acc)
    np.testing.assert_allclose(run([X], out, Xv, mode=mode), ref)


def test_zero_length_sequence():
    x, h0 = ts.dvector("x"), ts.dvector("h0")
    states, _ = ts.scan(lambda a, h: h * a, sequences=x, outputs_info=h0)
    doubled, _ = ts.map(lambda a: a * 2, x)
    f = ts.function([x, h0], [states, doubled])
    s, d = f(np.zeros(0), np.ones(3))
    assert s.shape == (0, 3) and d.shape == (0,)


def test_map_reduce_foldl_foldr():
    x = ts.dvector("x")
    m, _ = ts.map(lambda a: a ** 2, x)
    r, _ = ts.reduce(lambda a, acc: acc * 10 + a, x, ts.constant(0.0))
    left, _ = ts.foldl(lambda a, acc: acc * 10 + a, x, ts.constant(0.0))
    right, _ = ts.foldr(lambda a, acc: acc * 10 + a, x, ts.constant(0.0))
    got = run([x], [m, r, left, right], np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(got[0], [1.0, 4.0, 9.0])
    assert got[1] == 123.0 and got[2] == 123.0 and got[3] == 321.0


def test_test_values_and_eager():
    with ts.config.change(compute_test_value="raise"):
        x = ts.dvector("x")
        x.tag.test_value = np.arange(4.0)
        out, _ = ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.constant(0.0))
        np.testing.assert_array_equal(out.tag.test_value, np.cumsum(np.arange(4.0)))

    @ts.compile
    def cumsum(x):
        return ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.constant(0.0))[0]

    with ts.eager():
        np.testing.assert_array_equal(cumsum(np.arange(3.0)), [0.0, 1.0, 3.0])


# -- errors ----------------------------------------------------------------------------------

def test_error_step_returns_another_dtype():
    x = ts.dvector("x")
    with pytest.raises(ScanError, match=r"output 0 .* float64\[\].* float32\[\].*astype") as e:
        ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.constant(np.float32(0)))
    assert "test_scan.py" in str(e.value)  # the user's line


def test_error_step_returns_another_ndim():
    x = ts.dvector("x")
    with pytest.raises(ScanError, match="number of dimensions"):
        ts.scan(lambda a, h: (h + a) * ts.ones(3), sequences=x, outputs_info=ts.constant(0.0))


def test_error_wrong_number_of_outputs():
    x = ts.dvector("x")
    with pytest.raises(ScanError, match="returned 2 output.*outputs_info has 1") as e:
        ts.scan(lambda a, h: (h + a, h), sequences=x, outputs_info=ts.constant(0.0))
    assert "test_scan.py" in str(e.value)


def test_error_strict_names_the_captured_variable():
    x, w = ts.dvector("x"), ts.dscalar("w")
    with pytest.raises(ScanError, match=r"strict=True.* uses w \(float64\[\]"):
        ts.scan(lambda a: a * w, sequences=x, strict=True)
    out, _ = ts.scan(lambda a, w: a * w, sequences=x, non_sequences=w, strict=True)
    np.testing.assert_array_equal(run([x, w], out, np.arange(3.0), 2.0), [0.0, 2.0, 4.0])


def test_error_no_sequences_and_no_n_steps():
    with pytest.raises(ScanError, match="give sequences or n_steps"):
        ts.scan(lambda: ts.constant(1.0), outputs_info=None)


def test_error_state_changes_shape_at_run_time():
    x, h0 = ts.dvector("x"), ts.dvector("h0")
    out, _ = ts.scan(lambda a, h: h[:1] * a, sequences=x, outputs_info=h0)
    with pytest.raises(OpRuntimeError, match=r"output 0 of the step function has shape \(1,\)"):
        ts.function([x, h0], out)(np.arange(3.0), np.ones(2))


def test_error_bad_taps_and_scalar_sequence():
    x = ts.dvector("x")
    with pytest.raises(ScanError, match="taps must be negative"):
        ts.scan(lambda a: a, outputs_info=dict(initial=x, taps=[0]), n_steps=2)
    with pytest.raises(ScanError, match="is a scalar"):
        ts.scan(lambda a: a, sequences=ts.dscalar("s"))


def test_error_update_of_a_non_shared_variable():
    x = ts.dvector("x")
    with pytest.raises(ts.UpdateError, match="only shared variables"):
        ts.scan(lambda a: (a, {x: x + 1}), sequences=x)


def test_ts_update_inside_a_compiled_step():
    steps = ts.shared(np.int64(0), name="steps")

    @ts.compile
    def run_rnn(x: ts.dvector):
        def step(a, h):
            ts.update(steps, steps + 1)
            return h * 0.5 + a

        out, updates = ts.scan(step, sequences=x, outputs_info=ts.constant(0.0))
        assert updates == {}  # applied by the enclosing function, not handed back
        return out

    np.testing.assert_allclose(run_rnn(np.ones(3)), [1.0, 1.5, 1.75])
    assert steps.get_value() == 3
    run_rnn(np.ones(2))
    assert steps.get_value() == 5



def test_c_linked_loop_trusts_only_typed_values(rng):
    """A C-linked step skips re-checking its inputs when the loop's values are arrays of
    exactly their types (0-d rows, taps and a one-row ring included); a value of another
    dtype goes through the checks instead of being read as the wrong bytes."""
    C = ts.Mode(linker="c")
    x, f0 = ts.dvector("x"), ts.dvector("f0")
    fib, _ = ts.scan(lambda a, h2, h1: h1 + h2 * a, sequences=x,
                     outputs_info=dict(initial=f0, taps=[-2, -1]))
    last, _ = ts.reduce(lambda a, acc: acc * 0.5 + a, x, ts.constant(0.0))
    xv, f0v = rng.normal(size=6), np.array([1.0, 2.0])
    f = ts.function([x, f0], [fib, last], mode=C)
    want_fib, want_last = list(f0v), 0.0
    for a in xv:
        want_fib.append(want_fib[-1] + want_fib[-2] * a)
        want_last = want_last * 0.5 + a
    got_fib, got_last = f(xv, f0v)
    np.testing.assert_allclose(got_fib, want_fib[2:])
    np.testing.assert_allclose(got_last, want_last)
    (node,) = [n for n in f.graph.toposort() if isinstance(n.op, ts.loops.Scan)]
    (inner,) = node.op._special.values()  # the step specialised to the call's shapes
    assert inner.trusted is not None
    g = ts.function([x], last, mode=C)
    (node,) = [n for n in g.graph.toposort() if isinstance(n.op, ts.loops.Scan)]
    assert len(node.inputs) == 3  # n_steps, x, the initial state
    with pytest.raises(Exception, match="float32"):
        node.op.perform(node, [np.int64(6), xv.astype("float32"), np.zeros(1)])
