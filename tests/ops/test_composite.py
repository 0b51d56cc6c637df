"""`Composite`, the Op of a fused elementwise node: its program's values against numpy (with
broadcasting, several outputs, constants, mixed dtypes), its types and shapes, its gradient
(the program expanded back into Elemwise rows), its printed formula, its errors, and
`InplaceComposite`, which writes outputs into input buffers."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tracesym as ts
from tracesym.errors import OpRuntimeError, ShapeError
from tracesym.ops import scalar as S
from tracesym.ops.composite import (Composite, CompositeReduce, InplaceComposite, Program, Step,
                                   program_of)
from tracesym.ops.elemwise import Elemwise
from tracesym.ops.reduce import Reduce
from tracesym.ops.shape import shape_i
from tracesym.trace.graph import applies_between


def prog(in_dtypes, steps, outputs):
    """A Program from compact steps: `("mul", "i0", "s1", 2.5)` reads input 0, step 1 and a
    float64 constant; each step's dtype is the row's for its arguments'."""
    in_dtypes = tuple(in_dtypes)
    built = []

    def ref(a):
        if isinstance(a, str):
            return ("in" if a[0] == "i" else "step", int(a[1:]))
        return ("const", a, np.asarray(a).dtype.name)

    def dtype(r):
        return in_dtypes[r[1]] if r[0] == "in" else built[r[1]].dtype if r[0] == "step" else r[2]

    for op, *args in steps:
        refs = tuple(map(ref, args))
        built.append(Step(op, refs, S.TABLE[op].out_dtype([dtype(r) for r in refs])))
    return Program(in_dtypes, tuple(built), tuple(map(ref, outputs)))


#: sigmoid(x*y + 1.5) * tanh(x) + exp(-(x*x)), the W1 expression
W1 = prog(("float64", "float64"), [
    ("mul", "i0", "i1"), ("add", "s0", 1.5), ("sigmoid", "s1"), ("tanh", "i0"), ("mul", "s2", "s3"),
    ("mul", "i0", "i0"), ("neg", "s5"), ("exp", "s6"), ("add", "s4", "s7")], ["s8"])
#: two outputs sharing a step: (exp(x) * y, exp(x) + x)
TWO = prog(("float64", "float64"), [("exp", "i0"), ("mul", "s0", "i1"), ("add", "s0", "i0")],
           ["s1", "s2"])


def w1(x, y):
    return 1 / (1 + np.exp(-(x * y + 1.5))) * np.tanh(x) + np.exp(-(x * x))


def _u(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).uniform(-1.5, 1.5, size=shape)


def run(inputs, outputs, *values):
    return ts.function(inputs, outputs, mode="NONE")(*values)


GRAD_CASES = {
    Composite: [
        (lambda x, y: Composite(W1)(x, y), [_u(2, 3), _u(2, 3, seed=1)]),
        # broadcasting: x is a row, so its gradient sums over the rows
        (lambda x, y: Composite(W1)(x, y), [_u(3), _u(4, 3, seed=1)]),
        # two outputs, both used; the shared exp is differentiated once per use
        (lambda x, y: sum(o * w for o, w in zip(Composite(TWO)(x, y), (1.0, -2.0))),
         [_u(2, 2), _u(2, 2, seed=3)]),
        # an output that is an input, one that is a constant, and a clip with a constant bound
        (lambda x: Composite(prog(("float64",), [("clip", "i0", -0.5, 0.5), ("sqr", "s0")],
                                  ["s1", "i0", 3.0]))(x)[0] * 2 + Composite(
            prog(("float64",), [("sin", "i0")], ["i0"]))(x), [_u(5)]),
    ],
    InplaceComposite: [
        (lambda x, y: InplaceComposite(W1, {0: 0})(x * 2.0, y), [_u(2, 3), _u(3, seed=1)]),
        (lambda x, y: sum(InplaceComposite(TWO, {0: 1, 1: 0})(x * 1.5, y + 0.5)),
         [_u(4), _u(4, seed=2)]),
    ],
    CompositeReduce: [
        (lambda x, y: CompositeReduce(W1, Reduce("sum", (0, 1)))(x, y), [_u(2, 3), _u(3, seed=1)]),
        (lambda x, y: CompositeReduce(W1, Reduce("max", (1,), keepdims=True))(x, y),
         [_u(3, 4), _u(3, 4, seed=2)]),
        (lambda x: CompositeReduce(prog(("float64",), [("mul", "i0", 0.5), ("add", "s0", 1.0)],
                                        ["s1"]), Reduce("prod", (0,)))(x), [_u(4, 2)]),
    ],
}


