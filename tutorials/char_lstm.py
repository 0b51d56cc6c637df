"""Character-level LSTM: a language model over characters, trained with backprop through time.

Theano's LSTM tutorial, written with tracesym and turned into a character model.  Each step
reads one character and predicts the next:

    char -> embedding (straight into the four gate pre-activations) -> LSTM cell -> softmax

The recurrence over time is one `ts.scan`; `ts.grad` differentiates through it (BPTT).  The
text is cut into pieces of at most `--seq-len` + 1 characters (paragraphs first, so pieces come
in many lengths), pieces of similar length are grouped into a minibatch, padded to the longest
and given a mask; the cross-entropy is averaged over the real characters only.  Padding comes
after each piece's end and an LSTM only looks back, so it never changes a real step; the mask
keeps its predictions out of the cost and the gradient.  Training is Adam (or plain SGD with
`--optimizer sgd`), written as tracesym expressions in the update, after clipping the global
gradient norm to `--clip`.

One train function and one single-step sampling function are compiled at the start and reused:
batches of any length go through the same compiled scan.  Every `--sample-every` steps and at
the end the model continues a prompt ("The meaning of life is"); the next-character
probabilities are renormalised in float64 before drawing, so rounding in float32 never makes
them sum to more than one.

Text: the standard library's documentation topics (`pydoc_data.topics`, about 465,000
characters, shipped with Python) by default; `--text FILE` reads any UTF-8 file.  The trained
parameters and the vocabulary are saved to `--out` (.npz).

Run:  python tutorials/char_lstm.py [--epochs 10] [--steps N] [--hidden 128] [--seq-len 100]
                                    [--batch-size 32] [--sample-every 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import tracesym as ts

PROMPT = "The meaning of life is"

# -- data ---------------------------------------------------------------------------------------


def load_text(path=None):
    """The text of `path` (UTF-8), or the standard library's documentation topics."""
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read()
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip() for k in sorted(topics))


class Vocabulary:
    """The characters of a text, each with an integer id (sorted, so the ids are
    reproducible)."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        missing = sorted(set(text) - set(self.index))
        if missing:
            raise ValueError(f"characters {''.join(missing)!r} do not occur in the training "
                             "text, so the model has no id for them")
        return np.array([self.index[ch] for ch in text], np.int32)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


def split_pieces(text, seq_len):
    """Paragraphs cut into pieces of at most seq_len + 1 characters (input and its one-ahead
    target); a paragraph keeps the blank line that ends it, so the model learns where
    paragraphs stop.  Pieces of a single character predict nothing and are dropped."""
    pieces = []
    for para in text.split("\n\n"):
        para += "\n\n"
        for i in range(0, len(para) - 1, seq_len):
            piece = para[i:i + seq_len + 1]
            if len(piece) > 1:
                pieces.append(piece)
    return pieces


def make_batches(pieces, batch_size, rng):
    """Minibatches (x, y, mask), each (time, batch), of pieces of similar length.

    A random order, then a stable sort by length, so each epoch groups different pieces of
    equal length; batches of `batch_size` consecutive pieces, padded with id 0 to the longest
    (mask 0 there), in shuffled order."""
    order = rng.permutation(len(pieces))
    order = order[np.argsort([len(pieces[i]) for i in order], kind="stable")]
    batches = []
    for start in range(0, len(order), batch_size):
        group = [pieces[i] for i in order[start:start + batch_size]]
        steps = max(len(p) for p in group) - 1
        x = np.zeros((steps, len(group)), np.int32)
        y = np.zeros((steps, len(group)), np.int32)
        mask = np.zeros((steps, len(group)), np.float32)
        for j, p in enumerate(group):
            n = len(p) - 1
            x[:n, j], y[:n, j], mask[:n, j] = p[:-1], p[1:], 1.0
        batches.append((x, y, mask))
    return [batches[i] for i in rng.permutation(len(batches))]


# -- the model ----------------------------------------------------------------------------------


def uniform(rng, shape, scale):
    """float32 weights uniform in +-scale."""
    return rng.uniform(-scale, scale, size=shape).astype(np.float32)


class CharLSTM:
    """An embedding into the gates, one LSTM layer, a softmax over the vocabulary; a compiled
    `train` step on a padded minibatch and a compiled one-character `step` for sampling."""

    NAMES = ("Wx", "Wh", "b", "Wy", "by")

    def __init__(self, n_chars, n_hidden=128, seed=0, lr=None, optimizer="adam", clip=5.0):
        lr = DEFAULT_LR[optimizer] if lr is None else lr
        rng = np.random.default_rng(seed)
        H, V = n_hidden, n_chars
        b = np.zeros(4 * H, np.float32)
        b[H:2 * H] = 1.0  # forget gate open at the start: gradients flow back through time
        values = (uniform(rng, (V, 4 * H), 0.1), uniform(rng, (H, 4 * H), 1 / math.sqrt(H)), b,
                  uniform(rng, (H, V), 1 / math.sqrt(H)), np.zeros(V, np.float32))
        self.params = [ts.shared(v, name=n) for v, n in zip(values, self.NAMES)]
        self.n_hidden, self.n_chars = H, V
        self.updates = OPTIMIZERS[optimizer](self.params, lr)
        Wx, Wh, b, Wy, by = self.params

        def cell(gates_x, h, c):
            """One LSTM step: gates_x is the input's contribution to the four gates."""
            a = gates_x + h @ Wh
            i, f = ts.sigmoid(a[:, :H]), ts.sigmoid(a[:, H:2 * H])
            g, o = ts.tanh(a[:, 2 * H:3 * H]), ts.sigmoid(a[:, 3 * H:])
            c = f * c + i * g
            return o * ts.tanh(c), c

        @ts.compile
        def train(x: ts.imatrix, y: ts.imatrix, mask: ts.fmatrix):
            steps, batch = x.shape[0], x.shape[1]
            zero = ts.zeros((batch, H), dtype="float32")
            (hs, _), _ = ts.scan(cell, sequences=Wx[x] + b, outputs_info=[zero, zero])
            logp = ts.logsoftmax(hs.reshape((steps * batch, H)) @ Wy + by)
            nll = -logp[ts.arange(steps * batch), y.flatten()]
            m = mask.flatten()
            cost = (nll * m).sum() / m.sum()  # the mean over real characters only
            grads = clip_by_norm(ts.grad(cost, self.params), clip)
            for p, new in self.updates(grads):
                ts.update(p, new)
            return cost

        @ts.compile
        def step(x: ts.ivector, h: ts.fmatrix, c: ts.fmatrix):
            h, c = cell(Wx[x] + b, h, c)
            return ts.logsoftmax(h @ Wy + by), h, c

        self.train, self.step = train, step

    def sample(self, vocab, prompt=PROMPT, length=200, temperature=0.8, rng=None):
        """The prompt followed by `length` characters drawn one at a time."""
        rng = rng if rng is not None else np.random.default_rng()
        h = np.zeros((1, self.n_hidden), np.float32)
        c = np.zeros_like(h)
        ids = list(vocab.encode(prompt))
        for i in ids[:-1]:  # read the prompt; its last character predicts the first new one
            _, h, c = self.step(np.array([i], np.int32), h, c)
        for _ in range(length):
            logp, h, c = self.step(np.array(ids[-1:], np.int32), h, c)
            z = logp[0].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
        return vocab.decode(ids)

    def save(self, path, vocab):
        with open(path, "wb") as f:  # a file object, so numpy does not append ".npz"
            np.savez(f, chars=np.array(vocab.chars), **{p.name: p.get_value() for p in self.params})


