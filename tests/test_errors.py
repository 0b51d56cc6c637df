"""The user-facing errors: each class is raised by some mistake, with a message that names the
culprit, and each is also the builtin exception a Python user would catch."""

import inspect

import numpy as np
import pytest

import tracesym as ts
from tracesym import errors
from tracesym.trace.context import apply
from tracesym.trace.graph import Apply, as_variable

ALL = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)
       and c.__module__ == errors.__name__]
COVERED = set()


def raises(cls, match):
    COVERED.add(cls)
    return pytest.raises(cls, match=match)


class _DuckOp:
    """A minimal op outside the Op registry: `perform` is numpy's floor; its gradient is
    whatever the test asks for."""

    differentiable = True

    def __init__(self, grad):
        self._grad = grad

    def __str__(self):
        return "DuckFloor"

    def make_node(self, x):
        x = as_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        return (np.floor(inputs[0]),)

    def L_op(self, inputs, outputs, output_grads):
        return [self._grad(self, inputs[0], output_grads[0])]


def test_every_error_is_a_tracesym_error_with_a_builtin_base_and_a_docstring():
    for cls in ALL:
        assert issubclass(cls, errors.TracesymError)
        assert cls.__doc__ and len(cls.__doc__) > 20
        if cls is not errors.TracesymError:
            assert any(issubclass(cls, b) for b in (TypeError, ValueError, IndexError, RuntimeError, AssertionError))
    assert ts.InputError is errors.InputError  # exported at the top level


def test_config_errors():
    with raises(errors.ConfigError, "floatX: accepted values are float64, float32, float16; got 'f32'"):
        ts.config.floatX = "f32"
    with raises(errors.UnknownFlagError, "unknown config flag 'floatx'; known flags: .*floatX"):
        ts.config.floatx = "float32"


def test_tracer_bool_conversion():
    x = ts.dvector("x")
    with raises(errors.TracerBoolConversionError, r"Elemwise\{gt\}.out \(bool\[\?\]\).*ts.where"):
        if x > 0:
            pass
    with raises(errors.TracerBoolConversionError, r"float\(\) of symbolic x"):
        float(x)


def test_input_errors_name_the_argument():
    x = ts.fvector("weights")
    f = ts.function([x], x * 2)
    with raises(errors.InputError, r"argument 0 \(weights\): expected float32, got int64"):
        f(np.array([1, 2]))
    with raises(errors.InputError, r"missing argument\(s\) weights"):
        f()


def test_missing_and_unused_inputs_name_the_variable():
    x, y = ts.dvector("x"), ts.dvector("offset")
    with raises(errors.MissingInputError, r"depend on offset \(float64\[\?\]\)"):
        ts.function([x], x + y)
    with raises(errors.UnusedInputError, r"input 1 \(offset\) is not used"):
        ts.function([x, y], x * 2)


def test_update_error_names_the_target():
    W = ts.shared(np.zeros(2, np.float32), name="weights")
    with raises(errors.UpdateError, r"update of shared variable weights \(float32\[\?\]\) has type "
                                    r"float64\[\?\]; cast it"):
        ts.function([], [], updates=[(W, W * np.float64(2))])


def test_shape_error_names_shapes_and_op():
    x = ts.tensor("float64", shape=(2, 3), name="x")
    y = ts.tensor("float64", shape=(4,), name="y")
    with raises(errors.ShapeError, r"shapes \(2, 3\) and \(4,\) cannot be broadcast together in mul"):
        x * y


def test_test_value_error_names_op_and_input():
    x = ts.dvector("x")
    with ts.config.change(compute_test_value="raise"):
        with raises(errors.TestValueError, r"Elemwise\{exp\}: input x \(float64\[\?\]\) has no test value"):
            ts.exp(x)


def test_op_runtime_error_names_op_shapes_dtypes_and_line():
    x, y = ts.fvector("x"), ts.lvector("y")
    f = ts.function([x, y], x - y)
    with raises(errors.OpRuntimeError, r"Elemwise\{sub\} failed on inputs \(float32\[2\], int64\[3\]\)"
                                       r"(.|\n)*test_errors.py"):
        f(np.zeros(2, np.float32), np.zeros(3, np.int64))


def test_gradient_errors():
    x = ts.dvector("x")
    with raises(errors.GradientError, r"cost must be a scalar.*Elemwise\{exp\}.out of type float64\[\?\]"):
        ts.grad(ts.exp(x), x)
    unused = ts.dvector("unused")
    with raises(errors.DisconnectedInputError, r"does not depend on unused \(float64\[\?\]\)"):
        ts.grad(x.sum(), unused)
    undefined = _DuckOp(lambda op, x, g: ts.grad_undefined(op, 0, "floor is flat almost everywhere"))
    with raises(errors.NullGradientError, "DuckFloor.*floor is flat almost everywhere"):
        ts.grad(apply(undefined, x).sum(), x)


def test_verify_grad_error_names_the_input_and_values():
    wrong = _DuckOp(lambda op, x, g: g * 3.0)  # floor's true derivative is 0
    with raises(errors.VerifyGradError, r"gradient of input 0 disagrees.*index \(0,\): analytic .*numeric 0"):
        ts.verify_grad(lambda v: apply(wrong, v), [np.array([0.3, 1.6])],
                       rng=np.random.default_rng(0))


def test_indexing_error_names_the_index():
    x = ts.dmatrix("x")
    with raises(errors.IndexingError, "too many indices for a 2-d tensor"):
        x[0, 1, 2]
    with raises(errors.IndexingError, "index 0"):
        x[1.5]


def test_scan_error_names_the_output_and_both_types():
    x = ts.dvector("x")
    with raises(errors.ScanError, r"output 0 .* float64\[\], but its initial state .* float32\[\]"):
        ts.scan(lambda a, h: h + a, sequences=x, outputs_info=np.float32(0))


def test_every_error_class_is_exercised_here():
    """Runs last (pytest keeps file order): a new error class needs a test above."""
    assert set(ALL) - {errors.TracesymError} <= COVERED, set(ALL) - COVERED - {errors.TracesymError}
