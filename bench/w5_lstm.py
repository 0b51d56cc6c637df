"""W5, an LSTM char model trained with backprop through time: vocab 64, hidden 256, sequence
length 100, batch 32, float32.  Input tokens x (100, 32) and targets y (100, 32) in [0, 64); the
input projection is an embedding gather xs = Wx[x] + b (Wx (64, 1024)); the recurrence (one gate
product h @ Wh per step, gates i, f, g, o) runs inside `ts.scan`; the output projection
hs @ Wy + by and the cross-entropy over all 100 x 32 steps act on the stacked hidden states; SGD
(lr 0.5) updates Wx, Wh, b, Wy, by.

Compared: numpy with a Python loop and hand-written BPTT (the reference), tracesym written as a
user would (`ts.scan`, `ts.grad`, updates), and, when installed, PyTensor's scan in C (mode
"CVM") and JAX (`lax.scan`).  The first
costs and the parameters after them are checked against numpy before anything is timed.  Also
printed: the per-step overhead of scan on an almost empty step (a scalar add) against a Python
loop doing the same in numpy, and the cold compile time of the train function.

Run: python bench/w5_lstm.py [--quick] [--no-compile-times] [--only tracesym,"jax jit"]
"""

import _harness as H  # noqa: I001  (first: environment and allocator)

import os
import sys
import time

H.setup_caches()

import numpy as np  # noqa: E402

V, HID, T, BATCH, LR = 64, 256, 100, 32, 0.5
NAMES = ["Wx", "Wh", "b", "Wy", "by"]
CHECK_STEPS = 3


def make_data():
    rng = np.random.default_rng(0)
    return (rng.integers(0, V, (T, BATCH)).astype(np.int32),
            rng.integers(0, V, (T, BATCH)).astype(np.int32))


def init_params():
    rng = np.random.default_rng(1)
    s = 1.0 / np.sqrt(HID)
    return [rng.uniform(-s, s, (V, 4 * HID)).astype(np.float32),
            rng.uniform(-s, s, (HID, 4 * HID)).astype(np.float32),
            np.zeros(4 * HID, np.float32),
            rng.uniform(-s, s, (HID, V)).astype(np.float32),
            np.zeros(V, np.float32)]


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


class NumpyLSTM:
    """The reference: eager numpy, a Python loop over time, BPTT written by hand."""

    def __init__(self, x, y):
        self.x, self.p = x, init_params()
        self.onehot_T = np.zeros((V, T * BATCH), np.float32)  # dWx = onehot^T @ dA
        self.onehot_T[x.ravel(), np.arange(T * BATCH)] = 1.0
        self.flat_y, self.ar = y.ravel(), np.arange(T * BATCH)

    def step(self):
        Wx, Wh, b, Wy, by = self.p
        H_ = HID
        xs = Wx[self.x] + b
        gates = np.empty((T, BATCH, 4 * H_), np.float32)  # activated i, f, g, o
        cs = np.zeros((T + 1, BATCH, H_), np.float32)
        hs = np.zeros((T + 1, BATCH, H_), np.float32)
        for t in range(T):
            a = xs[t] + hs[t] @ Wh
            g = gates[t]
            g[:, :2 * H_] = _sigmoid(a[:, :2 * H_])
            g[:, 2 * H_:3 * H_] = np.tanh(a[:, 2 * H_:3 * H_])
            g[:, 3 * H_:] = _sigmoid(a[:, 3 * H_:])
            cs[t + 1] = g[:, H_:2 * H_] * cs[t] + g[:, :H_] * g[:, 2 * H_:3 * H_]
            hs[t + 1] = g[:, 3 * H_:] * np.tanh(cs[t + 1])
        HS = hs[1:].reshape(T * BATCH, H_)
        z = HS @ Wy + by
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        cost = -(z[self.ar, self.flat_y] - np.log(s[:, 0])).mean()
        dz = e / s
        dz[self.ar, self.flat_y] -= 1.0
        dz /= T * BATCH
        gWy, gby = HS.T @ dz, dz.sum(axis=0)
        dHS = (dz @ Wy.T).reshape(T, BATCH, H_)
        dA = np.empty((T, BATCH, 4 * H_), np.float32)
        dh_next = np.zeros((BATCH, H_), np.float32)
        dc_next = np.zeros((BATCH, H_), np.float32)
        for t in range(T - 1, -1, -1):
            g = gates[t]
            i, f, gg, o = g[:, :H_], g[:, H_:2 * H_], g[:, 2 * H_:3 * H_], g[:, 3 * H_:]
            dh = dHS[t] + dh_next
            tc = np.tanh(cs[t + 1])
            dc = dh * o * (1.0 - tc * tc) + dc_next
            da = dA[t]
            da[:, :H_] = dc * gg * i * (1.0 - i)
            da[:, H_:2 * H_] = dc * cs[t] * f * (1.0 - f)
            da[:, 2 * H_:3 * H_] = dc * i * (1.0 - gg * gg)
            da[:, 3 * H_:] = dh * tc * o * (1.0 - o)
            dc_next = dc * f
            dh_next = da @ Wh.T
        dA2 = dA.reshape(T * BATCH, 4 * H_)
        grads = (self.onehot_T @ dA2, hs[:-1].reshape(T * BATCH, H_).T @ dA2, dA2.sum(axis=0),
                 gWy, gby)
        for w, gw in zip(self.p, grads):
            w -= LR * gw
        return cost

    def params(self):
        return self.p


