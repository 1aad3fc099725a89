"""The docs mean what they say: every fenced block marked ``python test`` in README.md and
``docs/**/*.md`` runs, and blocks marked ``python harness=NAME`` run under the harness of that
name below, which checks what the block promises."""

import re
import sys
import types

import chex
import jax
import pytest
from scripts import ROOT

from rnn_jax.cells import REGISTRY

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python (test|harness=([\w-]+))\n(.*?)^```$", re.S | re.M)


def blocks(kind: str) -> dict[str, str]:
    """``{"page:line": code}`` of the blocks marked ``python test`` (``kind="test"``), or
    ``{name: code}`` of those marked ``python harness=NAME`` (``kind="harness"``)."""
    found = {}
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            line = text[: match.start()].count("\n") + 1
            if kind == "test" and match.group(1) == "test":
                found[f"{page.relative_to(ROOT)}:{line}"] = match.group(3)
            elif kind == "harness" and match.group(2):
                assert match.group(2) not in found, f"two blocks are marked harness={match.group(2)}"
                found[match.group(2)] = match.group(3)
    return found


def run_block(code: str) -> dict:
    """Execute a block in a namespace of its own; cells it registers are unregistered after."""
    registered = dict(REGISTRY)
    namespace: dict = {"__name__": "docs_block"}
    try:
        exec(compile(code, "<docs block>", "exec"), namespace)  # noqa: S102 - our own docs
    finally:
        REGISTRY.clear()
        REGISTRY.update(registered)
    return namespace


TESTED = blocks("test")
# The quick start runs in its own test below, which checks what it computes.
(QUICK_START,) = [w for w in TESTED if w.startswith("README.md") and "make_train" in TESTED[w]]


@pytest.mark.grid
@pytest.mark.parametrize(
    "where", sorted(set(TESTED) - {QUICK_START}, key=lambda w: (not w.startswith("README"), w))
)
def test_every_block_marked_as_a_test_runs(where):
    run_block(TESTED[where])


def test_the_quick_start_computes_one_gradient_two_ways_and_trains_four_seeds():
    code = TESTED[QUICK_START]
    assert 10 <= len([line for line in code.splitlines() if line.strip()]) <= 15
    names = run_block(code.replace("epochs=20", "epochs=3"))
    chex.assert_trees_all_close(names["g_hand"], names["g_auto"], rtol=1e-4, atol=1e-6)
    assert names["metrics"]["val_rmse"].shape == (4, 3)


def test_the_quick_start_has_exactly_the_two_commands():
    quick = (ROOT / "README.md").read_text().split("## Quick start")[1].split("\n## ")[0]
    commands = re.findall(r"^uv run [^\n#]*", quick, re.M)
    assert [c.strip() for c in commands][:2] == ["uv run experiments/sine_wave.py", "uv run pytest"]


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250 and len(text.encode()) <= 15_000
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), link


def test_links_between_pages_lead_to_files_that_exist():
    broken = []
    for page in PAGES:
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / link).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {link}")
    assert broken == []


# Harnesses: blocks whose promise needs more than running them.


def equinox_loop(code: str) -> None:
    """An rnn_jax LSTM inside the reader's own eqx.Module, jitted with no static arguments."""
    code = code.replace("range(300)", "range(60)")  # the test needs the trend, not the result
    names = run_block(code)
    model = names["Regressor"](jax.random.key(0))
    first = float(
        names["step"](model, names["optimizer"].init(model), names["data"].x_train, names["data"].y_train)[2]
    )
    assert float(names["value"]) < 0.2 * first
    assert isinstance(names["model"].encoder, names["rnn_jax"].LSTM)


class _Writer:
    """Stands in for tensorboardX's SummaryWriter: records what the example sends."""

    def __init__(self, logdir):
        self.logdir, self.scalars, self.closed = logdir, [], False

    def add_scalar(self, name, value, step):
        self.scalars.append((name, value, step))

    def close(self):
        self.closed = True


def tensorboard(code: str) -> None:
    """The logs page's example, three epochs long, with the writer replaced by a recorder."""
    assert "rnn_jax.TrainConfig()" in code
    code = code.replace("rnn_jax.TrainConfig()", "rnn_jax.TrainConfig(epochs=3)")
    saved = sys.modules.get("tensorboardX")
    sys.modules["tensorboardX"] = types.SimpleNamespace(SummaryWriter=_Writer)
    try:
        names = run_block(code)
    finally:
        if saved is None:
            del sys.modules["tensorboardX"]
        else:
            sys.modules["tensorboardX"] = saved
    writer = names["writer"]
    assert writer.closed and writer.logdir == "runs/sine"
    assert [(name, step) for name, _, step in writer.scalars] == [
        (name, epoch) for epoch in (1, 2, 3) for name in ("train_loss", "val_loss", "val_rmse")
    ]
    assert writer.scalars[-1][1] == names["result"].metrics["val_rmse"][-1]


HARNESSES = {"equinox-loop": equinox_loop, "tensorboard": tensorboard}


def test_every_harness_block_has_its_harness():
    assert set(blocks("harness")) == set(HARNESSES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_harness_blocks_do_what_they_promise(name):
    HARNESSES[name](blocks("harness")[name])


def test_the_docstring_examples_run():
    """``>>>`` examples in the package's docstrings, run as doctests."""
    import doctest
    import importlib
    import pkgutil

    import rnn_jax

    tried = 0
    for info in pkgutil.walk_packages(rnn_jax.__path__, "rnn_jax."):
        if info.name == "rnn_jax.__main__":
            continue
        result = doctest.testmod(importlib.import_module(info.name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, info.name
        tried += result.attempted
    assert tried >= 5
