"""`@ts.compile`: trace an ordinary Python function into a compiled `Function`.

Arguments annotated with a tensor type (`x: ts.fmatrix`) become placeholders of that type.
Unannotated numpy arrays (and lists, which numpy would make arrays of) are typed from the
call: the function is traced once per (dtype, ndim) signature and cached.  Python scalars,
tuples and other objects are static: baked into the trace, and a new value traces again.
A positional call with numpy arrays matching a traced signature, the other parameters left
to their (static) defaults, skips argument binding and the key computation (`_fast`);
anything else takes the general path.
`ts.update(shared, expr)` inside the function records an update.  Under `ts.eager()` (or
`eager=True`) the function runs op by op on the real values.  Called with symbolic arguments
(from inside another traced function) it is traced inline, like any Python function.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from ..config import config as _global_config
from ..errors import InputError, UpdateError
from .context import TraceFrame, _state, current_frame, eager_enabled, test_value, tracing
from .function import HOOKS, Function, check_update_target, prepared_linker, update_expression
from .graph import SharedVariable, Variable, as_variable
from .types import TensorType


def update(target, expr):
    """Inside a `@compile` function: set shared variable `target` to `expr` once the outputs
    are computed (all updates of a call see the old values)."""
    frame = current_frame()
    if frame is None:
        raise UpdateError("ts.update() is only valid inside a @ts.compile function; with "
                          "ts.function pass updates=[(shared, expr)] instead")
    check_update_target(target)
    expr = update_expression(target, expr)
    if any(t is target for t, _ in frame.updates):
        raise UpdateError(f"shared variable {target.label()} is updated twice in one call")
    frame.updates.append((target, expr))


def _annotation_type(ann):
    """The TensorType an annotation names (`ts.fmatrix`, or `ts.matrix` read at call time so
    `config.floatX` applies), else None."""
    if isinstance(ann, TensorType):
        return ann
    t = getattr(ann, "type", None)
    return t if isinstance(t, TensorType) else None


def _annotations(fn) -> dict:
    """The function's annotations, evaluated also under `from __future__ import annotations`."""
    try:
        return inspect.get_annotations(fn, eval_str=True)
    except Exception:  # an annotation naming something undefined: keep what can be read
        return dict(getattr(fn, "__annotations__", {}))


def _is_array(v):
    return isinstance(v, (np.ndarray, np.generic, list))


