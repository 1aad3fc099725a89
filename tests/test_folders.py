"""Output folders: checked before any work, locked while a run writes to them."""

import os
import subprocess
import sys

import pytest
from scripts import ENV, ROOT

from rnn_jax.cli.folders import LOCK_NAME, FolderError, claim_output_folder, release_output_folder
from rnn_jax.errors import WriteError
from rnn_jax.io import TEMP_SUFFIX, append_json_lines, write_json


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


def test_stale_temporary_files_from_a_killed_save_are_removed_and_the_users_own_kept(tmp_path):
    out = tmp_path / "run"
    (out / "refit").mkdir(parents=True)
    (out / "notes").mkdir()
    stale = [out / f".checkpoint.eqx.abc{TEMP_SUFFIX}", out / "refit" / f".metrics.json.x{TEMP_SUFFIX}"]
    mine = [out / ".mine.tmp", out / "notes" / ".draft.tmp", out / "refit" / ".metrics.json.x.tmp"]
    for path in stale + mine:
        path.write_text("half")
    (out / "metrics.json").write_text("{}")
    claim_output_folder(out)
    release_output_folder(out)
    assert not any(p.exists() for p in stale) and (out / "metrics.json").exists()
    assert all(p.read_text() == "half" for p in mine)


RUN_FILES = [LOCK_NAME, "checkpoint.eqx", "metrics.jsonl", "metrics.json", "predictions.csv", "loss.png"]


@pytest.mark.parametrize("name", [*RUN_FILES, "refit/checkpoint.eqx"])
def test_a_link_planted_under_a_run_file_name_is_refused_and_its_target_untouched(tmp_path, name):
    out, victim = tmp_path / "run", tmp_path / "notes.txt"
    (out / "refit").mkdir(parents=True)
    victim.write_text("the user's notes")
    (out / name).symlink_to(victim)
    with pytest.raises(FolderError, match=f"{name} is a link to {victim}, outside the folder"):
        claim_output_folder(out)
    assert victim.read_text() == "the user's notes" and (out / name).is_symlink()


def test_links_inside_the_folder_and_other_files_of_the_user_are_left_alone(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    (out / "notes.txt").symlink_to(tmp_path / "notes.txt")  # not a name a run writes
    (out / "best.json").write_text("{}")
    (out / "latest.json").symlink_to(out / "best.json")  # a link that stays inside
    claim_output_folder(out)
    release_output_folder(out)
    assert (out / "notes.txt").is_symlink() and (out / "latest.json").is_symlink()


@pytest.mark.parametrize("name", [LOCK_NAME, "metrics.jsonl"])
def test_a_fifo_under_a_run_file_name_is_refused(tmp_path, name):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / name)
    with pytest.raises(FolderError, match=f"{name} is not a regular file \\(a pipe"):
        claim_output_folder(out)


def test_the_writers_themselves_never_write_through_a_link(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("the user's notes")
    (tmp_path / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(WriteError, match="metrics.jsonl: it is a symbolic link"):
        append_json_lines(tmp_path / "metrics.jsonl", [{"epoch": 1}])
    (tmp_path / "metrics.json").symlink_to(victim)
    write_json(tmp_path / "metrics.json", {"epoch": 1})  # replaces the link, not its target
    assert victim.read_text() == "the user's notes" and not (tmp_path / "metrics.json").is_symlink()


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
