"""Synthetic series beyond the sine wave, generated on the host with NumPy (deterministic)."""

from __future__ import annotations

import numpy as np

from rnn_jax.errors import InputError


def mackey_glass(
    n: int,
    *,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    power: float = 10.0,
    sample_every: float = 1.0,
    dt: float = 0.1,
    transient: float = 1000.0,
    x0: float = 1.2,
) -> np.ndarray:
    """``n`` samples of the Mackey-Glass delay equation (Mackey & Glass 1977),
    ``dx/dt = beta x(t - tau) / (1 + x(t - tau)^power) - gamma x(t)``, chaotic for ``tau = 17``;
    fourth-order Runge-Kutta with step ``dt`` (the delayed value held per step), constant history
    ``x0``, the first ``transient`` time units dropped. Returns ``(n, 1)``."""
    if n < 1 or dt <= 0 or sample_every < dt or tau < dt:
        raise InputError("mackey_glass needs n >= 1 and 0 < dt <= sample_every, dt <= tau")
    lag, stride = round(tau / dt), round(sample_every / dt)
    skip = round(transient / dt)
    total = skip + n * stride
    x = np.empty(total + lag + 1)
    x[: lag + 1] = x0

    def f(value, delayed):
        return beta * delayed / (1.0 + delayed**power) - gamma * value

    for i in range(lag, total + lag):
        d = x[i - lag]
        k1 = f(x[i], d)
        k2 = f(x[i] + 0.5 * dt * k1, d)
        k3 = f(x[i] + 0.5 * dt * k2, d)
        k4 = f(x[i] + dt * k3, d)
        x[i + 1] = x[i] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[lag + 1 + skip :: stride][:n, None]


def coupled_oscillators(
    n: int,
    *,
    omegas: tuple[float, float] = (0.35, 0.52),
    damping: float = 0.02,
    coupling: float = 0.05,
    noise: float = 0.02,
    seed: int = 0,
) -> np.ndarray:
    """Two damped, coupled, noise-driven oscillators sampled every unit of time, ``(n, 2)``:
    ``x_i'' = -omega_i^2 x_i - damping x_i' + coupling (x_j - x_i) + noise``, integrated with
    semi-implicit Euler at ten sub-steps per sample."""
    rng = np.random.default_rng(seed)
    w2 = np.square(np.asarray(omegas))
    pos, vel = np.array([1.0, 0.0]), np.array([0.0, 0.5])
    h, out = 0.1, np.empty((n, 2))
    for i in range(n):
        for _ in range(10):
            acc = -w2 * pos - damping * vel + coupling * (pos[::-1] - pos)
            vel = vel + h * acc + np.sqrt(h) * noise * rng.standard_normal(2)
            pos = pos + h * vel
        out[i] = pos
    return out
