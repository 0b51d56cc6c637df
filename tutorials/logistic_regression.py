"""Multiclass logistic regression with minibatch SGD and early stopping.

The first tutorial of Theano, written with tracesym.  The model is

    p(y = k | x) = softmax(x @ W + b)[k]

and it is trained by minimising the mean negative log-likelihood of the labels over
minibatches.  Three things make it a tracesym program rather than a numpy one:

* W and b are shared variables: values that live between calls and that every compiled
  function reads without being passed them;
* `train` is an ordinary Python function decorated with `@ts.compile`; its annotations
  (`ts.fmatrix`, `ts.lvector`) say what it takes, `ts.grad` builds the gradient as a graph and
  `ts.update` tells the compiled function to write the new W and b back after each call;
* `predict` has no annotations: it is traced from the first call's arrays (and again for a
  different dtype or rank), and `errors` calls it on symbolic values, which simply inlines it.

Training stops early once the validation error stops improving (the "patience" scheme of the
original tutorial), and the parameters with the best validation error are saved to `--out`.

Data: by default the 8x8 handwritten digits that ship inside scikit-learn (1,797 images, no
download), shuffled with `--seed` and split 2/3 train, 1/6 validation, 1/6 test.  `--data PATH`
takes the classic MNIST split instead, either

* `mnist.pkl.gz`: the gzipped pickle of ((train_x, train_y), (valid_x, valid_y),
  (test_x, test_y)) from the Theano tutorials, or
* an `.npz` holding the arrays x_train, y_train, x_valid, y_valid, x_test, y_test
  (x: one row per image, any shape that flattens to it; pixel values in [0, 1], or in
  [0, 255], which are divided by 255; y: integer labels 0..K-1).

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

# -- data ---------------------------------------------------------------------------------------


def load_digits_split(seed=0):
    """scikit-learn's 8x8 digits scaled to [0, 1], shuffled by `seed`, split 2/3 : 1/6 : 1/6."""
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
    """((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) from `mnist.pkl.gz` (or an
    uncompressed pickle) or from an `.npz` with the keys listed in the module docstring."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path) as f:
            missing = [k for s in ("train", "valid", "test") for k in (f"x_{s}", f"y_{s}")
                       if k not in f.files]
            if missing:
                raise KeyError(f"{path} lacks the arrays {', '.join(missing)} (it has "
                               f"{', '.join(f.files)})")
            sets = [(f[f"x_{s}"], f[f"y_{s}"]) for s in ("train", "valid", "test")]
    else:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            sets = pickle.load(f, encoding="latin1")  # the file was written by Python 2
    out = []
    for x, y in sets:
        x = np.asarray(x).reshape(len(x), -1)
        scale = 255.0 if x.size and x.max() > 1.0 else 1.0  # raw bytes: bring them to [0, 1]
        out.append(((x / scale).astype(np.float32), np.asarray(y, dtype=np.int64)))
    return tuple(out)


# -- the model ----------------------------------------------------------------------------------


class LogisticRegression:
    """softmax(x @ W + b) with its compiled training step, prediction and error rate."""

    def __init__(self, n_in, n_out):
        # Zeros are a fine start: the cost is convex, and the gradient of each column differs.
        self.W = ts.shared(np.zeros((n_in, n_out), np.float32), name="W")
        self.b = ts.shared(np.zeros(n_out, np.float32), name="b")
        W, b = self.W, self.b

        def probs(x):
            return ts.softmax(x @ W + b)  # softmax over the last axis: one row per example

        @ts.compile
        def train(x: ts.fmatrix, y: ts.lvector, lr=0.13):
            # log(p) of each row's own label: advanced indexing, as in numpy.  (The rewriter
            # replaces log(softmax(.)) by a numerically stable equivalent.)
            cost = -ts.log(probs(x))[ts.arange(y.shape[0]), y].mean()
            gW, gb = ts.grad(cost, [W, b])
            ts.update(W, W - lr * gW)  # both updates see the old W and b
            ts.update(b, b - lr * gb)
            return cost

        @ts.compile
        def predict(x):
            return probs(x).argmax(axis=1)

        @ts.compile
        def errors(x: ts.fmatrix, y: ts.lvector):
            return ts.neq(predict(x), y).mean()  # predict(symbolic x) is traced inline

        self.train, self.predict, self.errors = train, predict, errors

    def save(self, path):
        with open(path, "wb") as f:  # a file object, so numpy does not append ".npz"
            np.savez(f, W=self.W.get_value(), b=self.b.get_value())


# -- training -----------------------------------------------------------------------------------


def show(line, final):
    """On a terminal, redraw one line while an epoch runs; elsewhere print one line per epoch."""
    if sys.stdout.isatty():
        sys.stdout.write("\r" + line.ljust(79) + ("\n" if final else ""))
        sys.stdout.flush()
    elif final:
        print(line, flush=True)


def sgd_optimization(data, epochs=200, batch_size=20, lr=0.13, out="logreg_best.npz",
                     patience=5000, patience_increase=2, improvement_threshold=0.995,
                     verbose=True):
    """Train with minibatch SGD and early stopping; return a summary dict.

    `patience` counts minibatches: training looks at no fewer than this many (or `epochs`
    epochs, whichever ends first).  Each time the validation error improves by more than the
    factor `improvement_threshold`, patience grows to `patience_increase` times the minibatches
    seen so far.  The parameters with the best validation error are saved to `out`."""
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = data
    n_classes = int(max(train_y.max(), valid_y.max(), test_y.max())) + 1
    model = LogisticRegression(train_x.shape[1], n_classes)
    n_batches = max(len(train_x) // batch_size, 1)
    validation_frequency = max(min(n_batches, patience // 2), 1)  # every epoch, as a rule
    best_valid, test_error, best_epoch = np.inf, np.inf, 0
    costs, seen, epoch, done = [], 0, 0, False
    start = time.perf_counter()
    while epoch < epochs and not done:
        epoch += 1
        batch_costs = []
        for i in range(n_batches):
            batch = slice(i * batch_size, (i + 1) * batch_size)
            batch_costs.append(float(model.train(train_x[batch], train_y[batch], lr)))
            seen += 1
            if verbose and i % 8 == 0:
                bar = "#" * (20 * (i + 1) // n_batches)
                show(f"epoch {epoch:3d} [{bar:20s}] cost {np.mean(batch_costs):.4f}", final=False)
            if seen % validation_frequency == 0:
                valid_error = float(model.errors(valid_x, valid_y))
                improved = valid_error < best_valid
                if valid_error < best_valid * improvement_threshold:
                    patience = max(patience, seen * patience_increase)
                if improved:
                    best_valid, best_epoch = valid_error, epoch
                    test_error = float(model.errors(test_x, test_y))
                    model.save(out)
            if seen >= patience:
                done = True
                break
        costs.append(float(np.mean(batch_costs)))
        if verbose:
            mark = "  * new best" if best_epoch == epoch else ""
            show(f"epoch {epoch:3d}  cost {costs[-1]:.4f}  validation error "
                 f"{100 * valid_error:5.2f}%  (best {100 * best_valid:.2f}%, "
                 f"test {100 * test_error:.2f}%){mark}", final=True)
    elapsed = time.perf_counter() - start
    summary = {"epochs": epoch, "best_epoch": best_epoch, "best_valid_error": best_valid,
               "test_error": test_error, "costs": costs, "seconds": elapsed, "out": out}
    if verbose:
        why = "patience ran out" if done else "epoch limit reached"
        print(f"Optimization complete in {elapsed:.1f} s, {epoch} epochs ({why}): best "
              f"validation error {100 * best_valid:.2f}% at epoch {best_epoch}, test error "
              f"{100 * test_error:.2f}%.  Best parameters saved to {out}")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", metavar="PATH",
                    help="mnist.pkl.gz, or an .npz with x_train y_train x_valid y_valid x_test "
                         "y_test; default: scikit-learn's 8x8 digits")
    ap.add_argument("--epochs", type=int, default=200, help="at most this many epochs (%(default)s)")
    ap.add_argument("--batch-size", type=int, default=20, help="examples per SGD step (%(default)s)")
    ap.add_argument("--lr", type=float, default=0.13, help="learning rate (%(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="shuffles the digits before the split (%(default)s)")
    ap.add_argument("--out", default="logreg_best.npz", metavar="PATH",
                    help="where the best W and b are saved as numpy .npz (%(default)s)")
    args = ap.parse_args(argv)
    data = load_mnist(args.data) if args.data else load_digits_split(args.seed)
    print("data: " + ", ".join(f"{name} {x.shape[0]}x{x.shape[1]}"
                               for name, (x, _) in zip(("train", "valid", "test"), data)))
    return sgd_optimization(data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            out=args.out)


if __name__ == "__main__":
    main()
