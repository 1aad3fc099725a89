"""Replays the errors page's table of bad inputs and prints, as JSON, the message each one gets.

Run as a script (``python tests/bad_inputs.py``) in a fresh process, so that the package is
used exactly as users use it, without the test suite's run-time annotation checks. Each row's
``Try`` column is either a command (``uv run experiments/sine_wave.py ...``,
``uv run rnn-jax ...``), run in-process with its stderr captured, or a Python call evaluated
with the names defined in ``namespace()``. Files the rows mention are created in a temporary
working directory first.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "errors.md"
HEADING = "## Every bad input we try, and the message it gets"


def _fake_run() -> dict[str, bytes]:
    """A run folder as ``rnn-jax train`` leaves it, trained on a column named ``sales`` (its
    model's parameters are not needed to refuse a file without that column)."""
    import dataclasses
    import hashlib

    from rnn_jax.forecast.train import CsvTrainConfig
    from rnn_jax.runs.checkpoint import MODEL_FORMAT, sealed

    config = dataclasses.asdict(CsvTrainConfig(csv="sales.csv", inputs="sales", targets="sales"))
    payload = b"0"
    header = {
        "format": MODEL_FORMAT,
        "description": {"names": ["sales"], "inputs": ["sales"], "targets": ["sales"]},
        "payload_bytes": 1,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    return {
        "run/config.json": json.dumps(config).encode(),
        "run/model.eqx": json.dumps(sealed(header)).encode() + b"\n" + payload,
    }


MONTHS = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(60)]

FILES = {
    "gaps.csv": "time,temp\n0,20.5\n1,\n2,21.0\n",
    "words.csv": "time,temp\n0,20.5\n1,warm\n",
    "ragged.csv": "time,temp,humidity\n0,20.5,0.6\n1,21.0\n",
    "blank.csv": "",
    "short.csv": "time,temp\n0,20.5\n1,21.0\n2,21.5\n",
    "allgaps.csv": "time,temp,rain\n" + "".join(f"{i},,{i % 3}\n" for i in range(40)),
    "dupes.csv": "month,temp\n2000-01,1.5\n2000-02,2.5\n2000-02,3.5\n2000-03,1.0\n",
    "backwards.csv": "month,temp\n2000-01,1.5\n2000-03,2.5\n2000-02,3.5\n",
    "holes.csv": "month,temp\n2000-01,1.5\n2000-02,2.5\n2000-05,3.5\n2000-06,1.0\n2000-09,2.0\n",
    "dates.csv": "when,temp\n2000-01-01,1.5\nthe next day,2.5\n",
    "monthly.csv": "month,temp\n" + "".join(f"{m},{(i * 7) % 11}.5\n" for i, m in enumerate(MONTHS)),
    "broken/checkpoint.eqx": "not a checkpoint\n",
    # A well-formed header whose "finished" was flipped by hand: its own SHA-256 no longer fits.
    "edited/checkpoint.eqx": json.dumps(
        {
            "format": "rnn_jax-checkpoint-2",
            "epoch": 3,
            "run": {},
            "finished": True,
            "metrics": {},
            "payload_bytes": 0,
            "payload_sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "header_sha256": "0" * 64,
        }
    )
    + "\n",
    "empty.txt": "",
    "latin1.txt": "caf\u00e9 au lait".encode("latin-1"),
    "hanzi.txt": "".join(chr(0x4E00 + i) for i in range(300)),
}


def all_files() -> dict:
    return {**FILES, **_fake_run()}


def table_rows(text: str) -> list[tuple[str, str, str]]:
    """``(what, try, message)`` for each row of the errors page's bad-input table."""
    section = text.split(HEADING, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 3 and cells[1].startswith("`"):
            rows.append((cells[0], cells[1].strip("`"), cells[2].strip("`").replace("\\|", "|")))
    return rows


def namespace() -> dict:
    """Names the Python rows may use: small, valid objects next to their broken twins."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import rnn_jax
    from rnn_jax.data.csv import check_enough_rows, read_csv_columns
    from rnn_jax.data.sine import check_window_data
    from rnn_jax.runs.checkpoint import load_checkpoint
    from rnn_jax.runs.driver import fit
    from rnn_jax.runs.sweep import grid
    from rnn_jax.train.loop import TrainConfig, check_hparams, make_train

    key = jax.random.key(0)
    data = rnn_jax.make_sine_data()
    hp = rnn_jax.make_hparams(learning_rate=0.1, seq_len=50)
    return {
        **{name: getattr(rnn_jax, name) for name in rnn_jax.__all__},
        "TrainConfig": TrainConfig,
        "fit": fit,
        "grid": grid,
        "check_hparams": check_hparams,
        "check_window_data": check_window_data,
        "read_csv_columns": read_csv_columns,
        "check_enough_rows": check_enough_rows,
        "load_checkpoint": load_checkpoint,
        "jnp": jnp,
        "key": key,
        "data": data,
        "hp": hp,
        "params": rnn_jax.init_elman(key=key, input_dim=1, hidden_dim=8, output_dim=1),
        "model": rnn_jax.init_model("gru", key=key, input_dim=3, hidden_dim=4, output_dim=5),
        "xs": jnp.zeros((2, 6, 3)),
        "ys": jnp.zeros((2, 5)),
        "nan_data": eqx.tree_at(lambda d: d.x_train, data, data.x_train.at[7, 3, 0].set(jnp.nan)),
        "int_data": eqx.tree_at(lambda d: d.y_val, data, data.y_val.astype(jnp.int32)),
        "state": jax.eval_shape(make_train(TrainConfig()).init, key, hp, data),
    }


def message_of(attempt: str, names: dict) -> str:
    """What the user sees: stderr's first line for a command (exit code 2 expected), else
    ``ExceptionType: message``."""
    if attempt.startswith("uv run "):
        argv = shlex.split(attempt)[2:]
        if argv[0].endswith(".py"):
            sys.path.insert(0, str(ROOT / Path(argv[0]).parent))
            main = __import__(Path(argv[0]).stem).main
        else:
            from rnn_jax.cli.main import main
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                code = main(argv[1:])
            except SystemExit as exit_:
                code = exit_.code
        lines = err.getvalue().splitlines()
        return f"[exit {code}] " + (lines[0] if len(lines) == 1 else repr(lines))
    try:
        eval(attempt, names)  # noqa: S307 - rows of our own docs
    except (ValueError, TypeError) as err:
        kind = "TypeError" if isinstance(err, TypeError) else "ValueError"
        return f"{kind}: {err}"
    return "no error"


def expected_form(attempt: str, message: str) -> str:
    """The errors page's message column as ``message_of`` reports it."""
    return f"[exit 2] {message}" if attempt.startswith("uv run ") else message


def matches(got: str, expected: str) -> bool:
    """``got`` is ``expected``, where ``…`` in ``expected`` stands for a figure that depends on
    the machine (the memory available)."""
    return re.fullmatch(".*?".join(re.escape(part) for part in expected.split("…")), got) is not None


def main() -> None:
    rows = table_rows(PAGE.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for name, text in all_files().items():
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                Path(name).write_bytes(text)
            else:
                Path(name).write_text(text)
        names = namespace()
        results = [
            {"what": what, "try": attempt, "expected": message, "got": message_of(attempt, names)}
            for what, attempt, message in rows
        ]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
