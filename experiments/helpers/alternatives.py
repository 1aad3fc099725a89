"""What users would write instead of rnn_jax, on the benchmark's workloads (used by benchmark.py).

Each builder returns a function of no arguments that runs one unit of work and blocks until it
is done, so that ``benchmark.median_time`` can time it. Every variant gets the same sizes and
data as the rnn_jax rows (NumPy float32 arrays; the NumPy and PyTorch variants also the same
weights, by the names of ``ElmanParams``; Flax draws its own) and computes the same quantity:
one gradient of the mean of ``0.5 * (V h_T + c - y)^2`` over the batch, or the tutorial's epoch.

* ``tutorial_epoch_as_published``: the tutorial's own NumPy loop, its wrong backward pass
  included (``../docs/bptt.md`` and the tutorial description): per example and step an inner loop
  of up to ``k`` steps, three matrix-vector products each, and its length-``T`` one-hot input
  through a ``(H, T)`` input matrix. Timed for context: its gradient is not a gradient.
* PyTorch (when importable): the tutorial's epoch and the gradient steps in eager mode, with a
  hand-written sigmoid cell (``nn.RNN`` offers only tanh and relu), and ``nn.RNN`` (tanh) for
  the gradient steps, each as a user would write it; threads as PyTorch sets them.
* Flax (the optional ``bench`` dependency group): ``nn.RNN(nn.SimpleCell)`` with a sigmoid and a
  ``Dense`` readout under ``jax.jit(jax.grad(...))``; truncation by a second ``nn.RNN`` call
  from a ``stop_gradient`` carry.
"""

from __future__ import annotations

import importlib.util

import numpy as np


def missing(module: str) -> str | None:
    """Why a variant is skipped (``None`` when ``module`` imports)."""
    if importlib.util.find_spec(module) is None:
        return f"{module} is not importable; install it to include this variant"
    return None


# ---------------------------------------------------------------- the tutorial as published


def tutorial_epoch_as_published(
    p: dict, x_all: np.ndarray, y_all: np.ndarray, lr: float, k: int = 5, updated: dict | None = None
) -> float:
    """One epoch of the tutorial's loop as written (its wrong backward pass), ``x_all (N, T, 1)``:
    loss over every window, then per-example updates on the first 100 windows. Returns the
    summed loss; ``updated`` (if given) receives the final ``W (H, H)`` and ``V (1, H)``."""
    n_steps = x_all.shape[1]
    hidden = p["W"].shape[0]
    u_full = np.repeat(p["U"], n_steps, axis=1)  # (H, T): one input column per step, as it does
    w, v = p["W"], p["V"]

    def forward(x):
        hs, pres = [np.zeros(hidden, np.float32)], []
        for t in range(n_steps):
            one_hot = np.zeros(n_steps, np.float32)
            one_hot[t] = x[t, 0]
            pre = u_full @ one_hot + w @ hs[-1]
            pres.append(pre)
            hs.append(1.0 / (1.0 + np.exp(-pre)))
        return hs, pres

    total = 0.0
    for x, y in zip(x_all, y_all, strict=True):
        hs, _ = forward(x)
        total += 0.5 * float(np.sum((v @ hs[-1] - y) ** 2))
    for x, y in zip(x_all[:100], y_all[:100], strict=True):
        hs, pres = forward(x)
        a = pres[-1]
        delta = v @ hs[-1] - y
        du, dw, dv = np.zeros_like(u_full), np.zeros_like(w), np.zeros_like(v)
        du_acc, dw_acc = np.zeros_like(u_full), np.zeros_like(w)
        for t in range(n_steps):
            dv += np.outer(delta, hs[t + 1])
            g = v.T @ delta
            d_a = a * (1 - a) * g
            dh_prev = w.T @ d_a
            for _ in range(t - 1, max(0, t - k) - 1, -1):
                d_a = a * (1 - a) * (g + dh_prev)
                dh_prev = w.T @ d_a
                dw_acc += (w @ hs[t])[:, None]
                one_hot = np.zeros(n_steps, np.float32)
                one_hot[t] = x[t, 0]
                du_acc += (u_full @ one_hot)[:, None]
            du += du_acc
            dw += dw_acc
        u_full = u_full - lr * np.clip(du, -10, 10)
        w = w - lr * np.clip(dw, -10, 10)
        v = v - lr * np.clip(dv, -10, 10)
    if updated is not None:
        updated |= {"W": w, "V": v}
    return total


