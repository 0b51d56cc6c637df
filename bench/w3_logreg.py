"""W3, a logistic-regression SGD step: x (600, 784) float32, y int64 labels in [0, 10),
W (784, 10) and b (10,) float32 zeros; p = softmax(x @ W + b); cost = -mean(log(p)[arange(600),
y]); W -= 0.13 * dW; b -= 0.13 * db, the parameters updated in place.

Compared: numpy with hand-written gradients (the reference), tracesym written as in the user's
view (`@ts.compile`, `ts.grad`, `ts.update`) with each linker ("c", the default, and "numpy"), and PyTensor, JAX and PyTorch when installed.
Every system's first six costs and its parameters after them are checked against numpy before
anything is timed.  Then the time per step, and the compile time of the train function in fresh
processes: cold (empty compile caches) and warm (the caches the cold run filled).

Run: python bench/w3_logreg.py [--quick] [--no-compile-times] [--only tracesym,jax jit]
"""

import _harness as H  # noqa: I001  (first: environment and allocator)

import os
import sys
import time

H.setup_caches()

import numpy as np  # noqa: E402

N, D, K, LR = 600, 784, 10, 0.13
CHECK_STEPS = 6


def make_data():
    rng = np.random.default_rng(0)
    return rng.random((N, D), dtype=np.float32), rng.integers(0, K, N)


def zeros():
    return np.zeros((D, K), np.float32), np.zeros(K, np.float32)


