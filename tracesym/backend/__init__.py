"""Backends: turning an (optimized) graph into something that runs.  Each registers its linker
in `tracesym.trace.function.LINKERS` under the name `config.linker` selects."""

from ..trace.function import LINKERS
from .numpy_linker import link_numpy

LINKERS["numpy"] = link_numpy


def link_c(graph, config):
    """The C linker, imported on first use (it loads cffi); the numpy linker, after one
    warning, where no C toolchain exists."""
    from .c import cache

    cache.probe_soon(config.compiledir)  # the compiler runs while the linker is imported
    from .c.linker import link_c as link

    problem = cache.toolchain_problem(config.compiledir)
    if problem is not None:
        if not _warned:
            import warnings

            warnings.warn(f"linker 'c' is unavailable ({problem}); using the numpy linker",
                          stacklevel=4)
            _warned.append(problem)
        return link_numpy(graph, config)
    return link(graph, config)


def link_c_many(graphs, config):
    """The runners of several graphs, their kernels in one module (`linker.link_many`)."""
    from .c import cache

    if cache.toolchain_problem(config.compiledir) is not None:
        return [link_c(g, config) for g in graphs]  # the numpy linker, with its warning
    from .c.linker import link_many

    return link_many(graphs, config)


def _prepare_c(config):
    """Start what a first C build in `config.compiledir` needs whatever the graph (the
    compiler's probe, the elementwise driver's object: `cache.prepare`) while the caller
    still traces and rewrites."""
    from .c import cache, cgen

    cache.prepare(config.compiledir, [cgen.DRIVER], cgen.HEADER)


link_c.prepare = _prepare_c
link_c.many = link_c_many
_warned: list = []
LINKERS["c"] = link_c
