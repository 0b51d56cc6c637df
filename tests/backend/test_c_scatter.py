"""The C step of `inc_subtensor(x[idx], y)` over rows against the numpy linker (np.add.at):
the same bits, repeated and negative indices, broadcast values, and numpy's errors."""

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import OpRuntimeError
from tracesym.ops.subtensor import AdvancedIncSubtensor

C, NUMPY = ts.Mode(linker="c"), ts.Mode(linker="numpy")


def _both(inputs, output, *args):
    f, g = ts.function(inputs, output, mode=C), ts.function(inputs, output, mode=NUMPY)
    return f(*args), g(*args)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xshape,ishape", [((7, 5), (40,)), ((7,), (40,)), ((6, 3, 4), (5, 8)),
                                          ((4, 33), (1,))])
def test_row_increments_match_add_at_bit_for_bit(dtype, xshape, ishape, rng):
    x = ts.tensor(dtype, (None,) * len(xshape))
    i = ts.tensor("int64", (None,) * len(ishape))
    y = ts.tensor(dtype, (None,) * (len(ishape) + len(xshape) - 1))
    out = ts.inc_subtensor(x[i], y)
    xv = rng.normal(size=xshape).astype(dtype)
    iv = rng.integers(-xshape[0], xshape[0], ishape)  # repeats and negative indices
    yv = rng.normal(size=ishape + xshape[1:]).astype(dtype)
    got, want = _both([x, i, y], out, xv, iv, yv)
    expected = xv.copy()
    np.add.at(expected, iv, yv)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == dtype


def test_broadcast_value_and_a_non_contiguous_target(rng):
    x, i, y = ts.dmatrix("x"), ts.lvector("i"), ts.dvector("y")
    out = ts.inc_subtensor(x[i], y)  # y broadcast over the indexed rows
    xv = rng.normal(size=(9, 6))[:, ::2]
    iv, yv = np.array([0, 2, 2, -1, 0]), rng.normal(size=3)
    got, want = _both([x, i, y], out, xv, iv, yv)
    np.testing.assert_array_equal(got, want)


def test_an_index_out_of_range_raises_and_leaves_no_trace(rng):
    x, i, y = ts.dmatrix("x"), ts.lvector("i"), ts.dmatrix("y")
    f = ts.function([x, i, y], ts.inc_subtensor(x[i], y), mode=C)
    xv = rng.normal(size=(3, 2))
    before = xv.copy()
    with pytest.raises(OpRuntimeError, match="index 3 is out of bounds"):
        f(xv, np.array([0, 3]), np.ones((2, 2)))
    np.testing.assert_array_equal(xv, before)
    np.testing.assert_array_equal(f(xv, np.array([], dtype=np.int64), np.ones((0, 2))), xv)


def test_embedding_gradient_runs_the_row_step(rng, monkeypatch):
    W, i = ts.fmatrix("W"), ts.lmatrix("i")
    g = ts.grad((W[i] ** 2).sum(), W)
    h = ts.function([W, i], g, mode=NUMPY)

    def no_perform(*args):
        raise AssertionError("the numpy perform ran")

    monkeypatch.setattr(AdvancedIncSubtensor, "perform", no_perform)
    f = ts.function([W, i], g, mode=C)
    Wv = rng.normal(size=(10, 4)).astype("float32")
    iv = rng.integers(0, 10, (6, 5))
    got = f(Wv, iv)
    monkeypatch.undo()
    np.testing.assert_array_equal(got, h(Wv, iv))


@pytest.mark.parametrize("view", ["reversed", "every_other", "transposed_batch", "gapped_row"])
def test_values_of_any_layout_match_add_at_bit_for_bit(view, rng, monkeypatch):
    """y read through its own strides (a loop's output read backwards, every other row, two
    index dims swapped), or copied where a row is not contiguous; the same sums either way."""
    def refuse(self, node, inputs):
        raise AssertionError("the numpy perform ran, not the C step")

    monkeypatch.setattr(AdvancedIncSubtensor, "perform", refuse)  # before the step binds it
    x, i, y = ts.dmatrix("x"), ts.lmatrix("i"), ts.dtensor3("y")
    f = ts.function([x, i, y], ts.inc_subtensor(x[i], y), mode=C)
    xv, iv = rng.normal(size=(6, 5)), rng.integers(-6, 6, (4, 3))
    base = rng.normal(size=(8, 6, 10))
    yv = {"reversed": base[::-1][:4, :3, :5], "every_other": base[::2, ::2, :5],
          "transposed_batch": base[:3, :4, :5].transpose(1, 0, 2),
          "gapped_row": base[:4, :3, ::2]}[view]
    copies = []
    real = np.ascontiguousarray
    monkeypatch.setattr(np, "ascontiguousarray",
                        lambda a, *args, **kw: copies.append(a.dtype) or real(a, *args, **kw))
    got = f(xv, iv, yv)
    expected = xv.copy()
    np.add.at(expected, iv, yv)
    np.testing.assert_array_equal(got, expected)
    assert (np.dtype("float64") in copies) == (view == "gapped_row")  # only a strided row is copied