# ---------------------------------------------------------------- PyTorch (optional)


def _torch_params(p: dict):
    import torch

    return {name: torch.tensor(value, requires_grad=True) for name, value in p.items()}


def _torch_final_state(tp: dict, xs, h, with_grad: bool):
    """Sigmoid Elman steps over ``xs (B, T, 1)`` from ``h (B, H)``."""
    import torch

    with torch.set_grad_enabled(with_grad):
        drive = xs @ tp["U"].T + tp["b"]  # (B, T, H)
        for t in range(xs.shape[1]):
            h = torch.sigmoid(drive[:, t] + h @ tp["W"].T)
    return h


def _torch_loss(tp: dict, xs, ys, k: int | None):
    """Mean over the batch of ``0.5 (V h_T + c - y)^2``; only the last ``k`` steps carry gradient."""
    import torch

    n, t_len, _ = xs.shape
    cut = 0 if k is None else max(0, t_len - k)
    h = torch.zeros(n, tp["W"].shape[0])
    if cut:
        h = _torch_final_state(tp, xs[:, :cut], h, with_grad=False)
    h = _torch_final_state(tp, xs[:, cut:], h, with_grad=True)
    return 0.5 * ((h @ tp["V"].T + tp["c"] - ys) ** 2).sum(-1).mean()


def torch_gradient_step(p: dict, xs: np.ndarray, ys: np.ndarray, k: int | None):
    """One gradient of the sigmoid cell in eager mode; the call returns every parameter's."""
    import torch

    tp, xt, yt = _torch_params(p), torch.from_numpy(xs), torch.from_numpy(ys)

    def run():
        for value in tp.values():
            value.grad = None
        _torch_loss(tp, xt, yt, k).backward()
        return {name: value.grad for name, value in tp.items()}

    return run


