"""Strict settings for every test: shape annotations checked at run time, no silent rank
promotion, and explicit keys."""

import importlib
import importlib.util
import os
import pkgutil
import tempfile

# The tests' programs are tiny, so XLA's compile time, not their run time, is most of the
# suite's time. LLVM's optimisation passes were half of it, and the CPU backend's fusion
# emitters (MLIR code generation for fused loops) take 40 % of what remains on the programs of
# tests/test_gated.py; without them XLA emits the same fusions through its older LLVM path.
# Set before any backend starts, and inherited by the commands the tests run in subprocesses
# (and by pytest-xdist's workers). The flags exist in the jaxlib uv.lock pins.
_FAST_COMPILE = {"xla_backend_optimization_level": "0", "xla_cpu_use_fusion_emitters": "false"}
_flags = os.environ.get("XLA_FLAGS", "")
for _name, _value in _FAST_COMPILE.items():
    if _name not in _flags:
        _flags = f"{_flags} --{_name}={_value}"
os.environ["XLA_FLAGS"] = _flags.strip()
# Many tests, workers and commands compile the same programs: one persistent cache shared by all
# of them turns every compilation after the first into a file read. Keyed by the program, the
# flags and the JAX version, so a stale entry is never used.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"rnn_jax-tests-xla-cache-{os.getuid()}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

# Must run before rnn_jax is imported anywhere: checks every jaxtyping annotation at call time.
# (An accelerator image without the dev group's beartype runs the tests unchecked.)
# rnn_jax loads its modules lazily, so every one is imported here, inside the hook.
if importlib.util.find_spec("beartype") is not None:
    with install_import_hook("rnn_jax", "beartype.beartype"):
        import rnn_jax

        for module in pkgutil.walk_packages(rnn_jax.__path__, "rnn_jax."):
            if module.name != "rnn_jax.__main__":
                importlib.import_module(module.name)

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(config, items):
    """A test marked ``grid`` is a grid of cases: its first case is in the quick tier
    (``pytest -m "not slow"``), the others only in the full suite."""
    seen = set()
    for item in items:
        if item.get_closest_marker("grid") is not None:
            name = (item.path, item.originalname)
            if name in seen:
                item.add_marker(pytest.mark.slow)
            seen.add(name)
