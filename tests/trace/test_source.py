"""Source lines: every variable remembers the user line that made it, cheaply."""

import time

import numpy as np

import tracesym as ts
from tracesym.trace.source import SourceLine, user_source


def _line_of(marker):
    with open(__file__) as fh:
        for i, line in enumerate(fh, 1):
            if marker in line and "_line_of" not in line:
                return i
    raise LookupError(marker)


def _helper(x):
    return ts.exp(x)  # marker: helper-line


def test_each_variable_records_the_first_user_frame():
    x = ts.dvector("x")  # marker: placeholder-line
    y = x * 2  # marker: op-line
    z = _helper(y)
    assert x.source == SourceLine(__file__, _line_of("marker: placeholder-line"),
                                  "test_each_variable_records_the_first_user_frame")
    assert y.source.lineno == _line_of("marker: op-line") and y.source.filename == __file__
    assert y.owner.inputs[1].source.lineno == _line_of("marker: op-line")  # the constant 2
    assert z.source.lineno == _line_of("marker: helper-line") and z.source.function == "_helper"
    assert y.owner.source == y.source


def test_numpy_dispatch_frames_are_skipped():
    x = ts.dvector("x")
    y = np.sum(np.exp(x))  # marker: numpy-dispatch
    assert y.source.filename == __file__ and y.source.lineno == _line_of("marker: numpy-dispatch")


def test_compiled_function_bodies_record_their_lines():
    @ts.compile
    def f(x):
        return x + 1  # marker: body-line

    f(np.zeros(1))
    (out,) = f.outputs
    assert out.source.lineno == _line_of("marker: body-line")


def test_source_text_is_read_lazily_and_formatted():
    x = ts.dvector("x")  # marker: text
    src = x.source
    assert src.text() == 'x = ts.dvector("x")  # marker: text'
    assert str(src) == (f'File "{__file__}", line {src.lineno}, in '
                        'test_source_text_is_read_lazily_and_formatted\n'
                        '    x = ts.dvector("x")  # marker: text')
    assert str(SourceLine("<nowhere>", 1, "f")) == 'File "<nowhere>", line 1, in f'


def test_user_source_outside_tracesym_is_the_caller():
    assert user_source().filename == __file__


def test_capture_is_cheap():
    x = ts.dvector("x")
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        user_source()
    per_call = (time.perf_counter() - t0) / n
    assert per_call < 50e-6  # a frame walk: about a microsecond, far below this bound
    assert x.source is not None