# -- optimisation, as tracesym expressions --------------------------------------------------------


def clip_by_norm(grads, max_norm):
    """The gradients scaled down together so their global L2 norm is at most max_norm."""
    norm = ts.sqrt(sum((g ** 2).sum() for g in grads))
    scale = ts.minimum(1.0, max_norm / (norm + 1e-6)).astype("float32")
    return [g * scale for g in grads]


def sgd(params, lr):
    lr = np.float32(lr)
    return lambda grads: [(p, p - lr * g) for p, g in zip(params, grads)]


def adam(params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (Kingma and Ba, 2015): running means of the gradient and of its square, in shared
    variables next to each parameter, with the bias correction folded into the step size."""
    t = ts.shared(np.float32(0), name="adam.t")
    ms = [ts.shared(np.zeros_like(p.get_value()), name=f"{p.name}.m") for p in params]
    vs = [ts.shared(np.zeros_like(p.get_value()), name=f"{p.name}.v") for p in params]
    lr, b1, b2, eps = (np.float32(v) for v in (lr, beta1, beta2, eps))

    def updates(grads):
        t1 = t + 1
        step = lr * ts.sqrt(1 - b2 ** t1) / (1 - b1 ** t1)
        out = [(t, t1)]
        for p, m, v, g in zip(params, ms, vs, grads):
            m1 = b1 * m + (1 - b1) * g
            v1 = b2 * v + (1 - b2) * g * g
            out += [(m, m1), (v, v1), (p, p - step * m1 / (ts.sqrt(v1) + eps))]
        return out

    return updates


OPTIMIZERS = {"adam": adam, "sgd": sgd}
DEFAULT_LR = {"adam": 5e-3, "sgd": 0.5}


# -- training -----------------------------------------------------------------------------------


def show(line, final):
    """On a terminal, redraw one line while an epoch runs; elsewhere print one line per epoch."""
    if sys.stdout.isatty():
        sys.stdout.write("\r" + line.ljust(79) + ("\n" if final else ""))
        sys.stdout.flush()
    elif final:
        print(line, flush=True)


def train(text, epochs=10, steps=None, n_hidden=128, seq_len=100, batch_size=32, lr=None,
          optimizer="adam", clip=5.0, sample_every=200, sample_length=200, temperature=0.8,
          seed=0, out="char_lstm.npz", prompt=PROMPT, verbose=True):
    """Train on `text` for `epochs` passes or `steps` minibatches, whichever ends first; return
    a summary dict with the cost of every step and the samples drawn."""
    vocab = Vocabulary(text)
    vocab.encode(prompt)  # fail now, not after training, on a prompt the text cannot spell
    pieces = [vocab.encode(p) for p in split_pieces(text, seq_len)]
    if not pieces:
        raise ValueError("the text is too short: it needs at least two characters")
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    model = CharLSTM(len(vocab), n_hidden, seed=seed, lr=lr, optimizer=optimizer, clip=clip)
    # separate streams, so sampling more or less often leaves the minibatch order alone
    rng, sample_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if verbose:
        print(f"text: {len(text)} characters, {len(vocab)} distinct, {len(pieces)} pieces of "
              f"at most {seq_len + 1}; LSTM with {n_hidden} hidden units, {optimizer} lr {lr}")
    costs, samples, times, n, epoch = [], [], [], 0, 0
    start = time.perf_counter()
    while epoch < epochs and (steps is None or n < steps):
        epoch += 1
        batches = make_batches(pieces, batch_size, rng)
        epoch_costs = []
        for i, (x, y, mask) in enumerate(batches):
            if steps is not None and n >= steps:
                break
            epoch_costs.append(float(model.train(x, y, mask)))
            times.append(time.perf_counter() - start)
            n += 1
            if verbose:
                bar = "#" * (20 * (i + 1) // len(batches))
                show(f"epoch {epoch:3d} [{bar:20s}] step {n:5d}  cost {epoch_costs[-1]:.3f}",
                     final=False)
            if sample_every and n % sample_every == 0:
                samples.append((n, model.sample(vocab, prompt, sample_length, temperature,
                                                sample_rng)))
                if verbose:
                    show(f"step {n:5d}  cost {np.mean(epoch_costs[-sample_every:]):.3f}  "
                         f"{times[-1]:.0f} s  sample:", final=True)
                    print(samples[-1][1], flush=True)
        costs += epoch_costs
        if verbose:
            show(f"epoch {epoch:3d}  {len(epoch_costs)} steps  cost {np.mean(epoch_costs):.3f}  "
                 f"{times[-1]:.1f} s", final=True)
    samples.append((n, model.sample(vocab, prompt, sample_length, temperature, sample_rng)))
    model.save(out, vocab)
    elapsed = time.perf_counter() - start
    summary = {"costs": costs, "times": times, "steps": n, "epochs": epoch, "seconds": elapsed,
               "samples": samples, "out": out, "model": model, "vocab": vocab}
    if verbose:
        k = min(20, len(costs))
        print(f"sample after {n} steps:\n{samples[-1][1]}")
        print(f"Training complete in {elapsed:.1f} s ({1000 * elapsed / max(n, 1):.0f} ms per "
              f"step), {n} steps in {epoch} epochs: cost {np.mean(costs[:k]):.3f} over the first "
              f"{k} steps, {np.mean(costs[-k:]):.3f} over the last {k}.  Parameters saved to {out}")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", metavar="FILE",
                    help="a UTF-8 text file to learn; default: Python's documentation topics")
    ap.add_argument("--epochs", type=int, default=10, help="passes over the text (%(default)s)")
    ap.add_argument("--steps", type=int, help="stop after this many minibatches (no limit)")
    ap.add_argument("--hidden", type=int, default=128, help="LSTM units (%(default)s)")
    ap.add_argument("--seq-len", type=int, default=100,
                    help="at most this many characters per sequence (%(default)s)")
    ap.add_argument("--batch-size", type=int, default=32,
                    help="sequences per step (%(default)s)")
    ap.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam",
                    help="%(default)s")
    ap.add_argument("--lr", type=float, help="learning rate (adam 0.005, sgd 0.5)")
    ap.add_argument("--clip", type=float, default=5.0,
                    help="largest gradient norm; larger gradients are scaled down (%(default)s)")
    ap.add_argument("--sample-every", type=int, default=200, metavar="N",
                    help="print a sample every N steps, 0 for only at the end (%(default)s)")
    ap.add_argument("--sample-length", type=int, default=200,
                    help="characters generated after the prompt (%(default)s)")
    ap.add_argument("--temperature", type=float, default=0.8,
                    help="below 1 samples the likelier characters more often (%(default)s)")
    ap.add_argument("--prompt", default=PROMPT, help="the text samples start from (%(default)r)")
    ap.add_argument("--seed", type=int, default=0,
                    help="initial weights, minibatch order and samples (%(default)s)")
    ap.add_argument("--out", default="char_lstm.npz", metavar="PATH",
                    help="where the parameters and vocabulary are saved (%(default)s)")
    args = ap.parse_args(argv)
    return train(load_text(args.text), epochs=args.epochs, steps=args.steps,
                 n_hidden=args.hidden, seq_len=args.seq_len, batch_size=args.batch_size,
                 lr=args.lr, optimizer=args.optimizer, clip=args.clip,
                 sample_every=args.sample_every, sample_length=args.sample_length,
                 temperature=args.temperature, seed=args.seed, out=args.out, prompt=args.prompt)


if __name__ == "__main__":
    main()
