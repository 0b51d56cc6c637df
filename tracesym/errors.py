"""User-facing errors.  Each class says what went wrong and how to fix it.

Every error raised for a user mistake derives from `TracesymError`, and also from
the builtin exception a Python user would expect (`TypeError`, `ValueError`), so
existing `except TypeError:` code keeps working.
"""


class TracesymError(Exception):
    """Base class of every tracesym error."""


class ConfigError(TracesymError, ValueError):
    """An unknown configuration flag or a value it does not accept.  The message lists the
    known flags or the accepted values."""


class UnknownFlagError(ConfigError, AttributeError):
    """A configuration flag that does not exist (a typo, most often).  The message lists the
    known flags.  It is also an `AttributeError`, so `getattr(config, name, default)` works."""


class TracerBoolConversionError(TracesymError, TypeError):
    """A symbolic tensor was used where Python needs a concrete value (`if x > 0:`, `bool(x)`,
    `int(x)`).  Its value is only known when the compiled function runs: use `ts.where(cond,
    a, b)` for an elementwise choice, `ts.scan` for a data-dependent loop, or `ts.eager()` to run
    the function on real values."""


class InputError(TracesymError, TypeError):
    """A compiled function was called with the wrong arguments: arity, ndim, dtype (a lossy cast
    needs `allow_input_downcast=True`) or a static shape that does not match; or it was built
    with inputs that are not placeholders, or `givens` whose types do not match."""


class MissingInputError(TracesymError, ValueError):
    """An output depends on a variable that is neither an input, a shared variable nor a
    constant.  Add it to the function's inputs, or replace it with `givens`."""


class UnusedInputError(TracesymError, ValueError):
    """An input is not needed by any output.  Pass `on_unused_input="ignore"` (or "warn")
    to `function` if that is intended."""


class UpdateError(TracesymError, TypeError):
    """An update is malformed: its target is not a shared variable, it is updated twice, or the
    new value's type (dtype, ndim, static shape) differs from the shared variable's; also a
    `set_value` that would change the dtype lossily or the ndim.  Cast the expression
    (`expr.astype(shared.dtype)`) or fix its shape."""


class ShapeError(TracesymError, ValueError):
    """Shapes that cannot work together (broadcasting, dot, reshape...), found while tracing."""


class TestValueError(TracesymError, ValueError):
    """With `config.compute_test_value="raise"`, an Op's input has no test value.  Set
    `x.tag.test_value` on every placeholder, or use `ts.eager()`."""


class OpRuntimeError(TracesymError, RuntimeError):
    """An Op failed while a compiled function ran (or while a test value was computed).  The
    message names the Op, its input shapes and dtypes, and the user line that created it; the
    original exception is chained as `__cause__`."""


class GradientError(TracesymError, TypeError):
    """`grad` was asked for something it cannot give: a non-scalar cost (use `ts.Lop` or
    `ts.jacobian`), a `wrt` that is a constant, or an Op that defines no gradient."""


class DisconnectedInputError(GradientError, ValueError):
    """The cost does not depend on a `wrt` variable.  Pass `disconnected_inputs="ignore"`
    (or "warn") to `grad` if a zero gradient is intended."""


class NullGradientError(GradientError):
    """A gradient is mathematically undefined (e.g. through an integer-valued Op's non-
    differentiable input).  Pass `null_gradients="return"` to get the null marker instead."""


class VerifyGradError(TracesymError, AssertionError):
    """`verify_grad` found an analytic gradient that disagrees with finite differences.  The
    message has the worst element, its analytic and numeric values."""


class IndexingError(TracesymError, IndexError):
    """An index numpy would reject: a float or complex index, too many indices, two `...`, an
    index known to be out of bounds, a boolean mask whose shape does not match the indexed dims,
    or index arrays that cannot be broadcast together.  Index with integers, slices, None,
    `...`, integer arrays or boolean masks; cast a float index with `.astype('int64')`."""


class ScanError(TracesymError, TypeError):
    """A `ts.scan` loop is ill-formed: its step function returned the wrong number of outputs,
    or an output whose dtype or number of dimensions differs from its initial state
    (`outputs_info`), sequences give different numbers of steps (or fewer than `n_steps`),
    or `strict=True` found a variable the step uses without receiving it.  Make the step
    return one value per `outputs_info` entry with the initial state's type (cast with
    `.astype`), slice sequences to one length (or pass `n_steps`), and pass captured
    variables in `non_sequences`."""
