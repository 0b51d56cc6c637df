"""Multiclass logistic regression with minibatch SGD and early stopping.

The classic first tutorial of Theano, written with tracesym: the model is

    p(y = k | x) = softmax(x @ W + b)[k]

trained by minimising the mean negative log-likelihood over minibatches.  The gradient is
symbolic (`ts.grad`), the parameters are shared variables updated by the compiled training
function itself (`ts.update`), and training stops early once the validation error stops
improving (the "patience" scheme of the original tutorial).

Data: by default the 8x8 handwritten digits that ship inside scikit-learn (1,797 images, no
download).  `--data PATH` takes the classic MNIST file instead:

* `mnist.pkl.gz`: a gzipped pickle of ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)),
* or an `.npz` with arrays x_train, y_train, x_valid, y_valid, x_test, y_test.

Run:  python tutorials/logistic_regression.py [--epochs 200] [--batch-size 20] [--lr 0.13]
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import sys
import time

import numpy as np

import tracesym as ts


# -- data -------------------------------------------------------------------------------------

def load_digits_split(seed=0):
    """scikit-learn's 8x8 digits, scaled to [0, 1], split 2/3 train, 1/6 valid, 1/6 test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_valid = n_test = len(x) // 6
    n_train = len(x) - n_valid - n_test
    return ((x[:n_train], y[:n_train]),
            (x[n_train:n_train + n_valid], y[n_train:n_train + n_valid]),
            (x[n_train + n_valid:], y[n_train + n_valid:]))


def load_mnist(path):
    """The classic MNIST split from `mnist.pkl.gz` or an `.npz` (see the module docstring)."""
    if path.endswith(".npz"):
        with np.load(path) as f:
            sets = [(f[f"x_{s}"], f[f"y_{s}"]) for s in ("train", "valid", "test")]
    else:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            sets = pickle.load(f, encoding="latin1")
    out = []
    for x, y in sets:
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        if x.max() > 1.0:
            x = x / 255.0
        out.append((x, np.asarray(y, dtype=np.int64)))
    return tuple(out)


# -- the model ----------------------------------------------------------------------------------

class LogisticRegression:
    """softmax(x @ W + b), its training step, and its error rate, compiled by tracesym."""

    def __init__(self, n_in, n_out):
        self.W = ts.shared(np.zeros((n_in, n_out), np.float32), name="W")
        self.b = ts.shared(np.zeros(n_out, np.float32), name="b")
        W, b = self.W, self.b

        def p_y_given_x(x):
            return ts.softmax(x @ W + b)

        def negative_log_likelihood(x, y):
            return -ts.log(p_y_given_x(x))[ts.arange(y.shape[0]), y].mean()

        @ts.compile
        def train(x: ts.fmatrix, y: ts.lvector, lr: ts.fscalar):
            cost = negative_log_likelihood(x, y)
            gW, gb = ts.grad(cost, [W, b])
            ts.update(W, W - lr * gW)
            ts.update(b, b - lr * gb)
            return cost

        @ts.compile
        def errors(x: ts.fmatrix, y: ts.lvector):
            return ts.neq(p_y_given_x(x).argmax(axis=1), y).mean()

        self.train, self.errors = train, errors

    def save(self, path):
        np.savez(path, W=self.W.get_value(), b=self.b.get_value())


# -- training -----------------------------------------------------------------------------------

def progress(line, end):
    """Rewrite one terminal line while an epoch runs; plain lines when not a terminal."""
    if sys.stdout.isatty():
        sys.stdout.write("\r" + line.ljust(78) + ("\n" if end else ""))
        sys.stdout.flush()
    elif end:
        print(line, flush=True)


def sgd_optimization(data, epochs=200, batch_size=20, lr=0.13, out="logreg_best.npz",
                     patience=5000, patience_increase=2, improvement_threshold=0.995,
                     max_batches=None, verbose=True):
    """Train with minibatch SGD and early stopping; return a summary dict.

    `patience` counts minibatches: training looks at least this many, and every time the
    validation error improves by a significant factor it extends to `patience_increase` times
    the number seen so far.  The best parameters (by validation error) are saved to `out`."""
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = data
    model = LogisticRegression(train_x.shape[1], int(max(train_y.max(), valid_y.max(), test_y.max())) + 1)
    n_batches = len(train_x) // batch_size
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    validation_frequency = min(n_batches, patience // 2)
    best_valid, test_error, best_epoch = np.inf, np.inf, 0
    lr = np.float32(lr)
    costs = []
    seen = 0
    start = time.perf_counter()
    done = False
    epoch = 0
    while epoch < epochs and not done:
        epoch += 1
        epoch_costs = []
        for i in range(n_batches):
            sl = slice(i * batch_size, (i + 1) * batch_size)
            epoch_costs.append(float(model.train(train_x[sl], train_y[sl], lr)))
            seen += 1
            if verbose and sys.stdout.isatty() and i % 10 == 0:
                progress(f"epoch {epoch:3d} [{'#' * (20 * (i + 1) // n_batches):20s}] "
                         f"cost {np.mean(epoch_costs):.4f}", end=False)
            if seen % validation_frequency == 0:
                valid_error = float(model.errors(valid_x, valid_y))
                if valid_error < best_valid:
                    if valid_error < best_valid * improvement_threshold:
                        patience = max(patience, seen * patience_increase)
                    best_valid, best_epoch = valid_error, epoch
                    test_error = float(model.errors(test_x, test_y))
                    model.save(out)
            if patience <= seen:
                done = True
                break
        costs.append(float(np.mean(epoch_costs)))
        if verbose:
            progress(f"epoch {epoch:3d}  cost {costs[-1]:.4f}  validation error "
                     f"{100 * best_valid:.2f}%  (best test error {100 * test_error:.2f}%)", end=True)
    elapsed = time.perf_counter() - start
    summary = {"epochs": epoch, "best_epoch": best_epoch, "best_valid_error": best_valid,
               "test_error": test_error, "costs": costs, "seconds": elapsed, "out": out}
    if verbose:
        print(f"Optimization complete in {elapsed:.1f} s ({epoch} epochs, "
              f"{epoch / elapsed:.1f} epochs/s): best validation error {100 * best_valid:.2f}% "
              f"at epoch {best_epoch}, test error {100 * test_error:.2f}%; parameters in {out}")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="MNIST file (mnist.pkl.gz or .npz); default: scikit-learn digits")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.13)
    ap.add_argument("--seed", type=int, default=0, help="shuffles the default data's split")
    ap.add_argument("--out", default="logreg_best.npz", help="where the best parameters go")
    args = ap.parse_args(argv)
    data = load_mnist(args.data) if args.data else load_digits_split(args.seed)
    print(f"train {data[0][0].shape}, valid {data[1][0].shape}, test {data[2][0].shape}")
    return sgd_optimization(data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            out=args.out)


if __name__ == "__main__":
    main()
