"""Every Op, grouped by family.  `from tracesym.ops import *` gives the tensor-level functions."""

from .base import OP_REGISTRY, Op  # noqa: F401
from .elemwise import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .basic import *  # noqa: F401,F403
from .subtensor import *  # noqa: F401,F403
from .blas import *  # noqa: F401,F403
from .nnet import *  # noqa: F401,F403
