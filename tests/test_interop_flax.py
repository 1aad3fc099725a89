"""Flax parameters in and out, linen and NNX: the converted model's outputs against Flax's own
layers (``nn.RNN``, ``nn.Bidirectional``, stacks), in float32 and float64, masks as Flax's
``seq_lengths``, exact round trips, and each bad layout named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
from rnn_jax.interop import from_flax, model_from_flax, model_to_flax, to_flax
from rnn_jax.unroll import unroll

nn = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")

D, H, O, N, T = 3, 4, 2, 5, 7
FLAX_CELLS = {"elman": "SimpleCell", "gru": "GRUCell", "lstm": "LSTMCell"}
LAYOUTS = [(1, False), (1, True), (2, True)]  # (layers, bidirectional)


def inputs(dtype=np.float32):
    return np.random.default_rng(1).normal(size=(N, T, D)).astype(dtype)


def randomised(tree, seed=0):
    """Every parameter drawn afresh (Flax's biases start at zero and would hide a bias mix-up)."""
    leaves, treedef = jax.tree.flatten(tree)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(treedef, [rng.normal(size=a.shape).astype(a.dtype) * 0.5 for a in leaves])


def linen_layers(name, layers, bidirectional, dtype):
    def rnn():
        return nn.RNN(getattr(nn, FLAX_CELLS[name])(features=H, param_dtype=dtype, dtype=dtype))

    return [nn.Bidirectional(rnn(), rnn()) if bidirectional else rnn() for _ in range(layers)]


def linen_outputs(name, layers, bidirectional, dtype, seq_lengths=None):
    """``(params per layer, Flax's outputs (N, T, dirs H))``."""
    xs, out, params = inputs(dtype), None, []
    below = jnp.asarray(xs)
    for index, layer in enumerate(linen_layers(name, layers, bidirectional, dtype)):
        p = randomised(layer.init(jax.random.key(index), below)["params"], seed=index)
        below = layer.apply({"params": p}, below, seq_lengths=seq_lengths)
        params.append(p)
    out = np.asarray(below)
    return params, out


def nnx_outputs(name, layers, bidirectional, dtype):
    rngs, width, modules = nnx.Rngs(0), D, []
    for _ in range(layers):

        def rnn(width=width):
            cell = getattr(nnx, FLAX_CELLS[name])(width, H, rngs=rngs, param_dtype=dtype, dtype=dtype)
            return nnx.RNN(cell)

        modules.append(nnx.Bidirectional(rnn(), rnn()) if bidirectional else rnn())
        width = H * (1 + bidirectional)
    params, below = [], jnp.asarray(inputs(dtype))
    for index, module in enumerate(modules):
        state = nnx.state(module, nnx.Param)
        pure = randomised(nnx.to_pure_dict(state), seed=index)
        nnx.replace_by_pure_dict(state, pure)
        nnx.update(module, state)
        below = module(below)
        params.append(pure)
    return params, np.asarray(below)


def ours(params, dtype):
    xs = inputs(dtype)
    recurrence = from_flax(params if len(params) > 1 else params[0])
    return recurrence, np.asarray(jax.vmap(lambda x: unroll(recurrence, x))(jnp.asarray(xs)))


@pytest.mark.parametrize("name", ["elman", "gru", "lstm"])
@pytest.mark.parametrize(("layers", "bidirectional"), LAYOUTS)
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_converted_layers_compute_what_flax_computes_in_float32(name, layers, bidirectional, api):
    run = linen_outputs if api == "linen" else nnx_outputs
    params, theirs = run(name, layers, bidirectional, np.float32)
    recurrence, mine = ours(params, np.float32)
    assert mine.shape == theirs.shape == (N, T, H * (1 + bidirectional))
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)
    back = to_flax(recurrence, api=api)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params if layers > 1 else params[0]), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_converted_layers_compute_what_flax_computes_in_float64(name, api):
    with jax.enable_x64(True):
        run = linen_outputs if api == "linen" else nnx_outputs
        params, theirs = run(name, 2, True, np.float64)
        _, mine = ours(params, np.float64)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-12)


def test_flax_seq_lengths_are_our_masks_in_both_directions():
    lengths = np.array([7, 3, 5, 1, 6])
    params, theirs = linen_outputs("gru", 1, True, np.float32, seq_lengths=jnp.asarray(lengths))
    recurrence = from_flax(params[0])
    mask = np.arange(T)[None, :] < lengths[:, None]
    mine = jax.vmap(lambda x, m: unroll(recurrence, x, mask=m))(jnp.asarray(inputs()), jnp.asarray(mask))
    # Flax's outputs past a sequence's end are not defined the same way; the valid steps are.
    np.testing.assert_allclose(np.asarray(mine)[mask], theirs[mask], rtol=0, atol=1e-6)


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_a_model_written_out_loads_into_flax_and_computes_the_same(api):
    model = rnn_jax.init_model(
        "lstm",
        key=jax.random.key(0),
        input_dim=D,
        hidden_dim=H,
        output_dim=O,
        num_layers=2,
        bidirectional=True,
    )
    model = jax.tree.map(lambda w: w + 0.1, model)
    rnn_params, dense = model_to_flax(model, api=api)
    xs = jnp.asarray(inputs())
    below = xs
    for params in rnn_params:
        layer = nn.Bidirectional(nn.RNN(nn.LSTMCell(H)), nn.RNN(nn.LSTMCell(H)))
        if api == "nnx":  # the same arrays; only the forget gate's name differs
            for direction in params.values():
                direction["cell"]["if"] = direction["cell"].pop("if_")
        below = layer.apply({"params": params}, below)
    theirs = nn.Dense(O).apply({"params": dense}, below)
    np.testing.assert_allclose(np.asarray(jax.vmap(model)(xs)), np.asarray(theirs), rtol=0, atol=1e-6)
    again = model_from_flax(*model_to_flax(model, api=api))
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_layouts_are_named_with_the_key_and_the_shape():
    params, _ = linen_outputs("gru", 1, False, np.float32)
    p = params[0]
    cell = dict(p["cell"])
    with pytest.raises(ValueError, match=r"params\['cell'\] lacks \['hn'\]\['kernel'\]|not the parameters"):
        from_flax({"cell": {k: v for k, v in cell.items() if k != "hn"}})
    bad = {**cell, "hr": {"kernel": np.zeros((H, H + 1), np.float32)}}
    with pytest.raises(ValueError, match=r"params\['cell'\]\['hr'\]\['kernel'\] must have shape \(4, 4\)"):
        from_flax({"cell": bad})
    with pytest.raises(ValueError, match=r"holds \['conv'\]: not the parameters of a Flax GRUCell"):
        from_flax({"conv": {"kernel": np.zeros((3, 3), np.float32)}})
    with pytest.raises(ValueError, match="api must be one of linen, nnx"):
        to_flax(from_flax(p), api="haiku")
    gru = jax.tree.map(lambda w: w + 0.1, from_flax(p))
    with pytest.raises(ValueError, match="NNX's GRUCell has no candidate recurrent bias"):
        to_flax(gru, api="nnx")
    with pytest.raises(ValueError, match=r"dense_params lacks bias"):
        model_from_flax(p, {"kernel": np.zeros((H, O), np.float32)})
