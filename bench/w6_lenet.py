"""W6, a LeNet SGD step: batch 500 of 1x28x28 float32 images, conv 20@5x5 -> maxpool 2 ->
tanh(+b) -> conv 50@5x5 -> maxpool 2 -> tanh(+b) -> fc 800->500 tanh -> fc 500->10, softmax
NLL, lr 0.1 (the LeNet of Theano's deep-learning tutorial).  Convolutions are "valid"
cross-correlations (`filter_flip=False`) in every system, so the same weights give the same
numbers; the flatten order is NCHW.

Compared: numpy with hand-written gradients (im2col + one matmul per convolution, col2im by
25 shifted adds, max-pool by a mask: the reference), tracesym (`@ts.compile`, `ts.grad`,
`ts.update`) with linker "numpy" and with linker "c", and PyTensor, JAX and PyTorch when
installed.  PyTensor 3 has no CNN convolution, so its graph builds im2col from 25 slices, as
the peers' harness does.  The costs of the first three steps and every parameter after them
are checked against numpy before anything is timed.

Run: python bench/w6_lenet.py [--quick] [--only tracesym,torch eager]
"""

import _harness as H  # noqa: I001  (first: environment and allocator)

import sys

H.setup_caches()

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

N, K, C1, C2, NH, NOUT, LR = 500, 5, 20, 50, 500, 10, 0.1
CHECK_STEPS = 3


def make_data():
    rng = np.random.default_rng(0)
    return (rng.random((N, 1, 28, 28), dtype=np.float32),
            rng.integers(0, NOUT, N).astype(np.int32))


def init_params():
    """Glorot-uniform filters and weights (fixed seed), zero biases."""
    rng = np.random.default_rng(1)

    def conv_w(cout, cin):
        a = np.sqrt(6.0 / (cin * K * K + cout * K * K / 4))
        return rng.uniform(-a, a, (cout, cin, K, K)).astype(np.float32)

    def fc_w(nin, nout):
        a = np.sqrt(6.0 / (nin + nout))
        return rng.uniform(-a, a, (nin, nout)).astype(np.float32)

    return [conv_w(C1, 1), np.zeros(C1, np.float32), conv_w(C2, C1), np.zeros(C2, np.float32),
            fc_w(C2 * 16, NH), np.zeros(NH, np.float32), fc_w(NH, NOUT), np.zeros(NOUT, np.float32)]


# -- numpy, the reference: NHWC activations, gradients by hand ----------------------------------

def _im2col(x):
    """x (N, H, W, C) -> (N*ho*wo, C*K*K) patches, column c*K*K + i*K + j."""
    win = sliding_window_view(x, (K, K), axis=(1, 2))  # (N, ho, wo, C, K, K)
    n, ho, wo, c = win.shape[:4]
    return win.reshape(n * ho * wo, c * K * K), (n, ho, wo)


def _col2im(dcols, shape):
    n, h, w, c = shape
    ho, wo = h - K + 1, w - K + 1
    d6 = dcols.reshape(n, ho, wo, c, K, K)
    dx = np.zeros(shape, np.float32)
    for i in range(K):
        for j in range(K):
            dx[:, i:i + ho, j:j + wo, :] += d6[:, :, :, :, i, j]
    return dx


