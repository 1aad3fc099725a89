"""How a run is asked for, whoever asks (the command line or a script): where it writes, how
it checkpoints and logs, and option values given as comma-separated text. None of it changes
a run's results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from rnn_jax.errors import InputError
from rnn_jax.runs.processes import Processes, process_checkpoint


def parse_list(text: str, name: str, kind: Callable[[str], Any] = float, allow_none: bool = False) -> list:
    """``"1,2,none"`` -> ``[1, 2, None]`` (``kind=int, allow_none=True``); errors name the option."""
    values = []
    for item in (v.strip() for v in text.split(",")):
        if allow_none and item.lower() == "none":
            values.append(None)
            continue
        try:
            values.append(kind(item))
        except ValueError:
            raise InputError(
                f"{name} must be a comma-separated list of {kind.__name__} values; got {text!r}"
            ) from None
    if not values:
        raise InputError(f"{name} must not be empty")
    return values


class RunOptions(NamedTuple):
    """How a run is carried out (where it writes, how it checkpoints); none of it changes its
    results."""

    out: Path
    resume: bool = False
    checkpoint_every: int | None = None
    overwrite: bool = False
    quiet: bool = False  # no progress bar or epoch lines; the result line and errors only
    log_every: int | None = None  # epochs between printed lines; None: about ten lines per run
    processes: Processes = Processes()  # this process among the run's (rnn_jax.runs.processes)


def make_checkpointing(options: RunOptions, run: dict[str, Any]):
    """Checkpoints of the run described by ``run`` in ``options.out``; a fresh run refuses to
    replace an unfinished run, or a finished one with other options, unless ``options.overwrite``."""
    from rnn_jax.runs.checkpoint import FILENAME, refuse_other_run
    from rnn_jax.runs.driver import Checkpointing
    from rnn_jax.runs.processes import LAYOUT_KEYS

    checkpointing = Checkpointing(options.out / FILENAME, run, options.checkpoint_every)
    if not (options.resume or options.overwrite):
        mine = process_checkpoint(checkpointing.path, options.processes.index, options.processes.count)
        refuse_other_run(mine, run, ignore=LAYOUT_KEYS)
    return checkpointing


def epoch_log(options: RunOptions):
    """The ``EpochLog`` of a run: ``metrics.jsonl`` in ``options.out``, lines as asked."""
    from rnn_jax.runs.logs import METRICS_LOG, EpochLog

    return EpochLog(options.out / METRICS_LOG, every=options.log_every, quiet=options.quiet)
