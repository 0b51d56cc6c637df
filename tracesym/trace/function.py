"""`function(inputs, outputs, updates=...)`: select the subgraph the outputs need, check it,
hand it to the rewriter and a linker, and wrap the result in a callable that validates its
arguments and applies updates after every output is computed.

Linkers and the rewriter live in layers above this one; they register themselves here
(`LINKERS`, `HOOKS`) when `tracesym` is imported, so this module imports neither.
"""

from __future__ import annotations

import functools
import gc
import threading
import warnings
from concurrent import futures

import numpy as np

from ..config import config as _global_config
from ..errors import InputError, MissingInputError, UnusedInputError, UpdateError
from .graph import Constant, Graph, SharedVariable, Variable, as_variable, clone_replace, leaves
from .printing import to_svg

#: name -> callable(graph, config) returning a runner: runner(values) -> list of output values;
#: its optional `prepare(config)` starts, before the graph is rewritten, work every link needs,
#: and `many(graphs, config)` links several graphs at once
LINKERS: dict = {}
#: set by `tracesym.rewrite`: "mode" resolves a mode argument to a Mode, "rewrite" maps
#: (graph, mode) to the rewritten graph; "lower" lists functions (graph, mode) -> graph that
#: prepare a rewritten copy for linking (the loops package compiles its inner graphs there);
#: "warm" lists functions graph -> None or warm(values), called with the values of a
#: function's first call to start work the call needs, returning finish(), called after it
HOOKS: dict = {"lower": [], "warm": []}


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
        check_update_target(target)
        if id(target) in seen:
            raise UpdateError(f"shared variable {target.label()} is updated twice")
        seen.add(id(target))
        expr = update_expression(target, expr)
        out.append((target, expr))
    return out


def default_updates(inputs, exprs, explicit, no_default_updates=False, replace=None):
    """(shared, expr) pairs for the shared variables the `exprs` use (also through the default
    updates added) that have a `default_update` and no update in `explicit`.
    `no_default_updates`: True skips them all, a list of shared variables skips those."""
    if no_default_updates is True:
        return []
    skip = {id(t) for t, _ in explicit} | {id(v) for v in (no_default_updates or ())}
    out, todo = [], list(exprs)
    while todo:
        found = [v for v in leaves(inputs, todo) if isinstance(v, SharedVariable)
                 and v.default_update is not None and id(v) not in skip]
        news = [update_expression(v, v.default_update) for v in found]
        if replace and news:
            news = clone_replace(news, replace)
        skip.update(id(v) for v in found)
        out += zip(found, news)
        todo = news
    return out


def check_update_target(target):
    if not isinstance(target, SharedVariable):
        if isinstance(target, Variable):
            where = f" (created at {target.source})" if target.source else ""
            what = f"{target.label()} ({target.type.short()})"
        else:
            where, what = "", repr(target)
        raise UpdateError(f"cannot update {what}: only shared variables (ts.shared) can be "
                          f"updated{where}")


def update_expression(target: SharedVariable, expr) -> Variable:
    """`expr` as a variable of `target`'s type: a symbolic expression is checked, a value
    (array or number) becomes a constant of the target's dtype if it converts losslessly."""
    if not isinstance(expr, Variable):
        value = target.type.clone(shape=(None,) * target.ndim).filter(
            expr, what=f"update value of {target.label()}", error=UpdateError)
        expr = as_variable(value)
    check_update_type(target, expr)
    return expr


def check_update_type(target: SharedVariable, expr: Variable):
    tt, et = target.type, expr.type
    ok = tt.dtype == et.dtype and tt.ndim == et.ndim and all(
        a is None or b is None or a == b for a, b in zip(tt.shape, et.shape))
    if not ok:
        where = f"\n  the update expression was created at {expr.source}" if expr.source else ""
        if tt.dtype != et.dtype and tt.ndim == et.ndim:
            hint = f"; cast it with expr.astype('{tt.dtype}')"
        elif tt.ndim != et.ndim:
            hint = f"; it must have {tt.ndim} dimension(s), not {et.ndim}"
        else:
            hint = "; the static shapes disagree"
        raise UpdateError(f"update of shared variable {target.label()} ({tt.short()}) has type "
                          f"{et.short()}{hint}{where}")


