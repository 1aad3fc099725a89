"""Checkpoints: a run's whole state on disk, so an interrupted run resumes bit for bit.

A checkpoint is one file: a line of JSON (the header), then the state's leaves and the metrics
so far as written by ``equinox.tree_serialise_leaves`` (NumPy's ``.npy`` format; never
pickle). The header holds the format name, the run's description (its configuration), the
epoch reached, the metrics' shapes, the payload's length and SHA-256, and a SHA-256 of the
header's own fields, so that a truncated, corrupted or edited file is refused before any of it
is used. Headers are parsed defensively (bounded size and nesting, every field's type checked),
and only regular files are opened. Files are written atomically: a crash mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import ArrayLike

from rnn_jax.errors import InputError
from rnn_jax.io import UnreadableFile, read_regular_file, size_text, write_atomic
from rnn_jax.train.loop import TrainState

FORMAT = "rnn_jax-checkpoint-2"  # 2: the header carries its own SHA-256
FILENAME = "checkpoint.eqx"
MODEL_FORMAT = "rnn_jax-model-2"
OLDER_FORMATS = {FORMAT: "rnn_jax-checkpoint-1", MODEL_FORMAT: "rnn_jax-model-1"}
MAX_HEADER_BYTES = 1 << 20  # a run's configuration and metric shapes take a few kB
MAX_FILE_BYTES = 1 << 36  # 64 GiB: far above any model this code trains, far below a runaway file
MAX_DEPTH = 32  # nesting of the header's JSON (a run description nests 2-3 levels)
# The fields each format's header must have, with their JSON types.
HEADER_FIELDS = {
    FORMAT: {
        "epoch": int,
        "run": dict,
        "finished": bool,
        "metrics": dict,
        "payload_bytes": int,
        "payload_sha256": str,
        "header_sha256": str,
    },
    MODEL_FORMAT: {"description": dict, "payload_bytes": int, "payload_sha256": str, "header_sha256": str},
}


class CheckpointError(InputError):
    """A checkpoint that is missing, unreadable, damaged, or belongs to another run."""


def _storable(state: TrainState) -> TrainState:
    # Typed PRNG keys have no .npy form; their raw uint32 data does.
    return eqx.tree_at(lambda s: s.key, state, jax.random.key_data(state.key))


def _restored(state: TrainState) -> TrainState:
    return eqx.tree_at(lambda s: s.key, state, jax.random.wrap_key_data(state.key))


def save_checkpoint(
    path: str | Path,
    state: TrainState,
    *,
    run: dict[str, Any],
    metrics: dict[str, ArrayLike | Sequence[float]],
    finished: bool = False,
) -> Path:
    """Write ``state`` with the JSON-able description ``run`` and the ``metrics`` so far (arrays
    of any shape, for example ``(epochs,)`` for one run or ``(members, epochs)`` for a sweep).

    ``state`` may carry leading member axes; its ``epoch`` must then be the same for all.
    ``finished``: the run has nothing left to do (all epochs run, or stopped by divergence)."""
    # The dtypes JAX would give (float32 unless x64 is on): what tree_serialise_leaves writes.
    metrics = {name: np.asarray(jax.numpy.asarray(values)) for name, values in metrics.items()}
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, {"state": _storable(jax.device_get(state)), "metrics": metrics})
    payload = buffer.getvalue()
    header = {
        "format": FORMAT,
        "epoch": int(np.max(state.epoch)),
        "run": run,
        "finished": finished,
        "metrics": {name: {"shape": list(v.shape), "dtype": str(v.dtype)} for name, v in metrics.items()},
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    line = json.dumps(sealed(header)).encode() + b"\n"
    return write_atomic(path, lambda f: f.write(line + payload))


def _header_digest(header: dict[str, Any]) -> str:
    fields = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def sealed(header: dict[str, Any]) -> dict[str, Any]:
    """``header`` with ``header_sha256``, the SHA-256 of its other fields (as sorted JSON)."""
    return {**header, "header_sha256": _header_digest(header)}


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _header_problem(line: bytes, format: str) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed header, or why ``line`` is not a valid header of ``format``."""
    if len(line) > MAX_HEADER_BYTES:
        return None, f"its header line exceeds {size_text(MAX_HEADER_BYTES)}"
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, f"expected a {format} header"
    except RecursionError:
        return None, f"its header nests deeper than {MAX_DEPTH} levels"
    if not isinstance(header, dict) or header.get("format") != format:
        if isinstance(header, dict) and header.get("format") == OLDER_FORMATS[format]:
            return None, f"written by an older rnn_jax in format {header['format']}; expected {format}"
        return None, f"expected a {format} header"
    if _depth(header) > MAX_DEPTH:
        return None, f"its header nests deeper than {MAX_DEPTH} levels"
    for name, kind in HEADER_FIELDS[format].items():
        value = header.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return None, f"its header field {name!r} is missing or not a {kind.__name__}"
    if header["payload_bytes"] < 0 or header.get("epoch", 0) < 0:
        return None, "its header holds a negative size or epoch"
    for name, m in header.get("metrics", {}).items():
        ok = isinstance(m, dict) and isinstance(m.get("shape"), list) and isinstance(m.get("dtype"), str)
        if not ok or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in m["shape"]):
            return None, f"its header's metric {name!r} has no valid shape and dtype"
    if _header_digest(header) != header["header_sha256"]:
        return None, "its header was edited: the header's SHA-256 does not match its fields"
    return header, None


