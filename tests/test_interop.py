"""PyTorch state dicts in and out: the mapping on hand-built arrays, and, where torch is
installed (it is not a dependency), real modules against the converted models in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
from rnn_jax.cells import GRU, LSTM, Elman
from rnn_jax.interop import cell_from_torch, cell_to_torch, model_from_torch, model_to_torch

D, H, O, N, T = 3, 4, 2, 5, 6
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def state_dict(kind, seed=0):
    """Random float32 arrays under PyTorch's names."""
    rng = np.random.default_rng(seed)
    rows = GATES[kind] * H
    shapes = {
        "weight_ih_l0": (rows, D),
        "weight_hh_l0": (rows, H),
        "bias_ih_l0": (rows,),
        "bias_hh_l0": (rows,),
    }
    return {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}


def test_gru_gates_are_reordered_and_its_candidate_bias_kept_apart():
    sd = state_dict("gru")
    cell = cell_from_torch(sd, "gru")
    assert isinstance(cell, GRU) and cell.reset == "after"
    r, z, n = (slice(k * H, (k + 1) * H) for k in range(3))  # PyTorch's order
    np.testing.assert_array_equal(cell.Wx[0], sd["weight_ih_l0"][z])  # ours: z, r, n
    np.testing.assert_array_equal(cell.Wh[1], sd["weight_hh_l0"][r])
    np.testing.assert_allclose(cell.b[0], sd["bias_ih_l0"][z] + sd["bias_hh_l0"][z])
    np.testing.assert_array_equal(cell.b[2], sd["bias_ih_l0"][n])
    np.testing.assert_array_equal(cell.bh_n, sd["bias_hh_l0"][n])


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_rnn_and_lstm_biases_fold(kind):
    sd = state_dict(kind)
    cell = cell_from_torch(sd, kind)
    folded = sd["bias_ih_l0"] + sd["bias_hh_l0"]
    np.testing.assert_allclose(np.ravel(cell.b), folded)
    back = cell_to_torch(cell)
    np.testing.assert_allclose(back["bias_ih_l0"], folded)
    assert not np.any(back["bias_hh_l0"])


@pytest.mark.parametrize("name", ["elman", "gru", "lstm"])
def test_ours_to_torch_and_back_is_exact(name):
    model = rnn_jax.init_model(name, key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O)
    model = jax.tree.map(lambda w: w + 0.1, model)  # non-zero biases
    kind = {"elman": "rnn", "gru": "gru", "lstm": "lstm"}[name]
    again = model_from_torch(*model_to_torch(model), kind)
    assert jax.tree.structure(again) == jax.tree.structure(model)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_state_dicts_and_cells_are_named():
    sd = state_dict("gru")
    with pytest.raises(ValueError, match="state_dict lacks bias_hh_l0"):
        cell_from_torch({k: v for k, v in sd.items() if k != "bias_hh_l0"}, "gru")
    with pytest.raises(ValueError, match="weight_ih_l0 must have shape .12, 3. for an nn.GRU with H=4"):
        cell_from_torch({**sd, "weight_ih_l0": sd["weight_ih_l0"][:8]}, "gru")
    with pytest.raises(ValueError, match="only a single-layer, one-directional module"):
        cell_from_torch({**sd, "weight_ih_l1": sd["weight_ih_l0"]}, "gru")
    with pytest.raises(ValueError, match="kind must be one of rnn, gru, lstm"):
        cell_from_torch(sd, "transformer")
    with pytest.raises(ValueError, match="use reset='after'"):
        cell_to_torch(GRU(key=jax.random.key(0), input_dim=D, hidden_dim=H, reset="before"))
    with pytest.raises(ValueError, match="nn.RNN has tanh and relu only"):
        cell_to_torch(Elman(key=jax.random.key(0), input_dim=D, hidden_dim=H, activation="sigmoid"))
    with pytest.raises(ValueError, match="no PyTorch module corresponds to the IndRNN cell"):
        cell_to_torch(rnn_jax.IndRNN(key=jax.random.key(0), input_dim=D, hidden_dim=H))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weight_hh_l0": np.float32(1.0)}, r"weight_hh_l0 must be a matrix \(2-D\); got shape \(\)"),
        ({"weight_ih_l0": np.array([["w"]])}, "weight_ih_l0 must hold floating-point weights; got dtype <U1"),
        ({"bias_ih_l0": np.zeros((12, 1), np.float32)}, r"bias_ih_l0 must be a vector \(1-D\); got shape"),
        ({"weight_hh_l0": np.ones((12, 4), np.int64)}, "weight_hh_l0 must hold floating-point weights; got"),
    ],
)
def test_arrays_of_the_wrong_kind_are_named_with_what_was_expected(change, message):
    with pytest.raises(ValueError, match=message):
        cell_from_torch({**state_dict("gru"), **change}, "gru")


