"""Hostile inputs, each replayed in a fresh process as a user would type it: one line on
stderr, the exact exit code, within 30 s; no traceback, no hang, no kill by the kernel.

The table of bad inputs in ``docs/errors.md`` (replayed by ``tests/bad_inputs.py``) holds the
everyday cases; these are the ones that need special files (FIFOs, devices, crafted
checkpoints, changed data) or the machine's limits. Signals and a full disk are in
``tests/test_sine_wave_resume.py``."""

import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
from scripts import ENV, ROOT, run

from rnn_jax.io import TEMP_SUFFIX

pytestmark = pytest.mark.slow

SINE = ["experiments/sine_wave.py", "--quiet"]
TRAIN = ["-m", "rnn_jax", "train", "--inputs", "x", "--targets", "x", "--window", "8", "--quiet"]
LONG_NAME = "n" * 256


def header_file(header) -> bytes:
    return (header if isinstance(header, bytes) else json.dumps(header).encode()) + b"\n"


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A folder of the files the cases name; a CSV run whose data then changed."""
    tmp = tmp_path_factory.mktemp("hostile")
    rows = "".join(f"{i},{math.sin(i / 3):.5f}\n" for i in range(120))
    (tmp / "series.csv").write_text("t,x\n" + rows)
    done = run(*TRAIN, "--csv", str(tmp / "series.csv"), "--epochs", "3", "--out", str(tmp / "run"))
    assert done.returncode == 0, done.stderr
    (tmp / "series.csv").write_text("t,x\n" + rows.replace("5,", "5,1", 1))  # one value changed
    (tmp / "huge.csv").write_text("t,x\n" + "".join(f"{i},{(i + 1) * 1e297:.3e}\n" for i in range(60)))
    (tmp / "a file").write_text("not a folder\n")
    (tmp / "adir").mkdir()
    (tmp / "linked").mkdir()
    (tmp / "linked" / ".rnn_jax.lock").symlink_to(tmp / "a file")  # the classic planted link
    os.mkfifo(tmp / "fifo")
    for name in LINKED_RUN_FILES:  # a link under each name a run writes, to the user's file
        (tmp / f"link_{name}").mkdir()
        (tmp / f"link_{name}" / name).symlink_to(tmp / "a file")
    monthly_files(tmp)
    crafted = {
        "piped": None,
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "norun": {"format": "rnn_jax-checkpoint-2", "epoch": 1, "finished": False, "metrics": {}},
        "runlist": {"format": "rnn_jax-checkpoint-2", "epoch": 1, "run": [1], "metrics": {}},
        "old": {"format": "rnn_jax-checkpoint-1", "epoch": 1, "run": {}},
    }
    for name, header in crafted.items():
        (tmp / name).mkdir()
        if header is None:
            os.mkfifo(tmp / name / "checkpoint.eqx")
        else:
            (tmp / name / "checkpoint.eqx").write_bytes(header_file(header))
    return tmp


def month_stamps(n: int, start_year: int) -> list[str]:
    return [f"{start_year + i // 12}-{i % 12 + 1:02d}" for i in range(n)]


def monthly_files(tmp) -> None:
    """A run trained on a monthly file of two columns, and files it must refuse to forecast
    from: another calendar, another column order, stamps near the year 9999, a config.json
    with a wrong type; and a file whose stamps mix two formats, to train on."""
    values = [(100 + i + 10 * math.sin(i / 2), 50 + 5 * math.cos(i / 3)) for i in range(120)]

    def write(name, stamps, header="month,a,b", swap=False):
        rows = [(s, b, a) if swap else (s, a, b) for s, (a, b) in zip(stamps, values, strict=False)]
        (tmp / name).write_text(header + "\n" + "".join(f"{s},{a:.4f},{b:.4f}\n" for s, a, b in rows))

    stamps = month_stamps(120, 1990)
    write("monthly.csv", stamps)
    write("daily.csv", [str(datetime.date(2000, 1, 1) + datetime.timedelta(days=i)) for i in range(120)])
    write("swapped.csv", stamps, header="month,b,a", swap=True)
    write("late.csv", month_stamps(120, 9989))
    write("mixed.csv", [*stamps[:63], "1995-04-01", *stamps[64:]])
    args = ["--csv", str(tmp / "monthly.csv"), "--inputs", "a,b", "--targets", "a,b", "--time", "month"]
    done = run(
        *TRAIN[:2], "train", *args, "--window", "8", "--epochs", "2", "--quiet", "--out", str(tmp / "monthly")
    )
    assert done.returncode == 0, done.stderr
    shutil.copytree(tmp / "monthly", tmp / "badtype", ignore=shutil.ignore_patterns(".rnn_jax.lock"))
    config = json.loads((tmp / "badtype" / "config.json").read_text())
    config["train"]["hidden_dim"] = "six"
    (tmp / "badtype" / "config.json").write_text(json.dumps(config))


LINKED_RUN_FILES = ("metrics.jsonl", "checkpoint.eqx", "predictions.csv", "loss.png")
FORECAST = ["-m", "rnn_jax", "forecast", "--run"]
NOT_CHECKPOINT = "error: {tmp}/{name}/checkpoint.eqx is not an rnn_jax checkpoint ({why})"
CASES = {
    "data changed since the checkpoint": (
        [*TRAIN, "--csv", "{tmp}/series.csv", "--epochs", "3", "--resume", "{tmp}/run"],
        "error: checkpoint {tmp}/run/checkpoint.eqx belongs to a different run ({tmp}/series.csv has "
        "changed: SHA-256 …... in the checkpoint, …... now); refusing to resume from it",
    ),
    "values that overflow float32 once scaled": (
        [*TRAIN, "--csv", "{tmp}/huge.csv", "--out", "{tmp}/o1"],
        "error: column 'x' holds values up to 4.2e+298; values beyond 1e+18 would overflow float32 once "
        "scaled: rescale the column first",
    ),
    "a FIFO as the CSV file": (
        [*TRAIN, "--csv", "{tmp}/fifo", "--out", "{tmp}/o2"],
        "error: CSV file {tmp}/fifo is not a regular file (a pipe, device or socket)",
    ),
    "a device as the CSV file": (
        [*TRAIN, "--csv", "/dev/zero", "--out", "{tmp}/o3"],
        "error: CSV file /dev/zero is not a regular file (a pipe, device or socket)",
    ),
    "a folder as the CSV file": (
        [*TRAIN, "--csv", "{tmp}/adir", "--out", "{tmp}/o4"],
        "error: CSV file {tmp}/adir is a folder, not a file",
    ),
    "a FIFO as the checkpoint": (
        [*SINE, "--resume", "{tmp}/piped"],
        "error: output folder {tmp}/piped: checkpoint.eqx is not a regular file (a pipe, device or socket); "
        "remove it or choose another --out",
    ),
    "a header nested 100 000 deep": (
        [*SINE, "--resume", "{tmp}/deep"],
        NOT_CHECKPOINT.format(tmp="{tmp}", name="deep", why="its header nests deeper than 32 levels"),
    ),
    "a header without run": (
        [*SINE, "--resume", "{tmp}/norun"],
        NOT_CHECKPOINT.format(tmp="{tmp}", name="norun", why="…'run' is missing or not a dict…"),
    ),
    "a header whose run is a list": (
        [*SINE, "--resume", "{tmp}/runlist"],
        NOT_CHECKPOINT.format(tmp="{tmp}", name="runlist", why="…'run' is missing or not a dict…"),
    ),
    "a checkpoint of an older format": (
        [*SINE, "--resume", "{tmp}/old"],
        NOT_CHECKPOINT.format(tmp="{tmp}", name="old", why="written by an older rnn_jax…"),
    ),
    "an output folder name over 255 bytes": (
        [*SINE, "--out", f"{{tmp}}/{LONG_NAME}"],
        f"error: output folder {{tmp}}/{LONG_NAME}: the name {'n' * 20}... is longer than 255 bytes",
    ),
    "an output folder that cannot be created": (
        [*SINE, "--out", "/proc/self/rnn_jax_out"],
        "error: cannot create output folder /proc/self/rnn_jax_out: …",
    ),
    "an output folder that is a file": (
        [*SINE, "--out", "{tmp}/a file"],
        "error: output folder {tmp}/a file is a file; give --out a folder",
    ),
    "a link planted as the lock file": (
        [*SINE, "--out", "{tmp}/linked"],
        "error: output folder {tmp}/linked: .rnn_jax.lock is a link to {tmp}/a file, outside the folder; "
        "a run writes only its own files: remove the link or choose another --out",
    ),
    "a hidden layer of a million units": (
        [*SINE, "--hidden-dim", "1000000", "--out", "{tmp}/o5"],
        "error: not enough memory for training: it needs at least … TiB (parameters and optimiser "
        "state … TiB, …), and … is available; use a smaller hidden_dim or batch_size (--hidden-dim, "
        "--batch-size)",
    ),
    "a series of ten billion samples": (
        [*SINE, "--length", "10000000000", "--out", "{tmp}/o6"],
        "error: not enough memory for the series' windows: it needs at least 1.9 TiB (windows 1.9 TiB), "
        "and … is available; use a smaller length or window",
    ),
    "an ensemble of ten million members": (
        [*TRAIN, "--csv", "{tmp}/series.csv", "--seeds", "10000000", "--out", "{tmp}/o9"],
        "error: not enough memory for an ensemble of 10000000 members: it needs at least … (…), and … is "
        "available; use a smaller hidden_dim or batch_size (--hidden-dim, --batch-size), or fewer --seeds",
    ),
    "a patience past int32": (
        [*SINE, "--patience", "1099511627776", "--out", "{tmp}/o10"],
        "error: patience must be at most 2,147,483,647 (epoch counters are int32); got 1099511627776",
    ),
    "a gradient check of 10**11 weights": (
        ["-m", "rnn_jax", "gradcheck", "--input-dim", "1000000", "--hidden-dim", "100000"],
        "error: not enough memory for the gradient check: it needs at least … TiB (…), and … is "
        "available; use a smaller --input-dim, --hidden-dim, --seq-len or --batch",
    ),
    "an epoch count past int32": (
        [*SINE, "--epochs", str(2**63), "--out", "{tmp}/o7"],
        f"error: epochs must be at most 2,147,483,647 (epoch counters are int32); got {2**63}",
    ),
    "a seed past what a key holds": (
        [*SINE, "--seed", str(2**70), "--out", "{tmp}/o8"],
        f"error: argument --seed: expected an integer from 0 to 2**63 - 1, got {2**70}",
    ),
    **{
        f"a link planted as {name}": (
            [*SINE, "--out", f"{{tmp}}/link_{name}"],
            f"error: output folder {{tmp}}/link_{name}: {name} is a link to {{tmp}}/a file, outside the "
            "folder; a run writes only its own files: remove the link or choose another --out",
        )
        for name in LINKED_RUN_FILES
    },
    "a daily file for a monthly run": (
        [*FORECAST, "{tmp}/monthly", "--csv", "{tmp}/daily.csv", "--steps", "3"],
        "error: {tmp}/daily.csv's time column has a step of 86400 s, stamps YYYY-MM-DD; the run in "
        "{tmp}/monthly was trained on a step of 1 month(s), stamps YYYY-MM: give a file on the run's "
        "calendar",
    ),
    "the run's columns in another order": (
        [*FORECAST, "{tmp}/monthly", "--csv", "{tmp}/swapped.csv", "--steps", "3"],
        "error: {tmp}/swapped.csv has the run's columns in the order b, a; the run in {tmp}/monthly read "
        "them as a, b: give a file with the run's column order",
    ),
    "a forecast past the year 9999": (
        [*FORECAST, "{tmp}/monthly", "--csv", "{tmp}/late.csv", "--steps", "1000"],
        "error: 1000 steps past the end of {tmp}/late.csv (9998-12) would pass the year 9999, the last a "
        "time stamp can name; ask for fewer --steps",
    ),
    "a run whose config.json has a wrong type": (
        [*FORECAST, "{tmp}/badtype", "--csv", "{tmp}/monthly.csv", "--steps", "3"],
        "error: …config.json: train.hidden_dim must be int; got 'six'…",
    ),
    "a time column that mixes two formats": (
        [*TRAIN[:2], "train", "--csv", "{tmp}/mixed.csv", "--inputs", "a", "--targets", "a"]
        + ["--time", "month", "--out", "{tmp}/o11"],
        "error: {tmp}/mixed.csv line 65, time column 'month': '1995-04-01' is written as YYYY-MM-DD, "
        "the column's first stamp ('1990-01') as YYYY-MM; write every stamp of the column one way",
    ),
    "a sweep of ten million seeds per cell": (
        ["experiments/sweep.py", "--n-seeds", "10000000", "--out", "{tmp}/o12"],
        "error: not enough memory for a grid of 320000000 members: it needs at least … GiB (the members' "
        "table … GiB), and … is available; list fewer seeds or values",
    ),
    "a sample of 10**12 characters": (
        ["experiments/char_lm.py", "--sample-length", str(10**12), "--out", "{tmp}/o13"],
        "error: not enough memory for sampling 1,000,000,000,000 characters: it needs at least … TiB "
        "(sampled characters … TiB), and … is available; sample fewer characters (--sample-length)",
    ),
}


def pattern(message: str) -> str:
    """The expected line as a regular expression; ``…`` stands for anything."""
    return ".*?".join(re.escape(part) for part in message.split("…"))


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_input_is_one_line_exit_2_within_30_s(place, case):
    argv, message = CASES[case]
    argv = [a.replace("{tmp}", str(place)) for a in argv]
    out = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.count("\n") == 1, out.stderr[-3000:]
    expected = pattern(message.replace("{tmp}", str(place)))
    assert re.fullmatch(expected, out.stderr.strip()), (out.stderr, message)
    assert (place / "a file").read_text() == "not a folder\n"  # no planted link was followed


def test_a_run_keeps_the_users_own_files_in_its_folder_byte_for_byte(place):
    """Files the user keeps in ``--out``, temporaries by their names included: a finished run
    leaves each as it was, and removes only what a killed save of its own left behind."""
    out = place / "owned"
    (out / "notes").mkdir(parents=True)
    mine = {".mine.tmp": b"draft\x00", "notes/.draft.tmp": b"half a line", "notes.txt": b"mine\n"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    stale = out / f".checkpoint.eqx.0123{TEMP_SUFFIX}"
    stale.write_bytes(b"half a checkpoint")
    done = run(*SINE, "--epochs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert {name: (out / name).read_bytes() for name in mine} == mine
    assert not stale.exists() and (out / "checkpoint.eqx").is_file()


def test_64_bit_mode_runs_a_command_to_the_end(place):
    """``JAX_ENABLE_X64=1`` once made the epoch loop fail (int64 step counter, int32 carry)."""
    argv = [*TRAIN, "--csv", str(place / "series.csv"), "--epochs", "2", "--out", str(place / "x64")]
    out = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**ENV, "JAX_ENABLE_X64": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((place / "x64" / "metrics.json").read_text())
    assert len(metrics["train_loss"]) == 2 and metrics["diverged_at_epoch"] is None


# The library cases, each as a user's script would meet it: one fresh interpreter runs them all
# and reports, per case, the exception's type and message (or "no error").
LIBRARY_SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from rnn_jax.errors import InputError
from rnn_jax.interop import from_torch
from rnn_jax.loss import loss
from rnn_jax.model import init_model

model = init_model("gru", key=jax.random.key(0), input_dim=2, hidden_dim=4, output_dim=1)
xs, ys = jnp.ones((3, 6, 2)), jnp.ones((3, 1))
nan = xs.at[0, 1, 0].set(jnp.nan)
traced = jax.jit(lambda x, k, lengths: loss(model, x, ys, truncation=k, lengths=lengths))
sized = lambda h: init_model("elman", key=jax.random.key(0), input_dim=1, hidden_dim=h, output_dim=1)
good = dict(weight_ih_l0=np.ones((12, 2), np.float32), weight_hh_l0=np.ones((12, 4), np.float32),
            bias_ih_l0=np.ones(12, np.float32), bias_hh_l0=np.ones(12, np.float32))
cases = {
    "nan inputs": lambda: loss(model, nan, ys),
    "nan inputs under jit": lambda: traced(nan, jnp.asarray(3), jnp.array([6, 6, 6])).block_until_ready(),
    "traced lengths past T": lambda: traced(xs, jnp.asarray(3), jnp.array([6, 7, 1])).block_until_ready(),
    "traced lengths of 0": lambda: traced(xs, jnp.asarray(3), jnp.array([6, 0, 1])).block_until_ready(),
    "traced truncation 0": lambda: traced(xs, jnp.asarray(0), jnp.array([6, 6, 6])).block_until_ready(),
    "hidden_dim 0": lambda: sized(0),
    "hidden_dim 2.5": lambda: sized(2.5),
    "a scalar for a matrix": lambda: from_torch({**good, "weight_hh_l0": np.float32(1)}, "gru"),
    "a string for a matrix": lambda: from_torch({**good, "weight_ih_l0": np.array([["w"]])}, "gru"),
    "a missing bias": lambda: from_torch({k: v for k, v in good.items() if k != "bias_hh_l0"}, "gru"),
    "integer weights": lambda: from_torch({**good, "weight_hh_l0": np.ones((12, 4), np.int64)}, "gru"),
}
out = {}
for name, case in cases.items():
    try:
        case()
        out[name] = ["none", "no error"]
    except Exception as error:
        text = str(error).splitlines()[0] if isinstance(error, InputError) else str(error)
        out[name] = [type(error).__name__, text]
print(json.dumps(out))
"""

