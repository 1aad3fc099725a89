"""What a user gets from the package itself: version, quiet pipes, file modes, no side effects."""

import shlex
import stat
import subprocess
import sys

import pytest
from scripts import ENV, ROOT, run

import rnn_jax
from rnn_jax.cli.main import main


def test_version_is_the_installed_one(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rnn-jax {rnn_jax.__version__}"
    assert rnn_jax.__version__[0].isdigit()
    assert (ROOT / "rnn_jax" / "py.typed").exists() and (ROOT / "LICENSE").read_text().startswith("MIT")


@pytest.mark.slow
def test_a_reader_that_goes_away_gets_no_traceback():
    command = (
        f"{sys.executable} -c 'import sys; from rnn_jax.cli.main import console_main; "
        "sys.exit(console_main())' gradcheck --json | head -1"
    )
    out = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=300,
    )
    assert out.stdout == "{\n" and "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_results_are_0644_under_umask_022(tmp_path):
    target = tmp_path / "metrics.json"
    code = f"from rnn_jax.io import write_json; write_json({str(target)!r}, {{'a': 1}})"
    command = f"umask 022 && {sys.executable} -c {shlex.quote(code)}"
    out = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_importing_the_plots_leaves_the_matplotlib_backend_alone():
    code = "import matplotlib; matplotlib.use('pdf'); import rnn_jax.plots; print(matplotlib.get_backend())"
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pdf"


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_environment_and_runs(tmp_path):
    """``uv build``, then the wheel alone in a new virtual environment: ``rnn-jax --version`` and
    ``rnn-jax gradcheck`` run there, without the test-only packages (chex)."""
    import shutil

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    env = {k: v for k, v in ENV.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}

    def sh(*args, cwd=ROOT):
        out = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    sh(uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"))
    (wheel,) = (tmp_path / "dist").glob("rnn_jax-*.whl")
    venv = tmp_path / "venv"
    sh(uv, "venv", "--quiet", str(venv))
    sh(uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel))
    command = str(venv / "bin" / "rnn-jax")
    assert sh(command, "--version", cwd=tmp_path).strip() == f"rnn-jax {rnn_jax.__version__}"
    assert "PASS" in sh(command, "gradcheck", cwd=tmp_path)
    probe = "import importlib.util as u; print(u.find_spec('chex') is None, u.find_spec('rnn_jax').origin)"
    absent, origin = sh(str(venv / "bin" / "python"), "-c", probe, cwd=tmp_path).split()
    assert absent == "True" and origin.startswith(str(venv))