def _givens_pairs(givens) -> dict:
    """`givens` as {variable: replacement}, each replacement of the replaced variable's type."""
    pairs = list(givens.items()) if isinstance(givens, dict) else list(givens)
    out = {}
    for old, new in pairs:
        if not isinstance(old, Variable):
            raise InputError(f"givens: the variables to replace must be symbolic, got {old!r}")
        if not isinstance(new, Variable):
            new = as_variable(old.type.clone(shape=(None,) * old.ndim).filter(
                new, what=f"givens value for {old.label()}"))
        if new.dtype != old.dtype or new.ndim != old.ndim:
            raise InputError(f"givens: {old.label()} ({old.type.short()}) cannot be replaced by "
                             f"{new.label()} ({new.type.short()}); the dtype and number of "
                             "dimensions must match (use .astype / reshape)")
        out[old] = new
    return out


_MISSING = object()
_AMBIGUOUS = -1


def _aliases(a, pool, pool_ids, pool_views) -> bool:
    """True when ndarray `a` is an array in `pool`, may view the memory of one, or may be
    viewed by one of `pool_views` (the members of `pool` that are views): an array that owns
    its memory (`base` None) can only share it with a view."""
    if id(a) in pool_ids:
        return True
    if a.base is not None:
        return any(np.may_share_memory(a, p) for p in pool)
    return any(np.may_share_memory(a, p) for p in pool_views)


def _gc_paused(init):
    """`init` run with Python's cyclic garbage collector paused: a compile makes many objects
    that live on (nodes, types, graph copies), and the collections they set off walk all of
    them again; in a process that compiled before, that was a third of the time of a
    2,000-node compile.  What it leaves as garbage is collected when the collector runs next."""
    @functools.wraps(init)
    def paused(*args, **kwargs):
        if not gc.isenabled():  # paused already (an inner function of a compile)
            return init(*args, **kwargs)
        gc.disable()
        try:
            return init(*args, **kwargs)
        finally:
            gc.enable()

    return paused


def _add(pool, pool_ids, pool_views, a):
    pool.append(a)
    pool_ids.add(id(a))
    if a.base is not None:
        pool_views.append(a)


def _link_into(future, linker, graph, cfg):
    try:
        future.set_result(linker(graph, cfg))
    except BaseException as e:  # noqa: BLE001 (the first call raises it)
        future.set_exception(e)


def prepared_linker(mode, cfg):
    """The linker `mode` selects, its `prepare` started: what every link needs runs while
    the caller traces and rewrites."""
    linker = LINKERS[mode.linker or cfg.linker]
    if hasattr(linker, "prepare"):
        linker.prepare(cfg)
    return linker


