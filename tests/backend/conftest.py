import pytest


@pytest.fixture(scope="session", autouse=True)
def compiledir(tmp_path_factory):
    """Every test of the C backend compiles into one private cache for the session, so the
    user's cache is untouched and a kernel two tests share is compiled once."""
    import tracesym as ts

    path = str(tmp_path_factory.mktemp("kernels"))
    old = ts.config.compiledir
    ts.config.compiledir = path
    yield path
    ts.config.compiledir = old