def _pool(c):
    n, h, w, ch = c.shape
    return c.reshape(n, h // 2, 2, w // 2, 2, ch).max(axis=(2, 4))


def _pool_back(c, p, dp):
    n, h, w, ch = c.shape
    mask = c.reshape(n, h // 2, 2, w // 2, 2, ch) == p[:, :, None, :, None, :]
    return (mask * dp[:, :, None, :, None, :]).reshape(n, h, w, ch)


class NumpyStep:
    def __init__(self, x, y):
        self.x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        self.y, self.p, self.rows = y, init_params(), np.arange(N)

    def step(self):
        W1, b1, W2, b2, W3, b3, W4, b4 = self.p
        W1m, W2m = W1.reshape(C1, -1), W2.reshape(C2, -1)
        cols1, (n, h1, w1) = _im2col(self.x)
        c1 = (cols1 @ W1m.T).reshape(n, h1, w1, C1)
        p1 = _pool(c1)
        a1 = np.tanh(p1 + b1)
        cols2, (_, h2, w2) = _im2col(a1)
        c2 = (cols2 @ W2m.T).reshape(n, h2, w2, C2)
        p2 = _pool(c2)
        a2 = np.tanh(p2 + b2)
        f = a2.transpose(0, 3, 1, 2).reshape(n, -1)
        h3 = np.tanh(f @ W3 + b3)
        z = h3 @ W4 + b4
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        cost = -(z[self.rows, self.y] - np.log(s[:, 0])).mean()
        dz = e / s
        dz[self.rows, self.y] -= 1.0
        dz /= n
        gW4, gb4 = h3.T @ dz, dz.sum(axis=0)
        dh3 = (dz @ W4.T) * (1.0 - h3 * h3)
        gW3, gb3 = f.T @ dh3, dh3.sum(axis=0)
        dp2 = (dh3 @ W3.T).reshape(n, C2, 4, 4).transpose(0, 2, 3, 1) * (1.0 - a2 * a2)
        gb2 = dp2.sum(axis=(0, 1, 2))
        dc2 = _pool_back(c2, p2, dp2).reshape(-1, C2)
        gW2 = (dc2.T @ cols2).reshape(W2.shape)
        dp1 = _col2im(dc2 @ W2m, a1.shape) * (1.0 - a1 * a1)
        gb1 = dp1.sum(axis=(0, 1, 2))
        dc1 = _pool_back(c1, p1, dp1).reshape(-1, C1)
        gW1 = (dc1.T @ cols1).reshape(W1.shape)
        for w, g in zip(self.p, (gW1, gb1, gW2, gb2, gW3, gb3, gW4, gb4)):
            w -= LR * g
        return cost

    def params(self):
        return self.p


# -- tracesym ------------------------------------------------------------------------------------

class TracesymStep:
    """The user's view: shared parameters, `ts.nnet.conv2d` and `ts.nnet.pool_2d`, a train
    function traced from Python and run by `linker` (None: the configured default)."""

    def __init__(self, x, y, linker=None):
        import tracesym as ts

        self.sh = sh = [ts.shared(p, name=n) for p, n in
                        zip(init_params(), ["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"])]
        W1, b1, W2, b2, W3, b3, W4, b4 = sh

        def layer(a, W, b):
            c = ts.nnet.conv2d(a, W, filter_flip=False)
            return ts.tanh(ts.nnet.pool_2d(c, 2) + b[None, :, None, None])

        @ts.compile(mode=ts.Mode(linker=linker))
        def train(x: ts.ftensor4, y: ts.ivector):
            a2 = layer(layer(x, W1, b1), W2, b2)
            h3 = ts.tanh(a2.reshape((x.shape[0], C2 * 16)) @ W3 + b3)
            logp = ts.nnet.log_softmax(h3 @ W4 + b4)
            cost = -logp[ts.arange(y.shape[0]), y].mean()
            for p, g in zip(sh, ts.grad(cost, sh)):
                ts.update(p, p - np.float32(LR) * g)
            return cost

        self.train, self.x, self.y = train, x, y

    def step(self):
        return self.train(self.x, self.y)

    def params(self):
        return [p.get_value() for p in self.sh]


# -- peers -----------------------------------------------------------------------------------------

class PyTensorStep:
    """im2col built in the graph (25 slices, stack, one dot), max-pool by reshape + max."""

    def __init__(self, x, y, mode="CVM"):
        import pytensor
        import pytensor.tensor as pt
        from pytensor.tensor.special import log_softmax

        self.sh = [pytensor.shared(p, name=f"p{i}") for i, p in enumerate(init_params())]
        W1, b1, W2, b2, W3, b3, W4, b4 = self.sh

        def conv(inp, W, cin, cout, hin):
            ho = hin - K + 1
            P = pt.stack([inp[:, :, i:i + ho, j:j + ho] for i in range(K) for j in range(K)], -1)
            P = P.dimshuffle(0, 2, 3, 1, 4).reshape((N * ho * ho, cin * K * K))
            out = P @ W.reshape((cout, cin * K * K)).T
            return out.reshape((N, ho, ho, cout)).dimshuffle(0, 3, 1, 2)

        def pool(c, ch, h):
            return c.reshape((N, ch, h // 2, 2, h // 2, 2)).max(axis=(3, 5))

        xs, ys = pt.tensor4("x", dtype="float32"), pt.vector("y", dtype="int32")
        a1 = pt.tanh(pool(conv(xs, W1, 1, C1, 28), C1, 24) + b1.dimshuffle("x", 0, "x", "x"))
        a2 = pt.tanh(pool(conv(a1, W2, C1, C2, 12), C2, 8) + b2.dimshuffle("x", 0, "x", "x"))
        h3 = pt.tanh(a2.reshape((N, C2 * 16)) @ W3 + b3)
        cost = -pt.mean(log_softmax(h3 @ W4 + b4, axis=1)[pt.arange(N), ys])
        lr = np.float32(LR)
        self.f = pytensor.function([xs, ys], cost, mode=mode, updates=[
            (v, v - lr * g) for v, g in zip(self.sh, pytensor.grad(cost, self.sh))])
        self.x, self.y = x, y

    def step(self):
        return self.f(self.x, self.y)

    def params(self):
        return [v.get_value() for v in self.sh]


class JaxStep:
    def __init__(self, x, y):
        import jax
        import jax.numpy as jnp
        from jax import lax

        def conv(a, W):
            return lax.conv_general_dilated(a, W, (1, 1), "VALID",
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"))

        def pool(c):
            return lax.reduce_window(c, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

        def loss(p, x, y):
            W1, b1, W2, b2, W3, b3, W4, b4 = p
            a1 = jnp.tanh(pool(conv(x, W1)) + b1[None, :, None, None])
            a2 = jnp.tanh(pool(conv(a1, W2)) + b2[None, :, None, None])
            h3 = jnp.tanh(a2.reshape(x.shape[0], -1) @ W3 + b3)
            return -jnp.mean(jax.nn.log_softmax(h3 @ W4 + b4)[jnp.arange(x.shape[0]), y])

        def step(p, x, y):
            cost, g = jax.value_and_grad(loss)(p, x, y)
            return [w - LR * gw for w, gw in zip(p, g)], cost

        self.jstep = jax.jit(step, donate_argnums=(0,))
        self.p = [jnp.asarray(p) for p in init_params()]
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)

    def step(self):
        self.p, cost = self.jstep(self.p, self.x, self.y)
        return cost.block_until_ready()

    def params(self):
        return [np.asarray(p) for p in self.p]


class TorchStep:
    def __init__(self, x, y, compiled=False):
        import torch
        import torch.nn.functional as F

        def loss(W1, b1, W2, b2, W3, b3, W4, b4, x, y):
            a1 = torch.tanh(F.max_pool2d(F.conv2d(x, W1), 2) + b1[None, :, None, None])
            a2 = torch.tanh(F.max_pool2d(F.conv2d(a1, W2), 2) + b2[None, :, None, None])
            h3 = torch.tanh(a2.reshape(x.shape[0], -1) @ W3 + b3)
            return F.cross_entropy(h3 @ W4 + b4, y)

        def step(*p):  # gradient through torch.func; update in place
            g, cost = torch.func.grad_and_value(loss, argnums=tuple(range(8)))(
                *p, self.x, self.y)
            for w, gw in zip(p, g):
                w.sub_(LR * gw)
            return cost

        self.fstep = torch.compile(step) if compiled else step
        self.p = [torch.from_numpy(p) for p in init_params()]
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y).long()

    def step(self):
        return self.fstep(*self.p).item()

    def params(self):
        return [p.numpy() for p in self.p]


SYSTEMS = {  # name -> (library imported, factory); the first is the reference
    "numpy": ("numpy", NumpyStep),
    "tracesym numpy": ("tracesym", lambda x, y: TracesymStep(x, y, linker="numpy")),
    "tracesym c": ("tracesym", lambda x, y: TracesymStep(x, y, linker="c")),
    "pytensor C (CVM)": ("pytensor", PyTensorStep),
    "jax jit": ("jax", JaxStep),
    "torch eager": ("torch", TorchStep),
    "torch.compile": ("torch", lambda x, y: TorchStep(x, y, compiled=True)),
}


def main():
    args = H.arg_parser(__doc__).parse_args()
    x, y = make_data()
    skipped, failures = {}, []
    objs, first = H.build_trainers(SYSTEMS, args.only, (x, y), CHECK_STEPS, skipped)
    H.env_report()

    names = [f"param {k}" for k in range(len(first["numpy"][2]))]
    H.check_trainers("W6", objs, first, names, CHECK_STEPS, 1e-4, 1e-3, failures)

    stats = H.bench({n: o.step for n, o in objs.items()}, rounds=3 if args.quick else 7,
                    inner=1, settle=0.2, rewarm=0.0)
    H.report(f"W6 time per SGD step, LeNet batch {N} float32", stats)
    print("# build + compile + first steps, in process: "
          + ", ".join(f"{n} {first[n][0]:.2f} s" for n in objs if n != "numpy"))
    H.print_skipped(skipped)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
