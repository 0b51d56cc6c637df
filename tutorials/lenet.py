"""LeNet: a convolutional network trained with minibatch SGD and early stopping.

The convolutional-network tutorial of Theano, written with tracesym.  The network is

    image -> [conv -> max-pool -> tanh] -> [conv -> max-pool -> tanh]
          -> fully connected tanh layer -> softmax over the classes

built from three small layer helpers (`ConvPoolLayer`, `HiddenLayer`, `SoftmaxLayer`), each
holding its parameters as shared variables and applying itself to a symbolic tensor.
`ts.nnet.conv2d` convolves NCHW images with OIHW filters (a true convolution, flipped filters,
as Theano's), `ts.nnet.pool_2d` max-pools, and `ts.grad` differentiates through both.

Training is the logistic-regression tutorial's: minibatch SGD, validation after every epoch,
early stopping by "patience", and the parameters with the best validation error saved to
`--out` (an .npz with one array per parameter, named like `conv1.W`).  At the end the
first-layer filters and the first layer's feature maps for one test image are drawn to PNG
files (with matplotlib, from the `tutorials` extra; without it they are skipped with a note).

Data: scikit-learn's 8x8 digits by default, with the architecture scaled to them (3x3 filters,
"half" padding so the maps stay 8x8 and 4x4 before each 2x2 pooling); `--data PATH` takes MNIST
in the formats `logistic_regression.py` reads (28x28 images: the original 5x5 "valid" filters).

Run:  python tutorials/lenet.py [--epochs 30] [--batch-size 20] [--lr 0.1] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

import tracesym as ts

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling tutorial
from logistic_regression import load_digits_split, load_mnist, show  # noqa: E402

# -- layers -------------------------------------------------------------------------------------


def glorot_uniform(rng, shape, fan_in, fan_out):
    """Uniform in +-sqrt(6 / (fan_in + fan_out)), the tanh initialisation of the Theano
    tutorials (Glorot and Bengio, 2010), as float32."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


class ConvPoolLayer:
    """tanh(max_pool(conv2d(x, W)) + b): `n_filters` feature maps from `n_channels` input maps,
    `filter_size` square filters, `pool` x `pool` max-pooling."""

    def __init__(self, rng, name, n_channels, n_filters, filter_size, pool=2, border_mode="valid"):
        fan_in = n_channels * filter_size ** 2
        fan_out = n_filters * filter_size ** 2 // pool ** 2  # each unit below the pool
        shape = (n_filters, n_channels, filter_size, filter_size)
        self.W = ts.shared(glorot_uniform(rng, shape, fan_in, fan_out), name=f"{name}.W")
        self.b = ts.shared(np.zeros(n_filters, np.float32), name=f"{name}.b")
        self.params = [self.W, self.b]
        self.pool, self.border_mode = pool, border_mode

    def maps(self, x):
        """The convolution alone (what the activation-map picture shows)."""
        return ts.nnet.conv2d(x, self.W, border_mode=self.border_mode)

    def __call__(self, x):
        pooled = ts.nnet.pool_2d(self.maps(x), self.pool, ignore_border=True)
        return ts.tanh(pooled + self.b.dimshuffle("x", 0, "x", "x"))  # a bias per feature map

    def out_size(self, size):
        k = self.W.get_value(borrow=True).shape[-1]
        return (size - (k - 1) * (self.border_mode == "valid")) // self.pool


class HiddenLayer:
    """tanh(x @ W + b)."""

    def __init__(self, rng, name, n_in, n_out):
        self.W = ts.shared(glorot_uniform(rng, (n_in, n_out), n_in, n_out), name=f"{name}.W")
        self.b = ts.shared(np.zeros(n_out, np.float32), name=f"{name}.b")
        self.params = [self.W, self.b]

    def __call__(self, x):
        return ts.tanh(x @ self.W + self.b)


class SoftmaxLayer:
    """The logits x @ W + b of a softmax classifier (zeros: a fine start on top of a network
    whose lower layers are random)."""

    def __init__(self, name, n_in, n_out):
        self.W = ts.shared(np.zeros((n_in, n_out), np.float32), name=f"{name}.W")
        self.b = ts.shared(np.zeros(n_out, np.float32), name=f"{name}.b")
        self.params = [self.W, self.b]

    def __call__(self, x):
        return x @ self.W + self.b


