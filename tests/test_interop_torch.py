"""PyTorch state dicts in and out, whole models: the mapping on hand-built arrays, every layout
against PyTorch's documented equations written out in NumPy here, and, where torch is
installed (it is not a dependency: its PyPI wheel is a CUDA build of gigabytes), real modules
against the converted models in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
from rnn_jax.cells import GRU, Elman
from rnn_jax.interop import from_torch, model_from_torch, model_to_torch, to_torch
from rnn_jax.unroll import unroll

D, H, O, N, T = 3, 4, 2, 5, 6
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
CELLS = {"rnn": "elman", "gru": "gru", "lstm": "lstm"}
LAYOUTS = [(1, False), (2, False), (1, True), (3, True)]  # (num_layers, bidirectional)


def state_dict(kind, *, num_layers=1, bidirectional=False, bias=True, seed=0, dtype=np.float32):
    """Random arrays under PyTorch's names for ``nn.RNN/GRU/LSTM(D, H, num_layers, bidirectional)``."""
    rng = np.random.default_rng(seed)
    rows, dirs = GATES[kind] * H, 1 + bidirectional
    out = {}
    for layer in range(num_layers):
        for sfx in ("", "_reverse")[:dirs]:
            width = D if layer == 0 else dirs * H
            names = {"weight_ih": (rows, width), "weight_hh": (rows, H)}
            if bias:
                names |= {"bias_ih": (rows,), "bias_hh": (rows,)}
            out |= {f"{n}_l{layer}{sfx}": rng.normal(size=s).astype(dtype) for n, s in names.items()}
    return out


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def torch_equations(sd, kind, xs, nonlinearity="tanh"):
    """``(T, dirs H)``: the top layer's outputs by the equations of PyTorch's documentation for
    ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM`` (gates ``i, f, g, o`` and ``r, z, n``), every layer
    and direction, the reverse one reading the sequence from its end."""
    layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in sd)
    dirs = 2 if any(k.endswith("_reverse") for k in sd) else 1
    act = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0)}[nonlinearity]
    below = xs
    for layer in range(layers):
        outs = []
        for sfx in ("", "_reverse")[:dirs]:
            w_ih, w_hh = sd[f"weight_ih_l{layer}{sfx}"], sd[f"weight_hh_l{layer}{sfx}"]
            zeros = np.zeros(w_ih.shape[0])
            b_ih, b_hh = sd.get(f"bias_ih_l{layer}{sfx}", zeros), sd.get(f"bias_hh_l{layer}{sfx}", zeros)
            h, c, hs = np.zeros(H), np.zeros(H), []
            for x in below[::-1] if sfx else below:
                gi, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
                if kind == "rnn":
                    h = act(gi + gh)
                elif kind == "gru":
                    r, z = sigmoid(gi[:H] + gh[:H]), sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
                    n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
                    h = (1 - z) * n + z * h
                else:
                    i, f, g, o = np.split(gi + gh, 4)
                    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                    h = sigmoid(o) * np.tanh(c)
                hs.append(h)
            outs.append(np.array(hs[::-1] if sfx else hs))
        below = np.concatenate(outs, axis=-1)
    return below


def test_gru_gates_are_reordered_and_its_candidate_bias_kept_apart():
    sd = state_dict("gru")
    cell = from_torch(sd, "gru")
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
    cell = from_torch(sd, kind)
    folded = sd["bias_ih_l0"] + sd["bias_hh_l0"]
    np.testing.assert_allclose(np.ravel(cell.b), folded)
    back = to_torch(cell)
    np.testing.assert_allclose(back["bias_ih_l0"], folded)
    assert not np.any(back["bias_hh_l0"])


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), LAYOUTS)
def test_every_layout_computes_pytorchs_equations_in_float64(kind, num_layers, bidirectional):
    sd = state_dict(kind, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64)
    xs = np.random.default_rng(1).normal(size=(T, D))
    expected = torch_equations(sd, kind, xs)
    with jax.enable_x64(True):
        recurrence = from_torch(sd, kind)
        assert recurrence.hidden_dim == (1 + bidirectional) * H
        ours = np.asarray(unroll(recurrence, jnp.asarray(xs)))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_a_module_without_biases_converts_with_zero_biases(kind):
    sd = state_dict(kind, num_layers=2, bias=False, dtype=np.float64)
    xs = np.random.default_rng(1).normal(size=(T, D))
    with jax.enable_x64(True):
        ours = np.asarray(unroll(from_torch(sd, kind), jnp.asarray(xs)))
    np.testing.assert_allclose(ours, torch_equations(sd, kind, xs), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["elman", "gru", "lstm"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), LAYOUTS)
