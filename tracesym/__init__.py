"""tracesym: trace numpy-style Python into a graph, differentiate it, rewrite it, run it."""

from . import backend as _backend  # noqa: F401  (registers the linkers)
from . import rewrite as _rewrite  # noqa: F401  (hooks the rewriter into function)
from .config import config
from .errors import *  # noqa: F401,F403
from .ops import *  # noqa: F401,F403
from .autodiff import *  # noqa: F401,F403
from .tensor import *  # noqa: F401,F403
from .rewrite import Mode, node_rewriter, rewrite
from .loops import Scan, foldl, foldr, map, reduce, scan
from .trace.compile import compile, update
from .trace.context import eager
from .trace.function import Function, function
from .trace.graph import Apply, Constant, Graph, SharedVariable, Variable
from .trace import printing  # ts.printing.to_dot, ts.printing.debugprint
from .trace.printing import debugprint, pprint
from . import nnet, random  # noqa: F401  (ts.nnet.conv2d, ts.random.RandomStream)

__version__ = "0.1.0"
