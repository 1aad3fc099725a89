import dataclasses
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import pytest

from rnn_jax.data.sine import make_sine_data
from rnn_jax.runs.driver import ChunkPlan
from rnn_jax.runs.sweep import grid, random_search, run_sweep
from rnn_jax.train.loop import TrainConfig, make_train
from rnn_jax.train.sharding import use_cpu_cores

CONFIG = TrainConfig(
    hidden_dim=8,
    activation="tanh",
    init="default",
    optimizer="adam",
    clip="norm",
    epochs=4,
    batch_size=5,
    shuffle=True,
)


@pytest.fixture(scope="module")
def data():
    return make_sine_data(length=70, window=10, scale=True)


@pytest.fixture(scope="module")
def members():
    return grid(
        key=jax.random.key(0),
        n_seeds=2,
        seq_len=10,
        learning_rate=[1e-3, 1e-2],
        truncation=[2, None],
        init_scale=[0.9],
    )


def test_grid_orders_members_with_seed_fastest(members):
    assert len(members.table) == 8 and members.keys.shape == (8,)
    assert [m["seed"] for m in members.table] == [0, 1] * 4
    assert [m["truncation"] for m in members.table[:4]] == [2, 2, None, None]
    assert members.hparams.truncation.tolist() == [2, 2, 10, 10] * 2  # None -> full BPTT (T)
    assert jnp.array_equal(jax.random.key_data(members.keys[0]), jax.random.key_data(members.keys[2]))


@pytest.mark.slow
def test_each_member_equals_training_it_alone(data, members):
    result = run_sweep(CONFIG, members, data, progress=False)
    train = jax.jit(make_train(CONFIG).train)
    for i in (0, 3, 6):
        params, metrics = train(members.keys[i], jax.tree.map(lambda x, i=i: x[i], members.hparams), data)
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i], result.params), params, rtol=1e-4, atol=1e-6
        )
        chex.assert_trees_all_close(result.metrics["val_loss"][i], metrics["val_loss"], rtol=1e-4, atol=1e-7)
    assert result.metrics["val_loss"].shape == (8, 4)


@pytest.mark.slow
def test_chunked_sweep_is_bit_identical_to_one_chunk(data, members, monkeypatch):
    monkeypatch.setattr(ChunkPlan, "next_count", lambda self, done, total: total - done)
    whole = run_sweep(CONFIG, members, data, progress=False)
    monkeypatch.setattr(ChunkPlan, "next_count", lambda self, done, total: 1)
    chunked = run_sweep(CONFIG, members, data, progress=False)  # 4 chunks of 1 epoch
    chex.assert_trees_all_equal(chunked.params, whole.params)
    chex.assert_trees_all_equal(chunked.metrics, whole.metrics)


