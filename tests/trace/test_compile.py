"""`@ts.compile`: annotations, typing from the call and the trace cache, static arguments,
implicit shared inputs, `ts.update`, result structure, introspection, and errors."""

import inspect
from collections import namedtuple

import networkx as nx
import numpy as np
import pytest

import tracesym as ts
from tracesym.errors import InputError, MissingInputError, UpdateError
from tracesym.trace.compile import CompiledFunction


def counting(fn):
    """`fn` plus a counter of how often its Python body runs (once per trace)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    wrapper.__signature__ = inspect.signature(fn)
    wrapper.__annotations__ = fn.__annotations__
    wrapper.__name__ = fn.__name__
    return wrapper, calls


def test_bare_decorator():
    @ts.compile
    def double(x):
        return x * 2

    out = double(np.array([1.0, 2.0]))
    assert type(out) is np.ndarray and out.dtype == np.float64
    np.testing.assert_array_equal(out, [2.0, 4.0])
    assert double.__name__ == "double"


def test_decorator_with_options():
    @ts.compile(mode="FAST_COMPILE", name="halve", allow_input_downcast=True)
    def f(x: ts.fvector):
        return x / 2

    out = f(np.array([1.0, 3.0]))  # float64 data: allowed to downcast
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.5, 1.5])
    assert f.specialize(np.zeros(1, np.float32)).mode.optimizer == "fast_compile"
    assert f.specialize(np.zeros(1, np.float32)).name == "halve"


def test_annotations_fix_the_types():
    @ts.compile
    def f(x: ts.fmatrix, y: ts.lvector):
        return x.sum(axis=1) + y

    out = f(np.ones((2, 3), np.float32), np.array([1, 2]))
    assert out.dtype == np.float64  # float32 + int64 promotes, as numpy does
    np.testing.assert_array_equal(out, [4.0, 5.0])
    assert [v.type for v in f.inputs] == [ts.fmatrix, ts.lvector]
    with pytest.raises(InputError, match=r"argument 0 \(x\): expected float32, got float64"):
        f(np.ones((2, 3)), np.array([1, 2]))
    with pytest.raises(InputError, match=r"argument 1 \(y\): expected 1 dimension"):
        f(np.ones((2, 3), np.float32), np.array(1))


def test_bare_floatx_names_follow_the_config_at_call_time():
    @ts.compile
    def f(x: ts.matrix):
        return x * 2

    assert f(np.ones((1, 1))).dtype == np.float64
    with ts.config.change(floatX="float32"):
        @ts.compile
        def g(x: ts.matrix):
            return x * 2

        assert g(np.ones((1, 1), np.float32)).dtype == np.float32
        assert g.inputs[0].type == ts.fmatrix


def test_string_annotations_are_evaluated():
    ns = {}
    exec("from __future__ import annotations\nimport tracesym as ts\n"
         "def f(x: ts.fvector):\n    return x + 1\n", ns)
    f = ts.compile(ns["f"])
    assert f(np.zeros(2, np.float32)).dtype == np.float32
    assert f.inputs[0].type == ts.fvector


def test_unannotated_arrays_retrace_once_per_dtype_and_ndim():
    def body(x):
        return x + 1

    body, calls = counting(body)
    f = ts.compile(body)
    assert f(np.zeros(3)).dtype == np.float64
    f(np.zeros(5))  # same (float64, 1-d) signature: no retrace
    assert len(calls) == 1 and f.n_traces == 1
    assert f(np.zeros((2, 2))).shape == (2, 2)
    assert len(calls) == 2
    assert f(np.zeros(3, np.float32)).dtype == np.float32
    assert f(np.zeros(3, np.int32)).dtype == np.int32
    assert len(calls) == 4 and f.n_traces == 4
    f(np.ones(7, np.int32))
    assert len(calls) == 4
    assert repr(f) == "<tracesym.compile body: 4 trace(s)>"


def test_lists_are_arrays_and_numpy_scalars_are_zero_d_arrays():
    @ts.compile
    def f(x):
        return x * 2

    np.testing.assert_array_equal(f([1, 2, 3]), [2, 4, 6])
    assert f(np.float32(1.5)).dtype == np.float32 and f(np.float32(1.5)).shape == ()


def test_python_scalars_are_static():
    def body(x, scale=1.0):
        return x * scale

    body, calls = counting(body)
    f = ts.compile(body)
    xv = np.ones(2, np.float32)
    np.testing.assert_array_equal(f(xv, 2.0), [2.0, 2.0])
    np.testing.assert_array_equal(f(xv, 2.0), [2.0, 2.0])
    assert len(calls) == 1
    np.testing.assert_array_equal(f(xv, 3.0), [3.0, 3.0])
    assert len(calls) == 2
    np.testing.assert_array_equal(f(xv), [1.0, 1.0])  # the default
    assert len(calls) == 3
    assert f(xv, 2).dtype == np.float32  # an int 2 is another static value than 2.0
    assert len(calls) == 4
    # a weak Python scalar keeps the array's dtype
    assert f(xv, 2.5).dtype == np.float32


def test_tuples_and_strings_are_static():
    @ts.compile
    def f(x, axes=(0,), how="sum"):
        return x.sum(axis=axes) if how == "sum" else x.max(axis=axes)

    m = np.array([[1.0, 5.0], [3.0, 2.0]])
    np.testing.assert_array_equal(f(m), [4.0, 7.0])
    np.testing.assert_array_equal(f(m, (1,)), [6.0, 5.0])
    np.testing.assert_array_equal(f(m, axes=(0, 1), how="max"), 5.0)
    assert f.n_traces == 3


def test_keyword_arguments_and_defaults():
    @ts.compile
    def f(x, y, *, shift=0.0):
        return x - y + shift

    a, b = np.array([3.0]), np.array([1.0])
    np.testing.assert_array_equal(f(a, b), [2.0])
    np.testing.assert_array_equal(f(y=b, x=a), [2.0])
    np.testing.assert_array_equal(f(a, b, shift=10.0), [12.0])
    assert f.n_traces == 2
    with pytest.raises(InputError, match=r"f\(\): missing a required argument: 'y'"):
        f(a)
    with pytest.raises(InputError, match="unexpected keyword argument 'z'"):
        f(a, b, z=1)


def test_positional_only_arguments():
    @ts.compile
    def f(x, /, y):
        return x * y

    np.testing.assert_array_equal(f(np.array([2.0]), np.array([3.0])), [6.0])


def test_closure_shared_variable_is_an_implicit_input():
    W = ts.shared(np.array([1.0, 2.0]), name="W")

    @ts.compile
    def f(x):
        return x * W

    np.testing.assert_array_equal(f(np.array([1.0, 1.0])), [1.0, 2.0])
    W.set_value(np.array([5.0, 5.0]))
    np.testing.assert_array_equal(f(np.array([1.0, 1.0])), [5.0, 5.0])
    assert f.n_traces == 1


def test_global_shared_variable_is_an_implicit_input():
    @ts.compile
    def f(x):
        return x + GLOBAL_OFFSET

    np.testing.assert_array_equal(f(np.zeros(2)), [3.0, 3.0])
    GLOBAL_OFFSET.set_value(np.array(4.0))
    np.testing.assert_array_equal(f(np.zeros(2)), [4.0, 4.0])


GLOBAL_OFFSET = ts.shared(np.array(3.0), name="offset")


def test_a_shared_variable_passed_as_an_argument_is_used_directly():
    W = ts.shared(np.array([2.0]), name="W")

    @ts.compile
    def f(p, x):
        return p * x

    np.testing.assert_array_equal(f(W, np.array([3.0])), [6.0])


def test_free_placeholder_in_the_closure_is_a_missing_input():
    z = ts.dvector("z")

    @ts.compile
    def f(x):
        return x + z

    with pytest.raises(MissingInputError, match=r"z \(float64\[\?\]\)"):
        f(np.zeros(2))


def test_update_inside_compile():
    W = ts.shared(np.array([1.0, 2.0]), name="W")
    count = ts.shared(np.array(0), name="count")

    @ts.compile
    def step(x):
        out = (W * x).sum()
        ts.update(W, W + x)
        ts.update(count, count + 1)
        return out

    assert step(np.array([1.0, 1.0])) == 3.0  # computed from the old W
    np.testing.assert_array_equal(W.get_value(), [2.0, 3.0])
    assert step(np.array([1.0, 1.0])) == 5.0
    assert count.get_value() == 2
    assert [t for t, _ in step.updates] == [W, count]


def test_update_swap_inside_compile():
    a = ts.shared(np.array([1.0]), name="a")
    b = ts.shared(np.array([2.0]), name="b")

    @ts.compile
    def swap():
        ts.update(a, b)
        ts.update(b, a)

    assert swap() is None
    assert a.get_value()[0] == 2.0 and b.get_value()[0] == 1.0


def test_update_errors_inside_compile():
    W = ts.shared(np.zeros(2, np.float32), name="W")

    @ts.compile
    def twice(x: ts.fvector):
        ts.update(W, W + x)
        ts.update(W, W - x)
        return x

    with pytest.raises(UpdateError, match="W is updated twice in one call"):
        twice(np.zeros(2, np.float32))

    @ts.compile
    def wrong_dtype(x: ts.dvector):
        ts.update(W, W + x)

    with pytest.raises(UpdateError, match=r"astype\('float32'\)"):
        wrong_dtype(np.zeros(2))

    @ts.compile
    def not_shared(x: ts.dvector):
        ts.update(x, x + 1)

    with pytest.raises(UpdateError, match=r"cannot update x \(float64\[\?\]\)"):
        not_shared(np.zeros(2))


def test_update_outside_compile():
    W = ts.shared(np.zeros(2), name="W")
    with pytest.raises(UpdateError, match=r"only valid inside a @ts.compile function.*updates="):
        ts.update(W, W + 1)


def test_return_structure_is_preserved():
    Pair = namedtuple("Pair", "a b")

    @ts.compile
    def f(x, kind):
        if kind == "value":
            return x
        if kind == "tuple":
            return x, x * 2
        if kind == "list":
            return [x]
        if kind == "dict":
            return {"sum": x.sum(), "nested": (x, {"twice": x * 2})}
        if kind == "namedtuple":
            return Pair(x, x + 1)
        if kind == "constant":
            return 3
        return None

    v = np.array([1.0, 2.0])
    assert isinstance(f(v, "value"), np.ndarray)
    t = f(v, "tuple")
    assert type(t) is tuple and len(t) == 2
    np.testing.assert_array_equal(t[1], [2.0, 4.0])
    assert type(f(v, "list")) is list
    d = f(v, "dict")
    assert d["sum"] == 3.0 and type(d["nested"]) is tuple
    np.testing.assert_array_equal(d["nested"][1]["twice"], [2.0, 4.0])
    p = f(v, "namedtuple")
    assert type(p) is Pair
    np.testing.assert_array_equal(p.b, [2.0, 3.0])
    assert f(v, "constant") == 3
    assert f(v, "none") is None


def test_returning_an_argument_does_not_alias_it():
    @ts.compile
    def ident(x):
        return x

    v = np.array([1.0])
    out = ident(v)
    out[0] = 2.0
    assert v[0] == 1.0


def test_graph_inputs_outputs():
    @ts.compile
    def f(x: ts.fvector, y: ts.fvector):
        return ts.exp(x) * y

    assert isinstance(f.graph, nx.DiGraph) and nx.is_directed_acyclic_graph(f.graph)
    assert [v.name for v in f.inputs] == ["x", "y"]
    assert len(f.outputs) == 1 and f.outputs[0].dtype == "float32"
    assert f.n_traces == 1  # annotated: traced on first inspection
    f(np.zeros(2, np.float32), np.zeros(2, np.float32))
    assert f.n_traces == 1


def test_graph_before_any_call_needs_annotations():
    @ts.compile
    def f(x):
        return x + 1

    with pytest.raises(InputError, match=r"not been called yet.*argument\(s\) x have no type annotation"):
        f.graph
    f.specialize(np.zeros((2, 2), np.int32))
    assert f.inputs[0].type == ts.imatrix


def test_graph_follows_the_last_call():
    @ts.compile
    def f(x):
        return x * 2

    f(np.zeros(2))
    assert f.inputs[0].type == ts.dvector
    f(np.zeros((2, 2), np.float32))
    assert f.inputs[0].type == ts.fmatrix
    assert f.graph is f.specialize(np.zeros((1, 1), np.float32)).graph


def test_var_args_are_refused():
    with pytest.raises(InputError, match=r"\*args is not supported"):
        @ts.compile
        def f(*args):
            return args[0]

    with pytest.raises(InputError, match=r"\*kw is not supported"):
        @ts.compile
        def g(x, **kw):
            return x


def test_non_numeric_array_argument():
    @ts.compile
    def f(x):
        return x

    with pytest.raises(InputError, match="argument 'x' has dtype <U1"):
        f(np.array(["a"]))


def test_called_inside_another_trace_is_inlined():
    def inner_body(x):
        return x * 3

    inner_body, calls = counting(inner_body)
    inner = ts.compile(inner_body)

    @ts.compile
    def outer(x):
        return inner(x) + 1

    np.testing.assert_array_equal(outer(np.array([1.0])), [4.0])
    assert inner.n_traces == 0 and len(calls) == 1
    # and with a placeholder from outside any trace, the result is symbolic
    y = ts.dvector("y")
    expr = inner(y)
    assert isinstance(expr, ts.Variable)
    np.testing.assert_array_equal(ts.function([y], expr)(np.array([2.0])), [6.0])


def test_methods():
    class Model:
        def __init__(self, k):
            self.k = k

        @ts.compile
        def apply(self, x):
            return x * self.k

    np.testing.assert_array_equal(Model(2.0).apply(np.array([1.0])), [2.0])
    np.testing.assert_array_equal(Model(5.0).apply(np.array([1.0])), [5.0])
    assert isinstance(Model.apply, CompiledFunction)


def test_zero_size_and_broadcasting_arguments():
    @ts.compile
    def f(x, y):
        return x + y

    assert f(np.zeros((0, 3)), np.zeros(3)).shape == (0, 3)
    np.testing.assert_array_equal(f(np.ones((2, 1)), np.arange(3.0)), np.ones((2, 1)) + np.arange(3.0))


# -- the fast path: positional array calls of a traced signature skip binding ---------------

def general_calls(f):
    """A counter of the calls of `f` that take the general (binding) path."""
    calls = []
    bind = f._bind

    def spy(args, kwargs):
        calls.append(1)
        return bind(args, kwargs)

    f._bind = spy
    return calls


def test_fast_path_repeats_a_signature_without_binding():
    body, traces = counting(lambda x, y: (x * 2 + y).sum())
    f = ts.compile(body)
    general = general_calls(f)
    x, y = np.arange(4.0), np.ones(4)
    assert f(x, y) == pytest.approx((x * 2 + y).sum())
    for k in range(3):
        out = f(x + k, y)
        assert type(out) is np.ndarray and out.ndim == 0
        assert out == pytest.approx(((x + k) * 2 + y).sum())
    assert len(general) == 1 and len(traces) == 1


def test_fast_path_is_not_taken_by_a_new_dtype_or_ndim():
    body, traces = counting(lambda x: x * 3)
    f = ts.compile(body)
    general = general_calls(f)
    f(np.ones(3))
    for a in (np.arange(3, dtype=np.int32), np.ones((2, 2)), np.ones(3, np.float32)):
        out = f(a)
        assert out.dtype == a.dtype and out.shape == a.shape
        np.testing.assert_array_equal(out, a * 3)
    assert len(general) == 4 and len(traces) == 4
    np.testing.assert_array_equal(f(np.arange(2, dtype=np.int32)), [0, 3])  # now fast
    assert len(general) == 4 and f.n_traces == 4


def test_keywords_defaults_and_python_scalars_take_the_general_path():
    body, traces = counting(lambda x, s=2.0: x * s)
    f = ts.compile(body)
    general = general_calls(f)
    x = np.arange(3.0)
    np.testing.assert_array_equal(f(x, np.array(3.0)), x * 3)
    np.testing.assert_array_equal(f(x, np.array(4.0)), x * 4)  # fast: the same signature
    assert len(general) == 1
    np.testing.assert_array_equal(f(x=x, s=np.array(5.0)), x * 5)  # keywords
    np.testing.assert_array_equal(f(x), x * 2)  # the default, a static Python float
    np.testing.assert_array_equal(f(x, 7.0), x * 7)  # a new static value: traced again
    np.testing.assert_array_equal(f(x, 2.0), x * 2)
    assert len(general) == 5 and len(traces) == 3


def test_annotated_scalar_given_a_python_float():
    @ts.compile
    def f(x: ts.dvector, a: ts.dscalar):
        return x * a

    x = np.arange(3.0)
    np.testing.assert_array_equal(f(x, np.array(2.0)), x * 2)
    np.testing.assert_array_equal(f(x, 3.0), x * 3)
    np.testing.assert_array_equal(f(x, np.array(4.0)), x * 4)
    assert f.n_traces == 1


def test_non_contiguous_big_endian_and_subclassed_arrays_are_right():
    body, traces = counting(lambda x: (x * 2 + 1) ** 2)
    f = ts.compile(body)
    base = np.arange(12.0).reshape(3, 4)
    f(base)
    for a in (base[:, ::2], base.T, base.astype(">f8"), base.view(type("Sub", (np.ndarray,), {})),
              np.asfortranarray(base)):
        out = f(a)
        assert type(out) is np.ndarray and out.dtype == np.float64
        np.testing.assert_array_equal(out, (np.asarray(a, np.float64) * 2 + 1) ** 2)
    assert len(traces) == 1


def test_fast_path_checks_annotated_arguments():
    @ts.compile
    def f(x: ts.fvector):
        return x + 1

    f(np.zeros(2, np.float32))
    with pytest.raises(InputError, match=r"argument 0 \(x\): expected float32, got float64"):
        f(np.zeros(2))
    with pytest.raises(InputError, match=r"argument 0 \(x\): expected 1 dimension"):
        f(np.zeros((2, 2), np.float32))
    assert f.n_traces == 1


def test_floatx_annotation_is_read_on_every_call():
    @ts.compile
    def f(x: ts.vector):
        return x * 2

    assert f(np.ones(2)).dtype == np.float64
    with ts.config.change(floatX="float32"):
        out = f(np.ones(2, np.float32))
        with pytest.raises(InputError, match=r"expected float32, got float64"):
            f(np.ones(2))  # the float64 trace is not for this configuration
    assert out.dtype == np.float32 and f.n_traces == 2
    assert f.inputs[0].type == ts.fvector


def test_eager_and_updates_after_the_fast_path_is_ready():
    counter = ts.shared(np.zeros((), np.float64), name="counter")

    def step(x):
        ts.update(counter, counter + x.sum())
        return x * 2

    body, traces = counting(step)
    f = ts.compile(body)
    x = np.ones(3)
    f(x)
    f(x)
    assert counter.get_value() == 6.0 and len(traces) == 1
    with ts.eager():
        np.testing.assert_array_equal(f(x), x * 2)
    assert len(traces) == 2 and counter.get_value() == 9.0  # ran op by op, update applied
    f(x)
    assert len(traces) == 2 and counter.get_value() == 12.0


def test_array_call_inside_another_trace():
    @ts.compile
    def inner(a):
        return a + 1

    c = np.array([1.0, 2.0])
    inner(c)

    @ts.compile
    def outer(x):
        return x * inner(c)

    np.testing.assert_array_equal(outer(np.ones(2)), c + 1)
