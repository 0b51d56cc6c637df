"""`ts.function`: outputs in every structure, calling conventions, argument checking, runtime
errors, givens, shared variables and updates."""

import warnings

import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import (InputError, MissingInputError, OpRuntimeError, UnusedInputError,
                             UpdateError)


def _line_of(marker):
    """The line number in this file of the source line containing `marker`."""
    with open(__file__) as fh:
        for i, line in enumerate(fh, 1):
            if marker in line and "_line_of" not in line:
                return i
    raise LookupError(marker)


# -- outputs ------------------------------------------------------------------------------

def test_single_output_is_an_array():
    x = ts.dvector("x")
    f = ts.function([x], x * 2)
    out = f(np.array([1.0, 2.0]))
    assert type(out) is np.ndarray and out.dtype == np.float64
    np.testing.assert_array_equal(out, [2.0, 4.0])


@pytest.mark.parametrize("kind", [list, tuple])
def test_list_and_tuple_outputs_keep_their_kind(kind):
    x = ts.fvector("x")
    f = ts.function([x], kind([x + 1, ts.exp(x), x.sum()]))
    xv = np.array([0.0, 1.0], np.float32)
    out = f(xv)
    assert type(out) is kind and len(out) == 3
    np.testing.assert_array_equal(out[0], xv + 1)
    np.testing.assert_allclose(out[1], np.exp(xv), rtol=1e-6)
    assert out[1].dtype == np.float32 and out[2].shape == () and out[2] == np.float32(1.0)


def test_dict_outputs():
    x = ts.lvector("x")
    f = ts.function([x], {"double": x * 2, "total": x.sum()})
    out = f(np.arange(4))
    assert list(out) == ["double", "total"]
    np.testing.assert_array_equal(out["double"], [0, 2, 4, 6])
    assert out["total"] == 6 and out["total"].dtype == np.int64


def test_constant_output_and_no_inputs():
    f = ts.function([], ts.constant(np.arange(3)) * 2)
    np.testing.assert_array_equal(f(), [0, 2, 4])


def test_empty_outputs_return_empty_list():
    x = ts.dvector("x")
    f = ts.function([x], [], on_unused_input="ignore")
    assert f(np.zeros(2)) == []


# -- calling ------------------------------------------------------------------------------

def test_positional_and_keyword_calls():
    x, y = ts.dvector("x"), ts.dvector("y")
    f = ts.function([x, y], x - y)
    a, b = np.array([5.0, 6.0]), np.array([1.0, 2.0])
    expected = a - b
    np.testing.assert_array_equal(f(a, b), expected)
    np.testing.assert_array_equal(f(x=a, y=b), expected)
    np.testing.assert_array_equal(f(y=b, x=a), expected)
    np.testing.assert_array_equal(f(a, y=b), expected)


def test_arity_errors_name_the_arguments():
    x, y = ts.dvector("x"), ts.dvector("y")
    f = ts.function([x, y], x + y, name="plus")
    v = np.zeros(2)
    with pytest.raises(InputError, match=r"'plus' takes 2 argument\(s\) \(x, y\), got 3"):
        f(v, v, v)
    with pytest.raises(InputError, match="missing argument.*y"):
        f(v)
    with pytest.raises(InputError, match="missing argument.*y"):
        f(x=v)
    with pytest.raises(InputError, match="unexpected keyword argument 'z'"):
        f(v, z=v)
    with pytest.raises(InputError, match="multiple values for argument 'x'"):
        f(v, x=v)


def test_none_is_not_mistaken_for_a_missing_argument():
    x, y = ts.dvector("x"), ts.dvector("y")
    f = ts.function([x, y], x + y)
    with pytest.raises(InputError, match="argument 1 \\(y\\)"):
        f(np.zeros(2), None)


def test_two_inputs_with_one_name_must_be_positional():
    a, b = ts.dscalar("v"), ts.dscalar("v")
    f = ts.function([a, b], a - b)
    assert f(3.0, 1.0) == 2.0
    with pytest.raises(InputError, match="several inputs are named 'v'"):
        f(3.0, v=1.0)