class NumpyStep:
    """The reference: eager numpy, gradient of softmax cross-entropy written by hand."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.W, self.b = zeros()
        self.rows = np.arange(N)

    def step(self):
        z = self.x @ self.W + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        cost = -(z[self.rows, self.y] - np.log(s[:, 0])).mean()
        dz = e / s
        dz[self.rows, self.y] -= 1.0
        dz /= N
        self.W -= LR * (self.x.T @ dz)
        self.b -= LR * dz.sum(axis=0)
        return cost

    def params(self):
        return self.W, self.b


class TracesymStep:
    """The user's view of DESIGN.md: shared W and b, and a train function traced from Python,
    run by `linker` (None: the configured default)."""

    def __init__(self, x, y, linker=None):
        import tracesym as ts

        self.W = W = ts.shared(zeros()[0], name="W")
        self.b = b = ts.shared(zeros()[1], name="b")

        @ts.compile(mode=ts.Mode(linker=linker))
        def train(x: ts.fmatrix, y: ts.lvector, lr=LR):
            cost = -ts.log(ts.softmax(x @ W + b))[ts.arange(y.shape[0]), y].mean()
            gW, gb = ts.grad(cost, [W, b])
            ts.update(W, W - lr * gW)
            ts.update(b, b - lr * gb)
            return cost

        self.train, self.x, self.y = train, x, y

    def step(self):
        return self.train(self.x, self.y)

    def params(self):
        return self.W.get_value(), self.b.get_value()


class PyTensorStep:
    def __init__(self, x, y, mode=None):
        import pytensor
        import pytensor.tensor as pt
        from pytensor.tensor.special import softmax

        self.W, self.b = (pytensor.shared(v, name=n) for v, n in zip(zeros(), "Wb"))
        xs, ys = pt.fmatrix("x"), pt.lvector("y")
        cost = -pt.log(softmax(xs @ self.W + self.b, axis=-1))[pt.arange(ys.shape[0]), ys].mean()
        gW, gb = pytensor.grad(cost, [self.W, self.b])
        lr = np.float32(LR)  # a Python float would be a floatX (float64) constant in PyTensor
        self.f = pytensor.function([xs, ys], cost, mode=mode,
                                   updates=[(self.W, self.W - lr * gW), (self.b, self.b - lr * gb)])
        self.x, self.y = x, y

    def step(self):
        return self.f(self.x, self.y)

    def params(self):
        return self.W.get_value(), self.b.get_value()


class JaxStep:
    def __init__(self, x, y):
        import jax
        import jax.numpy as jnp

        def loss(W, b, x, y):
            return -jnp.mean(jax.nn.log_softmax(x @ W + b)[jnp.arange(x.shape[0]), y])

        def step(W, b, x, y):
            cost, (gW, gb) = jax.value_and_grad(loss, argnums=(0, 1))(W, b, x, y)
            return W - LR * gW, b - LR * gb, cost

        self.jstep = jax.jit(step, donate_argnums=(0, 1))
        self.W, self.b = (jnp.asarray(v) for v in zeros())
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)

    def step(self):
        self.W, self.b, cost = self.jstep(self.W, self.b, self.x, self.y)
        return cost.block_until_ready()

    def params(self):
        return np.asarray(self.W), np.asarray(self.b)


class TorchStep:
    def __init__(self, x, y, compiled=False):
        import torch
        import torch.nn.functional as F

        self.torch = torch
        self.W, self.b = (torch.from_numpy(v) for v in zeros())
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

        def step(W, b, x, y):  # gradient through torch.func; update in place
            def loss(W, b):
                return F.cross_entropy(x @ W + b, y)

            (gW, gb), cost = torch.func.grad_and_value(loss, argnums=(0, 1))(W, b)
            W.sub_(LR * gW)
            b.sub_(LR * gb)
            return cost

        self.fstep = torch.compile(step) if compiled else step

    def step(self):
        return self.fstep(self.W, self.b, self.x, self.y).item()

    def params(self):
        return self.W.numpy(), self.b.numpy()


SYSTEMS = {  # name -> (library imported, factory); the first is the reference
    "numpy": ("numpy", NumpyStep),
    "tracesym numpy": ("tracesym", lambda x, y: TracesymStep(x, y, linker="numpy")),
    "tracesym c": ("tracesym", lambda x, y: TracesymStep(x, y, linker="c")),
    "pytensor (default mode)": ("pytensor", PyTensorStep),
    "pytensor C (CVM)": ("pytensor", lambda x, y: PyTensorStep(x, y, mode="CVM")),
    "jax jit": ("jax", JaxStep),
    "torch eager": ("torch", TorchStep),
    "torch.compile": ("torch", lambda x, y: TorchStep(x, y, compiled=True)),
}
COMPILE_CHILDREN = ("tracesym numpy", "tracesym c", "pytensor (default mode)", "jax jit", "torch.compile")


def child(system):
    """In a fresh process: import the library, build the step, run it once; print the times."""
    lib, factory = SYSTEMS[system]
    t0 = time.perf_counter()
    __import__(lib)
    t1 = time.perf_counter()
    obj = factory(*make_data())
    obj.step()
    H.child_result({"import": t1 - t0, "first_step": time.perf_counter() - t1})


def main():
    args = H.arg_parser(__doc__, "fewer rounds; compile times of tracesym only").parse_args()
    if args.child:
        return child(args.child)

    x, y = make_data()
    skipped, failures = {}, []
    objs, first = H.build_trainers(SYSTEMS, args.only, (x, y), CHECK_STEPS, skipped)
    H.env_report()

    H.check_trainers("W3", objs, first, "Wb", CHECK_STEPS, 1e-5, 1e-4, failures)

    stats = H.bench({n: o.step for n, o in objs.items()}, rounds=5 if args.quick else 11, inner=10)
    H.report(f"W3 time per SGD step, logistic regression {N}x{D} float32", stats)
    print("# build + compile + first steps, in process: "
          + ", ".join(f"{n} {first[n][0]:.2f} s" for n in objs if n != "numpy"))

    if not args.no_compile_times:
        children = ["tracesym numpy", "tracesym c"] if args.quick else [n for n in COMPILE_CHILDREN if n in objs]
        results = {n: H.cold_warm(os.path.abspath(__file__), n) for n in children}
        if results:
            H.report_compile("W3 compile time of the train function", results)
    H.print_skipped(skipped)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
