"""The C step of `Gemm` (backend/c/gemm.py): a CBLAS call writing the SGD-style update into
z's buffer, against the numpy linker on the unrewritten graph; the cases it leaves to the
`perform` (z aliased, layouts CBLAS does not take) and the copy it updates where not in
place."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.backend.c import gemm, linker
from tracesym.ops.blas import Gemm

C = ts.Mode(linker="c")


def _gemm_nodes(f):
    return [n for n in f.graph.toposort() if isinstance(n.op, Gemm)]


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_sgd_updates_run_in_cblas_into_the_weights(dtype, tol, rng):
    """W <- W - lr * (x.T @ (x @ W) + l2 * W), the step of a quadratic loss with weight
    decay: a Gemm in place; the same values as numpy's, step after step."""
    wv = rng.normal(size=(7, 5)).astype(dtype)
    xv = rng.normal(size=(9, 7)).astype(dtype)
    results = []
    for mode in (C, ts.Mode(None, linker="numpy")):
        W = ts.shared(wv.copy(), name="W")
        x = ts.tensor(dtype, (None, None), name="x")
        r = x @ W
        f = ts.function([x], (r * r).sum(), updates=[(W, W - 0.01 * (x.T @ r + 0.1 * W))],
                        mode=mode)
        outs = [f(xv) for _ in range(3)]
        results.append((outs, W.get_value(), f))
    (got, w, f), (want, w_ref, _) = results
    (node,) = _gemm_nodes(f)
    assert node.op.inplace and gemm.EMBEDDED[Gemm][0](node) is not None  # its C step
    np.testing.assert_allclose(got, want, rtol=tol)
    np.testing.assert_allclose(w, w_ref, rtol=tol, atol=tol)


def test_the_step_against_perform_and_its_fallbacks(rng):
    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    a, b = ts.dscalar("a"), ts.dscalar("b")
    node = Gemm(inplace=True)(z, a, x, y, b).owner
    (step,) = linker.kernel_steps([node], ts.config.compiledir)
    xv, yv = rng.normal(size=(4, 6)), rng.normal(size=(6, 3))
    cases = [(xv, yv), (np.asfortranarray(xv), yv), (xv, yv.T.copy().T),  # transposed layouts
             (xv[:, ::2], yv[::2]),  # no unit stride: perform
             (np.zeros((4, 0)), np.zeros((0, 3)))]  # K = 0: perform
    for xa, ya in cases:
        for beta in (0.5, 0.0):
            zv = rng.normal(size=(4, 3))
            want = node.op.perform(node, [zv.copy(), np.array(2.0), xa, ya, np.array(beta)])[0]
            (got,) = step([zv, np.array(2.0), xa, ya, np.array(beta)])
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    zv = rng.normal(size=(3, 3))
    z0 = zv.copy()
    (got,) = step([zv, np.array(1.0), zv, zv.T, np.array(1.0)])  # z is x and y: perform
    np.testing.assert_allclose(got, z0 @ z0.T + z0, rtol=1e-13)


def test_not_in_place_updates_a_copy_of_z(rng):
    """A Gemm whose z is a shared variable's value (not in place): CBLAS updates a copy,
    z itself is left as it was, even where z is also x (the copy shares nothing)."""
    z, x, y = ts.dmatrix("z"), ts.dmatrix("x"), ts.dmatrix("y")
    a, b = ts.dscalar("a"), ts.dscalar("b")
    node = Gemm()(z, a, x, y, b).owner
    (step,) = linker.kernel_steps([node], ts.config.compiledir)
    zv, xv, yv = rng.normal(size=(4, 3)), rng.normal(size=(4, 6)), rng.normal(size=(6, 3))
    for zi, xi, yi in [(zv, xv, yv), (zv[:, ::-1], xv.T.copy().T, yv), (zv[:3], zv[:3], zv[:3])]:
        z0 = zi.copy()
        want = node.op.perform(node, [z0, np.array(-0.5), xi, yi, np.array(0.9)])[0]
        (got,) = step([zi, np.array(-0.5), xi, yi, np.array(0.9)])
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(zi, z0)
        assert not np.may_share_memory(got, zi)
