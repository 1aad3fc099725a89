"""The archive's ``.ts`` files: the reader, its errors, the model's view of a data set, and the
nearest-neighbour baselines."""

import numpy as np
import pytest

from rnn_jax.data.archive import (
    ArchiveSet,
    as_window_data,
    describe,
    dtw_distance,
    load_archive,
    nearest_neighbour,
    read_ts,
)

HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


def write_set(folder, name, train_lines, test_lines, header=HEADER):
    (folder / name).mkdir(parents=True, exist_ok=True)
    for split, lines in (("TRAIN", train_lines), ("TEST", test_lines)):
        (folder / name / f"{name}_{split}.ts").write_text(header + "\n".join(lines) + "\n")


def case(values_a, values_b, label):
    return ",".join(map(str, values_a)) + ":" + ",".join(map(str, values_b)) + f":{label}"


def test_a_ts_file_becomes_padded_cases_with_their_lengths_and_label_indices(tmp_path):
    train = [case([1, 2, 3], [4, 5, 6], "down"), case([7, 8], [9, 10], "up")]
    write_set(tmp_path, "Toy", train, [case([1], [2], "up")])
    cases, classes = read_ts(tmp_path / "Toy" / "Toy_TRAIN.ts")
    assert classes == ("up", "down")
    assert cases.xs.shape == (2, 3, 2) and cases.lengths.tolist() == [3, 2]
    assert cases.labels.tolist() == [1, 0]
    np.testing.assert_array_equal(cases.xs[1], [[7, 9], [8, 10], [0, 0]])  # zeros after the end
    data = load_archive("Toy", tmp_path)
    assert describe(data)["lengths"] == [1, 3] and describe(data)["classes"] == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (case([1, "?"], [2, 3], "up"), r"Toy_TRAIN.ts line 10: values must be numbers \(a missing '\?'"),
        (case([1, 2], [3], "up"), "line 10: the channels have different lengths"),
        (case([1, 2], [3, 4], "sideways"), r"labels \['sideways'\] are not among the declared classes"),
        ("1,2,3", "line 10: a case needs its values and a label"),
        (case([1, "inf"], [2, 3], "up"), "line 10: values must be finite"),
    ],
)
def test_a_malformed_case_is_refused_naming_the_file_and_line(tmp_path, line, message):
    write_set(tmp_path, "Toy", [line], [case([1], [2], "up")])
    with pytest.raises(ValueError, match=message):
        load_archive("Toy", tmp_path)


def test_a_header_without_class_labels_and_an_unknown_set_are_refused(tmp_path):
    one = [case([1], [2], "up")]
    write_set(tmp_path, "Toy", one, one, header="@problemName Toy\n@data\n")
    with pytest.raises(ValueError, match="expected a header with '@classLabel true <labels>'"):
        load_archive("Toy", tmp_path)
    with pytest.raises(ValueError, match=r"dataset 'Other' is not in .* \(there: Toy\)"):
        load_archive("Other", tmp_path)


def test_the_models_view_is_standardised_over_real_steps_and_masked_after_them(tmp_path):
    rng = np.random.default_rng(0)
    lines = [case(rng.normal(5, 2, n).round(3), rng.normal(-1, 3, n).round(3), "up") for n in (4, 9, 6)]
    write_set(tmp_path, "Toy", lines, [case([5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], [1] * 11, "down")])
    data = as_window_data(load_archive("Toy", tmp_path))
    assert data.x_train.shape == (3, 11, 2) and data.x_val.shape == (1, 11, 2) and data.classes == 2
    assert np.asarray(data.m_train).sum(axis=1).tolist() == [4, 9, 6]
    real = np.asarray(data.x_train)[np.asarray(data.m_train)]
    np.testing.assert_allclose(real.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(real.std(axis=0), 1, atol=1e-5)
    assert np.all(np.asarray(data.x_train)[~np.asarray(data.m_train)] == 0)


def reference_dtw(x, y):
    d = np.full((len(x) + 1, len(y) + 1), np.inf)
    d[0, 0] = 0
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            d[i, j] = ((x[i - 1] - y[j - 1]) ** 2).sum() + min(d[i - 1, j], d[i, j - 1], d[i - 1, j - 1])
    return d[-1, -1]


def test_dependent_dtw_equals_the_textbook_recursion_on_cases_of_unequal_length():
    rng = np.random.default_rng(1)
    x, y = np.zeros((9, 3), np.float32), np.zeros((9, 3), np.float32)
    x[:7], y[:4] = rng.normal(size=(7, 3)), rng.normal(size=(4, 3))
    got = float(dtw_distance(x, 7, y, 4))
    assert got == pytest.approx(reference_dtw(x[:7], y[:4]), rel=1e-5)
    assert float(dtw_distance(x, 7, x, 7)) == 0.0


def test_the_nearest_neighbour_baselines_classify_a_separable_set():
    from rnn_jax.data.archive import Cases

    rng = np.random.default_rng(2)

    def cases(n):  # rising or falling ramps with noise, of lengths 5-12
        lengths = rng.integers(5, 13, n).astype(np.int32)
        labels = rng.integers(0, 2, n).astype(np.int32)
        xs = np.zeros((n, 12, 1), np.float32)
        for i, (m, c) in enumerate(zip(lengths, labels, strict=True)):
            xs[i, :m, 0] = np.linspace(0, 1, m)[:: 1 if c else -1] + 0.05 * rng.normal(size=m)
        return Cases(xs, lengths, labels)

    scores = nearest_neighbour(ArchiveSet("ramps", cases(20), cases(30), ("down", "up")))
    assert set(scores) == {"1-NN Euclidean", "1-NN DTW (dependent, no window)"}
    assert all(v == 1.0 for v in scores.values())
