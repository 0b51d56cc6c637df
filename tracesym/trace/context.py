"""The tracing context: every Op application goes through `apply(op, *inputs)`.

The current context decides what applying means.  The graph builder adds an Apply node.  When
test values are on (`config.compute_test_value`, or inside `ts.eager()`), the same place also
runs the Op's numpy `perform` on its inputs' test values, so a shape or dtype error surfaces at
the user's line.  Debug values live here and nowhere else: no Op knows about them.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import numpy as np

from ..config import config
from ..errors import OpRuntimeError, TestValueError
from .source import user_source
from .graph import Constant, SharedVariable, Variable


class TraceFrame:
    """State of one `@compile` trace: the updates `ts.update` recorded, and whether the trace
    runs eagerly on real values."""

    def __init__(self, eager=False):
        self.eager = eager
        self.updates: list[tuple[SharedVariable, Variable]] = []


class _State(threading.local):
    """Per-thread tracing state, so two threads can trace at once."""

    def __init__(self):
        self.frames: list[TraceFrame] = []
        self.eager_depth = 0


_state = _State()


def current_frame() -> TraceFrame | None:
    frames = _state.frames
    return frames[-1] if frames else None


@contextlib.contextmanager
def tracing(frame: TraceFrame):
    _state.frames.append(frame)
    try:
        yield frame
    finally:
        _state.frames.pop()


@contextlib.contextmanager
def eager():
    """Run `@compile` functions op by op on their real arguments (test mode): every Op
    computes its value as it is traced, so `print` and breakpoints work inside them."""
    _state.eager_depth += 1
    try:
        yield
    finally:
        _state.eager_depth -= 1


def eager_enabled() -> bool:
    """True inside `ts.eager()` and while an eager trace (`@compile(eager=True)`) runs."""
    if _state.eager_depth > 0:
        return True
    frame = current_frame()
    return frame is not None and frame.eager


def test_value(v: Variable):
    if isinstance(v, SharedVariable):
        return v.get_value(borrow=True)
    return v.tag.test_value


def _test_value_mode() -> str:
    frame = current_frame()
    if frame is not None and frame.eager:
        return "raise"
    return config.compute_test_value


def apply(op, *inputs):
    """Apply `op` to symbolic inputs; returns its output variable (or a list when it has
    several).  The single entry point through which every Op is traced."""
    node = op.make_node(*inputs)
    src = user_source()  # the caller's line, also for Ops defined outside tracesym
    for o in node.outputs:
        o.source = src
    mode = _test_value_mode()
    if mode != "off":
        _compute_test_values(node, mode)
    outs = node.outputs
    return outs[0] if len(outs) == 1 else outs


def _compute_test_values(node, mode):
    missing = [v for v in node.inputs if not v.has_test_value()]
    if missing:
        if mode == "raise":
            v = missing[0]
            raise TestValueError(
                f"{node.op}: input {v.label()} ({v.type.short()}) has no test value"
                + (f"\n  created at {v.source}" if v.source else "")
                + "\nSet x.tag.test_value (or test_value=) on every placeholder, or use ts.eager().")
        if mode == "warn":
            msg = f"{node.op}: input {missing[0].label()} has no test value; its outputs get none"
            src = node.source  # attribute the warning to the user's line, not to tracesym
            if src is not None:
                warnings.warn_explicit(msg, UserWarning, src.filename, src.lineno)
            else:
                warnings.warn(msg, stacklevel=3)
        return
    values = [_checked_test_value(v) for v in node.inputs]
    try:
        results = node.op.perform(node, values)
    except Exception as e:
        raise op_error(node, values, e) from e
    for o, r in zip(node.outputs, results):
        o.tag.test_value = coerce_output(o, r)


def _checked_test_value(v: Variable):
    """A leaf's test value, checked against its type once (the user may have set
    `x.tag.test_value` to a list, or to data of the wrong shape)."""
    value = test_value(v)
    if v.owner is None and not isinstance(v, (Constant, SharedVariable)):
        checked = v.type.filter(value, what=f"test value of {v.label()}", error=TestValueError)
        if checked is not value:
            v.tag.test_value = checked
        value = checked
    return value


def coerce_output(var, value):
    """An Op's numpy result as an ndarray of the output's declared dtype."""
    if type(value) is not np.ndarray or value.dtype.name != var.type.dtype:
        value = np.asarray(value, dtype=var.type.dtype)
    return value


def describe_inputs(values) -> str:
    parts = []
    for v in values:
        a = np.asarray(v) if not isinstance(v, np.ndarray) else v
        parts.append(f"{a.dtype}{list(a.shape)}")
    return ", ".join(parts)


def op_error(node, values, exc) -> OpRuntimeError:
    """The error for an Op that failed on concrete values: the Op, its input shapes and
    dtypes, and the user line that created it."""
    where = node.source
    msg = (f"{node.op} failed on inputs ({describe_inputs(values)}): {type(exc).__name__}: {exc}"
           + (f"\n  the node was created at {where}" if where else ""))
    err = OpRuntimeError(msg)
    err.node = node
    return err
