"""Graph rewriting: the engine, the modes, and the catalogue of rewrites.

Importing this package registers every rewrite in the catalogue and hooks the rewriter into
`function` (which lives below this layer and cannot import it)."""

from ..trace import function as _function
from . import merge  # noqa: F401  (the catalogue registers itself on import)
from . import canonicalize  # noqa: F401
from . import stabilize  # noqa: F401
from . import inplace  # noqa: F401
from . import shapes  # noqa: F401
from . import blas  # noqa: F401
from . import fusion  # noqa: F401
from . import static_shapes  # noqa: F401
from .engine import PHASES, REWRITES, RewriteError, graph_pass, node_rewriter
from .mode import MODES, Mode, get_mode, rewrite, rewrite_graph

_function.HOOKS["mode"] = get_mode
_function.HOOKS["rewrite"] = rewrite_graph

__all__ = ["Mode", "rewrite", "node_rewriter", "graph_pass", "RewriteError", "PHASES", "REWRITES",
           "MODES", "get_mode"]
