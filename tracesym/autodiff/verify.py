"""`verify_grad`: check a symbolic gradient against central finite differences.

The function under test is reduced to a scalar by a random projection of its output, so one
gradient checks every output element's contribution; the projection changes between the
`n_tests` repetitions.  Everything is computed in float64 unless the function itself produces
a lower precision, in which case the step and the tolerances widen to that precision.
"""

from __future__ import annotations

import numpy as np

from ..errors import VerifyGradError

__all__ = ["verify_grad"]

#: (finite-difference step, default absolute and relative tolerance) per output precision
_PRECISION = {"float64": (1e-7, 1e-4), "float32": (3e-3, 1e-2), "float16": (1e-1, 5e-2)}


def _rng(rng):
    if rng is None:
        return np.random.default_rng(20240611)
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    raise TypeError(f"verify_grad: rng must be a numpy Generator, a RandomState or None, got {rng!r}")


def _precision(dtype):
    name = {"complex64": "float32", "complex128": "float64"}.get(dtype, dtype)
    return _PRECISION.get(name, _PRECISION["float64"])


def verify_grad(fun, points, n_tests=2, rng=None, eps=None, abs_tol=None, rel_tol=None, mode=None,
                cast_to_output_type=False):
    """Raise `VerifyGradError` unless the gradient `grad` builds for `fun` agrees with finite
    differences at `points`.

    `fun` takes one symbolic float64 tensor per point and returns a symbolic tensor.  The
    check differentiates `sum(fun(*xs) * proj)` for a random `proj` of the output's shape
    (drawn from `rng`), `n_tests` times.  An element fails when both its absolute and its
    relative error exceed the tolerances (defaults 1e-4 in float64); the error names the input,
    the worst element's index, both values and both errors.  With `cast_to_output_type`, the
    projection has the output's dtype instead of float64.
    """
    from ..ops.elemwise import cast, mul
    from ..ops.reduce import sum as _sum
    from ..trace.function import function
    from ..trace.graph import Variable
    from ..trace.types import TensorType
    from .grad import grad

    rng = _rng(rng)
    if not isinstance(points, (list, tuple)):
        raise TypeError("verify_grad: points must be a list of arrays, one per argument of fun")
    pts = [np.array(p, dtype="float64") for p in points]
    xs = [TensorType("float64", (None,) * p.ndim)(name=f"x{i}") for i, p in enumerate(pts)]
    out = fun(*xs)
    if not isinstance(out, Variable):
        raise TypeError(f"verify_grad: fun must return one symbolic tensor, got {type(out).__name__}")
    if out.dtype[0] not in "fc":
        raise TypeError(f"verify_grad: fun returns {out.type.short()}; its output must be a float tensor")
    step, tol = _precision(out.dtype)
    eps = step if eps is None else eps
    abs_tol = tol if abs_tol is None else abs_tol
    rel_tol = tol if rel_tol is None else rel_tol

    out_shape = function(xs, out, mode=mode, on_unused_input="ignore")(*pts).shape
    proj = TensorType(out.dtype if cast_to_output_type else "float64", (None,) * out.ndim)(name="proj")
    cost = _sum(mul(out if cast_to_output_type else cast(out, "float64"), proj))
    grads = grad(cost, xs, disconnected_inputs="ignore")
    f_cost = function(xs + [proj], cost, mode=mode, on_unused_input="ignore")
    f_grad = function(xs + [proj], grads, mode=mode, on_unused_input="ignore")

    for _ in range(n_tests):
        p = np.asarray(rng.uniform(0.5, 1.5, size=out_shape), dtype=proj.dtype)
        analytic = [np.asarray(g, dtype="float64") for g in f_grad(*pts, p)]
        numeric = _numeric_grad(f_cost, pts, p, eps)
        for i, (a, n) in enumerate(zip(analytic, numeric)):
            _compare(i, a, n, abs_tol, rel_tol, pts[i].shape)


def _numeric_grad(f_cost, pts, proj, eps):
    """Central differences of the projected cost, one input element at a time."""
    grads = []
    for i, x in enumerate(pts):
        g = np.zeros_like(x)
        flat_x, flat_g = x.reshape(-1), g.reshape(-1)
        for j in range(flat_x.size):
            orig = flat_x[j]
            args = list(pts)
            xp = x.copy()
            xp.reshape(-1)[j] = orig + eps
            args[i] = xp
            hi = float(f_cost(*args, proj))
            xp.reshape(-1)[j] = orig - eps
            lo = float(f_cost(*args, proj))
            flat_g[j] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


def _compare(i, a, n, abs_tol, rel_tol, shape):
    if a.shape != n.shape:
        raise VerifyGradError(f"verify_grad: the analytic gradient of input {i} has shape {a.shape}, "
                              f"the input has shape {shape}")
    if a.size == 0:
        return
    abs_err = np.abs(a - n)
    denom = np.abs(a) + np.abs(n)
    rel_err = np.where(denom > 0, abs_err / np.where(denom > 0, denom, 1), 0.0)
    bad = ~((abs_err <= abs_tol) | (rel_err <= rel_tol))
    bad |= np.isnan(a) != np.isnan(n)
    if not bad.any():
        return
    score = np.where(bad, np.where(np.isnan(abs_err), np.inf, abs_err), -1.0)
    k = np.unravel_index(int(np.argmax(score)), a.shape)
    raise VerifyGradError(
        f"verify_grad: the gradient of input {i} disagrees with finite differences at index "
        f"{tuple(int(t) for t in k)}: analytic {float(a[k]):.10g}, numeric {float(n[k]):.10g}, abs error "
        f"{abs_err[k]:.3g} (tolerance {abs_tol:g}), rel error {rel_err[k]:.3g} (tolerance "
        f"{rel_tol:g}); {int(bad.sum())} of {a.size} elements disagree")
