"""The README's API example runs and means what it says."""

import re
from pathlib import Path

import chex

README = Path(__file__).resolve().parents[1] / "README.md"


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
