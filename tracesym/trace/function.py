"""`function(inputs, outputs, updates=...)`: select the subgraph the outputs need, check it,
hand it to the rewriter and a linker, and wrap the result in a callable that validates its
arguments and applies updates after every output is computed.

Linkers and the rewriter live in layers above this one; they register themselves here
(`LINKERS`, `REWRITERS`) when `tracesym` is imported, so this module imports neither.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..config import config as _global_config
from ..errors import InputError, MissingInputError, UnusedInputError, UpdateError
from .graph import Constant, Graph, SharedVariable, Variable, as_variable, clone_replace, leaves

#: name -> callable(graph, config) returning a runner: runner(values) -> list of output values
LINKERS: dict = {}
#: mode name -> callable(graph, config) returning the rewritten graph (absent: no rewriting)
REWRITERS: dict = {}


def _flatten_outputs(outputs):
    """(flat list of variables, rebuild function) for a variable, a list/tuple, or a dict."""
    if isinstance(outputs, dict):
        keys = list(outputs)
        flat = [as_variable(outputs[k]) for k in keys]
        return flat, lambda vals: dict(zip(keys, vals))
    if isinstance(outputs, (list, tuple)):
        flat = [as_variable(o) for o in outputs]
        kind = type(outputs) if type(outputs) in (list, tuple) else list
        return flat, lambda vals: kind(vals)
    return [as_variable(outputs)], lambda vals: vals[0]


def normalize_updates(updates) -> list[tuple[SharedVariable, Variable]]:
    """Updates as checked (shared, expression) pairs."""
    if updates is None:
        return []
    pairs = list(updates.items()) if isinstance(updates, dict) else list(updates)
    out, seen = [], set()
    for pair in pairs:
        try:
            target, expr = pair
        except (TypeError, ValueError):
            raise UpdateError(f"an update must be a (shared_variable, expression) pair, got {pair!r}") from None
        if not isinstance(target, SharedVariable):
            where = f" (created at {target.source})" if isinstance(target, Variable) and target.source else ""
            raise UpdateError(f"cannot update {getattr(target, 'label', lambda: repr(target))()}: only "
                              f"shared variables (ts.shared) can be updated{where}")
        if id(target) in seen:
            raise UpdateError(f"shared variable {target.label()} is updated twice")
        seen.add(id(target))
        expr = as_variable(expr) if isinstance(expr, Variable) else _constant_update(target, expr)
        check_update_type(target, expr)
        out.append((target, expr))
    return out


def _constant_update(target, value):
    return as_variable(np.asarray(value, dtype=target.dtype))


def check_update_type(target: SharedVariable, expr: Variable):
    tt, et = target.type, expr.type
    ok = tt.dtype == et.dtype and tt.ndim == et.ndim and all(
        a is None or b is None or a == b for a, b in zip(tt.shape, et.shape))
    if not ok:
        where = f"\n  the update expression was created at {expr.source}" if expr.source else ""
        hint = (f"; cast it with .astype('{tt.dtype}')" if tt.dtype != et.dtype and tt.ndim == et.ndim else "")
        raise UpdateError(f"update of shared variable {target.label()} ({tt.short()}) has type "
                          f"{et.short()}{hint}{where}")


class Function:
    """A compiled function.  Call it with numpy arrays (or anything `np.asarray` takes),
    positionally or by input name; it returns numpy arrays in the outputs' structure."""

    def __init__(self, inputs, outputs, updates=None, givens=None, mode=None,
                 on_unused_input="raise", allow_input_downcast=False, name=None):
        cfg = _global_config.snapshot()
        if mode is not None:
            cfg.mode = mode if isinstance(mode, str) else mode
        self.config = cfg
        self.name = name
        self.allow_input_downcast = allow_input_downcast
        self.inputs = list(inputs)
        for v in self.inputs:
            if not isinstance(v, Variable) or isinstance(v, (Constant, SharedVariable)) or v.owner is not None:
                raise InputError(f"function inputs must be placeholders (like ts.fmatrix('x')); got "
                                 f"{v!r}" + (" (shared variables are implicit inputs)"
                                            if isinstance(v, SharedVariable) else ""))
        if len({id(v) for v in self.inputs}) != len(self.inputs):
            raise InputError("the same variable is given twice as an input")
        flat, self._rebuild = _flatten_outputs(outputs)
        self.updates = normalize_updates(updates)
        exprs = flat + [e for _, e in self.updates]
        if givens:
            pairs = list(givens.items()) if isinstance(givens, dict) else list(givens)
            exprs = clone_replace(exprs, {k: as_variable(v) for k, v in pairs})
        self.outputs = exprs[:len(flat)]
        update_exprs = exprs[len(flat):]
        self.updates = [(t, e) for (t, _), e in zip(self.updates, update_exprs)]
        self._check_inputs(exprs, on_unused_input)
        self.shared = [v for v in leaves(self.inputs, exprs) if isinstance(v, SharedVariable)]
        graph = Graph(self.inputs + self.shared, exprs, name=name or "")
        self.unoptimized_graph = graph
        rewriter = REWRITERS.get(cfg.mode)
        self.graph = rewriter(graph, cfg) if rewriter else graph
        self._runner = LINKERS[cfg.linker](self.graph, cfg)
        self._n_in, self._n_out = len(self.inputs), len(flat)
        self._no_static = [all(s is None for s in v.type.shape) for v in self.inputs]
        self._names = {v.name: i for i, v in enumerate(self.inputs) if v.name}

    def _check_inputs(self, exprs, on_unused_input):
        used = leaves(self.inputs, exprs)
        used_ids = {id(v) for v in used}
        for v in used:
            if not isinstance(v, (Constant, SharedVariable)) and id(v) not in {id(i) for i in self.inputs}:
                where = f"\n  it was created at {v.source}" if v.source else ""
                raise MissingInputError(f"the outputs depend on {v.label()} ({v.type.short()}), which is "
                                        f"not among the function's inputs{where}")
        for i, v in enumerate(self.inputs):
            if id(v) not in used_ids:
                msg = (f"input {i} ({v.label()}) is not used to compute any output; pass "
                       "on_unused_input='ignore' if that is intended")
                if on_unused_input == "raise":
                    raise UnusedInputError(msg)
                if on_unused_input == "warn":
                    warnings.warn(msg, stacklevel=4)

    def _bind(self, args, kwargs):
        if kwargs:
            args = list(args) + [None] * (self._n_in - len(args))
            for k, val in kwargs.items():
                if k not in self._names:
                    raise InputError(f"{self._label()} got an unexpected keyword argument {k!r}")
                if args[self._names[k]] is not None:
                    raise InputError(f"{self._label()} got multiple values for argument {k!r}")
                args[self._names[k]] = val
        if len(args) != self._n_in:
            raise InputError(f"{self._label()} takes {self._n_in} argument(s) "
                             f"({', '.join(v.label() for v in self.inputs)}), got {len(args)}")
        return args

    def _label(self):
        return f"function {self.name!r}" if self.name else "the function"

    def __call__(self, *args, **kwargs):
        if kwargs or len(args) != self._n_in:
            args = self._bind(args, kwargs)
        vals = []
        for i, (v, a) in enumerate(zip(self.inputs, args)):
            if type(a) is np.ndarray and a.dtype.name == v.type.dtype and a.ndim == v.type.ndim \
                    and self._no_static[i]:
                vals.append(a)  # fast path: exact dtype and ndim, no static sizes to check
            else:
                vals.append(v.type.filter(a, self.allow_input_downcast,
                                          what=f"argument {i} ({v.label()})"))
        for s in self.shared:
            vals.append(s.get_value(borrow=True))
        results = self._runner(vals)
        outs = results[:self._n_out]
        for i, o in enumerate(self.outputs):
            if isinstance(o, (SharedVariable, Constant)):
                outs[i] = outs[i].copy()
        if self.updates:
            for (target, _), new in zip(self.updates, results[self._n_out:]):
                if not new.flags.writeable or any(new is a for a in vals):
                    new = new.copy()
                for s, d in zip(target.type.shape, new.shape):
                    if s is not None and s != d:
                        raise UpdateError(f"the update of {target.label()} produced shape {new.shape}, "
                                          f"but it has static shape {target.type.short()}")
                target._value = new
        return self._rebuild(outs)

    def __repr__(self):
        ins = ", ".join(f"{v.label()}: {v.type.short()}" for v in self.inputs)
        return f"<tracesym.Function {self.name or ''}({ins})>"


def function(inputs, outputs, updates=None, givens=None, mode=None, on_unused_input="raise",
             allow_input_downcast=False, name=None) -> Function:
    """Compile a function from symbolic `inputs` to `outputs` (a variable, a list, or a dict).

    Shared variables the outputs use are implicit inputs.  `updates` ((shared, expr) pairs or a
    dict) are computed from the old values and applied after every output is computed.
    `givens` substitutes variables in the graph before compiling."""
    return Function(inputs, outputs, updates, givens, mode, on_unused_input, allow_input_downcast, name)