LIBRARY_CASES = {  # the exception the case must raise, and a sentence its message must hold
    "nan inputs": ("InputError", "xs holds 1 NaN or infinite values"),
    "nan inputs under jit": (
        "JaxRuntimeError|ValueError",
        "xs holds NaN or infinite values; clean the data first",
    ),
    "traced lengths past T": ("JaxRuntimeError|ValueError", "lengths must lie in [1, T=6]"),
    "traced lengths of 0": ("JaxRuntimeError|ValueError", "lengths must lie in [1, T=6]"),
    "traced truncation 0": ("JaxRuntimeError|ValueError", "truncation must be None or an integer >= 1"),
    "hidden_dim 0": ("InputError", "hidden_dim must be an integer >= 1; got 0"),
    "hidden_dim 2.5": ("InputTypeError", "hidden_dim must be an integer"),
    "a scalar for a matrix": ("InputError", "weight_hh_l0 must be a matrix (2-D); got shape ()"),
    "a string for a matrix": ("InputError", "weight_ih_l0 must hold floating-point weights; got dtype <U1"),
    "a missing bias": ("InputError", "state_dict lacks bias_hh_l0"),
    "integer weights": ("InputError", "weight_hh_l0 must hold floating-point weights"),
}


def test_the_library_refuses_each_hostile_value_by_name_in_a_fresh_process():
    done = run("-c", LIBRARY_SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(outcomes) == set(LIBRARY_CASES)
    for name, (kinds, sentence) in LIBRARY_CASES.items():
        kind, message = outcomes[name]
        assert kind in kinds.split("|") and sentence in message, (name, kind, message)
