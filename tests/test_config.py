"""Configuration: defaults, validated attributes, `change`, TRACESYM_FLAGS and the config file,
and what floatX does."""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tracesym as ts
from tracesym.config import Config, load
from tracesym.errors import ConfigError, UnknownFlagError


def test_defaults():
    c = Config()
    assert c.floatX == "float64"
    assert c.compute_test_value == "off"
    assert c.mode == "FAST_RUN"
    assert c.linker == "c"
    assert c.device == "cpu"
    assert c.compiledir.endswith("tracesym")


def test_set_with_validation():
    c = Config()
    c.floatX = "float32"
    assert c.floatX == "float32"
    with pytest.raises(ConfigError, match=r"config flag floatX: accepted values are float64, "
                                          r"float32, float16; got 'float8'"):
        c.floatX = "float8"
    assert c.floatX == "float32"  # unchanged
    with pytest.raises(ConfigError, match="accepted values are off, ignore, warn, raise"):
        c.compute_test_value = True
    c.compiledir = "~/somewhere"
    assert c.compiledir.startswith("/") and c.compiledir.endswith("somewhere")


def test_unknown_flag_lists_the_known_ones():
    c = Config()
    with pytest.raises(UnknownFlagError, match=r"unknown config flag 'floatx'; known flags: "
                                               r"compiledir, compute_test_value, device, floatX, "
                                               r"linker, mode"):
        c.floatx = "float32"
    with pytest.raises(ConfigError, match="unknown config flag 'nope'"):
        c.nope
    assert getattr(c, "nope", "default") == "default"  # also an AttributeError
    assert not hasattr(c, "nope")
    with pytest.raises(ConfigError, match="unknown config flag 'bad'"):
        Config({"bad": 1})


def test_change_restores():
    c = Config()
    with c.change(floatX="float16", mode="FAST_COMPILE") as inside:
        assert inside is c and c.floatX == "float16" and c.mode == "FAST_COMPILE"
    assert c.floatX == "float64" and c.mode == "FAST_RUN"
    with pytest.raises(RuntimeError):
        with c.change(floatX="float32"):
            raise RuntimeError
    assert c.floatX == "float64"
    with pytest.raises(ConfigError):
        with c.change(floatX="float32", mode="SLOW"):
            pass
    assert c.floatX == "float64"  # a partly applied change is rolled back


def test_snapshot_is_independent():
    c = Config()
    snap = c.snapshot()
    c.floatX = "float32"
    assert snap.floatX == "float64"
    assert snap.key() != c.key() and Config().key() == snap.key()
    assert "floatX='float64'" in repr(snap)
    assert copy.deepcopy(c).floatX == "float32"


def test_tracesym_flags(tmp_path):
    env = {"TRACESYMRC": str(tmp_path / "none"), "TRACESYM_FLAGS": "floatX=float32, mode = FAST_COMPILE,"}
    with pytest.warns(UserWarning, match="not a file"):
        c = load(environ=env)
    assert c.floatX == "float32" and c.mode == "FAST_COMPILE"


def test_tracesym_flags_errors():
    with pytest.raises(UnknownFlagError, match="TRACESYM_FLAGS: unknown config flag 'flotX'"):
        load(environ={"TRACESYM_FLAGS": "flotX=float32"})
    with pytest.raises(ConfigError, match="TRACESYM_FLAGS: expected name=value, got 'float32'"):
        load(environ={"TRACESYM_FLAGS": "float32"})
    with pytest.raises(ConfigError, match="TRACESYM_FLAGS: config flag floatX: accepted values"):
        load(environ={"TRACESYM_FLAGS": "floatX=double"})


def test_config_file_and_environment_override(tmp_path):
    rc = tmp_path / "tracesymrc"
    rc.write_text("[global]\nfloatX = float32\ncompute_test_value = warn\n")
    c = load(environ={"TRACESYMRC": str(rc)})
    assert c.floatX == "float32" and c.compute_test_value == "warn"
    c = load(environ={"TRACESYMRC": str(rc), "TRACESYM_FLAGS": "floatX=float16"})
    assert c.floatX == "float16" and c.compute_test_value == "warn"


def test_default_config_file_in_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".tracesymrc").write_text("[global]\nmode = NONE\n")
    assert load(environ={}).mode == "NONE"


@pytest.mark.parametrize("text,msg", [
    ("[global]\nfloatx = float32\n", r"\[global\]: unknown config flag 'floatx'; known flags"),
    ("[global]\nfloatX = float8\n", "config flag floatX: accepted values"),
    ("[other]\nfloatX = float32\n", r"unknown section \[other\]; put flags under \[global\]"),
    ("floatX = float32\n", "cannot parse the config file"),
])
def test_config_file_errors_name_the_file(tmp_path, text, msg):
    rc = tmp_path / "rc"
    rc.write_text(text)
    with pytest.raises(ConfigError, match=msg) as info:
        load(environ={"TRACESYMRC": str(rc)})
    assert str(rc) in str(info.value)


def test_global_config_is_the_loaded_one():
    assert isinstance(ts.config, Config) and ts.config is sys.modules["tracesym.config"].config


def test_floatx_sets_placeholders_and_python_float_constants():
    with ts.config.change(floatX="float32"):
        assert ts.matrix("x").dtype == "float32"
        assert ts.vector().dtype == "float32"
        assert ts.tensor(shape=(None,)).dtype == "float32"
        assert ts.constant(1.5).dtype == "float32"
        x = ts.matrix("x")
        f = ts.function([x], x * 2.5)
        out = f(np.ones((1, 1), np.float32))
        assert out.dtype == np.float32 and out[0, 0] == 2.5
        assert ts.constant([1.5]).dtype == "float64"  # only lone floats follow floatX
        assert ts.dmatrix("d").dtype == "float64"  # explicit types do not
    assert ts.matrix("x").dtype == "float64"
    assert ts.constant(1.5).dtype == "float64"


def test_a_compiled_function_keeps_the_config_it_was_made_with():
    x = ts.dvector("x")
    with ts.config.change(mode="FAST_COMPILE"):
        f = ts.function([x], x + 1)
    assert f.mode.optimizer == "fast_compile" and ts.config.mode == "FAST_RUN"


NO_COMPILER = """
import json, warnings
import numpy as np
import tracesym as ts
x = ts.dvector("x")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    f = ts.function([x], ts.exp(x))
    g = ts.function([x], x * 2)
print(json.dumps({"linker": ts.config.linker, "warnings": [str(w.message) for w in caught],
                  "out": f(np.zeros(2)).tolist() + g(np.ones(2)).tolist()}))
"""


def test_default_linker_without_a_compiler_is_numpy_after_one_warning(tmp_path):
    """A new process with no linker flag and no C compiler (CC names none) runs its
    functions on the numpy linker, and says so once."""
    rc = tmp_path / "rc"
    rc.write_text("")
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"), TRACESYMRC=str(rc),
               TRACESYM_FLAGS=f"compiledir={tmp_path / 'kernels'}")
    r = subprocess.run([sys.executable, "-c", NO_COMPILER], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["linker"] == "c"
    assert len(got["warnings"]) == 1, got["warnings"]
    assert "no C compiler" in got["warnings"][0] and "numpy linker" in got["warnings"][0]
    assert got["out"] == [1.0, 1.0, 2.0, 2.0]
