"""Every Op, grouped by family.  `from tracesym.ops import *` gives the tensor-level functions."""

from .base import OP_REGISTRY, Op  # noqa: F401
from .elemwise import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .basic import *  # noqa: F401,F403
from .subtensor import *  # noqa: F401,F403
from .blas import *  # noqa: F401,F403
from .nnet import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403

# The public names are the families' own: without this list `import *` would also export the
# submodules (`ts.nnet` would be tracesym.ops.nnet, `ts.reduce` tracesym.ops.reduce).
import sys as _sys

__all__ = ["Op", "OP_REGISTRY"] + [
    name for _family in ("elemwise", "reduce", "shape", "basic", "subtensor", "blas", "nnet",
                         "conv", "pool")
    for name in _sys.modules[f"{__name__}.{_family}"].__all__]