def test_ours_to_torch_and_back_is_exact(name, num_layers, bidirectional):
    model = rnn_jax.init_model(
        name,
        key=jax.random.key(0),
        input_dim=D,
        hidden_dim=H,
        output_dim=O,
        num_layers=num_layers,
        bidirectional=bidirectional,
    )
    model = jax.tree.map(lambda w: w + 0.1, model)  # non-zero biases
    kind = {"elman": "rnn", "gru": "gru", "lstm": "lstm"}[name]
    again = model_from_torch(*model_to_torch(model), kind)
    assert jax.tree.structure(again) == jax.tree.structure(model)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_stack_keeps_its_dropout_which_no_state_dict_holds():
    stack = from_torch(state_dict("lstm", num_layers=2), "lstm", dropout=0.25)
    assert stack.dropout == 0.25
    with pytest.raises(ValueError, match="dropout acts between layers; a one-layer model takes 0"):
        from_torch(state_dict("lstm"), "lstm", dropout=0.25)


def test_bad_state_dicts_and_cells_are_named():
    sd = state_dict("gru")
    with pytest.raises(ValueError, match="state_dict lacks bias_hh_l0"):
        from_torch({k: v for k, v in sd.items() if k != "bias_hh_l0"}, "gru")
    with pytest.raises(ValueError, match=r"weight_ih_l0 must have shape \(12, 3\) for an nn.GRU with H=4"):
        from_torch({**sd, "weight_ih_l0": sd["weight_ih_l0"][:8]}, "gru")
    with pytest.raises(
        ValueError, match=r"weight_ih_l1 must have shape \(12, 8\) for an nn.GRU with H=4 reading 8"
    ):
        deep = state_dict("gru", num_layers=2, bidirectional=True)
        from_torch({**deep, "weight_ih_l1": deep["weight_ih_l1"][:, :4]}, "gru")
    with pytest.raises(ValueError, match="state_dict lacks weight_ih_l0_reverse: a 2-direction module of 2"):
        deep = state_dict("gru", num_layers=2, bidirectional=True)
        from_torch({k: v for k, v in deep.items() if not k.endswith("l0_reverse")}, "gru")
    with pytest.raises(ValueError, match="state_dict holds 'weight_xy_l0', which is no nn.GRU weight"):
        from_torch({**sd, "weight_xy_l0": sd["weight_ih_l0"]}, "gru")
    with pytest.raises(ValueError, match="kind must be one of rnn, gru, lstm"):
        from_torch(sd, "transformer")
    with pytest.raises(ValueError, match="use reset='after'"):
        to_torch(GRU(key=jax.random.key(0), input_dim=D, hidden_dim=H, reset="before"))
    with pytest.raises(ValueError, match="nn.RNN has tanh and relu only"):
        to_torch(Elman(key=jax.random.key(0), input_dim=D, hidden_dim=H, activation="sigmoid"))
    with pytest.raises(ValueError, match="no PyTorch layer corresponds to the IndRNN cell"):
        to_torch(rnn_jax.IndRNN(key=jax.random.key(0), input_dim=D, hidden_dim=H))


