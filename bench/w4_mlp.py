"""W4, an MLP SGD step: 784-500-10, tanh hidden layer, softmax NLL + 1e-4 * (sum(W1**2) +
sum(W2**2)), batch 20, lr 0.01, float32.  Glorot-uniform W1 and W2 (fixed seed), zero biases,
one fixed minibatch (x in [0, 1), labels in [0, 10)); the parameters are updated in place.

Compared: numpy with hand-written gradients (the reference), tracesym written as in the user's
view (`@ts.compile`, `ts.grad`, `ts.update`) with linker "numpy" and with linker "c", and
PyTensor, JAX and PyTorch when installed.  Every system's first six costs and its parameters
after them are checked against numpy before anything is timed.

Run: python bench/w4_mlp.py [--quick] [--only tracesym,jax jit]
"""

import _harness as H  # noqa: I001  (first: environment and allocator)

import sys

H.setup_caches()

import numpy as np  # noqa: E402

BATCH, NIN, NHID, NOUT = 20, 784, 500, 10
LR, L2 = 0.01, 1e-4
NAMES = ["W1", "b1", "W2", "b2"]
CHECK_STEPS = 6


def make_data():
    rng = np.random.default_rng(0)
    return (rng.random((BATCH, NIN), dtype=np.float32),
            rng.integers(0, NOUT, BATCH).astype(np.int32))


def init_params():
    rng = np.random.default_rng(1)
    a1, a2 = np.sqrt(6.0 / (NIN + NHID)), np.sqrt(6.0 / (NHID + NOUT))
    return [rng.uniform(-a1, a1, (NIN, NHID)).astype(np.float32), np.zeros(NHID, np.float32),
            rng.uniform(-a2, a2, (NHID, NOUT)).astype(np.float32), np.zeros(NOUT, np.float32)]


class NumpyStep:
    """The reference: eager numpy, gradients written by hand."""

    def __init__(self, x, y):
        self.x, self.y, self.p, self.rows = x, y, init_params(), np.arange(BATCH)

    def step(self):
        x, y = self.x, self.y
        W1, b1, W2, b2 = self.p
        h = np.tanh(x @ W1 + b1)
        z = h @ W2 + b2
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        nll = -(z[self.rows, y] - np.log(s[:, 0])).mean()
        cost = nll + L2 * ((W1 * W1).sum() + (W2 * W2).sum())
        dz = e / s
        dz[self.rows, y] -= 1.0
        dz /= BATCH
        gW2, gb2 = h.T @ dz + (2 * L2) * W2, dz.sum(axis=0)
        dh = (dz @ W2.T) * (1.0 - h * h)
        gW1, gb1 = x.T @ dh + (2 * L2) * W1, dh.sum(axis=0)
        for w, g in zip(self.p, (gW1, gb1, gW2, gb2)):
            w -= LR * g
        return cost

    def params(self):
        return self.p


class TracesymStep:
    """The user's view of DESIGN.md, run by `linker` (None: the configured default)."""

    def __init__(self, x, y, linker=None):
        import tracesym as ts

        self.sh = sh = [ts.shared(p, name=n) for p, n in zip(init_params(), NAMES)]
        W1, b1, W2, b2 = sh

        @ts.compile(mode=ts.Mode(linker=linker))
        def train(x: ts.fmatrix, y: ts.ivector):
            h = ts.tanh(x @ W1 + b1)
            nll = -ts.log(ts.softmax(h @ W2 + b2))[ts.arange(y.shape[0]), y].mean()
            cost = nll + L2 * ((W1 ** 2).sum() + (W2 ** 2).sum())
            for p, g in zip(sh, ts.grad(cost, sh)):
                ts.update(p, p - LR * g)
            return cost

        self.train, self.x, self.y = train, x, y

    def step(self):
        return self.train(self.x, self.y)

    def params(self):
        return [p.get_value() for p in self.sh]


class PyTensorStep:
    def __init__(self, x, y, mode="CVM"):
        import pytensor
        import pytensor.tensor as pt
        from pytensor.tensor.special import softmax

        self.sh = [pytensor.shared(p, name=n) for p, n in zip(init_params(), NAMES)]
        W1, b1, W2, b2 = self.sh
        xs, ys = pt.matrix("x", dtype="float32"), pt.vector("y", dtype="int32")
        h = pt.tanh(xs @ W1 + b1)
        nll = -pt.mean(pt.log(softmax(h @ W2 + b2, axis=1))[pt.arange(ys.shape[0]), ys])
        cost = nll + np.float32(L2) * ((W1 ** 2).sum() + (W2 ** 2).sum())
        lr = np.float32(LR)  # a Python float would be a floatX (float64) constant in PyTensor
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

        def loss(p, x, y):
            W1, b1, W2, b2 = p
            logp = jax.nn.log_softmax(jnp.tanh(x @ W1 + b1) @ W2 + b2, axis=1)
            return (-jnp.mean(logp[jnp.arange(x.shape[0]), y])
                    + L2 * (jnp.sum(W1 ** 2) + jnp.sum(W2 ** 2)))

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

        def loss(W1, b1, W2, b2, x, y):
            h = torch.tanh(x @ W1 + b1)
            return F.cross_entropy(h @ W2 + b2, y) + L2 * ((W1 ** 2).sum() + (W2 ** 2).sum())

        def step(*p):  # gradient through torch.func; update in place
            g, cost = torch.func.grad_and_value(loss, argnums=(0, 1, 2, 3))(*p, self.x, self.y)
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

    H.check_trainers("W4", objs, first, NAMES, CHECK_STEPS, 1e-5, 1e-4, failures)

    stats = H.bench({n: o.step for n, o in objs.items()}, rounds=5 if args.quick else 11, inner=100)
    H.report(f"W4 time per SGD step, MLP {NIN}-{NHID}-{NOUT} tanh, batch {BATCH} float32", stats)
    print("# build + compile + first steps, in process: "
          + ", ".join(f"{n} {first[n][0]:.2f} s" for n in objs if n != "numpy"))
    H.print_skipped(skipped)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
