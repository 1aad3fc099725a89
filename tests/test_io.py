"""File helpers: bounded reads of regular files, data digests, JSON lines."""

import json
import math

import numpy as np
import pytest

from rnn_jax.io import UnreadableFile, append_json_lines, digest_arrays, read_regular_file, size_text


def test_digest_changes_with_values_dtype_and_shape():
    x = np.arange(6, dtype=np.float32)
    assert digest_arrays(x) == digest_arrays(x.copy())
    assert digest_arrays(x) != digest_arrays(x + 1)
    assert digest_arrays(x) != digest_arrays(x.astype(np.float64))
    assert digest_arrays(x) != digest_arrays(x.reshape(2, 3))
    assert digest_arrays(x, x) != digest_arrays(x)


def test_bounded_reads_name_the_file_and_the_limit(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, limit=100) == b"x" * 100
    with pytest.raises(UnreadableFile, match="data file .*a.bin is 100 bytes, above the limit of 99 bytes"):
        read_regular_file(path, limit=99, what="data file")
    assert size_text(3 << 20) == "3.0 MiB" and size_text(5 << 30) == "5.0 GiB"


def test_json_lines_are_appended_whole_with_nan_as_null(tmp_path):
    path = tmp_path / "m.jsonl"
    append_json_lines(path, [{"epoch": 1, "loss": 0.5}])
    append_json_lines(path, [{"epoch": 2, "loss": math.nan}, {"epoch": 3, "loss": [1.0, math.inf]}])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": None}, {"epoch": 3, "loss": [1.0, None]}]