def test_an_lstm_projection_and_a_mixed_stack_are_refused_with_a_sentence():
    sd = state_dict("lstm") | {"weight_hr_l0": np.zeros((2, H), np.float32)}
    with pytest.raises(ValueError, match="weight_hr_l0, the projection of an nn.LSTM with proj_size > 0"):
        from_torch(sd, "lstm")
    mixed = rnn_jax.init_model(
        ["gru", "lstm"], key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, num_layers=2
    )
    with pytest.raises(ValueError, match="layer 1 differs from layer 0 in its cell, size or directions"):
        model_to_torch(mixed)


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
        from_torch({**state_dict("gru"), **change}, "gru")


def test_a_readout_state_without_its_bias_or_of_other_sizes_is_named():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(O, H)).astype(np.float32)
    with pytest.raises(ValueError, match=r"linear_state lacks bias \(an nn.Linear's weight"):
        model_from_torch(state_dict("lstm"), {"weight": weight}, "lstm")
    with pytest.raises(
        ValueError, match=r"linear_state must hold a weight of \(O, H=8\) and a bias of \(O,\)"
    ):
        sd = state_dict("lstm", bidirectional=True)
        model_from_torch(sd, {"weight": weight, "bias": np.zeros(O, np.float32)}, "lstm")


def torch_against_ours(kind, nonlinearity="tanh", num_layers=1, bidirectional=False, batch_first=False):
    """A float64 torch module plus an ``nn.Linear`` on every step; the converted model's outputs
    and gradients (loss: half the mean squared error of all outputs), as max relative errors."""
    import torch

    torch.manual_seed(0)
    layout = {"num_layers": num_layers, "bidirectional": bidirectional, "batch_first": batch_first}
    make = {"rnn": lambda: torch.nn.RNN(D, H, nonlinearity=nonlinearity, **layout)}
    make |= {"gru": lambda: torch.nn.GRU(D, H, **layout), "lstm": lambda: torch.nn.LSTM(D, H, **layout)}
    width = (1 + bidirectional) * H
    module, linear = make[kind]().double(), torch.nn.Linear(width, O).double()
    xs = torch.randn(N, T, D, dtype=torch.float64)
    ys = torch.randn(N, T, O, dtype=torch.float64)
    # (N, T, O) either way: batch_first reads the batch as it is, the default time first.
    out = linear(module(xs if batch_first else xs.transpose(0, 1))[0])
    out = out if batch_first else out.transpose(0, 1)
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
    theirs = {k: v.grad.numpy() for k, v in module.named_parameters()}
    theirs_linear = {k: v.grad.numpy() for k, v in linear.named_parameters()}
    # Both bias vectors get the same gradient, except the GRU candidate's recurrent one.
    for sd in (ours_sd, auto_sd):
        for name in [k for k in sd if k.startswith("bias_hh")]:
            folded = sd[name.replace("hh", "ih")].copy()
            if kind == "gru":
                folded[2 * H :] = sd[name][2 * H :]
            sd[name] = folded

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
@pytest.mark.parametrize(("num_layers", "bidirectional", "batch_first"), [(1, False, False), (2, True, True)])
def test_torch_modules_and_converted_models_agree_in_float64(
    kind, nonlinearity, num_layers, bidirectional, batch_first
):
    pytest.importorskip("torch")
    errors = torch_against_ours(kind, nonlinearity or "tanh", num_layers, bidirectional, batch_first)
    assert max(errors.values()) <= 1e-12, errors


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_converted_state_dicts_load_into_torch(kind):
    torch = pytest.importorskip("torch")
    model = rnn_jax.init_model(
        CELLS[kind],
        key=jax.random.key(0),
        input_dim=D,
        hidden_dim=H,
        output_dim=O,
        num_layers=2,
        bidirectional=True,
    )
    module = getattr(torch.nn, kind.upper())(D, H, num_layers=2, bidirectional=True, batch_first=True)
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in model_to_torch(model)[0].items()})
    xs = np.array(jax.random.normal(jax.random.key(1), (N, T, D)))
    theirs = module(torch.from_numpy(xs))[0].detach().numpy()
    ours = np.asarray(jax.vmap(lambda x: unroll(model.cell, x))(jnp.asarray(xs)))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