def test_ndim_error():
    x = ts.fmatrix("x")
    f = ts.function([x], x * 2)
    with pytest.raises(InputError, match=r"argument 0 \(x\): expected 2 dimension\(s\) "
                                         r"\(float32\[\?,\?\]\), got an array of shape \(3,\)"):
        f(np.zeros(3, np.float32))


def test_lossy_cast_is_refused_naming_the_argument():
    x, y = ts.fvector("x"), ts.fvector("y")
    f = ts.function([x, y], x + y)
    ok = np.zeros(2, np.float32)
    with pytest.raises(InputError, match=r"argument 1 \(y\): expected float32, got float64.*"
                                         r"allow_input_downcast=True"):
        f(ok, np.zeros(2))
    g = ts.function([x, y], x + y, allow_input_downcast=True)
    out = g(ok, np.array([1.5, 2.5]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1.5, 2.5])


def test_float_data_into_int_input_is_refused():
    x = ts.lvector("x")
    f = ts.function([x], x + 1)
    with pytest.raises(InputError, match="expected int64, got float64"):
        f(np.array([1.0, 2.0]))
    with pytest.raises(InputError, match="does not fit int64"):
        f([1.5])


def test_lossless_casts_are_done():
    x = ts.lvector("x")
    f = ts.function([x], x * 2)
    out = f(np.array([1, 2], np.int32))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [2, 4])
    np.testing.assert_array_equal(f([3, 4]), [6, 8])  # a list of Python ints
    np.testing.assert_array_equal(f(np.array([True, False])), [2, 0])


def test_python_floats_take_the_input_dtype():
    x = ts.fscalar("x")
    f = ts.function([x], x * 2)
    out = f(0.1)
    assert out.dtype == np.float32 and out == np.float32(0.1) * 2
    v = ts.fvector("v")
    g = ts.function([v], v + 0)
    assert g([0.1, 0.2]).dtype == np.float32


def test_python_values_that_overflow_are_refused():
    x = ts.fscalar("x")
    with pytest.raises(InputError, match="does not fit float32"):
        ts.function([x], x * 2)(1e300)
    b = ts.bscalar("b")
    with pytest.raises(InputError, match=r"Python int 300 does not fit int8 \[-128, 127\]"):
        ts.function([b], b + 1)(300)
    assert ts.function([b], b + 1)(100) == 101


def test_static_shape_mismatch():
    x = ts.tensor("float64", shape=(None, 3), name="x")
    f = ts.function([x], x.sum())
    assert f(np.ones((2, 3))) == 6.0
    with pytest.raises(InputError, match=r"argument 0 \(x\): dimension 1 must have size 3 "
                                         r"\(float64\[\?,3\]\), got an array of shape \(2, 4\)"):
        f(np.ones((2, 4)))


def test_non_numeric_data_is_refused():
    x = ts.dvector("x")
    f = ts.function([x], x + 1)
    with pytest.raises(InputError, match="got <U1 data"):
        f(np.array(["a", "b"]))


def test_runtime_shape_mismatch_names_op_shapes_and_line():
    x, y = ts.dvector("x"), ts.dvector("y")
    z = x + y  # marker: runtime-mismatch
    f = ts.function([x, y], z)
    with pytest.raises(OpRuntimeError) as info:
        f(np.zeros(3), np.zeros(4))
    msg = str(info.value)
    assert "Elemwise{add}" in msg
    assert "float64[3], float64[4]" in msg
    assert f'File "{__file__}", line {_line_of("marker: runtime-mismatch")}' in msg
    assert "z = x + y" in msg
    assert isinstance(info.value.__cause__, ValueError)
    assert "broadcast" in str(info.value.__cause__)
    assert info.value.node.op == z.owner.op


def test_functions_that_are_not_placeholders_are_not_inputs():
    x = ts.dvector("x")
    with pytest.raises(InputError, match="must be placeholders"):
        ts.function([x * 2], x)
    W = ts.shared(np.zeros(2), name="W")
    with pytest.raises(InputError, match="shared variables are implicit inputs"):
        ts.function([W], W * 2)
    with pytest.raises(InputError, match="given twice"):
        ts.function([x, x], x)
    with pytest.raises(InputError, match=r"a list of placeholders; write \[x\]"):
        ts.function(x, x)


# -- unused and missing inputs -------------------------------------------------------------

