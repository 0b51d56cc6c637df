"""The tutorials run end to end on a slice of their data, and their data loaders read the file
formats they document."""

import gzip
import importlib.util
import math
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

import tracesym as ts

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


# -- LeNet ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lenet():
    return _load("lenet")


SMALL = dict(n_kerns=(8, 16), n_hidden=64)  # a narrow network keeps these tests quick


def test_lenet_learns_and_saves_best_parameters(lenet, digits, tmp_path):
    (tx, ty), (vx, vy), test = digits
    data = ((tx[:400], ty[:400]), (vx[:150], vy[:150]), test)
    out = tmp_path / "best"  # no .npz suffix: the file must be written under this very name
    summary = lenet.sgd_optimization(data, epochs=4, batch_size=20, lr=0.2, out=str(out),
                                     verbose=False, **SMALL)
    costs = summary["costs"]
    assert len(costs) == 4 and costs[-1] < costs[0] < np.log(10) + 0.5
    assert summary["best_valid_error"] < 0.5 and summary["test_error"] < 0.5  # chance: 0.9
    with np.load(out) as f:
        saved = {k: f[k] for k in f.files}
    assert {k: v.shape for k, v in saved.items()} == {
        "conv1.W": (8, 1, 3, 3), "conv1.b": (8,), "conv2.W": (16, 8, 3, 3), "conv2.b": (16,),
        "hidden.W": (16 * 2 * 2, 64), "hidden.b": (64,), "out.W": (64, 10), "out.b": (10,)}
    assert all(v.dtype == np.float32 for v in saved.values())
    # the saved parameters are the ones that had the reported validation error
    model = lenet.LeNet(8, 10, **SMALL)
    for p in model.params:
        p.set_value(saved[p.name])
    assert model.error_rate(vx[:150], vy[:150]) == pytest.approx(summary["best_valid_error"])


def test_lenet_layers_compute_what_they_say(lenet):
    """One conv-pool layer against numpy: a true convolution ('half' padding), 2x2 max
    pooling, the bias per map, tanh."""
    rng = np.random.default_rng(0)
    layer = lenet.ConvPoolLayer(rng, "c", 2, 3, 3, border_mode="half")
    layer.b.set_value(np.array([0.1, -0.2, 0.3], np.float32))
    x = rng.random((2, 2, 4, 6), dtype=np.float32)
    X = ts.ftensor4("x")
    got = ts.function([X], layer(X))(x)
    W, b = layer.W.get_value(), layer.b.get_value()
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((2, 3, 4, 6), np.float32)
    for i in range(4):
        for j in range(6):
            conv[:, :, i, j] = np.tensordot(xp[:, :, i:i + 3, j:j + 3], W[:, :, ::-1, ::-1],
                                            axes=([1, 2, 3], [1, 2, 3]))
    pooled = conv.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_allclose(got, np.tanh(pooled + b[:, None, None]), rtol=1e-5, atol=1e-6)


