"""Output folders: checked before any work, locked while a run writes to them."""

import subprocess
import sys

import pytest
from scripts import ENV, ROOT

from rnn_jax.cli.folders import LOCK_NAME, FolderError, claim_output_folder, release_output_folder


@pytest.fixture
def claimed(tmp_path):
    out = tmp_path / "run"
    yield claim_output_folder(out)
    release_output_folder(out)


def claim_in_another_process(out) -> subprocess.CompletedProcess:
    code = f"from rnn_jax.cli.folders import claim_output_folder; claim_output_folder({str(out)!r})"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120
    )


def test_a_claimed_folder_exists_holds_our_pid_and_refuses_a_second_run(claimed):
    import os

    assert claimed.is_dir() and (claimed / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert claim_output_folder(claimed) == claimed  # claiming again in the same process is fine
    other = claim_in_another_process(claimed)
    assert other.returncode != 0 and f"is in use by another run (pid {os.getpid()})" in other.stderr
    release_output_folder(claimed)
    assert claim_in_another_process(claimed).returncode == 0  # free again (and after exit)


def test_stale_temporary_files_from_a_killed_save_are_removed(tmp_path):
    out = tmp_path / "run"
    (out / "refit").mkdir(parents=True)
    stale = [out / ".checkpoint.eqx.abc.tmp", out / "refit" / ".metrics.json.x.tmp"]
    for path in stale:
        path.write_text("half")
    (out / "metrics.json").write_text("{}")
    claim_output_folder(out)
    release_output_folder(out)
    assert not any(p.exists() for p in stale) and (out / "metrics.json").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "the output folder's name is empty"),
        ("x" * 300, "is longer than 255 bytes"),
        ("/proc/self/rnn_jax_out", "cannot create output folder /proc/self/rnn_jax_out"),
    ],
)
def test_unusable_folder_names_are_refused_with_the_reason(name, message):
    with pytest.raises(FolderError, match=message):
        claim_output_folder(name)


def test_a_file_in_the_way_and_a_full_disk_are_refused(tmp_path, monkeypatch):
    import rnn_jax.cli.folders

    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(FolderError, match="taken is a file; give --out a folder"):
        claim_output_folder(tmp_path / "taken")
    monkeypatch.setattr(rnn_jax.cli.folders, "MIN_FREE_BYTES", 1 << 62)
    with pytest.raises(FolderError, match=r"free; a run needs at least 4,194,304.0 TiB"):
        claim_output_folder(tmp_path / "full")