class CompiledFunction:
    """What `@ts.compile` returns: call it like the original function."""

    def __init__(self, fn, mode=None, eager=False, name=None, **function_kwargs):
        functools.update_wrapper(self, fn)
        if mode is not None:
            HOOKS["mode"](mode)  # an unknown mode fails at the decorator, not at the first call
        self.fn = fn
        self.mode = mode
        self.eager = eager
        self.name = name or fn.__name__
        self.function_kwargs = {"on_unused_input": "ignore", **function_kwargs}
        self.signature = inspect.signature(fn)
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise InputError(f"@ts.compile {self.name}: *{p.name} is not supported; name each "
                                 "argument, so every call has a fixed signature to trace")
        self._annotations = _annotations(fn)
        self._cache: dict = {}
        self._last: Function | None = None
        # fast path: (number of arguments, checks, Function, rebuild) per traced signature
        # called with positional arrays (`_add_fast`)
        self._fast: list = []
        self._n_fast = self._fast_arity()

    def _fast_arity(self) -> int:
        """How many positional arguments a fast-path call has at most, or -1 when none can:
        an eager function, a keyword-only parameter, or an annotation read at call time
        (`ts.matrix`, whose type follows `config.floatX`)."""
        params = self.signature.parameters.values()
        if self.eager or any(p.kind is p.KEYWORD_ONLY for p in params):
            return -1
        for p in params:
            ann = self._annotations.get(p.name)
            if _annotation_type(ann) is not None and not isinstance(ann, TensorType):
                return -1
        return len(params)

    def __get__(self, obj, objtype=None):
        """On a method: the instance is a static argument."""
        return self if obj is None else functools.partial(self, obj)

    # -- argument classification --------------------------------------------------------
    def _bind(self, args, kwargs):
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise InputError(f"{self.name}(): {e}") from None
        bound.apply_defaults()
        return bound

    def _key(self, bound):
        """The trace signature: tensor types of dynamic arguments, values of static ones."""
        key, dynamic = [], []
        for name, val in bound.arguments.items():
            t = _annotation_type(self._annotations.get(name))
            if t is not None:
                key.append((name, t))
                dynamic.append((name, t, val))
            elif _is_array(val):
                try:
                    arr = np.asarray(val)
                except ValueError as e:
                    raise InputError(f"{self.name}(): argument {name!r} is not an array: {e}") from None
                if arr.dtype.kind not in "biufc":
                    raise InputError(f"{self.name}(): argument {name!r} has dtype {arr.dtype}, "
                                     "which tracesym cannot hold")
                t = TensorType(arr.dtype, (None,) * arr.ndim)
                key.append((name, t))
                dynamic.append((name, t, arr))
            else:
                try:
                    hash(val)
                    key.append((name, "static", type(val), val))
                except TypeError:
                    key.append((name, "static-id", id(val)))
        return tuple(key), dynamic

    # -- tracing --------------------------------------------------------------------------
    def _trace(self, bound, dynamic, eager):
        downcast = self.function_kwargs.get("allow_input_downcast", False)
        placeholders = []
        for name, t, val in dynamic:
            p = t(name)
            if eager:
                p.tag.test_value = t.filter(val, downcast, what=f"{self.name}(): argument {name!r}")
            bound.arguments[name] = p
            placeholders.append(p)
        frame = TraceFrame(eager=eager)
        with tracing(frame):
            result = self.fn(*bound.args, **bound.kwargs)
        return placeholders, result, frame

    def _compile(self, bound, dynamic):
        cfg = _global_config.snapshot()
        prepared_linker(HOOKS["mode"](self.mode, cfg), cfg)  # while the function is traced
        placeholders, result, frame = self._trace(bound, dynamic, eager=False)
        flat, rebuild = _flatten(result)
        if result is not None and not isinstance(result, (dict, tuple, list)):
            flat, rebuild = flat[0], None  # one output: the Function returns it as it is
        f = Function(placeholders, flat, updates=frame.updates, mode=self.mode, name=self.name,
                     **self.function_kwargs)
        return f, rebuild

    def _entry(self, bound):
        key, dynamic = self._key(bound)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = self._compile(bound, dynamic)
        self._last = entry[0]
        return entry, dynamic

    def __call__(self, *args, **kwargs):
        # outside any trace and `ts.eager()` (read inline: this path is the per-call cost)
        if not kwargs and len(args) <= self._n_fast and not (_state.eager_depth or _state.frames):
            for a in args:
                if type(a) is not np.ndarray:
                    break
            else:
                for n, checks, f, rebuild in self._fast:
                    if n != len(args):
                        continue
                    for i, dt, nd in checks:
                        a = args[i]
                        if a.ndim != nd or (a.dtype is not dt and a.dtype != dt):
                            break
                    else:
                        self._last = f
                        out = f._call(args)
                        return out if rebuild is None else rebuild(out)
        bound = self._bind(args, kwargs)
        if self._symbolic_call(bound):
            return self.fn(*bound.args, **bound.kwargs)
        if self.eager or eager_enabled():
            return self._run_eager(bound)
        (f, rebuild), dynamic = self._entry(bound)
        if (not kwargs and len(args) <= self._n_fast and len(dynamic) == len(args)
                and all(type(a) is np.ndarray for a in args)):
            self._add_fast(dynamic, f, rebuild)
        out = f(*[v for _, _, v in dynamic])
        return out if rebuild is None else rebuild(out)

    def _add_fast(self, dynamic, f, rebuild):
        """Let later calls with arrays of this signature skip binding and the key: per
        unannotated argument (position, dtype, ndim) to match; an annotated one takes any
        array (the Function converts or refuses it)."""
        if any(spec[2] is f for spec in self._fast):
            return
        checks = tuple((i, t.np_dtype, t.ndim) for i, (name, t, _) in enumerate(dynamic)
                       if not isinstance(self._annotations.get(name), TensorType))
        self._fast.append((len(dynamic), checks, f, rebuild))

    @staticmethod
    def _symbolic_call(bound) -> bool:
        """Symbolic arguments (a placeholder, or anything symbolic inside another trace): the
        call is part of a bigger graph, so the body is traced inline.  A shared variable passed
        from outside any trace is a static argument, like any other object."""
        inside = current_frame() is not None
        return any(isinstance(v, Variable) and (inside or not isinstance(v, SharedVariable))
                   for v in bound.arguments.values())

    def _run_eager(self, bound):
        _, dynamic = self._key(bound)
        _, result, frame = self._trace(bound, dynamic, eager=True)
        flat, rebuild = _flatten(result)
        outs = [np.array(test_value(v)) for v in flat]
        news = [target.type.filter(np.array(test_value(expr)), what=f"the update of {target.label()}",
                                   error=UpdateError)
                for target, expr in frame.updates]
        for (target, _), new in zip(frame.updates, news):
            target._value = new
        return rebuild(outs)

    # -- introspection ----------------------------------------------------------------------
    def specialize(self, *args, **kwargs) -> Function:
        """The compiled `Function` for these arguments (traced now if need be)."""
        (f, _), _ = self._entry(self._bind(args, kwargs))
        return f

    def _function(self) -> Function:
        """The Function of the last call, or of the annotated signature when not yet called."""
        if self._last is not None:
            return self._last
        params = self.signature.parameters
        typed = {p for p in params if _annotation_type(self._annotations.get(p)) is not None}
        missing = [p for p in params if p not in typed and params[p].default is inspect.Parameter.empty]
        if missing:
            raise InputError(f"{self.name} has not been called yet and its argument(s) "
                             f"{', '.join(missing)} have no type annotation; call it once (or use "
                             ".specialize(example_args)) to see its graph")
        return self.specialize(**{p: None if p in typed else params[p].default for p in params})

    @property
    def graph(self):
        """The graph of the last call's compiled function (a networkx DiGraph)."""
        return self._function().graph

    @property
    def unoptimized_graph(self):
        """The graph of the last call's compiled function as traced, before any rewrite."""
        return self._function().unoptimized_graph

    @property
    def inputs(self):
        return self._function().inputs

    @property
    def outputs(self):
        return self._function().outputs

    @property
    def updates(self):
        return self._function().updates

    @property
    def n_traces(self) -> int:
        """How many signatures have been traced and compiled."""
        return len(self._cache)

    def __repr__(self):
        return f"<tracesym.compile {self.name}: {len(self._cache)} trace(s)>"

    def _repr_svg_(self):
        """The last call's graph as SVG, for notebooks; None before the first call or without
        Graphviz's `dot`."""
        return None if self._last is None else self._last._repr_svg_()


