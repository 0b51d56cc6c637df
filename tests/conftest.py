import os
import pathlib

import numpy as np
import pytest
from hypothesis import settings

from tracesym.config import parse_flags

settings.register_profile("default", deadline=None, max_examples=60, derandomize=True)
settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session", autouse=True)
def compiledir(tmp_path_factory):
    """The suite compiles kernels into one private cache for the session (child processes
    too, through TRACESYM_FLAGS), so the user's cache is untouched and a kernel two tests
    share is compiled once."""
    import tracesym as ts

    path = str(tmp_path_factory.mktemp("kernels"))
    old, old_flags = ts.config.compiledir, os.environ.get("TRACESYM_FLAGS")
    ts.config.compiledir = path
    os.environ["TRACESYM_FLAGS"] = ",".join(filter(None, [old_flags, f"compiledir={path}"]))
    yield path
    ts.config.compiledir = old
    if old_flags is None:
        del os.environ["TRACESYM_FLAGS"]
    else:
        os.environ["TRACESYM_FLAGS"] = old_flags


#: the linker named in TRACESYM_FLAGS, if any: it runs every test (`linker=c` is how the whole
#: suite is checked under the C backend)
FLAGS_LINKER = parse_flags(os.environ.get("TRACESYM_FLAGS", ""), "TRACESYM_FLAGS").get("linker")
BACKEND_TESTS = pathlib.Path(__file__).parent / "backend"


@pytest.fixture(autouse=True)
def _restore_config(request):
    """Every test starts from the default flags and leaves them as it found them.  Tests
    outside tests/backend/ run on the numpy linker unless TRACESYM_FLAGS names one: compiling
    their thousands of small graphs to C with an empty kernel cache makes the suite several
    times longer.  A test that asks for the C linker (its mode, or
    `config.change(linker="c")`) still gets it."""
    import tracesym as ts

    pin = {}
    if FLAGS_LINKER is None and BACKEND_TESTS not in request.path.parents:
        pin["linker"] = "numpy"
    with ts.config.change(**pin):
        yield