# -- values ---------------------------------------------------------------------------------------

def test_w1_matches_numpy_with_broadcasting():
    x, y = ts.dvector("x"), ts.dmatrix("y")
    out = Composite(W1)(x, y)
    assert out.type.short() == "float64[?,?]"
    a, b = _u(3), _u(4, 3)
    np.testing.assert_allclose(run([x, y], out, a, b), w1(a, b), rtol=1e-14)


def test_outputs_take_their_own_broadcast_shapes():
    """An output that reads only some inputs has their broadcast shape, not the whole
    node's (here exp(x) stays a row while exp(x) * y is a matrix)."""
    p = prog(("float64", "float64"), [("exp", "i0"), ("mul", "s0", "i1")], ["s0", "s1"])
    x, y = ts.tensor("float64", (None,)), ts.tensor("float64", (2, None))
    e, m = Composite(p)(x, y)
    assert (e.type.shape, m.type.shape) == ((None,), (2, None))
    a, b = _u(3), _u(2, 3)
    ge, gm = run([x, y], [e, m], a, b)
    rtol = 1e-14 if ts.config.linker == "c" else 0  # C's exp may round differently
    np.testing.assert_allclose(ge, np.exp(a), rtol=rtol, atol=0)
    np.testing.assert_allclose(gm, np.exp(a) * b, rtol=rtol, atol=0)


def test_run_time_size_one_dims_broadcast():
    x, y = ts.dmatrix("x"), ts.dmatrix("y")
    f = ts.function([x, y], Composite(W1)(x, y), mode="NONE")
    for a, b in [((1, 3), (4, 3)), ((4, 1), (1, 3)), ((1, 1), (2, 5)), ((0, 3), (1, 3))]:
        xa, yb = _u(*a), _u(*b, seed=2)
        np.testing.assert_allclose(f(xa, yb), w1(xa, yb), rtol=1e-14)


def test_run_time_shape_mismatch_names_the_node():
    x, y = ts.dvector("x"), ts.dvector("y")
    f = ts.function([x, y], Composite(W1)(x, y), mode="NONE")
    with pytest.raises(OpRuntimeError, match=r"Composite\{.*float64\[3\], float64\[4\]"):
        f(_u(3), _u(4))


@pytest.mark.parametrize("dtypes", [("int8", "float32"), ("int16", "uint8"), ("bool", "int64"),
                                    ("float16", "int32"), ("complex64", "float64")])