class Function:
    """A compiled function.  Call it with numpy arrays (or anything `np.asarray` takes),
    positionally or by input name; it returns numpy arrays in the outputs' structure.

    Returned arrays never alias the arguments, shared variables' storage or each other, so
    writing into a result cannot corrupt a shared variable."""

    @_gc_paused
    def __init__(self, inputs, outputs, updates=None, givens=None, mode=None,
                 on_unused_input="raise", allow_input_downcast=False, name=None,
                 no_default_updates=False):
        cfg = _global_config.snapshot()
        self.mode = HOOKS["mode"](mode, cfg)
        linker = prepared_linker(self.mode, cfg)
        if on_unused_input not in ("raise", "warn", "ignore"):
            raise ValueError(f"on_unused_input must be 'raise', 'warn' or 'ignore', got {on_unused_input!r}")
        self.config = cfg
        self.name = name
        self.allow_input_downcast = allow_input_downcast
        if isinstance(inputs, Variable):
            raise InputError(f"function inputs must be a list of placeholders; write [{inputs.label()}]")
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
        replace = _givens_pairs(givens) if givens else {}
        if replace:
            exprs = clone_replace(exprs, replace)
        self.outputs = exprs[:len(flat)]
        self.updates = [(t, e) for (t, _), e in zip(self.updates, exprs[len(flat):])]
        self.updates += default_updates(self.inputs, exprs, self.updates, no_default_updates,
                                        replace)
        exprs = self.outputs + [e for _, e in self.updates]
        self._check_inputs(exprs, on_unused_input)
        self.shared = [v for v in leaves(self.inputs, exprs) if isinstance(v, SharedVariable)]
        targets = [t for t, _ in self.updates]
        graph = Graph(self.inputs + self.shared, exprs, update_targets=targets, name=name or "")
        self.unoptimized_graph = graph
        self.graph = HOOKS["rewrite"](graph, self.mode)
        if self.graph is not graph:  # lowering mutates: never the traced graph itself
            for lower in HOOKS["lower"]:
                self.graph = lower(self.graph, self.mode)
        self.graph.update_targets = targets
        self._n_in, self._n_out = len(self.inputs), len(flat)
        self._static_updates = [(k, t) for k, t in enumerate(targets)
                                if any(s is not None for s in t.type.shape)]
        self._names = {}
        for i, v in enumerate(self.inputs):
            if v.name:
                self._names[v.name] = _AMBIGUOUS if v.name in self._names else i
        self._single = not isinstance(outputs, (dict, list, tuple))
        self._linking = futures.Future()
        warms = [w for w in (hook(self.graph) for hook in HOOKS["warm"]) if w is not None]
        if warms:
            # the graph links on a thread while the first call starts what `warms` start
            # (the scans' steps, compiled as the graph's own kernels are)
            threading.Thread(target=_link_into, args=(self._linking, linker, self.graph, cfg),
                             name="tracesym-link").start()
            self._all_fresh = self._plain = False
            self._run = self._first_run(warms)
        else:
            self._linking.set_result(linker(self.graph, cfg))
            self._linked()
        self._call = self._caller()

    @property
    def _runner(self):
        """The linker's runner (once it is linked: see `_first_run`)."""
        return self._linking.result()

    def _linked(self):
        runner = self._runner
        # a linker may list, per graph output, whether it is always a new writeable array
        # that nothing else returned or kept can alias; when all are, no alias check is needed
        fresh = getattr(runner, "fresh", None)
        self._all_fresh = fresh is not None and all(fresh)
        self._plain = self._all_fresh and not self.updates  # results are the outputs as they are
        # a linker may offer a runner that skips re-checking what `__call__` checks
        self._run = getattr(runner, "validated", runner)

    def _first_run(self, warms):
        """`run` for the first call: `warms` see its values while the graph is linked, and
        what they started is finished before it returns; later calls go straight to the
        linker's runner."""
        def first(vals):
            finishes = [warm(vals) for warm in warms]
            try:
                self._linked()
                self._call = self._caller()
                return self._run(vals)
            finally:
                for finish in finishes:
                    finish()
        return first

    def _check_inputs(self, exprs, on_unused_input):
        used = leaves(self.inputs, exprs)
        used_ids = {id(v) for v in used}
        input_ids = {id(v) for v in self.inputs}
        for v in used:
            if not isinstance(v, (Constant, SharedVariable)) and id(v) not in input_ids:
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

    def _signature(self):
        return ", ".join(v.label() for v in self.inputs)

    def _bind(self, args, kwargs):
        if len(args) > self._n_in:
            raise InputError(f"{self._label()} takes {self._n_in} argument(s) ({self._signature()}), "
                             f"got {len(args)}")
        args = list(args) + [_MISSING] * (self._n_in - len(args))
        for k, val in kwargs.items():
            i = self._names.get(k)
            if i is None:
                raise InputError(f"{self._label()} got an unexpected keyword argument {k!r}; its "
                                 f"inputs are ({self._signature()})")
            if i == _AMBIGUOUS:
                raise InputError(f"{self._label()}: several inputs are named {k!r}; pass them "
                                 "positionally")
            if args[i] is not _MISSING:
                raise InputError(f"{self._label()} got multiple values for argument {k!r}")
            args[i] = val
        missing = [self.inputs[i].label() for i, a in enumerate(args) if a is _MISSING]
        if missing:
            raise InputError(f"{self._label()} is missing argument(s) {', '.join(missing)}; it "
                             f"takes ({self._signature()})")
        return args

    def _label(self):
        return f"function {self.name!r}" if self.name else "the function"

    def __call__(self, *args, **kwargs):
        if kwargs or len(args) != self._n_in:
            args = self._bind(args, kwargs)
        return self._call(args)

    def _finish(self, vals, results):
        """The outputs of a call whose results need checks: static update shapes, aliasing
        (copies where needed); then the updates are applied."""
        news = results[self._n_out:]
        for k, target in self._static_updates:
            new = news[k]
            if any(s is not None and s != d for s, d in zip(target.type.shape, new.shape)):
                raise UpdateError(f"the update of {target.label()} produced shape {new.shape}, "
                                  f"but it has static shape {target.type.short()}; no update "
                                  "was applied")
        if self._all_fresh:
            outs = results[:self._n_out]
        else:
            outs, news = self._unalias(vals, results)
        for (target, _), new in zip(self.updates, news):
            target._value = new
        return self._rebuild(outs)

    def _caller(self):
        """`call(args)`, a call with one positional argument per input: an argument that is an
        ndarray of its input's dtype and ndim is taken as it is (but one whose type fixes
        sizes, which `filter` checks), anything else is converted or refused by `filter`; the
        runner gets the arguments then the shared values.  Generated per function, one line
        per argument: this is the whole per-call path of a function without updates."""
        n = self._n_in
        args = "".join(f"a{i}, " for i in range(n))
        lines = ["def call(args):"] + ([f"    {args}= args"] if n else [])
        scope = {"ndarray": np.ndarray, "filt": self._filter, "run": self._run,
                 "rebuild": self._rebuild, "finish": self._finish}
        for i, v in enumerate(self.inputs):
            scope[f"d{i}"] = v.type.np_dtype
            nd = -1 if any(s is not None for s in v.type.shape) else v.ndim  # -1: never taken
            lines += [f"    if type(a{i}) is not ndarray or a{i}.ndim != {nd} or "
                      f"(a{i}.dtype is not d{i} and a{i}.dtype != d{i}):",
                      f"        a{i} = filt({i}, a{i})"]
        for j, sv in enumerate(self.shared):
            scope[f"s{j}"] = sv
        shared = "".join(f"s{j}._value, " for j in range(len(self.shared)))
        lines.append(f"    vals = [{args}{shared}]")
        if not self._plain:
            lines.append("    return finish(vals, run(vals))")
        elif self._single:
            lines.append("    return run(vals)[0]")
        else:
            lines.append("    return rebuild(run(vals))")
        exec(compile("\n".join(lines) + "\n", f"<tracesym call {self.name or ''}>", "exec"), scope)
        return scope["call"]

    def _filter(self, i, a):
        v = self.inputs[i]
        return v.type.filter(a, self.allow_input_downcast, what=f"argument {i} ({v.label()})")

    def _unalias(self, vals, results):
        """(outputs, update values) with copies where one may alias an argument, a shared
        variable's storage, another result, or is read-only."""
        outs, news = list(results[:self._n_out]), list(results[self._n_out:])
        pool, pool_ids = list(vals), set(map(id, vals))
        pool_views = [v for v in vals if v.base is not None]
        for k, ((target, _), new) in enumerate(zip(self.updates, news)):
            if new is not target._value and (not new.flags.writeable or
                                              _aliases(new, pool, pool_ids, pool_views)):
                news[k] = new = new.copy()
            _add(pool, pool_ids, pool_views, new)
        for k, o in enumerate(outs):
            if not o.flags.writeable or _aliases(o, pool, pool_ids, pool_views):
                outs[k] = o = o.copy()
            _add(pool, pool_ids, pool_views, o)
        return outs, news

    def __repr__(self):
        ins = ", ".join(f"{v.label()}: {v.type.short()}" for v in self.inputs)
        return f"<tracesym.Function {self.name or ''}({ins})>"

    def _repr_svg_(self):
        """The rewritten graph as SVG, for notebooks; None without Graphviz's `dot`."""
        return to_svg(self)


def function(inputs, outputs, updates=None, givens=None, mode=None, on_unused_input="raise",
             allow_input_downcast=False, name=None, no_default_updates=False) -> Function:
    """Compile a function from symbolic `inputs` to `outputs` (a variable, a list, or a dict).

    Shared variables the outputs use are implicit inputs.  `updates` ((shared, expr) pairs or a
    dict) are computed from the old values and applied after every output is computed; a
    shared variable with a `default_update` and no explicit update gets that one, unless
    `no_default_updates` is True or lists it.  `givens` substitutes variables in the graph
    before compiling."""
    return Function(inputs, outputs, updates, givens, mode, on_unused_input, allow_input_downcast,
                    name, no_default_updates)