class LeNet:
    """Two conv-pool layers, a hidden layer, a softmax layer; compiled `train`, `errors` and
    `first_maps` functions."""

    def __init__(self, image_size, n_classes, seed=0, n_kerns=(20, 50), n_hidden=500):
        rng = np.random.default_rng(seed)
        if image_size >= 20:  # MNIST: the original 5x5 valid filters, 28 -> 12 -> 4
            k, border = 5, "valid"
        else:  # 8x8 digits: 3x3 filters, padded to keep the size, 8 -> 4 -> 2
            k, border = 3, "half"
        self.side = image_size
        self.conv1 = ConvPoolLayer(rng, "conv1", 1, n_kerns[0], k, border_mode=border)
        self.conv2 = ConvPoolLayer(rng, "conv2", n_kerns[0], n_kerns[1], k, border_mode=border)
        size = self.conv2.out_size(self.conv1.out_size(image_size))
        self.hidden = HiddenLayer(rng, "hidden", n_kerns[1] * size * size, n_hidden)
        self.out = SoftmaxLayer("out", n_hidden, n_classes)
        self.layers = [self.conv1, self.conv2, self.hidden, self.out]
        self.params = [p for layer in self.layers for p in layer.params]
        params, side = self.params, self.side

        def logits(x):
            img = x.reshape((x.shape[0], 1, side, side))  # rows of pixels -> NCHW images
            h = self.conv2(self.conv1(img))
            return self.out(self.hidden(h.flatten(2)))  # (N, maps, h, w) -> (N, maps*h*w)

        @ts.compile
        def train(x: ts.fmatrix, y: ts.lvector, lr=0.1):
            cost = ts.nnet.softmax_cross_entropy(logits(x), y).mean()
            for p, g in zip(params, ts.grad(cost, params)):
                ts.update(p, p - lr * g)
            return cost

        @ts.compile
        def errors(x: ts.fmatrix, y: ts.lvector):
            return ts.neq(logits(x).argmax(axis=1), y).sum()

        @ts.compile
        def first_maps(x: ts.fmatrix):
            return self.conv1.maps(x.reshape((x.shape[0], 1, side, side)))

        self.train, self._errors, self.first_maps = train, errors, first_maps

    def error_rate(self, x, y, batch=1000):
        """The misclassified fraction, in batches so a large set fits in memory."""
        wrong = sum(int(self._errors(x[i:i + batch], y[i:i + batch]))
                    for i in range(0, len(x), batch))
        return wrong / max(len(x), 1)

    def save(self, path):
        with open(path, "wb") as f:  # a file object, so numpy does not append ".npz"
            np.savez(f, **{p.name: p.get_value() for p in self.params})


# -- pictures -----------------------------------------------------------------------------------