def test_mixed_dtypes_give_numpy_dtypes(dtypes):
    p = prog(dtypes, [("mul", "i0", "i1"), ("add", "s0", "i0"), ("sub", "s1", "i1")], ["s2", "s0"])
    xs = [ts.tensor(d, (None,)) for d in dtypes]
    a = np.arange(1, 5).astype(dtypes[0])
    b = (np.arange(4) % 2 == 0).astype(dtypes[1])
    got = run(xs, list(Composite(p)(*xs)), a, b)
    with np.errstate(all="ignore"):
        want = [np.subtract(np.add(np.multiply(a, b), a), b), np.multiply(a, b)]
    assert got[0].dtype == want[0].dtype and got[1].dtype == want[1].dtype
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_integer_division_modulo_and_nan_inf_follow_numpy():
    p = prog(("int64", "int64", "float64"), [
        ("floor_divide", "i0", "i1"), ("mod", "i0", "i1"), ("log", "i2"),
        ("true_divide", "i2", 0.0), ("maximum", "s2", "s3")], ["s0", "s1", "s4"])
    xs = [ts.lvector("a"), ts.lvector("b"), ts.dvector("c")]
    a, b = np.array([7, -7, 7, -7, 5]), np.array([2, 2, -2, 0, 0])
    c = np.array([0.0, -1.0, np.inf, np.nan, 2.0])
    got = run(xs, list(Composite(p)(*xs)), a, b, c)
    with np.errstate(all="ignore"):
        want = [a // b, a % b, np.maximum(np.log(c), c / 0.0)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_an_output_that_is_an_input_is_a_copy():
    p = prog(("float64",), [("exp", "i0")], ["i0", "s0", "s0"])
    x = np.arange(3.0)
    node = Composite(p).make_node(ts.dvector("x"))
    a, e1, e2 = node.op.perform(node, [x])
    np.testing.assert_array_equal(a, x)
    assert not np.shares_memory(a, x) and not np.shares_memory(e1, e2)


def test_program_of_a_composite_is_its_program():
    x, y = ts.dvector("x"), ts.dvector("y")
    assert program_of(Composite(W1)(x, y).owner) is W1
    step = program_of((x + y).owner)
    assert step.steps == (Step("add", (("in", 0), ("in", 1)), "float64"),)


def test_infer_shape_matches_run_time():
    x, y = ts.dmatrix("x"), ts.dvector("y")
    outs = Composite(TWO)(x, y)
    node = outs[0].owner
    in_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs]
    shapes = node.op.infer_shape(node, in_shapes)
    for a, b in [((3, 1), (4,)), ((3, 4), (1,)), ((1, 1), (5,))]:
        got = run([x, y], [d for s in shapes for d in s], np.ones(a), np.ones(b))
        assert tuple(int(g) for g in got[:2]) == np.broadcast_shapes(a, b)
        assert tuple(int(g) for g in got[2:]) == a  # exp(x) + x reads only x


def test_equal_programs_merge():
    x, y = ts.dvector("x"), ts.dvector("y")
    a, b = Composite(W1)(x, y), Composite(prog(*_w1_args()))(x, y)
    assert a.owner.op == b.owner.op and hash(a.owner.op) == hash(b.owner.op)
    f = ts.function([x, y], [a, b], mode="FAST_COMPILE")
    assert sum(isinstance(n.op, Composite) for n in f.graph.apply_nodes()) == 1


def _w1_args():
    return (("float64", "float64"), [
        ("mul", "i0", "i1"), ("add", "s0", 1.5), ("sigmoid", "s1"), ("tanh", "i0"),
        ("mul", "s2", "s3"), ("mul", "i0", "i0"), ("neg", "s5"), ("exp", "s6"),
        ("add", "s4", "s7")], ["s8"])


# -- gradient -------------------------------------------------------------------------------------

def test_gradient_reuses_the_outputs_instead_of_recomputing_them():
    """d exp(x)/dx is exp(x) itself: the gradient graph reads the Composite's output and
    builds no Elemwise exp of its own."""
    p = prog(("float64", "float64"), [("exp", "i0"), ("mul", "s0", "i1")], ["s0", "s1"])
    x, y = ts.dvector("x"), ts.dvector("y")
    e, m = Composite(p)(x, y)
    (g,) = ts.grad(ts.sum(e) + ts.sum(m), [x])
    nodes = applies_between([x, y], [g])
    assert not any(isinstance(n.op, Elemwise) and n.op.scalar_op.name == "exp" for n in nodes)
    a, b = _u(4), _u(4, seed=1)
    np.testing.assert_allclose(run([x, y], g, a, b), np.exp(a) * (1 + b), rtol=1e-14)