def tracesym_train():
    """The train function as a tracesym user writes it; returns (function, shared params)."""
    import tracesym as ts

    sh = [ts.shared(p, name=n) for p, n in zip(init_params(), NAMES)]
    Wx, Wh, b, Wy, by = sh
    x, y = ts.imatrix("x"), ts.imatrix("y")

    def step(a_x, h, c, Wh):
        a = a_x + h @ Wh
        i, f = ts.sigmoid(a[:, :HID]), ts.sigmoid(a[:, HID:2 * HID])
        g, o = ts.tanh(a[:, 2 * HID:3 * HID]), ts.sigmoid(a[:, 3 * HID:])
        c_new = f * c + i * g
        return o * ts.tanh(c_new), c_new

    zero = ts.zeros((BATCH, HID), dtype="float32")
    (hs, _), _ = ts.scan(step, sequences=Wx[x] + b, outputs_info=[zero, zero], non_sequences=Wh)
    logp = ts.logsoftmax(hs.reshape((T * BATCH, HID)) @ Wy + by, axis=1)
    cost = -logp[ts.arange(T * BATCH), y.flatten()].mean()
    grads = ts.grad(cost, sh)
    lr = np.float32(LR)
    return ts.function([x, y], cost, updates=[(v, v - lr * g) for v, g in zip(sh, grads)]), sh


class TracesymLSTM:
    def __init__(self, x, y):
        self.f, self.sh = tracesym_train()
        self.x, self.y = x, y

    def step(self):
        return self.f(self.x, self.y)

    def params(self):
        return [v.get_value(borrow=True) for v in self.sh]


class PyTensorLSTM:
    """PyTensor's scan in C (mode "CVM"; its 3.x default is numba), the learning rate a
    float32 constant so that every update stays float32."""

    def __init__(self, x, y):
        import pytensor
        import pytensor.tensor as pt
        from pytensor.tensor.special import log_softmax

        self.sh = [pytensor.shared(p, name=n) for p, n in zip(init_params(), NAMES)]
        Wx, Wh, b, Wy, by = self.sh
        xs, ys = pt.imatrix("x"), pt.imatrix("y")

        def step(a_x, h, c, Wh):
            a = a_x + h @ Wh
            i, f = pt.sigmoid(a[:, :HID]), pt.sigmoid(a[:, HID:2 * HID])
            g, o = pt.tanh(a[:, 2 * HID:3 * HID]), pt.sigmoid(a[:, 3 * HID:])
            c_new = f * c + i * g
            return o * pt.tanh(c_new), c_new

        zero = pt.zeros((BATCH, HID), dtype="float32")
        hs, _ = pytensor.scan(step, sequences=[Wx[xs] + b], outputs_info=[zero, zero],
                              non_sequences=[Wh], return_updates=False)
        logp = log_softmax(hs.reshape((T * BATCH, HID)) @ Wy + by, axis=1)
        cost = -logp[pt.arange(T * BATCH), ys.flatten()].mean()
        grads = pytensor.grad(cost, self.sh)
        lr = np.float32(LR)
        self.f = pytensor.function([xs, ys], cost, mode="CVM",
                                   updates=[(v, v - lr * g) for v, g in zip(self.sh, grads)])
        self.x, self.y = x, y

    def step(self):
        return self.f(self.x, self.y)

    def params(self):
        return [v.get_value(borrow=True) for v in self.sh]


