"""`debugprint` and `pprint`: golden text for trees, shared subtrees, compiled functions with
updates, options, and formulas."""

import io

import numpy as np
import pytest

import tracesym as ts
from tracesym.trace.graph import Apply
from tracesym.trace.printing import debugprint, pprint
from tracesym.trace.types import TensorType


def _example():
    x = ts.fmatrix("x")
    h = ts.exp(x * 2.0)
    h.name = "h"
    out = h + h * x
    return x, h, out


def test_debugprint_golden_with_a_shared_subtree():
    _, _, out = _example()
    assert debugprint(out, file="str") == (
        "Elemwise{add} id A float32[?,?]\n"
        " ├─ Elemwise{exp} id B float32[?,?] 'h'\n"
        " │   └─ Elemwise{mul} id C float32[?,?]\n"
        " │       ├─ x id D float32[?,?]\n"
        " │       └─ 2.0 id E float32[]\n"
        " └─ Elemwise{mul} id F float32[?,?]\n"
        "     ├─ ··· id B\n"
        "     └─ ··· id D\n")


def test_debugprint_without_ids_repeats_subtrees_and_without_types():
    _, _, out = _example()
    assert debugprint(out, file="str", ids=False, print_type=False) == (
        "Elemwise{add}\n"
        " ├─ Elemwise{exp} 'h'\n"
        " │   └─ Elemwise{mul}\n"
        " │       ├─ x\n"
        " │       └─ 2.0\n"
        " └─ Elemwise{mul}\n"
        "     ├─ Elemwise{exp} 'h'\n"
        "     │   └─ Elemwise{mul}\n"
        "     │       ├─ x\n"
        "     │       └─ 2.0\n"
        "     └─ x\n")


def test_debugprint_a_list_shares_ids_across_roots():
    x, h, out = _example()
    text = debugprint([h, out], file="str", print_type=False)
    assert text == (
        "Elemwise{exp} id A 'h'\n"
        " └─ Elemwise{mul} id B\n"
        "     ├─ x id C\n"
        "     └─ 2.0 id D\n"
        "Elemwise{add} id E\n"
        " ├─ ··· id A\n"
        " └─ Elemwise{mul} id F\n"
        "     ├─ ··· id A\n"
        "     └─ ··· id C\n")


def test_debugprint_function_with_updates():
    x = ts.fvector("x")
    W = ts.shared(np.zeros(3, "float32"), name="W")
    n = ts.shared(np.array(0), name="n")
    y = x * W
    f = ts.function([x], y, updates=[(W, W + y), (n, n + 1)], mode="NONE")
    assert debugprint(f, file="str") == (
        "Elemwise{mul} id A float32[?]\n"
        " ├─ x id B float32[?]\n"
        " └─ W id C float32[?] shared\n"
        "Update W <- Elemwise{add} id D float32[?]\n"
        " ├─ ··· id C\n"
        " └─ ··· id A\n"
        "Update n <- Elemwise{add} id E int64[]\n"
        " ├─ n id F int64[] shared\n"
        " └─ 1 id G int64[]\n")
    # the Graph itself knows which outputs are updates
    assert debugprint(f.graph, file="str") == debugprint(f, file="str")


def test_debugprint_compiled_function_uses_its_graph():
    n = ts.shared(np.array(0.0), name="n")

    @ts.compile(mode="NONE")
    def step(x: ts.dvector):
        ts.update(n, n + x.sum())
        return ts.exp(x)

    assert debugprint(step, file="str", ids=False) == (
        "Elemwise{exp} float64[?]\n"
        " └─ x float64[?]\n"
        f"Update n <- Elemwise{{add}} float64[]\n"
        " ├─ n float64[] shared\n"
        f" └─ {step.graph.outputs[1].owner.inputs[1].owner.op} float64[]\n"
        "     └─ x float64[?]\n")


def test_debugprint_leaves():
    c = ts.constant(np.arange(10.0))
    unnamed = ts.dvector()
    text = debugprint(unnamed + c, file="str")
    assert text == ("Elemwise{add} id A float64[10]\n"
                    " ├─ <float64[?]> id B float64[?]\n"
                    " └─ Constant<float64[10]> id C float64[10]\n")
    assert debugprint(ts.constant(np.array([1, 2]), name="idx") + 0, file="str").splitlines()[1] == \
        " ├─ idx id B int64[2]"


def test_debugprint_multi_output_node():
    class Split:  # a duck-typed two-output op: printing only needs str(op)
        def __str__(self):
            return "Split"

    x = ts.dvector("x")
    node = Apply(Split(), [x], [TensorType("float64", (None,)).make_variable() for _ in range(2)])
    lo, hi = node.outputs
    assert debugprint([lo, hi, hi + lo], file="str", print_type=False) == (
        "Split.0 id A\n"
        " └─ x id B\n"
        "··· id A.1\n"
        "Elemwise{add} id C\n"
        " ├─ ··· id A.1\n"
        " └─ ··· id A.0\n")
    assert pprint(hi + lo) == "(Split(x).out1 + Split(x).out0)"


def test_debugprint_to_a_stream_and_stdout(capsys):
    _, h, _ = _example()
    buf = io.StringIO()
    assert debugprint(h, file=buf) is buf
    assert buf.getvalue() == debugprint(h, file="str")
    assert debugprint(h) is None
    assert capsys.readouterr().out == buf.getvalue()
    with pytest.raises(ValueError, match="'str'"):
        debugprint(h, file="out.txt")
    with pytest.raises(TypeError, match="got int"):
        debugprint(3, file="str")


