"""Configuration flags: `ts.config.floatX = "float32"`, `with ts.config.change(floatX=...)`,
the `TRACESYM_FLAGS` environment variable (`floatX=float32,mode=FAST_COMPILE`) and a config
file (`~/.tracesymrc`, or the path in `TRACESYMRC`).  The environment overrides the file.

`function` takes a `snapshot()` of the flags when it compiles and passes that object down, so
no Op or backend reads the globals while it works (the values are part of any cache key).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError, UnknownFlagError


def _choice(*allowed):
    def parse(value):
        v = str(value)
        if v not in allowed:
            raise ConfigError(f"accepted values are {', '.join(allowed)}; got {value!r}")
        return v

    return parse


def _path(value):
    return os.path.abspath(os.path.expanduser(str(value)))


def _default_compiledir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tracesym")


@dataclass(frozen=True)
class Flag:
    name: str
    default: Any
    parse: Callable[[Any], Any]
    doc: str


FLAGS = {
    f.name: f
    for f in (
        Flag("floatX", "float64", _choice("float64", "float32", "float16"),
             "float dtype of new placeholders built from the bare names (`ts.matrix`) and of "
             "Python float constants that stand alone"),
        Flag("compute_test_value", "off", _choice("off", "ignore", "warn", "raise"),
             "compute each Op's test value as it is traced; 'raise' makes a missing one an error"),
        Flag("mode", "FAST_RUN", _choice("FAST_RUN", "FAST_COMPILE", "NONE"),
             "default compilation mode of `function` and `@compile`"),
        Flag("linker", "c", _choice("numpy", "c"),
             "backend that runs compiled graphs: c (generated C kernels, the default; the "
             "numpy backend, after one warning, where no C compiler exists) or numpy (the "
             "reference every Op has, and the oracle the tests compare with)"),
        Flag("device", "cpu", _choice("cpu", "cuda"), "where compiled functions run"),
        Flag("compiledir", _default_compiledir(), _path, "on-disk cache of generated kernels"),
    )
}


class Config:
    """The live flag values.  Attribute access reads and writes them, with validation."""

    def __init__(self, values: dict | None = None):
        object.__setattr__(self, "_values", {n: f.default for n, f in FLAGS.items()})
        for k, v in (values or {}).items():
            setattr(self, k, v)

    def __getattr__(self, name):
        if name.startswith("_"):  # copy/pickle probing: not a flag
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise _unknown(name) from None

    def __setattr__(self, name, value):
        if name not in FLAGS:
            raise _unknown(name)
        try:
            self._values[name] = FLAGS[name].parse(value)
        except ConfigError as e:
            raise ConfigError(f"config flag {name}: {e}") from None

    @contextlib.contextmanager
    def change(self, **flags):
        """Set flags for the duration of a `with` block, restoring them afterwards."""
        old = dict(self._values)
        try:
            for k, v in flags.items():
                setattr(self, k, v)
            yield self
        finally:
            self._values.clear()
            self._values.update(old)

    def snapshot(self) -> "Config":
        """An independent copy, handed to a compiling function so later changes do not leak
        in."""
        return Config(dict(self._values))

    def key(self) -> tuple:
        return tuple(sorted(self._values.items()))

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


def _unknown(name, where=""):
    return UnknownFlagError(f"{where}unknown config flag {name!r}; known flags: "
                            f"{', '.join(sorted(FLAGS))}")


def parse_flags(text: str, source: str) -> dict:
    """Parse `a=b,c=d` (the TRACESYM_FLAGS syntax)."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ConfigError(f"{source}: expected name=value, got {item!r}")
        k, v = (s.strip() for s in item.split("=", 1))
        if k not in FLAGS:
            raise _unknown(k, f"{source}: ")
        out[k] = v
    return out


def read_rc(path: str) -> dict:
    """Read a config file: an INI file whose `[global]` section holds `name = value` lines."""
    if not os.path.isfile(path):
        return {}
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    try:
        cp.read(path, encoding="utf-8")
    except configparser.Error as e:
        raise ConfigError(f"{path}: cannot parse the config file: {e}") from None
    out = {}
    for section in cp.sections():
        if section != "global":
            raise ConfigError(f"{path}: unknown section [{section}]; put flags under [global]")
        for k, v in cp.items(section):
            if k not in FLAGS:
                raise _unknown(k, f"{path} [{section}]: ")
            out[k] = v
    return out


def load(environ=None) -> Config:
    """The configuration at import: defaults, then the config file (`TRACESYMRC`, else
    `~/.tracesymrc`), then `TRACESYM_FLAGS`, each later source overriding the earlier."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("TRACESYMRC")
    rc = explicit or os.path.join(os.path.expanduser("~"), ".tracesymrc")
    if explicit and not os.path.isfile(explicit):
        warnings.warn(f"TRACESYMRC names {explicit}, which is not a file; it is ignored",
                      stacklevel=2)
    cfg = Config()
    for source, values in ((rc, read_rc(rc)),
                           ("TRACESYM_FLAGS", parse_flags(environ.get("TRACESYM_FLAGS", ""),
                                                          "TRACESYM_FLAGS"))):
        for k, v in values.items():
            try:
                setattr(cfg, k, v)
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
    return cfg


config = load()