class JaxLSTM:
    def __init__(self, x, y):
        import jax
        import jax.numpy as jnp
        from jax import lax

        def loss(p, x, y):
            Wx, Wh, b, Wy, by = p

            def cell(carry, a_x):
                h, c = carry
                a = a_x + h @ Wh
                i, f = jax.nn.sigmoid(a[:, :HID]), jax.nn.sigmoid(a[:, HID:2 * HID])
                g, o = jnp.tanh(a[:, 2 * HID:3 * HID]), jax.nn.sigmoid(a[:, 3 * HID:])
                c = f * c + i * g
                h = o * jnp.tanh(c)
                return (h, c), h

            zero = jnp.zeros((BATCH, HID), jnp.float32)
            _, hs = lax.scan(cell, (zero, zero), Wx[x] + b)
            logp = jax.nn.log_softmax(hs.reshape(T * BATCH, HID) @ Wy + by)
            return -jnp.mean(logp[jnp.arange(T * BATCH), y.ravel()])

        def step(p, x, y):
            cost, g = jax.value_and_grad(loss)(p, x, y)
            return [w - LR * gw for w, gw in zip(p, g)], cost

        self.jstep = jax.jit(step)
        self.p = [jnp.asarray(v) for v in init_params()]
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)

    def step(self):
        self.p, cost = self.jstep(self.p, self.x, self.y)
        return cost.block_until_ready()

    def params(self):
        return [np.asarray(v) for v in self.p]


SYSTEMS = {"numpy": ("numpy", NumpyLSTM), "tracesym": ("tracesym", TracesymLSTM),
           "pytensor C (CVM)": ("pytensor", PyTensorLSTM), "jax jit": ("jax", JaxLSTM)}


def _overhead_peers(xv, systems, skipped):
    """The one-add loop in PyTensor's scan (C) and JAX's lax.scan, where importable."""
    if "pytensor C (CVM)" in systems and H.peer("pytensor", skipped) is not None:
        import pytensor
        import pytensor.tensor as pt

        x = pt.dvector("x")
        zero = pt.constant(np.float64(0.0))  # pt.constant(0.0) is float32 (autocast)
        out = pytensor.scan(lambda a, h: h + a, sequences=x, outputs_info=zero,
                            return_updates=False)
        pf = pytensor.function([x], out[-1], mode="CVM")
        systems["pytensor C (CVM)"] = lambda: pf(xv)
    if "jax jit" in systems and H.peer("jax", skipped) is not None:
        import jax
        from jax import lax

        jax.config.update("jax_enable_x64", True)
        jf = jax.jit(lambda v: lax.scan(lambda h, a: (h + a, None), 0.0, v)[0])
        xj = jax.numpy.asarray(xv)
        systems["jax jit"] = lambda: jf(xj).block_until_ready()


def overhead(n=2000, names=(), skipped=None):
    """Seconds per step of an almost empty step: scan vs a Python loop over numpy scalars (and
    the peers' loops among `names`)."""
    import tracesym as ts

    x = ts.dvector("x")
    out, _ = ts.scan(lambda a, h: h + a, sequences=x, outputs_info=ts.constant(0.0))
    f = ts.function([x], out[-1])
    xv = np.random.default_rng(0).random(n)

    def python_loop():
        h = np.float64(0.0)
        for a in xv:
            h = np.add(h, a)
        return h

    systems = {"numpy": python_loop, "tracesym": lambda: f(xv)}
    peers = {name: None for name in names if name not in systems}
    _overhead_peers(xv, peers, {} if skipped is None else skipped)
    systems.update((k, v) for k, v in peers.items() if v is not None)
    for name, fn in systems.items():
        np.testing.assert_allclose(float(fn()), python_loop(), err_msg=name)
    stats = H.bench(systems, rounds=5, inner=3)
    for s in stats.values():
        for k in ("median", "min", "max"):
            s[k] /= n
    H.report(f"W5 scan per-step overhead, step = one scalar add ({n} steps), per step", stats)


def child(system):
    lib, factory = SYSTEMS[system]
    t0 = time.perf_counter()
    __import__(lib)
    t1 = time.perf_counter()
    factory(*make_data()).step()
    H.child_result({"import": t1 - t0, "first_step": time.perf_counter() - t1})


def main():
    args = H.arg_parser(__doc__).parse_args()
    if args.child:
        return child(args.child)

    x, y = make_data()
    skipped, failures = {}, []
    objs, first = H.build_trainers(SYSTEMS, args.only, (x, y), CHECK_STEPS, skipped)
    H.env_report()

    H.check_trainers("W5", objs, first, NAMES, CHECK_STEPS, 1e-4, 1e-3, failures)

    stats = H.bench({n: o.step for n, o in objs.items()}, rounds=3 if args.quick else 7, inner=2)
    H.report(f"W5 time per train step, LSTM {T} steps x batch {BATCH}, hidden {HID}, float32", stats)
    print("# build + compile + first steps, in process: "
          + ", ".join(f"{n} {first[n][0]:.2f} s" for n in objs if n != "numpy"))
    overhead(500 if args.quick else 2000, list(objs), skipped)

    if not args.no_compile_times:
        children = [n for n in ("tracesym", "pytensor C (CVM)", "jax jit") if n in objs]
        results = {n: H.cold_warm(os.path.abspath(__file__), n, timeout=600) for n in children}
        if results:
            H.report_compile("W5 compile time of the train function", results)
    H.print_skipped(skipped)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