def save_pictures(model, image, prefix):
    """PNGs of the first-layer filters and of the first layer's maps for `image` (one row of
    pixels); returns the paths written, or [] when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install tracesym[tutorials]): no pictures")
        return []
    filters = model.conv1.W.get_value()[:, 0]
    maps = model.first_maps(image[None].astype(np.float32))[0]
    maps = [image.reshape(model.side, model.side)] + list(maps)  # the image, then its maps
    paths = []
    for what, tiles, title in (("filters", filters, "first-layer filters"),
                               ("maps", maps, "a test image and its first-layer maps")):
        cols = 10
        rows = -(-len(tiles) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(cols, rows + 0.6), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, tile in zip(axes.flat, tiles):
            ax.imshow(tile, cmap="gray", interpolation="nearest")
        fig.suptitle(title)
        path = f"{prefix}_{what}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


# -- training -----------------------------------------------------------------------------------


def sgd_optimization(data, epochs=30, batch_size=20, lr=0.1, seed=0, out="lenet_best.npz",
                     patience=1000, patience_increase=2, improvement_threshold=0.995,
                     n_kerns=(20, 50), n_hidden=500, pictures=None, verbose=True):
    """Train LeNet with minibatch SGD and early stopping; return a summary dict.

    Patience counts minibatches, as in `logistic_regression.sgd_optimization`: training stops
    after `epochs` epochs or at the end of the first epoch by which `patience` minibatches
    are seen; patience grows to `patience_increase` times the minibatches seen whenever the
    validation error (measured after each epoch) improves by more than the factor
    `improvement_threshold`.  `pictures`, a path prefix, draws the
    first-layer filters and maps of the best model there."""
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = data
    n_classes = int(max(train_y.max(), valid_y.max(), test_y.max())) + 1
    side = int(round(math.sqrt(train_x.shape[1])))
    if side * side != train_x.shape[1]:
        raise ValueError(f"LeNet needs square images; rows of {train_x.shape[1]} pixels are not")
    model = LeNet(side, n_classes, seed=seed, n_kerns=n_kerns, n_hidden=n_hidden)
    n_batches = max(len(train_x) // batch_size, 1)
    order = np.random.default_rng(seed)
    best_valid, test_error, best_epoch, valid_error = np.inf, np.inf, 0, np.inf
    costs, epoch_seconds, seen, epoch, done = [], [], 0, 0, False
    start = time.perf_counter()
    while epoch < epochs and not done:
        epoch += 1
        t0 = time.perf_counter()
        perm = order.permutation(len(train_x))
        batch_costs = []
        for i in range(n_batches):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            batch_costs.append(float(model.train(train_x[idx], train_y[idx], lr)))
            seen += 1
            if verbose and i % 8 == 0:
                bar = "#" * (20 * (i + 1) // n_batches)
                show(f"epoch {epoch:3d} [{bar:20s}] cost {np.mean(batch_costs):.4f}", final=False)
        epoch_seconds.append(time.perf_counter() - t0)
        costs.append(float(np.mean(batch_costs)))
        valid_error = model.error_rate(valid_x, valid_y)
        if valid_error < best_valid * improvement_threshold:
            patience = max(patience, seen * patience_increase)
        if valid_error < best_valid:
            best_valid, best_epoch = valid_error, epoch
            test_error = model.error_rate(test_x, test_y)
            model.save(out)
        if verbose:
            mark = "  * new best" if best_epoch == epoch else ""
            show(f"epoch {epoch:3d}  cost {costs[-1]:.4f}  validation error "
                 f"{100 * valid_error:5.2f}%  (best {100 * best_valid:.2f}%, "
                 f"test {100 * test_error:.2f}%)  {epoch_seconds[-1]:.2f} s{mark}", final=True)
        done = seen >= patience
    elapsed = time.perf_counter() - start
    images = []
    if pictures:
        with np.load(out) as f:  # draw the best model, the one saved
            for p in model.params:
                p.set_value(f[p.name])
        images = save_pictures(model, test_x[0], pictures)
    summary = {"epochs": epoch, "best_epoch": best_epoch, "best_valid_error": best_valid,
               "test_error": test_error, "costs": costs, "seconds": elapsed,
               "seconds_per_epoch": float(np.mean(epoch_seconds)), "out": out, "images": images}
    if verbose:
        why = "patience ran out" if done else "epoch limit reached"
        print(f"Optimization complete in {elapsed:.1f} s ({summary['seconds_per_epoch']:.2f} s "
              f"per epoch), {epoch} epochs ({why}): best validation error "
              f"{100 * best_valid:.2f}% at epoch {best_epoch}, test error "
              f"{100 * test_error:.2f}%.  Best parameters saved to {out}"
              + "".join(f"; {p}" for p in images))
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", metavar="PATH",
                    help="mnist.pkl.gz, or an .npz with x_train y_train x_valid y_valid x_test "
                         "y_test; default: scikit-learn's 8x8 digits")
    ap.add_argument("--epochs", type=int, default=30, help="at most this many epochs (%(default)s)")
    ap.add_argument("--batch-size", type=int, default=20,
                    help="examples per SGD step (%(default)s)")
    ap.add_argument("--lr", type=float, default=0.1, help="learning rate (%(default)s)")
    ap.add_argument("--seed", type=int, default=0,
                    help="initial weights, minibatch order and the digits split (%(default)s)")
    ap.add_argument("--out", default="lenet_best.npz", metavar="PATH",
                    help="where the best parameters are saved as numpy .npz (%(default)s)")
    ap.add_argument("--pictures", default="lenet", metavar="PREFIX",
                    help="PNG files PREFIX_filters.png and PREFIX_maps.png (%(default)s)")
    args = ap.parse_args(argv)
    data = load_mnist(args.data) if args.data else load_digits_split(args.seed)
    print("data: " + ", ".join(f"{name} {x.shape[0]}x{x.shape[1]}"
                               for name, (x, _) in zip(("train", "valid", "test"), data)))
    return sgd_optimization(data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            seed=args.seed, out=args.out, pictures=args.pictures)


if __name__ == "__main__":
    main()