def test_lenet_draws_its_filters_and_maps(lenet, digits, tmp_path):
    pytest.importorskip("matplotlib")
    (tx, ty), (vx, vy), test = digits
    data = ((tx[:100], ty[:100]), (vx[:50], vy[:50]), test)
    summary = lenet.sgd_optimization(data, epochs=1, out=str(tmp_path / "p.npz"), verbose=False,
                                     pictures=str(tmp_path / "pic"), **SMALL)
    assert summary["images"] == [str(tmp_path / "pic_filters.png"), str(tmp_path / "pic_maps.png")]
    for path in summary["images"]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_lenet_skips_the_pictures_without_matplotlib(lenet, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    model = lenet.LeNet(8, 10, **SMALL)
    assert lenet.save_pictures(model, np.zeros(64, np.float32), str(tmp_path / "pic")) == []
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_lenet_command_line_trains_on_an_mnist_npz(tmp_path):
    rng = np.random.default_rng(3)
    splits = {s: _fake_split(rng, n) for s, n in (("train", 40), ("valid", 20), ("test", 20))}
    data = tmp_path / "tiny.npz"
    np.savez(data, **{f"{k}_{s}": v for s, (x, y) in splits.items()
                      for k, v in (("x", x), ("y", y))})
    out = tmp_path / "p.npz"
    r = subprocess.run([sys.executable, str(TUTORIALS / "lenet.py"), "--data", str(data),
                        "--epochs", "2", "--batch-size", "20", "--out", str(out),
                        "--pictures", str(tmp_path / "pic")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "data: train 40x784, valid 20x784, test 20x784"
    assert [ln.split()[:2] for ln in lines[1:3]] == [["epoch", "1"], ["epoch", "2"]]
    assert "\r" not in r.stdout  # no progress bar when stdout is not a terminal
    assert lines[-1].startswith("Optimization complete") and str(out) in lines[-1]
    with np.load(out) as f:  # the MNIST architecture: 5x5 valid filters, 28 -> 12 -> 4
        assert f["conv1.W"].shape == (20, 1, 5, 5) and f["conv2.W"].shape == (50, 20, 5, 5)
        assert f["hidden.W"].shape == (50 * 4 * 4, 500)


def test_lenet_command_line_help():
    r = subprocess.run([sys.executable, str(TUTORIALS / "lenet.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for option in ("--data", "--epochs", "--batch-size", "--lr", "--seed", "--out", "--pictures"):
        assert option in r.stdout


@pytest.mark.slow
def test_lenet_beats_logistic_regression_on_the_digits(logreg, lenet, digits, tmp_path):
    net = lenet.sgd_optimization(digits, out=str(tmp_path / "l.npz"), verbose=False)
    lin = logreg.sgd_optimization(digits, out=str(tmp_path / "r.npz"), verbose=False)
    assert net["test_error"] < lin["test_error"]


# -- character-level LSTM ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def char_lstm():
    return _load("char_lstm")


REPETITIVE = "The meaning of life is 42.\n\nThe meaning of lists is order.\n\n" * 30
TINY = dict(n_hidden=32, seq_len=40, batch_size=8, lr=0.02, sample_every=0, sample_length=20)


def test_char_lstm_pieces_cover_each_paragraph(char_lstm):
    text = "abcdefghij\n\nxy\n\nk\n\n" + "z" * 23
    pieces = char_lstm.split_pieces(text, 5)
    assert all(2 <= len(p) <= 6 for p in pieces)
    # consecutive pieces overlap by the one character that is a target, then an input
    assert "".join(p[:-1] for p in pieces) == "".join(q + "\n" for q in text.split("\n\n"))


def test_char_lstm_batches_group_by_length_and_mask_the_padding(char_lstm):
    rng = np.random.default_rng(0)
    pieces = [rng.integers(1, 9, n).astype(np.int32) for n in rng.integers(2, 30, 50)]
    batches = char_lstm.make_batches(pieces, 8, rng)
    assert sum(x.shape[1] for x, _, _ in batches) == len(pieces)
    seen, spans = [], []
    for x, y, mask in batches:
        assert x.shape == y.shape == mask.shape and mask.dtype == np.float32
        lengths = mask.sum(axis=0).astype(int)
        assert lengths.max() == x.shape[0]  # padded to the longest piece, no further
        for j, n in enumerate(lengths):
            assert np.all(mask[:n, j] == 1) and np.all(mask[n:, j] == 0)
            assert np.all(x[n:, j] == 0) and np.all(y[n:, j] == 0)
            np.testing.assert_array_equal(x[1:n, j], y[:n - 1, j])  # targets: one ahead
            seen.append(np.append(x[:n, j], y[n - 1, j]).tobytes())
        spans.append((lengths.min(), lengths.max()))
    assert sorted(seen) == sorted(p.tobytes() for p in pieces)
    spans.sort()
    assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))  # grouped by length


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _masked_cost_numpy(params, x, y, mask):
    """The tutorial's cost with a Python loop: an LSTM over the embedded characters, the
    cross-entropy of the next character, averaged over the unmasked steps."""
    Wx, Wh, b, Wy, by = (p.astype(np.float64) for p in params)
    H = Wh.shape[0]
    h = c = np.zeros((x.shape[1], H))
    total = 0.0
    for t in range(x.shape[0]):
        a = Wx[x[t]] + b + h @ Wh
        i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        z = h @ Wy + by
        logp = z - z.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        total -= (logp[np.arange(len(y[t])), y[t]] * mask[t]).sum()
    return total / mask.sum()


def test_char_lstm_cost_is_masked_cross_entropy(char_lstm):
    rng = np.random.default_rng(1)
    model = char_lstm.CharLSTM(7, n_hidden=5, seed=1)
    pieces = [rng.integers(0, 7, n).astype(np.int32) for n in (4, 9, 6)]
    (x, y, mask), = char_lstm.make_batches(pieces, 3, rng)
    params = [p.get_value() for p in model.params]
    want = _masked_cost_numpy(params, x, y, mask)
    x[mask == 0], y[mask == 0] = 6, 3  # what the padding holds must not matter
    assert float(model.train(x, y, mask)) == pytest.approx(want, rel=1e-5)
    assert all(np.any(p.get_value() != v) for p, v in zip(model.params, params))  # it stepped


def test_char_lstm_clips_the_global_gradient_norm(char_lstm):
    rng = np.random.default_rng(2)
    model = char_lstm.CharLSTM(6, n_hidden=4, seed=2, optimizer="sgd", lr=1.0, clip=1e-3)
    x, y = rng.integers(0, 6, (5, 3)).astype(np.int32), rng.integers(0, 6, (5, 3)).astype(np.int32)
    before = [p.get_value() for p in model.params]
    model.train(x, y, np.ones((5, 3), np.float32))
    step = math.sqrt(sum(((p.get_value() - v).astype(np.float64) ** 2).sum()
                         for p, v in zip(model.params, before)))
    assert step == pytest.approx(1e-3, rel=1e-3)  # SGD with lr 1 moves by the clipped norm


def test_char_lstm_first_adam_step_moves_each_weight_by_the_learning_rate(char_lstm):
    """From zero moments Adam's first step is lr * g / |g| (up to eps) for every weight with a
    gradient; the embedding rows of characters absent from the batch have none."""
    rng = np.random.default_rng(3)
    model = char_lstm.CharLSTM(8, n_hidden=4, seed=3, lr=0.01)
    x, y = rng.integers(0, 5, (6, 2)).astype(np.int32), rng.integers(0, 8, (6, 2)).astype(np.int32)
    before = {p.name: p.get_value() for p in model.params}
    model.train(x, y, np.ones((6, 2), np.float32))
    moved = {p.name: np.abs(p.get_value() - before[p.name]) for p in model.params}
    np.testing.assert_allclose(moved["by"], 0.01, rtol=1e-3)
    assert all(np.all(m <= 0.01 * (1 + 1e-3)) for m in moved.values())  # Adam's bound
    assert moved["Wx"][:5].max() > 0.0099 and np.all(moved["Wx"][5:] == 0)  # chars in x only


def test_char_lstm_loss_falls_and_samples_continue_the_prompt(char_lstm, tmp_path):
    out = tmp_path / "lstm"  # no .npz suffix: the file must be written under this very name
    summary = char_lstm.train(REPETITIVE, steps=40, epochs=100, seed=0, out=str(out),
                              verbose=False, **TINY)
    costs = summary["costs"]
    assert len(costs) == 40 and costs[0] > math.log(len(summary["vocab"])) - 0.5
    assert np.mean(costs[-5:]) < 0.6 * np.mean(costs[:5])
    n, text = summary["samples"][-1]
    assert n == 40 and text.startswith(char_lstm.PROMPT) and len(text) == len(char_lstm.PROMPT) + 20
    assert set(text) <= set(REPETITIVE)
    with np.load(out) as f:
        assert "".join(f["chars"]) == "".join(summary["vocab"].chars)
        assert f["Wx"].shape == (len(f["chars"]), 4 * 32) and f["Wy"].shape == (32, len(f["chars"]))


def test_char_lstm_sampling_draws_from_float64_probabilities(char_lstm):
    vocab = char_lstm.Vocabulary("ab")
    model = char_lstm.CharLSTM(2, n_hidden=3, seed=0)
    model.params[3].set_value(np.zeros((3, 2), np.float32))  # Wy = 0: probabilities from by
    model.params[4].set_value(np.array([0.0, np.log(3.0)], np.float32))  # P(b) = 3/4
    text = model.sample(vocab, prompt="ab", length=1500, temperature=1.0,
                        rng=np.random.default_rng(0))
    assert text[:2] == "ab" and len(text) == 1502
    assert text[2:].count("b") / 1500 == pytest.approx(0.75, abs=0.04)
    with pytest.raises(ValueError, match="'z'"):
        model.sample(vocab, prompt="abz")


def test_char_lstm_command_line_trains_on_a_text_file(char_lstm, tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text(REPETITIVE, encoding="utf-8")
    out = tmp_path / "p.npz"
    r = subprocess.run([sys.executable, str(TUTORIALS / "char_lstm.py"), "--text", str(text),
                        "--steps", "6", "--sample-every", "3", "--sample-length", "10",
                        "--hidden", "16", "--seq-len", "20", "--batch-size", "8",
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stdout  # no progress bar when stdout is not a terminal
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"text: {len(REPETITIVE)} characters")
    assert [ln.split()[:2] for ln in lines if ln.startswith("step")] == [["step", "3"],
                                                                       ["step", "6"]]
    assert sum(ln.startswith(char_lstm.PROMPT) for ln in lines) == 3  # twice, then at the end
    assert lines[-1].startswith("Training complete") and str(out) in lines[-1]
    with np.load(out) as f:
        assert f["Wh"].shape == (16, 64)


def test_char_lstm_command_line_help():
    r = subprocess.run([sys.executable, str(TUTORIALS / "char_lstm.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for option in ("--text", "--epochs", "--steps", "--seed", "--hidden", "--seq-len",
                   "--batch-size", "--sample-every", "--out"):
        assert option in r.stdout