def test_integer_inputs_get_no_gradient():
    p = prog(("float64", "int64"), [("mul", "i0", "i1")], ["s0"])
    x, n = ts.dvector("x"), ts.lvector("n")
    gx, gn = ts.grad(ts.sum(Composite(p)(x, n)), [x, n])
    got = run([x, n], [gx, gn], _u(3), np.array([1, 2, 3]))
    np.testing.assert_array_equal(got[0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(got[1], [0, 0, 0])


def test_rop_through_the_double_lop_matches_finite_differences():
    x, y, v = ts.dvector("x"), ts.dvector("y"), ts.dvector("v")
    f = ts.function([x, y, v], ts.Rop(Composite(W1)(x, y), x, v), mode="NONE")
    a, b, d = _u(4), _u(4, seed=1), _u(4, seed=2)
    eps = 1e-6
    fd = (w1(a + eps * d, b) - w1(a - eps * d, b)) / (2 * eps)
    np.testing.assert_allclose(f(a, b, d), fd, rtol=1e-7, atol=1e-9)


# -- printing ---------------------------------------------------------------------------------

def test_str_is_the_formula():
    assert str(Composite(W1)) == "Composite{sigmoid(i0 * i1 + 1.5) * tanh(i0) + exp(-(i0 * i0))}"
    assert str(Composite(TWO)) == "Composite{exp(i0) * i1, exp(i0) + i0}"
    assert str(InplaceComposite(TWO, {1: 0})) == "Composite{exp(i0) * i1, exp(i0) + i0; inplace:1<-i0}"


_PY = {"sin": np.sin, "exp": np.exp, "tanh": np.tanh}
_INFIX = ["add", "sub", "mul", "true_divide", "power", "lt", "eq", "neg"]


@st.composite
def formulas(draw):
    """Random programs over infix rows (and a few calls) of two positive float inputs."""
    steps, n = [], 2
    for k in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(_INFIX + list(_PY)))
        pool = [f"i{i}" for i in range(n)] + [f"s{j}" for j in range(k)] + [2.0, -0.5]
        args = [draw(st.sampled_from(pool)) for _ in range(S.TABLE[op].nin)]
        if not any(isinstance(a, str) for a in args):  # Python would compute it, not numpy
            args[0] = "i0"
        steps.append((op, *args))
    return steps


@given(formulas())
def test_the_printed_formula_computes_what_the_program_does(steps):
    """Evaluating the printed text as Python on numpy arrays gives the program's values,
    so the parentheses follow Python's precedence (`-x ** 2`, `a - (b - c)`, `(a < b) == c`);
    and `evaluate`, which writes steps into dead temporaries, agrees with plain numpy also
    where a row broadcasts, and leaves its inputs alone."""
    try:
        p = prog(("float64", "float64"), steps, [f"s{len(steps) - 1}"])
    except TypeError:  # a row with no loop for booleans (-(a < b))
        assume(False)
    a, b = np.array([0.5, 1.5, 2.5]), np.array([[1.25, 0.75, 2.0], [0.5, 3.0, 1.0]])
    text = p.render(limit=10 ** 6)
    with np.errstate(all="ignore"):
        want = eval(text, {"__builtins__": {}, **_PY}, {"i0": a, "i1": b})
        got = p.evaluate([a, b])[0]
    np.testing.assert_allclose(got, np.asarray(want, dtype=got.dtype), rtol=1e-12, equal_nan=True)
    assert got.shape == np.shape(want)
    np.testing.assert_array_equal(a, [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(b, [[1.25, 0.75, 2.0], [0.5, 3.0, 1.0]])


def test_long_formulas_are_cut():
    steps = [("mul", "i0", "i0")] + [("mul", f"s{k}", f"s{k}") for k in range(30)]
    text = str(Composite(prog(("float64",), steps, ["s30"])))
    assert len(text) < 300 and "…" in text


# -- errors -------------------------------------------------------------------------------------

def test_wrong_inputs_are_named():
    x = ts.dvector("x")
    with pytest.raises(TypeError, match="takes 2 inputs, got 1"):
        Composite(W1)(x)
    with pytest.raises(TypeError, match="input 1 must have dtype float64, got y"):
        Composite(W1)(x, ts.fvector("y"))
    with pytest.raises(ShapeError, match="cannot be broadcast together in step 0 \\(mul\\)"):
        Composite(W1)(ts.tensor("float64", (3,)), ts.tensor("float64", (4,)))


@pytest.mark.parametrize("program,message", [
    (Program(("float64",), (Step("nope", (("in", 0),), "float64"),), (("step", 0),)),
     "'nope' is not a row"),
    (Program(("float64",), (Step("add", (("in", 0),), "float64"),), (("step", 0),)),
     "add takes 2 arguments, got 1"),
    (Program(("int8",), (Step("exp", (("in", 0),), "float64"),), (("step", 0),)),
     "exp of int8 gives float16, but the step says float64"),
    (Program(("float64",), (Step("exp", (("step", 0),), "float64"),), (("step", 0),)),
     r"step 0 \(exp\): \('step', 0\) is not a reference"),
    (Program(("float64",), (Step("exp", (("in", 1),), "float64"),), (("step", 0),)),
     r"\('in', 1\) is not a reference"),
    (Program(("float64",), (), ()), "at least one output"),
    (Program(("f8",), (), (("in", 0),)), "'f8' is not a dtype name"),
])
def test_malformed_programs_are_rejected(program, message):
    with pytest.raises((TypeError, ValueError), match=message):
        Composite(program)


# -- InplaceComposite ---------------------------------------------------------------------------

def test_inplace_writes_into_the_buffers_it_names():
    x, y = _u(2, 3), _u(2, 3, seed=5)
    want = [np.exp(x) * y, np.exp(x) + x]
    node = InplaceComposite(TWO, {0: 1, 1: 0}).make_node(ts.dmatrix(), ts.dmatrix())
    a, b = node.op.perform(node, [x, y])
    assert a is y and b is x
    np.testing.assert_allclose(a, want[0], rtol=1e-15)
    np.testing.assert_allclose(b, want[1], rtol=1e-15)
    assert node.op.destroy_map == {0: [1], 1: [0]}


def test_inplace_leaves_read_only_buffers_alone():
    x = _u(3)
    x.setflags(write=False)
    node = InplaceComposite(TWO, {0: 0}).make_node(ts.dvector(), ts.dvector())
    a, _ = node.op.perform(node, [x, np.ones(3)])
    assert a is not x
    np.testing.assert_allclose(a, np.exp(x))


@pytest.mark.parametrize("pattern,inputs,error,message", [
    ({0: 0}, (ts.tensor("float64", (1,)), ts.tensor("float64", (4,))), ShapeError, "is broadcast"),
    ({0: 0}, (ts.fvector(), ts.fvector()), TypeError, "input 0 must have dtype float64"),
])
def test_inplace_make_node_checks_the_buffer(pattern, inputs, error, message):
    with pytest.raises(error, match=message):
        InplaceComposite(TWO, pattern).make_node(*inputs)


def test_inplace_pattern_must_be_sound():
    p = prog(("float64", "float64"), [("exp", "i0")], ["s0"])
    with pytest.raises(ValueError, match="does not read input 1"):
        InplaceComposite(p, {0: 1})
    with pytest.raises(ValueError, match="distinct inputs"):
        InplaceComposite(TWO, {0: 0, 1: 0})
    p8 = prog(("int8", "float16"), [("add", "i0", "i1")], ["s0"])
    with pytest.raises(TypeError, match="cannot write output 0 \\(float16\\) into input 0"):
        InplaceComposite(p8, {0: 0}).make_node(ts.tensor("int8", (None,)), ts.tensor("float16", (None,)))


def test_inplace_refuses_a_result_of_another_shape_at_run_time():
    node = InplaceComposite(TWO, {0: 0}).make_node(ts.dmatrix(), ts.dmatrix())
    with pytest.raises(ShapeError, match="cannot hold the output"):
        node.op.perform(node, [np.ones((1, 3)), np.ones((2, 3))])


# -- CompositeReduce ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind,axis,keepdims,dtype", [
    ("sum", (0, 1), False, None), ("sum", (1,), True, None), ("prod", (0,), False, "float32"),
    ("max", (0,), False, None), ("min", (1,), True, None), ("sum", (), False, None)])
def test_reduce_of_a_program_matches_numpy(kind, axis, keepdims, dtype):
    x, y = ts.dvector("x"), ts.dmatrix("y")
    out = CompositeReduce(W1, Reduce(kind, axis, keepdims, dtype))(x, y)
    a, b = _u(3), _u(2, 3, seed=1)
    with np.errstate(all="ignore"):
        want = np.asarray(getattr(np, kind)(w1(a, b), axis=axis, keepdims=keepdims,
                                            **({"dtype": dtype} if dtype else {})))
    got = run([x, y], out, a, b)
    assert got.dtype == want.dtype and got.shape == want.shape and out.dtype == want.dtype.name
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype else 1e-14)


