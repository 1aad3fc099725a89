"""What a user gets from the package itself: version, quiet pipes, file modes, no side effects."""

import shlex
import stat
import subprocess
import sys

import pytest
from scripts import ENV, ROOT, run

import rnn_jax
from rnn_jax.cli import main


def test_version_is_the_installed_one(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rnn-jax {rnn_jax.__version__}"
    assert rnn_jax.__version__[0].isdigit()
    assert (ROOT / "rnn_jax" / "py.typed").exists() and (ROOT / "LICENSE").read_text().startswith("MIT")


@pytest.mark.slow
def test_a_reader_that_goes_away_gets_no_traceback():
    command = (
        f"{sys.executable} -c 'import sys; from rnn_jax.cli import console_main; "
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