def test_a_readout_state_without_its_bias_or_of_other_sizes_is_named():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(O, H)).astype(np.float32)
    with pytest.raises(ValueError, match=r"linear_state lacks bias \(an nn.Linear's weight"):
        model_from_torch(state_dict("lstm"), {"weight": weight}, "lstm")
    with pytest.raises(ValueError, match=r"linear_state must hold weight \(O, H=4\) and bias \(O,\)"):
        model_from_torch(
            state_dict("lstm"), {"weight": weight[:, :3], "bias": np.zeros(O, np.float32)}, "lstm"
        )


def torch_against_ours(kind: str, nonlinearity: str = "tanh") -> dict[str, float]:
    """A float64 torch module plus an ``nn.Linear`` on every step; the converted model's outputs
    and gradients (loss: half the mean squared error of all outputs), as max relative errors."""
    import torch

    torch.manual_seed(0)
    make = {"rnn": lambda: torch.nn.RNN(D, H, nonlinearity=nonlinearity), "gru": lambda: torch.nn.GRU(D, H)}
    make["lstm"] = lambda: torch.nn.LSTM(D, H)
    module, linear = make[kind]().double(), torch.nn.Linear(H, O).double()
    xs = torch.randn(N, T, D, dtype=torch.float64)
    ys = torch.randn(N, T, O, dtype=torch.float64)
    out = linear(module(xs.transpose(0, 1))[0]).transpose(0, 1)  # (N, T, O)
    torch_loss = 0.5 * ((out - ys) ** 2).sum(-1).mean()
    torch_loss.backward()

    def numpy_state(m):
        return {k: v.detach().numpy() for k, v in m.state_dict().items()}

    with jax.enable_x64(True):
        model = model_from_torch(numpy_state(module), numpy_state(linear), kind, nonlinearity=nonlinearity)
        xs_j, ys_j = jnp.asarray(xs.numpy()), jnp.asarray(ys.numpy())
        ours = jax.vmap(model)(xs_j)
        grads = rnn_jax.manual_grads(model, xs_j, ys_j, target="all")
        autodiff = jax.grad(rnn_jax.loss)(model, xs_j, ys_j, target="all")
        ours_sd, ours_linear = model_to_torch(grads)
        auto_sd, _ = model_to_torch(autodiff)
    # Both bias vectors get the same gradient, except the GRU candidate's recurrent one.
    ours_sd["bias_hh_l0"] = ours_sd["bias_ih_l0"].copy()
    auto_sd["bias_hh_l0"] = auto_sd["bias_ih_l0"].copy()
    if kind == "gru":
        ours_sd["bias_hh_l0"][2 * H :] = np.asarray(grads.cell.bh_n)
        auto_sd["bias_hh_l0"][2 * H :] = np.asarray(autodiff.cell.bh_n)
    theirs = {k: v.grad.numpy() for k, v in module.named_parameters()}
    theirs_linear = {k: v.grad.numpy() for k, v in linear.named_parameters()}

    def rel(a, b):
        return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))

    return {
        "outputs": rel(ours, out.detach().numpy()),
        "manual_grads": max(
            *(rel(ours_sd[k], theirs[k]) for k in theirs),
            *(rel(ours_linear[k], theirs_linear[k]) for k in theirs_linear),
        ),
        "autodiff": max(rel(auto_sd[k], theirs[k]) for k in theirs),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "nonlinearity"), [("rnn", "tanh"), ("rnn", "relu"), ("gru", None), ("lstm", None)]
)
def test_torch_modules_and_converted_models_agree_in_float64(kind, nonlinearity):
    pytest.importorskip("torch")
    errors = torch_against_ours(kind, nonlinearity or "tanh")
    assert max(errors.values()) <= 1e-12, errors


@pytest.mark.slow
def test_converted_lstm_state_dict_loads_into_torch():
    torch = pytest.importorskip("torch")
    model = rnn_jax.init_model("lstm", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O)
    module = torch.nn.LSTM(D, H)
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in model_to_torch(model)[0].items()})
    xs = np.array(jax.random.normal(jax.random.key(1), (T, D)))
    theirs = module(torch.from_numpy(xs))[0].detach().numpy()
    np.testing.assert_allclose(np.asarray(LSTM.__call__(model.cell, jnp.asarray(xs))[0]), theirs, atol=1e-5)


def test_stacks_and_bidirectional_layers_are_refused_with_a_sentence(key):
    from rnn_jax.interop import model_to_torch
    from rnn_jax.model import init_model

    model = init_model("gru", key=key, input_dim=2, hidden_dim=3, output_dim=1, bidirectional=True)
    with pytest.raises(ValueError, match="no PyTorch module corresponds to the Bidirectional cell"):
        model_to_torch(model)
