"""`@ts.compile`: trace an ordinary Python function into a compiled `Function`.

Arguments annotated with a tensor type (`x: ts.fmatrix`) become placeholders of that type.
Unannotated array arguments are typed from the call: the function is traced once per
(dtype, ndim) signature and cached.  Python scalars and other objects are static: baked into
the trace, and a new value traces again.  `ts.update(shared, expr)` inside the function records
an update.  Under `ts.eager()` (or `eager=True`) the function runs op by op on the real values.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from ..errors import InputError, UpdateError
from .context import TraceFrame, current_frame, eager_enabled, test_value, tracing
from .function import Function, check_update_type, normalize_updates
from .graph import SharedVariable, Variable, as_variable
from .types import TensorType


def update(target, expr):
    """Inside a `@compile` function: set shared variable `target` to `expr` once the outputs
    are computed (all updates of a call see the old values)."""
    frame = current_frame()
    if frame is None:
        raise UpdateError("ts.update() is only valid inside a @ts.compile function; with "
                          "ts.function pass updates=[(shared, expr)] instead")
    if not isinstance(target, SharedVariable):
        raise UpdateError(f"cannot update {getattr(target, 'label', lambda: repr(target))()}: only "
                          "shared variables (ts.shared) can be updated")
    expr = as_variable(expr) if isinstance(expr, Variable) else as_variable(np.asarray(expr, target.dtype))
    check_update_type(target, expr)
    if any(t is target for t, _ in frame.updates):
        raise UpdateError(f"shared variable {target.label()} is updated twice in one call")
    frame.updates.append((target, expr))


def _annotation_type(ann):
    if isinstance(ann, TensorType):
        return ann
    t = getattr(ann, "type", None)  # the floatX names (ts.matrix)
    return t if isinstance(t, TensorType) else None


def _is_array(v):
    return isinstance(v, (np.ndarray, np.generic)) or (
        isinstance(v, (list, tuple)) and len(v) > 0 and not isinstance(v[0], (str, bytes)))


class CompiledFunction:
    """What `@ts.compile` returns: call it like the original function."""

    def __init__(self, fn, mode=None, eager=False, name=None, **function_kwargs):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.mode = mode
        self.eager = eager
        self.name = name or fn.__name__
        self.function_kwargs = function_kwargs
        self.signature = inspect.signature(fn)
        hints = getattr(fn, "__annotations__", {})
        self._types = {k: _annotation_type(v) for k, v in hints.items()}
        self._cache: dict = {}
        self._last: Function | None = None

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
            param = self.signature.parameters[name]
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise InputError(f"{self.name}(): *args and **kwargs are not supported in a "
                                 "@ts.compile function; name each argument")
            t = self._types.get(name)
            if t is not None:
                key.append((name, t))
                dynamic.append((name, t, val))
            elif _is_array(val):
                arr = np.asarray(val)
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
        dyn = {name: t for name, t, _ in dynamic}
        values = {name: v for name, _, v in dynamic}
        args = dict(bound.arguments)
        placeholders = []
        for name in dyn:
            p = dyn[name](name)
            if eager:
                p.tag.test_value = dyn[name].filter(values[name], what=f"argument {name!r}")
            args[name] = p
            placeholders.append(p)
        frame = TraceFrame(eager=eager)
        with tracing(frame):
            result = self.fn(**args)
        return placeholders, result, frame

    def _compile(self, bound, dynamic):
        placeholders, result, frame = self._trace(bound, dynamic, eager=False)
        flat, rebuild = _flatten(result)
        f = Function(placeholders, flat, updates=frame.updates, mode=self.mode,
                     on_unused_input="ignore", name=self.name, **self.function_kwargs)
        return f, rebuild

    def __call__(self, *args, **kwargs):
        bound = self._bind(args, kwargs)
        key, dynamic = self._key(bound)
        if self.eager or eager_enabled():
            return self._run_eager(bound, dynamic)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = self._compile(bound, dynamic)
        f, rebuild = entry
        self._last = f
        return rebuild(f(*[v for _, _, v in dynamic]))

    def _run_eager(self, bound, dynamic):
        placeholders, result, frame = self._trace(bound, dynamic, eager=True)
        flat, rebuild = _flatten(result)
        outs = [np.array(test_value(as_variable(v))) for v in flat]
        for target, expr in normalize_updates(frame.updates):
            target.set_value(np.array(test_value(expr)))
        return rebuild(outs)

    # -- introspection ----------------------------------------------------------------------
    def specialize(self, *args, **kwargs) -> Function:
        """The compiled `Function` for these arguments (traced now if need be)."""
        bound = self._bind(args, kwargs)
        key, dynamic = self._key(bound)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = self._compile(bound, dynamic)
        self._last = entry[0]
        return entry[0]

    def _function(self) -> Function:
        if self._last is not None:
            return self._last
        params = self.signature.parameters
        missing = [p for p in params if self._types.get(p) is None and params[p].default is inspect._empty]
        if missing:
            raise InputError(f"{self.name} has not been called yet and its argument(s) "
                             f"{', '.join(missing)} have no type annotation; call it once (or use "
                             ".specialize(example_args)) to see its graph")
        return self.specialize(**{p: None if self._types.get(p) is not None else params[p].default
                                  for p in params})

    @property
    def graph(self):
        return self._function().graph

    @property
    def inputs(self):
        return self._function().inputs

    @property
    def outputs(self):
        return self._function().outputs

    def __repr__(self):
        return f"<tracesym.compile {self.name}: {len(self._cache)} trace(s)>"


def _flatten(result):
    """(flat list of output variables, rebuild) for a value, tuple, list, dict or None."""
    if result is None:
        return [], lambda vals: None
    if isinstance(result, dict):
        keys = list(result)
        return [as_variable(result[k]) for k in keys], lambda vals: dict(zip(keys, vals))
    if isinstance(result, (tuple, list)):
        kind = type(result) if type(result) in (tuple, list) else tuple
        return [as_variable(r) for r in result], lambda vals: kind(vals)
    return [as_variable(result)], lambda vals: vals[0]


def compile(fn=None, *, mode=None, eager=False, name=None, **function_kwargs):
    """Decorator: `@ts.compile` or `@ts.compile(mode="FAST_COMPILE", eager=False)`.  Extra
    keyword arguments (`allow_input_downcast`, `givens`) go to `ts.function`."""
    if fn is None:
        return lambda f: CompiledFunction(f, mode=mode, eager=eager, name=name, **function_kwargs)
    return CompiledFunction(fn, mode=mode, eager=eager, name=name, **function_kwargs)
