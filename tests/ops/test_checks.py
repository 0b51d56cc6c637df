"""CheckSizes: passes its value through when every pair of sizes agrees, and raises a
ShapeError naming the removed Op and the sizes when one does not; bad construction is a
clear error; gradients flow around it (it is not differentiable itself)."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops.checks import CheckSizes

EQ = ("eq", "size {a} is not {b}")
BCAST = ("bcast", "size {a} does not broadcast to {b}")


def _sized(x):
    """`x` times 1, where the 1 comes through a check that its two dims are equal."""
    n = CheckSizes("square", [EQ])(ts.shape_i(x, 0), ts.shape_i(x, 0), ts.shape_i(x, 1))
    return x * (n // n).astype("float64")


GRAD_CASES = {CheckSizes: [(_sized, [np.random.default_rng(0).uniform(-1, 1, (3, 3))])]}


@pytest.mark.parametrize("check,a,b,ok", [(EQ, 3, 3, True), (EQ, 1, 3, False), (EQ, 0, 0, True),
                                          (BCAST, 1, 3, True), (BCAST, 3, 1, False),
                                          (BCAST, 2, 2, True), (BCAST, 0, 2, False)])
def test_pairs(check, a, b, ok):
    i, j = ts.lscalar("i"), ts.lscalar("j")
    shp = ts.lvector("shp")
    f = ts.function([shp, i, j], CheckSizes("Op", [check])(shp, i, j), mode="NONE")
    value = np.array([4, 5])
    if ok:
        got = f(value, a, b)
        np.testing.assert_array_equal(got, value)
        assert got.dtype == np.int64
    else:
        with pytest.raises(OpRuntimeError, match=f"ShapeError: Op: .*{a}.*{b}") as info:
            f(value, a, b)
        assert isinstance(info.value.__cause__, ShapeError)


def test_several_checks_report_the_first_that_fails():
    s = [ts.lscalar(f"s{k}") for k in range(4)]
    out = CheckSizes("MatMul", [EQ, BCAST])(s[0], *s)
    f = ts.function(s, out, mode="NONE")
    assert f(2, 2, 1, 7) == 2
    with pytest.raises(OpRuntimeError, match="MatMul: size 4 does not broadcast to 7"):
        f(2, 2, 4, 7)


def test_construction_errors():
    i = ts.lscalar()
    with pytest.raises(ValueError, match="unknown check 'le'"):
        CheckSizes("Op", [("le", "")])
    with pytest.raises(TypeError, match="1 checks need 2 sizes, got 1"):
        CheckSizes("Op", [EQ])(i, i)
    with pytest.raises(TypeError, match="sizes must be integer scalars"):
        CheckSizes("Op", [EQ])(i, i, ts.dscalar())
    assert CheckSizes("Op", [EQ]) == CheckSizes("Op", [EQ]) != CheckSizes("Op", [BCAST])
