"""Helpers shared by the rewrite tests, as session fixtures (test modules are imported by path,
so they cannot import each other; session scope keeps them usable under hypothesis)."""

import numpy as np
import pytest

import tracesym as ts


def fired_rules(f):
    """The names of the rewrites that fired while compiling `f`, in order."""
    return [name for name, _ in f.graph.rewrite_log]


#: (rtol, atol) for comparing a rewritten result with the unrewritten one, by result dtype
TOLERANCE = {"float16": (5e-3, 5e-3), "float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14),
             "complex64": (1e-5, 1e-6), "complex128": (1e-12, 1e-14)}


def assert_same(got, expected, rtol=None, atol=None):
    """Equal dtype and shape, and values equal within the dtype's tolerance (exactly for
    integers and booleans; nan where nan, infinities with their signs)."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    r, a = TOLERANCE.get(got.dtype.name, (0.0, 0.0))
    np.testing.assert_allclose(got, expected, rtol=r if rtol is None else rtol,
                               atol=a if atol is None else atol, equal_nan=True)


def compile_both(inputs, outputs, mode="FAST_RUN"):
    """The function compiled with rewrites (every one by default) and with none (mode NONE)."""
    return (ts.function(inputs, outputs, mode=mode, on_unused_input="ignore"),
            ts.function(inputs, outputs, mode="NONE", on_unused_input="ignore"))


@pytest.fixture(scope="session")
def fired():
    return fired_rules


@pytest.fixture(scope="session")
def same():
    return assert_same


@pytest.fixture(scope="session")
def against_none():
    """`against_none(inputs, outputs, *values, rtol=None, atol=None, mode="FAST_RUN")`:
    compile with `mode` and with mode NONE, run both on `values`, compare every result with
    `assert_same`; returns the function compiled with `mode`."""

    def check(inputs, outputs, *values, rtol=None, atol=None, mode="FAST_RUN"):
        f, g = compile_both(inputs, outputs, mode)
        got, want = f(*values), g(*values)
        if not isinstance(outputs, (list, tuple)):
            got, want = [got], [want]
        for a, b in zip(got, want):
            assert_same(a, b, rtol, atol)
        return f

    return check


@pytest.fixture
def checked_rewrites(monkeypatch):
    """Every graph rewritten in the test (each compiled function's, and the inner graphs of
    its loops) goes through the graph verifier before rewriting and after every phase."""
    from tracesym.rewrite import mode

    monkeypatch.setattr(mode, "CHECK_GRAPHS", True)
