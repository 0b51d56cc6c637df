"""Every differentiable Op in OP_REGISTRY has its gradient checked by `verify_grad`.

Each Op family's test module (tests/ops/test_*.py, and the autodiff helpers' own module)
defines `GRAD_CASES = {OpClass: [(fun, [float64 arrays]), ...]}`; this module gathers them,
runs every case, and fails listing the Ops no module covers.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import tracesym as ts
from tracesym.ops import OP_REGISTRY

ROOT = Path(__file__).resolve().parents[2]
CASE_FILES = sorted((ROOT / "tests" / "ops").glob("test_*.py")) + [
    ROOT / "tests" / "autodiff" / "test_helpers.py"]


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts)


def _load(path):
    """The test module at `path`, imported once under the name pytest's importlib mode gives
    it, so collecting it later reuses this module (and its test-local Ops)."""
    for mod in list(sys.modules.values()):
        if getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == path:
            return mod
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def _collect():
    cases, errors = {}, {}
    for path in CASE_FILES:
        try:
            mod = _load(path)
        except Exception as e:  # reported by test_case_modules_import
            errors[path.name] = f"{type(e).__name__}: {e}"
            continue
        for op, entries in getattr(mod, "GRAD_CASES", {}).items():
            for k, (fun, points) in enumerate(entries):
                cases.setdefault(op, []).append((f"{path.stem}:{op.__name__}[{k}]", fun, points))
    return cases, errors


CASES, IMPORT_ERRORS = _collect()
FLAT = [(label, fun, points) for entries in CASES.values() for label, fun, points in entries]


def test_case_modules_import():
    assert not IMPORT_ERRORS, IMPORT_ERRORS


@pytest.mark.parametrize("label,fun,points", FLAT, ids=[c[0] for c in FLAT])
def test_grad_case(label, fun, points):
    for p in points:
        assert np.asarray(p).dtype == np.float64, f"{label}: GRAD_CASES points must be float64"
    ts.verify_grad(fun, points, rng=np.random.default_rng(7))


def uncovered_ops():
    """Differentiable Ops in OP_REGISTRY that no GRAD_CASES dict lists, by module."""
    return sorted(f"{op.__module__}.{op.__qualname__}" for op in set(OP_REGISTRY)
                  if op.differentiable and op not in CASES)


def test_every_differentiable_op_has_grad_cases():
    missing = uncovered_ops()
    assert not missing, f"{len(missing)} differentiable Op(s) have no GRAD_CASES entry: {missing}"
