"""The tutorials run end to end on a slice of their data, and their data loaders read the file
formats they document."""

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
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", TUTORIALS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def logreg():
    return _load("logistic_regression")


@pytest.fixture(scope="module")
def digits(logreg):
    pytest.importorskip("sklearn")
    return logreg.load_digits_split(seed=0)


def test_digits_split_is_deterministic_scaled_and_disjoint(logreg, digits):
    (tx, ty), (vx, _), (sx, _) = digits
    assert tx.shape == (1199, 64) and vx.shape == sx.shape == (299, 64)
    assert tx.dtype == np.float32 and ty.dtype == np.int64
    assert 0.0 <= tx.min() and tx.max() <= 1.0
    again = logreg.load_digits_split(seed=0)
    np.testing.assert_array_equal(again[0][0], tx)
    other = logreg.load_digits_split(seed=1)
    assert not np.array_equal(other[0][1], ty)
    rows = {r.tobytes() for r in tx}  # no test image is also a training image
    assert sum(r.tobytes() in rows for r in sx) < 5  # (the digits set has a few duplicates)


def test_logistic_regression_learns_and_saves_best_parameters(logreg, digits, tmp_path):
    (tx, ty), valid, test = digits
    data = ((tx[:600], ty[:600]), valid, test)  # a slice keeps this quick
    out = tmp_path / "best"  # no .npz suffix: the file must be written under this very name
    summary = logreg.sgd_optimization(data, epochs=4, batch_size=20, out=str(out), verbose=False)
    costs = summary["costs"]
    assert len(costs) == 4 and costs[-1] < costs[0] < np.log(10) + 1e-3
    assert summary["best_valid_error"] < 0.2 and summary["test_error"] < 0.2  # chance: 0.9
    with np.load(out) as f:
        W, b = f["W"], f["b"]
    assert W.shape == (64, 10) and b.shape == (10,)
    assert W.dtype == b.dtype == np.float32 and np.abs(W).sum() > 0
    # the saved parameters are the ones that had the reported validation error
    pred = np.argmax(valid[0] @ W + b, axis=1)
    assert np.mean(pred != valid[1]) == pytest.approx(summary["best_valid_error"], abs=1e-6)


def test_model_predict_and_errors_agree_with_numpy(logreg):
    rng = np.random.default_rng(0)
    model = logreg.LogisticRegression(5, 3)
    x = rng.random((40, 5), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    for _ in range(3):
        model.train(x, y, 0.5)
    W, b = model.W.get_value(), model.b.get_value()
    pred = model.predict(x)
    np.testing.assert_array_equal(pred, np.argmax(x @ W + b, axis=1))
    assert float(model.errors(x, y)) == pytest.approx(np.mean(pred != y))


def test_early_stopping_ends_when_patience_runs_out(logreg, digits, tmp_path):
    (tx, ty), valid, test = digits
    data = ((tx[:200], ty[:200]), valid, test)  # 10 minibatches per epoch
    summary = logreg.sgd_optimization(data, epochs=1000, patience=40, patience_increase=2,
                                      out=str(tmp_path / "p.npz"), verbose=False)
    assert summary["best_epoch"] < summary["epochs"] < 1000
    # at most patience_increase times the minibatches seen at the last significant improvement
    assert summary["epochs"] <= max(4, 2 * summary["best_epoch"]) + 1


def _fake_split(rng, n, dtype=np.float32):
    if dtype == np.uint8:
        x = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    else:
        x = rng.random((n, 784), dtype=np.float32)
    return x, rng.integers(0, 10, n)


def test_mnist_loader_reads_pickle_gz(logreg, tmp_path):
    rng = np.random.default_rng(0)
    sets = (_fake_split(rng, 30), _fake_split(rng, 10), _fake_split(rng, 10))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(sets, f, protocol=2)
    loaded = logreg.load_mnist(path)
    assert len(loaded) == 3
    for (x, y), (x0, y0) in zip(loaded, sets):
        assert x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)


def test_mnist_loader_reads_npz_and_scales_bytes(logreg, tmp_path):
    rng = np.random.default_rng(1)
    sets = dict(zip(("train", "valid", "test"),
                    (_fake_split(rng, 30, np.uint8), _fake_split(rng, 10, np.uint8),
                     _fake_split(rng, 10, np.uint8))))
    path = tmp_path / "mnist.npz"
    np.savez(path, **{f"{k}_{s}": v for s, (x, y) in sets.items() for k, v in (("x", x), ("y", y))})
    loaded = logreg.load_mnist(path)
    for (x, y), (x0, y0) in zip(loaded, sets.values()):
        assert x.shape == (len(x0), 784) and x.dtype == np.float32
        np.testing.assert_allclose(x, x0.reshape(len(x0), -1) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(y, y0)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=sets["train"][0])
    with pytest.raises(KeyError, match="y_train"):
        logreg.load_mnist(bad)


def test_command_line_trains_on_an_npz_file(logreg, tmp_path):
    rng = np.random.default_rng(2)
    splits = {s: _fake_split(rng, n) for s, n in (("train", 40), ("valid", 20), ("test", 20))}
    data = tmp_path / "tiny.npz"
    np.savez(data, **{f"{k}_{s}": v for s, (x, y) in splits.items() for k, v in (("x", x), ("y", y))})
    out = tmp_path / "p.npz"
    r = subprocess.run([sys.executable, str(TUTORIALS / "logistic_regression.py"), "--data", str(data),
                        "--epochs", "2", "--batch-size", "10", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "data: train 40x784, valid 20x784, test 20x784"
    assert [ln.split()[:2] for ln in lines[1:3]] == [["epoch", "1"], ["epoch", "2"]]
    assert "\r" not in r.stdout  # no progress bar when stdout is not a terminal
    assert lines[-1].startswith("Optimization complete") and str(out) in lines[-1]
    with np.load(out) as f:
        assert f["W"].shape == (784, 10) and f["b"].shape == (10,)


def test_command_line_help():
    r = subprocess.run([sys.executable, str(TUTORIALS / "logistic_regression.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for option in ("--data", "--epochs", "--batch-size", "--lr", "--seed", "--out"):
        assert option in r.stdout
