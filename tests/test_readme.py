"""The README's API example runs and means what it says."""

import re
from pathlib import Path

import chex
import jax
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_api_example_runs_and_gradients_agree():
    block = re.search(r"## API in five lines\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len([line for line in block.splitlines() if line.strip()]) == 5
    namespace: dict = {}
    exec(block, namespace)  # noqa: S102 - our own README
    assert namespace["data"].x_train.shape == (100, 50, 1)
    chex.assert_trees_all_close(namespace["g_hand"], namespace["g_auto"], rtol=1e-4, atol=1e-7)


def test_readme_quick_start_has_exactly_the_two_commands():
    quick = README.read_text().split("## Quick start")[1].split("##")[0]
    commands = re.findall(r"^uv run [^\n#]*", quick, re.M)
    assert [c.strip() for c in commands] == ["uv run experiments/sine_wave.py", "uv run pytest"]


@pytest.mark.slow
def test_readme_equinox_example_trains_with_a_plain_optax_loop():
    """An rnn_jax LSTM inside the reader's own eqx.Module, jitted with no static arguments."""
    block = re.search(
        r"trained with your own optax\nloop .*?```python\n(.*?)```", README.read_text(), re.S
    ).group(1)
    block = block.replace("range(300)", "range(60)")  # the test needs the trend, not the result
    namespace: dict = {}
    exec(block, namespace)  # noqa: S102 - our own README
    first = float(
        namespace["step"](
            namespace["Regressor"](jax.random.key(0)),
            namespace["optimizer"].init(namespace["Regressor"](jax.random.key(0))),
            namespace["data"].x_train,
            namespace["data"].y_train,
        )[2]
    )
    assert float(namespace["value"]) < 0.2 * first
    assert isinstance(namespace["model"].encoder, namespace["rnn_jax"].LSTM)


class _Writer:
    """Stands in for tensorboardX's SummaryWriter: records what the example sends."""

    def __init__(self, logdir):
        self.logdir, self.scalars, self.closed = logdir, [], False

    def add_scalar(self, name, value, step):
        self.scalars.append((name, value, step))

    def close(self):
        self.closed = True


@pytest.mark.slow
def test_readme_tensorboard_hook_gets_every_epoch(monkeypatch):
    """The Logs section's example, three epochs long, with the writer replaced by a recorder."""
    import sys
    import types

    block = re.search(r"## Logs\n.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "rnn_jax.TrainConfig()" in block
    block = block.replace("rnn_jax.TrainConfig()", "rnn_jax.TrainConfig(epochs=3)")
    monkeypatch.setitem(sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=_Writer))
    namespace: dict = {}
    exec(block, namespace)  # noqa: S102 - our own README
    writer = namespace["writer"]
    assert writer.closed and writer.logdir == "runs/sine"
    assert [(name, step) for name, _, step in writer.scalars] == [
        (name, epoch) for epoch in (1, 2, 3) for name in ("train_loss", "val_loss", "val_rmse")
    ]
    final = namespace["result"].metrics["val_rmse"][-1]
    assert writer.scalars[-1][1] == final