def test_unused_input_raise_warn_ignore():
    x, y = ts.dvector("x"), ts.dvector("y")
    with pytest.raises(UnusedInputError, match=r"input 1 \(y\) is not used"):
        ts.function([x, y], x * 2)
    with pytest.warns(UserWarning, match=r"input 1 \(y\) is not used"):
        f = ts.function([x, y], x * 2, on_unused_input="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = ts.function([x, y], x * 2, on_unused_input="ignore")
    np.testing.assert_array_equal(f(np.ones(2), np.ones(3)), [2, 2])
    np.testing.assert_array_equal(g(np.ones(2), np.ones(3)), [2, 2])
    with pytest.raises(ValueError, match="on_unused_input"):
        ts.function([x], x, on_unused_input="sometimes")


def test_missing_input_names_the_variable_and_its_line():
    x = ts.dvector("x")
    hidden = ts.dvector("hidden")  # marker: missing-input
    with pytest.raises(MissingInputError) as info:
        ts.function([x], x + hidden)
    msg = str(info.value)
    assert "hidden (float64[?])" in msg and "not among the function's inputs" in msg
    assert f"line {_line_of('marker: missing-input')}" in msg and __file__ in msg


# -- givens ---------------------------------------------------------------------------------

def test_givens_replace_a_variable():
    x, y = ts.dvector("x"), ts.dvector("y")
    out = ts.exp(x) + 1
    f = ts.function([y], out, givens={x: y * 2})
    np.testing.assert_allclose(f(np.array([0.0, 1.0])), np.exp([0.0, 2.0]) + 1)
    g = ts.function([], out, givens=[(x, np.array([0.0]))])
    np.testing.assert_allclose(g(), [2.0])
    # the original graph is untouched
    assert out.owner.inputs[0].owner.inputs[0] is x


def test_givens_with_a_shared_variable():
    x = ts.dvector("x")
    data = ts.shared(np.array([1.0, 2.0, 3.0]), name="data")
    f = ts.function([], x.sum(), givens={x: data})
    assert f() == 6.0
    data.set_value(np.array([10.0]))
    assert f() == 10.0


def test_givens_type_mismatch():
    x = ts.dvector("x")
    with pytest.raises(InputError, match=r"givens: x \(float64\[\?\]\) cannot be replaced by "
                                         r"m \(float64\[\?,\?\]\)"):
        ts.function([], x * 2, givens={x: ts.dmatrix("m")})
    with pytest.raises(InputError, match="float32"):
        ts.function([], x * 2, givens={x: ts.fvector("f")})


# -- shared variables ------------------------------------------------------------------------

def test_shared_variables_are_implicit_inputs():
    W = ts.shared(np.array([1.0, 2.0]), name="W")
    x = ts.dvector("x")
    f = ts.function([x], x * W)
    np.testing.assert_array_equal(f(np.array([3.0, 3.0])), [3.0, 6.0])
    W.set_value(np.array([0.0, -1.0]))
    np.testing.assert_array_equal(f(np.array([3.0, 3.0])), [0.0, -3.0])
    assert f.shared == [W]


def test_shared_get_value_borrow_semantics():
    value = np.array([1.0, 2.0])
    W = ts.shared(value, name="W")
    value[0] = 100.0  # shared() copied it
    assert W.get_value()[0] == 1.0
    copy = W.get_value()
    copy[1] = 50.0
    assert W.get_value()[1] == 2.0
    W.get_value(borrow=True)[1] = 7.0  # the storage itself
    assert W.get_value()[1] == 7.0


def test_shared_set_value_borrow_semantics():
    W = ts.shared(np.zeros(2), name="W")
    new = np.array([1.0, 2.0])
    W.set_value(new)
    new[0] = -1.0
    assert W.get_value()[0] == 1.0
    W.set_value(new, borrow=True)
    new[1] = -2.0
    assert W.get_value()[1] == -2.0
    assert W.get_value(borrow=True) is new


def test_shared_set_value_checks():
    W = ts.shared(np.zeros(3, np.float32), name="W")
    W.set_value(np.arange(5, dtype=np.float32))  # the size may change: static shape unknown
    assert W.get_value().shape == (5,)
    W.set_value([0.5, 1.5])  # Python floats take the dtype
    assert W.get_value().dtype == np.float32
    W.set_value(np.array([1, 2], np.int16))  # a lossless cast
    assert W.get_value().dtype == np.float32
    with pytest.raises(UpdateError, match=r"set_value of shared variable W: expected float32, got float64"):
        W.set_value(np.zeros(3))
    with pytest.raises(UpdateError, match=r"expected 1 dimension\(s\)"):
        W.set_value(np.zeros((2, 2), np.float32))
    B = ts.shared(np.zeros(2, np.int8), name="B")
    with pytest.raises(UpdateError, match="expected int8, got int64"):
        B.set_value(np.array([1000, 1]))
    F = ts.shared(np.zeros(3), name="F", shape=(3,))
    with pytest.raises(UpdateError, match=r"dimension 0 must have size 3"):
        F.set_value(np.zeros(4))


def test_outputs_do_not_alias_shared_storage():
    W = ts.shared(np.array([[1.0, 2.0]]), name="W")
    f = ts.function([], [W, W.T, W * 1])
    a, b, _ = f()
    assert b.shape == (2, 1)
    a[0, 0] = 100.0
    b[1, 0] = 200.0  # W.T is a transposed view in numpy: it must have been copied
    np.testing.assert_array_equal(W.get_value(), [[1.0, 2.0]])


def test_outputs_do_not_alias_inputs_or_each_other():
    x = ts.dvector("x")
    y = x * 2
    f = ts.function([x], [x, y, y])
    xv = np.array([1.0, 2.0])
    a, b, c = f(xv)
    assert not np.shares_memory(a, xv) and not np.shares_memory(b, c)
    a[0] = 9.0
    b[0] = 9.0
    assert xv[0] == 1.0 and c[0] == 2.0


def test_outputs_are_writeable_even_from_constants_and_broadcasts():
    x = ts.dvector("x")
    f = ts.function([x], [ts.constant(np.arange(3.0)) + 0, ts.broadcast_to(ts.constant(1.0), (3,)),
                          ts.constant(np.arange(2.0))], on_unused_input="ignore")
    for out in f(np.zeros(1)):
        assert out.flags.writeable
        out[0] = 5.0  # does not raise
    assert f(np.zeros(1))[2][0] == 0.0  # the constant was not touched


# -- updates -----------------------------------------------------------------------------------

def test_updates_are_applied_after_the_outputs():
    W = ts.shared(np.array([1.0, 2.0]), name="W")
    f = ts.function([], W * 10, updates=[(W, W + 1)])
    np.testing.assert_array_equal(f(), [10.0, 20.0])  # computed from the old value
    np.testing.assert_array_equal(W.get_value(), [2.0, 3.0])
    np.testing.assert_array_equal(f(), [20.0, 30.0])


def test_updates_as_a_dict_and_with_inputs():
    acc = ts.shared(np.zeros(2), name="acc")
    x = ts.dvector("x")
    f = ts.function([x], [], updates={acc: acc + x})
    f(np.array([1.0, 2.0]))
    f(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(acc.get_value(), [2.0, 4.0])


def test_updates_use_old_values_swap():
    a = ts.shared(np.array([1.0]), name="a")
    b = ts.shared(np.array([2.0]), name="b")
    f = ts.function([], [], updates=[(a, b), (b, a)])
    f()
    assert a.get_value()[0] == 2.0 and b.get_value()[0] == 1.0
    f()
    assert a.get_value()[0] == 1.0 and b.get_value()[0] == 2.0
    # and the two never share storage afterwards
    a.get_value(borrow=True)[0] = 42.0
    assert b.get_value()[0] == 2.0


def test_update_value_does_not_alias_an_output():
    W = ts.shared(np.array([1.0, 2.0]), name="W")
    new = W + 1
    f = ts.function([], new, updates=[(W, new)])
    out = f()
    out[0] = -100.0
    np.testing.assert_array_equal(W.get_value(), [2.0, 3.0])


def test_update_with_a_constant_value():
    W = ts.shared(np.array([1.0, 2.0]), name="W")
    f = ts.function([], [], updates=[(W, np.zeros(2))])
    f()
    np.testing.assert_array_equal(W.get_value(), [0.0, 0.0])
    with pytest.raises(UpdateError, match="update value of W"):
        ts.function([], [], updates=[(W, np.zeros((2, 2)))])


def test_update_of_a_non_shared_variable():
    x = ts.dvector("x")  # marker: non-shared-update
    with pytest.raises(UpdateError) as info:
        ts.function([x], x, updates=[(x, x + 1)])
    msg = str(info.value)
    assert "cannot update x (float64[?])" in msg and "ts.shared" in msg
    assert f"line {_line_of('marker: non-shared-update')}" in msg
    with pytest.raises(UpdateError, match="cannot update 3"):
        ts.function([x], x, updates=[(3, x)])


def test_update_with_another_dtype_suggests_astype():
    W = ts.shared(np.zeros(2, np.float32), name="W")
    x = ts.dvector("x")
    with pytest.raises(UpdateError, match=r"update of shared variable W \(float32\[\?\]\) has type "
                                          r"float64\[\?\]; cast it with expr.astype\('float32'\)"):
        ts.function([x], [], updates=[(W, W + x)])
    f = ts.function([x], [], updates=[(W, (W + x).astype("float32"))])
    f(np.ones(2))
    assert W.get_value().dtype == np.float32 and W.get_value()[0] == 1.0


def test_update_with_another_ndim():
    W = ts.shared(np.zeros(2), name="W")
    m = ts.dmatrix("m")
    with pytest.raises(UpdateError, match=r"float64\[\?,\?\]; it must have 1 dimension\(s\), not 2"):
        ts.function([m], [], updates=[(W, W + m)])


def test_updated_twice():
    W = ts.shared(np.zeros(2), name="W")
    with pytest.raises(UpdateError, match="W is updated twice"):
        ts.function([], [], updates=[(W, W + 1), (W, W + 2)])


def test_malformed_update():
    W = ts.shared(np.zeros(2), name="W")
    with pytest.raises(UpdateError, match="must be a \\(shared_variable, expression\\) pair"):
        ts.function([], [], updates=[W])


def test_update_against_a_static_shape_is_checked_before_anything_changes():
    a = ts.shared(np.zeros(2), name="a")
    W = ts.shared(np.zeros(2), name="W", shape=(2,))
    v = ts.dvector("v")
    f = ts.function([v], [], updates=[(a, a + 1), (W, v)])
    with pytest.raises(UpdateError, match=r"update of W produced shape \(3,\), but it has static shape"):
        f(np.ones(3))
    np.testing.assert_array_equal(a.get_value(), [0.0, 0.0])  # nothing was applied
    f(np.ones(2))
    np.testing.assert_array_equal(a.get_value(), [1.0, 1.0])


def test_a_failing_call_applies_no_update():
    W = ts.shared(np.zeros(2), name="W")
    x = ts.dvector("x")
    f = ts.function([x], x + W, updates=[(W, W + 1)])
    with pytest.raises(OpRuntimeError):
        f(np.zeros(3))
    np.testing.assert_array_equal(W.get_value(), [0.0, 0.0])


def test_function_compiles_under_the_config_it_was_made_with():
    x = ts.dvector("x")
    f = ts.function([x], x + 1, mode="FAST_COMPILE")
    assert f.mode.optimizer == "fast_compile"
    with pytest.raises(ts.ConfigError, match="accepted values"):
        ts.function([x], x + 1, mode="TURBO")


def test_repr_names_the_inputs():
    x = ts.fmatrix("x")
    f = ts.function([x], x * 2, name="double")
    assert repr(f) == "<tracesym.Function double(x: float32[?,?])>"


def test_zero_size_arrays():
    x = ts.dmatrix("x")
    f = ts.function([x], [x * 2, x.sum(axis=0)])
    a, s = f(np.zeros((0, 3)))
    assert a.shape == (0, 3) and s.shape == (3,)
    np.testing.assert_array_equal(s, np.zeros(3))


def test_unknown_static_dim_broadcasts_at_run_time():
    x, y = ts.dmatrix("x"), ts.dvector("y")
    f = ts.function([x, y], x + y)
    np.testing.assert_array_equal(f(np.ones((1, 3)), np.arange(3.0)), [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(f(np.ones((2, 1)), np.arange(3.0)), np.ones((2, 1)) + np.arange(3.0))

