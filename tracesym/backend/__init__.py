"""Backends: turning an (optimized) graph into something that runs.  Each registers its linker
in `tracesym.trace.function.LINKERS` under the name `config.linker` selects."""

from ..trace.function import LINKERS
from .numpy_linker import link_numpy

LINKERS["numpy"] = link_numpy