def test_debugprint_deep_graph_does_not_recurse():
    x = ts.dvector("x")
    y = x
    for _ in range(1500):  # deeper than the recursion limit
        y = y + 1.0
    lines = debugprint(y, file="str", print_type=False).splitlines()
    assert len(lines) == 3001 and lines[-1].strip().startswith("└─ 1.0")
    assert pprint(y).startswith("(" * 1500 + "x + 1.0)")


def test_debugprint_is_deterministic():
    def build():
        x = ts.dmatrix("x")
        return ts.exp(x).sum(axis=1) * x.sum(axis=1)

    assert debugprint(build(), file="str") == debugprint(build(), file="str")


def test_pprint_infix_and_calls():
    x, h, out = _example()
    assert pprint(ts.exp(x * 2.0)) == "exp((x * 2.0))"
    assert pprint(out) == "(exp((x * 2.0)) + (exp((x * 2.0)) * x))"
    i = ts.lvector("i")
    assert pprint(-x) == "-x"
    assert pprint(-(-x)) == "-(-x)"
    assert pprint(~i) == "~i"
    assert pprint(ts.where(x > 0, x, -x)) == "where((x > 0.0), x, -x)"
    assert pprint((i % 3) // 2 - i ** 2) == "(((i % 3) // 2) - (i ** 2))"
    assert pprint(x.astype("float64")) == "cast_float64(x)"
    s = x.sum(axis=0)
    assert pprint(s) == f"{s.owner.op}(x)"
    assert pprint([x + 1, i]) == "(x + 1.0)\ni"


def test_pprint_returns_and_optionally_writes(capsys):
    x = ts.dvector("x")
    buf = io.StringIO()
    assert pprint(x * 2, file=buf) == "(x * 2.0)"
    assert buf.getvalue() == "(x * 2.0)\n"
    assert capsys.readouterr().out == ""
    with pytest.raises(TypeError, match="expected a symbolic variable"):
        pprint(3)


def test_exported_at_top_level():
    assert ts.debugprint is debugprint and ts.pprint is pprint


class _Loop:
    """A duck-typed Op holding an inner graph (`inner_inputs`, `inner_outputs`: the protocol
    scan follows); printing needs only that and str(op)."""

    def __init__(self, inner_inputs, inner_outputs, name="Loop"):
        self.inner_inputs, self.inner_outputs, self.name = inner_inputs, inner_outputs, name

    def __str__(self):
        return self.name


def _loop(op, inputs, n_out=1):
    return Apply(op, inputs, [TensorType("float64", (None,)).make_variable() for _ in range(n_out)]).outputs


def test_debugprint_prints_an_inner_graph_under_its_node():
    x, x_t = ts.dvector("x"), ts.dvector("x_t")
    [y] = _loop(_Loop([x_t], [ts.exp(x_t) * 2.0]), [x, ts.constant(3)])
    assert debugprint(y + 1.0, file="str") == (
        "Elemwise{add} id A float64[?]\n"
        " ├─ Loop id B float64[?]\n"
        " │   ├─ x id C float64[?]\n"
        " │   ├─ 3 id D int64[]\n"
        " │   └─ inner graph:\n"
        " │      Elemwise{mul} id E float64[?]\n"
        " │       ├─ Elemwise{exp} id F float64[?]\n"
        " │       │   └─ *0 x_t id G float64[?]\n"
        " │       └─ 2.0 id H float64[]\n"
        " └─ 1.0 id I float64[]\n")


def test_debugprint_nested_inner_graphs_and_multiple_outputs():
    x, x_t, h, unused = ts.dvector("x"), ts.dvector("x_t"), ts.dvector("h"), ts.dvector("u")
    [inner] = _loop(_Loop([h], [ts.tanh(h)], "InnerLoop"), [x_t])
    a, b = _loop(_Loop([unused, x_t], [ts.exp(x_t), inner]), [x, x], n_out=2)
    assert debugprint([a, b], file="str", print_type=False) == (
        "Loop.0 id A\n"
        " ├─ x id B\n"
        " ├─ ··· id B\n"
        " └─ inner graph:\n"
        "    Elemwise{exp} id C\n"
        "     └─ *1 x_t id D\n"
        "    InnerLoop id E\n"
        "     ├─ ··· id D\n"
        "     └─ inner graph:\n"
        "        Elemwise{tanh} id F\n"
        "         └─ *0 h id G\n"
        "··· id A.1\n")
    # without ids every occurrence is printed in full, inner graphs included
    text = debugprint([a, b], file="str", print_type=False, ids=False)
    assert text.count("inner graph:") == 4 and text.count("*0 h") == 2
    assert text.splitlines()[11] == "Loop.1"


def test_rewritten_false_shows_the_traced_graph():
    x = ts.dvector("x")
    f = ts.function([x], ts.log(1 + x))
    assert "log1p" in ts.debugprint(f, file="str")
    traced = ts.debugprint(f, file="str", rewritten=False)
    assert "log1p" not in traced and "Elemwise{log}" in traced and "Elemwise{add}" in traced

    @ts.compile
    def g(x: ts.dvector):
        return ts.log(1 + x)

    assert ts.debugprint(g, file="str", rewritten=False) == traced
    assert "log1p" in ts.printing.to_dot(g) and "log1p" not in ts.printing.to_dot(g, rewritten=False)
