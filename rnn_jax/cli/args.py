"""Argument handling shared by the ``rnn-jax`` command and every experiment script.

User errors (bad option values, impossible sizes) print one line, ``error: ...``, and exit
with code 2, before anything is compiled; no traceback. Nothing here knows any maths.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rnn_jax.errors import InputError
from rnn_jax.runs.options import RunOptions
from rnn_jax.runs.processes import Processes
from rnn_jax.runs.signals import run_command


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


def folder_arg(text: str) -> Path:
    """An ``--out`` value: a non-empty folder name (an empty one would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder name, got an empty string")
    return Path(text)


def _parse_seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**63 - 1, got {text}")
    return value


def _parse_optional_int(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def _parse_optional_str(text: str) -> str | None:
    return None if text.lower() == "none" else text


def _is_optional(annotation: Any, kind: type) -> bool:
    args = set(typing.get_args(annotation))
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and args == {kind, type(None)}


def config_fields(defaults: Any, path: tuple[str, ...] = ()):
    """``(path, default, type hint, help, choices)`` for every leaf field of a frozen dataclass
    instance, descending into fields that are dataclasses themselves (a ``TrainConfig`` inside an
    experiment's config). Help comes from each class's ``HELP`` mapping and the allowed values
    from its ``CHOICES`` mapping (a sequence, or a function returning one: a registry that may
    grow), where it has them; ``choices`` is ``None`` for a free value."""
    hints = typing.get_type_hints(type(defaults))
    helps = getattr(type(defaults), "HELP", {})
    choices = getattr(type(defaults), "CHOICES", {})
    for field in dataclasses.fields(defaults):
        value = getattr(defaults, field.name)
        if dataclasses.is_dataclass(value):
            yield from config_fields(value, (*path, field.name))
        else:
            allowed = choices.get(field.name)
            allowed = tuple(allowed() if callable(allowed) else allowed) if allowed is not None else None
            yield (*path, field.name), value, hints[field.name], helps.get(field.name, ""), allowed


def _shown(value: Any) -> str:
    """A default as a user would type it."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def add_config_arguments(
    parser: argparse.ArgumentParser, defaults: Any, help: dict[str, str] | None = None
) -> None:
    """One ``--field-name`` option per leaf field of the frozen dataclass instance ``defaults``
    (nested configs give their fields flat names, which must not repeat). ``help`` overrides
    or adds to the classes' own ``HELP`` texts."""
    seen: set[str] = set()
    for path, default, hint, text, choices in config_fields(defaults):
        name = path[-1]
        if name in seen:
            raise InputError(f"config field {name!r} appears twice; nested configs need distinct names")
        seen.add(name)
        flag, dest = "--" + name.replace("_", "-"), ".".join(path)
        text = (help or {}).get(name, text).replace("%", "%%")
        if default == "" and hint is str:
            text += "" if "(required)" in text else " (required)"
        else:
            text += f" (default: {_shown(default).replace('%', '%%')})"
        common = {"dest": dest, "default": default, "help": text}
        optional = _is_optional(hint, int) or _is_optional(hint, str)
        metavar = None
        if choices is not None:
            metavar = "{" + ",".join([*choices, *(["none"] if optional else [])]) + "}"
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif _is_optional(hint, int):
            parser.add_argument(flag, type=_parse_optional_int, metavar=metavar or "INT|none", **common)
        elif _is_optional(hint, str):
            parser.add_argument(flag, type=_parse_optional_str, metavar=metavar or "STR|none", **common)
        elif name == "seed" and hint is int:  # a PRNG seed: what jax.random.key accepts
            parser.add_argument(flag, type=_parse_seed, metavar="INT", **common)
        else:
            parser.add_argument(flag, type=hint, metavar=metavar or hint.__name__.upper(), **common)


def config_from_args(cls: type, args: argparse.Namespace, path: tuple[str, ...] = ()) -> Any:
    """Build the dataclass ``cls`` (nested configs included) from parsed arguments."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            values[field.name] = config_from_args(hint, args, (*path, field.name))
        else:
            values[field.name] = getattr(args, ".".join((*path, field.name)))
    return cls(**values)


def experiment_main(
    doc: str,
    defaults: Any,
    run: Callable[[Any, Any], object],
    out: str,
    argv: Sequence[str] | None = None,
    *,
    resumable: bool = False,
    processes: bool = False,
) -> int:
    """The command line of an experiment script: ``--out`` plus one option per config field;
    user errors become one line and exit code 2. ``run(config, out)`` may return an ``int``, the
    exit code (anything else means 0). With ``resumable`` the script also takes ``add_run_options``'s
    options and ``run`` gets ``RunOptions`` instead of the output folder; with ``processes``,
    ``add_process_options``'s (and ``run`` gets ``RunOptions`` too)."""
    parser = OneLineParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", type=folder_arg, default=None, help=f"output folder (default: {out})")
    if resumable:
        add_run_options(parser)
    if processes:
        add_process_options(parser)
    add_config_arguments(parser, defaults)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    config = config_from_args(type(defaults), args)

    def exit_code(result: object) -> int:
        return result if isinstance(result, int) and not isinstance(result, bool) else 0

    if processes and args.num_processes > 1 and args.process_id is None:
        return launch(parser, args, sys.argv[1:] if argv is None else argv, run)
    if not resumable and not processes:
        folder = args.out or Path(out)
        claim_folder(parser, folder)
        return run_command(lambda: exit_code(run(config, folder)), folder)
    options = run_options(parser, args, Path(out))
    return run_command(lambda: exit_code(run(config, options)), options.out)


def launch(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str], run) -> int:
    """Check the options as each process will, then start ``--num-processes`` of this script here."""
    from rnn_jax.cli.launch import launch_here

    if args.num_processes > 256:
        parser.error(f"--num-processes must be at most 256 on one machine; got {args.num_processes}")
    for index in range(args.num_processes):
        if getattr(args, "resume", None) is not None:
            check_resumable(parser, args.resume, Processes(args.num_processes, index, "127.0.0.1:1"))
    return launch_here(sys.modules[run.__module__].__file__, argv, args.num_processes)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--resume DIR``, ``--checkpoint-every EPOCHS``, ``--overwrite``, ``--quiet`` and
    ``--log-every EPOCHS``."""
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue the run saved in the output folder DIR (give the options of that run)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="save a checkpoint every EPOCHS epochs (default: every 30 s, at chunk boundaries)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start again even if the output folder holds an unfinished run or one with other options",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print no progress and no epoch lines, only the result"
    )
    parser.add_argument(
        "--log-every",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="print a line of metrics every EPOCHS epochs (default: about ten lines per run); "
        "every epoch also goes to metrics.jsonl in the output folder",
    )


def add_process_options(parser: argparse.ArgumentParser) -> None:
    """``--num-processes N``, ``--process-id I`` and ``--coordinator HOST:PORT``
    (``rnn_jax.runs.processes``)."""
    parser.add_argument(
        "--num-processes",
        type=int,
        default=1,
        metavar="N",
        help="split the run over N processes; without --process-id, start N on this machine",
    )
    parser.add_argument(
        "--process-id",
        type=int,
        default=None,
        metavar="I",
        help="this process's index, 0..N-1, when each process is started by hand or by a scheduler",
    )
    parser.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="where process 0 listens for the others (with --process-id)",
    )


def process_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Processes:
    """The ``Processes`` of parsed arguments (one process when the script takes none)."""
    if not hasattr(args, "num_processes"):
        return Processes()
    if args.process_id is None and args.coordinator is not None:
        parser.error("--coordinator goes with --process-id (each process of a run started by hand)")
    index = 0 if args.process_id is None else args.process_id
    try:
        return Processes(args.num_processes, index, args.coordinator if args.num_processes > 1 else None)
    except InputError as err:
        parser.error(str(err))


def run_options(parser: argparse.ArgumentParser, args: argparse.Namespace, default_out: Path) -> RunOptions:
    """The ``RunOptions`` of parsed arguments; ``--resume DIR`` is also the output folder."""
    if not hasattr(args, "resume"):  # a script that takes only the process options
        processes = process_options(parser, args)
        claim_folder(parser, args.out or default_out, process=processes.index)
        return RunOptions(args.out or default_out, processes=processes)
    if args.resume is not None and args.out is not None and args.out != args.resume:
        parser.error("--resume DIR continues the run in DIR; leave out --out or give the same folder")
    out = args.resume or args.out or default_out
    if args.log_every is not None and args.log_every < 1:
        parser.error(f"--log-every must be a positive integer; got {args.log_every}")
    processes = process_options(parser, args)
    if args.resume is not None:
        check_resumable(parser, args.resume, processes)  # nothing is created
    claim_folder(parser, out, process=processes.index)
    return RunOptions(
        out,
        resume=args.resume is not None,
        checkpoint_every=args.checkpoint_every,
        overwrite=args.overwrite,
        quiet=args.quiet,
        log_every=args.log_every,
        processes=processes,
    )


def check_resumable(parser: argparse.ArgumentParser, folder: Path, processes: Processes) -> None:
    """A one-line error unless ``folder`` holds this process's checkpoint."""
    from rnn_jax.runs.processes import process_checkpoint, saved_process_counts

    path = process_checkpoint(folder / "checkpoint.eqx", processes.index, processes.count)
    if path.exists():
        return
    found = [c for c in saved_process_counts(folder / "checkpoint.eqx") if c != processes.count]
    if found:
        parser.error(
            f"no checkpoint at {path}: {folder} holds a run of {found[0]} process(es); resume it "
            f"with --num-processes {found[0]}"
        )
    parser.error(f"no checkpoint at {path}")


def claim_folder(parser: argparse.ArgumentParser, out: Path, *, process: int = 0) -> None:
    """Check and lock the output folder before any work (``rnn_jax.cli.folders``); a problem is the
    parser's one-line error, exit code 2."""
    from rnn_jax.cli.folders import FolderError, claim_output_folder

    try:
        claim_output_folder(out, process=process)
    except FolderError as err:
        parser.error(str(err))