def _flatten(result):
    """(flat list of output variables, rebuild) for a value, or (nested) tuples, lists, dicts
    and None: the compiled function returns arrays in the same structure."""
    flat = []

    def walk(r):
        if r is None:
            return lambda vals: None
        if isinstance(r, dict):
            items = [(k, walk(v)) for k, v in r.items()]
            return lambda vals: {k: b(vals) for k, b in items}
        if isinstance(r, (tuple, list)):
            parts = [walk(v) for v in r]
            kind = type(r)
            if hasattr(r, "_fields"):  # a namedtuple
                return lambda vals: kind(*(b(vals) for b in parts))
            if kind not in (tuple, list):
                kind = tuple if isinstance(r, tuple) else list
            return lambda vals: kind(b(vals) for b in parts)
        i = len(flat)
        flat.append(as_variable(r))
        return lambda vals: vals[i]

    build = walk(result)
    return flat, build


def compile(fn=None, *, mode=None, eager=False, name=None, **function_kwargs):
    """Decorator: `@ts.compile` or `@ts.compile(mode="FAST_COMPILE", eager=False)`.  Extra
    keyword arguments (`allow_input_downcast`, `givens`, `on_unused_input`) go to
    `ts.function`."""
    if fn is None:
        return lambda f: CompiledFunction(f, mode=mode, eager=eager, name=name, **function_kwargs)
    return CompiledFunction(fn, mode=mode, eager=eager, name=name, **function_kwargs)
