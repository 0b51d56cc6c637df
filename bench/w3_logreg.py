"""W3, logistic regression SGD step: x (600,784) float32, y int labels in [0,10), W (784,10)
and b (10,) float32 zeros; p = softmax(x@W+b); cost = -mean(log(p)[arange(600), y]);
W -= 0.13*dW; b -= 0.13*db.

Prints the time per step against numpy's hand-written step (and the installed peers), after
checking the first steps agree, and the compile time of the train function in a fresh process
(build + grad + compile + first call).  Run: python bench/w3_logreg.py [--quick]
"""

import _harness as H  # noqa: I001

import argparse
import subprocess
import sys
import time

import numpy as np

N, D, K, LR = 600, 784, 10, np.float32(0.13)


def data():
    rng = np.random.default_rng(0)
    return rng.random((N, D), dtype=np.float32), rng.integers(0, K, N).astype(np.int64)


class NumpyStep:
    def __init__(self, x, y):
        self.x, self.y = x, y
        self.W, self.b = np.zeros((D, K), np.float32), np.zeros(K, np.float32)
        self.ar = np.arange(N)

    def __call__(self):
        z = self.x @ self.W + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        cost = -(z[self.ar, self.y] - np.log(s[:, 0])).mean()
        dz = e / s
        dz[self.ar, self.y] -= 1.0
        dz /= N
        self.W -= LR * (self.x.T @ dz)
        self.b -= LR * dz.sum(axis=0)
        return cost


def build_tracesym():
    import tracesym as ts

    W = ts.shared(np.zeros((D, K), np.float32), name="W")
    b = ts.shared(np.zeros(K, np.float32), name="b")

    @ts.compile
    def train(x: ts.fmatrix, y: ts.lvector):
        p = ts.softmax(x @ W + b)
        cost = -ts.log(p)[ts.arange(y.shape[0]), y].mean()
        gW, gb = ts.grad(cost, [W, b])
        ts.update(W, W - LR * gW)
        ts.update(b, b - LR * gb)
        return cost

    return train, W, b


def compile_time_child():
    x, y = data()
    t0 = time.perf_counter()
    train, _, _ = build_tracesym()
    train(x, y)
    print(time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return compile_time_child()
    x, y = data()
    ref = NumpyStep(x, y)
    train, W, b = build_tracesym()
    for _ in range(6):
        c_ref, c = ref(), train(x, y)
        assert abs(float(c) - float(c_ref)) < 1e-5, (c, c_ref)
    np.testing.assert_allclose(W.get_value(), ref.W, rtol=1e-4, atol=1e-5)
    systems = {"numpy": ref, "tracesym": lambda: train(x, y)}

    peers = H.optional_peers()
    if "jax" in peers:
        jax, jnp = peers["jax"], peers["jax"].numpy

        def loss(W, b, x, y):
            return -jnp.mean(jax.nn.log_softmax(x @ W + b)[jnp.arange(N), y])

        @jax.jit
        def step(W, b, x, y):
            c, (gW, gb) = jax.value_and_grad(loss, argnums=(0, 1))(W, b, x, y)
            return W - LR * gW, b - LR * gb, c

        st = {"W": jnp.zeros((D, K), jnp.float32), "b": jnp.zeros(K, jnp.float32)}
        xj, yj = jnp.asarray(x), jnp.asarray(y)

        def jax_step():
            st["W"], st["b"], c = step(st["W"], st["b"], xj, yj)
            return c.block_until_ready()

        systems["jax jit"] = jax_step
    stats = H.bench(systems, rounds=5 if args.quick else 11, inner=10)
    H.report("W3 time per logistic-regression SGD step (600x784 float32)", stats)

    colds = []
    for _ in range(1 if args.quick else 3):
        out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, check=True)
        colds.append(float(out.stdout.strip().splitlines()[-1]))
    print(f"  tracesym train function, fresh process (build + grad + compile + first call): "
          f"median {H.fmt_time(float(np.median(colds)))}")


if __name__ == "__main__":
    main()