def read_checkpoint(path: str | Path, format: str = FORMAT) -> tuple[dict[str, Any], bytes]:
    """The header and the payload of the checkpoint (or, with ``format=MODEL_FORMAT``, the saved
    model) at ``path``, after checking its integrity."""
    path = Path(path)
    what = "checkpoint" if format == FORMAT else "model"
    try:
        blob = read_regular_file(path, limit=MAX_FILE_BYTES, what=what)
    except UnreadableFile as err:
        if not path.exists() and not path.is_symlink():
            raise CheckpointError(f"no {what} at {path}") from None
        raise CheckpointError(str(err)) from None
    line, newline, payload = blob.partition(b"\n")
    header, problem = _header_problem(line, format) if newline else (None, f"expected a {format} header")
    if problem is not None:
        raise CheckpointError(f"{path} is not an rnn_jax {what} ({problem})")
    if len(payload) != header.get("payload_bytes"):
        raise CheckpointError(
            f"checkpoint {path} is truncated or damaged: {len(payload)} bytes of state, "
            f"expected {header.get('payload_bytes')}"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupted: its SHA-256 does not match its header")
    return header, payload


# The run-identity key holding the SHA-256 of the data a run trained on.
DATA_KEY = "data_sha256"


def flat(run: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested run description with dotted keys: ``{"train": {"epochs": 3}}`` ->
    ``{"train.epochs": 3}``."""
    out = {}
    for key, value in run.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def describe_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """``"a: 1 in the checkpoint, 2 now; ..."`` for every (dotted) key whose value differs."""
    saved, current = flat(saved), flat(current)
    diffs = []
    for k in sorted(set(saved) | set(current)):
        then, now = saved.get(k), current.get(k)
        if then == now:
            continue
        if k == DATA_KEY and isinstance(then, str) and isinstance(now, str):
            # A digest of the data means nothing to a reader; say which data changed.
            source = current.get("csv") or "the generated data"
            diffs.append(f"{source} has changed: SHA-256 {then[:12]}... in the checkpoint, {now[:12]}... now")
        else:
            diffs.append(f"{k}: {then!r} in the checkpoint, {now!r} now")
    return "; ".join(diffs)


def load_checkpoint(
    path: str | Path, like: TrainState, *, run: dict[str, Any]
) -> tuple[TrainState, dict[str, np.ndarray]]:
    """The state and metrics saved at ``path``, refused unless saved for the same ``run``.

    ``like`` gives the expected structure, shapes and dtypes (arrays or ``jax.ShapeDtypeStruct``,
    for example from ``jax.eval_shape`` of the run's ``init``).
    """
    header, payload = read_checkpoint(path)
    # JSON turns tuples into lists; compare what the file would hold.
    current = json.loads(json.dumps(run, allow_nan=True))
    if header["run"] != current:
        raise CheckpointError(
            f"checkpoint {path} belongs to a different run ({describe_mismatch(header['run'], current)}); "
            "refusing to resume from it"
        )
    try:
        metrics_like = {
            name: jax.ShapeDtypeStruct(tuple(m["shape"]), np.dtype(m["dtype"]))
            for name, m in header["metrics"].items()
        }
        like = {"state": jax.eval_shape(_storable, like), "metrics": metrics_like}
        stored = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except (RuntimeError, ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit this run's state: {err}") from None
    metrics = {name: np.asarray(values) for name, values in stored["metrics"].items()}
    return _restored(stored["state"]), metrics


def refuse_other_run(path: Path, run: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> None:
    """Refuse to start a run afresh over a checkpoint whose run has not finished, that belongs to
    a finished run with other options (``run`` differs, leaving out the keys in ``ignore``), or
    that cannot be read. A finished run of the same options may be repeated: it writes the same
    results."""
    if not path.exists():
        return
    try:
        header = read_checkpoint(path)[0]
    except CheckpointError as err:
        raise CheckpointError(f"{err}; pass --overwrite to start again over it") from None
    if not header.get("finished"):
        epochs = next((v for k, v in flat(header["run"]).items() if k.rsplit(".", 1)[-1] == "epochs"), "?")
        raise CheckpointError(
            f"{path.parent} holds an unfinished run (epoch {header['epoch']} of {epochs}); continue it "
            f"with --resume {path.parent}, or pass --overwrite to start again"
        )
    # Compare as stored: JSON turns tuples into lists.
    saved = {k: v for k, v in header["run"].items() if k not in ignore}
    mismatch = describe_mismatch(saved, json.loads(json.dumps(run)))
    if mismatch:
        raise CheckpointError(
            f"{path.parent} holds a finished run with other options ({mismatch}); choose another "
            "--out, or pass --overwrite to replace it"
        )


def save_model(path: str | Path, params, *, description: dict[str, Any]) -> Path:
    """Write a trained model's parameters (any pytree of arrays, e.g. ``RNN`` leaves with a
    member axis) with a JSON ``description`` of how to rebuild and use it, atomically."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, jax.device_get(params))
    payload = buffer.getvalue()
    header = {
        "format": MODEL_FORMAT,
        "description": description,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    line = json.dumps(sealed(header)).encode() + b"\n"
    return write_atomic(path, lambda f: f.write(line + payload))


def read_model_description(path: str | Path) -> dict[str, Any]:
    """The description saved with a model (checked for integrity)."""
    header, _ = read_checkpoint(path, MODEL_FORMAT)
    if not isinstance(header.get("description"), dict):
        raise CheckpointError(f"{path} is not an rnn_jax model (its header has no description)")
    return header["description"]


def load_model(path: str | Path, like):
    """The parameters saved by ``save_model``; ``like`` gives their structure, shapes and dtypes."""
    _, payload = read_checkpoint(path, MODEL_FORMAT)
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except (RuntimeError, ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"model {path} does not fit the model its description builds: {err}") from None