@pytest.mark.slow
@pytest.mark.parametrize("width", [3])  # 8 members in groups of 3: a ragged last group
def test_vmap_width_changes_layout_not_results(data, members, width, monkeypatch):
    default = run_sweep(CONFIG, members, data, progress=False)
    grouped = run_sweep(CONFIG, members, data, vmap_width=width, progress=False)
    chex.assert_trees_all_close(grouped.params, default.params, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(grouped.metrics, default.metrics, rtol=1e-4, atol=1e-7)
    monkeypatch.setattr(ChunkPlan, "next_count", lambda self, done, total: 1)
    again = run_sweep(CONFIG, members, data, vmap_width=width, progress=False)
    chex.assert_trees_all_equal(again.params, grouped.params)  # chunking stays bit-identical


@pytest.mark.slow
def test_repeated_sweeps_do_not_retrace(data, members):
    train = chex.assert_max_traces(make_train(CONFIG).train, n=1)
    sweep = jax.jit(jax.vmap(train, in_axes=(0, 0, None)))
    for scale in (1.0, 2.0, 3.0):  # new values, same shapes: no new trace
        hp = members.hparams._replace(learning_rate=members.hparams.learning_rate * scale)
        jax.block_until_ready(sweep(members.keys, hp, data))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"learning_rate": [1e-3, -0.1]},
            r"member 2 \(seed 0, learning_rate=-0.1, truncation=None.*learning_rate must be",
        ),
        (
            {"learning_rate": [1e-3], "truncation": [5, 0]},
            r"member 2 \(seed 0, learning_rate=0.001, truncation=0.*truncation",
        ),
        ({"learning_rate": []}, "learning_rate must list at least one value"),
    ],
)
def test_bad_member_values_are_named_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        grid(key=jax.random.key(0), n_seeds=2, seq_len=10, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize(("n_devices", "hidden", "n_seeds"), [(4, 8, 3), (2, 32, 16)])
def test_sharded_over_cpu_devices_equals_one_device(n_devices, hidden, n_seeds):
    # (2, 32, 16): 16 members per device make a batched QR (orthogonal init) that LAPACK splits
    # over the CPU thread pool all devices share; run on every device at once, it deadlocked.
    script = textwrap.dedent(f"""
        import jax, jax.numpy as jnp
        from rnn_jax.train.sharding import use_cpu_cores
        assert use_cpu_cores({n_devices}) == {n_devices}
        from rnn_jax.data.sine import make_sine_data
        from rnn_jax.runs.sweep import grid, random_search, run_sweep
        from rnn_jax.train.loop import TrainConfig
        assert len(jax.devices()) == {n_devices}, jax.devices()
        data = make_sine_data(length=70, window=10, scale=True)
        config = TrainConfig(hidden_dim={hidden}, activation="tanh", init="default", optimizer="adam",
                             epochs=3, batch_size=5, shuffle=True)
        # 2 x n_seeds members; 6 are padded to 8 for 4 devices
        members = grid(key=jax.random.key(0), n_seeds={n_seeds}, seq_len=10, learning_rate=[1e-3, 1e-2])
        many = run_sweep(config, members, data, progress=False)
        one = run_sweep(config, members, data, devices=jax.devices()[:1], progress=False)
        assert many.params.cell.W.shape == ({2 * n_seeds}, {hidden}, {hidden})
        pairs = zip(jax.tree.leaves((many.params, many.metrics)), jax.tree.leaves((one.params, one.metrics)))
        diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in pairs)
        print("max diff", diff)
        assert diff < 1e-5
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "max diff" in out.stdout


def test_use_cpu_cores_rejects_bad_counts_and_a_started_backend():
    for bad in (0, -1, True):  # (a float is also refused; the tests' type checker stops it first)
        with pytest.raises(ValueError, match="n_devices must be a positive integer"):
            use_cpu_cores(bad)
    jax.numpy.zeros(1).block_until_ready()  # the backend has started
    with pytest.raises(RuntimeError, match="before any JAX computation"):
        use_cpu_cores(2)


@pytest.mark.slow
def test_random_search_draws_within_ranges_and_trains(data):
    members = random_search(
        key=jax.random.key(3), n_members=6, seq_len=10, learning_rate=(1e-4, 1e-2), truncation=(2, 5)
    )
    lrs = [m["learning_rate"] for m in members.table]
    assert all(1e-4 <= lr <= 1e-2 for lr in lrs) and len(set(lrs)) == 6
    assert all(2 <= m["truncation"] <= 5 for m in members.table)
    assert members.hparams.truncation.tolist() == [m["truncation"] for m in members.table]
    result = run_sweep(CONFIG, members, data, progress=False)
    assert result.metrics["val_rmse"].shape == (6, 4)
    with pytest.raises(
        ValueError, match=r"learning_rate range must satisfy 0 < low <= high; got \(0.1, 0.01\)"
    ):
        random_search(key=jax.random.key(0), n_members=2, seq_len=10, learning_rate=(0.1, 0.01))


@pytest.mark.slow
def test_a_diverging_member_is_marked_and_the_others_are_unaffected(data):
    members = grid(key=jax.random.key(0), n_seeds=2, seq_len=10, learning_rate=[1e-2, 1e30])
    config = dataclasses.replace(CONFIG, optimizer="sgd", clip="none")
    result = run_sweep(config, members, data, progress=False)
    assert result.metrics["diverged_at_step"][:, -1].tolist() == [0, 0, 2, 2]
    assert all(jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(result.params))
    healthy = grid(key=jax.random.key(0), n_seeds=2, seq_len=10, learning_rate=[1e-2])
    alone = run_sweep(config, healthy, data, progress=False)
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: x[:2], result.params), alone.params, rtol=1e-5, atol=1e-7
    )


@pytest.mark.slow
def test_resumed_sweep_is_bit_identical_and_layout_independent(data, members, tmp_path, monkeypatch):
    import shutil

    import rnn_jax.runs.sweep
    from rnn_jax.runs.driver import Checkpointing

    config = dataclasses.replace(CONFIG, epochs=6)
    path = tmp_path / "c.eqx"
    save = rnn_jax.runs.sweep.save_checkpoint

    def keep_every_version(path, state, **kw):  # as if the run had been killed after each save
        save(path, state, **kw)
        shutil.copy(path, path.with_name(f"epoch{int(state.epoch.max())}.eqx"))

    monkeypatch.setattr(rnn_jax.runs.sweep, "save_checkpoint", keep_every_version)
    run = {"test": "sweep"}
    whole = run_sweep(config, members, data, progress=False, checkpointing=Checkpointing(path, run, every=2))
    monkeypatch.undo()
    shutil.copy(tmp_path / "epoch2.eqx", path)
    resumed = run_sweep(
        config, members, data, progress=False, checkpointing=Checkpointing(path, run), resume=True
    )
    chex.assert_trees_all_equal(resumed.params, whole.params)
    chex.assert_trees_all_equal(resumed.metrics, whole.metrics)
    # Another layout (vmap width) resumes too: the checkpoint holds one flat member axis.
    shutil.copy(tmp_path / "epoch4.eqx", path)
    other = Checkpointing(path, run)
    relaid = run_sweep(config, members, data, progress=False, vmap_width=3, checkpointing=other, resume=True)
    chex.assert_trees_all_close(relaid.params, whole.params, rtol=1e-5, atol=1e-7)
    assert relaid.metrics["val_loss"].shape == (8, 6)


def test_a_grid_too_large_for_memory_is_refused_before_its_table_is_built(key):
    with pytest.raises(
        ValueError, match=r"not enough memory for a grid of 20000000000 members: .*list fewer seeds"
    ):
        grid(key=key, n_seeds=10**10, seq_len=50, learning_rate=[1e-2, 1e-3])
