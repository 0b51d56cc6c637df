"""Where in the user's code a variable was made: the first frame outside the tracesym package.

Capturing is one frame walk with string prefix checks (about a microsecond); the line's text
is read lazily, only when an error message is formatted.
"""

from __future__ import annotations

import linecache
import os
import sys
from typing import NamedTuple

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


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
    """The innermost frame of the call stack whose file is not part of tracesym."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_PKG) and not fn.startswith("<frozen"):
            return SourceLine(fn, f.f_lineno, f.f_code.co_name)
        f = f.f_back
    return None
