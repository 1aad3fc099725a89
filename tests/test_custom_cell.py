"""A cell defined here, outside the package, gets unroll, truncation, training, sweeps and
gradcheck from the protocol; its hand-derived backward pass is verified against autodiff, and a
deliberately wrong one is caught. The cell is the minimal gated unit (Zhou et al. 2016)::

    f_t = σ(Wf x_t + Uf h_{t-1} + bf)                 forget gate
    n_t = tanh(Wn x_t + Un (f_t ⊙ h_{t-1}) + bn)      candidate
    h_t = (1 - f_t) ⊙ h_{t-1} + f_t ⊙ n_t
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from jaxtyping import Array, Float

import rnn_jax
from rnn_jax.cells import REGISTRY, Cell, CellGrads
from rnn_jax.cells.base import previous, reverse_scan, sum_outer, with_arrays
from rnn_jax.gradcheck import check_gradients, perturbed, random_batch


class MGU(Cell):
    Wx: Float[Array, "2 H D"]  # input -> (forget, candidate)
    Uf: Float[Array, "H H"]
    Un: Float[Array, "H H"]
    b: Float[Array, "2 H"]

    def __init__(self, *, key, input_dim, hidden_dim, scale=1.0, dtype=jnp.float32):
        x_key, f_key, n_key = jax.random.split(key, 3)
        self.Wx = 0.5 * jax.random.normal(x_key, (2, hidden_dim, input_dim), dtype) / input_dim**0.5
        orthogonal = jax.nn.initializers.orthogonal()
        self.Uf = orthogonal(f_key, (hidden_dim, hidden_dim), dtype) * scale
        self.Un = orthogonal(n_key, (hidden_dim, hidden_dim), dtype) * scale
        self.b = jnp.zeros((2, hidden_dim), dtype)

    @property
    def input_dim(self):
        return self.Wx.shape[2]

    @property
    def hidden_dim(self):
        return self.Wx.shape[1]

    def check(self):
        if self.Uf.shape != (self.hidden_dim, self.hidden_dim):
            raise ValueError("MGU weights disagree on H")

    def input_drive(self, xs):
        return jnp.einsum("ghd,td->tgh", self.Wx, xs) + self.b[None]

    def recur(self, h, drive):
        f = jax.nn.sigmoid(drive[0] + self.Uf @ h)
        n = jnp.tanh(drive[1] + self.Un @ (f * h))
        return (1.0 - f) * h + f * n

    def backward(self, xs, h0, states, dh_out, cuts, mask=None):
        hp = previous(states, h0)
        drive = self.input_drive(xs)
        f = jax.nn.sigmoid(drive[:, 0] + hp @ self.Uf.T)
        n = jnp.tanh(drive[:, 1] + (f * hp) @ self.Un.T)

        def step(dh, inputs):
            f, n, hp = inputs
            da_n = dh * f * (1.0 - n * n)
            q = da_n @ self.Un  # gradient at f ⊙ h_{t-1}
            da_f = (dh * (n - hp) + q * hp) * f * (1.0 - f)
            dh_prev = self.dh_prev(dh, f, q, da_f)
            return dh_prev, jnp.stack([da_f, da_n])

        dh0, da = reverse_scan(step, jnp.zeros_like(h0), (f, n, hp), dh_out, cuts=cuts, mask=mask)
        return CellGrads(tape=(da, xs, hp, f * hp), xs=jnp.einsum("tgh,ghd->td", da, self.Wx), h0=dh0)

    def param_grads(self, tape):
        da, xs, hp, fh = tape
        return with_arrays(
            self,
            Wx=sum_outer(da, xs),
            Uf=sum_outer(da[:, 0], hp),
            Un=sum_outer(da[:, 1], fh),
            b=jnp.sum(da, axis=0),
        )

    def dh_prev(self, dh, f, q, da_f):
        """``h_{t-1}`` enters step ``t`` three ways: the carry, the candidate's product, the gate."""
        return dh * (1.0 - f) + q * f + da_f @ self.Uf


