"""The tutorials run end to end on a slice of their data."""

import gzip
import importlib.util
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

TUTORIALS = pathlib.Path(__file__).resolve().parents[1] / "tutorials"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, TUTORIALS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def logreg():
    pytest.importorskip("sklearn")
    return _load("logistic_regression")


def test_logistic_regression_learns_and_saves(logreg, tmp_path):
    data = logreg.load_digits_split(seed=0)
    out = tmp_path / "best.npz"
    summary = logreg.sgd_optimization(data, epochs=4, out=str(out), verbose=False)
    assert summary["costs"][-1] < summary["costs"][0] < np.log(10) + 1e-3
    assert summary["test_error"] < 0.2  # chance is 0.9
    with np.load(out) as f:
        assert f["W"].shape == (64, 10) and f["b"].shape == (10,)
        assert f["W"].dtype == np.float32 and np.abs(f["W"]).sum() > 0


def _fake_mnist(rng, n):
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return x, y


def test_mnist_loader_reads_pickle_and_npz(logreg, tmp_path):
    rng = np.random.default_rng(0)
    sets = (_fake_mnist(rng, 30), _fake_mnist(rng, 10), _fake_mnist(rng, 10))
    pkl = tmp_path / "mnist.pkl.gz"
    with gzip.open(pkl, "wb") as f:
        pickle.dump(sets, f)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, **{f"{k}_{s}": v for s, (x, y) in zip(("train", "valid", "test"), sets)
                     for k, v in (("x", x), ("y", y))})
    for path in (pkl, npz):
        loaded = logreg.load_mnist(str(path))
        for (x, y), (x0, y0) in zip(loaded, sets):
            assert x.dtype == np.float32 and y.dtype == np.int64
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(y, y0)
    summary = logreg.sgd_optimization(logreg.load_mnist(str(npz)), epochs=2, batch_size=10,
                                      out=str(tmp_path / "m.npz"), verbose=False)
    assert (tmp_path / "m.npz").exists() and np.isfinite(summary["costs"]).all()


def test_logistic_regression_command_line(tmp_path):
    pytest.importorskip("sklearn")
    r = subprocess.run([sys.executable, str(TUTORIALS / "logistic_regression.py"), "--epochs", "2",
                        "--out", str(tmp_path / "p.npz")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "epoch   2" in r.stdout and "Optimization complete" in r.stdout
    assert (tmp_path / "p.npz").exists()
    h = subprocess.run([sys.executable, str(TUTORIALS / "logistic_regression.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert h.returncode == 0 and "--data" in h.stdout
