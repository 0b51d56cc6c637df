"""Where in the user's code a variable was made: the innermost frame outside tracesym (and
outside numpy, whose Python-level dispatchers may sit between the user and tracesym).

Capturing is one frame walk with string prefix checks (about a microsecond); the line's text
is read lazily, only when an error message is formatted.
"""

from __future__ import annotations

import linecache
import os
import sys
from typing import NamedTuple

import numpy as _np

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SKIP = (_PKG, os.path.dirname(os.path.abspath(_np.__file__)) + os.sep, "<frozen")


class SourceLine(NamedTuple):
    filename: str
    lineno: int
    function: str

    def text(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self):
        code = self.text()
        where = f'File "{self.filename}", line {self.lineno}, in {self.function}'
        return f"{where}\n    {code}" if code else where


def user_source() -> SourceLine | None:
    """The innermost frame of the call stack whose file is not part of tracesym or numpy."""
    f = sys._getframe(1)
    while f is not None:
        code = f.f_code
        if not code.co_filename.startswith(_SKIP):
            return SourceLine(code.co_filename, f.f_lineno, code.co_name)
        f = f.f_back
    return None