def test_reduce_of_booleans_and_integers_keeps_numpy_dtypes():
    p = prog(("int8", "int8"), [("mul", "i0", "i1")], ["s0"])
    q = prog(("float64",), [("gt", "i0", 0.0)], ["s0"])
    a, b, c = ts.tensor("int8", (None,)), ts.tensor("int8", (None,)), ts.dvector()
    s, anyp = CompositeReduce(p, Reduce("sum", (0,)))(a, b), CompositeReduce(q, Reduce("any", (0,)))(c)
    av, bv = np.array([100, 100, -3], "int8"), np.array([3, 2, 1], "int8")
    got = run([a, b, c], [s, anyp], av, bv, np.array([-1.0, 0.5]))
    assert got[0].dtype == np.sum(av * bv).dtype and got[0] == np.sum(av * bv)
    assert got[1].dtype == bool and got[1]


def test_reduce_infer_shape_matches_run_time():
    x, y = ts.dmatrix("x"), ts.dvector("y")
    out = CompositeReduce(W1, Reduce("sum", (0,), keepdims=True))(x, y)
    node = out.owner
    in_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in node.inputs]
    (shp,) = node.op.infer_shape(node, in_shapes)
    for a, b in [((3, 1), (4,)), ((3, 4), (1,))]:
        got = run([x, y], list(shp), np.ones(a), np.ones(b))
        assert tuple(int(g) for g in got) == (1, np.broadcast_shapes(a, b)[1])


def test_a_reduction_is_not_elementwise():
    node = CompositeReduce(W1, Reduce("sum", (0,))).make_node(ts.dvector(), ts.dvector())
    with pytest.raises(TypeError, match="not an elementwise Op"):
        program_of(node)
    assert str(node.op) == ("Reduce{sum, (0,), False, None}"
                            "{sigmoid(i0 * i1 + 1.5) * tanh(i0) + exp(-(i0 * i0))}")


def test_reduce_errors():
    with pytest.raises(ValueError, match="has one output, got 2"):
        CompositeReduce(TWO, Reduce("sum", (0,)))
    with pytest.raises(TypeError, match="takes a Reduce Op"):
        CompositeReduce(W1, Composite(W1))
    with pytest.raises(ShapeError, match="axes \\(1,\\) are invalid for a 1-d tensor"):
        CompositeReduce(W1, Reduce("sum", (1,)))(ts.dvector(), ts.dvector())