class ForgetfulMGU(MGU):
    """The classic slip: the path through the candidate's product ``Un (f ⊙ h)`` is dropped."""

    def dh_prev(self, dh, f, q, da_f):
        return dh * (1.0 - f) + da_f @ self.Uf


def mgu_model(cls=MGU, dtype=jnp.float64, seed=0):
    cell_key, readout_key, noise_key = jax.random.split(jax.random.key(seed), 3)
    model = rnn_jax.RNN(
        cell=cls(key=cell_key, input_dim=3, hidden_dim=5, dtype=dtype),
        readout=rnn_jax.Linear(key=readout_key, hidden_dim=5, output_dim=2, dtype=dtype),
    )
    return perturbed(model, noise_key)


T = 9
TRUNCATIONS = [None, 1, 3, T - 1, T, T + 2]


@pytest.mark.grid
@pytest.mark.parametrize("target", ["last", "all"])
@pytest.mark.parametrize("truncation", TRUNCATIONS)
def test_its_backward_passes_gradcheck_in_float64(target, truncation):
    with jax.enable_x64(True):
        model = mgu_model()
        xs, ys = random_batch(model, jax.random.key(1), batch=4, seq_len=T, target=target)
        report = check_gradients(model, xs, ys, target=target, truncation=truncation)
    assert report["ok"] and report["max_rel_err"] <= 1e-10, report
    assert set(report["per_param"]) == {"Wx", "Uf", "Un", "b", "V", "c"}


@pytest.mark.grid
@pytest.mark.parametrize("target", ["last", "all"])
def test_a_wrong_backward_fails_gradcheck(target):
    with jax.enable_x64(True):
        model = mgu_model(ForgetfulMGU)
        xs, ys = random_batch(model, jax.random.key(1), batch=4, seq_len=T, target=target)
        report = check_gradients(model, xs, ys, target=target, truncation=None)
        truncated = check_gradients(model, xs, ys, target=target, truncation=1)
    assert not report["ok"] and report["max_rel_err"] > 1e-3
    # With one-step windows nothing flows into h_{t-1}: the slip cannot show, and does not.
    assert truncated["ok"]


@pytest.mark.slow
def test_it_trains_and_sweeps_by_name(monkeypatch):
    """Registered, the cell is a name in TrainConfig: make_train trains it, vmapped over seeds."""
    monkeypatch.setitem(REGISTRY, "mgu", MGU)
    data = rnn_jax.make_sine_data(length=80, window=10, scale=True)
    config = rnn_jax.TrainConfig(
        cell="mgu",
        hidden_dim=8,
        init="default",
        optimizer="adam",
        epochs=30,
        batch_size=10,
        backward="manual",
    )
    hparams = rnn_jax.make_hparams(learning_rate=1e-2, truncation=4, seq_len=10)
    train = jax.jit(jax.vmap(rnn_jax.make_train(config).train, in_axes=(0, None, None)))
    params, metrics = train(jax.random.split(jax.random.key(0), 3), hparams, data)
    assert isinstance(params.cell, MGU) and params.cell.Uf.shape == (3, 8, 8)
    assert bool(jnp.all(metrics["val_loss"][:, -1] < 0.2 * metrics["val_loss"][:, 0]))


def test_a_cell_without_a_backward_says_how_to_get_gradients():
    class NoBackward(MGU):
        backward = Cell.backward
        param_grads = Cell.param_grads

    with jax.enable_x64(True):
        model = mgu_model(NoBackward)
        xs, ys = random_batch(model, jax.random.key(1), batch=2, seq_len=4)
        with pytest.raises(NotImplementedError, match="NoBackward has no hand-derived backward pass"):
            rnn_jax.manual_grads(model, xs, ys)
        assert eqx.is_array(jax.grad(rnn_jax.loss)(model, xs, ys).cell.Uf)