def torch_nn_rnn_step(p: dict, xs: np.ndarray, ys: np.ndarray, k: int | None):
    """One gradient with ``torch.nn.RNN`` (tanh) and a linear readout; truncation by running the
    first ``T - k`` steps without autograd."""
    import torch

    hidden = p["W"].shape[0]
    rnn = torch.nn.RNN(p["U"].shape[1], hidden, nonlinearity="tanh", batch_first=True)
    head = torch.nn.Linear(hidden, p["V"].shape[0])
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["U"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        rnn.bias_hh_l0.zero_()
        head.weight.copy_(torch.from_numpy(p["V"]))
        head.bias.copy_(torch.from_numpy(p["c"]))
    xt, yt = torch.from_numpy(xs), torch.from_numpy(ys)
    cut = 0 if k is None else max(0, xs.shape[1] - k)

    def run():
        rnn.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        h0 = None
        if cut:
            with torch.no_grad():
                _, h0 = rnn(xt[:, :cut])
        out, _ = rnn(xt[:, cut:], h0)
        (0.5 * ((head(out[:, -1]) - yt) ** 2).sum(-1).mean()).backward()
        return rnn.weight_hh_l0.grad

    return run


def torch_tutorial_epoch(p: dict, x_all: np.ndarray, y_all: np.ndarray, lr: float):
    """The tutorial's epoch in PyTorch eager: a batched loss pass without autograd, then 100
    per-example steps (k=5, values clipped at +-10, plain SGD)."""
    import torch

    tp = _torch_params(p)
    xt, yt = torch.from_numpy(x_all), torch.from_numpy(y_all)
    opt = torch.optim.SGD(list(tp.values()), lr=lr)

    def run():
        with torch.no_grad():
            total = _torch_loss(tp, xt, yt, None)
        for i in range(100):
            opt.zero_grad(set_to_none=True)
            _torch_loss(tp, xt[i : i + 1], yt[i : i + 1], 5).backward()
            torch.nn.utils.clip_grad_value_(list(tp.values()), 10.0)
            opt.step()
        return total

    return run


# ---------------------------------------------------------------- Flax (optional `bench` group)


def flax_gradient_step(p: dict, xs: np.ndarray, ys: np.ndarray, k: int | None):
    """One jitted gradient of ``nn.RNN(nn.SimpleCell)`` (sigmoid) with a ``Dense`` readout."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    hidden = p["W"].shape[0]

    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            cell = nn.SimpleCell(features=hidden, activation_fn=nn.sigmoid)
            rnn = nn.RNN(cell)
            cut = 0 if k is None else max(0, xs.shape[1] - k)
            carry = None
            if cut:
                carry, _ = rnn(xs[:, :cut], return_carry=True)
                carry = jax.lax.stop_gradient(carry)
            hs = rnn(xs[:, cut:], initial_carry=carry)
            return nn.Dense(p["V"].shape[0])(hs[:, -1])

    model = Model()
    variables = model.init(jax.random.key(0), jnp.asarray(xs))

    def loss(variables, xs, ys):
        return 0.5 * jnp.mean(jnp.sum((model.apply(variables, xs) - ys) ** 2, axis=-1))

    grad = jax.jit(jax.grad(loss))
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    return lambda: jax.block_until_ready(grad(variables, xs, ys))


class min_char_rnn:  # noqa: N801 - named after the program it imitates
    """A character model trained the way min-char-rnn-style NumPy programs do it: an Elman
    network (tanh, ``hidden`` units) over one stream, one ``seq_length``-step window per update,
    a Python loop over the window's steps forward and back, per-entry clipping to [-5, 5] and
    Adagrad. Written here for ``experiments/char_lm.py``'s comparison (same data, same updates).
    """

    def __init__(
        self,
        ids: np.ndarray,
        vocab_size: int,
        *,
        hidden: int,
        seq_length: int,
        learning_rate: float,
        seed: int,
    ):
        rng = np.random.default_rng(seed)
        self.ids, self.size, self.steps, self.lr = ids, vocab_size, seq_length, learning_rate
        self.params = {
            "Wxh": rng.standard_normal((hidden, vocab_size)) * 0.01,
            "Whh": rng.standard_normal((hidden, hidden)) * 0.01,
            "Why": rng.standard_normal((vocab_size, hidden)) * 0.01,
            "bh": np.zeros((hidden, 1)),
            "by": np.zeros((vocab_size, 1)),
        }
        self.memory = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.h = np.zeros((hidden, 1))
        self.position = 0

    def _window(self, inputs, targets):
        """Loss and gradients of one window, the state carried in from the last."""
        p = self.params
        xs, hs, ps = {}, {-1: self.h}, {}
        loss = 0.0
        for t, (i, j) in enumerate(zip(inputs, targets, strict=True)):
            xs[t] = np.zeros((self.size, 1))
            xs[t][i] = 1.0
            hs[t] = np.tanh(p["Wxh"] @ xs[t] + p["Whh"] @ hs[t - 1] + p["bh"])
            logits = p["Why"] @ hs[t] + p["by"]
            e = np.exp(logits - logits.max())
            ps[t] = e / e.sum()
            loss -= np.log(ps[t][j, 0])
        grads = {name: np.zeros_like(v) for name, v in p.items()}
        carry = np.zeros_like(self.h)
        for t in reversed(range(len(inputs))):
            dy = ps[t].copy()
            dy[targets[t]] -= 1.0
            grads["Why"] += dy @ hs[t].T
            grads["by"] += dy
            dh = p["Why"].T @ dy + carry
            da = (1.0 - hs[t] * hs[t]) * dh
            grads["bh"] += da
            grads["Wxh"] += da @ xs[t].T
            grads["Whh"] += da @ hs[t - 1].T
            carry = p["Whh"].T @ da
        for g in grads.values():
            np.clip(g, -5.0, 5.0, out=g)
        self.h = hs[len(inputs) - 1]
        return loss, grads

    def run(self, updates: int) -> None:
        for _ in range(updates):
            if self.position + self.steps + 1 >= len(self.ids):
                self.position, self.h = 0, np.zeros_like(self.h)
            window = self.ids[self.position : self.position + self.steps + 1]
            _, grads = self._window(window[:-1], window[1:])
            for name, g in grads.items():
                self.memory[name] += g * g
                self.params[name] -= self.lr * g / np.sqrt(self.memory[name] + 1e-8)
            self.position += self.steps

    def bits_per_char(self, ids: np.ndarray, context: int = 0) -> float:
        """As ``rnn_jax.data.text.bits_per_char``: ``ids[context + 1:]`` scored, from a zero state."""
        p, total = self.params, 0.0
        h = np.zeros_like(self.h)
        for t, (i, j) in enumerate(zip(ids[:-1], ids[1:], strict=True)):
            h = np.tanh(p["Wxh"][:, [i]] + p["Whh"] @ h + p["bh"])
            if t >= context:
                logits = p["Why"] @ h + p["by"]
                logits = logits - logits.max()
                total -= logits[j, 0] - np.log(np.exp(logits).sum())
        return total / (len(ids) - 1 - context) / np.log(2.0)
